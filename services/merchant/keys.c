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
/* stale: last_used_time is older than the sampling interval (or unset). */
#define KEY_USE_INTERVAL "interval '60 seconds'"
static const pw_db_stmt resolve_key = {
    "key_resolve",
    "SELECT k.id, k.merchant_id, k.mode, k.scopes, k.revoke_time IS NOT NULL AS revoked,"
    " m.state AS merchant_state, k.secret_hash,"
    " coalesce(k.last_used_time < now() - " KEY_USE_INTERVAL ", true) AS stale"
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
static void note_key_used(svc_req *r, svc_row row, const char *id)
{
    if (!svc_bool(row, "stale")) {
        return;
    }
    pw_db_param p = pw_db_text(id);
    if (pw_db_query(r->app->pool, NULL, &touch_key, &p, 1, key_touched, NULL) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "merchant", "recording an API key's last use: out of memory");
    }
}

/*
 * Looks secret up by its hash into *out. Ends the call with UNAUTHENTICATED
 * for an unknown or revoked key, PERMISSION_DENIED for a closed merchant or a
 * live key of a merchant neither ACTIVE nor SUSPENDED (a suspended merchant
 * reads its data and returns money; each service refuses the rest by
 * merchant_state). Our own auth and ResolveApiKey share this one rule.
 */
static void find_key(svc_req *r, const char *secret, svc_caller *out)
{
    uint8_t hash[32];
    svc_sha256(secret, strlen(secret), hash);
    pw_db_param p = pw_db_bytea(hash, 32);
    const pw_db_result *res = svc_query(r, &resolve_key, &p, 1);
    svc_row row = svc_row_at(r, res, 0);
    pw_slice stored = pw_db_rows(res) == 1 ? svc_bytes(row, "secret_hash") : pw_slice_make(NULL, 0);
    if (stored.len != 32 || CRYPTO_memcmp(stored.base, hash, 32) != 0) {
        svc_fail(r, PW_UNAUTHENTICATED, "unknown API key");
    }
    snprintf(out->identity, sizeof(out->identity), "%s", svc_text(row, "id"));
    snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", svc_text(row, "merchant_id"));
    snprintf(out->mode, sizeof(out->mode), "%s", svc_text(row, "mode"));
    snprintf(out->scopes, sizeof(out->scopes), "%s", svc_text(row, "scopes"));
    snprintf(out->merchant_state, sizeof(out->merchant_state), "%s",
             svc_text(row, "merchant_state"));
    if (svc_bool(row, "revoked")) {
        svc_fail(r, PW_UNAUTHENTICATED, "API key %.40s was revoked", out->identity);
    }
    if (strcmp(out->merchant_state, "CLOSED") == 0) {
        svc_fail(r, PW_PERMISSION_DENIED, "merchant %.40s is closed", out->merchant_id);
    }
    if (strcmp(out->mode, "LIVE") == 0 && strcmp(out->merchant_state, "ACTIVE") != 0 &&
        strcmp(out->merchant_state, "SUSPENDED") != 0) {
        svc_fail(r, PW_PERMISSION_DENIED, "live keys work once merchant %.40s is active",
                 out->merchant_id);
    }
    note_key_used(r, row, out->identity);
}

void resolve_key_locally(svc_req *r, const char *secret)
{
    find_key(r, secret, &r->caller);
}

/* ResolveApiKey: the same lookup and rule, answered with the merchant's state. */
SVC_HANDLER(resolve_api_key, Paywire__Merchant__V1__ResolveApiKeyRequest)
{
    svc_authenticate(r, NULL);
    if (strncmp(req->secret, "sk_", 3) != 0 || strlen(req->secret) > 100) {
        svc_violation(r, "secret", "an API key secret (sk_test_... or sk_live_...)");
    }
    svc_check(r);
    svc_caller found;
    memset(&found, 0, sizeof(found));
    find_key(r, req->secret, &found);
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

/* ---- create ---- */

static void create_key_tx(svc_req *r, const void *arg)
{
    const Paywire__Merchant__V1__CreateApiKeyRequest *req = arg;
    int live = req->mode == PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_LIVE;
    char id[40], secret[64], prefix[16];
    uint8_t hash[32];
    if (svc_new_id("key", id, sizeof(id)) != PW_OK ||
        svc_new_secret(live ? "sk_live_" : "sk_test_", secret, sizeof(secret)) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "cannot create a key");
    }
    svc_sha256(secret, strlen(secret), hash);
    snprintf(prefix, sizeof(prefix), "%.12s", secret);
    pw_db_param p[] = {pw_db_text(id),
                       pw_db_text(req->merchant_id),
                       pw_db_text(live ? "LIVE" : "TEST"),
                       pw_db_text(join_csv(r, req->scopes, req->n_scopes)),
                       pw_db_text(req->description),
                       pw_db_text(prefix),
                       pw_db_bytea(hash, 32)};
    const pw_db_result *res = svc_tx_query(r, &insert_key, p, 7);
    if (pw_db_rows(res) == 0) {
        OPENSSL_cleanse(secret, sizeof(secret));
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "MERCHANT_CLOSED",
                        "merchant %s does not exist or is closed", req->merchant_id);
    }
    Paywire__Merchant__V1__CreateApiKeyResponse resp =
        PAYWIRE__MERCHANT__V1__CREATE_API_KEY_RESPONSE__INIT;
    resp.api_key = api_key_from_row(svc_row_at(r, res, 0));
    resp.secret = svc_strdup(r, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    /* What a retry gets: the same key, the secret withheld (we keep only its hash). */
    Paywire__Merchant__V1__CreateApiKeyResponse stored = resp;
    stored.secret = (char *)protobuf_c_empty_string;
    stored.secret_withheld = 1;
    audit_event(r, "api_key.created", resp.api_key->id, "{}");
    svc_commit(r, &resp.base, &stored.base);
}

