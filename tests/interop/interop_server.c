/*
 * paywire-interop-server: grpc.testing.TestService as gRPC's interop test
 * descriptions require, on the paywire runtime. UnimplementedCall and
 * UnimplementedService are deliberately not registered, so the runtime answers
 * UNIMPLEMENTED. Flags: --port=N [--use_tls --tls_cert=PEM --tls_key=PEM
 * --tls_ca=PEM (mutual TLS)] [--host=127.0.0.1].
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "interop_common.h"
#include "src/proto/grpc/testing/test.pw.h"
#include <paywire/builtins.h>
#include <paywire/json.h>
#include <paywire/trace.h>
#include <paywire/errors.h>
#include <paywire/metrics.h>

#define ECHO_INITIAL  "x-grpc-test-echo-initial"
#define ECHO_TRAILING "x-grpc-test-echo-trailing-bin"

/* Copies the echo metadata the interop spec asks for onto the response. */
static void echo_metadata(pw_call *call)
{
    const pw_metadata *md = pw_call_metadata(call);
    const pw_metadata_entry *e = pw_metadata_get(md, ECHO_INITIAL);
    if (e != NULL) {
        pw_call_add_initial_metadata(call, ECHO_INITIAL, e->value, e->value_len);
    }
    e = pw_metadata_get(md, ECHO_TRAILING);
    if (e != NULL) {
        pw_call_add_trailing_metadata(call, ECHO_TRAILING, e->value, e->value_len);
    }
}

/*
 * A requested status (EchoStatus) ends the call; returns 1 when it did. With
 * request metadata x-paywire-test-details, the status carries rich details
 * (google.rpc.BadRequest) for standard clients to decode.
 */
static int finish_with_requested_status(pw_call *call, const Grpc__Testing__EchoStatus *st)
{
    if (st == NULL || st->code == 0) {
        return 0;
    }
    if (pw_metadata_get(pw_call_metadata(call), "x-paywire-test-details") != NULL) {
        pw_error_details d = {0};
        pw_error_add_violation(&d, "response_size", "must not be negative");
        pw_error_set_info(&d, "TEST_DETAILS", "interop.paywire");
        pw_call_finish_details(call, st->code, &d, "%s", st->message ? st->message : "");
        pw_error_details_clear(&d);
        return 1;
    }
    pw_call_finish(call, st->code, "%s", st->message ? st->message : "");
    return 1;
}

/*
 * expect_compressed: the interop spec's probe of the message's compressed
 * flag, per message. True: this request must have arrived compressed; false:
 * it must not have. Finishes the call with INVALID_ARGUMENT and returns 1 when
 * the expectation is not met.
 */
static int check_compression(pw_call *call, const Grpc__Testing__BoolValue *expect)
{
    if (expect == NULL || expect->value == pw_call_request_compressed(call)) {
        return 0;
    }
    pw_call_finish(call, PW_INVALID_ARGUMENT,
                   expect->value ? "expected a compressed request"
                                 : "expected an uncompressed request, the compressed flag is set");
    return 1;
}

static void empty_call(pw_call *call, const Grpc__Testing__Empty *req, void *ud)
{
    (void)ud;
    (void)req;
    Grpc__Testing__Empty reply = GRPC__TESTING__EMPTY__INIT;
    echo_metadata(call);
    grpc_testing_test_service_empty_call_reply(call, &reply);
}

static void unary_call(pw_call *call, const Grpc__Testing__SimpleRequest *req, void *ud)
{
    (void)ud;
    echo_metadata(call);
    if (check_compression(call, req->expect_compressed) ||
        finish_with_requested_status(call, req->response_status)) {
        return;
    }
    if (req->response_compressed != NULL && req->response_compressed->value) {
        pw_call_set_compression(call, PW_COMPRESSION_GZIP);
    }
    if (req->response_size < 0) {
        pw_call_finish(call, PW_INVALID_ARGUMENT, "response_size must not be negative");
        return;
    }
    Grpc__Testing__SimpleResponse reply = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    Grpc__Testing__Payload payload;
    if (pw_interop_payload(&payload, (size_t)req->response_size) != PW_OK) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    reply.payload = &payload;
    grpc_testing_test_service_unary_call_reply(call, &reply);
    pw_free(payload.body.data);
}

/*
 * Streaming responder: sends one response per ResponseParameters, waiting
 * interval_us before each and pausing while the call is not writable. Shared by
 * StreamingOutputCall, FullDuplexCall and HalfDuplexCall.
 */
