/*
 * breaker.c: a circuit breaker per connector (design: "Routing and
 * failover"), in memory and per process, shared by the workers under one
 * lock. Each connector keeps a rolling window of BREAKER_BUCKETS time
 * buckets (requests, failures, a log2 latency histogram). CLOSED opens when
 * the window holds at least min_requests and failures reach error_percent;
 * OPEN refuses traffic for open_ms, then HALF_OPEN lets up to `trials`
 * requests through at once: a success closes it (with a fresh window), a
 * failure opens it again. A failure is a call that gave no answer (FAILED or
 * TIMED_OUT); a decline is an answer.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include <paywire/metrics.h>
#include "orchestration.h"

#define BREAKER_BUCKETS 30
#define LATENCY_SLOTS   16

typedef struct breaker_bucket {
    uint64_t start_ms; /* which slot of time this bucket holds; 0: empty */
    uint32_t total, failed;
    uint32_t latency[LATENCY_SLOTS]; /* slot k: latency below 2^k ms */
} breaker_bucket;

typedef struct breaker {
    orch_circuit state;
    uint64_t opened_ms;
    /* HALF_OPEN: trial calls let through since half_ms (renewed every open_ms, so a trial
     * slot taken by a route that never called the connector is not lost for good). */
    uint64_t half_ms;
    int trials;
    breaker_bucket b[BREAKER_BUCKETS];
} breaker;

struct orch_breakers {
    uv_mutex_t lock;
    orch_breaker_config cfg;
    int n;
    breaker c[ORCH_MAX_CONNECTORS];
};

orch_breakers *orch_breakers_new(const orch_breaker_config *cfg, int n)
{
    orch_breakers *bs = pw_calloc(1, sizeof(*bs));
    if (bs == NULL) {
        return NULL;
    }
    if (uv_mutex_init(&bs->lock) != 0) {
        pw_free(bs);
        return NULL;
    }
    bs->cfg = *cfg;
    bs->n = n;
    for (int i = 0; i < n; i++) {
        bs->c[i].state = ORCH_CIRCUIT_CLOSED;
    }
    return bs;
}

void orch_breakers_free(orch_breakers *bs)
{
    if (bs == NULL) {
        return;
    }
    uv_mutex_destroy(&bs->lock);
    pw_free(bs);
}

static uint64_t width_ms(const orch_breakers *bs)
{
    uint64_t w = (uint64_t)bs->cfg.window_ms / BREAKER_BUCKETS;
    return w == 0 ? 1 : w;
}

/* Totals over the buckets still inside the window at now. */
static void window(const orch_breakers *bs, const breaker *c, uint64_t now, uint32_t *total,
                   uint32_t *failed, uint32_t latency[LATENCY_SLOTS])
{
    uint64_t w = width_ms(bs), oldest = now / w >= BREAKER_BUCKETS ? now / w - BREAKER_BUCKETS : 0;
    *total = *failed = 0;
    if (latency != NULL) {
        memset(latency, 0, sizeof(uint32_t) * LATENCY_SLOTS);
    }
    for (int i = 0; i < BREAKER_BUCKETS; i++) {
        const breaker_bucket *b = &c->b[i];
        if (b->start_ms == 0 || b->start_ms / w <= oldest) {
            continue;
        }
        *total += b->total;
        *failed += b->failed;
        for (int k = 0; latency != NULL && k < LATENCY_SLOTS; k++) {
            latency[k] += b->latency[k];
        }
    }
}

/* Moves OPEN to HALF_OPEN once the cool-down has passed. */
static void cool_down(const orch_breakers *bs, breaker *c, uint64_t now)
{
    if (c->state == ORCH_CIRCUIT_OPEN && now >= c->opened_ms + (uint64_t)bs->cfg.open_ms) {
        c->state = ORCH_CIRCUIT_HALF_OPEN;
        c->half_ms = now;
        c->trials = 0;
    } else if (c->state == ORCH_CIRCUIT_HALF_OPEN &&
               now >= c->half_ms + (uint64_t)bs->cfg.open_ms) {
        c->half_ms = now;
        c->trials = 0;
    }
}

int orch_breaker_allow(orch_breakers *bs, int idx, uint64_t now_ms)
{
    uv_mutex_lock(&bs->lock);
    breaker *c = &bs->c[idx];
    cool_down(bs, c, now_ms);
    int ok = c->state == ORCH_CIRCUIT_CLOSED;
    if (c->state == ORCH_CIRCUIT_HALF_OPEN && c->trials < bs->cfg.trials) {
        c->trials++;
        ok = 1;
    }
    uv_mutex_unlock(&bs->lock);
    return ok;
}

