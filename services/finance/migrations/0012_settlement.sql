-- Settlement (docs/design/finance.md, Settlement; issue 19): the settlement
-- delay per merchant ('*' is the default for merchants without a row), and
-- what the availability job scans for.
CREATE TABLE settlement_settings (
    merchant_id text PRIMARY KEY,
    -- Captured funds become available this many days after the capture was posted (T+N).
    delay_days int NOT NULL DEFAULT 2 CHECK (delay_days BETWEEN 0 AND 60)
);
INSERT INTO settlement_settings (merchant_id) VALUES ('*');

-- Posted captures in posting order: the availability job reads the oldest first.
CREATE INDEX transfers_captures_posted ON transfers (post_time) WHERE kind = 'capture'
    AND state = 'POSTED';
