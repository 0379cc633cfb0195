/* keys.c: API keys: created with a secret shown once, stored as a SHA-256 hash, revocable,
 * resolvable. */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <protobuf-c/protobuf-c.h>
#include "merchant.h"

static const pw_db_stmt insert_key = {
    "key_insert",
    "INSERT INTO api_keys (id, merchant_id, mode, scopes, description, secret_prefix, secret_hash)"
    " SELECT $1, $2, $3, $4, $5, $6, $7 FROM merchants WHERE id = $2 AND state <> 'CLOSED'"
    " RETURNING " KEY_COLS,
    7,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_BYTEA}};
static const pw_db_stmt list_keys = {"key_list",
                                     "SELECT " KEY_COLS
                                     " FROM api_keys WHERE merchant_id = $1 AND id > $2"
                                     " AND ($3 OR revoke_time IS NULL) ORDER BY id LIMIT $4",
                                     4,
                                     {PW_DB_TEXT, PW_DB_TEXT, PW_DB_BOOL, PW_DB_INT8}};
static const pw_db_stmt revoke_key = {
    "key_revoke",
    "UPDATE api_keys SET revoke_time = coalesce(revoke_time, now())"
    " WHERE id = $1 AND merchant_id = $2 RETURNING " KEY_COLS,
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
/* Column 7: last_used_time is older than the sampling interval (or unset). */
#define KEY_USE_INTERVAL "interval '60 seconds'"
static const pw_db_stmt resolve_key = {
    "key_resolve",
    "SELECT k.id, k.merchant_id, k.mode, k.scopes, k.revoke_time IS NOT NULL, m.state,"
    " k.secret_hash, coalesce(k.last_used_time < now() - " KEY_USE_INTERVAL ", true)"
    " FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.secret_hash = $1",
    1,
    {PW_DB_BYTEA}};
/* At most one write per key per interval, however many instances see it used. */
static const pw_db_stmt touch_key = {"key_touch",
                                     "UPDATE api_keys SET last_used_time = now() WHERE id = $1"
                                     " AND coalesce(last_used_time < now() - " KEY_USE_INTERVAL
                                     ", true)",
                                     1,
                                     {PW_DB_TEXT}};

static const char *const known_scopes[] = {"merchants:read", "merchants:write", "api_keys:read",
                                           "api_keys:write", "settlement:read", "settlement:write",
                                           "webhooks:read",  "webhooks:write",  "payments:read",
                                           "payments:write", "refunds:write",   "reports:read"};

static int scope_known(const char *s)
{
    for (size_t i = 0; i < sizeof(known_scopes) / sizeof(known_scopes[0]); i++) {
        if (strcmp(s, known_scopes[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- resolving a presented secret (ours, and the auth layer of every request) ---- */

static void key_touched(pw_db_result *res, void *ud)
{
    (void)ud;
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "merchant", "recording an API key's last use: %s",
               pw_db_message(res));
    }
}

/*
 * Records that key id was used, when its last_used_time is older than the
 * interval: a sampled write, so authenticated reads stay reads. Not bound to
 * the call: the answer does not wait for it, and a failure is only logged.
 */
static void note_key_used(svc_req *r, const pw_db_result *res, const char *id)
{
    int stale = 0;
    if (pw_db_get_bool(res, 0, 7, &stale) != PW_OK || !stale) {
        return;
    }
    pw_db_param p = pw_db_text(id);
    if (pw_db_query(r->app->pool, NULL, &touch_key, &p, 1, key_touched, NULL) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "merchant", "recording an API key's last use: out of memory");
    }
}

/* Fills r->caller from a resolve_key row; returns the status and message for the caller. */
static pw_status read_key_row(svc_req *r, const pw_db_result *res, const uint8_t want[32],
                              char *msg, size_t cap)
{
    const uint8_t *hash;
    size_t hash_len;
    if (pw_db_rows(res) == 0 || pw_db_get_bytea(res, 0, 6, &hash, &hash_len) != PW_OK ||
        hash_len != 32 || CRYPTO_memcmp(hash, want, 32) != 0) {
        snprintf(msg, cap, "unknown API key");
        return PW_UNAUTHENTICATED;
    }
    const char *s;
    size_t len;
    int revoked = 0;
    pw_db_get_text(res, 0, 0, &s, &len);
    snprintf(r->caller.identity, sizeof(r->caller.identity), "%s", s);
    pw_db_get_text(res, 0, 1, &s, &len);
    snprintf(r->caller.merchant_id, sizeof(r->caller.merchant_id), "%s", s);
    pw_db_get_text(res, 0, 2, &s, &len);
    snprintf(r->caller.mode, sizeof(r->caller.mode), "%s", s);
    pw_db_get_text(res, 0, 3, &s, &len);
    snprintf(r->caller.scopes, sizeof(r->caller.scopes), "%s", s);
    pw_db_get_bool(res, 0, 4, &revoked);
    pw_db_get_text(res, 0, 5, &s, &len);
    snprintf(r->caller.merchant_state, sizeof(r->caller.merchant_state), "%s", s);
    if (revoked) {
        snprintf(msg, cap, "API key %.40s was revoked", r->caller.identity);
        return PW_UNAUTHENTICATED;
    }
    if (strcmp(r->caller.merchant_state, "CLOSED") == 0) {
        snprintf(msg, cap, "merchant %.40s is closed", r->caller.merchant_id);
        return PW_PERMISSION_DENIED;
    }
    note_key_used(r, res, r->caller.identity);
    return PW_OK;
}

typedef struct key_lookup {
    svc_req *r;
    uint8_t hash[32];
} key_lookup;

static void key_resolved(pw_db_result *res, void *ud)
{
    key_lookup *l = ud;
    svc_req *r = l->r;
    if (pw_db_status(res) != PW_OK) {
        svc_auth_done(r, pw_db_status(res), pw_db_message(res));
        return;
    }
    char msg[200];
    pw_status st = read_key_row(r, res, l->hash, msg, sizeof(msg));
    if (st == PW_OK && strcmp(r->caller.mode, "LIVE") == 0 &&
        strcmp(r->caller.merchant_state, "ACTIVE") != 0 &&
        strcmp(r->caller.merchant_state, "SUSPENDED") != 0) {
        st = PW_PERMISSION_DENIED;
        snprintf(msg, sizeof(msg), "live keys work once merchant %s is active",
                 r->caller.merchant_id);
    }
    svc_auth_done(r, st, msg);
}

/* Looks a secret up by its hash; cb gets the row (and the hash to compare) in a key_lookup. */
static pw_status lookup_key(svc_req *r, const char *secret, pw_db_result_cb cb)
{
    key_lookup *l = svc_alloc(r, sizeof(*l));
    if (l == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    l->r = r;
    svc_sha256(secret, strlen(secret), l->hash);
    pw_db_param p = pw_db_bytea(l->hash, 32);
    return pw_db_query(r->app->pool, r->call, &resolve_key, &p, 1, cb, l);
}

void resolve_key_locally(svc_req *r, const char *secret)
{
    if (lookup_key(r, secret, key_resolved) != PW_OK) {
        svc_auth_done(r, PW_INTERNAL, "cannot query");
    }
}

/* ResolveApiKey: the same lookup, answered to another service. */
static void resolve_answered(pw_db_result *res, void *ud)
{
    key_lookup *l = ud;
    svc_req *r = l->r;
    if (pw_db_status(res) != PW_OK) {
        svc_fail_db(r, res);
        return;
    }
    svc_caller keep = r->caller;
    char msg[200];
    pw_status st = read_key_row(r, res, l->hash, msg, sizeof(msg));
    svc_caller found = r->caller;
    r->caller = keep;
    if (st == PW_OK && strcmp(found.merchant_state, "ACTIVE") != 0) {
        st = PW_PERMISSION_DENIED;
        snprintf(msg, sizeof(msg), "merchant %s is %s", found.merchant_id, found.merchant_state);
    }
    if (st != PW_OK) {
        svc_fail(r, st, "%s", msg);
        return;
    }
    Paywire__Merchant__V1__ResolveApiKeyResponse resp =
        PAYWIRE__MERCHANT__V1__RESOLVE_API_KEY_RESPONSE__INIT;
    resp.merchant_id = svc_strdup(r, found.merchant_id);
    resp.api_key_id = svc_strdup(r, found.identity);
    resp.mode = strcmp(found.mode, "LIVE") == 0
                    ? PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_LIVE
                    : PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_TEST;
    resp.scopes = split_csv(r, found.scopes, &resp.n_scopes);
    resp.merchant_state = state_from_name(found.merchant_state);
    svc_reply(r, &resp.base);
}

static void resolve_authed(svc_req *r)
{
    const Paywire__Merchant__V1__ResolveApiKeyRequest *req = (const void *)r->request;
    if (strncmp(req->secret, "sk_", 3) != 0 || strlen(req->secret) > 100) {
        svc_violation(r, "secret", "an API key secret (sk_test_... or sk_live_...)");
    }
    if (svc_fail_if_invalid(r)) {
        return;
    }
    if (lookup_key(r, req->secret, resolve_answered) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot query");
    }
}

static void resolve_h(pw_call *call, const Paywire__Merchant__V1__ResolveApiKeyRequest *req,
                      void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, NULL, resolve_authed);
    }
}

/* ---- create ---- */

typedef struct new_key {
    char id[40];
    char secret[64];
} new_key;

static void key_inserted(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    new_key *k = r->scratch;
    const Paywire__Merchant__V1__CreateApiKeyRequest *req = (const void *)r->request;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_FAILED_PRECONDITION, "MERCHANT_CLOSED",
                  "merchant %s does not exist or is closed", req->merchant_id);
        return;
    }
    Paywire__Merchant__V1__CreateApiKeyResponse *resp = svc_alloc(r, sizeof(*resp));
    paywire__merchant__v1__create_api_key_response__init(resp);
    resp->api_key = api_key_from_row(r, res, 0, 0);
    resp->secret = svc_strdup(r, k->secret);
    OPENSSL_cleanse(k->secret, sizeof(k->secret));
    /* What a retry gets: the same key, the secret withheld (we keep only its hash). */
    Paywire__Merchant__V1__CreateApiKeyResponse *stored = svc_alloc(r, sizeof(*stored));
    *stored = *resp;
    stored->secret = (char *)protobuf_c_empty_string;
    stored->secret_withheld = 1;
    audit_event(r, "api_key.created", resp->api_key->id, "{}");
    svc_commit(r, &resp->base, &stored->base);
}

