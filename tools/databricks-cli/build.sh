#!/usr/bin/env bash
# Builds the pinned Databricks CLI and the workspace stand-in used by the
# bundle tests, once: the binaries are cached under
#   ${PATRONAGE_TOOLS_CACHE:-$HOME/.cache/patronage/tools}/databricks-cli-<version>-<key>/
# where <key> hashes this folder's sources, so a changed pin rebuilds.
# Prints that directory on its last line. Needs Go (>= 1.21; a newer toolchain
# named in go.mod is fetched through the Go module proxy when needed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/databricks/cli" {sub(/^v/, "", $3); print $3}' "$here/go.mod")"
[ -n "$version" ] || { echo "build.sh: no github.com/databricks/cli pin in $here/go.mod" >&2; exit 2; }
key="$(cat "$here/go.mod" "$here/go.sum" "$here"/standin/*.go "$0" | sha256sum | cut -c1-12)"
out="${PATRONAGE_TOOLS_CACHE:-$HOME/.cache/patronage/tools}/databricks-cli-$version-$key"

if [ -x "$out/databricks" ] && [ -x "$out/standin" ]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: Go is not installed (apt-get install golang-go, or see https://go.dev/doc/install)" >&2; exit 3; }

tmp="$out.tmp.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$here"
echo "building Databricks CLI v$version and the workspace stand-in (a few minutes the first time)" >&2
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
go build -trimpath \
  -ldflags "-X github.com/databricks/cli/internal/build.buildVersion=$version" \
  -o "$tmp/databricks" github.com/databricks/cli
go build -trimpath -o "$tmp/standin" ./standin
"$tmp/databricks" --version >&2
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
