/*
 * watch.c: WatchPayment (docs/design/orchestration.md, "WatchPayment"): the
 * payment as it is, then the payment after each change of its state, until
 * a terminal state (SUCCEEDED, CANCELED, DECLINED, FAILED). Any instance can
 * serve any watcher: a trigger on payments (migrations 0003, 0010) runs
 * pg_notify('payment_changes', id) in the transaction that changes the
 * state of a payment someone watches (a row in payment_watches), delivered
 * at its commit to every LISTENer. Each watcher LISTENs (pw_db_listener, a
 * connection of its own for the stream's life); each time its LISTEN is in
 * place (again) it registers its row, under FOR SHARE of the payment so no
 * move in flight slips between (0010 says why), and re-reads the payment;
 * after that it re-reads when told. Its row goes when the stream ends.
 *
 * States, not deltas: while the client cannot take a message, wake-ups only
 * mark the payment changed, and the next message is the payment as it is
 * then, so a slow client gets the latest state and never a queue.
 */
#include <string.h>
#include <paywire/log.h>
#include "orchestration.h"

typedef Paywire__Orchestration__V1__Payment Payment;

/* In call memory: the listener and the call's callbacks reach it after the handler's stack. */
typedef struct watcher {
    svc_req *r;
    char payment_id[40];
    pw_db_listener *listener;
    pw_db_pool *pool;
    char watch_id[40];
    /* relisten: the LISTEN is in place (again) and the watch is to be registered. */
    int changed, relisten, registered, suspended, ended, writable_wait;
} watcher;

static void wake(watcher *w)
{
    if (w->suspended) {
        w->suspended = 0;
        svc_resume(w->r);
    }
}

static void noted(pw_db_listener *l, const char *channel, const char *payload, void *ud)
{
    (void)l;
    (void)channel;
    watcher *w = ud;
    if (payload == NULL || strcmp(payload, w->payment_id) == 0) {
        w->relisten |= payload == NULL;
        w->changed = 1;
        wake(w);
    }
}

static void write_ready(pw_call *call, void *ud)
{
    (void)call;
    wake(ud);
}

static void cancelled(pw_call *call, pw_status why, void *ud)
{
    (void)call;
    (void)why;
    watcher *w = ud;
    w->ended = 1;
    wake(w);
}

static const pw_call_ops watch_ops = {
    .on_write_ready = write_ready,
    .on_cancel = cancelled,
};

/*
 * Registered in the statement that waits for the payment's row lock: FOR SHARE conflicts
 * with FOR UPDATE and with an UPDATE's lock, so a move that holds the lock commits before
 * this row exists (the read after registering sees it), and a move after finds the row.
 * Again after a reconnect: a restarted database has lost the unlogged table.
 */
