/*
 * svc_req.c: a call served on a fiber; its answers, callers, queries, the
 * idempotent transaction and rows by column name (docs/design/services.md).
 *
 * The fiber waits at exactly one place at a time (wait_event): a query's
 * result, the start of a transaction attempt (pw_db_tx_run's body
 * callback), or the transaction's end. The database layer's callbacks store
 * what arrived in the request and resume the fiber. A handler that fails
 * jumps (longjmp, on its own stack) back to run_handler, which rolls back a
 * transaction still open, waits until the database layer is done with it,
 * and finishes the call. A transaction that must run again (serialization
 * failure, deadlock) jumps back to svc_transaction, whose frame is live
 * while its body runs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/log.h>
#include "google/protobuf/timestamp.pb-c.h"
#include "svc_req.h"

enum {
    EV_NONE = 0,
    EV_RESULT,
    EV_BODY,
    EV_DONE,
    EV_WAKE,
};

/* ---- the fiber ---- */

typedef struct serve_start {
    pw_call *call;
    svc_app *app;
    const ProtobufCMessage *request;
    svc_handler_fn handler;
} serve_start;

static void wait_event(svc_req *r)
{
    r->event = EV_NONE;
    svc_fiber_suspend(r->fiber);
}

static void resume_with(svc_req *r, int event)
{
    r->event = event;
    svc_fiber_resume(r->fiber);
}

static _Noreturn void end_handler(svc_req *r)
{
    longjmp(*(jmp_buf *)r->exit_jmp, 1);
}

static void tx_body(pw_db_tx *tx, int attempt, void *ud)
{
    svc_req *r = ud;
    (void)attempt;
    r->tx = tx;
    resume_with(r, EV_BODY);
}

static void tx_done(pw_status status, const char *message, void *ud)
{
    svc_req *r = ud;
    r->tx = NULL;
    r->tx_state = SVC_TX_ENDED;
    r->tx_status = status;
    snprintf(r->tx_message, sizeof(r->tx_message), "%s", message ? message : "");
    resume_with(r, EV_DONE);
}

/* Rolls back a transaction the handler left open, and waits until the database is done with it:
 * its callbacks point into this request. */
static void end_tx(svc_req *r)
{
    while (r->tx_state == SVC_TX_OPEN) {
        if (r->tx != NULL) {
            pw_db_tx_abort(r->tx, r->code != PW_OK ? r->code : PW_ABORTED, r->message);
        }
        wait_event(r);
    }
}

static int has_details(const pw_error_details *d)
{
    return d->reason != NULL || d->violation_count > 0 || d->retry_delay_ms > 0 ||
           d->resource_type != NULL;
}

static void finish(svc_req *r)
{
    if (r->code == PW_OK) {
        pw_call_finish(r->call, PW_OK, NULL);
    } else if (has_details(&r->details)) {
        pw_call_finish_details(r->call, r->code, &r->details, "%s", r->message);
    } else {
        pw_call_finish(r->call, r->code, "%s", r->message);
    }
    pw_error_details_clear(&r->details);
}

/* r is not a local of this function: setjmp leaves what it points to intact. */
static void run_handler(svc_req *r)
{
    jmp_buf exit_jmp;
    r->exit_jmp = &exit_jmp;
    if (setjmp(exit_jmp) == 0) {
        r->handler(r, r->request);
        if (r->tx_state == SVC_TX_OPEN) {
            r->code = PW_INTERNAL;
            snprintf(r->message, sizeof(r->message), "%s ended with its transaction open",
                     pw_call_method(r->call));
        } else if (!r->replied) {
            r->code = PW_INTERNAL;
            snprintf(r->message, sizeof(r->message), "%s ended without an answer",
                     pw_call_method(r->call));
        }
    }
    if (r->at_end != NULL) {
        r->at_end(r, r->at_end_arg);
    }
    OPENSSL_cleanse(r->secret, sizeof(r->secret));
    end_tx(r);
    finish(r);
}

