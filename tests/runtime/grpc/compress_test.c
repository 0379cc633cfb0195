/*
 * Per-message compression (issue 14): gRPC compresses message by message.
 * The call's encoding (grpc-encoding) allows gzip; each message's compressed
 * flag says whether that one is. Checked on the wire with a raw HTTP/2 client
 * (the flags the server writes), and end to end (what handlers and clients
 * are told about each message they receive, async and blocking).
 */
#include <stdlib.h>
#include <string.h>
#include <paywire/paywire.h>
#include "src/proto/grpc/testing/messages.pb-c.h"
#include "pw_test.h"
#include "pw_test_raw.h"

static uint8_t zeros[1000]; /* compressible: gzip makes it far smaller */

static Grpc__Testing__Payload payload(void)
{
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    p.body.data = zeros;
    p.body.len = sizeof(zeros);
    return p;
}

/* The compressed flags the peer saw, message by message. */
typedef struct seen {
    int flags[8];
    int n;
} seen;

static void seen_add(seen *s, int compressed)
{
    if (s->n < 8) {
        s->flags[s->n++] = compressed;
    }
}

/* Two responses on a gzip call: the first compressed, the second with PW_WRITE_NO_COMPRESS. */
static void send_mixed(pw_call *call)
{
    Grpc__Testing__Payload p = payload();
    assert_int_equal(pw_call_send_flags(call, &p.base, 0), PW_OK);
    assert_int_equal(pw_call_send_flags(call, &p.base, PW_WRITE_NO_COMPRESS), PW_OK);
}

static void mixed(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_set_compression(call, PW_COMPRESSION_GZIP);
    send_mixed(call);
    pw_call_finish(call, PW_OK, NULL);
}

/* Bidi: records each request's flag, answers like mixed at the half-close. */
static seen server_seen;

static void flags_on_message(pw_call *call, pw_slice msg, void *ud)
{
    (void)msg;
    (void)ud;
    seen_add(&server_seen, pw_call_request_compressed(call));
}

static void flags_on_half_close(pw_call *call, void *ud)
{
    (void)ud;
    send_mixed(call);
    pw_call_finish(call, PW_OK, NULL);
}

static void flags_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops flags_ops = {
    .on_message = flags_on_message,
    .on_half_close = flags_on_half_close,
    .on_cancel = flags_on_cancel,
};

static void flags(pw_call *call, void *ud)
{
    pw_call_set_compression(call, PW_COMPRESSION_GZIP);
    pw_call_set_ops(call, &flags_ops, ud);
}

static const pw_method methods[] = {
    {.path = "/test.Svc/Mixed", .kind = PW_METHOD_SERVER_STREAMING, .handler = mixed},
    {.path = "/test.Svc/Flags", .kind = PW_METHOD_BIDI_STREAMING, .handler = flags},
};

/* ---- on the wire ---- */

typedef struct srv {
    pw_test_thread thread;
    pw_server *server;
    int port;
} srv;

static void srv_setup(pw_test_thread *t)
{
    srv *s = t->user_data;
    assert_int_equal(pw_server_new(&s->server, &t->loop, NULL), PW_OK);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        assert_int_equal(pw_server_add_method(s->server, &methods[i]), PW_OK);
    }
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", NULL, &s->port), PW_OK);
}

static void srv_teardown(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_close(s->server, NULL, NULL);
}

/* The gRPC frames of a response body: each one's flag byte and length. */
static int frames(const pw_test_raw_result *r, int *flag, uint32_t *len, int max)
{
    size_t off = 0;
    int n = 0;
    while (off + 5 <= r->data_kept && n < max) {
        const uint8_t *p = r->data + off;
        flag[n] = p[0];
        len[n] = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        off += 5 + len[n];
        n++;
    }
    return n;
}

