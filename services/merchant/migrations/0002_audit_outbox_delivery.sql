-- The audit outbox is published to compliance's AuditService (svc_outbox):
-- each row is leased while it is delivered, retried with backoff, or
-- dead-lettered when compliance refuses it for good.
ALTER TABLE audit_outbox
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN attempts bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN dead_time timestamptz;

CREATE INDEX audit_outbox_due ON audit_outbox (id) WHERE published_time IS NULL AND dead_time IS NULL;