void svc_at_end(svc_req *r, void (*fn)(svc_req *r, void *arg), void *arg)
{
    PW_ASSERT(r->at_end == NULL);
    r->at_end = fn;
    r->at_end_arg = arg;
}

static void serve_fiber(svc_fiber *f, void *arg)
{
    const serve_start *s = arg;
    svc_req r;
    memset(&r, 0, sizeof(r));
    r.fiber = f;
    r.call = s->call;
    r.app = s->app;
    r.request = s->request;
    r.handler = s->handler;
    run_handler(&r);
}

void svc_serve(pw_call *call, svc_app *app, const ProtobufCMessage *request, svc_handler_fn handler)
{
    serve_start s = {call, app, request, handler};
    /* The fiber copies s before it first waits, so s may live on this stack. */
    pw_status rv = svc_fiber_spawn(app->fibers, serve_fiber, &s);
    if (rv != PW_OK) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "cannot serve %s now: %s", pw_call_method(call),
                       pw_status_str(rv));
    }
}

/* ---- memory ---- */

void *svc_alloc(svc_req *r, size_t size)
{
    void *p = pw_call_alloc(r->call, size ? size : 1);
    PW_ASSERT(p != NULL); /* service binaries abort on out-of-memory before this */
    return p;
}

char *svc_strdup(svc_req *r, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *p = svc_alloc(r, n + 1);
    memcpy(p, s ? s : "", n);
    p[n] = '\0';
    return p;
}

/* ---- answering ---- */

void svc_reply(svc_req *r, const ProtobufCMessage *response)
{
    pw_status rv = pw_call_send(r->call, response);
    if (rv != PW_OK) {
        svc_fail(r, rv, "cannot send the response: %s", pw_status_str(rv));
    }
    r->replied = 1;
}

static void stream_wake(pw_call *call, void *ud)
{
    svc_req *r = ud;
    (void)call;
    if (r->waiting_writable) {
        resume_with(r, EV_RESULT);
    }
}

static void stream_cancelled(pw_call *call, pw_status why, void *ud)
{
    (void)why;
    stream_wake(call, ud);
}

static const pw_call_ops stream_ops = {
    .on_write_ready = stream_wake,
    .on_cancel = stream_cancelled,
};

void svc_wait_writable(svc_req *r)
{
    while (!pw_call_writable(r->call)) {
        if (pw_call_is_cancelled(r->call)) {
            svc_fail(r, PW_CANCELLED, "%s was cancelled", pw_call_method(r->call));
        }
        pw_call_set_ops(r->call, &stream_ops, r);
        r->waiting_writable = 1;
        wait_event(r);
        r->waiting_writable = 0;
        pw_call_set_ops(r->call, NULL, NULL);
    }
    if (pw_call_is_cancelled(r->call)) {
        svc_fail(r, PW_CANCELLED, "%s was cancelled", pw_call_method(r->call));
    }
}

void svc_stream_end(svc_req *r)
{
    r->replied = 1;
}

static void set_failure(svc_req *r, pw_status code, const char *fmt, va_list ap) PW_PRINTF(3, 0);
static void set_failure(svc_req *r, pw_status code, const char *fmt, va_list ap)
{
    r->code = code == PW_OK ? PW_INTERNAL : code;
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
}

void svc_fail(svc_req *r, pw_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_failure(r, code, fmt, ap);
    va_end(ap);
    end_handler(r);
}

