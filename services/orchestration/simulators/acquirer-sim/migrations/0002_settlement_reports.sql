-- The settlement reports the simulator wrote (acquirer.proto, WriteSettlementReport): each
-- row of each report as written, and the rows it left out, so the same request writes the
-- same file again and the next report settles what an earlier one left out.
CREATE TABLE settlement_reports (
    report_id text PRIMARY KEY CHECK (report_id ~ '^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$'),
    report_date date NOT NULL,
    -- SHA-256 of the request (hex): the same report_id with another request is refused.
    fingerprint text NOT NULL,
    path text NOT NULL,
    operations int NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE settlement_report_items (
    report_id text NOT NULL REFERENCES settlement_reports,
    seq int NOT NULL,
    -- The operation it settles; '' for a row of an operation never made.
    operation_key text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('capture', 'refund')),
    reference text NOT NULL,
    recorded_amount_minor int8 NOT NULL,
    recorded_currency text NOT NULL,
    amount_minor int8 NOT NULL,
    currency text NOT NULL,
    booked_time text NOT NULL,
    -- '' or the ReportDifference name without its prefix (MISSING_ROW...).
    difference text NOT NULL,
    -- false: left out of the file (MISSING_ROW).
    written boolean NOT NULL,
    PRIMARY KEY (report_id, seq)
);
CREATE INDEX settlement_report_items_operation ON settlement_report_items (operation_key);
