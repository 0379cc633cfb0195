-- The finance service's ledger (docs/design/finance.md, Ledger model and Data).
-- Run as finance_owner by `finance-server --migrate` or pwmigrate; the service
-- runs as finance_app (DML by default privileges, less UPDATE/DELETE on entries).
-- Amounts are int8 minor units; nothing here is a float.

CREATE TABLE accounts (
    id text PRIMARY KEY CHECK (id ~ '^acc_[0-9A-HJKMNP-TV-Z]{26}$'),
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    kind text NOT NULL CHECK (kind IN (
        'merchant_pending', 'merchant_available', 'merchant_reserved', 'platform_revenue',
        'fx_revenue', 'partner_receivable', 'partner_fees', 'platform_cash',
        'settlement_clearing', 'fx_position', 'frozen_funds', 'unapplied_funds')),
    -- A merchant id, a partner or an institution; '' for platform accounts without one.
    owner text NOT NULL DEFAULT '',
    currency text NOT NULL CHECK (currency ~ '^[A-Z0-9]{3,5}$'),
    -- Sub-account of a hot platform account (design: 16 shards); 0 while batching suffices.
    shard int2 NOT NULL DEFAULT 0 CHECK (shard BETWEEN 0 AND 15),
    -- Fixed by the kind (the accounts table of finance.md).
    normal_balance text NOT NULL CHECK (normal_balance = CASE
        WHEN kind IN ('partner_receivable', 'partner_fees', 'platform_cash', 'fx_position')
        THEN 'DEBIT' ELSE 'CREDIT' END),
    posted_debits int8 NOT NULL DEFAULT 0 CHECK (posted_debits >= 0),
    posted_credits int8 NOT NULL DEFAULT 0 CHECK (posted_credits >= 0),
    pending_debits int8 NOT NULL DEFAULT 0 CHECK (pending_debits >= 0),
    pending_credits int8 NOT NULL DEFAULT 0 CHECK (pending_credits >= 0),
    -- Entries applied to the account (every entry row counts one).
    version int8 NOT NULL DEFAULT 0 CHECK (version >= 0),
    create_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mode, kind, owner, currency, shard)
);

CREATE TABLE transfers (
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    -- txf_<kind>_<cause id> (the transfer id table of finance.md).
    id text NOT NULL CHECK (id ~ '^txf_[a-z]+_[A-Za-z0-9_-]{1,100}$'),
    kind text NOT NULL CHECK (kind ~ '^[a-z]{1,20}$' AND starts_with(id, 'txf_' || kind || '_')),
    state text NOT NULL CHECK (state IN ('PENDING', 'POSTED', 'VOIDED')),
    reference text NOT NULL DEFAULT '',
    partner_reference text NOT NULL DEFAULT '',
    two_phase boolean NOT NULL,
    balance_check text NOT NULL CHECK (balance_check IN ('NONE', 'AVAILABLE', 'MERCHANT_FUNDS')),
    create_time timestamptz NOT NULL,
    post_time timestamptz,
    void_time timestamptz,
    PRIMARY KEY (mode, id),
    CHECK (two_phase OR state = 'POSTED'),
    CHECK ((state = 'POSTED') = (post_time IS NOT NULL)),
    CHECK ((state = 'VOIDED') = (void_time IS NOT NULL))
);

-- Append-only: a correction is a new transfer. POSTED/PENDING rows are a
-- transfer's entries as created; POST/VOID rows move a PENDING entry.
CREATE TABLE entries (
    sequence bigserial PRIMARY KEY,
    mode text NOT NULL,
    transfer_id text NOT NULL,
    account_id text NOT NULL REFERENCES accounts (id),
    side text NOT NULL CHECK (side IN ('DEBIT', 'CREDIT')),
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    phase text NOT NULL CHECK (phase IN ('POSTED', 'PENDING', 'POST', 'VOID')),
    purpose text NOT NULL DEFAULT '' CHECK (length(purpose) <= 40),
    -- The account's posted balance (signed by its normal side) after this row.
    balance_after_minor int8 NOT NULL,
    time timestamptz NOT NULL,
    FOREIGN KEY (mode, transfer_id) REFERENCES transfers (mode, id)
);
CREATE INDEX entries_account ON entries (account_id, sequence);
CREATE INDEX entries_transfer ON entries (mode, transfer_id, sequence);
CREATE INDEX entries_mode ON entries (mode, sequence);

-- Entries never change: the grants (below) and this trigger, which also stops
-- an owner or a superuser by mistake.
CREATE FUNCTION entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable (% refused); book a correcting transfer', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER entries_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_immutable();

-- At commit: each (transfer, phase) the transaction wrote has debits equal to its
-- credits per currency (with positive amounts, so at least 2 entries), and every entry is on an account of the
-- transfer's mode and of the entry's currency. So even a bug in the service
-- cannot commit money created or destroyed.
CREATE FUNCTION entries_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.currency, count(*) AS n,
           sum(CASE WHEN e.side = 'DEBIT' THEN e.amount_minor::numeric ELSE 0 END) AS dr,
           sum(CASE WHEN e.side = 'CREDIT' THEN e.amount_minor::numeric ELSE 0 END) AS cr,
           bool_and(a.mode = e.mode AND a.currency = e.currency) AS same
      INTO bad
      FROM entries e JOIN accounts a ON a.id = e.account_id
     WHERE e.mode = NEW.mode AND e.transfer_id = NEW.transfer_id AND e.phase = NEW.phase
     GROUP BY e.currency
    HAVING sum(CASE WHEN e.side = 'DEBIT' THEN e.amount_minor::numeric
                    ELSE -e.amount_minor::numeric END) <> 0
        OR NOT bool_and(a.mode = e.mode AND a.currency = e.currency)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'transfer % (%) is unbalanced in %: debits % credits %, accounts match %',
            NEW.transfer_id, NEW.phase, bad.currency, bad.dr, bad.cr, bad.same
            USING ERRCODE = 'check_violation', CONSTRAINT = 'entries_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION entries_check_balanced();

REVOKE UPDATE, DELETE, TRUNCATE ON entries FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finance_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON entries FROM finance_app;
    END IF;
END
$$;

-- Idempotency (svc_idempotent), as in services/merchant/migrations/0001_merchants.sql.
CREATE TABLE idempotency_keys (
    scope text NOT NULL,
    method text NOT NULL,
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_sha256 bytea NOT NULL,
    response bytea,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, method, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (create_time);