typedef struct responder {
    pw_call *call;
    uv_timer_t timer;
    int32_t *sizes;
    int32_t *intervals;
    /* Per response: 1 compressed, 0 not (ResponseParameters.compressed), -1 as the call goes. */
    int8_t *compressed;
    size_t count;
    size_t next;
    int half_closed;
    int finished;
    int timer_active;
    pw_status final_code;
    char *final_msg;
} responder;

static void responder_pump(responder *r);

static void responder_timer_closed(uv_handle_t *h)
{
    responder *r = h->data;
    pw_free(r->sizes);
    pw_free(r->intervals);
    pw_free(r->compressed);
    pw_free(r->final_msg);
    pw_free(r);
}

static void responder_finish(responder *r, pw_status code, const char *msg)
{
    if (r->finished) {
        return;
    }
    r->finished = 1;
    pw_call_finish(r->call, code, "%s", msg ? msg : "");
    uv_close((uv_handle_t *)&r->timer, responder_timer_closed);
}

static void responder_timer_fired(uv_timer_t *t)
{
    responder *r = t->data;
    r->timer_active = 0;
    responder_pump(r);
}

static int responder_send_one(responder *r)
{
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    Grpc__Testing__Payload payload;
    if (pw_interop_payload(&payload, (size_t)r->sizes[r->next]) != PW_OK) {
        responder_finish(r, PW_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
    }
    resp.payload = &payload;
    /* The three streaming-response methods share one response type. */
    uint32_t flags = r->compressed[r->next] == 0 ? PW_WRITE_NO_COMPRESS : 0;
    pw_status rv = grpc_testing_test_service_full_duplex_call_send_flags(r->call, &resp, flags);
    pw_free(payload.body.data);
    if (rv != PW_OK) {
        responder_finish(r, rv, "send failed");
        return 0;
    }
    r->next++;
    return 1;
}

static void responder_pump(responder *r)
{
    while (!r->finished && !r->timer_active && r->next < r->count) {
        if (!pw_call_writable(r->call)) {
            return; /* on_write_ready resumes */
        }
        if (r->intervals[r->next] > 0) {
            int32_t us = r->intervals[r->next];
            r->intervals[r->next] = 0;
            r->timer_active = 1;
            uv_timer_start(&r->timer, responder_timer_fired, ((uint64_t)us + 999) / 1000, 0);
            return;
        }
        if (!responder_send_one(r)) {
            return;
        }
    }
    if (!r->finished && r->next == r->count && r->half_closed) {
        responder_finish(r, r->final_code, r->final_msg);
    }
}

static pw_status responder_add(responder *r, const Grpc__Testing__StreamingOutputCallRequest *req)
{
    size_t n = r->count + req->n_response_parameters;
    int32_t *sizes = pw_realloc(r->sizes, (n ? n : 1) * sizeof(int32_t));
    if (sizes == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    r->sizes = sizes;
    int32_t *intervals = pw_realloc(r->intervals, (n ? n : 1) * sizeof(int32_t));
    if (intervals == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    r->intervals = intervals;
    int8_t *compressed = pw_realloc(r->compressed, n ? n : 1);
    if (compressed == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    r->compressed = compressed;
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        const Grpc__Testing__ResponseParameters *p = req->response_parameters[i];
        if (p->size < 0) {
            return PW_INVALID_ARGUMENT;
        }
        r->sizes[r->count + i] = p->size;
        r->intervals[r->count + i] = p->interval_us;
        r->compressed[r->count + i] =
            p->compressed != NULL ? (int8_t)(p->compressed->value != 0) : -1;
        if (p->compressed != NULL) {
            /* As gRPC's interop server: gzip for the call, messages opt out one by one. */
            pw_call_set_compression(r->call, PW_COMPRESSION_GZIP);
        }
    }
    r->count = n;
    return PW_OK;
}

static responder *responder_new(pw_call *call)
{
    responder *r = pw_calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->call = call;
    uv_timer_init(pw_call_loop(call), &r->timer);
    r->timer.data = r;
    return r;
}

static void responder_on_write_ready(pw_call *call, void *ud)
{
    (void)call;
    responder_pump(ud);
}

static void responder_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)call;
    responder_finish(ud, why, "cancelled");
}

/* Handles one streaming request: a requested status ends the call. */
static void responder_on_request(responder *r, const Grpc__Testing__StreamingOutputCallRequest *req,
                                 int pump)
{
    if (req->response_status != NULL && req->response_status->code != 0) {
        /* Send what was asked so far, then the requested status. */
        r->final_code = req->response_status->code;
        pw_free(r->final_msg);
        r->final_msg = pw_strdup(req->response_status->message);
        r->half_closed = 1;
    }
    if (responder_add(r, req) != PW_OK) {
        responder_finish(r, PW_INVALID_ARGUMENT, "invalid response parameters");
        return;
    }
    if (pump) {
        responder_pump(r);
    }
}

static void full_duplex_on_message(pw_call *call,
                                   const Grpc__Testing__StreamingOutputCallRequest *req, void *ud)
{
    (void)call;
    responder *r = ud;
    if (!r->finished) {
        responder_on_request(r, req, 1);
    }
}

static void half_duplex_on_message(pw_call *call,
                                   const Grpc__Testing__StreamingOutputCallRequest *req, void *ud)
{
    (void)call;
    responder *r = ud;
    if (!r->finished) {
        responder_on_request(r, req, 0);
    }
}

static void responder_on_half_close(pw_call *call, void *ud)
{
    (void)call;
    responder *r = ud;
    r->half_closed = 1;
    responder_pump(r);
}

static const grpc_testing_test_service_full_duplex_call_ops full_duplex_ops = {
    .on_message = full_duplex_on_message,
    .on_half_close = responder_on_half_close,
    .on_write_ready = responder_on_write_ready,
    .on_cancel = responder_on_cancel,
};

static const grpc_testing_test_service_half_duplex_call_ops half_duplex_ops = {
    .on_message = half_duplex_on_message,
    .on_half_close = responder_on_half_close,
    .on_write_ready = responder_on_write_ready,
    .on_cancel = responder_on_cancel,
};

static const pw_call_ops server_stream_ops = {
    .on_message = NULL,
    .on_half_close = NULL,
    .on_write_ready = responder_on_write_ready,
    .on_cancel = responder_on_cancel,
};

static responder *start_responder(pw_call *call)
{
    responder *r = responder_new(call);
    if (r == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    echo_metadata(call);
    return r;
}

static void full_duplex_call(pw_call *call, void *ud)
{
    (void)ud;
    responder *r = start_responder(call);
    if (r != NULL &&
        grpc_testing_test_service_full_duplex_call_recv(call, &full_duplex_ops, r) != PW_OK) {
        responder_finish(r, PW_RESOURCE_EXHAUSTED, "out of memory");
    }
}

static void half_duplex_call(pw_call *call, void *ud)
{
    (void)ud;
    responder *r = start_responder(call);
    if (r != NULL &&
        grpc_testing_test_service_half_duplex_call_recv(call, &half_duplex_ops, r) != PW_OK) {
        responder_finish(r, PW_RESOURCE_EXHAUSTED, "out of memory");
    }
}

static void streaming_output_call(pw_call *call,
                                  const Grpc__Testing__StreamingOutputCallRequest *req, void *ud)
{
    (void)ud;
    responder *r = start_responder(call);
    if (r == NULL) {
        return;
    }
    pw_call_set_ops(call, &server_stream_ops, r);
    r->half_closed = 1;
    responder_on_request(r, req, 1);
}

/* StreamingInputCall: sums payload sizes until half-close; checks each expect_compressed. */
typedef struct input_sum {
    int32_t total;
} input_sum;

static void input_on_message(pw_call *call, const Grpc__Testing__StreamingInputCallRequest *req,
                             void *ud)
{
    input_sum *s = ud;
    if (check_compression(call, req->expect_compressed)) {
        pw_free(s); /* finished: no callback follows */
        return;
    }
    if (req->payload != NULL) {
        s->total += (int32_t)req->payload->body.len;
    }
}

static void input_on_half_close(pw_call *call, void *ud)
{
    input_sum *s = ud;
    Grpc__Testing__StreamingInputCallResponse reply =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    reply.aggregated_payload_size = s->total;
    pw_free(s);
    grpc_testing_test_service_streaming_input_call_reply(call, &reply);
}

static void input_on_cancel(pw_call *call, pw_status why, void *ud)
{
    pw_free(ud);
    pw_call_finish(call, why, "cancelled");
}

static const grpc_testing_test_service_streaming_input_call_ops input_ops = {
    .on_message = input_on_message,
    .on_half_close = input_on_half_close,
    .on_write_ready = NULL,
    .on_cancel = input_on_cancel,
};

static void streaming_input_call(pw_call *call, void *ud)
{
    (void)ud;
    input_sum *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (grpc_testing_test_service_streaming_input_call_recv(call, &input_ops, s) != PW_OK) {
        pw_free(s);
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
    }
}

/* UnimplementedCall stays NULL: the generated code answers UNIMPLEMENTED. */
static const grpc_testing_test_service_handlers handlers = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .cacheable_unary_call = unary_call,
    .streaming_output_call = streaming_output_call,
    .streaming_input_call = streaming_input_call,
    .full_duplex_call = full_duplex_call,
    .half_duplex_call = half_duplex_call,
    .unimplemented_call = NULL,
};

typedef struct app {
    pw_server *server;
    pw_admin *admin;
    pw_metrics *metrics;
    pw_tracer *tracer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
} app;

static void server_closed(pw_server *server, void *ud)
{
    (void)server;
    app *a = ud;
    pw_metrics_close(a->metrics, NULL, NULL);
    pw_tracer_close(a->tracer, NULL, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    app *a = sig->data;
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    pw_admin_close(a->admin, NULL, NULL);
    /* Calls still finishing report to the metrics: free them once the server is closed. */
    pw_server_shutdown(a->server, 30000, server_closed, a);
}

int main(int argc, char **argv)
{
    const char *port = pw_interop_flag(argc, argv, "port", "10000");
    const char *host = pw_interop_flag(argc, argv, "host", "127.0.0.1");
    int use_tls = pw_interop_flag_bool(argc, argv, "use_tls");
    pw_tls_config tls = {
        .cert_file = pw_interop_flag(argc, argv, "tls_cert", NULL),
        .key_file = pw_interop_flag(argc, argv, "tls_key", NULL),
        .ca_file = pw_interop_flag(argc, argv, "tls_ca", NULL),
        .require_client_cert = pw_interop_flag_bool(argc, argv, "require_client_cert"),
    };
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    if (pw_server_new(&server, &loop, NULL) != PW_OK) {
        return 1;
    }
    /* Every paywire server offers health, reflection and JSON over HTTP. */
    pw_health *health;
    if (grpc_testing_test_service_register(server, &handlers, NULL) != PW_OK ||
        pw_health_enable(server, &health) != PW_OK || pw_reflection_enable(server) != PW_OK ||
        pw_json_enable(server) != PW_OK ||
        pw_health_set(health, "grpc.testing.TestService", PW_HEALTH_SERVING) != PW_OK) {
        return 1;
    }
    char address[300];
    snprintf(address, sizeof(address), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    /* Metrics, and with --admin_port the admin endpoint (/metrics, /healthz, ...). */
    pw_metrics *metrics = NULL;
    pw_admin *admin = NULL;
    const char *admin_port = pw_interop_flag(argc, argv, "admin_port", NULL);
    if (pw_metrics_new(&metrics, &loop) != PW_OK ||
        pw_metrics_observe_server(metrics, server) != PW_OK) {
        return 1;
    }
    /* Access logs and traces (exported with --otlp_endpoint=http://host:port/v1/traces). */
    pw_tracer *tracer = NULL;
    if (pw_access_log_enable(server, "interop") != PW_OK ||
        pw_tracer_new(&tracer, &loop, "interop",
                      pw_interop_flag(argc, argv, "otlp_endpoint", NULL)) != PW_OK ||
        pw_tracer_observe_server(tracer, server) != PW_OK) {
        fprintf(stderr, "paywire-interop-server: cannot set up logs and tracing\n");
        return 1;
    }
    if (admin_port != NULL) {
        char admin_address[64];
        snprintf(admin_address, sizeof(admin_address), "127.0.0.1:%s", admin_port);
        if (pw_admin_listen(&admin, &loop, admin_address, metrics, health, server, NULL) != PW_OK) {
            fprintf(stderr, "paywire-interop-server: cannot listen on %s\n", admin_address);
            return 1;
        }
    }
    int bound = 0;
    pw_status rv = pw_server_listen(server, address, use_tls ? &tls : NULL, &bound);
    if (rv != PW_OK) {
        fprintf(stderr, "paywire-interop-server: cannot listen on %s: %s\n", address,
                pw_status_str(rv));
        return 1;
    }
    fprintf(stderr, "paywire-interop-server: listening on %s:%d (%s)\n", host, bound,
            use_tls ? "TLS" : "h2c");
    app a = {.server = server};
    uv_signal_init(&loop, &a.sigterm);
    uv_signal_init(&loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    a.admin = admin;
    a.metrics = metrics;
    a.tracer = tracer;
    uv_run(&loop, UV_RUN_DEFAULT);
    int rv_close = uv_loop_close(&loop);
    fprintf(stderr, "paywire-interop-server: stopped%s\n", rv_close == 0 ? "" : " (handles left)");
    return rv_close == 0 ? 0 : 1;
}
