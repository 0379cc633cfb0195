/*
 * trace.c: spans for server and client calls with W3C trace context, batched
 * and exported as OTLP/HTTP JSON (resourceSpans / scopeSpans / spans) with a
 * small HTTP/1.1 POST client on the loop. Ids come from OpenSSL's CSPRNG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include <paywire/trace.h>

static const int span_key;

typedef struct span {
    char trace_id[33];
    char span_id[17];
    char parent_id[17];
    char name[160];
    char tracestate[128];
    int kind; /* OTLP: 2 server, 3 client */
    uint64_t start_unix_ns;
    uint64_t end_unix_ns;
    pw_status code;
} span;

struct pw_tracer {
    uv_loop_t *loop;
    char *service;
    char host[160];
    int port;
    char path[256];
    int enabled;
    span *batch;
    size_t count;
    size_t cap;
    uv_timer_t timer;
    int exports;
    int closing;
    pw_tracer_close_cb close_cb;
    void *close_ud;
};

typedef struct export_req {
    pw_tracer *t;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    pw_buf body;
    char rbuf[512];
} export_req;

static uint64_t unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void random_hex(char *out, size_t bytes)
{
    uint8_t b[16];
    static const char d[] = "0123456789abcdef";
    if (RAND_bytes(b, (int)bytes) != 1) {
        memset(b, 0x5a, bytes);
    }
    for (size_t i = 0; i < bytes; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * bytes] = '\0';
}

static int is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* traceparent: 00-<32 hex trace>-<16 hex parent>-<2 hex flags>; all-zero ids are invalid. */
static int parse_traceparent(const pw_metadata_entry *e, span *s)
{
    if (e == NULL || e->value_len < 55) {
        return 0;
    }
    const char *v = (const char *)e->value;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-' || !is_hex(v + 3, 32) || !is_hex(v + 36, 16) ||
        strncmp(v + 3, "00000000000000000000000000000000", 32) == 0) {
        return 0;
    }
    memcpy(s->trace_id, v + 3, 32);
    s->trace_id[32] = '\0';
    memcpy(s->parent_id, v + 36, 16);
    s->parent_id[16] = '\0';
    return 1;
}

/* ---- export ---- */

static void tracer_timer_closed(uv_handle_t *h);

static void export_closed(uv_handle_t *h)
{
    export_req *r = h->data;
    pw_tracer *t = r->t;
    pw_buf_reset(&r->body);
    pw_free(r);
    t->exports--;
    if (t->closing && t->exports == 0) {
        uv_close((uv_handle_t *)&t->timer, tracer_timer_closed);
    }
}

static void export_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    export_req *r = h->data;
    *b = uv_buf_init(r->rbuf, sizeof(r->rbuf));
}

static void export_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    export_req *r = s->data;
    if (n > 0 && strncmp(b->base, "HTTP/1.1 2", 10) != 0 &&
        strncmp(b->base, "HTTP/1.0 2", 10) != 0) {
        PW_LOG(PW_LOG_WARNING, "trace", "span export to %s:%d refused: %.40s", r->t->host,
               r->t->port, b->base);
    }
    /* One response is all we wait for. */
    uv_close((uv_handle_t *)&r->tcp, export_closed);
}

static void export_written(uv_write_t *w, int status)
{
    export_req *r = w->data;
    if (status != 0 || uv_read_start((uv_stream_t *)&r->tcp, export_alloc, export_read) != 0) {
        uv_close((uv_handle_t *)&r->tcp, export_closed);
    }
}

static void export_connected(uv_connect_t *c, int status)
{
    export_req *r = c->data;
    if (status != 0) {
        PW_LOG(PW_LOG_WARNING, "trace", "cannot reach span exporter %s:%d: %s", r->t->host,
               r->t->port, uv_strerror(status));
        uv_close((uv_handle_t *)&r->tcp, export_closed);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)r->body.data, (unsigned int)r->body.len);
    r->write.data = r;
    if (uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, export_written) != 0) {
        uv_close((uv_handle_t *)&r->tcp, export_closed);
    }
}

