-- Transaction monitoring (docs/design/compliance.md, Monitoring): versioned
-- rule sets, the payments counted in velocity windows, and alerts.

-- Each SetRules is a new version; the highest is in force.
CREATE TABLE rule_sets (
    version bigint PRIMARY KEY CHECK (version >= 1),
    -- paywire.compliance.v1.GetRulesResponse, packed.
    rules bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);

-- A payment counted once, whatever delivers it again.
CREATE TABLE payment_facts (
    payment_id text PRIMARY KEY,
    merchant_id text NOT NULL,
    payer_key text NOT NULL DEFAULT '',
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency text NOT NULL,
    payer_country text NOT NULL DEFAULT '',
    time timestamptz NOT NULL
);
CREATE INDEX payment_facts_merchant ON payment_facts (merchant_id, time);
CREATE INDEX payment_facts_payer ON payment_facts (payer_key, time) WHERE payer_key <> '';

CREATE TABLE alerts (
    seq bigserial UNIQUE,
    id text PRIMARY KEY CHECK (id ~ '^alt_[0-9A-HJKMNP-TV-Z]{26}$'),
    rule_name text NOT NULL,
    rule_version bigint NOT NULL,
    merchant_id text NOT NULL,
    -- The payment that made the rule fire: one alert per (rule version, rule, payment).
    payment_id text NOT NULL,
    -- Every payment in the hit (the velocity window), comma-separated.
    payment_ids text NOT NULL,
    state text NOT NULL CHECK (state IN ('OPEN', 'DISMISSED', 'ESCALATED')),
    case_id text NOT NULL DEFAULT '',
    screening_id text NOT NULL DEFAULT '',
    note text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (rule_version, rule_name, payment_id)
);
CREATE INDEX alerts_state_seq ON alerts (state, seq);
CREATE INDEX alerts_merchant_seq ON alerts (merchant_id, seq);
