#!/usr/bin/env bash
# pwmigrate against the local cluster: applies, reruns as a no-op, refuses an edited file.
#   pwmigrate_test.sh PWMIGRATE_BIN REPO
set -euo pipefail
bin=$1
pg="$2/scripts/pg"
db="pwmigrate_test_$$"
tmp=$(mktemp -d)
trap '"$pg" dropdb "$db" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
"$pg" createdb "$db"
url=$("$pg" url "$db")
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
echo "CREATE TABLE ledger_accounts (id text PRIMARY KEY, currency text NOT NULL);" >"$tmp/0001_ledger_accounts.sql"
out=$("$bin" --db "$url" --dir "$tmp") || fail "first run: $out"
[[ $out == *"1 migration applied"* ]] || fail "first run said: $out"
out=$("$bin" --db "$url" --dir "$tmp") || fail "second run: $out"
[[ $out == *"0 migrations applied"* ]] || fail "second run said: $out"
echo "-- edited" >>"$tmp/0001_ledger_accounts.sql"
if out=$("$bin" --db "$url" --dir "$tmp" 2>&1); then fail "edited migration accepted"; fi
[[ $out == *"0001_ledger_accounts.sql was edited after it was applied"* ]] || fail "edited: $out"
echo "pwmigrate_test: ok"