static const pw_db_stmt register_watch = {
    .name = "orch_watch_register",
    .sql = "WITH p AS (SELECT id FROM payments WHERE id = $1 FOR SHARE)"
           " INSERT INTO payment_watches (payment_id, watch_id) SELECT id, $2 FROM p"
           " ON CONFLICT DO NOTHING",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt unregister_watch = {
    .name = "orch_watch_unregister",
    .sql = "DELETE FROM payment_watches WHERE payment_id = $1 AND watch_id = $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_TEXT},
};

static void unregistered(pw_db_result *res, void *ud)
{
    (void)ud;
    if (pw_db_status(res) != PW_OK) {
        /* Left behind, it costs a NOTIFY per change until the payment is terminal. */
        PW_LOG(PW_LOG_WARNING, "orchestration", "a watch's row stays: %s", pw_db_message(res));
    }
}

/* However the handler ends: no callback may reach w after it. */
static void watch_end(svc_req *r, void *arg)
{
    watcher *w = arg;
    pw_call_set_ops(r->call, NULL, NULL);
    pw_db_listener_close(w->listener, NULL, NULL);
    if (w->registered) {
        /* Nothing waits for it (the call ends now); the values are copied. */
        pw_db_param p[] = {pw_db_text(w->payment_id), pw_db_text(w->watch_id)};
        if (pw_db_query(w->pool, NULL, &unregister_watch, p, 2, unregistered, NULL) != PW_OK) {
            PW_LOG(PW_LOG_WARNING, "orchestration", "a watch's row stays: cannot queue its delete");
        }
    }
}

static int terminal(Paywire__Orchestration__V1__PaymentState s)
{
    return s == PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_SUCCEEDED ||
           s == PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_CANCELED ||
           s == PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_DECLINED ||
           s == PAYWIRE__ORCHESTRATION__V1__PAYMENT_STATE__PAYMENT_STATE_FAILED;
}

static const pw_db_stmt last_event = {
    .name = "orch_watch_event",
    .sql = "SELECT type FROM outbox WHERE payment_id = $1 AND type LIKE 'payment.%'"
           " ORDER BY id DESC LIMIT 1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};

static void send_payment(svc_req *r, Payment *p, int first)
{
    Paywire__Orchestration__V1__WatchPaymentResponse resp =
        PAYWIRE__ORCHESTRATION__V1__WATCH_PAYMENT_RESPONSE__INIT;
    resp.payment = p;
    if (!first) {
        pw_db_param id = pw_db_text(p->id);
        const pw_db_result *res = svc_query(r, &last_event, &id, 1);
        resp.event_type = pw_db_rows(res) == 1 ? svc_text(svc_row_at(r, res, 0), "type") : "";
    }
    svc_reply(r, &resp.base);
}

/* Suspends until the payment may have changed and the call can take a message; 0: it ended. */
static int wait_change(watcher *w)
{
    while (!w->ended && (!w->changed || !pw_call_writable(w->r->call))) {
        w->suspended = 1;
        svc_suspend(w->r);
    }
    w->changed = 0;
    return !w->ended;
}

SVC_HANDLER(watch_payment, Paywire__Orchestration__V1__WatchPaymentRequest)
{
    if (!svc_id_ok(req->payment_id, "pay")) {
        svc_violation(r, "payment_id", "a payment id: \"pay_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, "payments:read");
    Payment *p = orch_payment_read(r, req->payment_id);
    svc_owns(r, p->merchant_id, "payment");
    const orch_state *s = r->app->service;
    watcher *w = svc_alloc(r, sizeof(*w));
    w->r = r;
    strncpy(w->payment_id, req->payment_id, sizeof(w->payment_id) - 1);
    w->pool = r->app->pool;
    if (svc_new_id("wch", w->watch_id, sizeof(w->watch_id)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create an id");
    }
    svc_at_end(r, watch_end, w);
    pw_call_set_ops(r->call, &watch_ops, w);
    if (pw_db_listener_new(&w->listener, pw_call_loop(r->call), s->database_url, "payment_changes",
                           noted, w) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot listen for the payment's changes");
    }
    /* The LISTEN is in place once noted runs with no payload; the watch registers then and
     * re-reads, so nothing committed between this read and the registration goes unseen. */
    send_payment(r, p, 1);
    Paywire__Orchestration__V1__PaymentState last = p->state;
    while (!terminal(last) && wait_change(w)) {
        if (w->relisten) {
            w->relisten = 0;
            pw_db_param reg[] = {pw_db_text(w->payment_id), pw_db_text(w->watch_id)};
            w->registered = 1; /* before the wait: a cancel during it still deletes the row */
            svc_query(r, &register_watch, reg, 2);
        }
        p = orch_payment_read(r, req->payment_id);
        if (p->state != last) {
            last = p->state;
            send_payment(r, p, 0);
        }
    }
    if (w->ended) {
        svc_fail(r, PW_CANCELLED, "the watch was cancelled");
    }
    svc_stream_end(r);
}

void orch_watch_payment_h(pw_call *call, const Paywire__Orchestration__V1__WatchPaymentRequest *req,
                          void *app)
{
    watch_payment_h(call, req, app);
}