void svc_fail_reason(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
{
    pw_error_set_info(&r->details, reason, r->app->domain);
    va_list ap;
    va_start(ap, fmt);
    set_failure(r, code, fmt, ap);
    va_end(ap);
    end_handler(r);
}

void svc_abort(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
{
    PW_ASSERT(r->tx_state == SVC_TX_OPEN); /* outside a transaction: svc_fail */
    if (reason != NULL) {
        pw_error_set_info(&r->details, reason, r->app->domain);
    }
    va_list ap;
    va_start(ap, fmt);
    set_failure(r, code, fmt, ap);
    va_end(ap);
    end_handler(r); /* run_handler rolls the transaction back */
}

void svc_same_text(svc_req *r, const char *key, const char *field, const char *stored,
                   const char *asked)
{
    if (strcmp(stored, asked) != 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                  "idempotency key \"%s\" was used with another %s (%s, not %s)", key, field,
                  stored, asked);
    }
}

void svc_same_int(svc_req *r, const char *key, const char *field, int64_t stored, int64_t asked)
{
    if (stored != asked) {
        svc_abort(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                  "idempotency key \"%s\" was used with another %s (%lld, not %lld)", key, field,
                  (long long)stored, (long long)asked);
    }
}

/* A database failure: its status and safe message; UNAVAILABLE says when to retry. */
static _Noreturn void fail_db(svc_req *r, pw_status code, const char *message)
{
    if (code == PW_UNAVAILABLE) {
        r->details.retry_delay_ms = 1000;
    }
    svc_fail(r, code, "%s", message);
}

void svc_violation(svc_req *r, const char *field, const char *description)
{
    pw_error_add_violation(&r->details, field, description);
}

void svc_check(svc_req *r)
{
    if (r->details.violation_count == 0) {
        return;
    }
    char more[64] = "";
    if (r->details.violation_count > 1) {
        snprintf(more, sizeof(more), " (and %zu more in the details)",
                 r->details.violation_count - 1);
    }
    svc_fail(r, PW_INVALID_ARGUMENT, "invalid %s: %s%s", r->details.violations[0].field,
             r->details.violations[0].description, more);
}

/* ---- callers ---- */

static int in_csv(const char *csv, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = csv; p != NULL && (p = strstr(p, item)) != NULL; p += n) {
        if ((p == csv || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

static int internal_caller(svc_req *r)
{
    const pw_peer *peer = pw_call_peer(r->call);
    if (!peer->tls || !peer->verified || r->app->internal_identities == NULL) {
        return 0;
    }
    for (size_t i = 0; i < peer->san_count; i++) {
        const char *san = peer->sans[i];
        if (strncmp(san, "URI:", 4) == 0 && in_csv(r->app->internal_identities, san + 4)) {
            r->caller.internal = 1;
            snprintf(r->caller.identity, sizeof(r->caller.identity), "%s", san + 4);
            return 1;
        }
    }
    return 0;
}

/* The API key of the call's authorization header, into r->secret (wiped when the call ends). */
static void bearer_secret(svc_req *r, const char *scope)
{
    const pw_metadata_entry *auth = pw_metadata_get(pw_call_metadata(r->call), "authorization");
    if (auth == NULL) {
        svc_fail(r, PW_UNAUTHENTICATED,
                 "%s needs an API key (authorization: Bearer sk_...) or an internal mTLS identity",
                 pw_call_method(r->call));
    }
    if (scope == NULL) {
        svc_fail_reason(r, PW_PERMISSION_DENIED, "INTERNAL_ONLY",
                        "%s is for internal services (mTLS); API keys cannot call it",
                        pw_call_method(r->call));
    }
    if (auth->value_len < 8 || auth->value_len - 7 >= sizeof(r->secret) ||
        strncasecmp((const char *)auth->value, "Bearer ", 7) != 0) {
        svc_fail(r, PW_UNAUTHENTICATED, "authorization must be \"Bearer <API key>\"");
    }
    memcpy(r->secret, auth->value + 7, auth->value_len - 7);
    r->secret[auth->value_len - 7] = '\0';
}

static void rate_limit(svc_req *r)
{
    if (r->app->merchant_limit == NULL) {
        return;
    }
    int64_t wait_ms = pw_rate_limiter_take(r->app->merchant_limit, r->caller.merchant_id,
                                           uv_now(pw_call_loop(r->call)));
    if (wait_ms > 0) {
        r->details.retry_delay_ms = wait_ms;
        svc_fail_reason(r, PW_RESOURCE_EXHAUSTED, "RATE_LIMITED",
                        "merchant %s is over its rate limit; retry in %lld ms",
                        r->caller.merchant_id, (long long)wait_ms);
    }
}

void svc_authenticate(svc_req *r, const char *scope)
{
    if (!r->authenticated) {
        if (!internal_caller(r)) {
            bearer_secret(r, scope);
            r->app->resolve_key(r, r->secret);
            OPENSSL_cleanse(r->secret, sizeof(r->secret));
            rate_limit(r);
        }
        r->authenticated = 1;
    }
    if (!svc_caller_has_scope(&r->caller, scope)) {
        svc_fail_reason(r, PW_PERMISSION_DENIED, "MISSING_SCOPE", "API key %s lacks scope %s",
                        r->caller.identity, scope);
    }
}

void svc_owns(svc_req *r, const char *merchant_id, const char *what)
{
    if (!r->caller.internal && strcmp(r->caller.merchant_id, merchant_id ? merchant_id : "") != 0) {
        /* Another merchant's resources do not exist for this caller. */
        svc_fail(r, PW_NOT_FOUND, "%s not found", what);
    }
}

/* ---- queries ---- */

static void query_done(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    r->result = res;
    resume_with(r, EV_RESULT);
}

const pw_db_result *svc_query(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n)
{
    PW_ASSERT(r->tx_state != SVC_TX_OPEN); /* inside a transaction: svc_tx_query */
    pw_status rv = pw_db_query(r->app->pool, r->call, stmt, params, n, query_done, r);
    if (rv != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot run %s: %s", stmt->name, pw_status_str(rv));
    }
    wait_event(r);
    if (pw_db_status(r->result) != PW_OK) {
        fail_db(r, pw_db_status(r->result), pw_db_message(r->result));
    }
    return r->result;
}

/* ---- calling another service ---- */

static void called(const ProtobufCMessage *response, const pw_result *result, void (*typed)(void),
                   void *ud)
{
    (void)typed;
    svc_req *r = ud;
    svc_answer *out = r->call_reply;
    out->code = result->code;
    out->message = svc_strdup(r, result->message);
    out->response = NULL;
    if (result->code == PW_OK && response != NULL) {
        /* The response lives only during this callback: a copy in call memory. */
        size_t len = protobuf_c_message_get_packed_size(response);
        uint8_t *bytes = svc_alloc(r, len);
        protobuf_c_message_pack(response, bytes);
        if (pw_call_unpack(r->call, pw_slice_make(bytes, len), response->descriptor,
                           &out->response) != PW_OK) {
            out->code = PW_INTERNAL;
            out->message = "the response could not be copied";
        }
    }
    resume_with(r, EV_WAKE);
}

svc_answer svc_call(svc_req *r, pw_channel *channel, const char *path,
                    const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_type, int64_t timeout_ms)
{
    PW_ASSERT(r->tx_state != SVC_TX_OPEN); /* no network call inside a transaction */
    svc_answer out = {PW_INTERNAL, "", NULL};
    pw_call_options o = {.timeout_ms = timeout_ms, .parent = r->call};
    r->call_reply = &out;
    pw_status rv = pw_client_unary(channel, path, &o, request, response_type, called, NULL, r);
    if (rv != PW_OK) {
        out.code = rv;
        out.message = "the call could not start";
        return out;
    }
    wait_event(r);
    PW_ASSERT(r->event == EV_WAKE);
    r->call_reply = NULL;
    return out;
}

void svc_fail_call(svc_req *r, const svc_answer *a, const char *what)
{
    pw_status code =
        a->code == PW_DEADLINE_EXCEEDED || a->code == PW_CANCELLED ? a->code
        : a->code == PW_UNAVAILABLE || a->code == PW_RESOURCE_EXHAUSTED || a->code == PW_ABORTED
            ? PW_UNAVAILABLE
            : PW_INTERNAL;
    if (code == PW_UNAVAILABLE) {
        r->details.retry_delay_ms = 1000;
    }
    svc_fail(r, code, "%s: %s: %s", what, pw_status_str(a->code), a->message);
}

/* ---- waiting for work done elsewhere ---- */

void svc_suspend(svc_req *r)
{
    PW_ASSERT(r->tx_state != SVC_TX_OPEN); /* a transaction's waits are its own */
    wait_event(r);
    PW_ASSERT(r->event == EV_WAKE);
}

void svc_resume(svc_req *r)
{
    resume_with(r, EV_WAKE);
}

static void sleep_timer_closed(uv_handle_t *h)
{
    pw_free(h);
}

static void sleep_timer_fired(uv_timer_t *t)
{
    svc_req *r = t->data;
    uv_close((uv_handle_t *)t, sleep_timer_closed);
    svc_resume(r);
}

void svc_sleep(svc_req *r, int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    uv_timer_t *t = pw_calloc(1, sizeof(*t));
    PW_ASSERT(t != NULL); /* service binaries abort on out-of-memory first */
    uv_timer_init(pw_call_loop(r->call), t);
    t->data = r;
    uv_timer_start(t, sleep_timer_fired, (uint64_t)ms, 0);
    svc_suspend(r);
}

/* ---- transactions ---- */

/* Waits inside a transaction: a new attempt starts the body again; an end under us fails. */
static void tx_wait(svc_req *r)
{
    wait_event(r);
    if (r->event == EV_BODY) {
        longjmp(*(jmp_buf *)r->restart_jmp, 1);
    }
    if (r->event == EV_DONE) {
        fail_db(r, r->tx_status != PW_OK ? r->tx_status : PW_ABORTED, r->tx_message);
    }
}

static void piped_done(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    r->piped_pending--;
    if (pw_db_status(res) != PW_OK && r->piped_status == PW_OK) {
        r->piped_status = pw_db_status(res);
        snprintf(r->piped_message, sizeof(r->piped_message), "%s", pw_db_message(res));
    }
}

static void tx_send(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n,
                    pw_db_result_cb cb)
{
    PW_ASSERT(r->tx_state == SVC_TX_OPEN && r->tx != NULL);
    pw_status rv = pw_db_tx_query(r->tx, stmt, params, n, cb, r);
    if (rv != PW_OK) {
        svc_fail(r, rv, "cannot run %s: %s", stmt->name, pw_status_str(rv));
    }
}

const pw_db_result *svc_tx_query(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params,
                                 int n)
{
    tx_send(r, stmt, params, n, query_done);
    tx_wait(r);
    if (r->piped_status != PW_OK) {
        fail_db(r, r->piped_status, r->piped_message);
    }
    if (pw_db_status(r->result) != PW_OK) {
        fail_db(r, pw_db_status(r->result), pw_db_message(r->result));
    }
    return r->result;
}

void svc_tx_pipe(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n)
{
    tx_send(r, stmt, params, n, piped_done);
    r->piped_pending++;
}

/* A new attempt: what the last one gathered is forgotten. */
static void tx_attempt(svc_req *r)
{
    r->tx_state = SVC_TX_OPEN;
    r->piped_status = PW_OK;
    r->piped_pending = 0;
    r->replayed = 0;
    pw_error_details_clear(&r->details);
}

void svc_transaction(svc_req *r, svc_tx_fn fn, const void *arg)
{
    PW_ASSERT(r->tx_state != SVC_TX_OPEN); /* transactions do not nest */
    r->tx_state = SVC_TX_OPEN;
    pw_status rv =
        pw_db_tx_run(r->app->pool, r->call, PW_DB_READ_COMMITTED, 3, tx_body, tx_done, r);
    if (rv != PW_OK) {
        r->tx_state = SVC_TX_NONE;
        svc_fail(r, PW_INTERNAL, "cannot start a transaction: %s", pw_status_str(rv));
    }
    wait_event(r); /* the first attempt's start, or the end of one that never started */
    if (r->event == EV_DONE) {
        fail_db(r, r->tx_status != PW_OK ? r->tx_status : PW_ABORTED, r->tx_message);
    }
    jmp_buf restart;
    r->restart_jmp = &restart;
    setjmp(restart);
    tx_attempt(r);
    fn(r, arg);
    r->restart_jmp = NULL;
    if (r->tx_state == SVC_TX_OPEN) {
        svc_fail(r, PW_INTERNAL, "%s ended its transaction without svc_commit",
                 pw_call_method(r->call));
    }
}

/* Ends the transaction (commit or roll back) and waits for its outcome. */
static pw_status tx_end(svc_req *r, int commit)
{
    if (commit) {
        pw_db_tx_commit(r->tx);
    } else {
        pw_db_tx_abort(r->tx, PW_ABORTED, "rolled back");
    }
    wait_event(r);
    if (r->event == EV_BODY) {
        longjmp(*(jmp_buf *)r->restart_jmp, 1);
    }
    return r->tx_status;
}

static const pw_db_stmt idem_claim = {
    "svc_idem_claim",
    "INSERT INTO idempotency_keys (scope, method, key, request_sha256) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT DO NOTHING",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};
static const pw_db_stmt idem_lookup = {"svc_idem_lookup",
                                       "SELECT request_sha256, response FROM idempotency_keys"
                                       " WHERE scope = $1 AND method = $2 AND key = $3",
                                       3,
                                       {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt idem_store = {
    "svc_idem_store",
    "UPDATE idempotency_keys SET response = $4 WHERE scope = $1 AND method = $2 AND key = $3",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};

void svc_tx_commit(svc_req *r)
{
    PW_ASSERT(r->method == NULL);
    pw_status rv = tx_end(r, 1);
    if (rv != PW_OK) {
        fail_db(r, rv, r->tx_message);
    }
}

void svc_commit(svc_req *r, const ProtobufCMessage *response, const ProtobufCMessage *stored)
{
    if (r->method != NULL) {
        const ProtobufCMessage *keep = stored ? stored : response;
        size_t len = protobuf_c_message_get_packed_size(keep);
        uint8_t *bytes = svc_alloc(r, len);
        protobuf_c_message_pack(keep, bytes);
        pw_db_param p[] = {pw_db_text(r->scope), pw_db_text(r->method), pw_db_text(r->key),
                           pw_db_bytea(bytes, len)};
        svc_tx_query(r, &idem_store, p, 4);
    }
    pw_status rv = tx_end(r, 1);
    if (rv != PW_OK) {
        fail_db(r, rv, r->tx_message);
    }
    svc_reply(r, response);
}

/* The key was used before: the same request gets the first response. */
static void replay(svc_req *r)
{
    pw_db_param p[] = {pw_db_text(r->scope), pw_db_text(r->method), pw_db_text(r->key)};
    svc_row row = svc_row_at(r, svc_tx_query(r, &idem_lookup, p, 3), 0);
    if (pw_db_rows(row.res) != 1 || svc_is_null(row, "response")) {
        svc_fail(r, PW_ABORTED, "idempotency key \"%s\" is being used; retry", r->key);
    }
    pw_slice sha = svc_bytes(row, "request_sha256");
    if (sha.len != 32 || memcmp(sha.base, r->fingerprint, 32) != 0) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                        "idempotency key \"%s\" was already used for %s with a different "
                        "request; use a new key for a new request",
                        r->key, r->method);
    }
    pw_slice stored = svc_bytes(row, "response");
    uint8_t *copy = svc_alloc(r, stored.len);
    memcpy(copy, stored.base, stored.len);
    tx_end(r, 0); /* nothing to commit: the first call's response stands */
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(r->call, pw_slice_make(copy, stored.len), r->response_type, &m) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "stored response for key \"%s\" cannot be read", r->key);
    }
    r->replayed = 1;
    svc_reply(r, m);
}

static void idem_body(svc_req *r, const void *arg)
{
    (void)arg;
    pw_db_param p[] = {pw_db_text(r->scope), pw_db_text(r->method), pw_db_text(r->key),
                       pw_db_bytea(r->fingerprint, 32)};
    if (pw_db_affected(svc_tx_query(r, &idem_claim, p, 4)) == 1) {
        r->effect(r, r->effect_arg);
    } else {
        replay(r);
    }
}

int svc_key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > 128) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (key[i] < 0x21 || key[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

void svc_idempotent(svc_req *r, const char *method, const char *key,
                    const ProtobufCMessageDescriptor *response_type, svc_tx_fn fn, const void *arg)
{
    if (!svc_key_ok(key)) {
        svc_violation(r, "idempotency_key",
                      "required: 1-128 printable ASCII characters chosen by the client, the same "
                      "for every retry of this request");
    }
    svc_check(r);
    r->method = method;
    r->key = key;
    r->response_type = response_type;
    r->effect = fn;
    r->effect_arg = arg;
    if (r->caller.internal) {
        snprintf(r->scope, sizeof(r->scope), "svc:%s", r->caller.identity);
    } else {
        snprintf(r->scope, sizeof(r->scope), "mer:%s", r->caller.merchant_id);
    }
    if (svc_fingerprint(r->request, "idempotency_key", r->fingerprint) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot fingerprint the request");
    }
    svc_transaction(r, idem_body, NULL);
}

/* ---- rows ---- */

svc_row svc_row_at(svc_req *r, const pw_db_result *res, int i)
{
    svc_row row = {r, res, i};
    return row;
}

svc_row svc_one(svc_req *r, const pw_db_result *res, const char *what, const char *id)
{
    if (pw_db_rows(res) == 0) {
        svc_fail(r, PW_NOT_FOUND, "%s %s not found", what, id);
    }
    return svc_row_at(r, res, 0);
}

/* Columns are mostly read in the order the query names them: look next to the last one first,
 * so reading a row costs one name comparison per column. */
static int column(svc_row row, const char *col)
{
    svc_req *r = row.r;
    int n = pw_db_columns(row.res);
    int hint = r->column_hint + 1 < n ? r->column_hint + 1 : 0;
    if (hint < n && strcmp(pw_db_column_name(row.res, hint), col) == 0) {
        r->column_hint = hint;
        return hint;
    }
    int c = pw_db_column(row.res, col);
    if (c < 0) {
        svc_fail(r, PW_INTERNAL, "the query has no column \"%s\"", col);
    }
    r->column_hint = c;
    return c;
}

int svc_is_null(svc_row row, const char *col)
{
    return pw_db_is_null(row.res, row.row, column(row, col));
}

char *svc_text(svc_row row, const char *col)
{
    const char *s = "";
    size_t len;
    if (pw_db_get_text(row.res, row.row, column(row, col), &s, &len) != PW_OK) {
        s = "";
    }
    return svc_strdup(row.r, s);
}

int64_t svc_int64(svc_row row, const char *col)
{
    int64_t v = 0;
    pw_db_get_int64(row.res, row.row, column(row, col), &v);
    return v;
}

int svc_bool(svc_row row, const char *col)
{
    int v = 0;
    pw_db_get_bool(row.res, row.row, column(row, col), &v);
    return v;
}

pw_slice svc_bytes(svc_row row, const char *col)
{
    const uint8_t *p = NULL;
    size_t len = 0;
    if (pw_db_get_bytea(row.res, row.row, column(row, col), &p, &len) != PW_OK) {
        return pw_slice_make(NULL, 0);
    }
    return pw_slice_make(p, len);
}

Google__Protobuf__Timestamp *svc_timestamp(svc_req *r, int64_t us)
{
    Google__Protobuf__Timestamp *t = svc_alloc(r, sizeof(*t));
    google__protobuf__timestamp__init(t);
    t->seconds = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    t->nanos = (int32_t)((us - t->seconds * 1000000) * 1000);
    return t;
}

Google__Protobuf__Timestamp *svc_time(svc_row row, const char *col)
{
    int64_t us;
    if (pw_db_get_timestamptz(row.res, row.row, column(row, col), &us) != PW_OK) {
        return NULL;
    }
    return svc_timestamp(row.r, us);
}
