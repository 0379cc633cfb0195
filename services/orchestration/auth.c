/*
 * auth.c: merchants' API keys, resolved by the merchant service's
 * ResolveApiKey (design: "Calls to other services, and their failures").
 * Positive answers are cached for 30 s, process-wide, whichever worker
 * serves the next call (keyed by the secret's SHA-256, never the secret;
 * 4-way sets, so one key cannot evict another by a shared slot); anything
 * but an answer fails closed: an
 * unreachable merchant service with nothing cached makes the call
 * UNAVAILABLE, an unknown or revoked key UNAUTHENTICATED, a merchant that
 * may not use the key PERMISSION_DENIED. Without merchant_target no API
 * key is accepted (internal callers only).
 */
#include <stdio.h>
#include <string.h>
#include "orchestration.h"
#include "paywire/merchant/v1/merchant.pw.h"

#define CACHE_SETS   256
#define CACHE_WAYS   4
#define CACHE_TTL_MS 30000

typedef struct cached_key {
    uint8_t hash[32];
    uint64_t expire_ms;
    svc_caller caller;
} cached_key;

struct orch_key_cache {
    uv_mutex_t lock;
    cached_key slots[CACHE_SETS][CACHE_WAYS];
};

orch_key_cache *orch_key_cache_new(void)
{
    orch_key_cache *c = pw_calloc(1, sizeof(*c));
    if (c != NULL && uv_mutex_init(&c->lock) != 0) {
        pw_free(c);
        return NULL;
    }
    return c;
}

void orch_key_cache_free(orch_key_cache *c)
{
    if (c != NULL) {
        uv_mutex_destroy(&c->lock);
        pw_free(c);
    }
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static int cache_get(orch_key_cache *c, const uint8_t hash[32], svc_caller *out)
{
    cached_key *set = c->slots[hash[0] % CACHE_SETS];
    uint64_t now = now_ms();
    int hit = 0;
    uv_mutex_lock(&c->lock);
    for (int i = 0; i < CACHE_WAYS && !hit; i++) {
        if (set[i].expire_ms > now && memcmp(set[i].hash, hash, 32) == 0) {
            *out = set[i].caller;
            hit = 1;
        }
    }
    uv_mutex_unlock(&c->lock);
    return hit;
}

/* The same key's slot, else an expired one, else the one expiring first. */
static void cache_put(orch_key_cache *c, const uint8_t hash[32], const svc_caller *caller)
{
    cached_key *set = c->slots[hash[0] % CACHE_SETS];
    uint64_t now = now_ms();
    uv_mutex_lock(&c->lock);
    cached_key *victim = &set[0];
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (memcmp(set[i].hash, hash, 32) == 0 || set[i].expire_ms <= now) {
            victim = &set[i];
            break;
        }
        if (set[i].expire_ms < victim->expire_ms) {
            victim = &set[i];
        }
    }
    memcpy(victim->hash, hash, 32);
    victim->caller = *caller;
    victim->expire_ms = now + CACHE_TTL_MS;
    uv_mutex_unlock(&c->lock);
}

static const char *const state_names[] = {"UNSPECIFIED", "PENDING_REVIEW", "ACTIVE", "SUSPENDED",
                                          "CLOSED"};

static void join_scopes(char *out, size_t cap, char **scopes, size_t n)
{
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? "," : "", scopes[i]);
        if (w < 0 || (size_t)w >= cap - used) {
            break;
        }
        used += (size_t)w;
    }
}

void orch_resolve_key(svc_req *r, const char *secret)
{
    const orch_state *s = r->app->service;
    if (s->merchant_target[0] == '\0') {
        svc_fail(r, PW_UNAUTHENTICATED, "API keys are not accepted here yet");
    }
    uint8_t hash[32];
    svc_sha256(secret, strlen(secret), hash);
    if (cache_get(s->keys, hash, &r->caller)) {
        return;
    }
    orch_link link;
    pw_channel *ch = orch_link_take(r, s->merchant_target, &link);
    if (ch == NULL) {
        svc_fail(r, PW_UNAVAILABLE, "the merchant service cannot be reached");
    }
    Paywire__Merchant__V1__ResolveApiKeyRequest req =
        PAYWIRE__MERCHANT__V1__RESOLVE_API_KEY_REQUEST__INIT;
    req.secret = (char *)secret;
    svc_answer a = svc_call(r, ch, "/paywire.merchant.v1.MerchantService/ResolveApiKey", &req.base,
                            &paywire__merchant__v1__resolve_api_key_response__descriptor, 2000);
    orch_link_give(&link);
    if (a.code == PW_UNAUTHENTICATED || a.code == PW_PERMISSION_DENIED) {
        svc_fail(r, a.code, "%s",
                 a.code == PW_UNAUTHENTICATED ? "unknown or revoked API key"
                                              : "this key may not be used");
    }
    if (a.code != PW_OK) {
        svc_fail(r, PW_UNAVAILABLE, "the merchant service cannot check the API key");
    }
    const Paywire__Merchant__V1__ResolveApiKeyResponse *k = (const void *)a.response;
    svc_caller c;
    memset(&c, 0, sizeof(c));
    snprintf(c.identity, sizeof(c.identity), "%s", k->api_key_id);
    snprintf(c.merchant_id, sizeof(c.merchant_id), "%s", k->merchant_id);
    snprintf(c.mode, sizeof(c.mode), "%s",
             k->mode == PAYWIRE__MERCHANT__V1__API_KEY_MODE__API_KEY_MODE_LIVE ? "LIVE" : "TEST");
    join_scopes(c.scopes, sizeof(c.scopes), k->scopes, k->n_scopes);
    snprintf(c.merchant_state, sizeof(c.merchant_state), "%s",
             (unsigned)k->merchant_state < 5 ? state_names[k->merchant_state] : "UNSPECIFIED");
    cache_put(s->keys, hash, &c);
    r->caller = c;
}
