-- On-chain payments (issue 18; design "On-chain payments"): a payment paid
-- by a token transfer to a deposit address the custody partner allocates for
-- its attempt. The attempt (kind 'deposit') is written before the partner is
-- asked for the address and stays open while the chain watcher polls it; the
-- deposits it sees are rows here, each counted once its wallet is screened
-- ALLOW, and final at the payment's required confirmations. Token amounts
-- are int8 minor units of the token (USDC: 6 decimals), the payment's
-- currency being the token.
ALTER TABLE payments DROP CONSTRAINT payments_currency_check;
ALTER TABLE payments ADD CONSTRAINT payments_currency_check CHECK (currency ~ '^[A-Z]{3,5}$');
ALTER TABLE payments
    ADD COLUMN method text NOT NULL DEFAULT 'card' CHECK (method IN ('card', 'on_chain')),
    ADD COLUMN chain int NOT NULL DEFAULT 0,
    ADD COLUMN token text NOT NULL DEFAULT '',
    ADD COLUMN deposit_address text NOT NULL DEFAULT '',
    ADD COLUMN required_confirmations int NOT NULL DEFAULT 0 CHECK (required_confirmations >= 0),
    ADD COLUMN action_expire_time timestamptz,
    ADD CHECK (method = 'card' OR (chain > 0 AND token = currency AND required_confirmations > 0));

-- A deposit attempt is never claimed by recovery (whose claim reads kind
-- 'authorization'): the watcher owns it, its lease being the next poll.
ALTER TABLE payment_attempts
    ADD COLUMN kind text NOT NULL DEFAULT 'authorization'
        CHECK (kind IN ('authorization', 'deposit')),
    ADD COLUMN amount_received_minor int8 NOT NULL DEFAULT 0 CHECK (amount_received_minor >= 0);
CREATE INDEX payment_attempts_deposits ON payment_attempts (lease_until)
    WHERE kind = 'deposit' AND outcome = 'PENDING';

CREATE TABLE deposits (
    id text PRIMARY KEY,
    payment_id text NOT NULL REFERENCES payments (id),
    attempt_id text NOT NULL REFERENCES payment_attempts (id),
    chain int NOT NULL,
    transaction_hash text NOT NULL CHECK (transaction_hash ~ '^0x[0-9a-f]{64}$'),
    log_index int NOT NULL CHECK (log_index >= 0),
    from_address text NOT NULL CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    confirmations int NOT NULL DEFAULT 0 CHECK (confirmations >= 0),
    -- FINAL is for good: a later reorg of a final deposit is logged, not applied.
    state text NOT NULL CHECK (state IN ('SEEN', 'FINAL', 'REORGED')),
    seen_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain, transaction_hash, log_index)
);
CREATE INDEX deposits_payment ON deposits (payment_id, seen_time);

-- Each wallet that sent a deposit, screened once per payment at
-- FUNDS_RECEIVED (key <pay>:FUNDS_RECEIVED:<chain>:<wallet>).
CREATE TABLE wallet_screenings (
    payment_id text NOT NULL REFERENCES payments (id),
    chain int NOT NULL,
    wallet text NOT NULL,
    verdict text NOT NULL CHECK (verdict IN ('ALLOW', 'REVIEW', 'BLOCK')),
    screening_id text NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, chain, wallet)
);

