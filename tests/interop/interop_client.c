/*
 * paywire-interop-client: runs gRPC's standard interop cases against any
 * TestService server. Flags (gRPC's): --server_host=H --server_port=N
 * --test_case=NAME|all [--use_tls --ca_file=PEM --server_host_override=NAME
 * --client_cert=PEM --client_key=PEM]. Prints one line per case; exits non-zero
 * when any case fails.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "interop_common.h"
#include "src/proto/grpc/testing/test.pw.h"

typedef struct ctx {
    pw_channel *ch;
    char err[512];
} ctx;

#define CHECK(c, cond, ...)                                    \
    do {                                                       \
        if (!(cond)) {                                         \
            snprintf((c)->err, sizeof((c)->err), __VA_ARGS__); \
            return 1;                                          \
        }                                                      \
    } while (0)

static int payload_is_zeros(const Grpc__Testing__Payload *p, size_t len)
{
    if (p == NULL || p->body.len != len) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (p->body.data[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static int case_empty_unary(ctx *c)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    Grpc__Testing__Empty *resp = NULL;
    char *msg = NULL;
    pw_status st = grpc_testing_test_service_empty_call_blocking(c->ch, &req, NULL, &resp, &msg);
    int ok = st == PW_OK && resp != NULL;
    if (!ok) {
        snprintf(c->err, sizeof(c->err), "status %s: %s", pw_status_str(st), msg ? msg : "");
    }
    if (resp != NULL) {
        pw_protobuf_free(&resp->base);
    }
    pw_free(msg);
    return !ok;
}

/* UnaryCall with response_size/payload; optional metadata; checks the payload. */
static int unary_sized(ctx *c, const pw_call_options *opts, pw_status *st_out, char **msg_out,
                       Grpc__Testing__EchoStatus *status)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload payload;
    pw_interop_payload(&payload, status ? 0 : 271828);
    req.response_size = status ? 0 : 314159;
    req.payload = &payload;
    req.response_status = status;
    Grpc__Testing__SimpleResponse *resp = NULL;
    *st_out = grpc_testing_test_service_unary_call_blocking(c->ch, &req, opts, &resp, msg_out);
    pw_free(payload.body.data);
    int bad = 0;
    if (*st_out == PW_OK) {
        bad = !payload_is_zeros(resp->payload, 314159);
        if (bad) {
            snprintf(c->err, sizeof(c->err), "response payload is not 314159 zero bytes");
        }
        pw_protobuf_free(&resp->base);
    }
    return bad;
}

static int case_large_unary(ctx *c)
{
    pw_status st;
    char *msg = NULL;
    int bad = unary_sized(c, NULL, &st, &msg, NULL);
    if (st != PW_OK) {
        snprintf(c->err, sizeof(c->err), "status %s: %s", pw_status_str(st), msg);
        bad = 1;
    }
    pw_free(msg);
    return bad;
}

static int case_client_streaming(ctx *c)
{
    static const size_t sizes[] = {27182, 8, 1828, 45904};
    pw_stream *s;
    CHECK(c,
          grpc_testing_test_service_streaming_input_call_start_blocking(c->ch, NULL, &s) == PW_OK,
          "open failed");
    for (size_t i = 0; i < 4; i++) {
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload payload;
        pw_interop_payload(&payload, sizes[i]);
        req.payload = &payload;
        pw_stream_send(s, &req.base);
        pw_free(payload.body.data);
    }
    pw_stream_close_send(s);
    ProtobufCMessage *resp = NULL;
    pw_stream_recv(s, &grpc__testing__streaming_input_call_response__descriptor, &resp);
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    int32_t total =
        resp != NULL ? ((Grpc__Testing__StreamingInputCallResponse *)resp)->aggregated_payload_size
                     : -1;
    pw_protobuf_free(resp);
    snprintf(c->err, sizeof(c->err), "status %s (%s), aggregated %d", pw_status_str(st), msg,
             total);
    pw_stream_free(s);
    return !(st == PW_OK && total == 74922);
}

