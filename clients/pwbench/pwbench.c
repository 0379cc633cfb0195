/*
 * pwbench: a gRPC load generator on the paywire runtime (ghz-style).
 *
 *   pwbench --target=127.0.0.1:50051 --method=/bench.v1.Echo/Unary
 *           [--data=FILE] [--connections=16] [--concurrency=32]
 *           [--duration=10 | --requests=N] [--rate=R] [--warmup=1]
 *           [--kind=unary|server|bidi] [--messages=N]
 *
 * --kind=server sends the request once and counts the streamed responses;
 * --kind=bidi sends it --messages times (default 10) on one stream, then
 * half-closes, and counts the responses. Latency is per call (whole stream).
 *
 * FILE holds the serialized request message (no gRPC framing); without it the
 * request is empty. Closed loop by default: each connection keeps
 * `concurrency` calls in flight. --rate=R is open loop: R calls per second in
 * all, latency measured from each call's scheduled start (no coordinated
 * omission). Every call's grpc-status is read from its trailers and counted
 * by code; only OK calls count as successes. Prints req/s and latency
 * percentiles from a log-linear histogram.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/paywire.h>
#include "hist.h"

typedef struct bench {
    uv_loop_t loop;
    pw_channel **channels;
    int connections;
    int concurrency;
    const char *method;
    pw_slice request;
    uint64_t start_ns;
    uint64_t measure_from_ns;
    uint64_t end_ns;
    uint64_t max_requests;
    uint64_t started;
    uint64_t finished;
    uint64_t rate;
    uint64_t rate_issued;
    uv_timer_t ticker;
    uv_timer_t stopper;
    int stopping;
    int in_flight;
    uint64_t codes[PW_STATUS_MAX + 1];
    uint64_t messages;
    int kind; /* 0 unary, 1 server streaming, 2 bidi */
    int per_call;
    pwb_hist hist;
} bench;

typedef struct one {
    bench *b;
    int channel;
    uint64_t t0;
} one;

static void start_call(bench *b, int channel, uint64_t scheduled_ns);

static void on_message(pw_client_call *call, pw_slice msg, void *ud);

static void on_done(pw_client_call *call, const pw_result *r, void *ud)
{
    (void)call;
    one *o = ud;
    bench *b = o->b;
    uint64_t now = uv_hrtime();
    b->in_flight--;
    /* Calls cut short by our own stop are not results. */
    if (!b->stopping && o->t0 >= b->measure_from_ns && now <= b->end_ns) {
        b->finished++;
        b->codes[r->code <= PW_STATUS_MAX ? r->code : PW_UNKNOWN]++;
        if (r->code == PW_OK) {
            pwb_hist_record(&b->hist, (now - o->t0) / 1000);
        }
    }
    int channel = o->channel;
    free(o);
    if (!b->stopping && b->rate == 0 && now < b->end_ns &&
        (b->max_requests == 0 || b->started < b->max_requests)) {
        start_call(b, channel, now);
    }
}

static const pw_client_ops ops = {.on_message = on_message, .on_done = on_done};

static void on_message(pw_client_call *call, pw_slice msg, void *ud)
{
    (void)call;
    (void)msg;
    one *o = ud;
    if (!o->b->stopping && o->t0 >= o->b->measure_from_ns) {
        o->b->messages++;
    }
}

static void start_call(bench *b, int channel, uint64_t scheduled_ns)
{
    one *o = malloc(sizeof(*o));
    *o = (one){b, channel, scheduled_ns};
    pw_client_call *call;
    if (pw_client_call_start(&call, b->channels[channel], b->method, NULL, &ops, o) != PW_OK) {
        free(o);
        return;
    }
    b->started++;
    b->in_flight++;
    int sends = b->kind == 2 ? b->per_call : 1;
    for (int i = 0; i < sends; i++) {
        pw_client_call_send_bytes(call, b->request);
    }
    pw_client_call_close_send(call);
}

/* Open loop: issue calls on schedule, spread over the connections. */
static void tick(uv_timer_t *t)
{
    bench *b = t->data;
    uint64_t now = uv_hrtime();
    uint64_t due = (now - b->start_ns) * b->rate / 1000000000ull;
    while (b->rate_issued < due && !b->stopping) {
        uint64_t scheduled = b->start_ns + b->rate_issued * 1000000000ull / b->rate;
        start_call(b, (int)(b->rate_issued % (uint64_t)b->connections), scheduled);
        b->rate_issued++;
    }
}

static void stop(uv_timer_t *t)
{
    bench *b = t->data;
    b->stopping = 1;
    uv_timer_stop(&b->ticker);
    uv_close((uv_handle_t *)&b->ticker, NULL);
    uv_close((uv_handle_t *)&b->stopper, NULL);
    for (int i = 0; i < b->connections; i++) {
        pw_channel_close(b->channels[i], NULL, NULL);
    }
}

