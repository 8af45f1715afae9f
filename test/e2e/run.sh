#!/usr/bin/env bash
# End-to-end harness of crashdump: a real single-node Kubernetes on this
# machine (127.0.0.1 only), built from source, no registry, no Docker.
#
#   test/e2e/run.sh [all]    install, build, bring up, run the scenarios, tear down,
#                            verify the host is clean, print a timing summary
#   test/e2e/run.sh up       the same up to a running cluster, and leave it running
#   test/e2e/run.sh test     (re)build and run the scenarios against the `up` cluster
#   test/e2e/run.sh status   what runs, what is mounted, node and pods
#   test/e2e/run.sh down     tear down and verify the host is clean
#   test/e2e/run.sh clean    down, then remove the work directory (logs included)
#   test/e2e/run.sh minio stop|start   stop or restart the running cluster's MinIO (same
#                            data and credentials): the on-call scenario's store outage
#
# Must run as root. Environment (all optional):
#   E2E_CACHE         reused downloads and builds   (default $HOME/.cache/crashdump-e2e)
#   E2E_WORK          this run's state and logs     (default /var/tmp/crashdump-e2e)
#   E2E_RELEASE_DIR   the release artifacts of `make release` (dist/): the agent image
#                     is its OCI archive, the chart its packaged chart, the CLI the binary
#                     of its krew archive, all checked against its SHA256SUMS first
#                     (`make e2e` sets it; E2E_AGENT_IMAGE then names the archive's image)
#   E2E_AGENT_BINARY  without E2E_RELEASE_DIR: static agent binary (CGO_ENABLED=0) to
#                     build the agent image from
#   E2E_AGENT_IMAGE   name:tag of that image        (default e2e.local/crashdump:e2e)
#   E2E_CHART         Helm chart of the agent       (default: the release's, else
#                     deploy/helm/crashdump if present)
#   E2E_RUN           go test -run regexp for the scenarios; E2E_TIMEOUT (default 30m)
#   E2E_K8S_VERSION   another Kubernetes than the one pinned in kbuild/go.mod
#   E2E_MINIO_BIN     a MinIO server binary at the pinned version to use instead of building one
#   E2E_PROMETHEUS_BIN, E2E_ALERTMANAGER_BIN  the on-call scenario's servers at the pinned versions (else built once)
#   E2E_BREAK_ATTRIBUTION=1  install the agent with --pod-source none (attribution.podSource=none):
#                     shows that the scenarios fail when attribution is broken
# See test/e2e/README.md for what it touches on the host and how it undoes it.
set -euo pipefail

# shellcheck source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/install.sh
. "$E2E_DIR/lib/install.sh"
# shellcheck source=lib/cluster.sh
. "$E2E_DIR/lib/cluster.sh"

CMD=${1:-all}
case $CMD in
all | up | test | status | down | clean | minio) ;;
-h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
*) die "unknown command '$CMD' (all|up|test|status|down|clean|minio)" ;;
esac
[ "$(id -u)" = 0 ] || die "run.sh must run as root: it starts containerd and a kubelet (try: sudo -E $0 $CMD)"
[ "$(uname -s)" = Linux ] || die "Linux only"