/*
 * StreamingOutputCall with n responses of sizes[i] zeros. With compressed
 * (else NULL), response i asks compressed[i] and the compressed flag it came
 * with on the wire must say the same.
 */
static int server_streaming_run(ctx *c, size_t n, const int32_t *sizes, const int *compressed)
{
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters params[4];
    Grpc__Testing__ResponseParameters *pp[4];
    Grpc__Testing__BoolValue flag[4];
    for (size_t i = 0; i < n && i < 4; i++) {
        grpc__testing__response_parameters__init(&params[i]);
        params[i].size = sizes[i];
        if (compressed != NULL) {
            grpc__testing__bool_value__init(&flag[i]);
            flag[i].value = compressed[i];
            params[i].compressed = &flag[i];
        }
        pp[i] = &params[i];
    }
    req.n_response_parameters = n < 4 ? n : 4;
    req.response_parameters = pp;
    pw_stream *s;
    CHECK(c,
          grpc_testing_test_service_streaming_output_call_start_blocking(c->ch, &req, NULL, &s) ==
              PW_OK,
          "open failed");
    size_t got = 0;
    int bad = 0;
    Grpc__Testing__StreamingOutputCallResponse *r;
    while (grpc_testing_test_service_streaming_output_call_stream_recv(s, &r) == PW_OK &&
           r != NULL) {
        if (got >= req.n_response_parameters || !payload_is_zeros(r->payload, (size_t)sizes[got])) {
            bad = 1;
        } else if (compressed != NULL && pw_stream_message_compressed(s) != compressed[got]) {
            bad = 2;
        }
        got++;
        pw_protobuf_free(&r->base);
    }
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    snprintf(c->err, sizeof(c->err), "status %s (%s), %zu responses%s", pw_status_str(st), msg, got,
             bad == 1   ? ", wrong sizes"
             : bad == 2 ? ", a compressed flag is wrong"
                        : "");
    pw_stream_free(s);
    return !(st == PW_OK && got == req.n_response_parameters && !bad);
}

static int case_server_streaming(ctx *c)
{
    static const int32_t sizes[] = {31415, 9, 2653, 58979};
    return server_streaming_run(c, 4, sizes, NULL);
}

static pw_status duplex_send(pw_stream *s, int32_t resp_size, size_t req_size,
                             Grpc__Testing__EchoStatus *status)
{
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters param = GRPC__TESTING__RESPONSE_PARAMETERS__INIT;
    Grpc__Testing__ResponseParameters *pp[1] = {&param};
    Grpc__Testing__Payload payload;
    param.size = resp_size;
    if (resp_size >= 0) {
        req.n_response_parameters = 1;
        req.response_parameters = pp;
    }
    pw_interop_payload(&payload, req_size);
    req.payload = &payload;
    req.response_status = status;
    pw_status rv = grpc_testing_test_service_full_duplex_call_stream_send(s, &req);
    pw_free(payload.body.data);
    return rv;
}

static int duplex_recv_size(pw_stream *s, size_t want)
{
    Grpc__Testing__StreamingOutputCallResponse *m;
    if (grpc_testing_test_service_full_duplex_call_stream_recv(s, &m) != PW_OK || m == NULL) {
        return 0;
    }
    int ok = payload_is_zeros(m->payload, want);
    pw_protobuf_free(&m->base);
    return ok;
}

/* 1 when another message (or an undecodable one) came before the end of the stream. */
static int duplex_more(pw_stream *s)
{
    Grpc__Testing__StreamingOutputCallResponse *m;
    pw_status rv = grpc_testing_test_service_full_duplex_call_stream_recv(s, &m);
    int more = rv != PW_OK || m != NULL;
    if (m != NULL) {
        pw_protobuf_free(&m->base);
    }
    return more;
}

