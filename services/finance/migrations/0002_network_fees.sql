-- ACCOUNT_KIND_NETWORK_FEES (issue 15, second review §6): gas of our own chain
-- transactions, in the chain's native asset; an expense, DEBIT-normal.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN (
    'merchant_pending', 'merchant_available', 'merchant_reserved', 'platform_revenue',
    'fx_revenue', 'partner_receivable', 'partner_fees', 'platform_cash',
    'settlement_clearing', 'fx_position', 'frozen_funds', 'unapplied_funds', 'network_fees'));
-- The normal side, fixed by the kind (PostgreSQL named it accounts_check in 0001).
ALTER TABLE accounts DROP CONSTRAINT accounts_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_normal_balance_check CHECK (normal_balance = CASE
    WHEN kind IN ('partner_receivable', 'partner_fees', 'platform_cash', 'fx_position',
                  'network_fees')
    THEN 'DEBIT' ELSE 'CREDIT' END);
