# shellcheck shell=bash
# Shared settings and helpers of the e2e harness (sourced by run.sh and
# verify-clean.sh). Everything the harness creates lives under $E2E_WORK;
# everything it downloads or builds for reuse lives under $E2E_CACHE.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)

E2E_CACHE=${E2E_CACHE:-$HOME/.cache/crashdump-e2e}
E2E_WORK=${E2E_WORK:-/var/tmp/crashdump-e2e}
W=$E2E_WORK

# Pinned tool versions (built from source through the Go module proxy).
HELM_MODULE=helm.sh/helm/v3/cmd/helm
HELM_VERSION=${E2E_HELM_VERSION:-v3.22.0}
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=${E2E_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c} # AGPL: installed as a tool binary only, never imported
PROMETHEUS_MODULE=github.com/prometheus/prometheus/cmd/prometheus
PROMETHEUS_VERSION=${E2E_PROMETHEUS_VERSION:-v0.316.0} # Prometheus 3.16.0, the module of the root Makefile's promtool
ALERTMANAGER_VERSION=${E2E_ALERTMANAGER_VERSION:-v0.35.0}
# awscli and zstd: the third-party S3 client and decompressor the on-call
# scenario reads our objects with (Debian's, as /usr/bin/aws: checked by
# package, since another aws on PATH, a pyenv shim say, is not Debian's).
APT_PACKAGES=(etcd-server containerd runc containernetworking-plugins iptables awscli zstd)

# The node is named after its address: with --hostname-override=127.0.0.1 the
# kubelet reports 127.0.0.1 as the node address (see start_kubelet).
NODE_NAME=${E2E_NODE_NAME:-127.0.0.1}
SOCK=$W/run/containerd.sock
ADMIN_KUBECONFIG=$W/admin.kubeconfig

# Every TCP port the harness (or what it runs) listens on; all on 127.0.0.1.
PORT_ETCD_CLIENT=2379
PORT_ETCD_PEER=2380
PORT_ETCD_METRICS=2381
PORT_APISERVER=6443
PORT_KUBELET=10250
PORT_KUBELET_HEALTHZ=10248
PORT_KCM=10257
PORT_SCHEDULER=10259
PORT_MINIO=${E2E_MINIO_PORT:-19000}
PORT_AGENT_METRICS=9102 # what the agent chart is expected to bind to 127.0.0.1 with hostNetwork
PORT_PROMETHEUS=19090   # the on-call scenario's Prometheus and Alertmanager (started by the scenarios)
PORT_ALERTMANAGER=19093
HARNESS_PORTS=($PORT_ETCD_CLIENT $PORT_ETCD_PEER $PORT_ETCD_METRICS $PORT_APISERVER $PORT_KUBELET
  $PORT_KUBELET_HEALTHZ $PORT_KCM $PORT_SCHEDULER $PORT_MINIO $PORT_AGENT_METRICS $PORT_PROMETHEUS $PORT_ALERTMANAGER)

# Host paths outside $W that the kubelet / containerd / CNI create on their
# own (hard-coded in them). The harness records which existed before the run
# and removes the ones it created.
# /var/lib/crashdump is the agent's default dump/state root: scenarios point the
# chart at $E2E_HOST_DIR instead, and the check catches one that does not.
HOST_PATHS=(/var/lib/kubelet /var/lib/kubelet/device-plugins /var/lib/cni /var/lib/cni/results
  /var/log/containers /var/log/pods /run/containerd /run/containerd/s /run/kubernetes /etc/kubernetes
  /var/lib/crashdump)
# Host sysctls the kubelet sets at start (setupKernelTunables); restored on teardown.
KUBELET_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes)