static void create_key_effect(svc_req *r)
{
    const Paywire__Merchant__V1__CreateApiKeyRequest *req = (const void *)r->request;
    new_key *k = svc_alloc(r, sizeof(*k));
    r->scratch = k;
    int live = req->mode == PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_LIVE;
    uint8_t hash[32];
    if (svc_new_id("key", k->id, sizeof(k->id)) != PW_OK ||
        svc_new_secret(live ? "sk_live_" : "sk_test_", k->secret, sizeof(k->secret)) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create a key");
        return;
    }
    svc_sha256(k->secret, strlen(k->secret), hash);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", k->secret);
    pw_db_param p[] = {pw_db_text(k->id),
                       pw_db_text(req->merchant_id),
                       pw_db_text(live ? "LIVE" : "TEST"),
                       pw_db_text(join_csv(r, req->scopes, req->n_scopes)),
                       pw_db_text(req->description),
                       pw_db_text(prefix),
                       pw_db_bytea(hash, 32)};
    svc_tx_query(r, &insert_key, p, 7, key_inserted);
}

static void create_key_authed(svc_req *r)
{
    const Paywire__Merchant__V1__CreateApiKeyRequest *req = (const void *)r->request;
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (req->mode == PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_UNSPECIFIED) {
        svc_violation(r, "mode", "required: API_KEY_MODE_TEST or API_KEY_MODE_LIVE");
    }
    if (req->n_scopes == 0) {
        svc_violation(r, "scopes", "at least one scope, e.g. \"payments:write\"");
    }
    for (size_t i = 0; i < req->n_scopes; i++) {
        if (!scope_known(req->scopes[i])) {
            char f[32];
            snprintf(f, sizeof(f), "scopes[%zu]", i);
            svc_violation(r, f, "unknown scope (see docs/design/merchant.md)");
        } else if (!r->caller.internal && !svc_caller_has_scope(&r->caller, req->scopes[i])) {
            char f[32];
            snprintf(f, sizeof(f), "scopes[%zu]", i);
            svc_violation(r, f, "a key cannot grant a scope it does not have");
        }
    }
    if (req->description[0] != '\0' && !svc_text_ok(req->description, 200)) {
        svc_violation(r, "description", "at most 200 characters");
    }
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    svc_idempotent(r, "CreateApiKey", req->idempotency_key,
                   &paywire__merchant__v1__create_api_key_response__descriptor, create_key_effect);
}

