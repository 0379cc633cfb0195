/*
 * paywire-bench-echo: bench.v1.Echo on the paywire runtime, for benchmarks.
 *   paywire-bench-echo --port=N [--workers=N]
 * Each worker is a loop on its own thread with its own SO_REUSEPORT listener.
 * Unary echoes the payload; ServerStream sends `count` replies of
 * `payload_size` bytes (respecting back-pressure); BidiStream echoes each
 * message. h2c on 127.0.0.1. SIGTERM/SIGINT stop it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench/v1/echo.pw.h"

static void unary(pw_call *call, const Bench__V1__EchoRequest *req, void *ud)
{
    (void)ud;
    Bench__V1__EchoReply reply = BENCH__V1__ECHO_REPLY__INIT;
    reply.payload = req->payload;
    bench_v1_echo_unary_reply(call, &reply);
}

typedef struct streamer {
    uint32_t left;
    Bench__V1__EchoReply reply;
    uint8_t *payload;
} streamer;

static void stream_pump(pw_call *call, streamer *s)
{
    while (s->left > 0 && pw_call_writable(call)) {
        if (bench_v1_echo_server_stream_send(call, &s->reply) != PW_OK) {
            s->left = 0;
            break;
        }
        s->left--;
    }
    if (s->left == 0 && s->payload != NULL) {
        pw_free(s->payload);
        s->payload = NULL;
        pw_call_finish(call, PW_OK, NULL);
    }
}

static void stream_ready(pw_call *call, void *ud)
{
    stream_pump(call, ud);
}

static void stream_cancel(pw_call *call, pw_status why, void *ud)
{
    streamer *s = ud;
    pw_free(s->payload);
    s->payload = NULL;
    s->left = 0;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops stream_ops = {.on_write_ready = stream_ready, .on_cancel = stream_cancel};

static void server_stream(pw_call *call, const Bench__V1__StreamRequest *req, void *ud)
{
    (void)ud;
    streamer *s = pw_call_alloc(call, sizeof(*s));
    if (s == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    bench__v1__echo_reply__init(&s->reply);
    s->payload = pw_calloc(1, req->payload_size ? req->payload_size : 1);
    s->reply.payload.data = s->payload;
    s->reply.payload.len = req->payload_size;
    s->left = req->count;
    pw_call_set_ops(call, &stream_ops, s);
    if (s->left == 0) {
        pw_free(s->payload);
        s->payload = NULL;
        pw_call_finish(call, PW_OK, NULL);
        return;
    }
    stream_pump(call, s);
}

static void bidi_on_message(pw_call *call, const Bench__V1__EchoRequest *req, void *ud)
{
    (void)ud;
    Bench__V1__EchoReply reply = BENCH__V1__ECHO_REPLY__INIT;
    reply.payload = req->payload;
    bench_v1_echo_bidi_stream_send(call, &reply);
}

static void bidi_on_half_close(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_finish(call, PW_OK, NULL);
}

static void bidi_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    pw_call_finish(call, why, NULL);
}

static const bench_v1_echo_bidi_stream_ops bidi_ops = {
    .on_message = bidi_on_message,
    .on_half_close = bidi_on_half_close,
    .on_cancel = bidi_on_cancel,
};

static void bidi(pw_call *call, void *ud)
{
    if (bench_v1_echo_bidi_stream_recv(call, &bidi_ops, ud) != PW_OK) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
    }
}

static const bench_v1_echo_handlers handlers = {
    .unary = unary,
    .server_stream = server_stream,
    .bidi_stream = bidi,
};

typedef struct app {
    const char *address;
    int workers;
    pw_server *servers[64];
    pw_workers *pool;
    uv_signal_t term;
    uv_signal_t intr;
} app;

static void worker_start(uv_loop_t *loop, int index, void *ud)
{
    app *a = ud;
    pw_server_options o = {.reuse_port = a->workers > 1};
    pw_server_new(&a->servers[index], loop, &o);
    bench_v1_echo_register(a->servers[index], &handlers, NULL);
    pw_status rv = pw_server_listen(a->servers[index], a->address, NULL, NULL);
    if (rv != PW_OK) {
        fprintf(stderr, "paywire-bench-echo: cannot listen on %s: %s\n", a->address,
                pw_status_str(rv));
        exit(1);
    }
}

static void worker_stop(uv_loop_t *loop, int index, void *ud)
{
    (void)loop;
    app *a = ud;
    pw_server_shutdown(a->servers[index], 30000, NULL, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    app *a = sig->data;
    uv_close((uv_handle_t *)&a->term, NULL);
    uv_close((uv_handle_t *)&a->intr, NULL);
    pw_workers_stop(a->pool);
}

int main(int argc, char **argv)
{
    const char *port = "50051";
    app a = {.workers = 1};
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--port=", 7) == 0) {
            port = argv[i] + 7;
        } else if (strncmp(argv[i], "--workers=", 10) == 0) {
            a.workers = atoi(argv[i] + 10);
        }
    }
    if (a.workers < 1 || a.workers > 64) {
        fprintf(stderr, "paywire-bench-echo: --workers must be 1..64\n");
        return 2;
    }
    pw_log_set_level(PW_LOG_WARNING);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%s", port);
    a.address = address;
    if (pw_workers_start(&a.pool, a.workers, worker_start, worker_stop, &a) != PW_OK) {
        return 1;
    }
    /* The main thread only waits for signals; serving happens on the workers. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_signal_init(&loop, &a.term);
    uv_signal_init(&loop, &a.intr);
    a.term.data = a.intr.data = &a;
    uv_signal_start(&a.term, on_signal, SIGTERM);
    uv_signal_start(&a.intr, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    pw_status joined = pw_workers_join(a.pool);
    return uv_loop_close(&loop) == 0 && joined == PW_OK ? 0 : 1;
}
