-- Work queues for settlement's availability and reserve release jobs (settlement_jobs.c).
-- Their scans started from the oldest posted capture (avail transfer) and read every one on
-- each run, done long ago or not, until 100 due ones were found: O(history) a run, every
-- availability_job_seconds. A capture now waits in availability_due from its posting to its
-- txf_avail_, a held reserve in reserve_release_due from its txf_avail_ to its
-- txf_unreserve_; triggers keep both in the transaction that writes the transfer or its
-- entries, so neither misses a row nor keeps a done one. The jobs read the queues and keep
-- their NOT EXISTS guards.
CREATE TABLE availability_due (
    mode text NOT NULL,
    transfer_id text NOT NULL,
    post_time timestamptz NOT NULL,
    PRIMARY KEY (mode, transfer_id)
);
CREATE INDEX availability_due_time ON availability_due (post_time);

CREATE TABLE reserve_release_due (
    mode text NOT NULL,
    transfer_id text NOT NULL, -- the txf_avail_ whose credit to merchant_reserved is held
    post_time timestamptz NOT NULL,
    PRIMARY KEY (mode, transfer_id)
);
CREATE INDEX reserve_release_due_time ON reserve_release_due (post_time);

-- A posted capture joins the queue; its txf_avail_ takes it off, and its txf_unreserve_ takes
-- the reserve off.
CREATE FUNCTION settlement_queues() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'capture' AND NEW.state = 'POSTED' THEN
        INSERT INTO availability_due VALUES (NEW.mode, NEW.id, NEW.post_time)
            ON CONFLICT DO NOTHING;
    ELSIF NEW.kind = 'avail' THEN
        DELETE FROM availability_due
            WHERE mode = NEW.mode AND transfer_id = 'txf_capture_' || substr(NEW.id, 11);
    ELSIF NEW.kind = 'unreserve' THEN
        DELETE FROM reserve_release_due
            WHERE mode = NEW.mode AND transfer_id = 'txf_avail_' || substr(NEW.id, 15);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER transfers_settlement_queues AFTER INSERT OR UPDATE OF state ON transfers
    FOR EACH ROW WHEN (NEW.kind IN ('capture', 'avail', 'unreserve'))
    EXECUTE FUNCTION settlement_queues();

-- A posted txf_avail_ crediting merchant_reserved holds a reserve: it joins the release queue
-- (the ledger inserts a batch's transfers before their entries). This runs on every entries
-- insert, the ledger's hot path: only credits of avail transfers are looked at, each lookup a
-- probe by primary key (OFFSET 0 keeps the planner from walking an index of every avail
-- transfer instead, as 0009's lookups do).
CREATE FUNCTION reserve_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO reserve_release_due (mode, transfer_id, post_time)
    SELECT DISTINCT n.mode, n.transfer_id, t.post_time
    FROM (SELECT mode, transfer_id, account_id FROM new_entries
          WHERE side = 'CREDIT' AND starts_with(transfer_id, 'txf_avail_') OFFSET 0) n
    CROSS JOIN LATERAL (SELECT kind FROM accounts WHERE id = n.account_id OFFSET 0) a
    CROSS JOIN LATERAL (SELECT post_time, kind, state FROM transfers
                        WHERE mode = n.mode AND id = n.transfer_id OFFSET 0) t
    WHERE a.kind = 'merchant_reserved' AND t.kind = 'avail' AND t.state = 'POSTED'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER entries_reserve_queue AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION reserve_queue();

-- The jobs' indexes of every posted capture and avail transfer are read no more; each cost a
-- write per capture and per avail transfer.
DROP INDEX transfers_captures_posted;
DROP INDEX transfers_avail_posted;

-- What is waiting now.
INSERT INTO availability_due
SELECT t.mode, t.id, t.post_time FROM transfers t
WHERE t.kind = 'capture' AND t.state = 'POSTED' AND NOT EXISTS (SELECT 1 FROM transfers v
    WHERE v.mode = t.mode AND v.id = 'txf_avail_' || substr(t.id, 13));
INSERT INTO reserve_release_due
SELECT DISTINCT t.mode, t.id, t.post_time FROM transfers t
JOIN entries e ON e.mode = t.mode AND e.transfer_id = t.id AND e.side = 'CREDIT'
JOIN accounts a ON a.id = e.account_id AND a.kind = 'merchant_reserved'
WHERE t.kind = 'avail' AND t.state = 'POSTED' AND NOT EXISTS (SELECT 1 FROM transfers u
    WHERE u.mode = t.mode AND u.id = 'txf_unreserve_' || substr(t.id, 11));
