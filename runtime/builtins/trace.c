/*
 * trace.c: spans for server and client calls with W3C trace context, batched
 * and exported as OTLP/HTTP JSON (resourceSpans / scopeSpans / spans) through
 * paywire_http (libcurl on the loop; http:// or https:// collectors). Ids
 * come from OpenSSL's CSPRNG.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/rand.h>
#include <paywire/alloc.h>
#include <paywire/http.h>
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
    /* The collector's URL and the client that posts to it (NULL: spans are dropped). */
    char *url;
    pw_http_client *http;
    span *batch;
    size_t count;
    size_t cap;
    uv_timer_t timer;
    int exports;
    int closing;
    pw_tracer_close_cb close_cb;
    void *close_ud;
};

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

/* The last export is done (or there was none): the client, then the timer, close. */
static void http_closed(pw_http_client *c, void *ud)
{
    (void)c;
    pw_tracer *t = ud;
    uv_close((uv_handle_t *)&t->timer, tracer_timer_closed);
}

static void tracer_wind_down(pw_tracer *t)
{
    if (t->http != NULL) {
        pw_http_client_close(t->http, http_closed, t);
    } else {
        uv_close((uv_handle_t *)&t->timer, tracer_timer_closed);
    }
}

static void exported(pw_http_client *c, const pw_http_response *r, void *ud)
{
    (void)c;
    pw_tracer *t = ud;
    if (r->status != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "trace", "span export failed: %s", r->error);
    } else if (r->http_status < 200 || r->http_status > 299) {
        PW_LOG(PW_LOG_WARNING, "trace", "span export to %s refused: HTTP %ld", t->url,
               r->http_status);
    }
    t->exports--;
    if (t->closing && t->exports == 0) {
        tracer_wind_down(t);
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
    if (t->count == 0 || t->http == NULL) {
        t->count = 0;
        return;
    }
    pw_buf json = {0};
    render_batch(t, &json);
    t->count = 0;
    static const pw_http_header headers[] = {{"content-type", "application/json"}};
    pw_http_request req = {
        .method = "POST",
        .url = t->url,
        .headers = headers,
        .n_headers = 1,
        .body = json.data,
        .body_len = json.len,
        .timeout_ms = 5000,
    };
    if (pw_http_send(t->http, &req, exported, t) == PW_OK) {
        t->exports++;
    }
    pw_buf_reset(&json);
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
        /* "http://host:port[/path]" or https; the OTLP default path when there is none. */
        int https = strncmp(endpoint, "https://", 8) == 0;
        const char *rest = endpoint + (https ? 8 : 7);
        pw_status rv = PW_OK;
        if ((!https && strncmp(endpoint, "http://", 7) != 0) || rest[0] == '\0' || rest[0] == '/') {
            rv = PW_INVALID_ARGUMENT;
        }
        size_t n = strlen(endpoint);
        if (rv == PW_OK && (t->url = pw_malloc(n + sizeof("/v1/traces"))) == NULL) {
            rv = PW_ERRNO(ENOMEM);
        }
        if (rv == PW_OK) {
            snprintf(t->url, n + sizeof("/v1/traces"), "%s%s", endpoint,
                     strchr(rest, '/') ? "" : "/v1/traces");
            rv = pw_http_client_new(&t->http, loop, NULL);
        }
        if (rv != PW_OK) {
            pw_free(t->url);
            pw_free(t->service);
            pw_free(t);
            return rv;
        }
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
    pw_free(t->url);
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
        tracer_wind_down(t);
    }
}