static void create_key_h(pw_call *call, const Paywire__Merchant__V1__CreateApiKeyRequest *req,
                         void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "api_keys:write", create_key_authed);
    }
}

/* ---- list ---- */

static void keys_listed(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    const Paywire__Merchant__V1__ListApiKeysRequest *req = (const void *)r->request;
    if (pw_db_status(res) != PW_OK) {
        svc_fail_db(r, res);
        return;
    }
    int want = page_size(req->page_size);
    int rows = pw_db_rows(res);
    int n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListApiKeysResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_API_KEYS_RESPONSE__INIT;
    resp.api_keys = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.api_keys));
    for (int i = 0; i < n; i++) {
        resp.api_keys[i] = api_key_from_row(r, res, i, 0);
    }
    resp.n_api_keys = (size_t)n;
    if (rows > want) {
        resp.next_page_token =
            page_token(r, resp.api_keys[n - 1]->id, req->include_revoked ? "all" : "live");
    }
    svc_reply(r, &resp.base);
}

static void list_keys_authed(svc_req *r)
{
    const Paywire__Merchant__V1__ListApiKeysRequest *req = (const void *)r->request;
    char after[48];
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    page_token_read(r, req->page_token, req->include_revoked ? "all" : "live", after,
                    sizeof(after));
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    pw_db_param p[] = {pw_db_text(req->merchant_id), pw_db_text(after),
                       pw_db_bool(req->include_revoked), pw_db_int8(page_size(req->page_size) + 1)};
    if (pw_db_query(r->app->pool, r->call, &list_keys, p, 4, keys_listed, r) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot query");
    }
}

