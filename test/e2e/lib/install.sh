# shellcheck shell=bash
# Installing and building what the harness needs, idempotently. Sourced by
# run.sh after lib/common.sh.

# apt packages: etcd, containerd, runc, CNI plugins (loopback), iptables;
# plus the small tools the scripts use, only if their command is missing.
install_apt() {
  local missing=() p cmd
  for p in "${APT_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  for cmd in openssl:openssl curl:curl ss:iproute2 ip:iproute2 nsenter:util-linux flock:util-linux \
    findmnt:util-linux setsid:util-linux umount:mount awk:gawk; do
    command -v "${cmd%%:*}" >/dev/null || missing+=("${cmd#*:}")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt: all present (${APT_PACKAGES[*]})"
    return 0
  fi
  log "apt: installing ${missing[*]}"
  apt-get update -qq || die "apt-get update failed"
  # No recommends. The harness runs its own containerd; on a systemd host apt
  # also starts containerd.service, which the harness neither needs nor stops.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$W/logs/apt.log" 2>&1 ||
    { tail -20 "$W/logs/apt.log" >&2; die "apt-get install failed"; }
}

# Pinned tools built with `go install` into $E2E_CACHE/tools/NAME-VERSION/bin,
# once. Cold builds run in the background, alongside the Kubernetes build.
tool_dir() { echo "$E2E_CACHE/tools/$1-$2"; }
tool_start() { # tool_start NAME MODULE VERSION
  local dir; dir=$(tool_dir "$1" "$3")
  [ -x "$dir/bin/$1" ] && return 0
  log "building $1 $3 (once, cached in $dir)"
  mkdir -p "$dir"
  rm -rf "$dir/bin.tmp"
  start_bg "tool-$1" "$W/logs/build-$1.log" "$dir" env GOBIN="$dir/bin.tmp" "$GO" install -trimpath -ldflags "-s -w" "$2@$3"
}
tool_finish() { # tool_finish NAME VERSION: wait for a cold build and move it in place
  local dir; dir=$(tool_dir "$1" "$2")
  if [ ! -x "$dir/bin/$1" ]; then
    wait_bg "tool-$1" || { tail -20 "$W/logs/build-$1.log" >&2; die "building $1 $2 failed"; }
    rm -rf "$dir/bin" && mv "$dir/bin.tmp" "$dir/bin"
  fi
}

# E2E_MINIO_BIN, E2E_HELM_BIN: a MinIO server / helm binary built elsewhere
# at the same pinned version (the root Makefile's `make tools` puts both in
# ./bin): used as is, which saves a cold run building them again.
# E2E_PROMETHEUS_BIN, E2E_ALERTMANAGER_BIN: the same for the on-call
# scenario's servers (make e2e builds both into ./bin).
start_tools() {
  [ -n "${E2E_HELM_BIN:-}" ] || tool_start helm "$HELM_MODULE" "$HELM_VERSION"
  [ -n "${E2E_MINIO_BIN:-}" ] || tool_start minio "$MINIO_MODULE" "$MINIO_VERSION"
  [ -n "${E2E_PROMETHEUS_BIN:-}" ] || tool_start prometheus "$PROMETHEUS_MODULE" "$PROMETHEUS_VERSION"
  if [ -z "${E2E_ALERTMANAGER_BIN:-}" ] && [ ! -x "$(tool_dir alertmanager "$ALERTMANAGER_VERSION")/bin/alertmanager" ]; then
    local dir; dir=$(tool_dir alertmanager "$ALERTMANAGER_VERSION")
    log "building alertmanager $ALERTMANAGER_VERSION (once, cached in $dir)"
    mkdir -p "$dir" && rm -rf "$dir/bin.tmp"
    start_bg tool-alertmanager "$W/logs/build-alertmanager.log" "$dir" env GO="$GO" "$E2E_DIR/lib/build-alertmanager.sh" "$ALERTMANAGER_VERSION" "$dir/bin.tmp"
  fi
}
# tool_bin VAR NAME VERSION OVERRIDE: set VAR to the binary to use:
# OVERRIDE, else the cached build (waited for here: a $(...) subshell could
# not wait for the background build).
tool_bin() {
  if [ -n "$4" ]; then
    [ -x "$4" ] || die "E2E_${2^^}_BIN=$4 is not an executable"
    printf -v "$1" %s "$4"
  else
    tool_finish "$2" "$3"
    printf -v "$1" %s "$(tool_dir "$2" "$3")/bin/$2"
  fi
}
finish_tools() {
  if [ -n "${E2E_HELM_BIN:-}" ]; then
    [ -x "$E2E_HELM_BIN" ] || die "E2E_HELM_BIN=$E2E_HELM_BIN is not an executable"
    HELM_BIN=$E2E_HELM_BIN
  else
    tool_finish helm "$HELM_VERSION"
    HELM_BIN=$(tool_dir helm "$HELM_VERSION")/bin/helm
  fi
  if [ -n "${E2E_MINIO_BIN:-}" ]; then
    [ -x "$E2E_MINIO_BIN" ] || die "E2E_MINIO_BIN=$E2E_MINIO_BIN is not an executable"
    MINIO_BIN=$E2E_MINIO_BIN
  else
    tool_finish minio "$MINIO_VERSION"
    MINIO_BIN=$(tool_dir minio "$MINIO_VERSION")/bin/minio
  fi
  tool_bin PROMETHEUS_BIN prometheus "$PROMETHEUS_VERSION" "${E2E_PROMETHEUS_BIN:-}"
  tool_bin ALERTMANAGER_BIN alertmanager "$ALERTMANAGER_VERSION" "${E2E_ALERTMANAGER_BIN:-}"
}

