-- Activation goes through a real compliance case (issue 17): ActivateMerchant
-- asks compliance's VerificationService.GetCase, so the local record of
-- approved cases goes.
DROP TABLE approved_compliance_cases;

-- CreateMerchant opens the merchant's KYB case in compliance through this
-- outbox (svc_outbox): written in the merchant's own transaction, delivered
-- at least once with CreateCase (idempotency key "merchant/kyb/<merchant>"),
-- so a compliance outage delays the case but never loses it nor fails the
-- onboarding.
CREATE TABLE kyb_outbox (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL DEFAULT now(),
    merchant_id text NOT NULL,
    -- paywire.compliance.v1.Party of the business, packed (no tax id).
    party bytea NOT NULL,
    published_time timestamptz,
    lease_until timestamptz,
    attempts bigint NOT NULL DEFAULT 0,
    last_error text,
    dead_time timestamptz
);
CREATE INDEX kyb_outbox_due ON kyb_outbox (id) WHERE published_time IS NULL AND dead_time IS NULL;
