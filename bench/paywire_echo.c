/*
 * paywire-bench-echo: bench.v1.Echo on the paywire runtime, for benchmarks.
 *   paywire-bench-echo --port=N
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
    pw_server *server;
    uv_signal_t term;
    uv_signal_t intr;
} app;

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    app *a = sig->data;
    uv_close((uv_handle_t *)&a->term, NULL);
    uv_close((uv_handle_t *)&a->intr, NULL);
    pw_server_shutdown(a->server, 30000, NULL, NULL);
}

int main(int argc, char **argv)
{
    const char *port = "50051";
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--port=", 7) == 0) {
            port = argv[i] + 7;
        }
    }
    pw_log_set_level(PW_LOG_WARNING);
    uv_loop_t loop;
    uv_loop_init(&loop);
    app a;
    pw_server_new(&a.server, &loop, NULL);
    bench_v1_echo_register(a.server, &handlers, NULL);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%s", port);
    pw_status rv = pw_server_listen(a.server, address, NULL, NULL);
    if (rv != PW_OK) {
        fprintf(stderr, "paywire-bench-echo: cannot listen on %s: %s\n", address,
                pw_status_str(rv));
        return 1;
    }
    uv_signal_init(&loop, &a.term);
    uv_signal_init(&loop, &a.intr);
    a.term.data = a.intr.data = &a;
    uv_signal_start(&a.term, on_signal, SIGTERM);
    uv_signal_start(&a.intr, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