static int case_ping_pong(ctx *c)
{
    static const int32_t resp[] = {31415, 9, 2653, 58979};
    static const size_t reqs[] = {27182, 8, 1828, 45904};
    pw_stream *s;
    CHECK(c, grpc_testing_test_service_full_duplex_call_start_blocking(c->ch, NULL, &s) == PW_OK,
          "open failed");
    int bad = 0;
    for (int i = 0; i < 4 && !bad; i++) {
        duplex_send(s, resp[i], reqs[i], NULL);
        if (!duplex_recv_size(s, (size_t)resp[i])) {
            bad = i + 1;
        }
    }
    pw_stream_close_send(s);
    int extra = duplex_more(s);
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    snprintf(c->err, sizeof(c->err), "status %s (%s), failed at exchange %d, extra %d",
             pw_status_str(st), msg, bad, extra);
    pw_stream_free(s);
    return !(st == PW_OK && bad == 0 && extra == 0);
}

static int case_empty_stream(ctx *c)
{
    pw_stream *s;
    CHECK(c, grpc_testing_test_service_full_duplex_call_start_blocking(c->ch, NULL, &s) == PW_OK,
          "open failed");
    pw_stream_close_send(s);
    int got = duplex_more(s);
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    snprintf(c->err, sizeof(c->err), "status %s (%s), got %d", pw_status_str(st), msg, got);
    pw_stream_free(s);
    return !(st == PW_OK && got == 0);
}

static const uint8_t trailing_bin[] = {0xab, 0xab, 0xab};
#define INITIAL_VALUE "test_initial_metadata_value"

static int check_echo(ctx *c, const pw_metadata *initial, const pw_metadata *trailing)
{
    const pw_metadata_entry *e = pw_metadata_get(initial, "x-grpc-test-echo-initial");
    CHECK(c,
          e && e->value_len == strlen(INITIAL_VALUE) &&
              !memcmp(e->value, INITIAL_VALUE, e->value_len),
          "initial metadata not echoed");
    e = pw_metadata_get(trailing, "x-grpc-test-echo-trailing-bin");
    CHECK(c, e && e->value_len == 3 && !memcmp(e->value, trailing_bin, 3),
          "trailing binary metadata not echoed");
    return 0;
}

typedef struct echo_result {
    ctx *c;
    int done;
    int bad;
} echo_result;

static void on_echo_done(const Grpc__Testing__SimpleResponse *resp, const pw_result *r, void *ud)
{
    echo_result *er = ud;
    er->done = 1;
    if (r->code != PW_OK || resp == NULL || !payload_is_zeros(resp->payload, 314159)) {
        snprintf(er->c->err, sizeof(er->c->err), "unary status %s: %s", pw_status_str(r->code),
                 r->message);
        er->bad = 1;
        return;
    }
    er->bad = check_echo(er->c, r->initial_metadata, r->trailing_metadata);
}

static int case_custom_metadata(ctx *c)
{
    pw_metadata md = {0};
    pw_metadata_add_str(&md, "x-grpc-test-echo-initial", INITIAL_VALUE);
    pw_metadata_add(&md, "x-grpc-test-echo-trailing-bin", trailing_bin, 3);
    pw_call_options opts = {.metadata = &md};

    /* Unary, through the typed async client: the result carries both metadata sets. */
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload payload;
    pw_interop_payload(&payload, 271828);
    req.response_size = 314159;
    req.payload = &payload;
    echo_result er = {.c = c};
    pw_status st = grpc_testing_test_service_unary_call(c->ch, &req, &opts, on_echo_done, &er);
    pw_free(payload.body.data);
    while (st == PW_OK && !er.done) {
        uv_run(pw_channel_loop(c->ch), UV_RUN_ONCE);
    }
    int bad = st != PW_OK || er.bad;
    pw_stream *s;
    const pw_metadata *initial;
    const pw_metadata *trailing;
    const char *msg;
    if (!bad) {
        /* Full duplex. */
        CHECK(c,
              grpc_testing_test_service_full_duplex_call_start_blocking(c->ch, &opts, &s) == PW_OK,
              "open failed");
        duplex_send(s, 314159, 271828, NULL);
        pw_stream_close_send(s);
        int ok = duplex_recv_size(s, 314159);
        initial = pw_stream_headers(s);
        st = pw_stream_finish(s, &msg, &trailing);
        bad = st != PW_OK || !ok || check_echo(c, initial, trailing);
        if (st != PW_OK || !ok) {
            snprintf(c->err, sizeof(c->err), "duplex status %s: %s", pw_status_str(st), msg);
        }
        pw_stream_free(s);
    }
    pw_metadata_clear(&md);
    return bad;
}

