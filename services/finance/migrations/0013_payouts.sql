-- Payout instructions (docs/design/finance.md, "Payout execution and idempotency"; issue 19):
-- one per settlement batch, written (PREPARED) before anything leaves. The id is derived from
-- the batch's ("pyo_" + the batch id's 26 characters): it is the bank's idempotency key, so a
-- retry, or a run after a crash, asks for and sends the same instruction. The account number is
-- not stored here (the merchant service keeps it sealed); instruction_sha256 is the digest of the
-- exact content sent, so a retry that would send anything else (a destination changed since) is
-- refused instead of paying elsewhere.
CREATE TABLE payouts (
    id text PRIMARY KEY CHECK (id ~ '^pyo_[0-9A-HJKMNP-TV-Z]{26}$'),
    batch_id text NOT NULL UNIQUE REFERENCES settlement_batches (id),
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    rail text NOT NULL CHECK (rail IN ('SIMULATOR', 'BANK_API', 'BANK_FILE', 'CHAIN')),
    destination_id text NOT NULL,
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    instruction_sha256 text NOT NULL,
    state text NOT NULL DEFAULT 'PREPARED' CHECK (state IN ('PREPARED', 'SENT', 'CONFIRMED',
        'FAILED')),
    -- The bank's answer: its reference, its state (ACCEPTED, SETTLED, REJECTED, RETURNED), the
    -- reason code of a rejection or return, and how many requests it counted.
    bank_reference text NOT NULL DEFAULT '',
    bank_state text NOT NULL DEFAULT '',
    return_reason text NOT NULL DEFAULT '',
    bank_requests int NOT NULL DEFAULT 0,
    create_time timestamptz NOT NULL DEFAULT now(),
    send_time timestamptz,
    update_time timestamptz NOT NULL DEFAULT now()
);
