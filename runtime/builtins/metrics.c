/*
 * metrics.c: a per-loop registry fed by interceptors. Each (side, method)
 * pair is a series of counters and a latency histogram; in-flight and
 * connection gauges and a loop-lag gauge (a 250 ms timer measuring how late
 * it fires) complete the picture. Rendering follows the Prometheus text
 * exposition format 0.0.4.
 *
 * Several loops (pw_workers): each has its own registry and only its thread
 * writes it, with no lock on the call path. A scrape on another thread reads
 * them all (pw_metrics_render_all) and sums them. So that this is race-free,
 * every value is a C11 atomic written by one thread with relaxed order (a
 * plain store on x86 and arm64), series are allocated once and never move,
 * and the series table has a fixed capacity whose count is published with
 * release/acquire.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/metrics.h>

static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS         (sizeof(bucket_le) / sizeof(bucket_le[0]))
#define LAG_INTERVAL_MS 250
/* Series per registry (methods × 2 sides); calls of further methods are not counted. */
#define MAX_SERIES 1024

typedef _Atomic uint64_t counter;

typedef struct series {
    char *method;
    int client;
    counter started;
    counter handled[PW_STATUS_MAX + 1];
    counter buckets[BUCKETS];
    counter count;
    counter nanos;
    counter msgs_in;
    counter msgs_out;
} series;

/* The application's own gauges (pw_metrics_gauge_set). */
#define MAX_GAUGES 32
typedef struct gauge {
    char *name;
    char *help;
    _Atomic int64_t value;
    /* When it was set (uv_hrtime): across registries the latest wins. */
    _Atomic uint64_t stamp;
} gauge;

struct pw_metrics {
    series *series[MAX_SERIES];
    gauge gauges[MAX_GAUGES];
    _Atomic size_t gauge_count;
    _Atomic size_t count;
    _Atomic int64_t in_flight[2];
    _Atomic uint64_t connections;
    _Atomic uint64_t lag_us;
    pw_server **servers;
    size_t server_count;
    uv_timer_t lag_timer;
    uint64_t lag_expected;
    int overflow_logged;
    int closing;
    pw_metrics_close_cb close_cb;
    void *close_ud;
};

