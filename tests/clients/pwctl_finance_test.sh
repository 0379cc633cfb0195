#!/usr/bin/env bash
# pwctl against a real finance-server (TLS + mTLS, its own database): every RPC of
# LedgerService, FeeService and FxService by name with JSON through reflection, the
# results checked (balances after one- and two-phase transfers, the entries, a fee by the
# schedule's rule, a conversion's amounts), and one bad request per service answered with
# its code and the field (or reason) named.
#   pwctl_finance_test.sh PWCTL FINANCE_SERVER PWMIGRATE REPO
set -euo pipefail
pwctl_bin=$1 server=$2 pwmigrate=$3 repo=$4
pg="$repo/scripts/pg"
tmp=$(mktemp -d)
db="pwctl_finance_test_$$"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
cleanup() {
  if [ -n "${pid:-}" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  "$pg" dropdb "$db" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$tmp/server.log" ] && tail -5 "$tmp/server.log" >&2
  exit 1
}
bash "$repo/scripts/certs" "$tmp" >/dev/null
"$pg" createdb "$db"
url=$("$pg" url "$db")
"$pwmigrate" --db "$url" --dir "$repo/services/finance/migrations" >/dev/null
# Background jobs off: only this script's calls move money.
cat >"$tmp/f.conf" <<CONF
listen = 127.0.0.1:$port
database_url = $url
tls_cert = $tmp/finance.crt
tls_key = $tmp/finance.key
tls_ca = $tmp/ca.crt
internal_identities = spiffe://paywire/operator,spiffe://paywire/finance
log_level = warning
workers = 1
availability_job_seconds = 0
recon_job_seconds = 0
CONF
"$server" --config "$tmp/f.conf" 2>"$tmp/server.log" &
pid=$!
op=(--addr "localhost:$port" --cacert "$tmp/ca.crt" --cert "$tmp/operator.crt" --key "$tmp/operator.key")
ctl() { "$pwctl_bin" "${op[@]}" "$@"; }
for _ in $(seq 100); do
  ctl call grpc.health.v1.Health/Check '{"service":"paywire.finance.v1.LedgerService"}' 2>/dev/null | grep -q SERVING && break
  sleep 0.1
done
# j EXPR: a Python expression on d, the JSON on stdin (int64 fields come as strings).
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# bad RPC JSON CODE NEEDLE: the call fails with exit code 1, CODE and NEEDLE on stderr.
bad() {
  local rc=0 err
  err=$(ctl call "$1" "$2" 2>&1 >/dev/null) || rc=$?
  [ "$rc" = 1 ] || fail "$1: exit code $rc for a refused request"
  [[ $err == *"Code: $3"* && $err == *"$4"* ]] || fail "$1: wanted $3 with $4, got: $err"
}
L=paywire.finance.v1.LedgerService
F=paywire.finance.v1.FeeService
X=paywire.finance.v1.FxService
for s in $L $F $X; do
  ctl list | grep -qx "$s" || fail "list: $s"
done
mer=mer_00000000000000000000000042

# ---- LedgerService ----
macct() { echo "{\"merchant\":{\"merchantId\":\"$mer\",\"kind\":\"ACCOUNT_KIND_MERCHANT_$1\",\"currency\":\"$2\"}}"; }
pacct() { echo "{\"platform\":{\"kind\":\"ACCOUNT_KIND_$1\",\"counterparty\":\"$2\",\"currency\":\"$3\"}}"; }
# entry ACCOUNT_JSON AMOUNT CURRENCY DEBIT|CREDIT
entry() { echo "{\"account\":$1,\"amount\":{\"amountMinor\":\"$2\",\"currency\":\"$3\"},\"side\":\"NORMAL_BALANCE_$4\",\"purpose\":\"$4\"}"; }
# transfer ID KIND PENDING CHECK ENTRY...
transfer() {
  local id=$1 kind=$2 pending=$3 check=$4 es
  shift 4
  es=$(IFS=,; echo "$*")
  echo "{\"transfer\":{\"id\":\"$id\",\"kind\":\"$kind\",\"mode\":\"MODE_TEST\",\"entries\":[$es]},\"pending\":$pending,\"balanceCheck\":\"BALANCE_CHECK_$check\"}"
}
avail=$(macct AVAILABLE USD)
# posted [pending debits] of the merchant's available USD (or CURRENCY)
balance() {
  ctl call $L/GetAccount "{\"account\":$(macct AVAILABLE "${1:-USD}"),\"mode\":\"MODE_TEST\"}" |
    j "'%d %d' % (int(d['account'].get('posted', {}).get('amountMinor', 0)), int(d['account'].get('pendingDebits', {}).get('amountMinor', 0)))"
}
# One-phase funding: platform cash 100.00 USD to the merchant's available.
out=$(ctl call $L/CreateTransfer "$(transfer txf_adjust_fund1 adjust false NONE \
  "$(entry "$(pacct PLATFORM_CASH bank_a USD)" 10000 USD DEBIT)" "$(entry "$avail" 10000 USD CREDIT)")")
[ "$(echo "$out" | j "d['transfer']['state']")" = TRANSFER_STATE_POSTED ] || fail "CreateTransfer one-phase: $out"
[ "$(balance)" = "10000 0" ] || fail "balance after funding: $(balance)"
# Two-phase: a refund of 12.00 reserved (pending debit), then posted.
refund() {
  transfer "$1" refund true MERCHANT_FUNDS "$(entry "$avail" "$2" USD DEBIT)" \
    "$(entry "$(pacct PARTNER_RECEIVABLE acq_a USD)" "$2" USD CREDIT)"
}
out=$(ctl call $L/CreateTransfer "$(refund txf_refund_r1 1200)")
[ "$(echo "$out" | j "d['transfer']['state'], d['transfer'].get('twoPhase')")" = "('TRANSFER_STATE_PENDING', True)" ] ||
  fail "CreateTransfer two-phase: $out"
[ "$(balance)" = "10000 1200" ] || fail "balance with the reservation: $(balance)"
out=$(ctl call $L/PostTransfer '{"transferId":"txf_refund_r1","mode":"MODE_TEST","partnerReference":"acq-refund-1"}')
[ "$(echo "$out" | j "d['transfer']['state']")" = TRANSFER_STATE_POSTED ] || fail "PostTransfer: $out"
[ "$(balance)" = "8800 0" ] || fail "balance after the post: $(balance)"
# A second reservation of 5.00, voided: the funds come back.
ctl call $L/CreateTransfer "$(refund txf_refund_r2 500)" >/dev/null || fail "CreateTransfer r2"
[ "$(balance)" = "8800 500" ] || fail "balance with the second reservation: $(balance)"
out=$(ctl call $L/VoidTransfer '{"transferId":"txf_refund_r2","mode":"MODE_TEST"}')
[ "$(echo "$out" | j "d['transfer']['state']")" = TRANSFER_STATE_VOIDED ] || fail "VoidTransfer: $out"
[ "$(balance)" = "8800 0" ] || fail "balance after the void: $(balance)"
out=$(ctl call $L/GetTransfer '{"transferId":"txf_refund_r1","mode":"MODE_TEST"}')
[ "$(echo "$out" | j "d['transfer']['state'], d['transfer']['partnerReference'], len(d['transfer']['entries'])")" = \
  "('TRANSFER_STATE_POSTED', 'acq-refund-1', 2)" ] || fail "GetTransfer: $out"
# The account's entries with the balance after each posted one, paged one at a time.
posted=" " tok=
for _ in $(seq 20); do
  out=$(ctl call $L/ListAccountEntries "{\"account\":$avail,\"mode\":\"MODE_TEST\",\"pageSize\":1,\"pageToken\":\"$tok\"}")
  [ "$(echo "$out" | j "len(d.get('entries', []))")" -le 1 ] || fail "ListAccountEntries page size: $out"
  posted+=$(echo "$out" | j "''.join('%s:%s:%s ' % (e['transferId'], e['phase'], int(e.get('balanceAfter', {}).get('amountMinor', 0))) for e in d.get('entries', []))")
  tok=$(echo "$out" | j "d.get('nextPageToken', '')")
  [ -z "$tok" ] && break
done
[[ $posted == *" txf_adjust_fund1:ENTRY_PHASE_POSTED:10000 "* ]] || fail "ListAccountEntries:$posted"
[[ $posted == *" txf_refund_r1:ENTRY_PHASE_POST:8800 "* ]] || fail "ListAccountEntries:$posted"
[[ $posted == *" txf_refund_r2:ENTRY_PHASE_VOID:"* ]] || fail "ListAccountEntries:$posted"
# ExportEntries (server streaming: one JSON message a line): in sequence order, and each
# transfer's posted debits equal its credits.
ctl call $L/ExportEntries '{"mode":"MODE_TEST"}' >"$tmp/export.json" || fail ExportEntries
python3 - "$tmp/export.json" <<'PY' || fail "ExportEntries: $(cat "$tmp/export.json")"
import json, sys
seqs, net, ids = [], {}, set()
for line in open(sys.argv[1]):
    for e in json.loads(line).get("entries", []):
        seqs.append(int(e["sequence"]))
        ids.add(e["transferId"])
        if e.get("phase") in ("ENTRY_PHASE_POSTED", "ENTRY_PHASE_POST"):
            a = int(e["amount"]["amountMinor"])
            k = (e["transferId"], e["amount"]["currency"])
            net[k] = net.get(k, 0) + (a if e["side"] == "NORMAL_BALANCE_DEBIT" else -a)
assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
assert {"txf_adjust_fund1", "txf_refund_r1", "txf_refund_r2"} <= ids, ids
assert net and all(v == 0 for v in net.values()), net
PY
[ "$(ctl call $L/CheckLedger '{}' | j "len(d.get('differences', []))")" = 0 ] || fail "CheckLedger: $(ctl call $L/CheckLedger '{}')"
# Bad: an unbalanced transfer is refused naming the entries, and nothing is written;
# over-drawing the merchant's funds is refused with its reason.
bad $L/CreateTransfer "$(transfer txf_adjust_bad1 adjust false NONE \
  "$(entry "$(pacct PLATFORM_CASH bank_a USD)" 100 USD DEBIT)" "$(entry "$avail" 99 USD CREDIT)")" \
  INVALID_ARGUMENT '"field":"transfer.entries"'
bad $L/GetTransfer '{"transferId":"txf_adjust_bad1","mode":"MODE_TEST"}' NOT_FOUND txf_adjust_bad1
bad $L/CreateTransfer "$(refund txf_refund_r3 8801)" FAILED_PRECONDITION INSUFFICIENT_FUNDS
[ "$(balance)" = "8800 0" ] || fail "balance after refused transfers: $(balance)"

# ---- FeeService ----
now=$(date +%s)
eff=$((now + 3602)) # the lead time is an hour
ts() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
rules='[{"method":"card","currency":"USD","basisPoints":250,"fixedMinor":"30"},{"method":"bank","currency":"USD","basisPoints":80,"minMinor":"50","maxMinor":"500"},{"basisPoints":290}]'
bad $F/SetFeeSchedule "{\"idempotencyKey\":\"fee-early\",\"schedule\":{\"merchantId\":\"$mer\",\"rules\":$rules,\"effectiveTime\":\"$(ts $((now + 60)))\"}}" \
  INVALID_ARGUMENT '"field":"schedule.effective_time"'
out=$(ctl call $F/SetFeeSchedule "{\"idempotencyKey\":\"fee-1\",\"schedule\":{\"merchantId\":\"$mer\",\"rules\":$rules,\"effectiveTime\":\"$(ts $eff)\"}}")
sched=$(echo "$out" | j "d['schedule']['id']")
[ -n "$sched" ] || fail "SetFeeSchedule: $out"
[ "$(ctl call $F/SetFeeSchedule "{\"idempotencyKey\":\"fee-1\",\"schedule\":{\"merchantId\":\"$mer\",\"rules\":$rules,\"effectiveTime\":\"$(ts $eff)\"}}" | j "d['schedule']['id']")" = "$sched" ] ||
  fail "SetFeeSchedule replay"
out=$(ctl call $F/GetFeeSchedule "{\"merchantId\":\"$mer\",\"atTime\":\"$(ts $eff)\"}")
[ "$(echo "$out" | j "d['schedule']['id'], len(d['schedule']['rules'])")" = "('$sched', 3)" ] || fail "GetFeeSchedule: $out"
bad $F/GetFeeSchedule "{\"merchantId\":\"$mer\",\"atTime\":\"$(ts "$now")\"}" NOT_FOUND ""
bad $F/CalculateFee "{\"merchantId\":\"$mer\",\"method\":\"card\",\"amount\":{\"amountMinor\":\"1000\",\"currency\":\"USD\"},\"atTime\":\"$(ts $((now + 7200)))\"}" \
  INVALID_ARGUMENT '"field":"at_time"'
# A capture at the effective time may be priced once that is at most an hour ahead.
while [ $(($(date +%s) + 3600)) -lt $eff ]; do sleep 0.2; done
fee() {
  ctl call $F/CalculateFee "{\"merchantId\":\"$mer\",\"method\":\"$1\",\"amount\":{\"amountMinor\":\"$2\",\"currency\":\"$3\"},\"atTime\":\"$(ts $eff)\"}" |
    j "int(d['fee']['amountMinor']), d['fee']['currency'], d['scheduleId'] == '$sched'"
}
[ "$(fee card 12000 USD)" = "(330, 'USD', True)" ] || fail "card fee: $(fee card 12000 USD)"    # 2.5% + 30
[ "$(fee bank 1000 USD)" = "(50, 'USD', True)" ] || fail "bank fee: $(fee bank 1000 USD)"       # 8, at least 50
[ "$(fee bank 100000 USD)" = "(500, 'USD', True)" ] || fail "bank fee: $(fee bank 100000 USD)"  # 800, at most 500
[ "$(fee card 10000 EUR)" = "(290, 'EUR', True)" ] || fail "any fee: $(fee card 10000 EUR)"     # 2.9%, any
out=$(ctl call $F/CalculateFee "{\"merchantId\":\"$mer\",\"method\":\"card\",\"amount\":{\"amountMinor\":\"12000\",\"currency\":\"USD\"},\"atTime\":\"$(ts $eff)\"}")
[ "$(echo "$out" | j "d['rule']['basisPoints'], int(d['rule']['fixedMinor'])")" = "(250, 30)" ] || fail "CalculateFee rule: $out"

# ---- FxService ----
out=$(ctl call $X/ListCurrencies '{}')
[ "$(echo "$out" | j "sorted((c['code'], c.get('exponent', 0)) for c in d['currencies'] if c['code'] in ('JPY', 'USD', 'BHD'))")" = \
  "[('BHD', 3), ('JPY', 0), ('USD', 2)]" ] || fail "ListCurrencies: $out"
# 151.25 JPY per USD.
[ "$(ctl call $X/PublishRates "{\"idempotencyKey\":\"rates-1\",\"rates\":[{\"baseCurrency\":\"USD\",\"quoteCurrency\":\"JPY\",\"mantissa\":\"15125\",\"scale\":2,\"source\":\"pwctl-test\",\"asOfTime\":\"$(ts $(($(date +%s) - 10)))\"}]}" | j "d['accepted']")" = 1 ] ||
  fail PublishRates
bad $X/PublishRates "{\"idempotencyKey\":\"rates-2\",\"rates\":[{\"baseCurrency\":\"USD\",\"quoteCurrency\":\"JPY\",\"mantissa\":\"0\",\"scale\":2,\"source\":\"pwctl-test\",\"asOfTime\":\"$(ts "$now")\"}]}" \
  INVALID_ARGUMENT '"field":"rates[0].mantissa"'
out=$(ctl call $X/GetRate '{"baseCurrency":"USD","quoteCurrency":"JPY"}')
[ "$(echo "$out" | j "int(d['rate']['mantissa']), d['rate']['scale'], d['rate']['source']")" = "(15125, 2, 'pwctl-test')" ] || fail "GetRate: $out"
bad $X/CreateQuote "{\"idempotencyKey\":\"q-0\",\"merchantId\":\"$mer\",\"fromCurrency\":\"USD\",\"toCurrency\":\"JPY\",\"lockSeconds\":301,\"mode\":\"MODE_TEST\"}" \
  INVALID_ARGUMENT '"field":"lock_seconds"'
out=$(ctl call $X/CreateQuote "{\"idempotencyKey\":\"q-1\",\"merchantId\":\"$mer\",\"fromCurrency\":\"USD\",\"toCurrency\":\"JPY\",\"lockSeconds\":300,\"mode\":\"MODE_TEST\"}")
quote=$(echo "$out" | j "d['quote']['id']")
[[ $quote == quo_* ]] || fail "CreateQuote: $out"
# The offered rate is the mid less the spread, exactly: offered × 10 000 = mid × (10 000 − spread).
echo "$out" | python3 -c '
import json, sys
q = json.load(sys.stdin)["quote"]
m, o, s = q["midRate"], q["offeredRate"], q["spreadBasisPoints"]
mid, off = int(m["mantissa"]), int(o["mantissa"])
ms, os_ = m.get("scale", 0), o.get("scale", 0)
assert (mid, ms) == (15125, 2) and 0 < s < 10000, q
assert off * 10**ms * 10000 == mid * 10**os_ * (10000 - s), q
' || fail "CreateQuote rates: $out"
# 10.00 USD at the offered rate 150.49375: 1504.9375 → 1505 JPY; at mid 1512.5 → 1512; 7 to FX revenue.
out=$(ctl call $X/Convert "{\"idempotencyKey\":\"c-1\",\"quoteId\":\"$quote\",\"amount\":{\"amountMinor\":\"1000\",\"currency\":\"USD\"},\"mode\":\"MODE_TEST\"}")
[ "$(echo "$out" | j "[(int(d[k]['amountMinor']), d[k]['currency']) for k in ('converted', 'midAmount', 'spread')]")" = \
  "[(1505, 'JPY'), (1512, 'JPY'), (7, 'JPY')]" ] || fail "Convert: $out"
txf=$(echo "$out" | j "d['transferId']")
[ "$(balance)" = "7800 0" ] || fail "USD after the conversion: $(balance)"
[ "$(balance JPY)" = "1505 0" ] || fail "JPY after the conversion: $(balance JPY)"
[ "$(ctl call $L/GetTransfer "{\"transferId\":\"$txf\",\"mode\":\"MODE_TEST\"}" | j "d['transfer']['state']")" = TRANSFER_STATE_POSTED ] ||
  fail "the conversion's transfer $txf"
[ "$(ctl call $X/Convert "{\"idempotencyKey\":\"c-1\",\"quoteId\":\"$quote\",\"amount\":{\"amountMinor\":\"1000\",\"currency\":\"USD\"},\"mode\":\"MODE_TEST\"}" | j "d['transferId']")" = "$txf" ] ||
  fail "Convert replay"
# Another amount on the booked quote (the same one replays it, whatever the key).
bad $X/Convert "{\"idempotencyKey\":\"c-2\",\"quoteId\":\"$quote\",\"amount\":{\"amountMinor\":\"2000\",\"currency\":\"USD\"},\"mode\":\"MODE_TEST\"}" \
  FAILED_PRECONDITION QUOTE_USED
q2=$(ctl call $X/CreateQuote "{\"idempotencyKey\":\"q-2\",\"merchantId\":\"$mer\",\"fromCurrency\":\"USD\",\"toCurrency\":\"JPY\",\"lockSeconds\":60,\"mode\":\"MODE_TEST\"}" | j "d['quote']['id']")
bad $X/Convert "{\"idempotencyKey\":\"c-3\",\"quoteId\":\"$q2\",\"amount\":{\"amountMinor\":\"100\",\"currency\":\"EUR\"},\"mode\":\"MODE_TEST\"}" \
  INVALID_ARGUMENT '"field":"amount.currency"'
[ "$(balance)" = "7800 0" ] || fail "USD after refused conversions: $(balance)"
[ "$(ctl call $L/CheckLedger '{}' | j "len(d.get('differences', []))")" = 0 ] || fail "CheckLedger after FX: $(ctl call $L/CheckLedger '{}')"

kill -TERM "$pid"
wait "$pid" || fail "server exit status $?"
pid=
echo "pwctl_finance_test: ok"
