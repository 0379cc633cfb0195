#!/usr/bin/env bash
# Builds the greeter against an installed paywire (CMake package and
# pkg-config/make), runs the server and calls it with both clients and grpcio.
#   run.sh PREFIX WORK_DIR    (PREFIX: where paywire is installed, /usr for the packages)
set -euo pipefail
prefix=$(cd "$1" && pwd)
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
# Copies of the example only: nothing below refers to paywire's source or build tree.
cp -r "$here" "$work/cmake"
cp -r "$here" "$work/make"
libdir=$(dirname "$(find "$prefix" -name paywire.pc -path '*/pkgconfig/*' | head -n1)")
export PKG_CONFIG_PATH="$libdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$(dirname "$libdir")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== find_package(paywire) build"
cmake -S "$work/cmake" -B "$work/cmake/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake/build" -j2 >/dev/null
echo "== pkg-config + make build"
make -s -C "$work/make" >/dev/null

server=$work/cmake/build/greeter-server
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" "127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q listening "$work/server.log" && break
  sleep 0.1
done
expect=$(printf 'Hello, %s\nHello #1, %s\nHello #2, %s\nHello #3, %s' x x x x)
check() {
  local what=$1
  shift
  local got
  got=$(timeout 60 "$@" "127.0.0.1:$port" x)
  if [[ $got != "$expect" ]]; then
    echo "$what answered:"$'\n'"$got"$'\n'"expected:"$'\n'"$expect" >&2
    exit 1
  fi
  echo "$what: ok"
}
check "cmake client" "$work/cmake/build/greeter-client"
check "make client" "$work/make/greeter-client"
check "grpcio client" /usr/bin/python3 "$work/cmake/client.py"
kill -TERM "$pid"
wait "$pid"
trap - EXIT
echo "greeter: built against $prefix and answered all three clients"
