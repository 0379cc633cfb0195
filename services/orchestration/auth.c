/*
 * auth.c: merchants' API keys, resolved by the merchant service's
 * ResolveApiKey (design: "Calls to other services, and their failures").
 * Positive answers are cached for 30 s per worker (keyed by the secret's
 * SHA-256, never the secret); anything but an answer fails closed: an
 * unreachable merchant service with nothing cached makes the call
 * UNAVAILABLE, an unknown or revoked key UNAUTHENTICATED, a merchant that
 * may not use the key PERMISSION_DENIED. Without merchant_target no API
 * key is accepted (internal callers only).
 */
#include <stdio.h>
#include <string.h>
#include "orchestration.h"
#include "paywire/merchant/v1/merchant.pw.h"

#define CACHE_SLOTS  128
#define CACHE_TTL_MS 30000

typedef struct cached_key {
    uint8_t hash[32];
    uint64_t expire_ms;
    svc_caller caller;
} cached_key;

/* One cache per worker thread: workers never share a loop, so no lock. */
static _Thread_local cached_key cache[CACHE_SLOTS];

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
    cached_key *slot = &cache[hash[0] % CACHE_SLOTS];
    uint64_t now = uv_now(pw_call_loop(r->call));
    if (slot->expire_ms > now && memcmp(slot->hash, hash, 32) == 0) {
        r->caller = slot->caller;
        return;
    }
    pw_channel *ch = NULL;
    if (orch_channel(s, s->merchant_target, pw_call_loop(r->call), &ch) != PW_OK) {
        svc_fail(r, PW_UNAVAILABLE, "the merchant service cannot be reached");
    }
    Paywire__Merchant__V1__ResolveApiKeyRequest req =
        PAYWIRE__MERCHANT__V1__RESOLVE_API_KEY_REQUEST__INIT;
    req.secret = (char *)secret;
    svc_answer a = svc_call(r, ch, "/paywire.merchant.v1.MerchantService/ResolveApiKey", &req.base,
                            &paywire__merchant__v1__resolve_api_key_response__descriptor, 2000);
    pw_channel_close(ch, NULL, NULL);
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
    memcpy(slot->hash, hash, 32);
    slot->caller = c;
    slot->expire_ms = now + CACHE_TTL_MS;
    r->caller = c;
}
