-- Routing (issue 18): the rules a version at a time (the newest applies;
-- older ones are kept), and the failover step of an authorization.
CREATE TABLE routing_rule_versions (
    version int8 PRIMARY KEY CHECK (version > 0),
    create_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE routing_rules (
    version int8 NOT NULL REFERENCES routing_rule_versions (version),
    position int NOT NULL,
    -- '' matches any.
    method text NOT NULL DEFAULT '',
    currency text NOT NULL DEFAULT '',
    issuer_country text NOT NULL DEFAULT '',
    -- 0: unbounded.
    min_amount_minor int8 NOT NULL DEFAULT 0 CHECK (min_amount_minor >= 0),
    max_amount_minor int8 NOT NULL DEFAULT 0 CHECK (max_amount_minor >= 0),
    -- Connector names, comma-separated, in order; split: one percentage each, or ''.
    connectors text NOT NULL CHECK (connectors <> ''),
    split text NOT NULL DEFAULT '',
    cheapest_first boolean NOT NULL DEFAULT false,
    PRIMARY KEY (version, position)
);

-- Failover: the outcome on the attempt's own row (the replay guard, as in
-- record_authorization), then the next attempt to another connector, under
-- the payment's lock; the payment stays PROCESSING. False (nothing
-- inserted) when the attempt was recorded before.
CREATE FUNCTION record_failover(att_id text, outcome text, decline_code text, soft boolean,
                                partner_reference text, next_id text, next_connector text,
                                owner text, lease_ms int8)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    a payment_attempts;
BEGIN
    SELECT * INTO STRICT a FROM payment_attempts WHERE id = att_id;
    PERFORM 1 FROM payments WHERE id = a.payment_id AND state = 'PROCESSING' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE payment_attempts t SET outcome = record_failover.outcome,
        decline_code = record_failover.decline_code, soft_decline = soft,
        partner_reference = record_failover.partner_reference, end_time = now()
    WHERE t.id = att_id AND t.outcome IN ('PENDING', 'TIMED_OUT');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO payment_attempts (id, payment_id, connector, lease_owner, lease_until)
    VALUES (next_id, a.payment_id, next_connector, owner,
            now() + lease_ms * interval '1 millisecond');
    RETURN true;
END $$;

-- svc_idempotent's records (SetRoutingRules; services/common), as the other
-- services keep them; the sweeper removes old ones.
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