static void test_compress_flags_per_message_on_the_wire(void **state)
{
    (void)state;
    srv s = {.thread = {.setup = srv_setup, .teardown = srv_teardown}};
    s.thread.user_data = &s;
    pw_test_thread_start(&s.thread);
    const uint8_t empty_request[5] = {0, 0, 0, 0, 0};
    size_t packed = sizeof(zeros) + 3; /* Payload.body: tag, two-byte length, the bytes */

    pw_test_raw_result r;
    assert_int_equal(pw_test_raw_request(s.port,
                                         pw_test_raw_grpc_headers("/test.Svc/Mixed",
                                                                  "grpc-accept-encoding", "gzip"),
                                         empty_request, 5, 1, 0, 5000, &r),
                     0);
    assert_int_equal(r.grpc_status, 0);
    assert_string_equal(r.grpc_encoding, "gzip");
    int flag[4];
    uint32_t len[4];
    assert_int_equal(frames(&r, flag, len, 4), 2);
    assert_int_equal(flag[0], 1); /* compressed, and much smaller */
    assert_true(len[0] < packed / 4);
    assert_int_equal(flag[1], 0); /* PW_WRITE_NO_COMPRESS: the bytes as they are */
    assert_int_equal(len[1], packed);

    /* A client that accepts no gzip gets neither the encoding nor a set flag. */
    assert_int_equal(pw_test_raw_request(s.port,
                                         pw_test_raw_grpc_headers("/test.Svc/Mixed", NULL, NULL),
                                         empty_request, 5, 1, 0, 5000, &r),
                     0);
    assert_int_equal(r.grpc_status, 0);
    assert_string_equal(r.grpc_encoding, "");
    assert_int_equal(frames(&r, flag, len, 4), 2);
    assert_int_equal(flag[0], 0);
    assert_int_equal(flag[1], 0);
    pw_test_thread_stop(&s.thread);
}

/* ---- end to end: what handlers and clients are told ---- */

static seen client_seen;

static void client_on_message(pw_client_call *c, pw_slice msg, void *ud)
{
    (void)msg;
    (void)ud;
    seen_add(&client_seen, pw_client_call_message_compressed(c));
}

static void client_on_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    assert_int_equal(r->code, PW_OK);
    *(int *)ud = 1;
}

static const pw_client_ops client_ops = {.on_message = client_on_message,
                                         .on_done = client_on_done};

static void expect_seen(const seen *s, int first, int second)
{
    assert_int_equal(s->n, 2);
    assert_int_equal(s->flags[0], first);
    assert_int_equal(s->flags[1], second);
}

static void test_compress_flags_reach_handlers_and_clients(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    pw_channel *ch;
    pw_test_serve(&loop, NULL, methods, 2, NULL, &server, &ch, NULL);
    pw_call_options gzip = {.compression = PW_COMPRESSION_GZIP};
    Grpc__Testing__Payload p = payload();

    /* Async. */
    server_seen = (seen){0};
    client_seen = (seen){0};
    int done = 0;
    pw_client_call *call;
    assert_int_equal(pw_client_call_start(&call, ch, "/test.Svc/Flags", &gzip, &client_ops, &done),
                     PW_OK);
    assert_int_equal(pw_client_call_send_flags(call, &p.base, 0), PW_OK);
    assert_int_equal(pw_client_call_send_flags(call, &p.base, PW_WRITE_NO_COMPRESS), PW_OK);
    pw_client_call_close_send(call);
    pw_test_run_until(&loop, &done, 5000);
    expect_seen(&server_seen, 1, 0);
    expect_seen(&client_seen, 1, 0);

    /* Blocking. */
    server_seen = (seen){0};
    pw_stream *s;
    assert_int_equal(pw_client_call_start_blocking(&s, ch, "/test.Svc/Flags", &gzip), PW_OK);
    assert_int_equal(pw_stream_send_flags(s, &p.base, PW_WRITE_NO_COMPRESS), PW_OK);
    assert_int_equal(pw_stream_send_flags(s, &p.base, 0), PW_OK);
    pw_stream_close_send(s);
    seen stream_seen = {0};
    ProtobufCMessage *m;
    while (pw_stream_recv(s, &grpc__testing__payload__descriptor, &m) == PW_OK && m != NULL) {
        seen_add(&stream_seen, pw_stream_message_compressed(s));
        pw_protobuf_free(m);
    }
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
    expect_seen(&server_seen, 0, 1);
    expect_seen(&stream_seen, 1, 0);
    pw_test_shutdown(&loop, server, ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compress_flags_per_message_on_the_wire),
        cmocka_unit_test(test_compress_flags_reach_handlers_and_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
