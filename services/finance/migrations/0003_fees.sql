-- Fee schedules (docs/design/finance.md, Fees): per merchant, or the default
-- (merchant_id ''), each in force from its effective_time (set at least an
-- hour ahead), kept for ever so CalculateFee(at_time) never changes.
CREATE TABLE fee_schedules (
    id text PRIMARY KEY CHECK (id ~ '^fsc_[0-9A-HJKMNP-TV-Z]{26}$'),
    merchant_id text NOT NULL DEFAULT '',
    effective_time timestamptz NOT NULL,
    -- paywire.finance.v1.FeeSchedule, packed (its id and effective_time included).
    schedule bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, effective_time)
);

-- Audit events for compliance's log (schedule changes), written in the
-- transaction that makes the change; published by svc_outbox (not started yet).
CREATE TABLE audit_outbox (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    subject_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    published_time timestamptz,
    lease_until timestamptz,
    attempts bigint NOT NULL DEFAULT 0,
    last_error text,
    dead_time timestamptz
);
CREATE INDEX audit_outbox_due ON audit_outbox (id) WHERE published_time IS NULL AND dead_time IS NULL;
