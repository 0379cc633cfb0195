-- FX (docs/design/finance.md, FX): rates as exact decimals (mantissa × 10^-scale,
-- never floats), quotes that lock a mid and an offered rate, one conversion each.
CREATE TABLE rates (
    seq bigserial PRIMARY KEY,
    base_currency text NOT NULL,
    quote_currency text NOT NULL,
    mantissa int8 NOT NULL CHECK (mantissa > 0),
    scale int4 NOT NULL CHECK (scale BETWEEN 0 AND 18),
    source text NOT NULL,
    as_of_time timestamptz NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rates_pair_time ON rates (base_currency, quote_currency, as_of_time DESC, seq DESC);

CREATE TABLE quotes (
    mode text NOT NULL CHECK (mode IN ('TEST', 'LIVE')),
    id text NOT NULL CHECK (id ~ '^quo_[0-9A-HJKMNP-TV-Z]{26}$'),
    merchant_id text NOT NULL,
    from_currency text NOT NULL,
    to_currency text NOT NULL,
    mid_mantissa int8 NOT NULL CHECK (mid_mantissa > 0),
    mid_scale int4 NOT NULL,
    offered_mantissa int8 NOT NULL CHECK (offered_mantissa > 0),
    offered_scale int4 NOT NULL,
    spread_basis_points int4 NOT NULL,
    source text NOT NULL,
    as_of_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL,
    conversion_id text,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mode, id)
);