static int expect_status(ctx *c, const char *what, pw_status st, const char *msg, pw_status want,
                         const char *want_msg)
{
    CHECK(c, st == want && (want_msg == NULL || strcmp(msg, want_msg) == 0),
          "%s: got %s \"%s\", want %s \"%s\"", what, pw_status_str(st), msg, pw_status_str(want),
          want_msg ? want_msg : "");
    return 0;
}

static int status_case(ctx *c, const char *text)
{
    Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
    es.code = 2;
    es.message = (char *)text;
    pw_status st;
    char *msg = NULL;
    unary_sized(c, NULL, &st, &msg, &es);
    int bad = expect_status(c, "unary", st, msg, PW_UNKNOWN, text);
    pw_free(msg);
    if (bad) {
        return 1;
    }
    pw_stream *s;
    CHECK(c, grpc_testing_test_service_full_duplex_call_start_blocking(c->ch, NULL, &s) == PW_OK,
          "open failed");
    duplex_send(s, -1, 0, &es);
    pw_stream_close_send(s);
    const char *m;
    st = pw_stream_finish(s, &m, NULL);
    bad = expect_status(c, "duplex", st, m, PW_UNKNOWN, text);
    pw_stream_free(s);
    return bad;
}

static int case_status_code_and_message(ctx *c)
{
    return status_case(c, "test status message");
}

static int case_special_status_message(ctx *c)
{
    return status_case(c, "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
                          "\xf0\x9f\x98\x88\t\n");
}

static int unimplemented(ctx *c, const char *path)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    Grpc__Testing__Empty *resp = NULL;
    char *msg = NULL;
    pw_status st =
        path == NULL
            ? grpc_testing_test_service_unimplemented_call_blocking(c->ch, &req, NULL, &resp, &msg)
            : grpc_testing_unimplemented_service_unimplemented_call_blocking(c->ch, &req, NULL,
                                                                             &resp, &msg);
    int bad = expect_status(c, "UnimplementedCall", st, msg, PW_UNIMPLEMENTED, NULL);
    if (resp != NULL) {
        pw_protobuf_free(&resp->base);
    }
    pw_free(msg);
    return bad;
}

static int case_unimplemented_method(ctx *c)
{
    return unimplemented(c, NULL);
}

static int case_unimplemented_service(ctx *c)
{
    return unimplemented(c, "UnimplementedService");
}

static int case_cancel_after_begin(ctx *c)
{
    pw_stream *s;
    CHECK(c,
          grpc_testing_test_service_streaming_input_call_start_blocking(c->ch, NULL, &s) == PW_OK,
          "open failed");
    pw_stream_cancel(s);
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    int bad = expect_status(c, "cancel", st, msg, PW_CANCELLED, NULL);
    pw_stream_free(s);
    return bad;
}

static int case_cancel_after_first_response(ctx *c)
{
    pw_stream *s;
    CHECK(c, grpc_testing_test_service_full_duplex_call_start_blocking(c->ch, NULL, &s) == PW_OK,
          "open failed");
    duplex_send(s, 31415, 27182, NULL);
    int ok = duplex_recv_size(s, 31415);
    pw_stream_cancel(s);
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    int bad = !ok || expect_status(c, "cancel", st, msg, PW_CANCELLED, NULL);
    if (!ok) {
        snprintf(c->err, sizeof(c->err), "first response missing");
    }
    pw_stream_free(s);
    return bad;
}

static int case_timeout_on_sleeping_server(ctx *c)
{
    pw_call_options opts = {.timeout_ms = 1};
    pw_stream *s;
    CHECK(c, grpc_testing_test_service_full_duplex_call_start_blocking(c->ch, &opts, &s) == PW_OK,
          "open failed");
    duplex_send(s, -1, 27182, NULL);
    const char *msg;
    pw_status st = pw_stream_finish(s, &msg, NULL);
    int bad = expect_status(c, "timeout", st, msg, PW_DEADLINE_EXCEEDED, NULL);
    pw_stream_free(s);
    return bad;
}

