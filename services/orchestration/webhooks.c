/*
 * webhooks.c: events to merchants' endpoints (docs/design/orchestration.md,
 * "Webhook delivery"), in two stages, each an svc_outbox:
 *
 *   fan-out   webhook_events (a trigger copies every outbox event a merchant
 *             may see): the merchant's enabled endpoints subscribed to the
 *             type (merchant's GetWebhookTargets) each get a row in
 *             webhook_deliveries, (event, endpoint) unique, so a repeated
 *             fan-out adds nothing;
 *   delivery  webhook_deliveries: POST the event as JSON to the endpoint,
 *             signed, over paywire_http. A 2xx within webhook_timeout_ms is
 *             delivered; anything else is retried with exponential backoff
 *             and jitter (webhook_backoff_*), each endpoint's rows on their
 *             own, so a failing endpoint delays only itself; a row older than
 *             webhook_give_up_ms is given up (dead-lettered) and its endpoint
 *             marked failing in webhook_endpoint_health.
 *
 * The signature is Stripe's scheme: Paywire-Signature: t=<unix seconds>,
 * v1=<hex HMAC-SHA256(secret, t "." body)>, with a second v1 for the
 * previous secret while it still verifies (24 h after a rotation). Receivers
 * should refuse a t more than 5 minutes from their clock (replays) and
 * de-duplicate on Paywire-Event-Id: delivery is at least once.
 *
 * Secrets are fetched from merchant for every delivery and live only in
 * the answer of that call, zeroed once signed (and at once by the fan-out,
 * which signs nothing) before the answer is freed; our database never holds
 * them.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <paywire/http.h>
#include <paywire/log.h>
#include "events.h"
#include "paywire/merchant/v1/merchant.pw.h"

typedef Paywire__Merchant__V1__WebhookTarget Target;

struct ev_webhooks {
    svc_app *app;
    pw_channel *merchant;
    pw_http_client *http;
    svc_outbox *fanout, *delivery;
    int stopping;
    int closed; /* the channel and the client: 2 when both are */
    int deliveries;
};

typedef struct job {
    ev_webhooks *w;
    svc_outbox *outbox;
    void *token;
    ev_wait wait;
    int64_t id;
    int64_t age_ms;
    char event_id[64], merchant_id[40], type[40], endpoint_id[40];
    /* The row's last error (the endpoint's, when it is given up); the HTTP answer. */
    char last_error[300];
    long http_status;
} job;

static const pw_db_stmt insert_deliveries = {
    .name = "orch_webhook_fanout",
    .sql = "INSERT INTO webhook_deliveries (event_id, endpoint_id, merchant_id)"
           " SELECT $1, e, $3 FROM unnest(string_to_array($2, ',')) e"
           " ON CONFLICT (event_id, endpoint_id) DO NOTHING",
    .nparams = 3,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT},
};
static const pw_db_stmt event_body = {
    .name = "orch_webhook_body",
    .sql = "SELECT json_build_object('id', event_id, 'type', type, 'created',"
           " extract(epoch FROM create_time)::int8, 'data', payload)::text AS body"
           " FROM outbox WHERE event_id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt mark_failing = {
    .name = "orch_webhook_failing",
    .sql = "INSERT INTO webhook_endpoint_health (endpoint_id, merchant_id, failing_since,"
           " last_error) VALUES ($1, $2, now(), $3) ON CONFLICT (endpoint_id) DO UPDATE"
           " SET last_error = $3",
    .nparams = 3,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT},
};

static void maybe_free(ev_webhooks *w)
{
    if (w->closed == 2 && w->deliveries == 0) {
        pw_free(w);
    }
}

/* ---- merchant's endpoints ---- */

