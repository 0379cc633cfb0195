#!/usr/bin/env bash
# pwctl against a real merchant-server (TLS + mTLS, its own database): list,
# describe, every MerchantService RPC by name with JSON, metadata, errors with
# details and exit codes. Activation goes through a real compliance-server:
# the merchant's KYB case approved with DecideCase by a reviewer (pwreviewer's token).
#   pwctl_merchant_test.sh PWCTL MERCHANT_SERVER PWMIGRATE REPO COMPLIANCE_SERVER PWREVIEWER
set -euo pipefail
pwctl_bin=$1 server=$2 pwmigrate=$3 repo=$4 compliance_server=$5 pwreviewer=$6
pg="$repo/scripts/pg"
tmp=$(mktemp -d)
db="pwctl_test_$$"
cdb="pwctl_test_compliance_$$"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
cport=$(free_port)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null || true
  "$pg" dropdb "$db" >/dev/null 2>&1 || true
  "$pg" dropdb "$cdb" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
bash "$repo/scripts/certs" "$tmp" >/dev/null
"$pg" createdb "$db"
url=$("$pg" url "$db")
"$pwmigrate" --db "$url" --dir "$repo/services/merchant/migrations" >/dev/null
"$pg" createdb "$cdb"
curl_=$("$pg" url "$cdb")
"$pwmigrate" --db "$curl_" --dir "$repo/services/compliance/migrations" >/dev/null
"$pwreviewer" keygen "$tmp/idp.key" "$tmp/idp.pub"
cat >"$tmp/c.conf" <<CONF
listen = 127.0.0.1:$cport
database_url = $curl_
encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
reviewer_token_key = $tmp/idp.pub
tls_cert = $tmp/compliance.crt
tls_key = $tmp/compliance.key
tls_ca = $tmp/ca.crt
internal_identities = spiffe://paywire/operator,spiffe://paywire/merchant
log_level = warning
workers = 1
CONF
"$compliance_server" --config "$tmp/c.conf" 2>"$tmp/compliance.log" &
cpid=$!
cat >"$tmp/m.conf" <<CONF
listen = 127.0.0.1:$port
database_url = $url
encryption_key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
tls_cert = $tmp/merchant.crt
tls_key = $tmp/merchant.key
tls_ca = $tmp/ca.crt
internal_identities = spiffe://paywire/operator
log_level = warning
compliance_target = localhost:$cport
CONF
"$server" --config "$tmp/m.conf" 2>"$tmp/server.log" &
pid=$!
op=(--addr "localhost:$port" --cacert "$tmp/ca.crt" --cert "$tmp/operator.crt" --key "$tmp/operator.key")
ctl() { "$pwctl_bin" "${op[@]}" "$@"; }
cop=(--addr "localhost:$cport" --cacert "$tmp/ca.crt" --cert "$tmp/operator.crt" --key "$tmp/operator.key")
cctl() { "$pwctl_bin" "${cop[@]}" "$@"; }
for _ in $(seq 100); do
  ctl call grpc.health.v1.Health/Check '{"service":"paywire.merchant.v1.MerchantService"}' 2>/dev/null | grep -q SERVING && break
  sleep 0.1
done
for _ in $(seq 100); do
  cctl call grpc.health.v1.Health/Check '{"service":"paywire.compliance.v1.ScreeningService"}' 2>/dev/null | grep -q SERVING && break
  sleep 0.1
done
# A one-entry list (client streaming from a JSON array): cases are screened, and fail closed without one.
cctl call paywire.compliance.v1.ScreeningService/UploadSanctionsList '[{"list":"test-list","version":"v1","expectedEntries":1,"entries":[{"entryId":"z1","names":["QUARTERMAINE, Zebedee Oswin"],"type":"individual"}]}]' >/dev/null || fail UploadSanctionsList
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
S=paywire.merchant.v1.MerchantService