static int case_client_compressed_unary(ctx *c)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__BoolValue expect = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__Payload payload;
    pw_interop_payload(&payload, 271828);
    expect.value = 1;
    req.expect_compressed = &expect;
    req.response_size = 314159;
    req.payload = &payload;
    pw_call_options opts = {.compression = PW_COMPRESSION_GZIP};
    Grpc__Testing__SimpleResponse *resp = NULL;
    char *msg = NULL;
    pw_status st = grpc_testing_test_service_unary_call_blocking(c->ch, &req, &opts, &resp, &msg);
    pw_free(payload.body.data);
    int bad = st != PW_OK || !payload_is_zeros(resp->payload, 314159);
    snprintf(c->err, sizeof(c->err), "status %s: %s", pw_status_str(st), msg ? msg : "");
    if (resp != NULL) {
        pw_protobuf_free(&resp->base);
    }
    pw_free(msg);
    return bad;
}

/*
 * One StreamingInputCall of n requests: sizes[i] bytes, expect_compressed =
 * expect[i], sent compressed when compress[i] (the call is gzip when gzip is
 * set; a message opts out with PW_WRITE_NO_COMPRESS). Returns the status and
 * *total the aggregated size (-1 without a response).
 */
static pw_status compressed_input(ctx *c, int gzip, size_t n, const size_t *sizes,
                                  const int *expect, const int *compress, int32_t *total)
{
    pw_call_options opts = {.compression = gzip ? PW_COMPRESSION_GZIP : PW_COMPRESSION_NONE};
    pw_stream *s;
    *total = -1;
    pw_status st = grpc_testing_test_service_streaming_input_call_start_blocking(c->ch, &opts, &s);
    if (st != PW_OK) {
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__BoolValue want = GRPC__TESTING__BOOL_VALUE__INIT;
        want.value = expect[i];
        req.expect_compressed = &want;
        Grpc__Testing__Payload payload;
        pw_interop_payload(&payload, sizes[i]);
        req.payload = &payload;
        grpc_testing_test_service_streaming_input_call_stream_send_flags(
            s, &req, compress[i] ? 0 : PW_WRITE_NO_COMPRESS);
        pw_free(payload.body.data);
    }
    pw_stream_close_send(s);
    Grpc__Testing__StreamingInputCallResponse *resp = NULL;
    grpc_testing_test_service_streaming_input_call_stream_recv(s, &resp);
    const char *msg;
    st = pw_stream_finish(s, &msg, NULL);
    if (resp != NULL) {
        *total = resp->aggregated_payload_size;
        pw_protobuf_free(&resp->base);
    }
    snprintf(c->err, sizeof(c->err), "status %s (%s), aggregated %d", pw_status_str(st), msg,
             *total);
    pw_stream_free(s);
    return st;
}

/*
 * gRPC's client_compressed_streaming: first a probe (an uncompressed message
 * that expects compression must be refused), then a compressed message and an
 * uncompressed one on one call, each flagged as it really is.
 */
static int case_client_compressed_streaming(ctx *c)
{
    static const size_t probe_size[] = {27182};
    static const int yes[] = {1}, no[] = {0};
    int32_t total;
    pw_status st = compressed_input(c, 0, 1, probe_size, yes, no, &total);
    if (st != PW_INVALID_ARGUMENT) {
        char why[sizeof(c->err)];
        memcpy(why, c->err, sizeof(why));
        snprintf(c->err, sizeof(c->err), "probe: want INVALID_ARGUMENT, got %.400s", why);
        return 1;
    }
    static const size_t sizes[] = {27182, 45904};
    static const int expect[] = {1, 0};
    st = compressed_input(c, 1, 2, sizes, expect, expect, &total);
    return !(st == PW_OK && total == 73086);
}

/*
 * gRPC's server_compressed_streaming: the server compresses the first
 * response and not the second; the compressed flag of each is checked as it
 * came on the wire.
 */
