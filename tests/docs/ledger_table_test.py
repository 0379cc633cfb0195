#!/usr/bin/env python3
"""Replays the ledger table of docs/design/payment-flow.md (issue 15).

Reads the accounts table and the transfer-id table of finance.md, then the
entries table and the end-balance table of payment-flow.md (each found by
the HTML comment before it), and checks that:
- every transfer id is txf_<kind>_<cause> with a kind from finance.md;
- every account kind exists in finance.md, with the normal side it declares;
- every entry is a positive integer on exactly one side;
- every transfer has two entries or more, uses one mode and balances per
  currency; a pending transfer never credits a merchant account, and is
  posted or voided at most once;
- replayed in order, every account ends at its stated balance, every touched
  account is stated, and nothing is left pending.

  ledger_table_test.py PAYMENT_FLOW_MD FINANCE_MD [--self-test]

--self-test also checks that wrong tables fail: it applies mutations (an
amount changed, an entry dropped, a side flipped, an end balance changed,
an unknown kind, a mode mixed in) and expects each to be reported.
Standard library only. Exit status 0 when every check holds, 1 otherwise.
"""
import re
import sys

PHASES = ("posted", "pending", "post", "void")
ACCOUNT_RE = re.compile(r"^([a-z_]+)(?:\(([^()]+)\))?$")
AMOUNT_RE = re.compile(r"^[1-9][0-9]*$")
SIGNED_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")
CURRENCY_RE = re.compile(r"^[A-Z]{3,5}$")


def table_after(lines, marker):
    """The rows (lists of cells, backticks removed) of the first table after a marker line."""
    start = next((i for i, line in enumerate(lines) if marker in line), None)
    if start is None:
        raise ValueError("no table marked %r" % marker)
    i = start + 1
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip().replace("`", "") for c in lines[i].strip().strip("|").split("|")]
        rows.append(cells)
        i += 1
    if len(rows) < 2:
        raise ValueError("table marked %r has no rows" % marker)
    return rows[0], rows[2:]


def finance_tables(finance_lines):
    """(kind -> normal side, set of transfer kinds) from finance.md."""
    _, accounts = table_after(finance_lines, "<!-- ledger-accounts")
    normal = {}
    for row in accounts:
        if row[2] not in ("DEBIT", "CREDIT"):
            raise ValueError("finance.md: account %s has normal side %r" % (row[0], row[2]))
        normal[row[0]] = row[2]
    _, ids = table_after(finance_lines, "<!-- transfer-ids")
    kinds = set()
    for row in ids:
        m = re.match(r"^txf_([a-z]+)_<[a-z]+>$", row[0])
        if m is None:
            raise ValueError("finance.md: transfer id %r is not txf_<kind>_<cause>" % row[0])
        kinds.add(m.group(1))
    return normal, kinds


