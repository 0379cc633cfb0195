#!/usr/bin/env bash
# Golden test of protoc-gen-paywire's output for the protos under protos/.
#   golden.sh PLUGIN            compare with golden/ (and check determinism)
#   golden.sh PLUGIN --update   rewrite golden/ from the current generator
set -euo pipefail
plugin=$1
mode=${2:-check}
here=$(cd "$(dirname "$0")" && pwd)
protos=(pwtest/common/v1/types.proto pwtest/v1/kinds.proto pwtest/v1/keywords.proto)
wkt=$(pkg-config --variable=includedir protobuf 2>/dev/null || echo /usr/include)
gen() {
  mkdir -p "$1"
  protoc -I "$here/protos" -I "$wkt" --plugin=protoc-gen-paywire="$plugin" --paywire_out="$1" "${protos[@]}"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen "$tmp/a"
gen "$tmp/b"
if ! diff -r "$tmp/a" "$tmp/b" >/dev/null; then
  echo "golden: two runs on the same input differ (output is not deterministic)" >&2
  diff -r "$tmp/a" "$tmp/b" | head -20 >&2
  exit 1
fi
if [ "$mode" = --update ]; then
  rm -rf "$here/golden"
  cp -r "$tmp/a" "$here/golden"
  echo "golden: updated $(find "$here/golden" -type f | wc -l) files"
  exit 0
fi
if ! diff -ru "$here/golden" "$tmp/a"; then
  echo "golden: generator output differs from tests/codegen/golden (if intended: tests/codegen/golden.sh PLUGIN --update)" >&2
  exit 1
fi
echo "golden: $(find "$tmp/a" -type f | wc -l) files match, output deterministic"