ctl list | grep -qx "$S" || fail "list"
ctl describe $S | grep -q 'rpc ResolveApiKey(paywire.merchant.v1.ResolveApiKeyRequest)' || fail "describe service"
ctl describe paywire.merchant.v1.MerchantState | grep -q 'MERCHANT_STATE_ACTIVE = 2' || fail "describe enum"
ctl describe $S/GetMerchant | grep -q '^rpc GetMerchant' || fail "describe method"

m=$(ctl call $S/CreateMerchant '{"idempotencyKey":"c1","merchant":{"displayName":"Ctl Shop","country":"US","merchantCategoryCode":"5734","currencies":["USD"],"legalEntity":{"legalName":"Ctl Shop LLC","entityType":"ENTITY_TYPE_COMPANY","registeredAddress":{"country":"US"}}}}' | j "['merchant']['id']")
[[ $m == mer_* ]] || fail "CreateMerchant: $m"
[ "$(ctl call $S/GetMerchant "{\"merchantId\":\"$m\"}" | j "['merchant']['state']")" = MERCHANT_STATE_PENDING_REVIEW ] || fail GetMerchant
ctl call $S/ListMerchants '{"pageSize":10}' | grep -q "$m" || fail ListMerchants
etag=$(ctl call $S/GetMerchant "{\"merchantId\":\"$m\"}" | j "['merchant']['etag']")
[ "$(ctl call $S/UpdateMerchant "{\"idempotencyKey\":\"u1\",\"merchant\":{\"id\":\"$m\",\"displayName\":\"Ctl Shop 2\"},\"updateMask\":\"displayName\",\"etag\":\"$etag\"}" | j "['merchant']['displayName']")" = "Ctl Shop 2" ] || fail UpdateMerchant
V=paywire.compliance.v1.VerificationService
case_id=
for _ in $(seq 200); do
  case_id=$(cctl call $V/ListCases "{\"merchantId\":\"$m\"}" | j ".get('cases', [{}])[0].get('id', '')")
  [ -n "$case_id" ] && break
  sleep 0.1
done
[[ $case_id == case_* ]] || fail "the KYB case did not reach compliance"
if ctl call $S/ActivateMerchant "{\"idempotencyKey\":\"a0\",\"merchantId\":\"$m\",\"complianceCaseId\":\"$case_id\"}" 2>/dev/null; then
  fail "activated on an OPEN case"
fi
token=$("$pwreviewer" token --key "$tmp/idp.key" --subject alice@paywire.example)
[ "$(cctl -H "paywire-reviewer-token: $token" call $V/DecideCase "{\"idempotencyKey\":\"d1\",\"caseId\":\"$case_id\",\"decision\":\"DECISION_APPROVE\",\"reasonCodes\":[\"documents_verified\"]}" | j "['case']['state']")" = CASE_STATE_APPROVED ] || fail DecideCase
[ "$(ctl call $S/ActivateMerchant "{\"idempotencyKey\":\"a1\",\"merchantId\":\"$m\",\"complianceCaseId\":\"$case_id\"}" | j "['merchant']['state']")" = MERCHANT_STATE_ACTIVE ] || fail Activate
[ "$(ctl call $S/SuspendMerchant "{\"idempotencyKey\":\"s1\",\"merchantId\":\"$m\",\"reason\":\"review\"}" | j "['merchant']['state']")" = MERCHANT_STATE_SUSPENDED ] || fail Suspend
[ "$(ctl call $S/ReinstateMerchant "{\"idempotencyKey\":\"r1\",\"merchantId\":\"$m\"}" | j "['merchant']['state']")" = MERCHANT_STATE_ACTIVE ] || fail Reinstate

out=$(ctl call $S/CreateApiKey "{\"idempotencyKey\":\"k1\",\"merchantId\":\"$m\",\"mode\":\"API_KEY_MODE_LIVE\",\"scopes\":[\"merchants:read\",\"settlement:read\",\"settlement:write\",\"webhooks:read\",\"webhooks:write\",\"api_keys:read\",\"api_keys:write\"]}")
secret=$(echo "$out" | j "['secret']")
key_id=$(echo "$out" | j "['apiKey']['id']")
[ "$(ctl call $S/ResolveApiKey "{\"secret\":\"$secret\"}" | j "['merchantId']")" = "$m" ] || fail ResolveApiKey
as=(--addr "localhost:$port" --cacert "$tmp/ca.crt" -H "authorization: Bearer $secret")
mer() { "$pwctl_bin" "${as[@]}" "$@"; }
mer call $S/ListApiKeys "{\"merchantId\":\"$m\"}" | grep -q "$key_id" || fail ListApiKeys
dst=$(mer call $S/AddSettlementDestination "{\"idempotencyKey\":\"d1\",\"merchantId\":\"$m\",\"destination\":{\"bankAccount\":{\"accountHolderName\":\"Ctl Shop LLC\",\"country\":\"US\",\"currency\":\"USD\",\"accountNumber\":\"000123456789\",\"routingCode\":\"011000015\"}}}" | j "['destination']['id']")
mer call $S/ListSettlementDestinations "{\"merchantId\":\"$m\"}" | grep -q '"accountNumber":"\*\*\*\*6789"' || fail "ListSettlementDestinations (masked)"
mer call $S/RemoveSettlementDestination "{\"idempotencyKey\":\"d2\",\"merchantId\":\"$m\",\"destinationId\":\"$dst\"}" >/dev/null || fail RemoveSettlementDestination
whk=$(mer call $S/CreateWebhookEndpoint "{\"idempotencyKey\":\"w1\",\"merchantId\":\"$m\",\"endpoint\":{\"url\":\"https://shop.example/hook\"}}" | j "['endpoint']['id']")
mer call $S/ListWebhookEndpoints "{\"merchantId\":\"$m\"}" | grep -q "$whk" || fail ListWebhookEndpoints
mer call $S/RotateWebhookSecret "{\"idempotencyKey\":\"w2\",\"merchantId\":\"$m\",\"endpointId\":\"$whk\"}" | grep -q whsec_ || fail RotateWebhookSecret
mer call $S/DeleteWebhookEndpoint "{\"idempotencyKey\":\"w3\",\"merchantId\":\"$m\",\"endpointId\":\"$whk\"}" >/dev/null || fail DeleteWebhookEndpoint
mer call $S/RevokeApiKey "{\"idempotencyKey\":\"k2\",\"merchantId\":\"$m\",\"apiKeyId\":\"$key_id\"}" >/dev/null || fail RevokeApiKey
[ "$(ctl call $S/CloseMerchant "{\"idempotencyKey\":\"x1\",\"merchantId\":\"$m\",\"reason\":\"test over\"}" | j "['merchant']['state']")" = MERCHANT_STATE_CLOSED ] || fail Close

# Errors: code, message, details on stderr; exit code 1.
set +e
err=$(mer call $S/GetMerchant "{\"merchantId\":\"$m\"}" 2>&1 >/dev/null)
rc=$?
set -e
[ $rc = 1 ] || fail "exit code $rc for a failed RPC"
[[ $err == *"Code: UNAUTHENTICATED"* && $err == *"was revoked"* ]] || fail "revoked key: $err"
set +e
err=$(ctl call $S/CreateMerchant '{"idempotencyKey":"c9","merchant":{"displayName":"x","country":"ZZ"}}' 2>&1 >/dev/null)
set -e
[[ $err == *"Code: INVALID_ARGUMENT"* && $err == *'"field":"merchant.country"'* ]] || fail "details: $err"
set +e
ctl call $S/GetMerchant '{"merchantId": 5' >/dev/null 2>&1
rc=$?
"$pwctl_bin" --addr 127.0.0.1:1 list >/dev/null 2>&1
rc2=$?
set -e
[ $rc = 2 ] || fail "bad JSON should exit 2, got $rc"
[ $rc2 = 3 ] || fail "unreachable server should exit 3, got $rc2"
kill -TERM "$pid"
wait "$pid" || fail "server exit status $? (log: $(tail -3 "$tmp/server.log"))"
pid=
echo "pwctl_merchant_test: ok"
