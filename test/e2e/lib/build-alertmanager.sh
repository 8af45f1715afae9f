#!/usr/bin/env bash
# build-alertmanager.sh VERSION OUTDIR: build the Alertmanager server at the
# pinned VERSION into OUTDIR/alertmanager, from its module source.
#
# `go install github.com/prometheus/alertmanager/cmd/alertmanager@VERSION`
# fails: ui/web.go embeds app/dist, the web UI that its release process
# builds with npm and that the module zip leaves out. The e2e needs the API
# and the notification pipeline only, so the module source is copied and
# built with a one-page placeholder in app/dist; everything else is the
# pinned release's code, unchanged.
set -euo pipefail
v=${1:?version} out=${2:?output directory}
GO=${GO:-go}
mod=github.com/prometheus/alertmanager
dir=$(cd / && "$GO" mod download -json "$mod@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-alertmanager: go mod download $mod@$v gave no source directory" >&2; exit 1; }
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
cp -r "$dir/." "$src/"
chmod -R u+w "$src"
for ui in elm mantine; do
  mkdir -p "$src/ui/app/dist/$ui"
  echo '<!doctype html><title>Alertmanager</title><p>Web UI not built (crashdump e2e: API only).</p>' >"$src/ui/app/dist/$ui/index.html"
done
mkdir -p "$out"
cd "$src"
"$GO" build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=${v#v} -X github.com/prometheus/common/version.Branch=release" \
  -o "$out/alertmanager" ./cmd/alertmanager
