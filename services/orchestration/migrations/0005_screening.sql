-- Compliance screening at confirm (issue 18): the cardholder's name screened
-- with the issuer's country, and the screening that decided (scr_…), so a
-- REVIEW can be followed to its decision.
ALTER TABLE payments ADD COLUMN cardholder_name text NOT NULL DEFAULT '',
    ADD COLUMN screening_id text NOT NULL DEFAULT '';