/* Single writer: a relaxed load and store, no locked instruction. */
static inline void bump(counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t get(const counter *c)
{
    return atomic_load_explicit((counter *)c, memory_order_relaxed);
}

static series *series_get(pw_metrics *m, const char *method, int client)
{
    size_t n = atomic_load_explicit(&m->count, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        if (m->series[i]->client == client && strcmp(m->series[i]->method, method) == 0) {
            return m->series[i];
        }
    }
    if (n == MAX_SERIES) {
        return NULL;
    }
    series *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->method = pw_strdup(method);
    s->client = client;
    if (s->method == NULL) {
        pw_free(s);
        return NULL;
    }
    m->series[n] = s;
    /* Readers on other threads see the series fully built before the count. */
    atomic_store_explicit(&m->count, n + 1, memory_order_release);
    return s;
}

static void in_flight_add(pw_metrics *m, int client, int64_t d)
{
    atomic_store_explicit(&m->in_flight[client],
                          atomic_load_explicit(&m->in_flight[client], memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static void series_end(pw_metrics *m, const char *method, int client, const pw_call_stats *st)
{
    series *s = series_get(m, method, client);
    in_flight_add(m, client, -1);
    if (s == NULL) {
        return;
    }
    int code = st->code >= 0 && st->code <= PW_STATUS_MAX ? st->code : PW_UNKNOWN;
    bump(&s->handled[code], 1);
    double secs = (double)st->duration_ns / 1e9;
    for (size_t i = 0; i < BUCKETS; i++) {
        if (secs <= bucket_le[i]) {
            bump(&s->buckets[i], 1);
        }
    }
    bump(&s->count, 1);
    bump(&s->nanos, st->duration_ns);
    bump(&s->msgs_in, st->messages_in);
    bump(&s->msgs_out, st->messages_out);
}

/* ---- server and client interceptors ---- */

static pw_status server_start(pw_call *call, char *msg, size_t n, void *ud)
{
    (void)msg;
    (void)n;
    pw_metrics *m = ud;
    series *s = series_get(m, pw_call_method(call), 0);
    if (s != NULL) {
        bump(&s->started, 1);
    }
    in_flight_add(m, 0, 1);
    return PW_OK;
}

static void server_end(pw_call *call, const pw_call_stats *st, void *ud)
{
    series_end(ud, pw_call_method(call), 0, st);
}

static pw_status client_start(pw_client_call *call, const char *path, pw_metadata *md, char *msg,
                              size_t n, void *ud)
{
    (void)call;
    (void)md;
    (void)msg;
    (void)n;
    pw_metrics *m = ud;
    series *s = series_get(m, path, 1);
    if (s != NULL) {
        bump(&s->started, 1);
    }
    in_flight_add(m, 1, 1);
    return PW_OK;
}

static void client_end(pw_client_call *call, const pw_result *r, const pw_call_stats *st, void *ud)
{
    (void)r;
    series_end(ud, pw_client_call_path(call), 1, st);
}

pw_status pw_metrics_observe_server(pw_metrics *m, pw_server *server)
{
    pw_server **a = pw_realloc(m->servers, (m->server_count + 1) * sizeof(*a));
    if (a == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    m->servers = a;
    m->servers[m->server_count++] = server;
    pw_interceptor ic = {server_start, server_end, m};
    return pw_server_add_interceptor(server, &ic);
}

void pw_metrics_forget_server(pw_metrics *m, const pw_server *server)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->server_count; i++) {
        if (m->servers[i] == server) {
            m->servers[i] = m->servers[--m->server_count];
            return;
        }
    }
}

pw_status pw_metrics_observe_channel(pw_metrics *m, pw_channel *ch)
{
    pw_client_interceptor ic = {client_start, client_end, m};
    return pw_channel_add_interceptor(ch, &ic);
}

/* ---- loop lag ---- */

static void lag_tick(uv_timer_t *t)
{
    pw_metrics *m = t->data;
    uint64_t now = uv_now(t->loop);
    uint64_t lag_ms = now > m->lag_expected ? now - m->lag_expected : 0;
    atomic_store_explicit(&m->lag_us, lag_ms * 1000, memory_order_relaxed);
    m->lag_expected = now + LAG_INTERVAL_MS;
    /* Connection counts live on this loop: copy them where a scrape on any thread can read. */
    uint64_t conns = 0;
    for (size_t i = 0; i < m->server_count; i++) {
        conns += pw_server_connection_count(m->servers[i]);
    }
    atomic_store_explicit(&m->connections, conns, memory_order_relaxed);
}

pw_status pw_metrics_new(pw_metrics **out, uv_loop_t *loop)
{
    *out = NULL;
    pw_metrics *m = pw_calloc(1, sizeof(*m));
    if (m == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    uv_timer_init(loop, &m->lag_timer);
    m->lag_timer.data = m;
    m->lag_expected = uv_now(loop) + LAG_INTERVAL_MS;
    uv_timer_start(&m->lag_timer, lag_tick, LAG_INTERVAL_MS, LAG_INTERVAL_MS);
    uv_unref((uv_handle_t *)&m->lag_timer); /* never keeps the loop alive */
    *out = m;
    return PW_OK;
}

static void metrics_closed(uv_handle_t *h)
{
    pw_metrics *m = h->data;
    if (m->close_cb != NULL) {
        m->close_cb(m, m->close_ud);
    }
    size_t n = atomic_load_explicit(&m->count, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        pw_free(m->series[i]->method);
        pw_free(m->series[i]);
    }
    size_t g = atomic_load_explicit(&m->gauge_count, memory_order_relaxed);
    for (size_t i = 0; i < g; i++) {
        pw_free(m->gauges[i].name);
        pw_free(m->gauges[i].help);
    }
    pw_free(m->servers);
    pw_free(m);
}

void pw_metrics_close(pw_metrics *m, pw_metrics_close_cb cb, void *user_data)
{
    if (m == NULL || m->closing) {
        return;
    }
    m->closing = 1;
    m->close_cb = cb;
    m->close_ud = user_data;
    uv_close((uv_handle_t *)&m->lag_timer, metrics_closed);
}

/* ---- rendering ---- */

/* One (side, method) summed over every registry. */
typedef struct total {
    const char *method;
    int client;
    uint64_t started;
    uint64_t handled[PW_STATUS_MAX + 1];
    uint64_t buckets[BUCKETS];
    uint64_t count;
    uint64_t nanos;
    uint64_t msgs_in;
    uint64_t msgs_out;
} total;

typedef struct totals {
    total *t;
    size_t n;
    size_t cap;
    int64_t in_flight[2];
    uint64_t connections;
    uint64_t lag_us;
} totals;

static total *totals_get(totals *all, const char *method, int client)
{
    for (size_t i = 0; i < all->n; i++) {
        if (all->t[i].client == client && strcmp(all->t[i].method, method) == 0) {
            return &all->t[i];
        }
    }
    if (all->n == all->cap) {
        size_t cap = all->cap ? all->cap * 2 : 32;
        total *t = pw_realloc(all->t, cap * sizeof(*t));
        if (t == NULL) {
            return NULL;
        }
        all->t = t;
        all->cap = cap;
    }
    total *t = &all->t[all->n++];
    *t = (total){.method = method, .client = client};
    return t;
}

static pw_status totals_add(totals *all, const pw_metrics *m)
{
    size_t n = atomic_load_explicit(&((pw_metrics *)m)->count, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        const series *s = m->series[i];
        total *t = totals_get(all, s->method, s->client);
        if (t == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        t->started += get(&s->started);
        for (int c = 0; c <= PW_STATUS_MAX; c++) {
            t->handled[c] += get(&s->handled[c]);
        }
        for (size_t k = 0; k < BUCKETS; k++) {
            t->buckets[k] += get(&s->buckets[k]);
        }
        t->count += get(&s->count);
        t->nanos += get(&s->nanos);
        t->msgs_in += get(&s->msgs_in);
        t->msgs_out += get(&s->msgs_out);
    }
    for (int side = 0; side < 2; side++) {
        all->in_flight[side] +=
            atomic_load_explicit(&((pw_metrics *)m)->in_flight[side], memory_order_relaxed);
    }
    all->connections += atomic_load_explicit(&((pw_metrics *)m)->connections, memory_order_relaxed);
    uint64_t lag = atomic_load_explicit(&((pw_metrics *)m)->lag_us, memory_order_relaxed);
    all->lag_us = lag > all->lag_us ? lag : all->lag_us;
    return PW_OK;
}

/* A counter family: HELP, TYPE, one line per series of the side. */
static void render_counter(const totals *all, pw_buf *b, int client, const char *name,
                           const char *help, size_t field)
{
    const char *p = client ? "paywire_client" : "paywire_server";
    pw_buf_printf(b, "# HELP %s_%s %s\n# TYPE %s_%s counter\n", p, name, help, p, name);
    for (size_t i = 0; i < all->n; i++) {
        const total *t = &all->t[i];
        if (t->client == client) {
            uint64_t v = *(const uint64_t *)((const char *)t + field);
            pw_buf_printf(b, "%s_%s{method=\"%s\"} %llu\n", p, name, t->method,
                          (unsigned long long)v);
        }
    }
}

static void render_side(const totals *all, pw_buf *b, int client)
{
    const char *p = client ? "paywire_client" : "paywire_server";
    render_counter(all, b, client, "started_total", "Calls started.", offsetof(total, started));
    pw_buf_printf(b,
                  "# HELP %s_handled_total Calls completed, by status code.\n"
                  "# TYPE %s_handled_total counter\n",
                  p, p);
    for (size_t i = 0; i < all->n; i++) {
        const total *t = &all->t[i];
        for (int c = 0; c <= PW_STATUS_MAX && t->client == client; c++) {
            if (t->handled[c] > 0) {
                pw_buf_printf(b, "%s_handled_total{method=\"%s\",code=\"%s\"} %llu\n", p, t->method,
                              pw_status_str(c), (unsigned long long)t->handled[c]);
            }
        }
    }
    pw_buf_printf(b,
                  "# HELP %s_handling_seconds Call latency.\n"
                  "# TYPE %s_handling_seconds histogram\n",
                  p, p);
    for (size_t i = 0; i < all->n; i++) {
        const total *t = &all->t[i];
        if (t->client != client) {
            continue;
        }
        for (size_t k = 0; k < BUCKETS; k++) {
            pw_buf_printf(b, "%s_handling_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n", p,
                          t->method, bucket_le[k], (unsigned long long)t->buckets[k]);
        }
        pw_buf_printf(b, "%s_handling_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n", p,
                      t->method, (unsigned long long)t->count);
        pw_buf_printf(b, "%s_handling_seconds_sum{method=\"%s\"} %.6f\n", p, t->method,
                      (double)t->nanos / 1e9);
        pw_buf_printf(b, "%s_handling_seconds_count{method=\"%s\"} %llu\n", p, t->method,
                      (unsigned long long)t->count);
    }
    render_counter(all, b, client, "msg_received_total", "Messages received.",
                   offsetof(total, msgs_in));
    render_counter(all, b, client, "msg_sent_total", "Messages sent.", offsetof(total, msgs_out));
    pw_buf_printf(
        b, "# HELP %s_in_flight Calls in progress.\n# TYPE %s_in_flight gauge\n%s_in_flight %lld\n",
        p, p, p, (long long)all->in_flight[client]);
}

static int gauge_name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9')) {
        return 0;
    }
    for (; *s; s++) {
        int ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                 *s == '_' || *s == ':';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

pw_status pw_metrics_gauge_set(pw_metrics *m, const char *name, const char *help, int64_t value)
{
    if (m == NULL || !gauge_name_ok(name)) {
        return PW_INVALID_ARGUMENT;
    }
    size_t n = atomic_load_explicit(&m->gauge_count, memory_order_relaxed);
    gauge *g = NULL;
    for (size_t i = 0; i < n && g == NULL; i++) {
        g = strcmp(m->gauges[i].name, name) == 0 ? &m->gauges[i] : NULL;
    }
    if (g == NULL) {
        if (n == MAX_GAUGES) {
            return PW_RESOURCE_EXHAUSTED;
        }
        g = &m->gauges[n];
        g->name = pw_strdup(name);
        g->help = pw_strdup(help != NULL ? help : "");
        if (g->name == NULL || g->help == NULL) {
            pw_free(g->name);
            pw_free(g->help);
            g->name = g->help = NULL;
            return PW_ERRNO(ENOMEM);
        }
        atomic_store_explicit(&g->value, value, memory_order_relaxed);
        atomic_store_explicit(&g->stamp, uv_hrtime(), memory_order_relaxed);
        /* Readers on other threads see the gauge fully built before the count. */
        atomic_store_explicit(&m->gauge_count, n + 1, memory_order_release);
        return PW_OK;
    }
    atomic_store_explicit(&g->value, value, memory_order_relaxed);
    atomic_store_explicit(&g->stamp, uv_hrtime(), memory_order_release);
    return PW_OK;
}

/* Each gauge name once, with the value set last on any registry. */
static pw_status render_gauges(const pw_metrics *const *regs, size_t n, pw_buf *b)
{
    pw_status rv = PW_OK;
    for (size_t r = 0; r < n && rv == PW_OK; r++) {
        size_t count = atomic_load_explicit(&regs[r]->gauge_count, memory_order_acquire);
        for (size_t i = 0; i < count && rv == PW_OK; i++) {
            const gauge *g = &regs[r]->gauges[i];
            int seen = 0;
            const gauge *last = g;
            for (size_t o = 0; o < n && !seen; o++) {
                size_t oc = atomic_load_explicit(&regs[o]->gauge_count, memory_order_acquire);
                for (size_t k = 0; k < oc && !seen; k++) {
                    const gauge *h = &regs[o]->gauges[k];
                    if (h == g || strcmp(h->name, g->name) != 0) {
                        continue;
                    }
                    /* Rendered with the first registry that has it. */
                    seen = o < r;
                    if (atomic_load_explicit(&h->stamp, memory_order_acquire) >
                        atomic_load_explicit(&last->stamp, memory_order_acquire)) {
                        last = h;
                    }
                }
            }
            if (!seen) {
                rv = pw_buf_printf(
                    b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", g->name, g->help, g->name,
                    g->name, (long long)atomic_load_explicit(&last->value, memory_order_relaxed));
            }
        }
    }
    return rv;
}

pw_status pw_metrics_render_all(const pw_metrics *const *regs, size_t n, pw_buf *b)
{
    totals all = {0};
    pw_status rv = PW_OK;
    for (size_t i = 0; i < n && rv == PW_OK; i++) {
        rv = totals_add(&all, regs[i]);
    }
    if (rv == PW_OK) {
        render_side(&all, b, 0);
        render_side(&all, b, 1);
        pw_buf_printf(b,
                      "# HELP paywire_server_connections Open server connections.\n"
                      "# TYPE paywire_server_connections gauge\npaywire_server_connections %llu\n",
                      (unsigned long long)all.connections);
        rv = pw_buf_printf(
            b,
            "# HELP paywire_loop_lag_seconds How late the slowest loop ran a 250 ms timer.\n"
            "# TYPE paywire_loop_lag_seconds gauge\npaywire_loop_lag_seconds %.6f\n",
            (double)all.lag_us / 1e6);
    }
    if (rv == PW_OK) {
        rv = render_gauges(regs, n, b);
    }
    pw_free(all.t);
    return rv;
}

pw_status pw_metrics_render(const pw_metrics *m, pw_buf *b)
{
    return pw_metrics_render_all(&m, 1, b);
}