static void check_new_key(svc_req *r, const Paywire__Merchant__V1__CreateApiKeyRequest *req)
{
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
        char f[32];
        snprintf(f, sizeof(f), "scopes[%zu]", i);
        if (!scope_known(req->scopes[i])) {
            svc_violation(r, f, "unknown scope (see docs/design/merchant.md)");
        } else if (!svc_caller_has_scope(&r->caller, req->scopes[i])) {
            svc_violation(r, f, "a key cannot grant a scope it does not have");
        }
    }
    if (req->description[0] != '\0' && !svc_text_ok(req->description, 200)) {
        svc_violation(r, "description", "at most 200 characters");
    }
}

SVC_HANDLER(create_api_key, Paywire__Merchant__V1__CreateApiKeyRequest)
{
    svc_authenticate(r, "api_keys:write");
    check_new_key(r, req);
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    svc_idempotent(r, "CreateApiKey", req->idempotency_key,
                   &paywire__merchant__v1__create_api_key_response__descriptor, create_key_tx, req);
}

/* ---- list ---- */

SVC_HANDLER(list_api_keys, Paywire__Merchant__V1__ListApiKeysRequest)
{
    svc_authenticate(r, "api_keys:read");
    const char *filter = req->include_revoked ? "all" : "live";
    char after[48];
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    svc_page_token_read(r, req->page_token, filter, after, sizeof(after));
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    int want = svc_page_size(req->page_size);
    pw_db_param p[] = {pw_db_text(req->merchant_id), pw_db_text(after),
                       pw_db_bool(req->include_revoked), pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &list_keys, p, 4);
    int rows = pw_db_rows(res);
    int n = rows > want ? want : rows;
    Paywire__Merchant__V1__ListApiKeysResponse resp =
        PAYWIRE__MERCHANT__V1__LIST_API_KEYS_RESPONSE__INIT;
    resp.api_keys = svc_alloc(r, (size_t)(n ? n : 1) * sizeof(*resp.api_keys));
    for (int i = 0; i < n; i++) {
        resp.api_keys[i] = api_key_from_row(svc_row_at(r, res, i));
    }
    resp.n_api_keys = (size_t)n;
    if (rows > want) {
        resp.next_page_token = svc_page_token(r, resp.api_keys[n - 1]->id, filter);
    }
    svc_reply(r, &resp.base);
}

/* ---- revoke ---- */

static void revoke_tx(svc_req *r, const void *arg)
{
    const Paywire__Merchant__V1__RevokeApiKeyRequest *req = arg;
    pw_db_param p[] = {pw_db_text(req->api_key_id), pw_db_text(req->merchant_id)};
    svc_row row = svc_one(r, svc_tx_query(r, &revoke_key, p, 2), "API key", req->api_key_id);
    Paywire__Merchant__V1__RevokeApiKeyResponse resp =
        PAYWIRE__MERCHANT__V1__REVOKE_API_KEY_RESPONSE__INIT;
    resp.api_key = api_key_from_row(row);
    audit_event(r, "api_key.revoked", req->api_key_id, "{}");
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(revoke_api_key, Paywire__Merchant__V1__RevokeApiKeyRequest)
{
    svc_authenticate(r, "api_keys:write");
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_id_ok(req->api_key_id, "key")) {
        svc_violation(r, "api_key_id", "an API key id: \"key_\" and 26 characters");
    }
    svc_check(r);
    svc_owns(r, req->merchant_id, "merchant");
    svc_idempotent(r, "RevokeApiKey", req->idempotency_key,
                   &paywire__merchant__v1__revoke_api_key_response__descriptor, revoke_tx, req);
}

void keys_handlers_init(paywire_merchant_v1_merchant_service_handlers *h)
{
    h->create_api_key = create_api_key_h;
    h->list_api_keys = list_api_keys_h;
    h->revoke_api_key = revoke_api_key_h;
    h->resolve_api_key = resolve_api_key_h;
}