/* GetWebhookTargets of the job's merchant: the response (valid until the next wait), or NULL. */
static const Paywire__Merchant__V1__GetWebhookTargetsResponse *targets(job *j, pw_status *rv)
{
    if (j->w->stopping) {
        *rv = PW_CANCELLED;
        return NULL;
    }
    Paywire__Merchant__V1__GetWebhookTargetsRequest req =
        PAYWIRE__MERCHANT__V1__GET_WEBHOOK_TARGETS_REQUEST__INIT;
    req.merchant_id = j->merchant_id;
    *rv =
        ev_call(&j->wait, j->w->merchant, "/paywire.merchant.v1.MerchantService/GetWebhookTargets",
                &req.base, &paywire__merchant__v1__get_webhook_targets_response__descriptor);
    return *rv == PW_OK ? (const void *)j->wait.response : NULL;
}

/* Zeroes every signing secret of a targets answer: called before the fiber's next wait, which
 * hands the answer back to the runtime to be freed (the secrets must not linger in freed
 * memory). The answer is the call's; only its secrets' bytes are written. */
static void wipe_secrets(const Paywire__Merchant__V1__GetWebhookTargetsResponse *resp)
{
    for (size_t i = 0; resp != NULL && i < resp->n_targets; i++) {
        char *secrets[] = {resp->targets[i]->signing_secret,
                           resp->targets[i]->previous_signing_secret};
        for (size_t k = 0; k < 2; k++) {
            if (secrets[k] != NULL) {
                OPENSSL_cleanse(secrets[k], strlen(secrets[k]));
            }
        }
    }
}

static int subscribed(const Target *t, const char *type)
{
    for (size_t i = 0; i < t->n_event_types; i++) {
        if (strcmp(t->event_types[i], type) == 0) {
            return 1;
        }
    }
    return t->n_event_types == 0;
}

/* Stage 1: one delivery row per subscribed endpoint. */
static pw_status fan_out(job *j)
{
    pw_status rv;
    const Paywire__Merchant__V1__GetWebhookTargetsResponse *resp = targets(j, &rv);
    if (resp == NULL) {
        return rv;
    }
    wipe_secrets(resp); /* the fan-out signs nothing */
    char ids[100 * 41 + 1] = "";
    size_t len = 0;
    for (size_t i = 0; i < resp->n_targets && len + 42 < sizeof(ids); i++) {
        if (subscribed(resp->targets[i], j->type)) {
            len += (size_t)snprintf(ids + len, sizeof(ids) - len, "%s%.40s", len ? "," : "",
                                    resp->targets[i]->endpoint_id);
        }
    }
    if (len == 0) {
        return PW_OK; /* nobody listens for it */
    }
    pw_db_param p[] = {pw_db_text(j->event_id), pw_db_text(ids), pw_db_text(j->merchant_id)};
    ev_query(&j->wait, j->w->app->pool, &insert_deliveries, p, 3);
    return j->wait.code == PW_OK ? PW_OK : PW_UNAVAILABLE;
}

/* ---- signing and sending ---- */

/* ",v1=<hex HMAC-SHA256(secret, signed)>" appended to out. */
static void add_signature(char *out, size_t cap, const char *secret, const char *signed_text,
                          size_t signed_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)signed_text, signed_len,
         mac, &mac_len);
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, cap - n, ",v1=");
    for (unsigned int i = 0; i < mac_len && n + 3 < cap; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%02x", mac[i]);
    }
    OPENSSL_cleanse(mac, sizeof(mac));
}

static void posted(pw_http_client *c, const pw_http_response *resp, void *ud)
{
    (void)c;
    job *j = ud;
    j->http_status = resp->http_status;
    j->wait.code = resp->status;
    snprintf(j->wait.message, sizeof(j->wait.message), "%s",
             resp->status == PW_OK ? "" : (resp->error ? resp->error : "no answer"));
    svc_fiber_resume(j->wait.fiber);
}

/* POSTs body to t (one of resp's targets), signed with its secrets, which are wiped with every
 * other secret of resp before the request is sent; the outcome. */
