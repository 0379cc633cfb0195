/*
 * events.c: what the event consumers share (events.h): the waits of a
 * delivery's fiber on a statement or a call, and the jobs of worker 0 —
 * recovery, the ledger consumer (finance_target), the webhooks
 * (merchant_target), payment facts to monitoring (compliance_target) —
 * started and stopped together.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "events.h"

/* ---- waits ---- */

static void queried(pw_db_result *res, void *ud)
{
    ev_wait *w = ud;
    w->result = res;
    w->code = pw_db_status(res);
    snprintf(w->message, sizeof(w->message), "%s", w->code == PW_OK ? "" : pw_db_message(res));
    svc_fiber_resume(w->fiber);
}

const pw_db_result *ev_query(ev_wait *w, pw_db_pool *pool, const pw_db_stmt *stmt,
                             const pw_db_param *params, int n)
{
    w->result = NULL;
    pw_status rv = pw_db_query(pool, NULL, stmt, params, n, queried, w);
    if (rv != PW_OK) {
        w->code = rv;
        snprintf(w->message, sizeof(w->message), "cannot start %s", stmt->name);
        return NULL;
    }
    svc_fiber_suspend(w->fiber);
    return w->result;
}

static void answered(const ProtobufCMessage *resp, const pw_result *result, void (*typed)(void),
                     void *ud)
{
    (void)typed;
    ev_wait *w = ud;
    w->response = resp;
    w->code = result->code;
    snprintf(w->message, sizeof(w->message), "%s", result->message);
    svc_fiber_resume(w->fiber);
}

pw_status ev_call(ev_wait *w, pw_channel *ch, const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *response_type)
{
    w->response = NULL;
    pw_call_options o = {.timeout_ms = 10000};
    pw_status rv = pw_client_unary(ch, path, &o, req, response_type, answered, NULL, w);
    if (rv != PW_OK) {
        w->code = rv;
        snprintf(w->message, sizeof(w->message), "cannot start %s", path);
        return rv;
    }
    svc_fiber_suspend(w->fiber);
    return w->code;
}

const char *ev_text(const pw_db_result *res, int row, const char *col)
{
    const char *s = "";
    size_t len;
    int c = pw_db_column(res, col);
    if (c < 0 || pw_db_is_null(res, row, c) || pw_db_get_text(res, row, c, &s, &len) != PW_OK) {
        return "";
    }
    return s;
}

int64_t ev_int64(const pw_db_result *res, int row, const char *col)
{
    int64_t v = 0;
    int c = pw_db_column(res, col);
    if (c < 0 || pw_db_is_null(res, row, c) || pw_db_get_int64(res, row, c, &v) != PW_OK) {
        return 0;
    }
    return v;
}

pw_status ev_consumer_start(svc_app *app, uv_loop_t *loop, const char *target,
                            const svc_outbox_options *o, pw_channel **ch, svc_outbox **outbox)
{
    pw_status rv = orch_channel(app->service, target, loop, ch);
    if (rv == PW_OK) {
        rv = svc_outbox_start(outbox, loop, app->pool, o);
    }
    if (rv != PW_OK && *ch != NULL) {
        pw_channel_close(*ch, NULL, NULL);
        *ch = NULL;
    }
    return rv;
}

/* ---- the jobs of worker 0 ---- */

typedef struct orch_jobs {
    void *recovery;
    void *chain_watch;
    ev_ledger *ledger;
    ev_webhooks *webhooks;
    ev_monitoring *monitoring;
} orch_jobs;

pw_status orch_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    const orch_state *s = app->service;
    orch_jobs *j = pw_calloc(1, sizeof(*j));
    pw_status rv = orch_start_jobs(app, loop, cfg, &j->recovery);
    if (rv == PW_OK) {
        rv = orch_chain_watch_start(app, loop, &j->chain_watch);
    }
    if (rv == PW_OK && s->finance_target[0] != '\0') {
        rv = ev_ledger_start(&j->ledger, app, loop, s->finance_target);
    } else if (rv == PW_OK) {
        PW_LOG(PW_LOG_WARNING, "orchestration",
               "finance_target is not set: ledger events stay in the outbox until it is");
    }
    if (rv == PW_OK && s->merchant_target[0] != '\0') {
        rv = ev_webhooks_start(&j->webhooks, app, loop, s->merchant_target);
    }
    if (rv == PW_OK && s->compliance_target[0] != '\0') {
        rv = ev_monitoring_start(&j->monitoring, app, loop, s->compliance_target);
    }
    if (rv != PW_OK) {
        orch_jobs_stop(j);
        return rv;
    }
    *jobs = j;
    return PW_OK;
}

void orch_jobs_stop(void *jobs)
{
    orch_jobs *j = jobs;
    if (j == NULL) {
        return;
    }
    orch_stop_jobs(j->recovery);
    orch_chain_watch_stop(j->chain_watch);
    ev_ledger_stop(j->ledger);
    ev_webhooks_stop(j->webhooks);
    ev_monitoring_stop(j->monitoring);
    pw_free(j);
}
