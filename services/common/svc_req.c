/* svc_req.c: callers, answers with details, and the idempotent transaction. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/log.h>
#include "svc_req.h"

svc_req *svc_req_new(pw_call *call, svc_app *app, const ProtobufCMessage *request)
{
    svc_req *r = pw_call_alloc(call, sizeof(*r));
    if (r == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->call = call;
    r->app = app;
    r->request = request;
    r->details.retry_delay_ms = 0;
    return r;
}

void *svc_alloc(svc_req *r, size_t size)
{
    void *p = pw_call_alloc(r->call, size ? size : 1);
    if (p != NULL) {
        memset(p, 0, size ? size : 1);
    }
    return p;
}

char *svc_strdup(svc_req *r, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *p = pw_call_alloc(r->call, n + 1);
    if (p != NULL) {
        memcpy(p, s ? s : "", n);
        p[n] = '\0';
    }
    return p;
}

/* ---- answering ---- */

static int has_details(const pw_error_details *d)
{
    return d->reason != NULL || d->violation_count > 0 || d->retry_delay_ms > 0 ||
           d->resource_type != NULL;
}

void svc_reply(svc_req *r, const ProtobufCMessage *response)
{
    pw_error_details_clear(&r->details);
    pw_call_reply(r->call, response);
}

static void vfail(svc_req *r, pw_status code, const char *fmt, va_list ap) PW_PRINTF(3, 0);
static void vfail(svc_req *r, pw_status code, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (has_details(&r->details)) {
        pw_call_finish_details(r->call, code, &r->details, "%s", msg);
    } else {
        pw_call_finish(r->call, code, "%s", msg);
    }
    pw_error_details_clear(&r->details);
}

void svc_fail(svc_req *r, pw_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, code, fmt, ap);
    va_end(ap);
}

