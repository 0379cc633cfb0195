#!/usr/bin/env bash
# curl calls a unary method of a paywire server with JSON, over HTTP/1.1 and
# HTTP/2 (prior knowledge), on the same port gRPC clients use; errors come
# back as JSON with the code name, message and details.
# Under TLS, ALPN picks HTTP/2, or HTTP/1.1 for a client that offers only that.
#   run_curl_json.sh SERVER_BIN
set -euo pipefail
server=$1
here=$(cd "$(dirname "$0")" && pwd)
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && break; sleep 0.05; done; }
tmp=$(mktemp -d)
port=$(free_port)
tls_port=$(free_port)
bash "$here/../interop/make_certs.sh" "$tmp/certs"
"$server" --port="$port" 2>/dev/null &
pid=$!
"$server" --port="$tls_port" --use_tls=true --tls_cert="$tmp/certs/server.pem" \
  --tls_key="$tmp/certs/server.key" 2>/dev/null &
tls_pid=$!
trap 'kill $pid $tls_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
wait_port "$port"
wait_port "$tls_port"
url=http://127.0.0.1:$port/grpc.testing.TestService/UnaryCall
fails=0

# expect NAME WANT_STATUS WANT_BODY_FRAGMENT curl-args...
expect() {
  local name=$1 want_status=$2 want_body=$3
  shift 3
  local out status body
  out=$(curl -sS --max-time 10 -w '\n%{http_code} %{http_version}' "$@")
  status=${out##*$'\n'}
  body=${out%$'\n'*}
  if [[ $status != "$want_status" || $body != *"$want_body"* ]]; then
    echo "FAIL $name: got '$status' $body (wanted '$want_status' with $want_body)" >&2
    fails=$((fails + 1))
  else
    echo "ok   $name: $status $body"
  fi
}

json=(-H 'content-type: application/json')
expect "HTTP/1.1 unary" "200 1.1" '{"payload":{"body":"AAAA"}}' "${json[@]}" -d '{"responseSize": 3}' "$url"
expect "HTTP/2 unary" "200 2" '{"payload":{"body":"AAAA"}}' --http2-prior-knowledge "${json[@]}" \
  -d '{"responseSize": 3}' "$url"
expect "HTTP/2 empty call" "200 2" '{}' --http2-prior-knowledge "${json[@]}" -d '{}' \
  "http://127.0.0.1:$port/grpc.testing.TestService/EmptyCall"
expect "bad JSON names the field" "400 1.1" \
  '{"code":"invalid_argument","message":"bad JSON request: responseSize: expected an integer, got \"three\""}' \
  "${json[@]}" -d '{"responseSize": "three"}' "$url"
expect "status with details" "400 2" '"code":"failed_precondition","message":"merchant suspended","details":[{"type":"google.rpc.ErrorInfo"' \
  --http2-prior-knowledge "${json[@]}" -H 'x-paywire-test-details: 1' \
  -d '{"responseStatus": {"code": 9, "message": "merchant suspended"}}' "$url"
expect "unknown method" "501 1.1" '"code":"unimplemented"' "${json[@]}" -d '{}' \
  "http://127.0.0.1:$port/grpc.testing.TestService/NoSuchMethod"
expect "streaming method refused" "501 2" 'unary methods only' --http2-prior-knowledge "${json[@]}" \
  -d '{}' "http://127.0.0.1:$port/grpc.testing.TestService/StreamingOutputCall"
expect "deadline" "504 1.1" '"code":"deadline_exceeded"' "${json[@]}" -H 'connect-timeout-ms: 0' \
  -d '{}' "$url"
get_url=http://127.0.0.1:$port/grpc.testing.TestService
expect "GET of a method with side effects" "405 1.1" 'NO_SIDE_EFFECTS; POST the JSON' --get \
  --data-urlencode encoding=json --data-urlencode 'message={}' "$get_url/UnaryCall"
expect "GET over HTTP/2, the same refusal" "405 2" '' --http2-prior-knowledge --get \
  --data-urlencode encoding=json --data-urlencode 'message={}' "$get_url/UnaryCall"
tls_url=https://localhost:$tls_port/grpc.testing.TestService/UnaryCall
expect "TLS, ALPN h2" "200 2" '{"payload":{"body":"AAAA"}}' --cacert "$tmp/certs/ca.pem" \
  "${json[@]}" -d '{"responseSize": 3}' "$tls_url"
expect "TLS, ALPN http/1.1" "200 1.1" '{"payload":{"body":"AAAA"}}' --http1.1 \
  --cacert "$tmp/certs/ca.pem" "${json[@]}" -d '{"responseSize": 3}' "$tls_url"
expect "TLS, HTTP/1.1 error" "400 1.1" '"code":"invalid_argument"' --http1.1 \
  --cacert "$tmp/certs/ca.pem" "${json[@]}" -d '{"responseSize": "three"}' "$tls_url"
expect "TLS, no ALPN, HTTP/1.1" "200 1.1" '{"payload":{"body":"AAAA"}}' --http1.1 --no-alpn \
  --cacert "$tmp/certs/ca.pem" "${json[@]}" -d '{"responseSize": 3}' "$tls_url"
[[ $fails == 0 ]]
