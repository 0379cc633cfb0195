/*
 * svc_audit.c: a service's audit outbox to compliance (see svc_audit.h). One
 * channel to compliance and one svc_outbox; each row is one AppendEvent
 * call with the row's event id as idempotency key.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "svc_audit.h"
#include "svc_outbox.h"
#include "paywire/compliance/v1/audit.pw.h"

typedef Paywire__Compliance__V1__AppendEventRequest AppendEventRequest;
typedef Paywire__Compliance__V1__AuditEvent AuditEvent;

struct svc_audit {
    pw_channel *compliance;
    svc_outbox *outbox;
    const char *source;
};

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
    svc_audit *a = ud;
    int64_t id = 0;
    pw_db_get_int64(res, row, pw_db_column(res, "id"), &id);
    char key[96];
    snprintf(key, sizeof(key), "%s/audit/%lld", a->source, (long long)id);
    AuditEvent e = PAYWIRE__COMPLIANCE__V1__AUDIT_EVENT__INIT;
    e.actor = (char *)text_of(res, row, "actor");
    e.action = (char *)text_of(res, row, "action");
    e.subject_id = (char *)text_of(res, row, "subject_id");
    e.source = (char *)a->source;
    e.detail_json = (char *)text_of(res, row, "detail");
    AppendEventRequest req = PAYWIRE__COMPLIANCE__V1__APPEND_EVENT_REQUEST__INIT;
    req.idempotency_key = key;
    req.event = &e;
    pending *p = pw_calloc(1, sizeof(*p));
    p->outbox = o;
    p->token = token;
    pw_call_options opts = {.timeout_ms = 5000};
    pw_status rv = pw_client_unary(
        a->compliance, "/paywire.compliance.v1.AuditService/AppendEvent", &opts, &req.base,
        &paywire__compliance__v1__append_event_response__descriptor, appended, NULL, p);
    if (rv != PW_OK) {
        pw_free(p);
        svc_outbox_delivered(o, token, rv, "cannot start the call");
    }
}

pw_status svc_audit_start(svc_audit **out, svc_app *app, uv_loop_t *loop, const svc_config *cfg,
                          const char *source)
{
    *out = NULL;
    const char *target = svc_config_text(cfg, "audit_target");
    if (target == NULL) {
        PW_LOG(PW_LOG_WARNING, source,
               "audit_target is not set: audit events stay in audit_outbox until it is");
        return PW_OK;
    }
    svc_audit *a = pw_calloc(1, sizeof(*a));
    a->source = source;
    /* Our own certificate: compliance knows us by spiffe://paywire/<source>. */
    pw_tls_config tls = {
        .cert_file = svc_config_text(cfg, "tls_cert"),
        .key_file = svc_config_text(cfg, "tls_key"),
        .ca_file = svc_config_text(cfg, "tls_ca"),
    };
    pw_channel_options co = {.tls = tls.ca_file != NULL ? &tls : NULL};
    pw_status rv = pw_channel_new(&a->compliance, loop, target, &co);
    svc_outbox_options oo = {
        .table = "audit_outbox",
        .what = "audit events to compliance",
        .deliver = deliver,
        .user_data = a,
    };
    if (rv == PW_OK) {
        rv = svc_outbox_start(&a->outbox, loop, app->pool, &oo);
    }
    if (rv != PW_OK) {
        pw_channel_close(a->compliance, NULL, NULL);
        pw_free(a);
        return rv;
    }
    *out = a;
    return PW_OK;
}

static void channel_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    pw_free(ud);
}

void svc_audit_stop(svc_audit *a)
{
    if (a == NULL) {
        return;
    }
    svc_outbox_stop(a->outbox);
    /* Calls in flight end CANCELLED: their rows are retried by the next publisher. */
    pw_channel_close(a->compliance, channel_closed, a);
}
