-- Webhooks (docs/design/orchestration.md, "Webhook delivery"; webhooks.c), in
-- two svc_outbox tables: webhook_events, one row per outbox event a merchant
-- may see (copied by a trigger in the transaction that wrote the event), fanned
-- out to the merchant's endpoints; webhook_deliveries, one row per (event,
-- endpoint), each retried on its own, so a failing endpoint delays only itself.
-- Signing secrets are never stored here (merchant keeps them sealed).

CREATE TABLE webhook_events (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    merchant_id text NOT NULL,
    type text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    published_time timestamptz,
    lease_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    dead_time timestamptz
);
CREATE INDEX webhook_events_due ON webhook_events (id)
    WHERE published_time IS NULL AND dead_time IS NULL;

CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL,
    endpoint_id text NOT NULL,
    merchant_id text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    published_time timestamptz,
    lease_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    dead_time timestamptz,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (id)
    WHERE published_time IS NULL AND dead_time IS NULL;

-- Endpoints whose delivery was given up (webhook_give_up_ms, 3 days by default).
CREATE TABLE webhook_endpoint_health (
    endpoint_id text PRIMARY KEY,
    merchant_id text NOT NULL,
    failing_since timestamptz NOT NULL,
    last_error text NOT NULL DEFAULT ''
);

-- Internal events (holds, deposits) are for consumers, never for webhooks.
CREATE FUNCTION outbox_to_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type NOT IN ('payment.held', 'payment.hold_released', 'deposit.confirmed') THEN
        INSERT INTO webhook_events (event_id, merchant_id, type)
        VALUES (NEW.event_id, NEW.merchant_id, NEW.type);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_webhooks AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_to_webhooks();
