-- WatchPayment (watch.c) across instances: every change of a payment's state
-- notifies channel payment_changes with the payment's id, delivered to every
-- LISTENer when the transaction commits (never for one that rolls back).
CREATE FUNCTION payment_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('payment_changes', NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER payments_notify AFTER UPDATE OF state ON payments
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION payment_notify();
