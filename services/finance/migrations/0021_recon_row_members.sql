-- One-to-many reconciliation (issue 19): a report row may be a net settlement line that
-- settles several of our operations (PartnerReportRow.settles). Each member of such a line is
-- a row here, written by the matcher's INSERT with the line (recon.c, recon_insert_rows): its
-- partner reference, the line's kind, and the posted transfer found for it ('' for none), with
-- that transfer's amount on the partner's account and what was wrong with the member, if
-- anything. A member whose line matched, or mismatched on amount or currency, was found: a later
-- row of the same key is DUPLICATE, the MISSING_IN_REPORT job does not raise its transfer, and a
-- MATCHED line clears the open MISSING_IN_REPORT break of its transfer.

CREATE TABLE recon_row_members (
    row_id text NOT NULL,
    -- The member's place in the line, from 1.
    ord int NOT NULL CHECK (ord >= 1),
    run_id text NOT NULL,
    mode text NOT NULL,
    partner text NOT NULL,
    partner_reference text NOT NULL CHECK (partner_reference <> ''),
    kind text NOT NULL,
    -- The posted transfer found for the member ('' for none).
    transfer_id text NOT NULL DEFAULT '',
    ledger_amount_minor int8,
    ledger_currency text,
    -- '' (found, in the line's currency), 'DUPLICATE', 'MISSING_IN_LEDGER' or
    -- 'CURRENCY_MISMATCH': which member a break of the line names.
    problem text NOT NULL DEFAULT '' CHECK (problem IN ('', 'DUPLICATE', 'MISSING_IN_LEDGER',
        'CURRENCY_MISMATCH')),
    PRIMARY KEY (row_id, ord),
    UNIQUE (row_id, partner_reference)
);
-- What the matcher's DUPLICATE check reads (the keys earlier lines found).
CREATE INDEX recon_row_members_key ON recon_row_members (mode, partner, partner_reference, kind);
-- What the MISSING_IN_REPORT job reads (is this transfer settled by a line?).
CREATE INDEX recon_row_members_transfer ON recon_row_members (mode, transfer_id)
    WHERE transfer_id <> '';
-- What clearing a run's breaks reads.
CREATE INDEX recon_row_members_run ON recon_row_members (run_id);
-- The break's member (recon_breaks.member_reference; Break.member_reference).
ALTER TABLE recon_breaks ADD COLUMN member_reference text NOT NULL DEFAULT '';

-- Like the rows they belong to, the members are the record of what a partner reported: the
-- service inserts them and never changes or removes them.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finance_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON recon_row_members FROM finance_app;
    END IF;
END $$;