static int case_server_compressed_streaming(ctx *c)
{
    static const int32_t sizes[] = {31415, 92653};
    static const int compressed[] = {1, 0};
    return server_streaming_run(c, 2, sizes, compressed);
}

/* The server compresses its response; we must inflate it. */
static int case_server_compressed_unary(ctx *c)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__BoolValue compressed = GRPC__TESTING__BOOL_VALUE__INIT;
    compressed.value = 1;
    req.response_compressed = &compressed;
    req.response_size = 314159;
    Grpc__Testing__SimpleResponse *resp = NULL;
    char *msg = NULL;
    pw_status st = grpc_testing_test_service_unary_call_blocking(c->ch, &req, NULL, &resp, &msg);
    int bad = st != PW_OK || !payload_is_zeros(resp->payload, 314159);
    snprintf(c->err, sizeof(c->err), "status %s: %s", pw_status_str(st), msg ? msg : "");
    if (resp != NULL) {
        pw_protobuf_free(&resp->base);
    }
    pw_free(msg);
    return bad;
}

typedef struct test_case {
    const char *name;
    int (*run)(ctx *c);
} test_case;

static const test_case cases[] = {
    {"empty_unary", case_empty_unary},
    {"large_unary", case_large_unary},
    {"client_streaming", case_client_streaming},
    {"server_streaming", case_server_streaming},
    {"ping_pong", case_ping_pong},
    {"empty_stream", case_empty_stream},
    {"custom_metadata", case_custom_metadata},
    {"status_code_and_message", case_status_code_and_message},
    {"special_status_message", case_special_status_message},
    {"unimplemented_method", case_unimplemented_method},
    {"unimplemented_service", case_unimplemented_service},
    {"cancel_after_begin", case_cancel_after_begin},
    {"cancel_after_first_response", case_cancel_after_first_response},
    {"timeout_on_sleeping_server", case_timeout_on_sleeping_server},
    {"client_compressed_unary", case_client_compressed_unary},
    {"client_compressed_streaming", case_client_compressed_streaming},
    {"server_compressed_unary", case_server_compressed_unary},
    {"server_compressed_streaming", case_server_compressed_streaming},
};

static void channel_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    *(int *)ud = 1;
}

int main(int argc, char **argv)
{
    const char *host = pw_interop_flag(argc, argv, "server_host", "127.0.0.1");
    const char *port = pw_interop_flag(argc, argv, "server_port", "10000");
    const char *which = pw_interop_flag(argc, argv, "test_case", "all");
    int use_tls = pw_interop_flag_bool(argc, argv, "use_tls");
    pw_tls_config tls = {
        .ca_file = pw_interop_flag(argc, argv, "ca_file", NULL),
        .server_name_override = pw_interop_flag(argc, argv, "server_host_override", NULL),
        .cert_file = pw_interop_flag(argc, argv, "client_cert", NULL),
        .key_file = pw_interop_flag(argc, argv, "client_key", NULL),
    };
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[300];
    snprintf(target, sizeof(target), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    pw_channel_options copts = {.tls = use_tls ? &tls : NULL, .backoff_initial_ms = 100};
    ctx c = {0};
    if (pw_channel_new(&c.ch, &loop, target, &copts) != PW_OK) {
        fprintf(stderr, "paywire-interop-client: bad target or TLS files for %s\n", target);
        return 2;
    }
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, cases[i].name) != 0) {
            continue;
        }
        ran++;
        c.err[0] = '\0';
        int bad = cases[i].run(&c);
        failed += bad;
        printf("%s %s%s%s\n", bad ? "FAIL" : "PASS", cases[i].name, bad ? ": " : "",
               bad ? c.err : "");
        fflush(stdout);
    }
    int closed = 0;
    pw_channel_close(c.ch, channel_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    int leak = uv_loop_close(&loop);
    if (ran == 0) {
        fprintf(stderr, "paywire-interop-client: unknown test case %s\n", which);
        return 2;
    }
    printf("%d passed, %d failed\n", ran - failed, failed);
    return failed || leak || !closed ? 1 : 0;
}
