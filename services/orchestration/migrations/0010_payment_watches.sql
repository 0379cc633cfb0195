-- WatchPayment's notifications only while someone watches (issue 18, bench/payments).
-- A NOTIFY takes a database-wide lock from the notifying transaction's pre-commit to
-- its end, across its WAL flush, so every payment's commits queued behind each other
-- (bench/payments: ×1.2 at 32 and ×2 at 128 in flight without it). Now each watch
-- registers a row here (watch.c) and the trigger notifies only a payment that has one.
--
-- No change is missed: the registration takes FOR SHARE on the payment, which waits for
-- any transaction holding the payment's row lock (every move takes it: FOR UPDATE or the
-- UPDATE itself) and blocks any that would take it until the registration commits. A
-- move that locked the payment first has committed before the watcher's next read, which
-- sees it; a move that locks it after sees the committed row (a trigger's statements
-- take a fresh snapshot under READ COMMITTED) and notifies. The watcher registers after
-- its LISTEN is in place and reads the payment after registering.
--
-- Unlogged: a watch lives as long as its LISTEN connection. A crash of the database
-- empties the table and drops every LISTEN; each listener reconnects and its watch
-- registers again. A row left by a crashed instance costs a NOTIFY per change of that
-- payment until its terminal state removes it.
CREATE UNLOGGED TABLE payment_watches (
    payment_id text NOT NULL,
    watch_id text NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (payment_id, watch_id)
);

CREATE OR REPLACE FUNCTION payment_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM payment_watches WHERE payment_id = NEW.id) THEN
        PERFORM pg_notify('payment_changes', NEW.id);
        IF NEW.state IN ('SUCCEEDED', 'CANCELED', 'DECLINED', 'FAILED') THEN
            -- Terminal: nothing changes after, so no watch of it needs a row.
            DELETE FROM payment_watches WHERE payment_id = NEW.id;
        END IF;
    END IF;
    RETURN NULL;
END $$;
