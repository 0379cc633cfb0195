#!/usr/bin/env bash
# Adding an RPC, end to end, exactly as docs/adding-an-rpc.md says:
#   1. a project on paywire builds and calls Greeter.Hello;
#   2. `rpc Goodbye` is added to greeter.proto and the handler and the call are
#      written (main_v2.c); ONE `cmake --build` later, Goodbye is callable.
#   run.sh PAYWIRE_SRC WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
cp -r "$here/proto" "$work/proto"
sed "s#@PAYWIRE_SRC@#$src#" "$here/CMakeLists.txt.in" >"$work/CMakeLists.txt"
cp "$here/main_v1.c" "$work/main.c"
jobs=$(nproc 2>/dev/null || echo 2)

echo "== step 1: build and call Hello"
cmake -S "$work" -B "$work/build" -DPW_INTEROP=OFF >/dev/null
cmake --build "$work/build" -j"$jobs" --target greeter >/dev/null
"$work/build/greeter" | tee "$work/out1"
grep -qx "Hello, paywire" "$work/out1"

echo "== step 2: add rpc Goodbye to the proto, write its handler and call, rebuild once"
sed -i 's#^  rpc Hello(HelloRequest) returns (HelloReply);#&\n  // Says goodbye.\n  rpc Goodbye(HelloRequest) returns (HelloReply);#' \
  "$work/proto/greeter/v1/greeter.proto"
grep -q "rpc Goodbye" "$work/proto/greeter/v1/greeter.proto"
cp "$here/main_v2.c" "$work/main.c"
cmake --build "$work/build" -j"$jobs" --target greeter >/dev/null
"$work/build/greeter" | tee "$work/out2"
grep -qx "Goodbye, paywire" "$work/out2"
echo "evolve: a new RPC was callable after one rebuild"