# Kubernetes binaries, built once per (version, go.sum, Go version) into
# $E2E_CACHE/k8s/<key>/bin (in the background: finish_kubernetes waits). E2E_K8S_VERSION other than the pinned one
# generates a build module for it under $E2E_CACHE/kbuild-src/.
build_kubernetes() {
  local src=$E2E_DIR/kbuild pinned
  pinned=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$src/go.mod")
  K8S_VERSION=${E2E_K8S_VERSION:-$pinned}
  if [ "$K8S_VERSION" != "$pinned" ]; then
    local alt=$E2E_CACHE/kbuild-src/$K8S_VERSION
    if [ ! -f "$alt/go.sum" ]; then
      log "generating a build module for Kubernetes $K8S_VERSION (pinned: $pinned)"
      mkdir -p "$alt" && cp "$src"/{tools.go,build.sh,gen-gomod.sh} "$alt/"
      "$alt/gen-gomod.sh" "$K8S_VERSION" "$alt" >"$W/logs/kbuild-gen.log" 2>&1 ||
        { tail -20 "$W/logs/kbuild-gen.log" >&2; die "gen-gomod.sh $K8S_VERSION failed"; }
    fi
    src=$alt
  fi
  local key
  key=$K8S_VERSION-$("$GO" env GOVERSION)-$(sha256sum "$src/go.sum" | cut -c1-12)
  K8S_BIN=$E2E_CACHE/k8s/$key/bin
  if k8s_cached; then
    log "Kubernetes $K8S_VERSION: cached in $K8S_BIN"
    return 0
  fi
  log "building Kubernetes $K8S_VERSION (cold: several minutes; cached in $K8S_BIN)"
  rm -rf "$K8S_BIN.tmp"
  PATH=$(dirname "$GO"):$PATH start_bg kubernetes "$W/logs/build-kubernetes.log" "$src" "$src/build.sh" "$K8S_BIN.tmp"
}
k8s_cached() {
  local c
  for c in kube-apiserver kubelet kube-controller-manager kube-scheduler kubectl; do [ -x "$K8S_BIN/$c" ] || return 1; done
}
finish_kubernetes() {
  k8s_cached && return 0
  wait_bg kubernetes || { tail -30 "$W/logs/build-kubernetes.log" >&2; die "building Kubernetes failed"; }
  rm -rf "$K8S_BIN" && mv "$K8S_BIN.tmp" "$K8S_BIN"
}