PAUSE_IMAGE=e2e.local/pause:3.10
EMULATOR_IMAGE=e2e.local/createdump-emulator:e2e
AGENT_IMAGE=${E2E_AGENT_IMAGE:-e2e.local/crashdump:e2e}
if [ -z "${E2E_CHART:-}" ] && [ -n "${E2E_RELEASE_DIR:-}" ]; then
  charts=("$E2E_RELEASE_DIR"/crashdump-*.tgz)
  [ ${#charts[@]} = 1 ] && [ -f "${charts[0]}" ] || die "E2E_RELEASE_DIR=$E2E_RELEASE_DIR: want exactly one crashdump-*.tgz chart (make release)"
  E2E_CHART=${charts[0]}
fi
if [ -z "${E2E_CHART:-}" ] && [ -d "$REPO_ROOT/deploy/helm/crashdump" ]; then E2E_CHART=$REPO_ROOT/deploy/helm/crashdump; fi
RUN_KIND=""
TEARDOWN=0
CLEAN_AFTER=0
# A cluster from `up` knows its kubectl (used for a graceful teardown).
if [ "$CMD" != all ] && [ "$CMD" != up ] && [ -f "$W/e2e.env" ]; then
  kubectl_dir=$(sed -n 's/^E2E_KUBECTL=//p' "$W/e2e.env")
  [ -n "$kubectl_dir" ] && PATH="$(dirname "$kubectl_dir"):$PATH"
fi

# status only reads; minio runs inside a scenario, under the lock its
# run.sh holds.
if [ "$CMD" != status ] && [ "$CMD" != minio ]; then
  mkdir -p "$(dirname "$W")"
  exec 9>"$W.lock"
  flock -n 9 || die "another run.sh is using $W (lock $W.lock)"
fi

any_alive() {
  local f
  for f in "$W"/run/*.pid; do [ -f "$f" ] && alive "$(basename "$f" .pid)" && return 0; done
  return 1
}

# Leftovers of an earlier run that died without tearing down: clean them up
# with that run's own records. A cluster that still runs is not ours to kill
# implicitly.
cleanup_stale() {
  [ -d "$W" ] || return 0
  if any_alive; then
    local mode="" opid="" ost=""
    [ -f "$W/run/owner" ] && read -r mode opid ost <"$W/run/owner"
    if [ "$mode" = up ] || { [ -n "$opid" ] && [ "$(proc_starttime "$opid" 2>/dev/null)" = "$ost" ]; }; then
      die "a cluster from an earlier 'run.sh up' is still running in $W: use '$0 test', '$0 status' or '$0 down'"
    fi
    log "the run that started the cluster in $W (pid ${opid:-?}) died without tearing down"
  fi
  if any_alive || [ -n "$(mounts_under_work)" ] || [ -d "$W/containerd" ] || [ -d "$W/kubelet" ]; then
    log "cleaning up leftovers of an earlier run in $W"
    cluster_down
    set -e
  fi
  [ -z "$(mounts_under_work)" ] || die "mounts remain under $W; unmount them and retry"
  rm -rf "$W"
}

preflight_host() {
  [ -z "$(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null)" ] ||
    die "a kubepods cgroup exists: another kubelet runs (or ran) on this host; the harness would remove it"
  [ -z "$(kube_chains)" ] || die "KUBE-* iptables chains exist on this host; the harness would remove them: $(kube_chains | tr '\n' ';')"
  local p
  for p in "${HARNESS_PORTS[@]}"; do
    if listening_on "$p"; then die "port $p is in use: $(ss -Htlnp "sport = :$p" | head -1)"; fi
  done
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die "no overlay filesystem (containerd's snapshotter needs it)"
  [ -x /usr/lib/cni/loopback ] || die "/usr/lib/cni/loopback missing (containernetworking-plugins)"
}

on_signal() {
  log "caught SIG$1: tearing down"
  if [ "$1" = INT ]; then exit 130; else exit 143; fi
}

on_exit() {
  local rc=$?
  trap '' INT TERM
  set +e
  stop_bg
  if [ "$TEARDOWN" = 1 ]; then
    phase teardown
    cluster_down
    phase verify
    if ! "$E2E_DIR/verify-clean.sh"; then
      log "verify-clean FAILED: the host is not as it was"
      [ "$rc" = 0 ] && rc=1
    elif [ "$CLEAN_AFTER" = 1 ]; then
      rm -rf "$W" "$W.lock"
      log "removed $W"
    fi
  fi
  phase_end
  if [ ${#PHASE_ORDER[@]} -gt 0 ]; then
    if [ "$rc" = 0 ]; then timing_summary PASS; else timing_summary "FAIL rc=$rc"; fi
    [ -d "$W/logs" ] && timing_summary "$([ "$rc" = 0 ] && echo PASS || echo "FAIL rc=$rc")" >"$W/logs/timing.txt" 2>/dev/null
    [ -d "$W/logs" ] && log "logs: $W/logs"
    true
  fi
  exit "$rc"
}

bring_up() {
  local cold=0
  cleanup_stale
  mkdir -p "$W/logs" "$W/run"
  : >"$W/logs/pids.tsv"
  echo "$CMD $$ $(proc_starttime $$)" >"$W/run/owner"
  phase install
  # The long Go builds (cold run only) start first and run in the background
  # while apt installs and the preflight runs.
  [ -n "${E2E_HELM_BIN:-}" ] || [ -x "$(tool_dir helm "$HELM_VERSION")/bin/helm" ] || cold=1
  [ -n "${E2E_MINIO_BIN:-}" ] || [ -x "$(tool_dir minio "$MINIO_VERSION")/bin/minio" ] || cold=1
  [ -n "${E2E_PROMETHEUS_BIN:-}" ] || [ -x "$(tool_dir prometheus "$PROMETHEUS_VERSION")/bin/prometheus" ] || cold=1
  [ -n "${E2E_ALERTMANAGER_BIN:-}" ] || [ -x "$(tool_dir alertmanager "$ALERTMANAGER_VERSION")/bin/alertmanager" ] || cold=1
  build_kubernetes
  k8s_cached || cold=1
  if [ $cold = 1 ]; then RUN_KIND=cold; else RUN_KIND=warm; fi
  start_tools
  install_apt
  preflight_host
  # From here on the host's kubepods cgroups, KUBE-* chains and kubelet paths
  # are this run's (the preflight found none): teardown may remove them.
  # Before, a refused preflight must leave another cluster alone; the EXIT
  # trap then only stops this run's background builds.
  snapshot_host
  TEARDOWN=1
  phase build
  build_e2e_programs
  finish_kubernetes
  finish_tools
  export PATH="$K8S_BIN:$PATH" KUBECACHEDIR="$W/kubecache"
  phase images
  build_images
  phase bring-up
  cluster_up
}

run_scenarios() {
  phase scenarios
  set -a
  # shellcheck disable=SC1091
  . "$W/e2e.env"
  set +a
  : >"$W/logs/scenarios.log"
  local args=(-test.v -test.timeout "${E2E_TIMEOUT:-30m}")
  [ -n "${E2E_RUN:-}" ] && args+=(-test.run "$E2E_RUN")
  [ "${E2E_BREAK_ATTRIBUTION:-}" = 1 ] && log "E2E_BREAK_ATTRIBUTION=1: the agent runs with --pod-source none; attribution scenarios are expected to FAIL"
  run_bg - "$E2E_DIR" "$W/bin/e2e.test" "${args[@]}"
}

# minio runs inside a scenario: its exit must not stop the run's background
# jobs (the scenarios themselves) or tear anything down.
if [ "$CMD" != minio ]; then
  trap on_exit EXIT
  trap 'on_signal INT' INT
  trap 'on_signal TERM' TERM
fi

case $CMD in
all)
  bring_up
  run_scenarios
  ;;
up)
  bring_up
  phase_end
  TEARDOWN=0 # leave it running
  log "cluster is up. Next: $0 test | $0 status | $0 down"
  log "  set -a; . $W/e2e.env; set +a   # KUBECONFIG and the scenario environment"
  ;;
test)
  any_alive || die "no running cluster in $W: '$0 up' first (or '$0' for a full run)"
  [ -f "$W/e2e.env" ] || die "$W/e2e.env missing"
  set -a
  # shellcheck disable=SC1091
  . "$W/e2e.env"
  set +a
  export PATH="$(dirname "$E2E_KUBECTL"):$PATH"
  phase build
  build_e2e_programs
  run_scenarios
  ;;
status)
  cluster_status
  ;;
minio)
  [ -f "$W/e2e.env" ] || die "$W/e2e.env missing: no cluster"
  MINIO_BIN=$(sed -n 's/^E2E_MINIO_SERVER=//p' "$W/e2e.env")
  case ${2:-} in
  stop)
    alive minio || die "MinIO is not running"
    stop_daemon minio
    log "MinIO stopped"
    ;;
  start)
    alive minio && die "MinIO is already running"
    [ -f "$W/logs/minio.log" ] && mv "$W/logs/minio.log" "$W/logs/minio.$(date +%s).log"
    start_minio
    waitfor "MinIO" 60 minio_ready || die "MinIO not ready after a restart (see $W/logs/minio.log)"
    log "MinIO started again"
    ;;
  *) die "usage: $0 minio stop|start" ;;
  esac
  ;;
down)
  TEARDOWN=1 # the EXIT trap tears down and verifies
  ;;
clean)
  TEARDOWN=1
  CLEAN_AFTER=1
  ;;
esac
