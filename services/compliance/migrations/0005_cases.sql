-- KYB/KYC verification cases, their decisions and the screening reviews
-- (docs/design/compliance.md, Verification cases).

CREATE TABLE cases (
    seq bigserial UNIQUE,
    id text PRIMARY KEY CHECK (id ~ '^case_[0-9A-HJKMNP-TV-Z]{26}$'),
    kind text NOT NULL CHECK (kind IN ('KYB', 'KYC', 'INVESTIGATION')),
    state text NOT NULL CHECK (state IN ('OPEN', 'NEEDS_INFORMATION', 'APPROVED', 'REJECTED',
        'AWAITING_SECOND_REVIEW')),
    -- "mer_…" (KYB), "per_…" (KYC).
    subject_id text NOT NULL,
    merchant_id text NOT NULL DEFAULT '',
    -- A KYC case opened for a KYB case's owner: that case.
    parent_case_id text REFERENCES cases (id),
    -- The owner's role and share (KYC of an owner).
    role text NOT NULL DEFAULT '',
    ownership_basis_points int NOT NULL DEFAULT 0,
    -- paywire.compliance.v1.Party, packed and sealed (AES-256-GCM, encryption_key).
    party_sealed bytea NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_state_seq ON cases (state, seq);
CREATE INDEX cases_merchant_seq ON cases (merchant_id, seq);
CREATE INDEX cases_parent ON cases (parent_case_id) WHERE parent_case_id IS NOT NULL;

CREATE TABLE case_documents (
    case_id text NOT NULL REFERENCES cases (id),
    position int NOT NULL,
    kind text NOT NULL,
    document_id text NOT NULL,
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    PRIMARY KEY (case_id, position)
);

-- The screenings a case relies on (its party's, screened at creation).
CREATE TABLE case_screenings (
    case_id text NOT NULL REFERENCES cases (id),
    screening_id text NOT NULL REFERENCES screenings (id),
    PRIMARY KEY (case_id, screening_id)
);

-- Every decision, oldest first. A FIRST decision is pending until a SECOND,
-- by another reviewer, agrees (the case completes) or not (back to OPEN).
CREATE TABLE case_decisions (
    case_id text NOT NULL REFERENCES cases (id),
    position int NOT NULL,
    decision text NOT NULL CHECK (decision IN ('APPROVE', 'REJECT', 'REQUEST_INFORMATION')),
    -- Comma-separated codes from the closed list of cases.c.
    reason_codes text NOT NULL,
    note text NOT NULL DEFAULT '',
    -- The verified reviewer token's subject.
    reviewer text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('', 'FIRST', 'SECOND')),
    time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, position)
);

-- Reviewers' decisions on screenings with matches (DecideScreening).
CREATE TABLE screening_decisions (
    screening_id text NOT NULL REFERENCES screenings (id),
    position int NOT NULL,
    decision text NOT NULL CHECK (decision IN ('CLEAR', 'CONFIRM')),
    reason_codes text NOT NULL,
    note text NOT NULL DEFAULT '',
    reviewer text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('', 'FIRST', 'SECOND')),
    time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (screening_id, position)
);

-- One KYB case per merchant that is not rejected (CreateCase checks first and
-- names the case; this is the backstop under concurrency).
CREATE UNIQUE INDEX cases_one_kyb ON cases (merchant_id) WHERE kind = 'KYB' AND state <> 'REJECTED';
