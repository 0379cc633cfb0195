/*
 * auth.c: mTLS allow-lists, bearer API keys and per-caller rate limits as
 * server interceptors. API keys are stored as SHA-256 of the secret and
 * compared with CRYPTO_memcmp; denials are audit-logged without secrets.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <paywire/alloc.h>
#include <paywire/auth.h>
#include <paywire/errors.h>
#include <paywire/log.h>

static const int principal_key; /* address used as the call-context key */

const char *pw_auth_principal(const pw_call *call)
{
    return pw_call_get_context(call, &principal_key);
}

static int pattern_matches(const char *pattern, const char *method)
{
    size_t n = strlen(pattern);
    if (strcmp(pattern, "*") == 0) {
        return 1;
    }
    if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '/') {
        return strncmp(pattern, method, n - 1) == 0;
    }
    return strcmp(pattern, method) == 0;
}

static pw_status deny(pw_call *call, pw_status code, const char *who, char *msg, size_t n,
                      const char *reason)
{
    snprintf(msg, n, "%s", reason);
    const pw_log_field fields[] = {
        {"event", "auth.denied"},
        {"code", pw_status_str(code)},
        {"identity", who ? who : "-"},
        {"method", pw_call_method(call)},
        {"peer", pw_call_peer(call)->address},
    };
    pw_log_fields(PW_LOG_WARNING, "audit", fields, sizeof(fields) / sizeof(fields[0]), "denied: %s",
                  reason);
    return code;
}

static void free_on_close(pw_server *server, pw_server_event event, void *ud)
{
    (void)server;
    if (event == PW_SERVER_CLOSED) {
        void (**destroy)(void *) = ud;
        (*destroy)(ud);
    }
}

/*
 * Mounts start(state) on server, which owns state (a struct whose first member
 * is its destroy function) from here on whatever the outcome: the hook that
 * frees it with the server goes first, so a failed interceptor leaves nothing
 * pointing at freed memory, and a failed hook frees it at once.
 */
static pw_status enable_owned(pw_server *server, void *state,
                              pw_status (*start)(pw_call *, char *, size_t, void *))
{
    pw_status rv = pw_server_add_hook(server, free_on_close, state);
    if (rv != PW_OK) {
        void (**destroy)(void *) = state;
        (*destroy)(state);
        return rv;
    }
    pw_interceptor ic = {start, NULL, state};
    return pw_server_add_interceptor(server, &ic);
}

/* ---- mTLS allow-list ---- */

typedef struct rule {
    char *identity;
    char *pattern;
} rule;

struct pw_authz {
    void (*destroy)(void *); /* first: free_on_close calls it */
    rule *rules;
    size_t count;
};

static void authz_destroy(void *p)
{
    pw_authz *a = p;
    for (size_t i = 0; i < a->count; i++) {
        pw_free(a->rules[i].identity);
        pw_free(a->rules[i].pattern);
    }
    pw_free(a->rules);
    pw_free(a);
}

