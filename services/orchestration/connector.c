/*
 * connector.c: the calls to the acquirer (acquirer.proto), one request type
 * for every operation, with the partner's answer normalised into the
 * outcomes orchestration records (conn_result). The idempotency key is
 * always our row's id (att_, cap_, vod_, ref_), so a re-sent request is
 * the same request to the partner.
 *
 * A status of UNAVAILABLE means nothing was done (the partner refused it
 * before recording it, or it was never reached): FAILED. Anything else that
 * is not an answer (a passed deadline, a reset stream) is ambiguous:
 * TIMED_OUT, resolved later by a status query under the same key.
 */
#include <stdio.h>
#include <string.h>
#include "orchestration.h"
#include "paywire/simulators/v1/acquirer.pw.h"

typedef Paywire__Simulators__V1__Operation Operation;

typedef struct conn_pending {
    conn_done_cb done;
    void *user_data;
    int status_query;
} conn_pending;

pw_status orch_channel(const orch_state *s, const char *target, uv_loop_t *loop, pw_channel **out)
{
    pw_tls_config tls = {
        .cert_file = s->tls_cert[0] ? s->tls_cert : NULL,
        .key_file = s->tls_key[0] ? s->tls_key : NULL,
        .ca_file = s->tls_ca[0] ? s->tls_ca : NULL,
    };
    pw_channel_options co = {.tls = tls.ca_file != NULL ? &tls : NULL};
    return pw_channel_new(out, loop, target, &co);
}

static void answered(const ProtobufCMessage *resp, const pw_result *result, void (*typed)(void),
                     void *ud)
{
    (void)typed;
    conn_pending *p = ud;
    conn_result res = {.outcome = "TIMED_OUT"};
    if (result->code == PW_OK) {
        /* Every response of AcquirerService is {Operation operation = 1}. */
        const Operation *op =
            ((const Paywire__Simulators__V1__GetOperationResponse *)resp)->operation;
        if (op == NULL) {
            res.outcome = "TIMED_OUT";
        } else {
            res.outcome =
                op->status == PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED
                    ? "SUCCEEDED"
                    : "DECLINED";
            snprintf(res.decline_code, sizeof(res.decline_code), "%s", op->decline_code);
            snprintf(res.reference, sizeof(res.reference), "%s", op->reference);
            res.soft = op->soft_decline;
            res.amount_minor = op->amount_minor;
        }
    } else if (result->code == PW_NOT_FOUND && p->status_query) {
        res.outcome = "NOT_FOUND";
    } else if (result->code == PW_UNAVAILABLE) {
        res.outcome = "FAILED";
    }
    p->done(&res, p->user_data);
    pw_free(p);
}

pw_status conn_send(const orch_state *s, pw_channel *ch, const conn_request *req, conn_done_cb done,
                    void *user_data)
{
    /* Capture, VoidAuthorization and Refund requests share their fields 1-3; Authorize
     * and GetOperation have their own. */
    Paywire__Simulators__V1__AuthorizeRequest auth =
        PAYWIRE__SIMULATORS__V1__AUTHORIZE_REQUEST__INIT;
    Paywire__Simulators__V1__RefundRequest follow = PAYWIRE__SIMULATORS__V1__REFUND_REQUEST__INIT;
    Paywire__Simulators__V1__GetOperationRequest query =
        PAYWIRE__SIMULATORS__V1__GET_OPERATION_REQUEST__INIT;
    const ProtobufCMessage *msg;
    int status_query = strcmp(req->method, "GetOperation") == 0;
    if (strcmp(req->method, "Authorize") == 0) {
        auth.idempotency_key = (char *)req->key;
        auth.vault_token = (char *)req->vault_token;
        auth.amount_minor = req->amount_minor;
        auth.currency = (char *)req->currency;
        msg = &auth.base;
    } else if (status_query) {
        query.idempotency_key = (char *)req->key;
        msg = &query.base;
    } else {
        follow.idempotency_key = (char *)req->key;
        follow.authorization_reference = (char *)req->authorization_reference;
        follow.amount_minor = strcmp(req->method, "VoidAuthorization") == 0 ? 0 : req->amount_minor;
        msg = &follow.base;
    }
    char path[96];
    snprintf(path, sizeof(path), "/paywire.simulators.v1.AcquirerService/%s", req->method);
    conn_pending *p = pw_calloc(1, sizeof(*p));
    p->done = done;
    p->user_data = user_data;
    p->status_query = status_query;
    pw_call_options o = {.timeout_ms = (uint32_t)s->connector_timeout_ms};
    pw_status rv = pw_client_unary(ch, path, &o, msg,
                                   &paywire__simulators__v1__get_operation_response__descriptor,
                                   answered, NULL, p);
    if (rv != PW_OK) {
        pw_free(p);
    }
    return rv;
}

typedef struct conn_wait {
    svc_req *r;
    conn_result *out;
} conn_wait;

static void call_done(const conn_result *res, void *ud)
{
    conn_wait *w = ud;
    *w->out = *res;
    svc_resume(w->r);
}

void conn_call(svc_req *r, const char *connector, const conn_request *req, conn_result *out)
{
    const orch_state *s = r->app->service;
    memset(out, 0, sizeof(*out));
    out->outcome = "FAILED";
    int idx = orch_connector_find(s, connector);
    pw_channel *ch = NULL;
    if (idx < 0 ||
        orch_channel(s, s->connectors[idx].target, pw_call_loop(r->call), &ch) != PW_OK) {
        return;
    }
    uint64_t start = orch_now_ms();
    conn_wait w = {.r = r, .out = out};
    if (conn_send(s, ch, req, call_done, &w) == PW_OK) {
        svc_suspend(r);
    }
    pw_channel_close(ch, NULL, NULL);
    if (strcmp(req->method, "GetOperation") != 0) {
        /* An approval or a decline is an answer; FAILED and TIMED_OUT count against it. */
        int answered =
            strcmp(out->outcome, "SUCCEEDED") == 0 || strcmp(out->outcome, "DECLINED") == 0;
        uint64_t now = orch_now_ms();
        orch_breaker_record(s->breakers, idx, answered, now - start, now);
    }
}