static void render_batch(const pw_tracer *t, pw_buf *json)
{
    pw_buf_printf(json,
                  "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                  "\"value\":{\"stringValue\":\"%s\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
                  "\"paywire\",\"version\":\"%s\"},\"spans\":[",
                  t->service, PW_VERSION_STRING);
    for (size_t i = 0; i < t->count; i++) {
        const span *s = &t->batch[i];
        pw_buf_printf(json,
                      "%s{\"traceId\":\"%s\",\"spanId\":\"%s\",\"parentSpanId\":\"%s\","
                      "\"name\":\"%s\",\"kind\":%d,\"startTimeUnixNano\":\"%llu\","
                      "\"endTimeUnixNano\":\"%llu\",\"attributes\":[{\"key\":\"rpc.system\","
                      "\"value\":{\"stringValue\":\"grpc\"}},{\"key\":\"rpc.grpc.status_code\","
                      "\"value\":{\"intValue\":\"%d\"}}],\"status\":{\"code\":%d}}",
                      i ? "," : "", s->trace_id, s->span_id, s->parent_id, s->name, s->kind,
                      (unsigned long long)s->start_unix_ns, (unsigned long long)s->end_unix_ns,
                      s->code, s->code == PW_OK ? 1 : 2);
    }
    pw_buf_printf(json, "]}]}]}");
}

void pw_tracer_flush(pw_tracer *t)
{
    if (t->count == 0 || !t->enabled) {
        t->count = 0;
        return;
    }
    export_req *r = pw_calloc(1, sizeof(*r));
    if (r == NULL) {
        t->count = 0;
        return;
    }
    r->t = t;
    pw_buf json = {0};
    render_batch(t, &json);
    t->count = 0;
    pw_buf_printf(&r->body,
                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  t->path, t->host, t->port, json.len);
    pw_buf_append(&r->body, json.data, json.len);
    pw_buf_reset(&json);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(t->host, t->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(t->host, t->port, (struct sockaddr_in6 *)&ss) != 0) {
        pw_buf_reset(&r->body);
        pw_free(r);
        return;
    }
    uv_tcp_init(t->loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    t->exports++;
    if (uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&ss, export_connected) != 0) {
        uv_close((uv_handle_t *)&r->tcp, export_closed);
    }
}

static void tick(uv_timer_t *timer)
{
    pw_tracer_flush(timer->data);
}

static void finish_span(pw_tracer *t, span *s, pw_status code)
{
    s->end_unix_ns = unix_ns();
    s->code = code;
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        span *b = pw_realloc(t->batch, cap * sizeof(*b));
        if (b == NULL) {
            return;
        }
        t->batch = b;
        t->cap = cap;
    }
    t->batch[t->count++] = *s;
    if (t->count >= 64) {
        pw_tracer_flush(t);
    }
}

/* ---- server spans ---- */

static pw_status server_start(pw_call *call, char *msg, size_t n, void *ud)
{
    (void)msg;
    (void)n;
    (void)ud;
    span *s = pw_call_alloc(call, sizeof(*s));
    if (s == NULL) {
        return PW_OK; /* tracing never fails a call */
    }
    const pw_metadata *md = pw_call_metadata(call);
    if (!parse_traceparent(pw_metadata_get(md, "traceparent"), s)) {
        random_hex(s->trace_id, 16);
        s->parent_id[0] = '\0';
    }
    const pw_metadata_entry *ts = pw_metadata_get(md, "tracestate");
    if (ts != NULL && ts->value_len < sizeof(s->tracestate)) {
        memcpy(s->tracestate, ts->value, ts->value_len);
    }
    random_hex(s->span_id, 8);
    snprintf(s->name, sizeof(s->name), "%s", pw_call_method(call) + 1);
    s->kind = 2;
    s->start_unix_ns = unix_ns();
    pw_call_set_context(call, &span_key, s);
    return PW_OK;
}

static void server_end(pw_call *call, const pw_call_stats *st, void *ud)
{
    span *s = pw_call_get_context(call, &span_key);
    if (s != NULL) {
        finish_span(ud, s, st->code);
    }
}

const char *pw_trace_id(const pw_call *call)
{
    const span *s = pw_call_get_context(call, &span_key);
    return s != NULL ? s->trace_id : NULL;
}