def check(flow_lines, finance_lines):
    """Every problem found, as a list of messages (empty: the table holds)."""
    errors = []
    normal, kinds = finance_tables(finance_lines)
    _, entries = table_after(flow_lines, "<!-- ledger-entries")
    _, ends = table_after(flow_lines, "<!-- ledger-end-balances")

    transfers = {}  # id -> {"mode", "phase", "entries": [...], "closed"}
    balances = {}  # (mode, account, currency) -> [posted_dr, posted_cr, pending_dr, pending_cr]
    for n, row in enumerate(entries, 1):
        where = "entry row %d" % n
        if len(row) != 8:
            errors.append("%s: %d cells, want 8" % (where, len(row)))
            continue
        _, tid, phase, mode, account, currency, debit, credit = row
        m = re.match(r"^txf_([a-z]+)_[a-z]+_[A-Za-z0-9]+$", tid)
        if m is None:
            errors.append("%s: transfer id %r is not txf_<kind>_<cause id>" % (where, tid))
            continue
        if m.group(1) not in kinds:
            errors.append("%s: transfer kind %r is not in finance.md's table" % (where, m.group(1)))
        if phase not in PHASES:
            errors.append("%s: phase %r is not one of %s" % (where, phase, ", ".join(PHASES)))
            continue
        t = transfers.setdefault(tid, {"mode": None, "phase": None, "entries": [], "closed": None})
        if phase in ("post", "void"):
            if t["phase"] != "pending":
                errors.append("%s: %s of %s, which is not a pending transfer" % (where, phase, tid))
            elif t["closed"] is not None:
                errors.append("%s: %s of %s, already %s" % (where, phase, tid, t["closed"]))
            else:
                t["closed"] = phase
                for key, side, amount in t["entries"]:
                    b = balances[key]
                    b[2 + side] -= amount
                    if phase == "post":
                        b[side] += amount
            continue
        if t["phase"] is not None and t["phase"] != phase:
            errors.append("%s: %s mixes %s and %s entries" % (where, tid, t["phase"], phase))
        if t["closed"] is not None:
            errors.append("%s: entry of %s after its %s" % (where, tid, t["closed"]))
        t["phase"] = phase
        if mode not in ("live", "test"):
            errors.append("%s: mode %r is not live or test" % (where, mode))
        if t["mode"] is not None and t["mode"] != mode:
            errors.append("%s: %s mixes modes %s and %s" % (where, tid, t["mode"], mode))
        t["mode"] = mode
        am = ACCOUNT_RE.match(account)
        if am is None or am.group(1) not in normal:
            errors.append("%s: account %r has no kind from finance.md" % (where, account))
            continue
        if not CURRENCY_RE.match(currency):
            errors.append("%s: currency %r" % (where, currency))
            continue
        if bool(debit) == bool(credit):
            errors.append("%s: an entry is a debit or a credit, not %r/%r" % (where, debit, credit))
            continue
        value = debit or credit
        if not AMOUNT_RE.match(value):
            errors.append("%s: amount %r is not a positive integer of minor units" % (where, value))
            continue
        side = 0 if debit else 1
        if phase == "pending" and side == 1 and am.group(1).startswith("merchant_"):
            errors.append("%s: pending %s credits merchant account %s" % (where, tid, account))
        key = (mode, account, currency)
        t["entries"].append((key, side, int(value)))
        b = balances.setdefault(key, [0, 0, 0, 0])
        b[(2 if phase == "pending" else 0) + side] += int(value)

    for tid, t in transfers.items():
        if t["phase"] is None:
            continue
        if len(t["entries"]) < 2:
            errors.append("%s: %d entry, a transfer has two or more" % (tid, len(t["entries"])))
        sums = {}
        for (mode, _, currency), side, amount in t["entries"]:
            s = sums.setdefault(currency, [0, 0])
            s[side] += amount
        for currency, (dr, cr) in sorted(sums.items()):
            if dr != cr:
                errors.append("%s: %s debits %d != credits %d" % (tid, currency, dr, cr))

    stated = set()
    for n, row in enumerate(ends, 1):
        where = "end balance row %d" % n
        if len(row) != 5:
            errors.append("%s: %d cells, want 5" % (where, len(row)))
            continue
        account, mode, currency, side, want = row
        key = (mode, account, currency)
        stated.add(key)
        am = ACCOUNT_RE.match(account)
        if am is None or am.group(1) not in normal:
            errors.append("%s: account %r has no kind from finance.md" % (where, account))
            continue
        if side != normal[am.group(1)]:
            errors.append("%s: %s is %s-normal in finance.md, not %s"
                          % (where, account, normal[am.group(1)], side))
        if not SIGNED_RE.match(want):
            errors.append("%s: balance %r is not an integer" % (where, want))
            continue
        dr, cr, pdr, pcr = balances.get(key, [0, 0, 0, 0])
        got = dr - cr if normal[am.group(1)] == "DEBIT" else cr - dr
        if got != int(want):
            errors.append("%s %s %s: ends at %d, the table says %s" % (account, mode, currency, got, want))
    for key, (dr, cr, pdr, pcr) in sorted(balances.items()):
        if key not in stated:
            errors.append("%s %s %s: touched but has no end balance row" % (key[1], key[0], key[2]))
        if pdr or pcr:
            errors.append("%s %s %s: still pending (%d debit, %d credit)" % (key[1], key[0], key[2], pdr, pcr))
    return errors


def mutations(flow_lines):
    """(name, mutated lines) pairs, each a wrong table check() must refuse."""
    rows = [i for i, l in enumerate(flow_lines) if re.match(r"^\| [0-9]+ \| `txf_", l)]
    ends = [i for i, l in enumerate(flow_lines) if re.match(r"^\| `[a-z_]+(\([^)]*\))?` \| live \|", l)]
    first, last_end = rows[0], ends[-1]

    def edit(index, fn):
        out = list(flow_lines)
        out[index] = fn(out[index])
        return out

    def cells(line):
        return line.strip().strip("|").split("|")

    def join(c):
        return "|" + "|".join(c) + "|\n"

    def bump(line):
        c = cells(line)
        for k in (6, 7):
            if c[k].strip():
                c[k] = " %d " % (int(c[k]) + 1)
        return join(c)

    def flip(line):
        c = cells(line)
        c[6], c[7] = c[7], c[6]
        return join(c)

    def field(k, value):
        def fn(line):
            c = cells(line)
            c[k] = " %s " % value
            return join(c)
        return fn

    dropped = list(flow_lines)
    del dropped[first]
    return [
        ("an amount changed", edit(first, bump)),
        ("an entry dropped", dropped),
        ("a side flipped", edit(first, flip)),
        ("an end balance changed", edit(last_end, field(4, "291"))),
        ("an unknown account kind", edit(first, field(4, "`partner_owes(sim)`"))),
        ("a mode mixed into a transfer", edit(first, field(3, "test"))),
        ("an unknown transfer kind", edit(first, field(1, "`txf_auth_pay_1`"))),
        ("a wrong normal side", edit(last_end, field(3, "CREDIT"))),
    ]


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.stderr.write("usage: ledger_table_test.py PAYMENT_FLOW_MD FINANCE_MD [--self-test]\n")
        return 2
    with open(args[0], encoding="utf-8") as f:
        flow = f.readlines()
    with open(args[1], encoding="utf-8") as f:
        finance = f.readlines()
    try:
        errors = check(flow, finance)
    except ValueError as e:
        errors = [str(e)]
    for e in errors:
        print("ledger table: " + e)
    if errors:
        return 1
    print("ledger table: every transfer balances and every account ends as stated")
    if "--self-test" in argv:
        missed = [name for name, lines in mutations(flow) if not check(lines, finance)]
        for name in missed:
            print("ledger table self-test: %s was not detected" % name)
        if missed:
            return 1
        print("ledger table self-test: every wrong table was refused")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
