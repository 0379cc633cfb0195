-- The capture window on the business clock and the scheduler of services/common/svc_sched.h
-- (issue 19): the expiry of authorizations not captured in time is a job of the one
-- scheduler (an advisory lock per job: one instance runs it), and the window is set and read
-- in business time, so a test or the demo that moves the clock 7 days expires it.
CREATE TABLE svc_clock (one boolean PRIMARY KEY DEFAULT true CHECK (one),
                        offset_ms bigint NOT NULL DEFAULT 0);
INSERT INTO svc_clock DEFAULT VALUES;
CREATE FUNCTION svc_now() RETURNS timestamptz LANGUAGE sql STABLE
  AS $$ SELECT now() + offset_ms * interval '1 millisecond' FROM svc_clock $$;
CREATE TABLE svc_jobs (name text PRIMARY KEY, next_run timestamptz NOT NULL,
                       runs bigint NOT NULL DEFAULT 0, last_run_time timestamptz,
                       last_error text);
-- Only the owner moves the clock (tests, the demo); the service reads it.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON svc_clock FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orchestration_app') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON svc_clock FROM orchestration_app;
    END IF;
END
$$;

-- record_authorization of 0001, the window now svc_now() + 7 days (nothing else changed).
CREATE OR REPLACE FUNCTION record_authorization(att_id text, outcome text, decline_code text,
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
        capture_before_time = CASE WHEN to_state = 'AUTHORIZED' THEN svc_now() + interval '7 days' END,
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
