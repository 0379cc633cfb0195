#!/usr/bin/env bash
# pwbench reads trailers: OK calls count as successes, others are counted by code
# (h2load would report the UNIMPLEMENTED calls below as successes).
#   pwbench_test.sh PWBENCH ECHO_SERVER
set -euo pipefail
pwbench=$1 server=$2
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" --port="$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
data=$(mktemp)
printf '\x0a\x02hi' >"$data"
out=$("$pwbench" --target=127.0.0.1:"$port" --data="$data" --connections=2 --concurrency=4 --duration=0.5 --warmup=0.1)
echo "$out"
grep -q " 0 not ok" <<<"$out"
grep -q "latency us: p50" <<<"$out"
if out=$("$pwbench" --target=127.0.0.1:"$port" --method=/bench.v1.Echo/Nope --connections=1 --concurrency=2 --duration=0.3 --warmup=0); then
  echo "pwbench exited 0 although every call failed" >&2
  exit 1
fi
echo "$out"
grep -q "UNIMPLEMENTED: [1-9]" <<<"$out"
grep -q " 0 ok" <<<"$out"
# Streaming: StreamRequest{count: 3, payload_size: 2} -> 3 responses per call.
printf '\x08\x03\x10\x02' >"$data"
out=$("$pwbench" --target=127.0.0.1:"$port" --method=/bench.v1.Echo/ServerStream --kind=server --data="$data" --connections=1 --concurrency=2 --duration=0.5 --warmup=0.1)
echo "$out"
grep -q " 0 not ok" <<<"$out"
ok=$(awk '/^requests:/ {print $4}' <<<"$out")
msgs=$(awk '/^messages\/s:/ {print $2}' <<<"$out")
awk -v ok="$ok" -v m="$msgs" 'BEGIN { exit !(ok > 0 && m > 0) }'
rm -f "$data"
echo "pwbench_test: statuses counted from trailers, streams counted by message"
