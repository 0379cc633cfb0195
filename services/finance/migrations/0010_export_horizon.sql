-- ExportEntries resumes after a sequence, but sequences are drawn when a
-- transaction inserts and become visible when it commits: a reader could
-- pass sequence N+1 while N was still uncommitted, and a resumed export
-- (after N+1) would never see N. So an export reads only up to a horizon
-- below which nothing can still appear:
--   1. W = the last sequence drawn by anyone (a sequence is not transactional);
--   2. a snapshot taken after that lists every transaction still running;
--      each that drew a value <= W is among them, because
--   3. a transaction has its xid before it draws a value (the trigger below
--      takes one before the first row of any INSERT into entries);
--   4. wait until every transaction of that list has ended (milliseconds: a
--      ledger batch), then every entry <= W is committed or never will be.
CREATE FUNCTION entries_take_xid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END
$$;
CREATE TRIGGER entries_take_xid BEFORE INSERT ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION entries_take_xid();

CREATE FUNCTION entries_export_horizon() RETURNS int8 LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    w int8;
    drawn boolean;
    running pg_snapshot;
BEGIN
    SELECT last_value, is_called INTO w, drawn FROM entries_sequence_seq;
    IF NOT drawn THEN
        RETURN 0;
    END IF;
    -- A new statement, so a snapshot taken after W was read.
    SELECT pg_current_snapshot() INTO running;
    WHILE EXISTS (SELECT 1 FROM pg_snapshot_xip(running) x
                  WHERE pg_xact_status(x) = 'in progress') LOOP
        PERFORM pg_sleep(0.002);
    END LOOP;
    RETURN w;
END
$$;