static pw_status post(job *j, const Paywire__Merchant__V1__GetWebhookTargetsResponse *resp,
                      const Target *t, const char *body)
{
    const orch_state *s = j->w->app->service;
    size_t body_len = strlen(body);
    char stamp[24];
    snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL));
    size_t signed_len = strlen(stamp) + 1 + body_len;
    char *signed_text = pw_malloc(signed_len + 1);
    snprintf(signed_text, signed_len + 1, "%s.%s", stamp, body);
    char signature[256];
    snprintf(signature, sizeof(signature), "t=%s", stamp);
    add_signature(signature, sizeof(signature), t->signing_secret, signed_text, signed_len);
    if (t->previous_signing_secret[0] != '\0') {
        add_signature(signature, sizeof(signature), t->previous_signing_secret, signed_text,
                      signed_len);
    }
    wipe_secrets(resp);
    pw_free(signed_text);
    pw_http_header headers[] = {{"content-type", "application/json"},
                                {"user-agent", "paywire-webhooks/1"},
                                {"paywire-event-id", j->event_id},
                                {"paywire-signature", signature}};
    pw_http_request req = {.method = "POST",
                           .url = t->url,
                           .headers = headers,
                           .n_headers = sizeof(headers) / sizeof(headers[0]),
                           .body = body,
                           .body_len = body_len,
                           .timeout_ms = (uint32_t)s->webhook_timeout_ms};
    pw_status rv = pw_http_send(j->w->http, &req, posted, j);
    if (rv != PW_OK) {
        snprintf(j->wait.message, sizeof(j->wait.message), "cannot send: %s", pw_status_str(rv));
        return PW_UNAVAILABLE;
    }
    svc_fiber_suspend(j->wait.fiber);
    if (j->wait.code != PW_OK) {
        return PW_UNAVAILABLE; /* no answer in time: retried */
    }
    if (j->http_status < 200 || j->http_status > 299) {
        snprintf(j->wait.message, sizeof(j->wait.message), "HTTP %ld", j->http_status);
        return PW_UNAVAILABLE;
    }
    return PW_OK;
}

/* Stage 2: one event to one endpoint. */
static pw_status deliver_one(job *j)
{
    const orch_state *s = j->w->app->service;
    if (j->age_ms > s->webhook_give_up_ms) {
        /* Given up: the endpoint is failing; the merchant catches up with ListEvents. */
        PW_LOG(PW_LOG_ERR, "orchestration",
               "webhook %s to %s given up after %lld ms: marked failing", j->event_id,
               j->endpoint_id, (long long)j->age_ms);
        pw_db_param p[] = {pw_db_text(j->endpoint_id), pw_db_text(j->merchant_id),
                           pw_db_text(j->last_error)};
        ev_query(&j->wait, j->w->app->pool, &mark_failing, p, 3);
        snprintf(j->wait.message, sizeof(j->wait.message), "given up after %lld ms",
                 (long long)j->age_ms);
        return PW_FAILED_PRECONDITION;
    }
    pw_db_param e = pw_db_text(j->event_id);
    const pw_db_result *res = ev_query(&j->wait, j->w->app->pool, &event_body, &e, 1);
    if (res == NULL || j->wait.code != PW_OK || pw_db_rows(res) != 1) {
        return PW_UNAVAILABLE;
    }
    char *body = pw_strdup(ev_text(res, 0, "body"));
    pw_status rv;
    const Paywire__Merchant__V1__GetWebhookTargetsResponse *resp = targets(j, &rv);
    const Target *t = NULL;
    for (size_t i = 0; resp != NULL && i < resp->n_targets; i++) {
        if (strcmp(resp->targets[i]->endpoint_id, j->endpoint_id) == 0) {
            t = resp->targets[i];
        }
    }
    if (resp != NULL) {
        /* An endpoint deleted or disabled since the fan-out gets nothing more. */
        if (t != NULL) {
            rv = post(j, resp, t, body);
        } else {
            wipe_secrets(resp);
            rv = PW_OK;
        }
    }
    pw_free(body);
    return rv;
}

/* ---- the two publishers ---- */

static void run_job(svc_fiber *fiber, void *arg)
{
    job *j = arg;
    j->wait.fiber = fiber;
    snprintf(j->last_error, sizeof(j->last_error), "%s", j->wait.message);
    j->wait.message[0] = '\0';
    pw_status rv = j->endpoint_id[0] != '\0' ? deliver_one(j) : fan_out(j);
    if (j->w->stopping && rv != PW_OK) {
        rv = PW_CANCELLED;
    }
    svc_outbox_delivered(j->outbox, j->token, rv, j->wait.message);
    ev_webhooks *w = j->w;
    pw_free(j);
    w->deliveries--;
    maybe_free(w);
}

