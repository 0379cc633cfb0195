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
 *
 * Handlers reach partners over their worker's long-lived channels
 * (orch_link_take): one per target and loop, so a payment's calls are
 * HTTP/2 streams on a connection whose TLS handshake was paid once. The
 * same per-worker timer puts the breakers into /metrics.
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

static void channel_options(const orch_state *s, pw_tls_config *tls, pw_channel_options *co)
{
    *tls = (pw_tls_config){
        .cert_file = s->tls_cert[0] ? s->tls_cert : NULL,
        .key_file = s->tls_key[0] ? s->tls_key : NULL,
        .ca_file = s->tls_ca[0] ? s->tls_ca : NULL,
    };
    *co = (pw_channel_options){.tls = tls->ca_file != NULL ? tls : NULL};
}

pw_status orch_channel(const orch_state *s, const char *target, uv_loop_t *loop, pw_channel **out)
{
    pw_tls_config tls;
    pw_channel_options co;
    channel_options(s, &tls, &co);
    return pw_channel_new(out, loop, target, &co);
}

/* ---- the workers' long-lived channels ---- */

/* The connectors, merchant, compliance, finance and the chain. */
#define LINKS_MAX     (ORCH_MAX_CONNECTORS + 4)
#define LINKS_WORKERS 64
/* How often each worker puts the breakers' states into its /metrics gauges. */
#define LINKS_PUBLISH_MS 1000

/* One worker's channels, on its loop. Handlers hold them while they use them (a hold may
 * span waits), so at shutdown they close when the last hold is given back. */
typedef struct worker_links {
    orch_links *registry;
    const orch_state *s;
    const svc_app *app;
    uv_loop_t *loop;
    int n;
    const char *target[LINKS_MAX];
    pw_channel *ch[LINKS_MAX];
    int holds;
    int closing;
    int open;
    /* Closes the channels on a later turn (never inside a call's own callback). */
    uv_timer_t close_timer;
    /* The breakers' gauges (orch_breakers_publish), until the server closes. */
    uv_timer_t publish_timer;
    int timers;
} worker_links;

struct orch_links {
    uv_mutex_t lock;
    worker_links *w[LINKS_WORKERS];
};

orch_links *orch_links_new(void)
{
    orch_links *l = pw_calloc(1, sizeof(*l));
    if (l != NULL && uv_mutex_init(&l->lock) != 0) {
        pw_free(l);
        l = NULL;
    }
    return l;
}

void orch_links_free(orch_links *l)
{
    if (l != NULL) {
        uv_mutex_destroy(&l->lock);
        pw_free(l);
    }
}

static worker_links *links_find(orch_links *l, const svc_app *app)
{
    worker_links *found = NULL;
    uv_mutex_lock(&l->lock);
    for (int i = 0; i < LINKS_WORKERS && found == NULL; i++) {
        if (l->w[i] != NULL && l->w[i]->app == app) {
            found = l->w[i];
        }
    }
    uv_mutex_unlock(&l->lock);
    return found;
}

static void links_forget(orch_links *l, const worker_links *w)
{
    uv_mutex_lock(&l->lock);
    for (int i = 0; i < LINKS_WORKERS; i++) {
        if (l->w[i] == w) {
            l->w[i] = NULL;
        }
    }
    uv_mutex_unlock(&l->lock);
}

/* The two timers close last; the second one's callback frees the worker's links. */
static void links_timer_closed(uv_handle_t *h)
{
    worker_links *w = h->data;
    if (--w->timers == 0) {
        pw_free(w);
    }
}

static void links_publish(uv_timer_t *t)
{
    worker_links *w = t->data;
    orch_breakers_publish(w->s, w->app->metrics, -1, orch_now_ms());
}

static void link_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    worker_links *w = ud;
    if (--w->open == 0) {
        uv_close((uv_handle_t *)&w->close_timer, links_timer_closed);
    }
}

static void links_close_now(uv_timer_t *t)
{
    worker_links *w = t->data;
    w->open = w->n;
    for (int i = 0; i < w->n; i++) {
        pw_channel_close(w->ch[i], link_closed, w);
    }
    if (w->n == 0) {
        uv_close((uv_handle_t *)&w->close_timer, links_timer_closed);
    }
}

/* The server closed: no handler starts here any more; the channels close once the
 * handlers still using one (their calls have deadlines) have given it back. */
