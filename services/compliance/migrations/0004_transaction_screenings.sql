-- Transaction screenings (ScreenTransaction): the payment, the stage and the verdict.
ALTER TABLE screenings
    ADD COLUMN payment_id text NOT NULL DEFAULT '',
    ADD COLUMN stage text NOT NULL DEFAULT '' CHECK (stage IN ('', 'CONFIRM', 'FUNDS_RECEIVED')),
    ADD COLUMN verdict text NOT NULL DEFAULT '' CHECK (verdict IN ('', 'ALLOW', 'REVIEW', 'BLOCK'));
CREATE INDEX screenings_payment ON screenings (payment_id, stage) WHERE payment_id <> '';
