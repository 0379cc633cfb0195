#!/usr/bin/env bash
# scripts/pg against a throwaway cluster on its own port: idempotent start and
# stop, databases, 127.0.0.1 only, data kept across a restart, bad names refused.
set -euo pipefail
pg="$1/scripts/pg"
tmp="$(mktemp -d)"
chmod 755 "$tmp"
export PW_PG_DIR="$tmp/pg" PW_PG_PORT=55499
trap '"$pg" stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
q() { psql -X -At -v ON_ERROR_STOP=1 "$("$pg" url pw_test_db)" -c "$1"; }

"$pg" start
"$pg" start || fail "second start is not a no-op"
"$pg" status >/dev/null || fail "status after start"
"$pg" createdb pw_test_db
"$pg" createdb pw_test_db || fail "createdb of an existing database"
[ "$(q "SHOW listen_addresses")" = 127.0.0.1 ] || fail "listens beyond 127.0.0.1"
q "CREATE TABLE t (k text PRIMARY KEY); INSERT INTO t VALUES ('kept')" >/dev/null
"$pg" restart
[ "$(q "SELECT k FROM t")" = kept ] || fail "row lost across restart"
# A server killed with -9 leaves postmaster.pid behind; once its PID belongs to
# another live process of the same user (as after many tests' clusters), start
# must start the server rather than take that process for it.
pid=$(head -n1 "$PW_PG_DIR/data/postmaster.pid")
kill -9 "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
sleep 1 # the backends leave once they see the postmaster gone
if [ "$(id -u)" -eq 0 ]; then
  setpriv --reuid=postgres --regid=postgres --clear-groups sleep 120 &
else
  sleep 120 &
fi
sleeper=$!
sed -i "1s/.*/$sleeper/" "$PW_PG_DIR/data/postmaster.pid"
"$pg" start 2>"$tmp/start.err" || fail "start with a stale postmaster.pid: $(cat "$tmp/start.err")"
grep -q "not this cluster's server" "$tmp/start.err" || fail "the stale postmaster.pid was not reported"
kill -0 "$sleeper" || fail "start harmed the process the stale file named"
kill "$sleeper"
[ "$(q "SELECT k FROM t")" = kept ] || fail "row lost across a kill -9 and a stale postmaster.pid"
if "$pg" createdb 'x; DROP DATABASE postgres' 2>/dev/null; then fail "bad name accepted"; fi
# Least privilege: each service's database is its own.
"$pg" service pwsa
"$pg" service pwsa || fail "service is not idempotent"
"$pg" service pwsb
as() { psql -X -At -v ON_ERROR_STOP=1 "postgresql://$1@127.0.0.1:55499/$2" -c "$3" 2>&1; }
as pwsa_owner pwsa "CREATE TABLE merchants (id text PRIMARY KEY)" >/dev/null || fail "owner cannot create"
as pwsa_app pwsa "INSERT INTO merchants VALUES ('m1')" >/dev/null || fail "app cannot write its data"
[ "$(as pwsa_app pwsa "SELECT id FROM merchants")" = m1 ] || fail "app cannot read its data"
out=$(as pwsa_app pwsa "DROP TABLE merchants") && fail "app may drop tables"
[[ $out == *"must be owner"* ]] || fail "drop refused for another reason: $out"
out=$(as pwsa_app pwsa "CREATE TABLE x (i int)") && fail "app may create tables"
out=$(as pwsb_app pwsa "SELECT 1") && fail "service b reaches service a's database"
[[ $out == *"permission denied for database"* ]] || fail "b refused for another reason: $out"
out=$(as pwsb_owner pwsa "SELECT 1") && fail "b's owner reaches a's database"
"$pg" dropdb pwsa
"$pg" dropdb pwsb
"$pg" dropdb pw_test_db
"$pg" dropdb pw_test_db || fail "dropdb of an absent database"
"$pg" stop
"$pg" stop || fail "second stop is not a no-op"
if "$pg" status >/dev/null; then fail "status says running after stop"; fi
echo "pg_test: ok"
