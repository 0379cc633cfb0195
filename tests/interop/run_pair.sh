#!/usr/bin/env bash
# Runs one interop pairing: a server program and a client program, h2c or TLS.
#   run_pair.sh MODE SERVER_KIND SERVER_BIN CLIENT_KIND CLIENT_BIN CERT_DIR
# MODE: h2c | tls. SERVER_KIND: paywire | grpcpp. CLIENT_KIND: paywire | grpcpp | python.
# Exits non-zero when any case fails, or when the paywire server does not shut
# down cleanly on SIGTERM (a sanitizer report makes it exit non-zero).
set -euo pipefail
mode=$1 server_kind=$2 server_bin=$3 client_kind=$4 client_bin=$5 certs=$6
here=$(cd "$(dirname "$0")" && pwd)

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_args=(--port="$port")
client_args=(--server_host=127.0.0.1 --server_port="$port" --test_case=all)
if [ "$mode" = tls ]; then
  bash "$here/make_certs.sh" "$certs"
  server_args+=(--use_tls=true --tls_cert="$certs/server.pem" --tls_key="$certs/server.key")
  client_args+=(--use_tls=true --ca_file="$certs/ca.pem" --server_host_override=foo.test.google.fr)
fi

log=$(mktemp)
"$server_bin" "${server_args[@]}" 2>"$log" &
server_pid=$!
cleanup() { kill "$server_pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done

rc=0
if [ "$client_kind" = python ]; then
  timeout 120 /usr/bin/python3 "$client_bin" "${client_args[@]}" || rc=$?
else
  timeout 120 "$client_bin" "${client_args[@]}" || rc=$?
fi

kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
if [ "$server_kind" = paywire ] && [ "$server_rc" -ne 0 ]; then
  echo "paywire server exited $server_rc on SIGTERM:" >&2
  cat "$log" >&2
  rc=1
fi
exit "$rc"
