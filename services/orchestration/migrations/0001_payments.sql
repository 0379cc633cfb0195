-- The orchestration service's schema (docs/design/orchestration.md, "Data"):
-- payments, their attempts (att_), operations (cap_, vod_), refunds (ref_),
-- transitions and the outbox. Every partner call is a row written before the
-- call, whose id is the partner's idempotency key; the outcome is recorded on
-- that row conditional on its state (record_* below), so a replayed answer
-- changes nothing. Amounts are int8 minor units beside a currency.
--
-- Idempotency: a mutation's (scope, key) is unique on the row it creates,
-- with the request's fingerprint; a retry finds the row and answers with its
-- current state (the partner's outcome may come later, from recovery).

CREATE TABLE payments (
    id text PRIMARY KEY,
    merchant_id text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_captured_minor int8 NOT NULL DEFAULT 0 CHECK (amount_captured_minor >= 0),
    amount_refunded_minor int8 NOT NULL DEFAULT 0 CHECK (amount_refunded_minor >= 0),
    capture_method text NOT NULL CHECK (capture_method IN ('AUTOMATIC', 'MANUAL')),
    state text NOT NULL CHECK (state IN ('REQUIRES_CONFIRMATION', 'REQUIRES_ACTION', 'PROCESSING',
        'AUTHORIZED', 'SUCCEEDED', 'CANCELED', 'DECLINED', 'FAILED', 'UNDER_REVIEW')),
    failure_code text NOT NULL DEFAULT '',
    vault_token text NOT NULL,
    card_brand text NOT NULL DEFAULT '',
    card_last4 text NOT NULL DEFAULT '',
    issuer_country text NOT NULL DEFAULT '',
    statement_descriptor text NOT NULL DEFAULT '',
    merchant_reference text NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}',
    return_url text NOT NULL DEFAULT '',
    capture_before_time timestamptz,
    version int8 NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    idem_scope text NOT NULL,
    idem_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    CHECK (amount_captured_minor <= amount_minor),
    CHECK (amount_refunded_minor <= amount_captured_minor),
    UNIQUE (idem_scope, idem_key)
);
CREATE INDEX payments_merchant ON payments (merchant_id, create_time);

CREATE TABLE payment_attempts (
    id text PRIMARY KEY,
    payment_id text NOT NULL REFERENCES payments (id),
    connector text NOT NULL,
    outcome text NOT NULL DEFAULT 'PENDING'
        CHECK (outcome IN ('PENDING', 'SUCCEEDED', 'DECLINED', 'FAILED', 'TIMED_OUT')),
    decline_code text NOT NULL DEFAULT '',
    soft_decline boolean NOT NULL DEFAULT false,
    partner_reference text NOT NULL DEFAULT '',
    lease_owner text NOT NULL,
    lease_until timestamptz NOT NULL,
    start_time timestamptz NOT NULL DEFAULT now(),
    end_time timestamptz
);
-- One open attempt per payment (design: "Operations, attempts and their keys").
CREATE UNIQUE INDEX payment_attempts_open ON payment_attempts (payment_id)
    WHERE outcome IN ('PENDING', 'TIMED_OUT');
CREATE INDEX payment_attempts_recovery ON payment_attempts (lease_until)
    WHERE outcome IN ('PENDING', 'TIMED_OUT');

CREATE TABLE payment_operations (
    id text PRIMARY KEY,
    payment_id text NOT NULL REFERENCES payments (id),
    kind text NOT NULL CHECK (kind IN ('CAPTURE', 'VOID')),
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    state text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    partner_reference text NOT NULL DEFAULT '',
    failure_code text NOT NULL DEFAULT '',
    lease_owner text NOT NULL,
    lease_until timestamptz NOT NULL,
    start_time timestamptz NOT NULL DEFAULT now(),
    end_time timestamptz,
    idem_scope text,
    idem_key text,
    request_sha256 bytea,
    UNIQUE (idem_scope, idem_key)
);
-- One capture or void per payment that is pending or succeeded (a failed one may be retried).
CREATE UNIQUE INDEX payment_operations_one ON payment_operations (payment_id)
    WHERE state IN ('PENDING', 'SUCCEEDED');
CREATE INDEX payment_operations_recovery ON payment_operations (lease_until)
    WHERE state = 'PENDING';

