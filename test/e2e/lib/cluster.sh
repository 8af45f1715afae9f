# shellcheck shell=bash
# Bring-up, teardown and status of the single-node e2e cluster. Sourced by
# run.sh after lib/common.sh. All listeners are on 127.0.0.1.

render() { # render TEMPLATE OUT: substitute @W@ and friends
  sed -e "s#@W@#$W#g" -e "s#@PAUSE_IMAGE@#$PAUSE_IMAGE#g" \
    -e "s#@PORT_KUBELET@#$PORT_KUBELET#g" -e "s#@PORT_KUBELET_HEALTHZ@#$PORT_KUBELET_HEALTHZ#g" \
    "$1" >"$2"
}

# Per-run PKI (valid 2 days): a CA, service-account keys, serving certs for the apiserver
# and kubelet (127.0.0.1), client certs for admin, the apiserver->kubelet
# client and the kubelet.
gen_certs() {
  local P=$W/pki
  mkdir -p "$P"
  (
    cd "$P" || exit 1
    set -e
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -subj "/CN=crashdump-e2e-ca" -days 2 -out ca.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    mk() { # name cn org sans eku
      local subj="/CN=$2"
      [ -n "$3" ] && subj="/O=$3/CN=$2"
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -subj "$subj" -out "$1.csr" 2>/dev/null
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$5"
        [ -n "$4" ] && echo "subjectAltName=$4"
      } >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    mk apiserver kube-apiserver "" "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" serverAuth
    mk admin crashdump-e2e-admin system:masters "" clientAuth
    mk apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" clientAuth
    mk kubelet-client "system:node:$NODE_NAME" system:nodes "" clientAuth
    mk kubelet-serving "system:node:$NODE_NAME" system:nodes "IP:127.0.0.1,DNS:localhost" serverAuth
    chmod 600 ./*.key
  )
}

write_kubeconfig() { # write_kubeconfig FILE CERT KEY
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: crashdump-e2e
  cluster:
    server: https://127.0.0.1:$PORT_APISERVER
    certificate-authority: $W/pki/ca.crt
users:
- name: user
  user:
    client-certificate: $2
    client-key: $3
contexts:
- name: crashdump-e2e
  context: {cluster: crashdump-e2e, user: user}
current-context: crashdump-e2e
EOF
  chmod 600 "$1"
}

prepare_work_dir() {
  mkdir -p "$W"/{run,logs,pki,etcd,containerd/{root,state,opt},kubelet/{root,pki,pod-logs,volume-plugins},cni/{bin,net.d},config,tmp,images,minio/{data,certs,home},helm/{cache,config,data},kubecache,hostdata}
  render "$E2E_DIR/config/containerd.toml.in" "$W/config/containerd.toml"
  render "$E2E_DIR/config/kubelet.yaml.in" "$W/config/kubelet.yaml"
  render "$E2E_DIR/config/cni/crashdump-e2e" "$W/cni/bin/crashdump-e2e"
  chmod 755 "$W/cni/bin/crashdump-e2e"
  cp "$E2E_DIR/config/cni/10-crashdump-e2e.conflist" "$W/cni/net.d/"
  ln -sf /usr/lib/cni/loopback "$W/cni/bin/loopback" # containerd's CRI always sets up lo
  gen_certs
  write_kubeconfig "$ADMIN_KUBECONFIG" "$W/pki/admin.crt" "$W/pki/admin.key"
  write_kubeconfig "$W/kubelet.kubeconfig" "$W/pki/kubelet-client.crt" "$W/pki/kubelet-client.key"
  MINIO_ACCESS_KEY=e2e-$(openssl rand -hex 4)
  MINIO_SECRET_KEY=$(openssl rand -hex 16)
  printf 'MINIO_ACCESS_KEY=%s\nMINIO_SECRET_KEY=%s\n' "$MINIO_ACCESS_KEY" "$MINIO_SECRET_KEY" >"$W/run/minio.creds"
  chmod 600 "$W/run/minio.creds"
}

start_etcd() {
  local extra=()
  /usr/bin/etcd --help 2>&1 | grep -q -- --unsafe-no-fsync && extra+=(--unsafe-no-fsync) # throwaway data
  start_daemon etcd /usr/bin/etcd --name e2e --data-dir "$W/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$PORT_ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$PORT_ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$PORT_ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PORT_ETCD_PEER" \
    --initial-cluster "e2e=http://127.0.0.1:$PORT_ETCD_PEER" --listen-metrics-urls "http://127.0.0.1:$PORT_ETCD_METRICS" \
    "${extra[@]}"
}

start_containerd() {
  # TMPDIR: containerd 1.6 makes its temporary image-unpack mounts there.
  start_daemon containerd env TMPDIR="$W/tmp" /usr/bin/containerd --config "$W/config/containerd.toml"
}

start_apiserver() {
  local P=$W/pki
  start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$PORT_ETCD_CLIENT" \
    --bind-address=127.0.0.1 --secure-port="$PORT_APISERVER" --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none --cert-dir="$P/apiserver-generated" \
    --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
    --allow-privileged=true --profiling=false
}

start_controllers() {
  local KC=$ADMIN_KUBECONFIG
  start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$KC" --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port="$PORT_KCM" --leader-elect=false \
    --service-account-private-key-file="$W/pki/sa.key" --root-ca-file="$W/pki/ca.crt" \
    --use-service-account-credentials=true --profiling=false \
    --controllers='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller'
  start_daemon kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$KC" --authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" \
    --bind-address=127.0.0.1 --secure-port="$PORT_SCHEDULER" --leader-elect=false --profiling=false
}

start_kubelet() {
  # --hostname-override=127.0.0.1 with no --node-ip: the kubelet then reports
  # 127.0.0.1 as the node's address (a loopback --node-ip is refused), so the
  # apiserver reaches it for logs/exec and https://$NODE_NAME:10250 works.
  start_daemon kubelet "$K8S_BIN/kubelet" --config="$W/config/kubelet.yaml" \
    --kubeconfig="$W/kubelet.kubeconfig" --root-dir="$W/kubelet/root" --cert-dir="$W/kubelet/pki" \
    --hostname-override="$NODE_NAME" --v=2
}

start_minio() {
  # shellcheck disable=SC1091
  . "$W/run/minio.creds"
  start_daemon minio env -i PATH=/usr/bin:/bin HOME="$W/minio/home" \
    MINIO_ROOT_USER="$MINIO_ACCESS_KEY" MINIO_ROOT_PASSWORD="$MINIO_SECRET_KEY" \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    "$MINIO_BIN" server --quiet --address "127.0.0.1:$PORT_MINIO" --certs-dir "$W/minio/certs" "$W/minio/data"
}

import_images() {
  local t
  for t in "$W"/images/*.tar; do
    ctr -a "$SOCK" -n k8s.io images import --all-platforms "$t" >>"$W/logs/images.log" 2>&1 ||
      { cat "$W/logs/images.log" >&2; die "ctr import $t failed"; }
  done
  ctr -a "$SOCK" -n k8s.io images ls -q >>"$W/logs/images.log" 2>&1
}

apiserver_ready() { kc get --raw /readyz; }
node_ready() { kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s; }
default_sa() { kc -n default get serviceaccount default; }
# Ready, and ours: the listener on the port is the MinIO this run started
# (a server started on the port after the preflight answered the health
# check and the scenarios, with other credentials, once).
minio_ready() {
  curl -sf "http://127.0.0.1:$PORT_MINIO/minio/health/live" &&
    ss -Htlnp "sport = :$PORT_MINIO" | grep -q "pid=$(cat "$W/run/minio.pid"),"
}
healthz_kcm_sched() { curl -sfk "https://127.0.0.1:$PORT_KCM/healthz" && curl -sfk "https://127.0.0.1:$PORT_SCHEDULER/healthz"; }

cluster_up() {
  prepare_work_dir
  start_etcd
  start_containerd
  start_minio
  waitfor "etcd" 60 curl -sf "http://127.0.0.1:$PORT_ETCD_CLIENT/health"
  start_apiserver
  phase images
  waitfor "containerd" 60 ctr -a "$SOCK" version
  import_images
  phase bring-up
  waitfor "kube-apiserver" 180 apiserver_ready || die "kube-apiserver not ready (see $W/logs/kube-apiserver.log)"
  start_controllers
  start_kubelet
  waitfor "node $NODE_NAME Ready" 180 node_ready || die "node not Ready (see $W/logs/kubelet.log)"
  waitfor "controller-manager and scheduler" 60 healthz_kcm_sched || die "controllers not healthy"
  waitfor "default service account" 60 default_sa || die "no default service account"
  waitfor "MinIO" 60 minio_ready || die "MinIO not ready, or another process listens on 127.0.0.1:$PORT_MINIO ($(ss -Htlnp "sport = :$PORT_MINIO" | head -1)); see $W/logs/minio.log"
  write_env_file
  log "cluster up: node $NODE_NAME Ready; KUBECONFIG=$ADMIN_KUBECONFIG"
}

# The contract between the harness and the scenarios (scenarios_test.go).
write_env_file() {
  # shellcheck disable=SC1091
  . "$W/run/minio.creds"
  cat >"$W/e2e.env" <<EOF
E2E_WORK=$W
E2E_KUBECONFIG=$ADMIN_KUBECONFIG
KUBECONFIG=$ADMIN_KUBECONFIG
KUBECACHEDIR=$W/kubecache
E2E_NODE_NAME=$NODE_NAME
E2E_KUBELET_URL=https://127.0.0.1:$PORT_KUBELET
E2E_CA_FILE=$W/pki/ca.crt
E2E_CONTAINERD_SOCKET=$SOCK
E2E_POD_LOGS_DIR=$W/kubelet/pod-logs
E2E_HOST_DIR=$W/hostdata
E2E_ARTIFACTS=$W/logs
E2E_KUBECTL=$K8S_BIN/kubectl
E2E_HELM=$HELM_BIN
E2E_K8S_VERSION=$K8S_VERSION
E2E_S3_ENDPOINT=http://127.0.0.1:$PORT_MINIO
E2E_S3_REGION=us-east-1
E2E_S3_BUCKET=${E2E_S3_BUCKET:-crashdump-e2e}
E2E_S3_ACCESS_KEY=$MINIO_ACCESS_KEY
E2E_S3_SECRET_KEY=$MINIO_SECRET_KEY
E2E_PAUSE_IMAGE=$PAUSE_IMAGE
E2E_EMULATOR_IMAGE=$EMULATOR_IMAGE
E2E_AGENT_IMAGE=${AGENT_IMAGE_BUILT:-}
E2E_AGENT_BINARY=${E2E_AGENT_BINARY:-}
E2E_CHART=${E2E_CHART:-}
E2E_AGENT_METRICS_PORT=$PORT_AGENT_METRICS
E2E_PROMETHEUS=$PROMETHEUS_BIN
E2E_PROMETHEUS_PORT=$PORT_PROMETHEUS
E2E_ALERTMANAGER=$ALERTMANAGER_BIN
E2E_ALERTMANAGER_PORT=$PORT_ALERTMANAGER
E2E_MINIO_CTL=$E2E_DIR/run.sh
E2E_MINIO_SERVER=$MINIO_BIN
HELM_CACHE_HOME=$W/helm/cache
HELM_CONFIG_HOME=$W/helm/config
HELM_DATA_HOME=$W/helm/data
EOF
  chmod 600 "$W/e2e.env"
}

# ---- teardown -------------------------------------------------------------

# Listening ports of everything we started, for verify-clean.
record_ports() {
  local pids=() f
  for f in "$W"/run/*.pid; do [ -f "$f" ] && pids+=("$(cat "$f")"); done
  pids+=($(our_shim_pids) $(kubepods_pids))
  [ ${#pids[@]} -gt 0 ] || return 0
  ss -Htlnp 2>/dev/null | awk -v list=" ${pids[*]} " '{
      if (match($0, /pid=[0-9]+,/)) { p = substr($0, RSTART + 4, RLENGTH - 5); if (index(list, " " p " ")) { n = split($4, a, ":"); print a[n] } }
    }' | sort -un >>"$W/logs/ports.txt"
}

cluster_down() {
  set +e
  [ -d "$W" ] || return 0
  mkdir -p "$W/logs" "$W/run"
  touch "$W/logs/pids.tsv"
  local t0=$SECONDS
  step() { log "teardown: $* (+$((SECONDS - t0))s)"; }
  record_ports
  stop_bg # a build or test binary left by a harness that was killed
  step "stopping controllers"
  # 0. controllers first, so nothing recreates pods
  stop_daemons 10 kube-controller-manager kube-scheduler
  step "deleting pods"
  # 1. let the kubelet stop pods (and unmount their volumes) in order
  if alive kube-apiserver && alive kubelet; then
    timeout 40 kubectl --kubeconfig "$ADMIN_KUBECONFIG" delete pods --all -A --grace-period=1 --wait=true --timeout=30s >/dev/null 2>&1
  fi
  step "stopping the kubelet"
  stop_daemon kubelet 15
  step "stopping containers and containerd"
  # 2. whatever still runs, through containerd; then containerd
  if alive containerd; then
    local c="ctr -a $SOCK -n k8s.io" id
    for id in $(timeout 10 $c tasks ls -q 2>/dev/null); do timeout 10 $c tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
    sleep 0.5
    for id in $(timeout 10 $c tasks ls -q 2>/dev/null); do timeout 10 $c tasks delete -f "$id" >/dev/null 2>&1; done
    for id in $(timeout 10 $c containers ls -q 2>/dev/null); do timeout 10 $c containers delete "$id" >/dev/null 2>&1; done
  fi
  stop_daemon containerd 15
  # 3. shims of OUR containerd (by their -address) and processes left in our
  #    kubepods cgroups (preflight refused to run if kubepods existed before;
  #    without its snapshot this run never owned them: leave them alone)
  local p owned=0
  [ -f "$W/logs/host-before.txt" ] && owned=1
  for p in $(our_shim_pids); do kill -KILL "$p" 2>/dev/null; done
  if [ $owned = 1 ]; then
    for p in $(kubepods_pids); do kill -KILL "$p" 2>/dev/null; done
  fi
  step "stopping MinIO, kube-apiserver, etcd"
  stop_daemons 10 minio kube-apiserver etcd
  step "unmounting, removing cgroups, chains, host paths"
  # 4. mounts below $W, deepest first (lazy as the last resort)
  local m i
  for i in 1 2 3; do
    while read -r m; do
      [ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
    done < <(mounts_under_work)
  done
  # 5. kubepods cgroups, deepest first; a cgroup is empty once its tasks died
  local root
  for i in 1 2 3 4 5; do
    [ $owned = 1 ] || break
    for root in $(cgroup_roots); do
      [ -d "$root/kubepods" ] && find "$root/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    [ -z "$(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null)" ] && break
    for p in $(kubepods_pids); do kill -KILL "$p" 2>/dev/null; done
    sleep 0.5
  done
  # 6. KUBE-* chains (the kubelet is told not to create them; belt and braces)
  local tool tbl chain rule
  while read -r tool tbl chain; do
    [ -n "$chain" ] || continue
    "$tool-save" -t "$tbl" 2>/dev/null | grep -E "^-A [^ ]+ .*-j $chain( |\$)" | sed 's/^-A/-D/' |
      while read -r rule; do eval "$tool -t $tbl $rule" 2>/dev/null; done
    "$tool" -t "$tbl" -F "$chain" 2>/dev/null
    "$tool" -t "$tbl" -X "$chain" 2>/dev/null
  done < <([ $owned = 1 ] && kube_chains)
  # 7. host paths the kubelet/containerd/CNI created outside $W, only those
  #    that did not exist before the run
  restore_host_paths
  # 8. sysctls the kubelet changed
  restore_sysctls
  # 9. state under $W; logs stay for post-mortems (run.sh clean removes them)
  if [ -z "$(mounts_under_work)" ]; then
    rm -rf "$W"/{etcd,containerd,kubelet,cni,tmp,images,minio,helm,kubecache,hostdata,pki,config,bin,oncall} \
      "$W"/*.kubeconfig "$W/e2e.env" "$W"/run/*.creds
  else
    log "teardown: mounts remain under $W, state not removed"
  fi
  step "done"
}

# ---- host snapshot (taken by preflight, used by teardown and verify-clean) --

snapshot_host() {
  local p s
  {
    for p in "${HOST_PATHS[@]}"; do
      if [ -e "$p" ]; then echo "path $p present"; else echo "path $p absent"; fi
    done
    for s in "${KUBELET_SYSCTLS[@]}"; do echo "sysctl $s $(cat "/proc/sys/$s" 2>/dev/null)"; done
  } >"$W/logs/host-before.txt"
}

restore_host_paths() {
  local f=$W/logs/host-before.txt p state
  [ -f "$f" ] || return 0
  # symlinks the kubelet made in /var/log/containers for our containers
  if [ -d /var/log/containers ]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$W/*" -delete 2>/dev/null
  fi
  # /run/containerd/s: sockets of our shims (hard-coded location in containerd 1.6)
  while read -r _ p state; do
    [ "$state" = absent ] || continue
    case $p in
    /run/containerd/s | /var/lib/kubelet/device-plugins | /var/lib/cni/results | /var/log/containers | /var/log/pods | /var/lib/crashdump)
      rm -rf "$p" 2>/dev/null ;;
    esac
  done < <(grep '^path ' "$f")
  # parents only if we created them and they are now empty
  while read -r _ p state; do
    [ "$state" = absent ] && [ -d "$p" ] && rmdir "$p" 2>/dev/null
  done < <(grep '^path ' "$f" | sort -k2 -r)
}

restore_sysctls() {
  local f=$W/logs/host-before.txt s v
  [ -f "$f" ] || return 0
  while read -r _ s v; do
    [ -n "$v" ] && [ "$(cat "/proc/sys/$s" 2>/dev/null)" != "$v" ] && echo "$v" >"/proc/sys/$s" 2>/dev/null
  done < <(grep '^sysctl ' "$f")
}

cluster_status() {
  local f n
  echo "work dir: $W"
  for f in "$W"/run/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid)
    if alive "$n"; then echo "  $n: running (pid $(cat "$f"))"; else echo "  $n: NOT running (stale pid $(cat "$f"))"; fi
  done
  echo "  shims of our containerd: $(our_shim_pids | wc -l), processes in kubepods: $(kubepods_pids | wc -l)"
  echo "  mounts under $W: $(mounts_under_work | wc -l)"
  echo "  kubepods cgroups: $(ls -d /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods 2>/dev/null | wc -l)"
  echo "  KUBE-* chains: $(kube_chains | wc -l)"
  if [ -f "$ADMIN_KUBECONFIG" ] && alive kube-apiserver; then
    kc get nodes -o wide 2>&1 | sed 's/^/  /'
    kc get pods -A -o wide 2>&1 | sed 's/^/  /'
    echo "  export KUBECONFIG=$ADMIN_KUBECONFIG   # or: set -a; . $W/e2e.env; set +a"
  fi
}
