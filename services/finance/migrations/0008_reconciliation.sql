-- Reconciliation of partner reports against the ledger (docs/design/finance.md,
-- Reconciliation; issue 19). A report is one run; its rows are stored whole
-- with their outcome; every outcome other than matched or booked is a break.
-- Also the business clock and the job table of services/common/svc_sched.h,
-- which the reconciliation and settlement jobs run on.

CREATE TABLE svc_clock (one boolean PRIMARY KEY DEFAULT true CHECK (one),
                        offset_ms bigint NOT NULL DEFAULT 0);
INSERT INTO svc_clock DEFAULT VALUES;
CREATE FUNCTION svc_now() RETURNS timestamptz LANGUAGE sql STABLE
  AS $$ SELECT now() + offset_ms * interval '1 millisecond' FROM svc_clock $$;
CREATE TABLE svc_jobs (name text PRIMARY KEY, next_run timestamptz NOT NULL,
                       runs bigint NOT NULL DEFAULT 0, last_run_time timestamptz,
                       last_error text);
-- Only the owner moves the clock (tests, the demo); the service reads it.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON svc_clock FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finance_app') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON svc_clock FROM finance_app;
    END IF;
END
$$;

-- An id "<prefix>_" + 26 Crockford base32 characters, as services/common's
-- svc_new_id makes them (here from gen_random_uuid's random bits), for rows
-- the jobs create in SQL.
CREATE FUNCTION recon_new_id(prefix text) RETURNS text LANGUAGE sql VOLATILE AS $$
  SELECT prefix || '_' || string_agg(substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ',
         substring(b.bits FROM i * 5 + 1 FOR 5)::bit(5)::int + 1, 1), '' ORDER BY i)
  FROM (SELECT '00' || (('x' || replace(gen_random_uuid()::text, '-', ''))::bit(128))::text
        AS bits) b, generate_series(0, 25) i
$$;

-- Per partner (or '*', the default for partners without a row): the drift in
-- minor units within which an amount still matches (Blnk's allowable_drift, in
-- integers here), when the partner settles (days after our booking) and how
-- long after that a missing row becomes a break; the institution whose cash
-- account a partner's payouts reach.
CREATE TABLE recon_partners (
    partner text PRIMARY KEY,
    amount_drift_minor int8 NOT NULL DEFAULT 0 CHECK (amount_drift_minor >= 0),
    settlement_lag_days int NOT NULL DEFAULT 1 CHECK (settlement_lag_days BETWEEN 0 AND 60),
    grace_days int NOT NULL DEFAULT 2 CHECK (grace_days BETWEEN 0 AND 60),
    cash_institution text NOT NULL DEFAULT 'bank_1'
);
INSERT INTO recon_partners (partner) VALUES ('*');

CREATE TABLE recon_runs (
    id text PRIMARY KEY CHECK (id ~ '^rec_[0-9A-HJKMNP-TV-Z]{26}$'),
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    partner text NOT NULL,
    report_id text NOT NULL,
    report_date date NOT NULL,
    content_sha256 text NOT NULL,
    rows int8 NOT NULL,
    matched int8 NOT NULL DEFAULT 0,
    breaks int8 NOT NULL DEFAULT 0,
    -- The transfers booked from the report's rows, in row order.
    transfer_ids text[] NOT NULL DEFAULT '{}',
    create_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mode, partner, report_id)
);

CREATE TABLE recon_rows (
    id text PRIMARY KEY CHECK (id ~ '^prw_[0-9A-HJKMNP-TV-Z]{26}$'),
    run_id text NOT NULL REFERENCES recon_runs (id),
    mode text NOT NULL,
    partner text NOT NULL,
    line int NOT NULL,
    partner_reference text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('capture', 'refund', 'refund_reversal', 'chargeback',
        'chargeback_reversal', 'bank_credit', 'bank_debit', 'payout', 'fee', 'bank_charge')),
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    booked_time timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('MATCHED', 'BOOKED',
        'MISSING_IN_LEDGER', 'AMOUNT_MISMATCH', 'CURRENCY_MISMATCH', 'DUPLICATE')),
    -- The ledger transfer the row matched or booked ('' for none).
    transfer_id text NOT NULL DEFAULT '',
    ledger_amount_minor int8,
    ledger_currency text,
    UNIQUE (run_id, line)
);
CREATE INDEX recon_rows_key ON recon_rows (mode, partner, partner_reference, kind);
-- A partner's line is matched or booked once, whatever reports repeat it (the matcher marks
-- repeats DUPLICATE under the partner's lock; this is the backstop).
CREATE UNIQUE INDEX recon_rows_once ON recon_rows (mode, partner, partner_reference, kind)
    WHERE outcome IN ('MATCHED', 'BOOKED');

CREATE TABLE recon_breaks (
    id text PRIMARY KEY CHECK (id ~ '^brk_[0-9A-HJKMNP-TV-Z]{26}$'),
    mode text NOT NULL,
    partner text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('MISSING_IN_LEDGER', 'MISSING_IN_REPORT',
        'AMOUNT_MISMATCH', 'DUPLICATE', 'CURRENCY_MISMATCH', 'FEE_MISMATCH')),
    state text NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'AUTO_CLEARED', 'RESOLVED')),
    -- '' for MISSING_IN_REPORT (the job raises those, no report).
    run_id text NOT NULL DEFAULT '',
    row_id text NOT NULL DEFAULT '',
    partner_reference text NOT NULL DEFAULT '',
    item_kind text NOT NULL,
    transfer_id text NOT NULL DEFAULT '',
    -- Either side may be missing; the currencies differ only for CURRENCY_MISMATCH.
    partner_amount_minor int8,
    partner_currency text,
    ledger_amount_minor int8,
    ledger_currency text,
    expected_settlement_date date,
    resolution_note text NOT NULL DEFAULT '',
    adjustment_transfer_id text NOT NULL DEFAULT '',
    resolved_by text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    clear_time timestamptz,
    CHECK ((state = 'OPEN') = (clear_time IS NULL))
);
CREATE INDEX recon_breaks_list ON recon_breaks (mode, id);
CREATE INDEX recon_breaks_open ON recon_breaks (mode, partner, partner_reference, item_kind)
    WHERE state = 'OPEN';
-- One MISSING_IN_REPORT break per ledger item, however often the job runs.
CREATE UNIQUE INDEX recon_breaks_missing_item ON recon_breaks (mode, transfer_id)
    WHERE kind = 'MISSING_IN_REPORT';

-- The ledger's transfers by the partner's reference (what report rows match on).
CREATE INDEX transfers_partner_reference ON transfers (mode, partner_reference, kind)
    WHERE partner_reference <> '';