/* ---- client spans ---- */

static pw_status client_start(pw_client_call *call, const char *path, pw_metadata *md, char *msg,
                              size_t n, void *ud)
{
    (void)msg;
    (void)n;
    (void)ud;
    span *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return PW_OK;
    }
    pw_call *parent = pw_client_call_parent(call);
    const span *ps = parent != NULL ? pw_call_get_context(parent, &span_key) : NULL;
    if (ps != NULL) {
        memcpy(s->trace_id, ps->trace_id, sizeof(s->trace_id));
        memcpy(s->parent_id, ps->span_id, sizeof(s->parent_id));
        memcpy(s->tracestate, ps->tracestate, sizeof(s->tracestate));
    } else {
        random_hex(s->trace_id, 16);
    }
    random_hex(s->span_id, 8);
    snprintf(s->name, sizeof(s->name), "%s", path + 1);
    s->kind = 3;
    s->start_unix_ns = unix_ns();
    char tp[64];
    snprintf(tp, sizeof(tp), "00-%s-%s-01", s->trace_id, s->span_id);
    pw_metadata_add_str(md, "traceparent", tp);
    if (s->tracestate[0] != '\0') {
        pw_metadata_add_str(md, "tracestate", s->tracestate);
    }
    if (pw_client_call_set_context(call, &span_key, s) != PW_OK) {
        pw_free(s);
    }
    return PW_OK;
}

static void client_end(pw_client_call *call, const pw_result *r, const pw_call_stats *st, void *ud)
{
    (void)st;
    span *s = pw_client_call_get_context(call, &span_key);
    if (s != NULL) {
        finish_span(ud, s, r->code);
        pw_free(s);
    }
}

/* ---- lifetime ---- */

pw_status pw_tracer_new(pw_tracer **out, uv_loop_t *loop, const char *service, const char *endpoint)
{
    *out = NULL;
    pw_tracer *t = pw_calloc(1, sizeof(*t));
    if (t == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    t->loop = loop;
    t->service = pw_strdup(service ? service : "");
    if (t->service == NULL) {
        pw_free(t);
        return PW_ERRNO(ENOMEM);
    }
    if (endpoint != NULL) {
        char hostport[160] = "";
        if (sscanf(endpoint, "http://%159[^/]%255s", hostport, t->path) < 1) {
            pw_free(t->service);
            pw_free(t);
            return PW_INVALID_ARGUMENT;
        }
        char *colon = strrchr(hostport, ':');
        if (colon == NULL) {
            pw_free(t->service);
            pw_free(t);
            return PW_INVALID_ARGUMENT;
        }
        *colon = '\0';
        snprintf(t->host, sizeof(t->host), "%s", hostport);
        t->port = atoi(colon + 1);
        if (t->path[0] == '\0') {
            snprintf(t->path, sizeof(t->path), "/v1/traces");
        }
        t->enabled = 1;
    }
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, tick, 1000, 1000);
    uv_unref((uv_handle_t *)&t->timer);
    *out = t;
    return PW_OK;
}

pw_status pw_tracer_observe_server(pw_tracer *t, pw_server *server)
{
    pw_interceptor ic = {server_start, server_end, t};
    return pw_server_add_interceptor(server, &ic);
}

pw_status pw_tracer_observe_channel(pw_tracer *t, pw_channel *ch)
{
    pw_client_interceptor ic = {client_start, client_end, t};
    return pw_channel_add_interceptor(ch, &ic);
}

static void tracer_timer_closed(uv_handle_t *h)
{
    pw_tracer *t = h->data;
    if (t->close_cb != NULL) {
        t->close_cb(t, t->close_ud);
    }
    pw_free(t->batch);
    pw_free(t->service);
    pw_free(t);
}

void pw_tracer_close(pw_tracer *t, pw_tracer_close_cb cb, void *user_data)
{
    if (t == NULL || t->closing) {
        return;
    }
    pw_tracer_flush(t);
    t->closing = 1;
    t->close_cb = cb;
    t->close_ud = user_data;
    if (t->exports == 0) {
        uv_close((uv_handle_t *)&t->timer, tracer_timer_closed);
    }
}
