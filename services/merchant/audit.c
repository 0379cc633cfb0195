/*
 * audit.c: the merchant's jobs: its audit outbox (written in every
 * mutation's transaction, rows.c) published to compliance's AuditService
 * (svc_audit.h).
 */
#include "merchant.h"
#include "svc_audit.h"

pw_status merchant_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    svc_audit *a = NULL;
    pw_status rv = svc_audit_start(&a, app, loop, cfg, "merchant");
    *jobs = a;
    return rv;
}

void merchant_stop_jobs(void *jobs)
{
    svc_audit_stop(jobs);
}

const svc_setting merchant_settings[] = {
    /* compliance-server's address; its AuditService gets the audit outbox (unset: kept here). */
    SVC_AUDIT_SETTING,
    /* Tests and development only: 1 accepts webhook endpoints at http://127.0.0.1:<port>. */
    {"webhook_loopback_http", SVC_SETTING_INT, "0", 0, 1, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};