static void list_keys_h(pw_call *call, const Paywire__Merchant__V1__ListApiKeysRequest *req,
                        void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "api_keys:read", list_keys_authed);
    }
}

/* ---- revoke ---- */

static void key_revoked(pw_db_result *res, void *ud)
{
    svc_req *r = ud;
    const Paywire__Merchant__V1__RevokeApiKeyRequest *req = (const void *)r->request;
    if (pw_db_status(res) != PW_OK) {
        svc_abort_db(r, res);
        return;
    }
    if (pw_db_rows(res) == 0) {
        svc_abort(r, PW_NOT_FOUND, NULL, "API key %s not found", req->api_key_id);
        return;
    }
    Paywire__Merchant__V1__RevokeApiKeyResponse *resp = svc_alloc(r, sizeof(*resp));
    paywire__merchant__v1__revoke_api_key_response__init(resp);
    resp->api_key = api_key_from_row(r, res, 0, 0);
    audit_event(r, "api_key.revoked", req->api_key_id, "{}");
    svc_commit(r, &resp->base, NULL);
}

static void revoke_effect(svc_req *r)
{
    const Paywire__Merchant__V1__RevokeApiKeyRequest *req = (const void *)r->request;
    pw_db_param p[] = {pw_db_text(req->api_key_id), pw_db_text(req->merchant_id)};
    svc_tx_query(r, &revoke_key, p, 2, key_revoked);
}

static void revoke_authed(svc_req *r)
{
    const Paywire__Merchant__V1__RevokeApiKeyRequest *req = (const void *)r->request;
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_id_ok(req->api_key_id, "key")) {
        svc_violation(r, "api_key_id", "an API key id: \"key_\" and 26 characters");
    }
    if (svc_fail_if_invalid(r) || !svc_owns(r, req->merchant_id, "merchant")) {
        return;
    }
    svc_idempotent(r, "RevokeApiKey", req->idempotency_key,
                   &paywire__merchant__v1__revoke_api_key_response__descriptor, revoke_effect);
}

static void revoke_h(pw_call *call, const Paywire__Merchant__V1__RevokeApiKeyRequest *req, void *ud)
{
    svc_req *r = svc_req_new(call, ud, &req->base);
    if (r != NULL) {
        svc_authenticate(r, "api_keys:write", revoke_authed);
    }
}

void keys_handlers_init(paywire_merchant_v1_merchant_service_handlers *h)
{
    h->create_api_key = create_key_h;
    h->list_api_keys = list_keys_h;
    h->revoke_api_key = revoke_h;
    h->resolve_api_key = resolve_h;
}
