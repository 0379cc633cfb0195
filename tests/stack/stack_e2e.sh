#!/usr/bin/env bash
# ctest stack_e2e (issue 20): `scripts/stack up` from the build under test, `scripts/stack
# status`, the README's demo (scripts/demo, which runs scripts/demo-payments: it fails on
# any step that misbehaves), and `scripts/stack down`, always, also after a failure.
# The stack is its own: files in PW_STACK_DIR (default /var/tmp/pw-stack-e2e-<build hash>,
# where the postgres user can reach its cluster when run as root), every port moved by
# PW_STACK_PORT_OFFSET (default 1000: PostgreSQL 16432, merchant 16061, ...), so it never
# meets the stack of `bash scripts/run` (15432, 15061, ...) nor another work tree's
# PostgreSQL. After a failure the logs stay in PW_STACK_DIR/logs (their tails are printed).
#   stack_e2e.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source="${1:?source dir}"
build="${2:?build dir}"
export PW_STACK_DIR="${PW_STACK_DIR:-/var/tmp/pw-stack-e2e-$(printf '%s' "$build" | md5sum | cut -c1-8)}"
export PW_STACK_PORT_OFFSET="${PW_STACK_PORT_OFFSET:-1000}"
export PW_PG_DIR="$PW_STACK_DIR/pg" # never a developer's PW_PG_DIR: this stack's own cluster

down() { bash "$source/scripts/stack" down >/dev/null 2>&1 || true; }
finish() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    for log in "$PW_STACK_DIR"/logs/*.log; do
      [ -f "$log" ] && { echo "--- tail of $log"; tail -5 "$log"; }
    done
    echo "stack_e2e: FAILED (logs in $PW_STACK_DIR/logs)"
  fi
  down
  exit "$rc"
}

# A run ended by ctest's timeout leaves its processes and pid files: stop them first.
down
rm -rf "$PW_STACK_DIR"
trap finish EXIT
t0=$(date +%s)
bash "$source/scripts/stack" up "$build"
t1=$(date +%s)
status=$(bash "$source/scripts/stack" status "$build")
echo "$status"
if echo "$status" | grep -v '^webhook-receiver' | grep ': running (pid' | grep -qv 'health SERVING'; then
  echo "stack_e2e: a service is running but not SERVING" >&2
  exit 1
fi
if echo "$status" | grep -q ': stopped'; then
  echo "stack_e2e: a process of the stack is not running" >&2
  exit 1
fi
bash "$source/scripts/demo" "$build"
t2=$(date +%s)
echo "stack_e2e: ok (stack up in $((t1 - t0)) s, demo in $((t2 - t1)) s, ports +$PW_STACK_PORT_OFFSET)"