-- Step 3 of the address allocation: the address on the attempt and the
-- payment, REQUIRES_CONFIRMATION → REQUIRES_ACTION with its event, the
-- expiry 60 minutes on. A replay (the payment moved on) changes nothing.
CREATE FUNCTION record_deposit_address(att_id text, address text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a payment_attempts;
    p payments;
BEGIN
    SELECT * INTO STRICT a FROM payment_attempts WHERE id = att_id;
    SELECT * INTO STRICT p FROM payments WHERE id = a.payment_id FOR UPDATE;
    IF p.state <> 'REQUIRES_CONFIRMATION' OR a.outcome <> 'PENDING' THEN
        RETURN p.state;
    END IF;
    UPDATE payment_attempts SET partner_reference = address, lease_until = now() WHERE id = att_id;
    PERFORM payment_moved(p, 'REQUIRES_ACTION', '', 'payment.requires_action');
    UPDATE payments SET state = 'REQUIRES_ACTION', deposit_address = address,
        action_expire_time = now() + interval '60 minutes', version = version + 1,
        update_time = now()
    WHERE id = p.id;
    RETURN 'REQUIRES_ACTION';
END $$;

-- One transfer to the payment's address as the watcher read it from the
-- chain: new ones become deposits (id from chain, hash and log index, so a
-- re-read is the same deposit), known ones get their confirmations; a
-- transfer no longer included is REORGED unless it was final already.
CREATE FUNCTION record_chain_transfer(pay_id text, tx_hash text, tx_log_index int,
                                      tx_from text, tx_amount int8, tx_confirmations int,
                                      included boolean)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    p payments;
    att_id text;
    st text;
BEGIN
    SELECT * INTO STRICT p FROM payments WHERE id = pay_id;
    SELECT a.id INTO att_id FROM payment_attempts a WHERE a.payment_id = pay_id
        AND a.kind = 'deposit' ORDER BY a.start_time DESC LIMIT 1;
    st := CASE WHEN NOT included THEN 'REORGED'
               WHEN tx_confirmations >= p.required_confirmations THEN 'FINAL' ELSE 'SEEN' END;
    IF NOT included AND NOT EXISTS (SELECT 1 FROM deposits x WHERE x.chain = p.chain
            AND x.transaction_hash = tx_hash AND x.log_index = tx_log_index) THEN
        RETURN 0; -- dropped before we ever saw it
    END IF;
    INSERT INTO deposits AS d (id, payment_id, attempt_id, chain, transaction_hash, log_index,
                               from_address, amount_minor, confirmations, state, seen_time)
    VALUES ('dep_' || left(encode(sha256(convert_to(p.chain || ':' || tx_hash || ':'
                || tx_log_index, 'UTF8')), 'hex'), 26),
            pay_id, att_id, p.chain, tx_hash, tx_log_index, tx_from, tx_amount,
            tx_confirmations, st, clock_timestamp())
    ON CONFLICT ON CONSTRAINT deposits_chain_transaction_hash_log_index_key DO UPDATE
        SET confirmations = CASE WHEN d.state = 'FINAL' THEN d.confirmations
                                 ELSE excluded.confirmations END,
            state = CASE WHEN d.state = 'FINAL' THEN 'FINAL' ELSE excluded.state END,
            update_time = clock_timestamp()
        WHERE d.state <> 'FINAL' AND (d.confirmations <> excluded.confirmations
                                      OR d.state <> excluded.state);
    IF NOT included AND EXISTS (SELECT 1 FROM deposits x WHERE x.chain = p.chain
            AND x.transaction_hash = tx_hash AND x.log_index = tx_log_index
            AND x.state = 'FINAL') THEN
        RAISE WARNING 'orchestration: final deposit % of payment % reorganised away',
            tx_hash, pay_id;
    END IF;
    RETURN 1;
END $$;

-- A move of a locked payment with its transition and event; returns it after.
CREATE FUNCTION chain_move(p payments, to_state text, reason text, type text)
RETURNS payments LANGUAGE plpgsql AS $$
BEGIN
    PERFORM payment_moved(p, to_state, reason, type);
    UPDATE payments SET state = to_state, version = version + 1, update_time = now(),
        failure_code = CASE WHEN to_state IN ('FAILED', 'CANCELED') THEN reason
                       ELSE failure_code END
    WHERE id = p.id RETURNING * INTO p;
    RETURN p;
END $$;

-- The payment by what its deposits are now (design: the on-chain rows of the
-- state machine), under its lock: a BLOCKed wallet's deposit fails it, a
-- REVIEWed one puts it under review; the counted deposits (SEEN or FINAL,
-- wallet ALLOWed) reaching the amount move REQUIRES_ACTION to PROCESSING,
-- falling below it (a reorg) move PROCESSING back; the final counted ones
-- reaching it capture (cap_<the attempt's suffix>, no partner call, its
-- reference the hash of the deposit that completed it) and the payment is
-- SUCCEEDED. REQUIRES_ACTION past its expiry is CANCELED (expired). What
-- was received is kept on the attempt (under- and overpayment). Returns the
-- state after.
CREATE FUNCTION chain_evaluate(pay_id text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p payments;
    a payment_attempts;
    seen_sum int8;
    final_sum int8;
    last_hash text;
BEGIN
    SELECT * INTO STRICT p FROM payments WHERE id = pay_id FOR UPDATE;
    SELECT * INTO a FROM payment_attempts WHERE payment_id = pay_id AND kind = 'deposit'
        AND outcome = 'PENDING';
    IF NOT FOUND OR p.state NOT IN ('REQUIRES_ACTION', 'PROCESSING') THEN
        RETURN p.state;
    END IF;
    SELECT coalesce(sum(d.amount_minor) FILTER (WHERE d.state IN ('SEEN', 'FINAL')), 0),
           coalesce(sum(d.amount_minor) FILTER (WHERE d.state = 'FINAL'), 0)
        INTO seen_sum, final_sum
    FROM deposits d JOIN wallet_screenings w ON w.payment_id = d.payment_id
        AND w.chain = d.chain AND w.wallet = d.from_address AND w.verdict = 'ALLOW'
    WHERE d.payment_id = pay_id;
    UPDATE payment_attempts SET amount_received_minor = seen_sum WHERE id = a.id;
    IF EXISTS (SELECT 1 FROM deposits d JOIN wallet_screenings w ON w.payment_id = d.payment_id
               AND w.chain = d.chain AND w.wallet = d.from_address
               WHERE d.payment_id = pay_id AND d.state <> 'REORGED' AND w.verdict = 'BLOCK') THEN
        UPDATE payment_attempts SET outcome = 'FAILED', decline_code = 'blocked_by_compliance',
            end_time = now() WHERE id = a.id;
        p := chain_move(p, 'FAILED', 'blocked_by_compliance', 'payment.failed');
        RETURN p.state;
    END IF;
    IF EXISTS (SELECT 1 FROM deposits d JOIN wallet_screenings w ON w.payment_id = d.payment_id
               AND w.chain = d.chain AND w.wallet = d.from_address
               WHERE d.payment_id = pay_id AND d.state <> 'REORGED' AND w.verdict = 'REVIEW') THEN
        p := chain_move(p, 'UNDER_REVIEW', 'screening_review', 'payment.under_review');
        RETURN p.state;
    END IF;
    IF p.state = 'REQUIRES_ACTION' AND seen_sum >= p.amount_minor THEN
        p := chain_move(p, 'PROCESSING', '', 'payment.processing');
    ELSIF p.state = 'PROCESSING' AND seen_sum < p.amount_minor THEN
        p := chain_move(p, 'REQUIRES_ACTION', 'reorg', 'payment.requires_action');
        RETURN p.state;
    ELSIF p.state = 'REQUIRES_ACTION' AND p.action_expire_time < now() THEN
        UPDATE payment_attempts SET outcome = 'FAILED', decline_code = 'expired',
            end_time = now() WHERE id = a.id;
        p := chain_move(p, 'CANCELED', 'expired', 'payment.canceled');
        RETURN p.state;
    END IF;
    IF p.state = 'PROCESSING' AND final_sum >= p.amount_minor THEN
        SELECT d.transaction_hash INTO last_hash FROM deposits d
        JOIN wallet_screenings w ON w.payment_id = d.payment_id AND w.chain = d.chain
            AND w.wallet = d.from_address AND w.verdict = 'ALLOW'
        WHERE d.payment_id = pay_id AND d.state = 'FINAL' ORDER BY d.update_time DESC, d.id
        LIMIT 1;
        INSERT INTO payment_operations (id, payment_id, kind, amount_minor, state,
                                        partner_reference, lease_owner, lease_until, end_time)
        VALUES ('cap_' || substr(a.id, 5), p.id, 'CAPTURE', p.amount_minor, 'SUCCEEDED',
                last_hash, a.lease_owner, now(), now());
        UPDATE payment_attempts SET outcome = 'SUCCEEDED', end_time = now() WHERE id = a.id;
        PERFORM payment_moved(p, 'SUCCEEDED', '', 'payment.captured');
        UPDATE payments SET state = 'SUCCEEDED', amount_captured_minor = p.amount_minor,
            version = version + 1, update_time = now()
        WHERE id = p.id RETURNING * INTO p;
    END IF;
    RETURN p.state;
END $$;
