-- Every screening, with its inputs, the list versions used and what matched
-- (docs/design/compliance.md, Sanctions screening).
CREATE TABLE screenings (
    id text PRIMARY KEY CHECK (id ~ '^scr_[0-9A-HJKMNP-TV-Z]{26}$'),
    subject_id text NOT NULL DEFAULT '',
    outcome text NOT NULL CHECK (outcome IN ('CLEAR', 'POTENTIAL_MATCH', 'MATCH')),
    -- paywire.compliance.v1.Party, packed: what was screened.
    party bytea NOT NULL,
    -- paywire.compliance.v1.ScreenPartyResponse, packed: the matches as answered.
    response bytea NOT NULL,
    -- "ofac-sdn@2021-07", comma-separated: every list version consulted.
    list_versions text NOT NULL,
    review_state text NOT NULL CHECK (review_state IN ('NOT_REQUIRED', 'OPEN',
        'AWAITING_SECOND_REVIEW', 'CLEARED', 'CONFIRMED')),
    create_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX screenings_subject ON screenings (subject_id, create_time);
