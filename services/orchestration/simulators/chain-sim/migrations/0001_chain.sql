-- The chain simulator's own records (chain.proto): the custody partner's
-- deposit addresses, one per caller's key, and the chain's transfers and
-- height. Addresses are stored in lower case, as the simulator makes them.
CREATE TABLE head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    height int8 NOT NULL CHECK (height >= 0)
);
INSERT INTO head (one, height) VALUES (true, 0);

-- The custody wallet's derivation indexes (a retry racing a first request may skip one).
CREATE SEQUENCE address_index MINVALUE 0 START 0;

CREATE TABLE addresses (
    key text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 128),
    chain int NOT NULL CHECK (chain BETWEEN 1 AND 3),
    token text NOT NULL,
    address text NOT NULL UNIQUE CHECK (address ~ '^0x[0-9a-f]{40}$'),
    derivation_index int8 NOT NULL UNIQUE CHECK (derivation_index >= 0),
    requests int NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now()
);

-- block is NULL once a reorg dropped it (dropped_block keeps where it was).
CREATE TABLE transfers (
    seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key text NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 128),
    transaction_hash text NOT NULL UNIQUE CHECK (transaction_hash ~ '^0x[0-9a-f]{64}$'),
    log_index int NOT NULL DEFAULT 0,
    chain int NOT NULL,
    from_address text NOT NULL CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
    to_address text NOT NULL CHECK (to_address ~ '^0x[0-9a-f]{40}$'),
    token text NOT NULL,
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    block int8 CHECK (block > 0),
    dropped_block int8,
    requests int NOT NULL DEFAULT 1,
    create_time timestamptz NOT NULL DEFAULT now(),
    CHECK ((block IS NULL) = (dropped_block IS NOT NULL))
);
CREATE INDEX transfers_to ON transfers (to_address, seq);
CREATE INDEX transfers_block ON transfers (block) WHERE block IS NOT NULL;