# Go: our own caches so that a cold run is `rm -rf $E2E_CACHE` and nothing
# else on the machine (other go builds, go clean) changes warm-run timing.
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOMODCACHE=${E2E_GOMODCACHE:-$E2E_CACHE/gomod}
export GOCACHE=${E2E_GOCACHE:-$E2E_CACHE/gocache}
export GOTOOLCHAIN=local
export GOFLAGS="-modcacherw -buildvcs=false"
export CGO_ENABLED=0

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---- timing -------------------------------------------------------------
declare -A PHASE_SECS=()
PHASE_ORDER=()
CUR_PHASE=""
CUR_PHASE_T0=0
now() { date +%s.%N; }
phase() { # phase NAME: end the current phase, start NAME (phases may repeat; time adds up)
  phase_end
  CUR_PHASE=$1
  CUR_PHASE_T0=$(now)
  [[ -v "PHASE_SECS[$1]" ]] || { PHASE_SECS[$1]=0; PHASE_ORDER+=("$1"); }
  log "==== $1"
}
phase_end() {
  [ -n "$CUR_PHASE" ] || return 0
  PHASE_SECS[$CUR_PHASE]=$(awk -v a="${PHASE_SECS[$CUR_PHASE]}" -v t0="$CUR_PHASE_T0" -v t1="$(now)" 'BEGIN{printf "%.1f", a+t1-t0}')
  CUR_PHASE=""
}
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
timing_summary() { # timing_summary RESULT
  local total=0 p
  printf '\n==== e2e timing summary (%s, %s run) ====\n' "$1" "${RUN_KIND:-?}"
  printf '  (%s CPUs; load average %s at start, %s at end)\n' "$(nproc)" "$LOAD_AT_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
  for p in "${PHASE_ORDER[@]}"; do
    printf '  %-10s %7.1fs\n' "$p" "${PHASE_SECS[$p]}"
    total=$(awk -v a="$total" -v b="${PHASE_SECS[$p]}" 'BEGIN{print a+b}')
  done
  printf '  %-10s %7.1fs\n' total "$total"
  # each scenario's own time (go test -v result lines)
  if [ -f "$W/logs/scenarios.log" ] && grep -qE '^ *--- (PASS|FAIL|SKIP)' "$W/logs/scenarios.log"; then
    echo "  scenarios:"
    grep -E '^ *--- (PASS|FAIL|SKIP)' "$W/logs/scenarios.log" | sed 's/^/    /'
  fi
  # CPU time of everything the harness ran and waited for (builds, daemons,
  # tests): what the run costs on an idle machine, whatever the load was.
  local st
  st=$(cat "/proc/$$/stat")
  st=${st##*) }
  # shellcheck disable=SC2086
  set -- $st
  awk -v u="${14}" -v s="${15}" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "  (CPU time of everything it ran: user %.0fs + sys %.0fs = %.1f min)\n", u/hz, s/hz, (u+s)/hz/60 }'
}

# ---- processes ------------------------------------------------------------
# Start time (clock ticks since boot) of a PID: with the PID it identifies a
# process even if the PID is reused later.
proc_starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }

# start_daemon NAME CMD...: start in its own session (an interactive ^C goes to
# the harness, which then tears down in order), log to $W/logs/NAME.log,
# record the PID in $W/run/NAME.pid and in the append-only $W/logs/pids.tsv.
start_daemon() {
  local name=$1; shift
  setsid "$@" >"$W/logs/$name.log" 2>&1 </dev/null 9>&- &
  local pid=$!
  echo "$pid" >"$W/run/$name.pid"
  printf '%s\t%s\t%s\n' "$name" "$pid" "$(proc_starttime "$pid" || echo 0)" >>"$W/logs/pids.tsv"
}

# alive NAME: the recorded process still runs (same PID and start time).
alive() {
  local f=$W/run/$1.pid pid st
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  st=$(awk -F'\t' -v p="$pid" '$2==p {s=$3} END{print s}' "$W/logs/pids.tsv" 2>/dev/null)
  [ -n "$pid" ] && [ "$(proc_starttime "$pid" 2>/dev/null)" = "$st" ]
}

# stop_daemons TIMEOUT_S NAME...: SIGTERM to all, wait up to TIMEOUT_S for
# all, SIGKILL the rest.
stop_daemons() {
  local t=$1 n i left; shift
  for n in "$@"; do alive "$n" && kill -TERM "$(cat "$W/run/$n.pid")" 2>/dev/null; done
  for ((i = 0; i < t * 10; i++)); do
    left=0
    for n in "$@"; do alive "$n" && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for n in "$@"; do
    if alive "$n"; then log "$n ($(cat "$W/run/$n.pid")) ignored SIGTERM for ${t}s: SIGKILL"; kill -KILL "$(cat "$W/run/$n.pid")" 2>/dev/null; fi
  done
  for n in "$@"; do
    for ((i = 0; i < 20; i++)); do alive "$n" || break; sleep 0.1; done
    rm -f "$W/run/$n.pid"
  done
}
stop_daemon() { stop_daemons "${2:-10}" "$1"; } # stop_daemon NAME [TIMEOUT_S]

