-- Rolling reserves (docs/design/finance.md, Settlement; issue 19): a share of each capture's
-- net held on merchant_reserved when it becomes available, released hold_days later. A rule
-- applies from effective_time on (never in the past when set, so the rule in force at any past
-- instant never changes); the most specific one in force wins (the merchant's rule for the
-- currency over its rule for every currency, ''). Both modes share the rules.
CREATE TABLE reserve_rules (
    merchant_id text NOT NULL,
    currency text NOT NULL DEFAULT '',
    basis_points int NOT NULL CHECK (basis_points BETWEEN 0 AND 10000),
    hold_days int NOT NULL CHECK (hold_days BETWEEN 0 AND 365),
    effective_time timestamptz NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, currency, effective_time)
);

-- The basis points and hold days of merchant's rule for currency in force at t (0, 0: none).
CREATE FUNCTION reserve_rule_at(merchant text, cur text, t timestamptz,
                                OUT basis_points int, OUT hold_days int)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(r.basis_points, 0), coalesce(r.hold_days, 0)
    FROM (SELECT 1) one LEFT JOIN LATERAL (
        SELECT x.basis_points, x.hold_days FROM reserve_rules x
        WHERE x.merchant_id = merchant AND x.currency IN (cur, '') AND x.effective_time <= t
        ORDER BY x.currency = cur DESC, x.effective_time DESC LIMIT 1) r ON true
$$;

-- x × bps / 10 000 rounded half-even, in integers (0 when x or bps is not positive).
CREATE FUNCTION reserve_amount(x int8, bps int) RETURNS int8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN x <= 0 OR bps <= 0 THEN 0::int8
        ELSE q + CASE WHEN 2 * m > 10000 OR (2 * m = 10000 AND q % 2 = 1) THEN 1 ELSE 0 END END
    FROM (SELECT div(x::numeric * bps, 10000)::int8 AS q,
                 mod(x::numeric * bps, 10000)::int8 AS m) v
$$;

-- Captures made available with a reserve, by when: the release job reads the due ones.
CREATE INDEX transfers_avail_posted ON transfers (post_time) WHERE kind = 'avail'
    AND state = 'POSTED';
