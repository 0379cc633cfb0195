#!/usr/bin/env bash
# Bad input to protoc-gen-paywire gives a clear error, never a crash.
#   errors.sh PLUGIN
set -uo pipefail
plugin=$1
here=$(cd "$(dirname "$0")" && pwd)
wkt=$(pkg-config --variable=includedir protobuf 2>/dev/null || echo /usr/include)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # name, output, pattern
  if grep -qF -- "$3" <<<"$2"; then echo "ok: $1"; else echo "FAIL: $1: got: $2" >&2; fail=1; fi
}

out=$(protoc -I "$here/bad" -I "$wkt" --plugin=protoc-gen-paywire="$plugin" --paywire_out="$tmp" collision.proto 2>&1)
rc=$?
[ $rc -ne 0 ] || { echo "FAIL: collision accepted" >&2; fail=1; }
expect "name collision names file, service and methods" "$out" \
  "collision.proto: service Clash: methods GetURL and GetUrl both map to the C name 'get_url'"

out=$(protoc -I "$here/bad" -I "$wkt" --plugin=protoc-gen-paywire="$plugin" --paywire_out="$tmp" keyword.proto 2>&1)
expect "C keyword method names the method and says why" "$out" \
  "keyword.proto: service Router: method Switch: protoc-c names its service member after the method, and 'switch' is a C keyword"

out=$(protoc -I "$here/bad" -I "$wkt" --plugin=protoc-gen-paywire="$plugin" --paywire_out="$tmp" keyword_field.proto 2>&1)
expect "C keyword field names message and field" "$out" \
  "keyword_field.proto: message Verdict.Detail: field 'case' is a C keyword"

out=$(printf 'not a request' | "$plugin" | protoc -I "$wkt" --decode=google.protobuf.compiler.CodeGeneratorResponse google/protobuf/compiler/plugin.proto 2>&1)
expect "garbage on stdin" "$out" "stdin is not a valid CodeGeneratorRequest"

out=$("$plugin" </dev/null | protoc -I "$wkt" --decode=google.protobuf.compiler.CodeGeneratorResponse google/protobuf/compiler/plugin.proto 2>&1)
[ -z "$out" ] && echo "ok: empty request gives an empty response" || { echo "FAIL: empty request: $out" >&2; fail=1; }
exit $fail
