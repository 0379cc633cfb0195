/*
 * metrics.c: a per-loop registry fed by interceptors. Each (side, method)
 * pair is a series of counters and a latency histogram; in-flight and
 * connection gauges and a loop-lag gauge (a 250 ms timer measuring how late
 * it fires) complete the picture. Rendering follows the Prometheus text
 * exposition format 0.0.4.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/metrics.h>

static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define BUCKETS         (sizeof(bucket_le) / sizeof(bucket_le[0]))
#define LAG_INTERVAL_MS 250

typedef struct series {
    char *method;
    int client;
    uint64_t started;
    uint64_t handled[PW_STATUS_MAX + 1];
    uint64_t buckets[BUCKETS];
    uint64_t count;
    double seconds;
    uint64_t msgs_in;
    uint64_t msgs_out;
} series;

struct pw_metrics {
    series *series;
    size_t count;
    size_t cap;
    int64_t in_flight[2];
    pw_server **servers;
    size_t server_count;
    uv_timer_t lag_timer;
    uint64_t lag_expected;
    double lag_seconds;
};

static series *series_get(pw_metrics *m, const char *method, int client)
{
    for (size_t i = 0; i < m->count; i++) {
        if (m->series[i].client == client && strcmp(m->series[i].method, method) == 0) {
            return &m->series[i];
        }
    }
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        series *s = pw_realloc(m->series, cap * sizeof(*s));
        if (s == NULL) {
            return NULL;
        }
        m->series = s;
        m->cap = cap;
    }
    series *s = &m->series[m->count];
    *s = (series){.method = pw_strdup(method), .client = client};
    if (s->method == NULL) {
        return NULL;
    }
    m->count++;
    return s;
}

static void series_end(pw_metrics *m, const char *method, int client, const pw_call_stats *st)
{
    series *s = series_get(m, method, client);
    m->in_flight[client]--;
    if (s == NULL) {
        return;
    }
    int code = st->code >= 0 && st->code <= PW_STATUS_MAX ? st->code : PW_UNKNOWN;
    s->handled[code]++;
    double secs = (double)st->duration_ns / 1e9;
    for (size_t i = 0; i < BUCKETS; i++) {
        if (secs <= bucket_le[i]) {
            s->buckets[i]++;
        }
    }
    s->count++;
    s->seconds += secs;
    s->msgs_in += st->messages_in;
    s->msgs_out += st->messages_out;
}

/* ---- server and client interceptors ---- */

static pw_status server_start(pw_call *call, char *msg, size_t n, void *ud)
{
    (void)msg;
    (void)n;
    pw_metrics *m = ud;
    series *s = series_get(m, pw_call_method(call), 0);
    if (s != NULL) {
        s->started++;
    }
    m->in_flight[0]++;
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
        s->started++;
    }
    m->in_flight[1]++;
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
    m->lag_seconds = now > m->lag_expected ? (double)(now - m->lag_expected) / 1000.0 : 0.0;
    m->lag_expected = now + LAG_INTERVAL_MS;
}

pw_status pw_metrics_new(pw_metrics **out, uv_loop_t *loop)
{
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
    for (size_t i = 0; i < m->count; i++) {
        pw_free(m->series[i].method);
    }
    pw_free(m->series);
    pw_free(m->servers);
    pw_free(m);
}

void pw_metrics_free(pw_metrics *m)
{
    if (m != NULL) {
        uv_close((uv_handle_t *)&m->lag_timer, metrics_closed);
    }
}

/* ---- rendering ---- */

static void render_side(const pw_metrics *m, pw_buf *b, int client)
{
    const char *p = client ? "paywire_client" : "paywire_server";
    pw_buf_printf(b, "# HELP %s_started_total Calls started.\n# TYPE %s_started_total counter\n", p,
                  p);
    for (size_t i = 0; i < m->count; i++) {
        const series *s = &m->series[i];
        if (s->client == client) {
            pw_buf_printf(b, "%s_started_total{method=\"%s\"} %llu\n", p, s->method,
                          (unsigned long long)s->started);
        }
    }
    pw_buf_printf(b,
                  "# HELP %s_handled_total Calls completed, by status code.\n"
                  "# TYPE %s_handled_total counter\n",
                  p, p);
    for (size_t i = 0; i < m->count; i++) {
        const series *s = &m->series[i];
        for (int c = 0; c <= PW_STATUS_MAX && s->client == client; c++) {
            if (s->handled[c] > 0) {
                pw_buf_printf(b, "%s_handled_total{method=\"%s\",code=\"%s\"} %llu\n", p, s->method,
                              pw_status_str(c), (unsigned long long)s->handled[c]);
            }
        }
    }
    pw_buf_printf(b,
                  "# HELP %s_handling_seconds Call latency.\n"
                  "# TYPE %s_handling_seconds histogram\n",
                  p, p);
    for (size_t i = 0; i < m->count; i++) {
        const series *s = &m->series[i];
        if (s->client != client) {
            continue;
        }
        for (size_t k = 0; k < BUCKETS; k++) {
            pw_buf_printf(b, "%s_handling_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n", p,
                          s->method, bucket_le[k], (unsigned long long)s->buckets[k]);
        }
        pw_buf_printf(b, "%s_handling_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n", p,
                      s->method, (unsigned long long)s->count);
        pw_buf_printf(b, "%s_handling_seconds_sum{method=\"%s\"} %.6f\n", p, s->method, s->seconds);
        pw_buf_printf(b, "%s_handling_seconds_count{method=\"%s\"} %llu\n", p, s->method,
                      (unsigned long long)s->count);
    }
    pw_buf_printf(b,
                  "# HELP %s_msg_received_total Messages received.\n"
                  "# TYPE %s_msg_received_total counter\n",
                  p, p);
    for (size_t i = 0; i < m->count; i++) {
        const series *s = &m->series[i];
        if (s->client == client) {
            pw_buf_printf(b, "%s_msg_received_total{method=\"%s\"} %llu\n", p, s->method,
                          (unsigned long long)s->msgs_in);
        }
    }
    pw_buf_printf(b, "# HELP %s_msg_sent_total Messages sent.\n# TYPE %s_msg_sent_total counter\n",
                  p, p);
    for (size_t i = 0; i < m->count; i++) {
        const series *s = &m->series[i];
        if (s->client == client) {
            pw_buf_printf(b, "%s_msg_sent_total{method=\"%s\"} %llu\n", p, s->method,
                          (unsigned long long)s->msgs_out);
        }
    }
    pw_buf_printf(
        b, "# HELP %s_in_flight Calls in progress.\n# TYPE %s_in_flight gauge\n%s_in_flight %lld\n",
        p, p, p, (long long)m->in_flight[client]);
}

pw_status pw_metrics_render(const pw_metrics *m, pw_buf *b)
{
    render_side(m, b, 0);
    render_side(m, b, 1);
    size_t conns = 0;
    for (size_t i = 0; i < m->server_count; i++) {
        conns += pw_server_connection_count(m->servers[i]);
    }
    pw_buf_printf(b,
                  "# HELP paywire_server_connections Open server connections.\n"
                  "# TYPE paywire_server_connections gauge\npaywire_server_connections %zu\n",
                  conns);
    return pw_buf_printf(b,
                         "# HELP paywire_loop_lag_seconds How late the loop ran a 250 ms timer.\n"
                         "# TYPE paywire_loop_lag_seconds gauge\npaywire_loop_lag_seconds %.6f\n",
                         m->lag_seconds);
}