static const char *flag(int argc, char **argv, const char *name, const char *def)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
            argv[i][2 + n] == '=') {
            return argv[i] + 3 + n;
        }
    }
    return def;
}

static pw_slice read_file(const char *path)
{
    if (path == NULL) {
        return pw_slice_make("", 0);
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "pwbench: cannot open %s\n", path);
        exit(2);
    }
    static uint8_t buf[4 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    return pw_slice_make(buf, n);
}

int main(int argc, char **argv)
{
    static bench b;
    const char *target = flag(argc, argv, "target", "127.0.0.1:50051");
    b.method = flag(argc, argv, "method", "/bench.v1.Echo/Unary");
    b.request = read_file(flag(argc, argv, "data", NULL));
    b.connections = atoi(flag(argc, argv, "connections", "16"));
    b.concurrency = atoi(flag(argc, argv, "concurrency", "32"));
    double duration = atof(flag(argc, argv, "duration", "10"));
    double warmup = atof(flag(argc, argv, "warmup", "1"));
    b.max_requests = strtoull(flag(argc, argv, "requests", "0"), NULL, 10);
    b.rate = strtoull(flag(argc, argv, "rate", "0"), NULL, 10);
    const char *kind = flag(argc, argv, "kind", "unary");
    b.kind = strcmp(kind, "server") == 0 ? 1 : (strcmp(kind, "bidi") == 0 ? 2 : 0);
    if (b.kind == 0 && strcmp(kind, "unary") != 0) {
        fprintf(stderr, "pwbench: --kind is unary, server or bidi\n");
        return 2;
    }
    b.per_call = atoi(flag(argc, argv, "messages", "10"));
    if (b.connections < 1 || b.concurrency < 1 || duration <= 0) {
        fprintf(stderr, "pwbench: connections, concurrency and duration must be positive\n");
        return 2;
    }
    pw_log_set_level(PW_LOG_ERR);
    uv_loop_init(&b.loop);
    b.channels = calloc((size_t)b.connections, sizeof(pw_channel *));
    for (int i = 0; i < b.connections; i++) {
        if (pw_channel_new(&b.channels[i], &b.loop, target, NULL) != PW_OK) {
            fprintf(stderr, "pwbench: bad target %s\n", target);
            return 2;
        }
    }
    b.start_ns = uv_hrtime();
    b.measure_from_ns = b.start_ns + (uint64_t)(warmup * 1e9);
    b.end_ns = b.measure_from_ns + (uint64_t)(duration * 1e9);
    uv_timer_init(&b.loop, &b.ticker);
    uv_timer_init(&b.loop, &b.stopper);
    b.ticker.data = b.stopper.data = &b;
    if (b.rate > 0) {
        uv_timer_start(&b.ticker, tick, 0, 1);
    } else {
        for (int c = 0; c < b.connections; c++) {
            for (int i = 0; i < b.concurrency; i++) {
                start_call(&b, c, b.start_ns);
            }
        }
    }
    uv_timer_start(&b.stopper, stop, (uint64_t)((warmup + duration) * 1000), 0);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);

    uint64_t ok = b.codes[PW_OK];
    printf("pwbench: %s %s, %d connections x %d, %.1f s%s\n", target, b.method, b.connections,
           b.concurrency, duration, b.rate ? " (fixed rate)" : "");
    printf("requests: %llu finished, %llu ok, %llu not ok\n", (unsigned long long)b.finished,
           (unsigned long long)ok, (unsigned long long)(b.finished - ok));
    for (int c = 1; c <= PW_STATUS_MAX; c++) {
        if (b.codes[c] > 0) {
            printf("  %s: %llu\n", pw_status_str(c), (unsigned long long)b.codes[c]);
        }
    }
    printf("req/s: %.0f (ok)\n", (double)ok / duration);
    if (b.kind != 0) {
        printf("messages/s: %.0f (responses received)\n", (double)b.messages / duration);
    }
    printf("latency us: p50 %llu p90 %llu p99 %llu p99.9 %llu max %llu\n",
           (unsigned long long)pwb_hist_quantile(&b.hist, 0.50),
           (unsigned long long)pwb_hist_quantile(&b.hist, 0.90),
           (unsigned long long)pwb_hist_quantile(&b.hist, 0.99),
           (unsigned long long)pwb_hist_quantile(&b.hist, 0.999), (unsigned long long)b.hist.max);
    free(b.channels);
    return b.finished > 0 && ok == b.finished ? 0 : 1;
}
