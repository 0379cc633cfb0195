/*
 * claims.c: the ledger's process-wide batch claims and size counts (see
 * claims.h). Every field past the mutex is read and written under it.
 */
#include <uv.h>
#include <paywire/alloc.h>
#include "claims.h"

struct ledger_shared {
    uv_mutex_t mutex;
    int batches_in_flight;
    /* The batch holding each slot (NULL: free) and its loop. */
    const void **owner;
    const void **owner_loop;
    uint64_t sizes[10];
    /* fee_lead_seconds in microseconds (fees.c), read-only once the workers run. */
    int64_t fee_lead_us;
};

ledger_shared *ledger_shared_new(int batches_in_flight)
{
    ledger_shared *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->owner = pw_calloc(LEDGER_CLAIM_SLOTS, sizeof(*s->owner));
    s->owner_loop = pw_calloc(LEDGER_CLAIM_SLOTS, sizeof(*s->owner_loop));
    if (s->owner == NULL || s->owner_loop == NULL || uv_mutex_init(&s->mutex) != 0) {
        pw_free(s->owner);
        pw_free(s->owner_loop);
        pw_free(s);
        return NULL;
    }
    s->batches_in_flight = batches_in_flight < 1 ? 1 : batches_in_flight;
    s->fee_lead_us = 3600LL * 1000000;
    return s;
}

void ledger_shared_set_fee_lead_us(ledger_shared *s, int64_t us)
{
    s->fee_lead_us = us;
}

int64_t ledger_shared_fee_lead_us(const ledger_shared *s)
{
    return s->fee_lead_us;
}

void ledger_shared_free(ledger_shared *s)
{
    if (s == NULL) {
        return;
    }
    uv_mutex_destroy(&s->mutex);
    pw_free(s->owner);
    pw_free(s->owner_loop);
    pw_free(s);
}

int ledger_shared_batches_in_flight(const ledger_shared *s)
{
    return s->batches_in_flight;
}

uint32_t ledger_claim_slot(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32)) & (LEDGER_CLAIM_SLOTS - 1);
}

void ledger_claims_lock(ledger_shared *s)
{
    uv_mutex_lock(&s->mutex);
}

void ledger_claims_unlock(ledger_shared *s)
{
    uv_mutex_unlock(&s->mutex);
}

int ledger_claims_conflict(const ledger_shared *s, const uint32_t *slots, size_t n,
                           const void *batch, const void *loop, int other_loops_ignored)
{
    for (size_t i = 0; i < n; i++) {
        const void *o = s->owner[slots[i]];
        if (o != NULL && o != batch && (s->owner_loop[slots[i]] == loop || !other_loops_ignored)) {
            return 1;
        }
    }
    return 0;
}

void ledger_claims_take(ledger_shared *s, const uint32_t *slots, size_t n, const void *batch,
                        const void *loop)
{
    for (size_t i = 0; i < n; i++) {
        if (s->owner[slots[i]] == NULL) {
            s->owner[slots[i]] = batch;
            s->owner_loop[slots[i]] = loop;
        }
    }
}

void ledger_claims_release(ledger_shared *s, const uint32_t *slots, size_t n, const void *batch)
{
    uv_mutex_lock(&s->mutex);
    for (size_t i = 0; i < n; i++) {
        if (s->owner[slots[i]] == batch) {
            s->owner[slots[i]] = NULL;
            s->owner_loop[slots[i]] = NULL;
        }
    }
    uv_mutex_unlock(&s->mutex);
}

void ledger_shared_count_size(ledger_shared *s, size_t n)
{
    int b = 0;
    while (b < 9 && ((size_t)2 << b) <= n) {
        b++;
    }
    uv_mutex_lock(&s->mutex);
    s->sizes[b]++;
    uv_mutex_unlock(&s->mutex);
}

void ledger_shared_sizes(ledger_shared *s, uint64_t out[10])
{
    uv_mutex_lock(&s->mutex);
    for (int i = 0; i < 10; i++) {
        out[i] = s->sizes[i];
    }
    uv_mutex_unlock(&s->mutex);
}
