-- The compliance service's audit log (docs/design/compliance.md, Audit log).
-- Run as compliance_owner by `compliance-server --migrate`; the service runs as
-- compliance_app, which may only INSERT and SELECT audit_events.

CREATE TABLE audit_events (
    sequence bigint PRIMARY KEY CHECK (sequence >= 1),
    actor text NOT NULL,
    action text NOT NULL,
    subject_id text NOT NULL,
    source text NOT NULL,
    time timestamptz NOT NULL,
    -- For queries only (jsonb reorders keys); never hashed.
    detail jsonb NOT NULL,
    -- The exact RFC 8785 bytes hashed: the record.
    canonical bytea NOT NULL,
    previous_hash bytea NOT NULL CHECK (length(previous_hash) = 32),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    -- Who reported it (the caller's mTLS identity) and its own event id:
    -- appending the same event id again adds nothing (durable, unlike
    -- idempotency_keys, which are swept).
    reporter text NOT NULL,
    event_key text NOT NULL,
    request_sha256 bytea NOT NULL CHECK (length(request_sha256) = 32),
    UNIQUE (reporter, event_key)
);
CREATE INDEX audit_events_subject ON audit_events (subject_id, sequence);
CREATE INDEX audit_events_actor ON audit_events (actor, sequence);
CREATE INDEX audit_events_time ON audit_events (time);

-- The chain head: one row, locked FOR UPDATE by every append, so sequences
-- have no gaps and the chain no forks.
CREATE TABLE audit_head (
    id int PRIMARY KEY CHECK (id = 1),
    sequence bigint NOT NULL,
    hash bytea NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO audit_head VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- Append-only for everyone, the owner included (a trigger raises); only a
-- table owner or superuser who disables the trigger can rewrite a row, and
-- VerifyChain then names it.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

REVOKE ALL ON audit_events FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM compliance_app;
        GRANT SELECT, INSERT ON audit_events TO compliance_app;
        GRANT SELECT, UPDATE ON audit_head TO compliance_app;
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
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'compliance_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO compliance_app;
    END IF;
END
$$;
