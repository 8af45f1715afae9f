#!/usr/bin/env bash
# Builds the Kubernetes components pinned in go.mod into OUTDIR (static,
# stripped, version stamped). Used by ../run.sh, which caches OUTDIR per
# version; running it by hand is fine too.
#
#   usage: build.sh OUTDIR
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ver=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/go.mod")
[[ $ver =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || { echo "build.sh: cannot read the k8s.io/kubernetes version from go.mod" >&2; exit 1; }
minor=${BASH_REMATCH[1]}
export CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS="${GOFLAGS:-} -modcacherw -mod=readonly"
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $p.gitVersion=$ver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
cmds=(kube-apiserver kubelet kube-controller-manager kube-scheduler kubectl)
pkgs=(); for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
mkdir -p "$out"
cd "$here"
go build -trimpath -ldflags "$ld" -o "$out/" "${pkgs[@]}"
for c in "${cmds[@]}"; do [ -x "$out/$c" ] || { echo "build.sh: $out/$c missing" >&2; exit 1; }; done
echo "$ver" >"$out/VERSION"
