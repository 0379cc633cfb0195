-- Reconciliation's matcher writes up to 200,000 rows in one INSERT (recon.c, recon_insert_rows)
-- in the transaction that inserts their run. The foreign key recon_rows.run_id -> recon_runs
-- checked each of them with a query of its own at the end of the statement (about 15 % of an
-- upload: bench/recon, docs/performance.md); it goes. What it guarded holds by other means:
-- rows are inserted only by that statement, with the run id it inserted just before, and the
-- service can no longer delete or truncate a run or a row (runs and their rows are the record
-- of what a partner reported: never removed).
ALTER TABLE recon_rows DROP CONSTRAINT recon_rows_run_id_fkey;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finance_app') THEN
        REVOKE DELETE, TRUNCATE ON recon_runs, recon_rows FROM finance_app;
    END IF;
END $$;