static void start_job(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    ev_webhooks *w = ud;
    job *j = pw_calloc(1, sizeof(*j));
    j->w = w;
    j->outbox = o;
    j->token = token;
    j->id = ev_int64(res, row, "id");
    int64_t created_us = 0;
    int col = pw_db_column(res, "create_time");
    if (col >= 0 && pw_db_get_timestamptz(res, row, col, &created_us) == PW_OK) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        j->age_ms = ((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000 - created_us) / 1000;
    }
    snprintf(j->wait.message, sizeof(j->wait.message), "%s", ev_text(res, row, "last_error"));
    snprintf(j->event_id, sizeof(j->event_id), "%s", ev_text(res, row, "event_id"));
    snprintf(j->merchant_id, sizeof(j->merchant_id), "%s", ev_text(res, row, "merchant_id"));
    snprintf(j->type, sizeof(j->type), "%s", ev_text(res, row, "type"));
    snprintf(j->endpoint_id, sizeof(j->endpoint_id), "%s", ev_text(res, row, "endpoint_id"));
    w->deliveries++;
    if (svc_fiber_spawn(w->app->fibers, run_job, j) != PW_OK) {
        w->deliveries--;
        pw_free(j);
        svc_outbox_delivered(o, token, PW_RESOURCE_EXHAUSTED, "no fiber for the delivery");
    }
}

pw_status ev_webhooks_start(ev_webhooks **out, svc_app *app, uv_loop_t *loop, const char *target)
{
    *out = NULL;
    const orch_state *s = app->service;
    ev_webhooks *w = pw_calloc(1, sizeof(*w));
    w->app = app;
    pw_status rv = orch_channel(s, target, loop, &w->merchant);
    if (rv == PW_OK) {
        rv = pw_http_client_new(&w->http, loop, NULL);
    }
    svc_outbox_options fan = {
        .table = "webhook_events",
        .what = "webhook fan-out",
        .deliver = start_job,
        .user_data = w,
        .idle_ms = 200,
    };
    svc_outbox_options send = {
        .table = "webhook_deliveries",
        .what = "webhooks to merchants",
        .deliver = start_job,
        .user_data = w,
        .idle_ms = 200,
        .backoff_initial_ms = (uint64_t)s->webhook_backoff_initial_ms,
        .backoff_max_ms = (uint64_t)s->webhook_backoff_max_ms,
        /* Longer than the request's deadline and merchant's call before it. */
        .lease_ms = (uint64_t)s->webhook_timeout_ms + 20000,
    };
    if (rv == PW_OK) {
        rv = svc_outbox_start(&w->fanout, loop, app->pool, &fan);
    }
    if (rv == PW_OK) {
        rv = svc_outbox_start(&w->delivery, loop, app->pool, &send);
    }
    if (rv != PW_OK) {
        ev_webhooks_stop(w); /* frees w once its channel and client are closed */
        return rv;
    }
    *out = w;
    return PW_OK;
}

static void merchant_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    ev_webhooks *w = ud;
    w->closed++;
    maybe_free(w);
}

static void http_closed(pw_http_client *c, void *ud)
{
    (void)c;
    ev_webhooks *w = ud;
    w->closed++;
    maybe_free(w);
}

void ev_webhooks_stop(ev_webhooks *w)
{
    if (w == NULL) {
        return;
    }
    w->stopping = 1;
    svc_outbox_stop(w->fanout);
    svc_outbox_stop(w->delivery);
    /* Requests in flight end CANCELLED; their fibers report and end before w is freed. */
    if (w->merchant != NULL) {
        pw_channel_close(w->merchant, merchant_closed, w);
    } else {
        w->closed++;
    }
    if (w->http != NULL) {
        pw_http_client_close(w->http, http_closed, w);
    } else {
        w->closed++;
    }
    maybe_free(w);
}