CREATE TABLE refunds (
    id text PRIMARY KEY,
    payment_id text NOT NULL REFERENCES payments (id),
    merchant_id text NOT NULL,
    mode text NOT NULL,
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    state text NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason text NOT NULL DEFAULT '',
    failure_code text NOT NULL DEFAULT '',
    partner_reference text NOT NULL DEFAULT '',
    reserved boolean NOT NULL DEFAULT false,
    lease_owner text NOT NULL,
    lease_until timestamptz NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    idem_scope text NOT NULL,
    idem_key text NOT NULL,
    request_sha256 bytea NOT NULL,
    UNIQUE (idem_scope, idem_key)
);
CREATE INDEX refunds_payment ON refunds (payment_id);
CREATE INDEX refunds_recovery ON refunds (lease_until) WHERE state = 'PENDING';

CREATE TABLE payment_transitions (
    id bigserial PRIMARY KEY,
    payment_id text NOT NULL REFERENCES payments (id),
    from_state text,
    to_state text NOT NULL,
    reason text NOT NULL DEFAULT '',
    event_id text NOT NULL UNIQUE,
    time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_transitions_payment ON payment_transitions (payment_id, id);

-- Committed facts for finance, compliance and webhooks (svc_outbox's columns).
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    merchant_id text NOT NULL,
    type text NOT NULL,
    payment_id text NOT NULL,
    payload jsonb NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    published_time timestamptz,
    lease_until timestamptz,
    attempts int NOT NULL DEFAULT 0,
    last_error text,
    dead_time timestamptz
);
CREATE INDEX outbox_due ON outbox (id) WHERE published_time IS NULL AND dead_time IS NULL;

-- One change of state of a payment: its transition row and its event, in the
-- caller's transaction. The event id is derived from the payment's version,
-- so one change has one event.
CREATE FUNCTION payment_moved(p payments, to_state text, reason text, type text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    event_id text := 'evt_' || substr(p.id, 5) || '_' || (p.version + 1);
BEGIN
    INSERT INTO payment_transitions (payment_id, from_state, to_state, reason, event_id)
    VALUES (p.id, p.state, to_state, reason, event_id);
    INSERT INTO outbox (event_id, merchant_id, type, payment_id, payload)
    VALUES (event_id, p.merchant_id, type, p.id,
            jsonb_build_object('payment_id', p.id, 'from', p.state, 'to', to_state,
                               'reason', reason, 'amount_minor', p.amount_minor,
                               'currency', p.currency, 'mode', p.mode));
END $$;

-- Step 4 of an authorization: the outcome on the attempt's own row (the
-- replay guard), then the payment guarded by its state, its transition and
-- event; an automatic capture's operation cap_<same suffix> is queued PENDING
-- for the caller (or recovery) to send. Returns the payment's state after.
CREATE FUNCTION record_authorization(att_id text, outcome text, decline_code text,
                                     soft boolean, partner_reference text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a payment_attempts;
    p payments;
    to_state text;
BEGIN
    SELECT * INTO STRICT a FROM payment_attempts WHERE id = att_id;
    SELECT * INTO STRICT p FROM payments WHERE id = a.payment_id FOR UPDATE;
    UPDATE payment_attempts t SET outcome = record_authorization.outcome,
        decline_code = record_authorization.decline_code, soft_decline = soft,
        partner_reference = record_authorization.partner_reference,
        end_time = CASE WHEN record_authorization.outcome = 'TIMED_OUT' THEN NULL ELSE now() END
    WHERE t.id = att_id AND t.outcome IN ('PENDING', 'TIMED_OUT');
    IF NOT FOUND OR outcome = 'TIMED_OUT' THEN
        RETURN p.state; -- recorded before (a replay), or still open
    END IF;
    to_state := CASE outcome WHEN 'SUCCEEDED' THEN 'AUTHORIZED' WHEN 'DECLINED' THEN 'DECLINED'
                ELSE 'FAILED' END;
    UPDATE payments SET state = to_state,
        failure_code = CASE to_state WHEN 'DECLINED' THEN record_authorization.decline_code
                       WHEN 'FAILED' THEN 'no_connector_available' ELSE '' END,
        capture_before_time = CASE WHEN to_state = 'AUTHORIZED' THEN now() + interval '7 days' END,
        version = version + 1, update_time = now()
    WHERE id = p.id AND state IN ('PROCESSING', 'REQUIRES_ACTION');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'orchestration_operation_unrecorded: attempt % of payment % (%)',
            att_id, p.id, p.state;
    END IF;
    PERFORM payment_moved(p, to_state, CASE to_state WHEN 'AUTHORIZED' THEN '' WHEN 'DECLINED'
        THEN record_authorization.decline_code ELSE 'no_connector_available' END,
        CASE to_state WHEN 'AUTHORIZED' THEN 'payment.authorized' WHEN 'DECLINED'
        THEN 'payment.declined' ELSE 'payment.failed' END);
    IF to_state = 'AUTHORIZED' AND p.capture_method = 'AUTOMATIC' THEN
        INSERT INTO payment_operations (id, payment_id, kind, amount_minor, lease_owner,
                                        lease_until)
        VALUES ('cap_' || substr(att_id, 5), p.id, 'CAPTURE', p.amount_minor, a.lease_owner,
                now() + interval '15 seconds');
    END IF;
    RETURN to_state;
END $$;

-- Step 4 of a capture or void: the outcome on the operation's row, then the
-- payment (SUCCEEDED with the captured amount, or CANCELED). A failed
-- operation leaves the payment AUTHORIZED (it may be tried again).
CREATE FUNCTION record_operation(op_id text, succeeded boolean, partner_reference text,
                                 failure_code text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    o payment_operations;
    p payments;
    to_state text;
BEGIN
    SELECT * INTO STRICT o FROM payment_operations WHERE id = op_id;
    SELECT * INTO STRICT p FROM payments WHERE id = o.payment_id FOR UPDATE;
    UPDATE payment_operations t SET state = CASE WHEN succeeded THEN 'SUCCEEDED' ELSE 'FAILED' END,
        partner_reference = record_operation.partner_reference,
        failure_code = record_operation.failure_code, end_time = now()
    WHERE t.id = op_id AND t.state = 'PENDING';
    IF NOT FOUND OR NOT succeeded THEN
        RETURN p.state;
    END IF;
    to_state := CASE o.kind WHEN 'CAPTURE' THEN 'SUCCEEDED' ELSE 'CANCELED' END;
    UPDATE payments SET state = to_state,
        amount_captured_minor = CASE o.kind WHEN 'CAPTURE' THEN o.amount_minor ELSE 0 END,
        version = version + 1, update_time = now()
    WHERE id = p.id AND state = 'AUTHORIZED';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'orchestration_operation_unrecorded: operation % of payment % (%)',
            op_id, p.id, p.state;
    END IF;
    PERFORM payment_moved(p, to_state, '', CASE o.kind WHEN 'CAPTURE' THEN 'payment.captured'
                                           ELSE 'payment.canceled' END);
    RETURN to_state;
END $$;

-- Step 4 of a refund: the outcome on the refund's row, then the payment's
-- refunded amount (relative arithmetic, guarded by its state) and the event.
CREATE FUNCTION record_refund(refund_id text, succeeded boolean, partner_reference text,
                              failure_code text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    f refunds;
    p payments;
BEGIN
    SELECT * INTO STRICT f FROM refunds WHERE id = refund_id;
    SELECT * INTO STRICT p FROM payments WHERE id = f.payment_id FOR UPDATE;
    UPDATE refunds t SET state = CASE WHEN succeeded THEN 'SUCCEEDED' ELSE 'FAILED' END,
        partner_reference = record_refund.partner_reference,
        failure_code = record_refund.failure_code, update_time = now()
    WHERE t.id = refund_id AND t.state = 'PENDING';
    IF NOT FOUND THEN
        SELECT state INTO f.state FROM refunds WHERE id = refund_id;
        RETURN f.state;
    END IF;
    IF succeeded THEN
        UPDATE payments SET amount_refunded_minor = amount_refunded_minor + f.amount_minor,
            version = version + 1, update_time = now()
        WHERE id = p.id AND state = 'SUCCEEDED';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'orchestration_operation_unrecorded: refund % of payment % (%)',
                refund_id, p.id, p.state;
        END IF;
    END IF;
    INSERT INTO outbox (event_id, merchant_id, type, payment_id, payload)
    VALUES ('evt_' || substr(refund_id, 5), p.merchant_id,
            CASE WHEN succeeded THEN 'refund.succeeded' ELSE 'refund.failed' END, p.id,
            jsonb_build_object('refund_id', refund_id, 'payment_id', p.id,
                               'amount_minor', f.amount_minor, 'currency', f.currency,
                               'partner_reference', record_refund.partner_reference,
                               'failure_code', record_refund.failure_code));
    RETURN CASE WHEN succeeded THEN 'SUCCEEDED' ELSE 'FAILED' END;
END $$;
