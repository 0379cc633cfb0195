-- The acquirer simulator's own records (acquirer.proto): one row per
-- idempotency key, as a partner keeps them.
CREATE TABLE operations (
    key text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 128),
    kind text NOT NULL CHECK (kind IN ('AUTHORIZATION', 'CAPTURE', 'VOID', 'REFUND')),
    status text NOT NULL CHECK (status IN ('APPROVED', 'DECLINED')),
    decline_code text NOT NULL DEFAULT '',
    soft_decline boolean NOT NULL DEFAULT false,
    reference text NOT NULL UNIQUE,
    amount_minor int8 NOT NULL CHECK (amount_minor >= 0),
    currency text NOT NULL,
    authorization_reference text NOT NULL DEFAULT '',
    requests int NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operations_authorization ON operations (authorization_reference);