void svc_fail_reason(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
{
    pw_error_set_info(&r->details, reason, r->app->domain);
    va_list ap;
    va_start(ap, fmt);
    vfail(r, code, fmt, ap);
    va_end(ap);
}

void svc_fail_db(svc_req *r, const pw_db_result *res)
{
    if (pw_db_status(res) == PW_UNAVAILABLE) {
        r->details.retry_delay_ms = 1000;
    }
    svc_fail(r, pw_db_status(res), "%s", pw_db_message(res));
}

void svc_violation(svc_req *r, const char *field, const char *description)
{
    pw_error_add_violation(&r->details, field, description);
}

int svc_has_violations(const svc_req *r)
{
    return r->details.violation_count > 0;
}

int svc_fail_if_invalid(svc_req *r)
{
    if (!svc_has_violations(r)) {
        return 0;
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "invalid %s: %s", r->details.violations[0].field,
             r->details.violations[0].description);
    if (r->details.violation_count > 1) {
        size_t n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, " (and %zu more in the details)",
                 r->details.violation_count - 1);
    }
    svc_fail(r, PW_INVALID_ARGUMENT, "%s", msg);
    return 1;
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

void svc_authenticate(svc_req *r, const char *scope, svc_step next)
{
    const pw_peer *peer = pw_call_peer(r->call);
    if (peer->tls && peer->verified && r->app->internal_identities != NULL) {
        for (size_t i = 0; i < peer->san_count; i++) {
            const char *san = peer->sans[i];
            if (strncmp(san, "URI:", 4) == 0 && in_csv(r->app->internal_identities, san + 4)) {
                r->caller.internal = 1;
                snprintf(r->caller.identity, sizeof(r->caller.identity), "%s", san + 4);
                next(r);
                return;
            }
        }
    }
    const pw_metadata_entry *auth = pw_metadata_get(pw_call_metadata(r->call), "authorization");
    if (auth == NULL) {
        svc_fail(r, PW_UNAUTHENTICATED,
                 "%s needs an API key (authorization: Bearer sk_...) or an internal mTLS identity",
                 pw_call_method(r->call));
        return;
    }
    if (scope == NULL) {
        svc_fail_reason(r, PW_PERMISSION_DENIED, "INTERNAL_ONLY",
                        "%s is for internal services (mTLS); API keys cannot call it",
                        pw_call_method(r->call));
        return;
    }
    char secret[160];
    if (auth->value_len < 8 || auth->value_len - 7 >= sizeof(secret) ||
        strncasecmp((const char *)auth->value, "Bearer ", 7) != 0) {
        svc_fail(r, PW_UNAUTHENTICATED, "authorization must be \"Bearer <API key>\"");
        return;
    }
    memcpy(secret, auth->value + 7, auth->value_len - 7);
    secret[auth->value_len - 7] = '\0';
    r->need_scope = scope;
    r->after_auth = next;
    r->app->resolve_key(r, secret);
    memset(secret, 0, sizeof(secret));
}

void svc_auth_done(svc_req *r, pw_status status, const char *message)
{
    if (status != PW_OK) {
        svc_fail(r, status, "%s", message);
        return;
    }
    if (!r->caller.internal && r->app->merchant_limit != NULL) {
        int64_t wait_ms = pw_rate_limiter_take(r->app->merchant_limit, r->caller.merchant_id,
                                               uv_now(pw_call_loop(r->call)));
        if (wait_ms > 0) {
            r->details.retry_delay_ms = wait_ms;
            svc_fail_reason(r, PW_RESOURCE_EXHAUSTED, "RATE_LIMITED",
                            "merchant %s is over its rate limit; retry in %lld ms",
                            r->caller.merchant_id, (long long)wait_ms);
            return;
        }
    }
    if (!svc_caller_has_scope(&r->caller, r->need_scope)) {
        svc_fail_reason(r, PW_PERMISSION_DENIED, "MISSING_SCOPE", "API key %s lacks scope %s",
                        r->caller.identity, r->need_scope);
        return;
    }
    r->after_auth(r);
}

int svc_owns(svc_req *r, const char *merchant_id, const char *what)
{
    if (r->caller.internal || strcmp(r->caller.merchant_id, merchant_id ? merchant_id : "") == 0) {
        return 1;
    }
    /* Another merchant's resources do not exist for this caller. */
    svc_fail(r, PW_NOT_FOUND, "%s not found", what);
    return 0;
}

/* ---- the idempotent transaction ---- */

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

pw_status svc_tx_query(svc_req *r, const pw_db_stmt *stmt, const pw_db_param *params, int n,
                       pw_db_result_cb cb)
{
    pw_status rv = pw_db_tx_query(r->tx, stmt, params, n, cb, r);
    if (rv != PW_OK) {
        svc_abort(r, rv, NULL, "cannot run %s: %s", stmt->name, pw_status_str(rv));
    }
    return rv;
}

void svc_abort(svc_req *r, pw_status code, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->fail_msg, sizeof(r->fail_msg), fmt, ap);
    va_end(ap);
    r->fail_code = code;
    if (reason != NULL) {
        pw_error_set_info(&r->details, reason, r->app->domain);
    }
    pw_db_tx_abort(r->tx, code, r->fail_msg);
}

void svc_abort_db(svc_req *r, const pw_db_result *res)
{
    svc_abort(r, pw_db_status(res), NULL, "%s", pw_db_message(res));
}

static void stored_done(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    pw_db_tx_commit(r->tx);
}

void svc_commit(svc_req *r, ProtobufCMessage *response, const ProtobufCMessage *stored)
{
    r->response = response;
    const ProtobufCMessage *keep = stored ? stored : response;
    size_t len = protobuf_c_message_get_packed_size(keep);
    uint8_t *bytes = svc_alloc(r, len);
    if (bytes == NULL) {
        svc_abort(r, PW_RESOURCE_EXHAUSTED, NULL, "out of memory");
        return;
    }
    protobuf_c_message_pack(keep, bytes);
    pw_db_param p[] = {pw_db_text(r->scope), pw_db_text(r->method), pw_db_text(r->key),
                       pw_db_bytea(bytes, len)};
    svc_tx_query(r, &idem_store, p, 4, stored_done);
}

