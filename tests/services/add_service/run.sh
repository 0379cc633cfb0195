#!/usr/bin/env bash
# Adding a service, end to end, exactly as docs/adding-a-service.md says: the
# source tree is copied, every file of the page is written from the fenced
# block that names its path (diff blocks applied with patch -p1), ping-server
# and pwctl are built, and the page's "By hand" steps run against the test
# cluster (PW_PG_PORT, PW_PG_DIR): database and roles, migrate, serve with TLS,
# health SERVING, reflection, Ping (a replay, a new key), SIGTERM exits 0.
#   run.sh PAYWIRE_SRC WORK_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
doc="$src/docs/adding-a-service.md"
tree="$work/src"
fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/ping.log" ] && tail -20 "$work/ping.log" >&2
  exit 1
}
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  bash "$src/scripts/pg" dropdb ping >/dev/null 2>&1 || true
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$tree"

echo "== the source tree, and the page's files"
(cd "$src" && git ls-files -z | xargs -0 cp --parents -t "$tree")
python3 - "$doc" "$tree" <<'PY'
import os, re, subprocess, sys
doc, tree = sys.argv[1], sys.argv[2]
files = patches = 0
# A fence whose info string is "LANG PATH": the file's full content, or a diff.
for lang, path, body in re.findall(r"^```(\w+) (\S+)\n(.*?)^```$", open(doc).read(), re.M | re.S):
    if lang == "diff":
        subprocess.run(["patch", "-p1", "--forward", "--no-backup-if-mismatch", "--fuzz=0", "-s"],
                       input=body, text=True, cwd=tree, check=True)
        patches += 1
    else:
        dest = os.path.join(tree, path)
        if os.path.exists(dest):
            sys.exit(f"{path}: the page writes a file that already exists")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        open(dest, "w").write(body)
        files += 1
print(f"{files} files written, {patches} diffs applied")
if files < 6 or patches < 2:
    sys.exit("the page lost a file or an edit")
PY
grep -qx 'add_subdirectory(ping)' "$tree/services/CMakeLists.txt" || fail "services/CMakeLists.txt edit"
grep -q '"ping 15066 ' "$tree/scripts/stack" || fail "scripts/stack edit"
# The page's ports must be free in today's stack: in no other row of its table, and nowhere
# else in the script (the webhook receiver's port, another service's target).
python3 - "$tree/scripts/stack" <<'PY' || fail "scripts/stack: the page's service takes a port the stack already uses"
import re, sys
text = open(sys.argv[1]).read()
rows = re.findall(r'^\s+"([\w-]+) (\d+) (\d+) ', text, re.M)
ports = [p for _, grpc, admin in rows for p in (grpc, admin)]
dups = sorted({p for p in ports if ports.count(p) > 1})
ping = [r for r in rows if r[0] == "ping"]
rest = re.sub(r'^\s+"ping .*$', '', text, flags=re.M)
taken = [p for _, grpc, admin in ping for p in (grpc, admin) if re.search(rf'\b{p}\b', rest)]
if dups or taken or len(ping) != 1:
    sys.exit(f"ports used twice: {sorted(set(dups + taken))}")
print(f"{len(rows)} services, {len(ports)} ports, all distinct")
PY
bash -n "$tree/scripts/stack" || fail "scripts/stack no longer parses"

echo "== build ping-server and pwctl"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$tree" -B "$work/build" -DCMAKE_BUILD_TYPE=Debug -DPW_INTEROP=OFF >"$work/configure.log" 2>&1 ||
  { tail -20 "$work/configure.log"; fail configure; }
cmake --build "$work/build" -j"$jobs" --target ping-server pwctl >"$work/build.log" 2>&1 ||
  { grep -m20 -E 'error|Error' "$work/build.log"; fail build; }
server="$work/build/services/ping/ping-server"
pwctl_bin="$work/build/clients/pwctl/pwctl"

echo "== database, certificates, config, migrate"
pg_port="${PW_PG_PORT:-15432}"
bash "$src/scripts/pg" dropdb ping >/dev/null
bash "$src/scripts/pg" service ping
bash "$tree/scripts/certs" "$work/certs" ping >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/ping.conf" <<CONF
listen = 127.0.0.1:$port
database_url = postgresql://ping_app@127.0.0.1:$pg_port/ping
migrate_database_url = postgresql://ping_owner@127.0.0.1:$pg_port/ping
tls_cert = $work/certs/ping.crt
tls_key = $work/certs/ping.key
tls_ca = $work/certs/ca.crt
internal_identities = spiffe://paywire/operator
CONF
"$server" --config "$work/ping.conf" --migrate || fail "--migrate"
owner=$(psql -X -At "postgresql://postgres@127.0.0.1:$pg_port/ping" -c "SELECT tableowner FROM pg_tables WHERE tablename = 'pings'")
[ "$owner" = ping_owner ] || fail "pings is owned by '$owner', not ping_owner"

echo "== serve, health, reflection"
"$server" --config "$work/ping.conf" >"$work/ping.log" 2>&1 &
pid=$!
ctl() { "$pwctl_bin" --addr "localhost:$port" --cacert "$work/certs/ca.crt" \
  --cert "$work/certs/operator.crt" --key "$work/certs/operator.key" "$@"; }
serving=
for _ in $(seq 200); do
  if ctl call grpc.health.v1.Health/Check '{"service": "paywire.ping.v1.PingService"}' 2>/dev/null |
    grep -q '"SERVING"'; then
    serving=1
    break
  fi
  kill -0 "$pid" 2>/dev/null || fail "ping-server exited"
  sleep 0.1
done
[ -n "$serving" ] || fail "health never SERVING"
ctl list | grep -qx paywire.ping.v1.PingService || fail "reflection does not list paywire.ping.v1.PingService"

echo "== Ping: a first call, its replay, a new key"
count() { python3 -c 'import json,sys; print(int(json.load(sys.stdin)["count"]))'; }
S=paywire.ping.v1.PingService/Ping
a=$(ctl call $S '{"idempotencyKey": "k1", "note": "hello"}') || fail "Ping k1: $a"
b=$(ctl call $S '{"idempotencyKey": "k1", "note": "hello"}') || fail "Ping k1 again: $b"
c=$(ctl call $S '{"idempotencyKey": "k2", "note": "hello"}') || fail "Ping k2: $c"
echo "$a"; echo "$c"
[ "$a" = "$b" ] || fail "a replay answered differently: $a / $b"
[[ $a == *'"id":"png_'* ]] || fail "no png_ id: $a"
[ "$(echo "$a" | count)" = 1 ] || fail "first count: $a"
[ "$(echo "$c" | count)" = 2 ] || fail "a new key did not add a ping: $c"
if out=$(ctl call $S '{"idempotencyKey": "k1", "note": "other"}' 2>&1); then
  fail "a reused key with another request was accepted: $out"
fi
[[ $out == *FAILED_PRECONDITION* ]] || fail "reused key: $out"
rows=$(psql -X -At "postgresql://postgres@127.0.0.1:$pg_port/ping" -c "SELECT count(*) FROM pings")
[ "$rows" = 2 ] || fail "$rows rows in pings, want 2"

echo "== SIGTERM"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "ping-server exited $rc after SIGTERM"
echo "add_service: docs/adding-a-service.md built, migrated, served and called a new service"
