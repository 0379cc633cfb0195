-- Settlement (docs/design/finance.md, Settlement; issue 19): the settlement
-- delay per merchant ('*' is the default for merchants without a row), and
-- what the availability job scans for.
CREATE TABLE settlement_settings (
    merchant_id text PRIMARY KEY,
    -- Captured funds become available this many days after the capture was posted (T+N).
    delay_days int NOT NULL DEFAULT 2 CHECK (delay_days BETWEEN 0 AND 60)
);
INSERT INTO settlement_settings (merchant_id) VALUES ('*');

-- Posted captures in posting order: the availability job reads the oldest first.
CREATE INDEX transfers_captures_posted ON transfers (post_time) WHERE kind = 'capture'
    AND state = 'POSTED';

-- Settlement batches (finance.md, Settlement): one per (mode, merchant, currency, day).
-- PREPARED: lines linked, txf_payout_<stl> not booked yet (the creating call, or its retry with
-- the same key, books it); READY once it is. CARRIED_FORWARD: net not positive, nothing linked.
CREATE TABLE settlement_batches (
    id text PRIMARY KEY CHECK (id ~ '^stl_[0-9A-HJKMNP-TV-Z]{26}$'),
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    merchant_id text NOT NULL,
    currency text NOT NULL,
    settlement_date date NOT NULL,
    idempotency_key text NOT NULL,
    state text NOT NULL CHECK (state IN ('PREPARED', 'READY', 'IN_TRANSIT', 'SETTLED', 'FAILED',
        'CARRIED_FORWARD')),
    account_id text NOT NULL DEFAULT '',
    cutoff_time timestamptz NOT NULL,
    gross_captured int8 NOT NULL DEFAULT 0,
    refunded int8 NOT NULL DEFAULT 0,
    fees int8 NOT NULL DEFAULT 0,
    reserve_withheld int8 NOT NULL DEFAULT 0,
    other int8 NOT NULL DEFAULT 0,
    net_payout int8 NOT NULL,
    lines int8 NOT NULL DEFAULT 0,
    failure_reason text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    -- MarkBatchPaid: the bank's reference or the transaction's hash.
    payout_reference text NOT NULL DEFAULT '',
    paid_time timestamptz,
    settled_time timestamptz,
    -- The ledger transfer the last transition books (txf_paid_ or txf_return_<stl>), which
    -- account pays it ('paid', 'return_clearing', 'return_cash'), and whether it is booked: a
    -- transition is decided under the row lock first, then booked with its fixed id, so a crash
    -- in between is completed by the next call on the batch, and two confirmations can never
    -- book both a payment and a return of the same money.
    ledger_transfer_id text NOT NULL DEFAULT '',
    ledger_transfer_kind text NOT NULL DEFAULT '',
    ledger_booked boolean NOT NULL DEFAULT true,
    CHECK (net_payout = gross_captured - refunded - fees - reserve_withheld + other),
    UNIQUE (mode, merchant_id, currency, settlement_date)
);
CREATE INDEX settlement_batches_merchant ON settlement_batches (mode, merchant_id, id);

-- Each line (an entry of the merchant's available account) in at most one batch.
CREATE TABLE settlement_links (
    entry_sequence int8 PRIMARY KEY REFERENCES entries (sequence),
    batch_id text NOT NULL REFERENCES settlement_batches (id)
);
CREATE INDEX settlement_links_batch ON settlement_links (batch_id, entry_sequence);
