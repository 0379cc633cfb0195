-- The balance check of 0001 ran once per entry row at commit (a deferred
-- constraint trigger), each run a query over the row's transfer: measured as
-- the largest share of PostgreSQL's time per transfer under load
-- (docs/performance.md). It is now one set-based check per INSERT statement
-- over the rows it inserted (a transition table): per (mode, transfer, phase,
-- currency), the statement's debits equal its credits, and every entry is on
-- an account of its transfer's mode and of its own currency. Stricter than
-- the deferred check (a transfer's entries are balanced in each statement
-- that writes them, as the service writes all of a transfer's entries in one
-- statement), and just as impossible to bypass: sums of balanced parts
-- balance, entries are never updated or deleted, and COPY fires it too.
-- Each new row finds its account by a probe of the primary key (LATERAL,
-- OFFSET 0: a plan cached while accounts looked small must not scan it).
DROP TRIGGER entries_balanced ON entries;
DROP FUNCTION entries_check_balanced();

CREATE FUNCTION entries_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.mode, n.transfer_id, n.phase, n.currency,
           sum(CASE WHEN n.side = 'DEBIT' THEN n.amount_minor::numeric ELSE 0 END) AS dr,
           sum(CASE WHEN n.side = 'CREDIT' THEN n.amount_minor::numeric ELSE 0 END) AS cr,
           bool_and(a.mode IS NOT DISTINCT FROM n.mode
                    AND a.currency IS NOT DISTINCT FROM n.currency) AS same
      INTO bad
      FROM new_entries n
      LEFT JOIN LATERAL (SELECT a.mode, a.currency FROM accounts a WHERE a.id = n.account_id
                         OFFSET 0) a ON true
     GROUP BY n.mode, n.transfer_id, n.phase, n.currency
    HAVING sum(CASE WHEN n.side = 'DEBIT' THEN n.amount_minor::numeric
                    ELSE -n.amount_minor::numeric END) <> 0
        OR NOT bool_and(a.mode IS NOT DISTINCT FROM n.mode
                        AND a.currency IS NOT DISTINCT FROM n.currency)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transfer % (%) is unbalanced in %: debits % credits %, accounts match %',
            bad.transfer_id, bad.phase, bad.currency, bad.dr, bad.cr, bad.same
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER entries_balanced AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_check_balanced();
