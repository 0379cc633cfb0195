#!/usr/bin/env bash
# pwctl against the interop server (h2c): every call kind by reflection, with
# JSON in and JSON lines out, and a deadline.
#   pwctl_interop_test.sh PWCTL INTEROP_SERVER
set -euo pipefail
ctl=$1 server=$2
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" --port="$port" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
c() { "$ctl" --addr "127.0.0.1:$port" "$@"; }
T=grpc.testing.TestService
c list | grep -qx "$T" || fail list
[ "$(c call $T/UnaryCall '{"responseSize": 3}')" = '{"payload":{"body":"AAAA"}}' ] || fail unary
out=$(c call $T/StreamingOutputCall '{"responseParameters":[{"size":1},{"size":2},{"size":3}]}')
[ "$(echo "$out" | wc -l)" = 3 ] || fail "server streaming gave: $out"
[ "$(echo "$out" | sed -n 3p)" = '{"payload":{"body":"AAAA"}}' ] || fail "third message: $out"
[ "$(c call $T/StreamingInputCall '[{"payload":{"body":"AAA="}},{"payload":{"body":"AAAAAA=="}}]')" = \
  '{"aggregatedPayloadSize":6}' ] || fail "client streaming"
[ "$(c call $T/FullDuplexCall '[{"responseParameters":[{"size":1}]},{"responseParameters":[{"size":2}]}]' | wc -l)" = 2 ] ||
  fail "bidi streaming"
set +e
err=$(c --timeout 100 call $T/StreamingOutputCall '{"responseParameters":[{"size":1,"intervalUs":2000000}]}' 2>&1)
rc=$?
set -e
[ $rc = 1 ] && [[ $err == *DEADLINE_EXCEEDED* ]] || fail "deadline: rc $rc, $err"
echo "pwctl_interop_test: ok"