static void looked_up(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    const uint8_t *sha, *resp;
    size_t sha_len, resp_len;
    if (pw_db_status(res) != PW_OK || pw_db_rows(res) != 1) {
        svc_abort(r, PW_ABORTED, NULL, "idempotency key \"%s\" is being used; retry", r->key);
        return;
    }
    if (pw_db_get_bytea(res, 0, 0, &sha, &sha_len) != PW_OK || sha_len != 32 ||
        memcmp(sha, r->fingerprint, 32) != 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED",
                  "idempotency key \"%s\" was already used for %s with a different request; use a "
                  "new key for a new request",
                  r->key, r->method);
        return;
    }
    if (pw_db_get_bytea(res, 0, 1, &resp, &resp_len) != PW_OK) {
        svc_abort(r, PW_ABORTED, NULL, "idempotency key \"%s\" is being used; retry", r->key);
        return;
    }
    r->stored = svc_alloc(r, resp_len);
    memcpy(r->stored, resp, resp_len);
    r->stored_len = resp_len;
    r->replayed = 1;
    /* Nothing to commit: the first call's response stands. */
    pw_db_tx_abort(r->tx, PW_ABORTED, "replay");
}

static void claimed(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_affected(res) == 1) {
        r->effect(r);
        return;
    }
    pw_db_param p[] = {pw_db_text(r->scope), pw_db_text(r->method), pw_db_text(r->key)};
    svc_tx_query(r, &idem_lookup, p, 3, looked_up);
}

static void idem_body(pw_db_tx *tx, int attempt, void *ud)
{
    svc_req *r = ud;
    (void)attempt;
    r->tx = tx;
    r->response = NULL;
    r->replayed = 0;
    r->fail_code = PW_OK;
    pw_db_param p[] = {pw_db_text(r->scope), pw_db_text(r->method), pw_db_text(r->key),
                       pw_db_bytea(r->fingerprint, 32)};
    svc_tx_query(r, &idem_claim, p, 4, claimed);
}

static void idem_done(pw_status status, const char *message, void *ud)
{
    svc_req *r = ud;
    if (r->replayed) {
        ProtobufCMessage *m = NULL;
        if (pw_call_unpack(r->call, pw_slice_make(r->stored, r->stored_len), r->response_type,
                           &m) != PW_OK) {
            svc_fail(r, PW_INTERNAL, "stored response for key \"%s\" cannot be read", r->key);
            return;
        }
        svc_reply(r, m);
    } else if (status == PW_OK) {
        svc_reply(r, r->response);
    } else if (r->fail_code != PW_OK) {
        svc_fail(r, r->fail_code, "%s", r->fail_msg);
    } else {
        if (status == PW_UNAVAILABLE) {
            r->details.retry_delay_ms = 1000;
        }
        svc_fail(r, status, "%s", message);
    }
}

static int key_ok(const char *key)
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
                    const ProtobufCMessageDescriptor *response_type, svc_step effect)
{
    if (!key_ok(key)) {
        svc_violation(r, "idempotency_key",
                      "required: 1-128 printable ASCII characters chosen by the client, the same "
                      "for every retry of this request");
    }
    if (svc_fail_if_invalid(r)) {
        return;
    }
    r->method = method;
    r->key = key;
    r->response_type = response_type;
    r->effect = effect;
    if (r->caller.internal) {
        snprintf(r->scope, sizeof(r->scope), "svc:%s", r->caller.identity);
    } else {
        snprintf(r->scope, sizeof(r->scope), "mer:%s", r->caller.merchant_id);
    }
    /* The fingerprint: the request without its key, packed (protobuf-c packs deterministically). */
    const ProtobufCMessageDescriptor *d = r->request->descriptor;
    ProtobufCMessage *copy = svc_alloc(r, d->sizeof_message);
    memcpy(copy, r->request, d->sizeof_message);
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(d, "idempotency_key");
    if (f != NULL) {
        *(const char **)((uint8_t *)copy + f->offset) = protobuf_c_empty_string;
    }
    size_t len = protobuf_c_message_get_packed_size(copy);
    uint8_t *bytes = svc_alloc(r, len);
    protobuf_c_message_pack(copy, bytes);
    svc_sha256(bytes, len, r->fingerprint);
    pw_status rv =
        pw_db_tx_run(r->app->pool, r->call, PW_DB_READ_COMMITTED, 3, idem_body, idem_done, r);
    if (rv != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot start a transaction: %s", pw_status_str(rv));
    }
}
