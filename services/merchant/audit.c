/*
 * audit.c: the merchant's jobs: its audit outbox (written in every
 * mutation's transaction, rows.c) published to compliance's AuditService
 * (svc_audit.h), and the KYB cases' outbox to its VerificationService
 * (kyb.c).
 */
#include "merchant.h"
#include "svc_audit.h"

typedef struct merchant_jobs {
    svc_audit *audit;
    kyb_jobs *kyb;
} merchant_jobs;

pw_status merchant_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    merchant_jobs *j = pw_calloc(1, sizeof(*j));
    *jobs = j;
    pw_status rv = svc_audit_start(&j->audit, app, loop, cfg, "merchant");
    if (rv == PW_OK) {
        rv = kyb_jobs_start(&j->kyb, app, loop, cfg);
    }
    return rv;
}

void merchant_stop_jobs(void *jobs)
{
    merchant_jobs *j = jobs;
    if (j != NULL) {
        svc_audit_stop(j->audit);
        kyb_jobs_stop(j->kyb);
        pw_free(j);
    }
}

const svc_setting merchant_settings[] = {
    /* compliance-server's address; its AuditService gets the audit outbox (unset: kept here). */
    SVC_AUDIT_SETTING,
    /* compliance-server's address for cases: KYB cases opened, and checked at activation. */
    {"compliance_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* Tests and development only: 1 accepts webhook endpoints at http://127.0.0.1:<port>. */
    {"webhook_loopback_http", SVC_SETTING_INT, "0", 0, 1, 0},
    /* The identities that may read webhook signing secrets (GetWebhookTargets), comma-separated:
     * the signer only. */
    {"webhook_signers", SVC_SETTING_TEXT, "spiffe://paywire/orchestration", 0, 0, 0},
    /* The identities that get settlement account numbers in full (ListSettlementDestinations),
     * comma-separated: finance's payout job only. Everyone else sees them masked. */
    {"payout_readers", SVC_SETTING_TEXT, "spiffe://paywire/finance", 0, 0, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};