static void links_server_event(pw_server *server, pw_server_event event, void *ud)
{
    (void)server;
    worker_links *w = ud;
    if (event != PW_SERVER_CLOSED) {
        return;
    }
    links_forget(w->registry, w);
    w->closing = 1;
    uv_close((uv_handle_t *)&w->publish_timer, links_timer_closed);
    if (w->holds == 0) {
        uv_timer_start(&w->close_timer, links_close_now, 0, 0);
    }
}

pw_status orch_links_attach(pw_server *server, const svc_app *app)
{
    const orch_state *s = app->service;
    worker_links *w = pw_calloc(1, sizeof(*w));
    *w = (worker_links){.registry = s->links, .s = s, .app = app, .loop = pw_server_loop(server)};
    uv_timer_init(w->loop, &w->close_timer);
    uv_timer_init(w->loop, &w->publish_timer);
    w->close_timer.data = w->publish_timer.data = w;
    w->timers = 2;
    /* A slot first, then the hook: a hook left registered for links freed here would run
     * at the server's close. */
    uv_mutex_lock(&w->registry->lock);
    int slot = 0;
    while (slot < LINKS_WORKERS && w->registry->w[slot] != NULL) {
        slot++;
    }
    if (slot < LINKS_WORKERS) {
        w->registry->w[slot] = w;
    }
    uv_mutex_unlock(&w->registry->lock);
    pw_status rv = PW_RESOURCE_EXHAUSTED;
    if (slot < LINKS_WORKERS) {
        rv = pw_server_add_hook(server, links_server_event, w);
        if (rv != PW_OK) {
            links_forget(w->registry, w);
        }
    }
    if (rv != PW_OK) {
        uv_close((uv_handle_t *)&w->publish_timer, links_timer_closed);
        uv_close((uv_handle_t *)&w->close_timer, links_timer_closed);
    } else {
        uv_timer_start(&w->publish_timer, links_publish, LINKS_PUBLISH_MS, LINKS_PUBLISH_MS);
    }
    return rv;
}

static pw_channel *links_channel(worker_links *w, const char *target)
{
    for (int i = 0; i < w->n; i++) {
        if (strcmp(w->target[i], target) == 0) {
            return w->ch[i];
        }
    }
    pw_tls_config tls;
    pw_channel_options co;
    channel_options(w->s, &tls, &co);
    /* Kept for the worker's life: a partner that was down is tried again soon, not after
     * the default's minutes of backoff (calls fail fast while every address backs off). */
    co.backoff_initial_ms = 100;
    co.backoff_max_ms = 1000;
    if (w->n == LINKS_MAX || pw_channel_new(&w->ch[w->n], w->loop, target, &co) != PW_OK) {
        return NULL;
    }
    w->target[w->n] = target;
    return w->ch[w->n++];
}

pw_channel *orch_link_take(svc_req *r, const char *target, orch_link *out)
{
    const orch_state *s = r->app->service;
    worker_links *w = links_find(s->links, r->app);
    out->w = NULL;
    pw_channel *ch = w != NULL && !w->closing ? links_channel(w, target) : NULL;
    if (ch != NULL) {
        out->w = w;
        w->holds++;
    }
    return ch;
}

void orch_link_give(orch_link *l)
{
    worker_links *w = l->w;
    l->w = NULL;
    if (w != NULL && --w->holds == 0 && w->closing) {
        uv_timer_start(&w->close_timer, links_close_now, 0, 0);
    }
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
    orch_link link;
    pw_channel *ch = idx < 0 ? NULL : orch_link_take(r, s->connectors[idx].target, &link);
    if (ch == NULL) {
        return;
    }
    uint64_t start = orch_now_ms();
    conn_wait w = {.r = r, .out = out};
    if (conn_send(s, ch, req, call_done, &w) == PW_OK) {
        svc_suspend(r);
    }
    /* Once the server closed, the worker's metrics registry may be gone before a call that
     * outlived the drain answers: its gauges then wait for nothing (the breaker is shared). */
    int publish = link.w != NULL && !link.w->closing;
    orch_link_give(&link);
    if (strcmp(req->method, "GetOperation") != 0) {
        /* An approval or a decline is an answer; FAILED and TIMED_OUT count against it. */
        int answered =
            strcmp(out->outcome, "SUCCEEDED") == 0 || strcmp(out->outcome, "DECLINED") == 0;
        uint64_t now = orch_now_ms();
        orch_breaker_record(s->breakers, idx, answered, now - start, now);
        if (publish) {
            orch_breakers_publish(s, r->app->metrics, idx, now);
        }
    }
}
