-- The merchant service's schema (docs/design/merchant.md). Amounts: none here.
-- Run as merchant_owner by `merchant-server --migrate` or pwmigrate; the
-- service runs as merchant_app (DML only, granted by default privileges).

CREATE TABLE merchants (
    seq bigserial UNIQUE,
    id text PRIMARY KEY CHECK (id ~ '^mer_[0-9A-HJKMNP-TV-Z]{26}$'),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    -- paywire.merchant.v1.LegalEntity, packed protobuf; tax_id inside is encrypted.
    legal_entity bytea NOT NULL,
    country char(2) NOT NULL,
    merchant_category_code char(4) NOT NULL,
    -- Comma-separated codes ("USD,EUR"), at least one.
    currencies text NOT NULL CHECK (currencies ~ '^[A-Z]{3,5}(,[A-Z]{3,5})*$'),
    support_email text NOT NULL DEFAULT '',
    website_url text NOT NULL DEFAULT '',
    state text NOT NULL CHECK (state IN ('PENDING_REVIEW', 'ACTIVE', 'SUSPENDED', 'CLOSED')),
    state_reason text NOT NULL DEFAULT '',
    compliance_case_id text NOT NULL DEFAULT '',
    etag int8 NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_state_seq ON merchants (state, seq);

CREATE TABLE api_keys (
    id text PRIMARY KEY CHECK (id ~ '^key_[0-9A-HJKMNP-TV-Z]{26}$'),
    merchant_id text NOT NULL REFERENCES merchants (id),
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    -- Comma-separated ("payments:write,merchants:read").
    scopes text NOT NULL,
    description text NOT NULL DEFAULT '',
    secret_prefix text NOT NULL,
    -- SHA-256 of the secret; the secret itself is never stored.
    secret_hash bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    create_time timestamptz NOT NULL DEFAULT now(),
    revoke_time timestamptz,
    last_used_time timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id, create_time);

CREATE TABLE settlement_destinations (
    seq bigserial UNIQUE,
    id text PRIMARY KEY CHECK (id ~ '^dst_[0-9A-HJKMNP-TV-Z]{26}$'),
    merchant_id text NOT NULL REFERENCES merchants (id),
    -- paywire.merchant.v1.SettlementDestination, packed; account numbers encrypted.
    destination bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    removed_time timestamptz
);

CREATE TABLE webhook_endpoints (
    seq bigserial UNIQUE,
    id text PRIMARY KEY CHECK (id ~ '^whk_[0-9A-HJKMNP-TV-Z]{26}$'),
    merchant_id text NOT NULL REFERENCES merchants (id),
    url text NOT NULL CHECK (url LIKE 'https://%'),
    -- Comma-separated; empty: every event type.
    event_types text NOT NULL DEFAULT '',
    enabled boolean NOT NULL DEFAULT true,
    -- Signing secrets, encrypted (the service needs them to sign deliveries).
    secret_ciphertext bytea NOT NULL,
    previous_secret_ciphertext bytea,
    previous_secret_until timestamptz,
    create_time timestamptz NOT NULL DEFAULT now(),
    deleted_time timestamptz
);

-- Idempotency: one row per (scope, method, key), written in the effect's transaction.
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

-- Compliance approvals known to this service. Until the compliance service
-- exists, operators (and the local stack) record approved cases here; the
-- activation check reads it exactly as it will read VerificationService/GetCase.
CREATE TABLE approved_compliance_cases (
    case_id text PRIMARY KEY,
    merchant_id text NOT NULL,
    approve_time timestamptz NOT NULL DEFAULT now()
);

-- Audit events for compliance's log, published from here (outbox).
CREATE TABLE audit_outbox (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    subject_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    published_time timestamptz
);