pw_status pw_authz_new(pw_authz **out)
{
    pw_authz *a = pw_calloc(1, sizeof(*a));
    *out = a;
    if (a == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    a->destroy = authz_destroy;
    return PW_OK;
}

void pw_authz_free(pw_authz *a)
{
    if (a != NULL) {
        authz_destroy(a);
    }
}

/* Appends copies of (identity, pattern) to *rules; on failure *rules is as it was. */
static pw_status rule_add(rule **rules, size_t *count, const char *identity, const char *pattern)
{
    rule *r = pw_realloc(*rules, (*count + 1) * sizeof(*r));
    if (r == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *rules = r;
    r[*count] = (rule){pw_strdup(identity), pw_strdup(pattern)};
    if (r[*count].identity == NULL || r[*count].pattern == NULL) {
        pw_free(r[*count].identity);
        pw_free(r[*count].pattern);
        return PW_ERRNO(ENOMEM);
    }
    (*count)++;
    return PW_OK;
}

pw_status pw_authz_allow(pw_authz *a, const char *identity, const char *pattern)
{
    if (identity == NULL || pattern == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    return rule_add(&a->rules, &a->count, identity, pattern);
}

/* The peer's identity: its first URI SAN, else its subject. */
static const char *peer_identity(const pw_peer *p)
{
    for (size_t i = 0; i < p->san_count; i++) {
        if (strncmp(p->sans[i], "URI:", 4) == 0) {
            return p->sans[i] + 4;
        }
    }
    return p->subject;
}

static pw_status authz_start(pw_call *call, char *msg, size_t n, void *ud)
{
    const pw_authz *a = ud;
    const pw_peer *p = pw_call_peer(call);
    const char *id = p->verified ? peer_identity(p) : NULL;
    if (id == NULL) {
        return deny(call, PW_UNAUTHENTICATED, NULL, msg, n,
                    "a verified client certificate is required");
    }
    for (size_t i = 0; i < a->count; i++) {
        const rule *r = &a->rules[i];
        if ((strcmp(r->identity, "*") == 0 || strcmp(r->identity, id) == 0) &&
            pattern_matches(r->pattern, pw_call_method(call))) {
            pw_call_set_context(call, &principal_key, (void *)(uintptr_t)id);
            return PW_OK;
        }
    }
    char reason[300];
    snprintf(reason, sizeof(reason), "%s may not call %s", id, pw_call_method(call));
    return deny(call, PW_PERMISSION_DENIED, id, msg, n, reason);
}

pw_status pw_authz_enable(pw_server *server, pw_authz *a)
{
    return enable_owned(server, a, authz_start);
}

/* ---- API keys ---- */

typedef struct api_key {
    char id[64];
    uint8_t hash[SHA256_DIGEST_LENGTH];
    char *principal;
    char *scopes;
    int revoked;
} api_key;

struct pw_api_keys {
    void (*destroy)(void *);
    api_key *keys;
    size_t count;
    rule *requirements; /* identity field holds the scope */
    size_t req_count;
};

static void keys_destroy(void *p)
{
    pw_api_keys *k = p;
    for (size_t i = 0; i < k->count; i++) {
        OPENSSL_cleanse(k->keys[i].hash, sizeof(k->keys[i].hash));
        pw_free(k->keys[i].principal);
        pw_free(k->keys[i].scopes);
    }
    for (size_t i = 0; i < k->req_count; i++) {
        pw_free(k->requirements[i].identity);
        pw_free(k->requirements[i].pattern);
    }
    pw_free(k->keys);
    pw_free(k->requirements);
    pw_free(k);
}

pw_status pw_api_keys_new(pw_api_keys **out)
{
    pw_api_keys *k = pw_calloc(1, sizeof(*k));
    *out = k;
    if (k == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    k->destroy = keys_destroy;
    return PW_OK;
}

void pw_api_keys_free(pw_api_keys *k)
{
    if (k != NULL) {
        keys_destroy(k);
    }
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

pw_status pw_api_keys_create(pw_api_keys *k, const char *prefix, const char *principal,
                             const char *scopes, char *key_out, size_t key_size)
{
    uint8_t id_bytes[8], secret[32];
    if (key_out != NULL && key_size > 0) {
        key_out[0] = '\0';
    }
    if (key_out == NULL || key_size < 128 || prefix == NULL || strlen(prefix) > 24 ||
        principal == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    if (RAND_bytes(id_bytes, sizeof(id_bytes)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1) {
        return PW_INTERNAL;
    }
    api_key *a = pw_realloc(k->keys, (k->count + 1) * sizeof(*a));
    if (a == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    k->keys = a;
    api_key *key = &k->keys[k->count];
    memset(key, 0, sizeof(*key));
    char id_hex[17], secret_hex[65];
    hex(id_bytes, sizeof(id_bytes), id_hex);
    hex(secret, sizeof(secret), secret_hex);
    snprintf(key->id, sizeof(key->id), "%s%s", prefix, id_hex);
    /* The hash is of the secret as the client sends it (hex). */
    SHA256((const unsigned char *)secret_hex, 64, key->hash);
    key->principal = pw_strdup(principal);
    key->scopes = pw_strdup(scopes ? scopes : "");
    pw_status rv = PW_OK;
    if (key->principal == NULL || key->scopes == NULL) {
        OPENSSL_cleanse(key->hash, sizeof(key->hash));
        pw_free(key->principal);
        pw_free(key->scopes);
        rv = PW_ERRNO(ENOMEM);
    } else {
        /* The only copy of the secret leaves here, once the key is in the keyring. */
        snprintf(key_out, key_size, "%s.%s", key->id, secret_hex);
        k->count++;
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(secret_hex, sizeof(secret_hex));
    return rv;
}

pw_status pw_api_keys_revoke(pw_api_keys *k, const char *key_id)
{
    for (size_t i = 0; i < k->count; i++) {
        if (strcmp(k->keys[i].id, key_id) == 0) {
            k->keys[i].revoked = 1;
            return PW_OK;
        }
    }
    return PW_NOT_FOUND;
}

pw_status pw_api_keys_require(pw_api_keys *k, const char *pattern, const char *scope)
{
    if (pattern == NULL || scope == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    return rule_add(&k->requirements, &k->req_count, scope, pattern);
}

static int has_scope(const char *scopes, const char *scope)
{
    size_t n = strlen(scope);
    for (const char *p = scopes; (p = strstr(p, scope)) != NULL; p += n) {
        if ((p == scopes || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) {
            return 1;
        }
    }
    return 0;
}

static pw_status keys_start(pw_call *call, char *msg, size_t n, void *ud)
{
    const pw_api_keys *k = ud;
    const pw_metadata_entry *e = pw_metadata_get(pw_call_metadata(call), "authorization");
    if (e == NULL || e->value_len < 8 || strncasecmp((const char *)e->value, "Bearer ", 7) != 0) {
        return deny(call, PW_UNAUTHENTICATED, NULL, msg, n,
                    "an API key is required (authorization: Bearer <key>)");
    }
    const char *key = (const char *)e->value + 7;
    const char *dot = strrchr(key, '.');
    size_t id_len = dot ? (size_t)(dot - key) : 0;
    const api_key *found = NULL;
    for (size_t i = 0; dot != NULL && i < k->count; i++) {
        if (strlen(k->keys[i].id) == id_len && strncmp(k->keys[i].id, key, id_len) == 0) {
            found = &k->keys[i];
        }
    }
    uint8_t hash[SHA256_DIGEST_LENGTH];
    if (found != NULL) {
        SHA256((const unsigned char *)dot + 1, strlen(dot + 1), hash);
    }
    if (found == NULL || CRYPTO_memcmp(hash, found->hash, sizeof(hash)) != 0 || found->revoked) {
        return deny(call, PW_UNAUTHENTICATED, NULL, msg, n, "invalid or revoked API key");
    }
    for (size_t i = 0; i < k->req_count; i++) {
        const rule *r = &k->requirements[i];
        if (pattern_matches(r->pattern, pw_call_method(call)) &&
            !has_scope(found->scopes, r->identity)) {
            char reason[300];
            snprintf(reason, sizeof(reason), "API key %s lacks scope %s for %s", found->id,
                     r->identity, pw_call_method(call));
            return deny(call, PW_PERMISSION_DENIED, found->principal, msg, n, reason);
        }
    }
    pw_call_set_context(call, &principal_key, found->principal);
    return PW_OK;
}

pw_status pw_api_keys_enable(pw_server *server, pw_api_keys *k)
{
    return enable_owned(server, k, keys_start);
}

/* ---- rate limits ---- */

#define LIMITER_SLOTS 4096

typedef struct bucket {
    char caller[128];
    double tokens;
    uint64_t at_ms;
} bucket;

struct pw_rate_limiter {
    double per_ms;
    double burst;
    bucket slots[LIMITER_SLOTS];
};

pw_status pw_rate_limiter_new(pw_rate_limiter **out, uint32_t per_second, uint32_t burst)
{
    *out = NULL;
    if (per_second == 0 || burst == 0) {
        return PW_INVALID_ARGUMENT;
    }
    pw_rate_limiter *l = pw_calloc(1, sizeof(*l));
    if (l == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    l->per_ms = (double)per_second / 1000.0;
    l->burst = burst;
    *out = l;
    return PW_OK;
}

void pw_rate_limiter_free(pw_rate_limiter *l)
{
    pw_free(l);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

int64_t pw_rate_limiter_take(pw_rate_limiter *l, const char *caller, uint64_t now_ms)
{
    bucket *b = &l->slots[name_hash(caller) % LIMITER_SLOTS];
    if (strncmp(b->caller, caller, sizeof(b->caller)) != 0) {
        snprintf(b->caller, sizeof(b->caller), "%s", caller);
        b->tokens = l->burst;
        b->at_ms = now_ms;
    }
    b->tokens += (double)(now_ms - b->at_ms) * l->per_ms;
    if (b->tokens > l->burst) {
        b->tokens = l->burst;
    }
    b->at_ms = now_ms;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    return (int64_t)((1.0 - b->tokens) / l->per_ms) + 1;
}

/* The interceptor's state: a limiter, freed with the server. */
typedef struct limiter {
    void (*destroy)(void *);
    pw_rate_limiter *l;
} limiter;

static void limiter_destroy(void *p)
{
    limiter *l = p;
    pw_rate_limiter_free(l->l);
    pw_free(l);
}

static pw_status limit_start(pw_call *call, char *msg, size_t n, void *ud)
{
    limiter *l = ud;
    const char *caller = pw_auth_principal(call);
    if (caller == NULL) {
        caller = pw_call_peer(call)->address;
    }
    int64_t wait_ms = pw_rate_limiter_take(l->l, caller, uv_now(pw_call_loop(call)));
    if (wait_ms == 0) {
        return PW_OK;
    }
    pw_error_details d = {0};
    d.retry_delay_ms = wait_ms;
    char reason[256];
    snprintf(reason, sizeof(reason), "rate limit exceeded for %s; retry in %lld ms", caller,
             (long long)wait_ms);
    pw_call_attach_details(call, PW_RESOURCE_EXHAUSTED, reason, &d);
    return deny(call, PW_RESOURCE_EXHAUSTED, caller, msg, n, reason);
}

pw_status pw_rate_limit_enable(pw_server *server, uint32_t per_second, uint32_t burst)
{
    limiter *l = pw_calloc(1, sizeof(*l));
    if (l == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    l->destroy = limiter_destroy;
    pw_status rv = pw_rate_limiter_new(&l->l, per_second, burst);
    if (rv != PW_OK) {
        pw_free(l);
        return rv;
    }
    return enable_owned(server, l, limit_start);
}
