-- Versioned sanctions lists (docs/design/compliance.md, Sanctions screening).
-- A version is stored whole, as the packed UploadSanctionsListRequest of all
-- its entries, in the transaction that makes it active: screening (which
-- holds the active versions in memory) never sees half a list.
CREATE TABLE sanctions_lists (
    list text NOT NULL CHECK (list ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    version text NOT NULL CHECK (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    entries int NOT NULL CHECK (entries >= 0),
    -- paywire.compliance.v1.UploadSanctionsListRequest with every entry, packed.
    body bytea NOT NULL,
    body_sha256 bytea NOT NULL CHECK (length(body_sha256) = 32),
    active boolean NOT NULL DEFAULT false,
    load_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list, version)
);
-- At most one active version per list.
CREATE UNIQUE INDEX sanctions_lists_active ON sanctions_lists (list) WHERE active;