void orch_breaker_record(orch_breakers *bs, int idx, int answered, uint64_t latency_ms,
                         uint64_t now_ms)
{
    uv_mutex_lock(&bs->lock);
    breaker *c = &bs->c[idx];
    uint64_t w = width_ms(bs);
    breaker_bucket *b = &c->b[(now_ms / w) % BREAKER_BUCKETS];
    if (b->start_ms == 0 || b->start_ms / w != now_ms / w) {
        memset(b, 0, sizeof(*b));
        b->start_ms = now_ms == 0 ? 1 : now_ms;
    }
    b->total++;
    b->failed += !answered;
    int slot = 0;
    while (slot < LATENCY_SLOTS - 1 && latency_ms >= (1ULL << slot)) {
        slot++;
    }
    b->latency[slot]++;
    if (c->state == ORCH_CIRCUIT_HALF_OPEN) {
        if (answered) {
            c->state = ORCH_CIRCUIT_CLOSED;
            memset(c->b, 0, sizeof(c->b));
        } else {
            c->state = ORCH_CIRCUIT_OPEN;
            c->opened_ms = now_ms;
        }
    } else if (c->state == ORCH_CIRCUIT_CLOSED) {
        uint32_t total, failed;
        window(bs, c, now_ms, &total, &failed, NULL);
        if (total >= (uint32_t)bs->cfg.min_requests &&
            (uint64_t)failed * 100 >= (uint64_t)bs->cfg.error_percent * total) {
            c->state = ORCH_CIRCUIT_OPEN;
            c->opened_ms = now_ms;
        }
    }
    uv_mutex_unlock(&bs->lock);
}

void orch_breaker_view(orch_breakers *bs, int idx, uint64_t now_ms, orch_breaker_stats *out)
{
    uv_mutex_lock(&bs->lock);
    breaker *c = &bs->c[idx];
    cool_down(bs, c, now_ms);
    uint32_t total, failed, latency[LATENCY_SLOTS];
    window(bs, c, now_ms, &total, &failed, latency);
    out->state = c->state;
    out->requests = total;
    out->success_rate_bps =
        total == 0 ? 10000 : (uint32_t)((uint64_t)(total - failed) * 10000 / total);
    /* p99: the upper bound of the histogram slot that holds the 99th percentile. */
    out->p99_latency_ms = 0;
    uint64_t seen = 0, need = total - total / 100;
    for (int k = 0; k < LATENCY_SLOTS && total > 0; k++) {
        seen += latency[k];
        if (seen >= need) {
            out->p99_latency_ms = (uint32_t)(1U << k);
            break;
        }
    }
    uv_mutex_unlock(&bs->lock);
}

/* "<prefix><connector>", the connector's name with what a metric name cannot hold as '_'. */
static void gauge_name(char *out, size_t cap, const char *prefix, const char *connector)
{
    int n = snprintf(out, cap, "%s%s", prefix, connector);
    for (size_t i = strlen(prefix); n > 0 && i < (size_t)n && i < cap; i++) {
        char c = out[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            out[i] = '_';
        }
    }
}

void orch_breakers_publish(const orch_state *s, pw_metrics *m, int idx, uint64_t now_ms)
{
    for (int i = idx < 0 ? 0 : idx; m != NULL && i < (idx < 0 ? s->n_connectors : idx + 1); i++) {
        orch_breaker_stats st;
        orch_breaker_view(s->breakers, i, now_ms, &st);
        char name[96];
        gauge_name(name, sizeof(name), "orchestration_connector_breaker_state_",
                   s->connectors[i].name);
        /* 0 closed, 1 open, 2 half-open (orch_circuit less one). */
        pw_metrics_gauge_set(m, name,
                             "The connector's circuit breaker: 0 closed, 1 open, 2 half-open.",
                             (int64_t)st.state - ORCH_CIRCUIT_CLOSED);
        gauge_name(name, sizeof(name), "orchestration_connector_success_rate_bps_",
                   s->connectors[i].name);
        pw_metrics_gauge_set(m, name,
                             "Answered calls (approvals and declines) over all calls to the"
                             " connector in the breaker's window, in basis points (10000 when"
                             " none).",
                             st.success_rate_bps);
    }
}

uint64_t orch_now_ms(void)
{
    return uv_hrtime() / 1000000;
}