# waitfor DESCRIPTION TIMEOUT_S CMD...: poll CMD every 0.25 s.
waitfor() {
  local what=$1 t=$2 deadline; shift 2
  deadline=$(($(date +%s) + t))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { log "timed out after ${t}s waiting for $what"; return 1; }
    sleep 0.25
  done
}

# Processes in our kubepods cgroups (container processes), any hierarchy.
# One grep over all of /proc: no fork per process.
kubepods_pids() {
  grep -ls ':/kubepods' /proc/[0-9]*/cgroup 2>/dev/null | awk -F/ '{print $3}'
}

# containerd shims started by our containerd (an argument is our socket: -address $SOCK).
our_shim_pids() {
  local f p comm
  for f in $(grep -lzxsF -- "$SOCK" /proc/[0-9]*/cmdline 2>/dev/null); do
    p=${f#/proc/}; p=${p%/cmdline}
    read -r comm 2>/dev/null <"/proc/$p/comm" || continue
    [[ $comm == containerd-shim* ]] && echo "$p"
  done
}

# Mount points at or below $W, deepest first.
mounts_under_work() {
  awk -v w="$W" '{ t=$5; gsub(/\\040/, " ", t); if (t == w || index(t, w "/") == 1) print t }' /proc/self/mountinfo | sort -r
}

cgroup_roots() { # every cgroup hierarchy root (v1 controllers, v1 named, v2)
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; return; fi
  local d
  for d in /sys/fs/cgroup/*/; do [ -L "${d%/}" ] || echo "${d%/}"; done
}

kube_chains() { # "<tool> <table> <chain>" for every KUBE-* chain
  local ipt
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    "$ipt-save" 2>/dev/null | awk -v t="$ipt" '/^\*/ {tbl=substr($0,2)} /^:KUBE-/ {print t, tbl, substr($1,2)}'
  done
}

listening_on() { # listening_on PORT: something listens on this TCP port
  ss -Htln "sport = :$1" 2>/dev/null | grep -q .
}

kc() { kubectl --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# Background jobs. start_bg NAME LOG DIR CMD... runs CMD in DIR in its own
# process group (teardown can stop the whole group), recorded as
# $W/run/bg-NAME.pid and in pids.tsv; wait_bg NAME waits for it with the
# `wait` builtin, which - unlike a foreground child or a subshell - lets
# INT/TERM run the harness's traps at once. LOG "-" also shows the output.
start_bg() {
  local name=$1 out=$2 dir=$3 pid; shift 3
  if [ "$out" = - ]; then
    setsid bash -c 'cd "$0" && exec "$@"' "$dir" "$@" > >(tee -a "$W/logs/scenarios.log") 2>&1 9>&- &
  else
    setsid bash -c 'cd "$0" && exec "$@"' "$dir" "$@" >"$out" 2>&1 9>&- &
  fi
  pid=$!
  echo "$pid" >"$W/run/bg-$name.pid"
  printf '%s\t%s\t%s\n' "bg-$name" "$pid" "$(proc_starttime "$pid" || echo 0)" >>"$W/logs/pids.tsv"
}
wait_bg() {
  local f=$W/run/bg-$1.pid rc=0
  [ -f "$f" ] || return 0
  wait "$(cat "$f")" || rc=$?
  rm -f "$f"
  return $rc
}
run_bg() { start_bg job "$@" && wait_bg job; } # run_bg LOG DIR CMD...

# stop_bg: stop the process groups of background jobs (ours, or ones left
# by a harness that was killed).
stop_bg() {
  local f n pids=()
  for f in "$W"/run/bg-*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid)
    alive "$n" && pids+=("$(cat "$f")")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    for n in "${pids[@]}"; do kill -TERM -- "-$n" 2>/dev/null; done
    sleep 1
    for n in "${pids[@]}"; do kill -KILL -- "-$n" 2>/dev/null; done
  fi
  rm -f "$W"/run/bg-*.pid
}
