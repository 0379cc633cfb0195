/*
 * monitoring.c: payment facts to compliance monitoring (the "payment
 * facts to compliance monitoring"; compliance's MonitoringService). Each
 * captured payment, copied into monitoring_events by a trigger on the outbox,
 * is sent to RecordPayments at least once (svc_outbox), read from the payment
 * at delivery: the captured amount, the card's vault token as the payer's
 * key, the issuer's country, the capture's time. Compliance counts a payment
 * once (idempotent on its id), so a re-send adds nothing.
 */
#include <stdio.h>
#include <string.h>
#include "events.h"
#include "paywire/compliance/v1/monitoring.pw.h"

struct ev_monitoring {
    svc_app *app;
    pw_channel *compliance;
    svc_outbox *outbox;
    int stopping, channel_closed, deliveries;
};

typedef struct fact_job {
    ev_monitoring *m;
    svc_outbox *outbox;
    void *token;
    ev_wait w;
    char payment_id[40];
} fact_job;

static const pw_db_stmt fact_of = {
    .name = "orch_monitoring_fact",
    .sql = "SELECT p.merchant_id, p.amount_captured_minor, p.currency,"
           /* On-chain: the payer is the wallet of the first final deposit. */
           " CASE p.method WHEN 'on_chain' THEN coalesce((SELECT d.from_address FROM deposits d"
           " WHERE d.payment_id = p.id AND d.state = 'FINAL' ORDER BY d.seen_time LIMIT 1), '')"
           " ELSE p.vault_token END AS vault_token,"
           " p.issuer_country, (extract(epoch FROM o.end_time) * 1000000)::int8 AS time_us"
           " FROM payments p JOIN payment_operations o ON o.payment_id = p.id"
           " AND o.kind = 'CAPTURE' AND o.state = 'SUCCEEDED' WHERE p.id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

static void maybe_free(ev_monitoring *m)
{
    if (m->channel_closed && m->deliveries == 0) {
        pw_free(m);
    }
}

static pw_status record(fact_job *j)
{
    pw_db_param p = pw_db_text(j->payment_id);
    const pw_db_result *res = ev_query(&j->w, j->m->app->pool, &fact_of, &p, 1);
    if (res == NULL || j->w.code != PW_OK || pw_db_rows(res) != 1 || j->m->stopping) {
        return PW_UNAVAILABLE;
    }
    int64_t us = ev_int64(res, 0, "time_us");
    Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    at.seconds = us / 1000000;
    at.nanos = (int32_t)(us % 1000000) * 1000;
    Paywire__Common__V1__Money amount = PAYWIRE__COMMON__V1__MONEY__INIT;
    amount.amount_minor = ev_int64(res, 0, "amount_captured_minor");
    amount.currency = (char *)ev_text(res, 0, "currency");
    Paywire__Compliance__V1__PaymentFact f = PAYWIRE__COMPLIANCE__V1__PAYMENT_FACT__INIT;
    f.payment_id = j->payment_id;
    f.merchant_id = (char *)ev_text(res, 0, "merchant_id");
    f.amount = &amount;
    f.payer_key = (char *)ev_text(res, 0, "vault_token");
    f.payer_country = (char *)ev_text(res, 0, "issuer_country");
    f.time = &at;
    Paywire__Compliance__V1__PaymentFact *facts[] = {&f};
    Paywire__Compliance__V1__RecordPaymentsRequest req =
        PAYWIRE__COMPLIANCE__V1__RECORD_PAYMENTS_REQUEST__INIT;
    req.n_payments = 1;
    req.payments = facts;
    /* res stays valid: nothing waits between the read and the call's start. */
    return ev_call(&j->w, j->m->compliance,
                   "/paywire.compliance.v1.MonitoringService/RecordPayments", &req.base,
                   &paywire__compliance__v1__record_payments_response__descriptor);
}

static void record_on_fiber(svc_fiber *fiber, void *arg)
{
    fact_job *j = arg;
    j->w.fiber = fiber;
    pw_status rv = record(j);
    if (j->m->stopping && rv != PW_OK) {
        rv = PW_CANCELLED;
    }
    svc_outbox_delivered(j->outbox, j->token, rv, j->w.message);
    ev_monitoring *m = j->m;
    pw_free(j);
    m->deliveries--;
    maybe_free(m);
}

static void deliver(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    ev_monitoring *m = ud;
    fact_job *j = pw_calloc(1, sizeof(*j));
    j->m = m;
    j->outbox = o;
    j->token = token;
    snprintf(j->payment_id, sizeof(j->payment_id), "%s", ev_text(res, row, "payment_id"));
    m->deliveries++;
    if (svc_fiber_spawn(m->app->fibers, record_on_fiber, j) != PW_OK) {
        m->deliveries--;
        pw_free(j);
        svc_outbox_delivered(o, token, PW_RESOURCE_EXHAUSTED, "no fiber for the delivery");
    }
}

pw_status ev_monitoring_start(ev_monitoring **out, svc_app *app, uv_loop_t *loop,
                              const char *target)
{
    *out = NULL;
    ev_monitoring *m = pw_calloc(1, sizeof(*m));
    m->app = app;
    svc_outbox_options oo = {
        .table = "monitoring_events",
        .what = "payment facts to compliance",
        .deliver = deliver,
        .user_data = m,
        .idle_ms = 500,
        .backoff_initial_ms = 1000,
        .backoff_max_ms = 300000,
    };
    pw_status rv = ev_consumer_start(app, loop, target, &oo, &m->compliance, &m->outbox);
    if (rv != PW_OK) {
        pw_free(m);
        return rv;
    }
    *out = m;
    return PW_OK;
}

static void compliance_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    ev_monitoring *m = ud;
    m->channel_closed = 1;
    maybe_free(m);
}

void ev_monitoring_stop(ev_monitoring *m)
{
    if (m == NULL) {
        return;
    }
    m->stopping = 1;
    svc_outbox_stop(m->outbox);
    pw_channel_close(m->compliance, compliance_closed, m);
}
