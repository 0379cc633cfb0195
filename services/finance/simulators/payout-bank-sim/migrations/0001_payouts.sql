-- The payout bank simulator's own records (payout_bank.proto): one row per
-- instruction id, as a bank keeps them. A payout's fate is decided when it
-- is accepted (final_state at final_time); until final_time it is ACCEPTED.
CREATE TABLE payouts (
    instruction_id text PRIMARY KEY CHECK (length(instruction_id) BETWEEN 1 AND 128),
    end_to_end_id text NOT NULL,
    amount_minor int8 NOT NULL CHECK (amount_minor > 0),
    currency text NOT NULL,
    creditor_name text NOT NULL,
    creditor_account text NOT NULL,
    state text NOT NULL CHECK (state IN ('ACCEPTED', 'REJECTED')),
    final_state text NOT NULL CHECK (final_state IN ('SETTLED', 'RETURNED', 'REJECTED')),
    return_reason text NOT NULL DEFAULT '',
    bank_reference text NOT NULL UNIQUE,
    charge_minor int8 NOT NULL CHECK (charge_minor >= 0),
    accept_time timestamptz NOT NULL DEFAULT now(),
    final_time timestamptz NOT NULL,
    requests int NOT NULL DEFAULT 1
);
CREATE INDEX payouts_accepted ON payouts (accept_time);
CREATE INDEX payouts_final ON payouts (final_time);
