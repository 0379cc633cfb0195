-- Payment facts for compliance monitoring (monitoring.c): every capture's event
-- is copied, in the transaction that wrote it, into monitoring_events, whose
-- svc_outbox consumer sends the payment to compliance's RecordPayments
-- (idempotent on the payment id).
CREATE TABLE monitoring_events (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    payment_id text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    published_time timestamptz,
    lease_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    dead_time timestamptz
);
CREATE INDEX monitoring_events_due ON monitoring_events (id)
    WHERE published_time IS NULL AND dead_time IS NULL;

CREATE FUNCTION outbox_to_monitoring() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO monitoring_events (event_id, payment_id) VALUES (NEW.event_id, NEW.payment_id);
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_monitoring AFTER INSERT ON outbox
    FOR EACH ROW WHEN (NEW.type = 'payment.captured') EXECUTE FUNCTION outbox_to_monitoring();
