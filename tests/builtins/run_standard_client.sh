#!/usr/bin/env bash
# Starts a paywire server and runs the standard (grpcio) client against its built-ins.
#   run_standard_client.sh SERVER_BIN
set -euo pipefail
server=$1
here=$(cd "$(dirname "$0")" && pwd)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" --port="$port" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
timeout 60 /usr/bin/python3 "$here/standard_client.py" "$port"
