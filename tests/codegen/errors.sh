#!/usr/bin/env bash
# Bad input to protoc-gen-paywire gives a clear error, never a crash. Each
# refused .proto is also run through protoc-c alone and compiled as generated
# code is (after paywire/paywire.h, with the strict flags), to show that the
# refusal is needed: that output does not compile.
#   errors.sh PLUGIN PROTOC_C CC SOURCE_DIR
set -uo pipefail
plugin=$1 protoc_c=$2 cc=$3 src=$4
here=$(cd "$(dirname "$0")" && pwd)
wkt=$(pkg-config --variable=includedir protobuf 2>/dev/null || echo /usr/include)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Werror -I"$src/runtime/include")
fail=0
expect() { # name, output, pattern
  if grep -qF -- "$3" <<<"$2"; then echo "ok: $1"; else echo "FAIL: $1: got: $2" >&2; fail=1; fi
}

# refused NAME DIR FILE MESSAGE: the plugin refuses DIR/FILE with MESSAGE, and
# protoc-c's own output for it does not compile.
refused() {
  local out rc
  out=$(protoc -I "$2" -I "$wkt" --plugin=protoc-gen-paywire="$plugin" --paywire_out="$tmp" "$3" 2>&1)
  rc=$?
  [ $rc -ne 0 ] || { echo "FAIL: $1: accepted" >&2; fail=1; }
  expect "$1" "$out" "$4"
  rm -rf "$tmp/c" && mkdir -p "$tmp/c"
  if ! "$protoc_c" -I "$2" --c_out="$tmp/c" "$3" >"$tmp/c/log" 2>&1; then
    echo "FAIL: $1: protoc-c refused it too: $(cat "$tmp/c/log")" >&2
    fail=1
  elif out=$("$cc" "${flags[@]}" -I"$tmp/c" -include paywire/paywire.h -c \
    "$tmp/c/${3%.proto}.pb-c.c" -o /dev/null 2>&1); then
    echo "FAIL: $1: protoc-c's output compiles, the refusal is not needed" >&2
    fail=1
  else
    echo "    protoc-c's output does not compile: $(grep -m1 'error:' <<<"$out" | sed 's/^.*error: //')"
  fi
}

# message NAME FIELDS: a one-message proto3 file in $tmp/p/NAME.proto.
message() {
  mkdir -p "$tmp/p"
  printf 'syntax = "%s";\npackage pwtest.bad;\nmessage M {\n%b\n}\n' "${3:-proto3}" "$2" >"$tmp/p/$1.proto"
}

refused "name collision names file, service and methods" "$here/bad" collision.proto \
  "collision.proto: service Clash: methods GetURL and GetUrl both map to the C name 'get_url'"
refused "C keyword method names the method and says why" "$here/bad" keyword.proto \
  "keyword.proto: service Router: method Switch: protoc-c names its service member after the method, and 'switch' is a C keyword"

# Field names: protoc-c escapes C++ keywords (protos/pwtest/v1/keywords.proto compiles);
# what it leaves broken is refused.
refused "restrict, the C keyword protoc-c does not escape" "$here/bad" keyword_field.proto \
  "keyword_field.proto: message Verdict.Detail: field 'restrict' becomes the struct member 'restrict' in protoc-c's output, a C keyword"
message base '  string base = 1;'
refused "a field named base" "$tmp/p" base.proto \
  "base.proto: message M: the ProtobufCMessage header and field 'base' both become the struct member 'base'"
message escaped '  optional string register = 1;\n  optional string register_ = 2;' proto2
refused "a keyword and its escaped spelling (proto2: no JSON name check)" "$tmp/p" escaped.proto \
  "escaped.proto: message M: field 'register' and field 'register_' both become the struct member 'register_'"
message lower '  optional string Amount = 1;\n  optional string amount = 2;' proto2
refused "names equal but for case (members are lower-cased)" "$tmp/p" lower.proto \
  "lower.proto: message M: field 'Amount' and field 'amount' both become the struct member 'amount'"
message oneof_case '  oneof switch {\n    string case = 1;\n  }\n  string switch_case = 2;'
refused "a field named after a oneof's case member" "$tmp/p" oneof_case.proto \
  "oneof_case.proto: message M: field 'switch_case' and oneof 'switch' both become the struct member 'switch_case'"
message count '  repeated string for = 1;\n  int64 n_for_ = 2;'
refused "a field named after a repeated field's count" "$tmp/p" count.proto \
  "count.proto: message M: field 'for' and field 'n_for_' both become the struct member 'n_for_'"
message has '  optional int64 default = 1;\n  optional bool has_default_ = 2;' proto2
refused "a field named after a proto2 field's has_ flag" "$tmp/p" has.proto \
  "has.proto: message M: field 'default' and field 'has_default_' both become the struct member 'has_default_'"

# Macros: every lower-case object-like macro of the headers generated code includes that
# expands to more than a lower-case identifier is refused (the list in codegen/src/names.c is
# exactly those), and each breaks protoc-c's output.
printf '#include <paywire/paywire.h>\n#include <protobuf-c/protobuf-c.h>\n' >"$tmp/macros.c"
have=$("$cc" "${flags[@]}" -dM -E "$tmp/macros.c" |
  awk '$2 ~ /^[a-z][a-z0-9_]*$/ && !(NF == 3 && $3 ~ /^[a-z_][a-z0-9_]*$/) {print $2}' | sort)
listed=$(sed -n '/^static const char header_macros\[\] =/,/;$/p' "$src/codegen/src/names.c" |
  grep -o '"[^"]*"' | tr -d '"' | tr ' ' '\n' | grep . | sort)
if [ "$have" = "$listed" ]; then
  echo "ok: names.c lists the $(wc -l <<<"$have") lower-case macros of the generated code's headers"
else
  echo "FAIL: names.c's header_macros differ from the headers' macros:" >&2
  diff <(echo "$listed") <(echo "$have") >&2
  fail=1
fi
for name in $have; do # ~0.1 s each
  message "$name" "  string $name = 1;"
  refused "macro $name as a field name" "$tmp/p" "$name.proto" \
    "$name.proto: message M: field '$name' becomes the struct member '$name' in protoc-c's output, a macro"
done

out=$(printf 'not a request' | "$plugin" | protoc -I "$wkt" --decode=google.protobuf.compiler.CodeGeneratorResponse google/protobuf/compiler/plugin.proto 2>&1)
expect "garbage on stdin" "$out" "stdin is not a valid CodeGeneratorRequest"

out=$("$plugin" </dev/null | protoc -I "$wkt" --decode=google.protobuf.compiler.CodeGeneratorResponse google/protobuf/compiler/plugin.proto 2>&1)
[ -z "$out" ] && echo "ok: empty request gives an empty response" || { echo "FAIL: empty request: $out" >&2; fail=1; }
exit $fail
