/*
 * audit.c: the merchant's audit outbox (written in every mutation's
 * transaction, rows.c) published to compliance's AuditService.AppendEvent,
 * at least once, idempotent on the row's event id ("merchant/audit/<id>"),
 * surviving compliance being down (svc_outbox). Off when audit_target is not
 * set (a warning says the events wait in the table).
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "merchant.h"
#include "svc_outbox.h"
#include "paywire/compliance/v1/audit.pw.h"

typedef Paywire__Compliance__V1__AppendEventRequest AppendEventRequest;
typedef Paywire__Compliance__V1__AuditEvent AuditEvent;

typedef struct audit_jobs {
    pw_channel *compliance;
    svc_outbox *outbox;
} audit_jobs;

typedef struct pending {
    svc_outbox *outbox;
    void *token;
} pending;

static void appended(const ProtobufCMessage *resp, const pw_result *result, void (*typed)(void),
                     void *ud)
{
    (void)resp;
    (void)typed;
    pending *p = ud;
    svc_outbox_delivered(p->outbox, p->token, result->code, result->message);
    pw_free(p);
}

static const char *text_of(const pw_db_result *res, int row, const char *col)
{
    const char *s = "";
    size_t len;
    if (pw_db_get_text(res, row, pw_db_column(res, col), &s, &len) != PW_OK) {
        s = "";
    }
    return s;
}

static void deliver(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    audit_jobs *j = ud;
    int64_t id = 0;
    pw_db_get_int64(res, row, pw_db_column(res, "id"), &id);
    char key[64];
    snprintf(key, sizeof(key), "merchant/audit/%lld", (long long)id);
    AuditEvent e = PAYWIRE__COMPLIANCE__V1__AUDIT_EVENT__INIT;
    e.actor = (char *)text_of(res, row, "actor");
    e.action = (char *)text_of(res, row, "action");
    e.subject_id = (char *)text_of(res, row, "subject_id");
    e.source = "merchant";
    e.detail_json = (char *)text_of(res, row, "detail");
    AppendEventRequest req = PAYWIRE__COMPLIANCE__V1__APPEND_EVENT_REQUEST__INIT;
    req.idempotency_key = key;
    req.event = &e;
    pending *p = pw_calloc(1, sizeof(*p));
    p->outbox = o;
    p->token = token;
    pw_call_options opts = {.timeout_ms = 5000};
    pw_status rv = pw_client_unary(
        j->compliance, "/paywire.compliance.v1.AuditService/AppendEvent", &opts, &req.base,
        &paywire__compliance__v1__append_event_response__descriptor, appended, NULL, p);
    if (rv != PW_OK) {
        pw_free(p);
        svc_outbox_delivered(o, token, rv, "cannot start the call");
    }
}

pw_status merchant_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    *jobs = NULL;
    const char *target = svc_config_text(cfg, "audit_target");
    if (target == NULL) {
        PW_LOG(PW_LOG_WARNING, "merchant",
               "audit_target is not set: audit events stay in audit_outbox until it is");
        return PW_OK;
    }
    audit_jobs *j = pw_calloc(1, sizeof(*j));
    /* Our own certificate: compliance knows us by spiffe://paywire/merchant. */
    pw_tls_config tls = {
        .cert_file = svc_config_text(cfg, "tls_cert"),
        .key_file = svc_config_text(cfg, "tls_key"),
        .ca_file = svc_config_text(cfg, "tls_ca"),
    };
    pw_channel_options co = {.tls = tls.ca_file != NULL ? &tls : NULL};
    pw_status rv = pw_channel_new(&j->compliance, loop, target, &co);
    svc_outbox_options oo = {
        .table = "audit_outbox",
        .what = "audit events to compliance",
        .deliver = deliver,
        .user_data = j,
    };
    if (rv == PW_OK) {
        rv = svc_outbox_start(&j->outbox, loop, app->pool, &oo);
    }
    if (rv != PW_OK) {
        pw_channel_close(j->compliance, NULL, NULL);
        pw_free(j);
        return rv;
    }
    *jobs = j;
    return PW_OK;
}

static void channel_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    pw_free(ud);
}

void merchant_stop_jobs(void *jobs)
{
    audit_jobs *j = jobs;
    if (j == NULL) {
        return;
    }
    svc_outbox_stop(j->outbox);
    /* Calls in flight end CANCELLED: their rows are retried by the next publisher. */
    pw_channel_close(j->compliance, channel_closed, j);
}

const svc_setting merchant_settings[] = {
    /* compliance-server's address; its AuditService gets the audit outbox (unset: kept here). */
    {"audit_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* Tests and development only: 1 accepts webhook endpoints at http://127.0.0.1:<port>. */
    {"webhook_loopback_http", SVC_SETTING_INT, "0", 0, 1, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};