# The harness's own Go programs and the scenario test binary (quick when
# $GOCACHE is warm; always rebuilt, since the sources change).
build_e2e_programs() {
  mkdir -p "$W/bin"
  run_bg "$W/logs/build-e2e.log" "$E2E_DIR" "$GO" build -trimpath -o "$W/bin/" ./cmd/imgtool ./cmd/pause ./cmd/createdump-emulator ||
    { cat "$W/logs/build-e2e.log" >&2; die "building the e2e programs failed"; }
  run_bg "$W/logs/build-e2e-test.log" "$E2E_DIR" "$GO" test -c -trimpath -tags e2e -o "$W/bin/e2e.test" . ||
    { cat "$W/logs/build-e2e-test.log" >&2; die "building the scenarios failed"; }
}

# Image tarballs: pause, the createdump emulator and the agent: the release's
# multi-arch OCI archive (E2E_RELEASE_DIR), else one built from a static
# agent binary (E2E_AGENT_BINARY).
build_images() {
  local it=$W/bin/imgtool
  mkdir -p "$W/images"
  "$it" --binary "$W/bin/pause" --path /pause --name "$PAUSE_IMAGE" --out "$W/images/pause.tar" 2>>"$W/logs/images.log" || die "pause image"
  # The emulator is the "crashing .NET app": /app/crashapp, so %e and comm are "crashapp".
  "$it" --binary "$W/bin/createdump-emulator" --path /app/crashapp --workdir /app --name "$EMULATOR_IMAGE" \
    --out "$W/images/createdump-emulator.tar" 2>>"$W/logs/images.log" || die "emulator image"
  AGENT_IMAGE_BUILT=""
  if [ -n "${E2E_RELEASE_DIR:-}" ]; then
    use_release
  elif [ -n "${E2E_AGENT_BINARY:-}" ]; then
    [ -f "$E2E_AGENT_BINARY" ] || die "E2E_AGENT_BINARY=$E2E_AGENT_BINARY does not exist"
    "$it" --binary "$E2E_AGENT_BINARY" --path /crashdump --entrypoint /crashdump --name "$AGENT_IMAGE" \
      --out "$W/images/agent.tar" 2>>"$W/logs/images.log" || die "agent image from $E2E_AGENT_BINARY (must be static: CGO_ENABLED=0)"
    AGENT_IMAGE_BUILT=$AGENT_IMAGE
  else
    log "no E2E_AGENT_BINARY: no agent image; scenarios that need the agent will skip"
  fi
}

# use_release takes the agent from the release artifacts, as a user installs
# it: every artifact checked against SHA256SUMS; the image is the OCI archive
# (imported with --all-platforms), the CLI the binary of this machine's krew
# archive, the chart the packaged one (run.sh).
use_release() {
  local d=$E2E_RELEASE_DIR arch
  [ -f "$d/SHA256SUMS" ] || die "E2E_RELEASE_DIR=$d has no SHA256SUMS (make release)"
  (cd "$d" && sha256sum -c --quiet SHA256SUMS) >>"$W/logs/images.log" 2>&1 ||
    { cat "$W/logs/images.log" >&2; die "release artifacts in $d do not match their SHA256SUMS"; }
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) die "no release archive for $(uname -m)" ;; esac
  rm -rf "$W/bin/release" && mkdir -p "$W/bin/release"
  tar -xzf "$d/crashdump_linux_$arch.tar.gz" -C "$W/bin/release" || die "unpack crashdump_linux_$arch.tar.gz"
  E2E_AGENT_BINARY=$W/bin/release/crashdump
  [ -x "$E2E_AGENT_BINARY" ] || die "crashdump_linux_$arch.tar.gz holds no crashdump binary"
  cp "$d/crashdump-image.oci.tar" "$W/images/agent.tar"
  AGENT_IMAGE_BUILT=$AGENT_IMAGE
  log "agent from the release in $d: image $AGENT_IMAGE, chart $(basename "$E2E_CHART"), CLI $("$E2E_AGENT_BINARY" version | head -1)"
}
