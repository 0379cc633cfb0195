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
- every transfer names one balance check, the one finance.md's transfer-id
  table gives its kind, and the check holds once the transfer is applied
  (AVAILABLE: every debited merchant_available keeps posted - pending
  debits >= 0; MERCHANT_FUNDS: each debited merchant's pending + available
  posted, less both accounts' pending debits, stays >= 0; NONE: nothing);
- replayed in order, the balances at each checkpoint are as stated, every
  account ends at its stated balance, every touched account is stated, and
  nothing is left pending.

  ledger_table_test.py PAYMENT_FLOW_MD FINANCE_MD [--self-test]

--self-test also checks that wrong tables fail: it applies mutations (an
amount changed, an entry dropped, a side flipped, an end balance changed,
an unknown kind, a mode mixed in, a wrong balance check, a payout moved
before the funds it pays, a checkpoint changed) and expects each to be
reported, the last three by the check that exists for them.
Standard library only. Exit status 0 when every check holds, 1 otherwise.
"""
import re
import sys

PHASES = ("posted", "pending", "post", "void")
ACCOUNT_RE = re.compile(r"^([a-z_]+)(?:\(([^()]+)\))?$")
AMOUNT_RE = re.compile(r"^[1-9][0-9]*$")
SIGNED_RE = re.compile(r"^-?(0|[1-9][0-9]*)$")
CURRENCY_RE = re.compile(r"^[A-Z]{3,5}$")
CHECKS = ("NONE", "AVAILABLE", "MERCHANT_FUNDS")
CHECK_RE = re.compile(r"\b(NONE|AVAILABLE|MERCHANT_FUNDS)\b")


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
    """(kind -> normal side, transfer kind -> balance check) from finance.md.

    A kind's check is the first of NONE, AVAILABLE, MERCHANT_FUNDS in the
    last column of its row ("pending -> posted or voided, MERCHANT_FUNDS
    (NONE for unapplied funds)" is MERCHANT_FUNDS); rows of one kind agree.
    """
    _, accounts = table_after(finance_lines, "<!-- ledger-accounts")
    normal = {}
    for row in accounts:
        if row[2] not in ("DEBIT", "CREDIT"):
            raise ValueError("finance.md: account %s has normal side %r" % (row[0], row[2]))
        normal[row[0]] = row[2]
    _, ids = table_after(finance_lines, "<!-- transfer-ids")
    kinds = {}
    for row in ids:
        m = re.match(r"^txf_([a-z]+)_<[a-z]+>$", row[0])
        if m is None:
            raise ValueError("finance.md: transfer id %r is not txf_<kind>_<cause>" % row[0])
        c = CHECK_RE.search(row[-1])
        if c is None:
            raise ValueError("finance.md: transfer id %s names no balance check" % row[0])
        if kinds.get(m.group(1), c.group(1)) != c.group(1):
            raise ValueError("finance.md: kind %s has two balance checks" % m.group(1))
        kinds[m.group(1)] = c.group(1)
    return normal, kinds


def posted_balance(normal, account, b):
    """The posted balance of an account's counters, signed by its normal side."""
    kind = ACCOUNT_RE.match(account).group(1)
    return b[0] - b[1] if normal[kind] == "DEBIT" else b[1] - b[0]


def check_rule(rule, t, balances, normal):
    """The ways transfer t, just applied, breaks its balance check (finance.md)."""
    errors = []
    debited = sorted({key for key, side, _ in t["entries"] if side == 0})
    if rule == "AVAILABLE":
        for mode, account, currency in debited:
            if not account.startswith("merchant_available("):
                continue
            b = balances[(mode, account, currency)]
            left = posted_balance(normal, account, b) - b[2]
            if left < 0:
                errors.append("AVAILABLE refuses it: %s %s payable %d < 0" % (account, currency, left))
    elif rule == "MERCHANT_FUNDS":
        merchants = sorted({(mode, ACCOUNT_RE.match(a).group(2), cur) for mode, a, cur in debited
                            if a.startswith("merchant_")})
        for mode, merchant, currency in merchants:
            funds = 0
            for kind in ("merchant_pending", "merchant_available"):
                account = "%s(%s)" % (kind, merchant)
                b = balances.get((mode, account, currency), [0, 0, 0, 0])
                funds += posted_balance(normal, account, b) - b[2]
            if funds < 0:
                errors.append("MERCHANT_FUNDS refuses it: %s %s funds %d < 0" % (merchant, currency, funds))
    return errors


def check(flow_lines, finance_lines):
    """Every problem found, as a list of messages (empty: the table holds)."""
    errors = []
    normal, kinds = finance_tables(finance_lines)
    _, entries = table_after(flow_lines, "<!-- ledger-entries")
    _, ends = table_after(flow_lines, "<!-- ledger-end-balances")
    _, points = table_after(flow_lines, "<!-- ledger-checkpoints")
    checkpoints = {}  # transfer number -> [(row number, cells)]
    for n, row in enumerate(points, 1):
        checkpoints.setdefault(row[0], []).append((n, row))

    transfers = {}  # id -> {"mode", "phase", "entries": [...], "closed", "check"}
    balances = {}  # (mode, account, currency) -> [posted_dr, posted_cr, pending_dr, pending_cr]
    seen_points = set()

    def settle(number, tid):
        """Evaluates a transfer's check and the checkpoints once its rows end."""
        t = transfers.get(tid)
        if t is not None and t["check"] in CHECKS and not t["checked"]:
            t["checked"] = True
            for e in check_rule(t["check"], t, balances, normal):
                errors.append("%s: %s" % (tid, e))
        for n, row in checkpoints.get(number, []):
            seen_points.add(n)
            errors.extend(check_point(n, row, balances, normal))

    last = None  # (number, transfer id) of the previous row
    for n, row in enumerate(entries, 1):
        where = "entry row %d" % n
        if len(row) != 9:
            errors.append("%s: %d cells, want 9" % (where, len(row)))
            continue
        number, tid, phase, mode, account, currency, debit, credit, rule = row
        if last is not None and last != (number, tid):
            settle(*last)
        last = (number, tid)
        m = re.match(r"^txf_([a-z]+)_[a-z]+_[A-Za-z0-9]+$", tid)
        if m is None:
            errors.append("%s: transfer id %r is not txf_<kind>_<cause id>" % (where, tid))
            continue
        if m.group(1) not in kinds:
            errors.append("%s: transfer kind %r is not in finance.md's table" % (where, m.group(1)))
        if phase not in PHASES:
            errors.append("%s: phase %r is not one of %s" % (where, phase, ", ".join(PHASES)))
            continue
        t = transfers.setdefault(tid, {"mode": None, "phase": None, "entries": [], "closed": None,
                                       "check": None, "checked": False})
        if phase in ("post", "void"):
            if rule:
                errors.append("%s: a %s row names no balance check (it is never refused), not %r"
                              % (where, phase, rule))
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
        if rule not in CHECKS:
            errors.append("%s: balance check %r is not one of %s" % (where, rule, ", ".join(CHECKS)))
        elif t["check"] is not None and t["check"] != rule:
            errors.append("%s: %s mixes balance checks %s and %s" % (where, tid, t["check"], rule))
        elif m.group(1) in kinds and rule != kinds[m.group(1)]:
            errors.append("%s: %s has balance check %s, finance.md gives kind %s %s"
                          % (where, tid, rule, m.group(1), kinds[m.group(1)]))
        t["check"] = t["check"] or rule
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

    if last is not None:
        settle(*last)
    for n, row in enumerate(points, 1):
        if n not in seen_points:
            errors.append("checkpoint row %d: after %r, which is no transfer's number" % (n, row[0]))

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


def check_point(n, row, balances, normal):
    """The ways a checkpoint row disagrees with the balances replayed so far."""
    where = "checkpoint row %d" % n
    if len(row) != 6:
        return ["%s: %d cells, want 6" % (where, len(row))]
    number, account, mode, currency, want_posted, want_pending = row
    am = ACCOUNT_RE.match(account)
    if am is None or am.group(1) not in normal:
        return ["%s: account %r has no kind from finance.md" % (where, account)]
    if not SIGNED_RE.match(want_posted) or not SIGNED_RE.match(want_pending):
        return ["%s: balances %r, %r are not integers" % (where, want_posted, want_pending)]
    b = balances.get((mode, account, currency), [0, 0, 0, 0])
    got = (posted_balance(normal, account, b), b[2])
    if got != (int(want_posted), int(want_pending)):
        return ["%s: after %s, %s %s is posted %d, pending debits %d; the table says %s, %s"
                % (where, number, account, currency, got[0], got[1], want_posted, want_pending)]
    return []


def mutations(flow_lines):
    """(name, mutated lines) pairs, each a wrong table check() must refuse."""
    rows = [i for i, l in enumerate(flow_lines) if re.match(r"^\| [0-9]+ \| `txf_", l)]
    ends = [i for i, l in enumerate(flow_lines) if re.match(r"^\| `[a-z_]+(\([^)]*\))?` \| live \|", l)]
    points = [i for i, l in enumerate(flow_lines) if re.match(r"^\| [0-9]+ \| `(?!txf_)[a-z_]+", l)]
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

    def transfer_rows(kind):
        return [i for i in rows if ("`txf_%s_" % kind) in flow_lines[i]]

    dropped = list(flow_lines)
    del dropped[first]
    # The payout's rows moved before availability: every end balance stays,
    # but AVAILABLE refuses the payout where it now stands.
    avail, payout = transfer_rows("avail"), transfer_rows("payout")
    early = list(flow_lines)
    moved = [early[i] for i in payout]
    for i in reversed(payout):
        del early[i]
    early[avail[0]:avail[0]] = moved
    wrong_check = list(flow_lines)
    for i in payout:
        wrong_check[i] = field(8, "NONE")(wrong_check[i])
    return [
        ("an amount changed", edit(first, bump), None),
        ("an entry dropped", dropped, None),
        ("a side flipped", edit(first, flip), None),
        ("an end balance changed", edit(last_end, field(4, "291")), None),
        ("an unknown account kind", edit(first, field(4, "`partner_owes(sim)`")), None),
        ("a mode mixed into a transfer", edit(first, field(3, "test")), None),
        ("an unknown transfer kind", edit(first, field(1, "`txf_auth_pay_1`")), None),
        ("a wrong normal side", edit(last_end, field(3, "CREDIT")), None),
        ("a wrong balance check", wrong_check, "finance.md gives kind payout AVAILABLE"),
        ("a payout before the funds it pays", early, "AVAILABLE refuses it"),
        ("a checkpoint changed", edit(points[-1], field(4, "7971")), "checkpoint row"),
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
        missed = []
        for name, lines, want in mutations(flow):
            found = check(lines, finance)
            if not found or (want is not None and not any(want in e for e in found)):
                missed.append(name)
        for name in missed:
            print("ledger table self-test: %s was not detected" % name)
        if missed:
            return 1
        print("ledger table self-test: every wrong table was refused")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
