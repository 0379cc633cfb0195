/*
 * Malformed input against a real server on its own thread: each request gets
 * the right status or reset, and the server keeps serving (a valid call is
 * checked after each case).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/paywire.h>
#include "grpc/wire.h"
#include "grpc/compress.h"
#include "pw_test.h"
#include "pw_test_raw.h"

typedef struct srv {
    pw_test_thread thread;
    pw_server *server;
    int port;
    atomic_int cancels;
    atomic_int deadline_cancels;
} srv;

static void echo(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_send_bytes(call, pw_call_request_bytes(call));
    pw_call_finish(call, PW_OK, NULL);
}

static void never_on_cancel(pw_call *call, pw_status why, void *ud)
{
    srv *s = ud;
    atomic_fetch_add(&s->cancels, 1);
    if (why == PW_DEADLINE_EXCEEDED) {
        atomic_fetch_add(&s->deadline_cancels, 1);
    }
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops never_ops = {.on_cancel = never_on_cancel};

static void never(pw_call *call, void *ud)
{
    pw_call_set_ops(call, &never_ops, ud);
}

static pw_method methods[] = {
    {.path = "/test.Svc/Echo",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = echo,
     .user_data = NULL},
    {.path = "/test.Svc/Never",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = never,
     .user_data = NULL},
    {.path = "/test.Svc/Stream",
     .kind = PW_METHOD_BIDI_STREAMING,
     .request_type = NULL,
     .response_type = NULL,
     .handler = never,
     .user_data = NULL},
};

static void srv_setup(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_options o = {.max_recv_message_size = 65536};
    assert_int_equal(pw_server_new(&s->server, &t->loop, &o), PW_OK);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        methods[i].user_data = s;
        pw_server_add_method(s->server, &methods[i]);
    }
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", NULL, &s->port), PW_OK);
}

static void srv_teardown(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_close(s->server, NULL, NULL);
}

static int setup(void **state)
{
    srv *s = calloc(1, sizeof(*s));
    s->thread.setup = srv_setup;
    s->thread.teardown = srv_teardown;
    s->thread.user_data = s;
    pw_test_thread_start(&s->thread);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    srv *s = *state;
    pw_test_thread_stop(&s->thread);
    free(s);
    return 0;
}

static size_t frame(uint8_t *out, int flag, uint32_t declared, const char *payload, size_t len)
{
    pw__frame_prefix(out, flag, declared);
    memcpy(out + 5, payload, len);
    return 5 + len;
}

/* The server still answers a valid call. */
static void assert_still_serving(srv *s)
{
    uint8_t body[16];
    size_t n = frame(body, 0, 2, "ok", 2);
    pw_test_raw_result r;
    pw_test_raw_request(s->port, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body, n, 1,
                        0, 5000, &r);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(r.grpc_status, 0);
    assert_int_equal(r.data_bytes, n);
}

static void expect_status(srv *s, const char *const *headers, const void *body, size_t len,
                          int grpc_status, const char *msg_part)
{
    pw_test_raw_result r;
    assert_int_equal(pw_test_raw_request(s->port, headers, body, len, 1, 0, 5000, &r), 0);
    assert_true(r.closed);
    assert_int_equal(r.grpc_status, grpc_status);
    if (msg_part != NULL && strstr(r.grpc_message, msg_part) == NULL) {
        fail_msg("grpc-message \"%s\" lacks \"%s\"", r.grpc_message, msg_part);
    }
    assert_still_serving(s);
}

static void test_robustness_truncated_message(void **state)
{
    uint8_t body[32];
    size_t n = frame(body, 0, 100, "only ten b", 10);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body, n,
                  PW_INTERNAL, "truncated");
}

static void test_robustness_length_prefix_over_limit(void **state)
{
    uint8_t body[16];
    size_t n = frame(body, 0, 0x7fffffff, "x", 1);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body, n,
                  PW_RESOURCE_EXHAUSTED, "exceeds the limit of 65536 bytes");
}

static void test_robustness_compressed_without_encoding(void **state)
{
    uint8_t body[16];
    size_t n = frame(body, 1, 3, "abc", 3);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body, n,
                  PW_INTERNAL, "without grpc-encoding");
}

static void test_robustness_bad_flag_byte(void **state)
{
    uint8_t body[16];
    size_t n = frame(body, 0, 3, "abc", 3);
    body[0] = 0x80;
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body, n,
                  PW_INTERNAL, "flag byte");
}

static void test_robustness_bad_base64_metadata(void **state)
{
    uint8_t body[16];
    size_t n = frame(body, 0, 1, "x", 1);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "trace-bin", "!!not base64!!"),
                  body, n, PW_INTERNAL, "trace-bin is not valid base64");
}

static void test_robustness_invalid_timeout(void **state)
{
    uint8_t body[16];
    size_t n = frame(body, 0, 1, "x", 1);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "grpc-timeout", "soon"), body,
                  n, PW_INTERNAL, "invalid grpc-timeout");
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "grpc-timeout", "123456789S"),
                  body, n, PW_INTERNAL, "invalid grpc-timeout");
}

static void test_robustness_wrong_content_type_is_415(void **state)
{
    srv *s = *state;
    pw_test_raw_result r;
    pw_test_raw_request(
        s->port, pw_test_raw_grpc_headers("/test.Svc/Echo", "content-type", "application/json"),
        "{}", 2, 1, 0, 5000, &r);
    assert_int_equal(r.http_status, 415);
    assert_non_null(strstr(r.grpc_message, "content-type"));
    assert_still_serving(s);
}

static void test_robustness_get_is_405(void **state)
{
    srv *s = *state;
    static const char *const h[] = {":method",      "GET",
                                    ":scheme",      "http",
                                    ":path",        "/test.Svc/Echo",
                                    ":authority",   "localhost",
                                    "content-type", "application/grpc",
                                    NULL,           NULL};
    pw_test_raw_result r;
    pw_test_raw_request(s->port, h, NULL, 0, 1, 0, 5000, &r);
    assert_int_equal(r.http_status, 405);
    assert_still_serving(s);
}

static void test_robustness_unary_without_message(void **state)
{
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), NULL, 0,
                  PW_INTERNAL, "without a message");
}

static void test_robustness_two_messages_on_unary(void **state)
{
    uint8_t body[32];
    size_t n = frame(body, 0, 1, "a", 1);
    n += frame(body + n, 0, 1, "b", 1);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body, n,
                  PW_INTERNAL, "more than one request message");
}

/* The server's own deadline: the raw client never cancels. */
static void test_robustness_server_enforces_deadline(void **state)
{
    srv *s = *state;
    uint8_t body[16];
    size_t n = frame(body, 0, 1, "x", 1);
    int before = atomic_load(&s->deadline_cancels);
    pw_test_raw_result r;
    pw_test_raw_request(s->port, pw_test_raw_grpc_headers("/test.Svc/Never", "grpc-timeout", "50m"),
                        body, n, 1, 0, 5000, &r);
    assert_int_equal(r.grpc_status, PW_DEADLINE_EXCEEDED);
    assert_int_equal(atomic_load(&s->deadline_cancels), before + 1);
    assert_still_serving(s);
}

static void test_robustness_peer_vanishes_mid_stream(void **state)
{
    srv *s = *state;
    uint8_t body[16];
    size_t n = frame(body, 0, 10, "half", 4);
    int before = atomic_load(&s->cancels);
    pw_test_raw_result r;
    pw_test_raw_request(s->port, pw_test_raw_grpc_headers("/test.Svc/Stream", NULL, NULL), body, n,
                        0, 1, 5000, &r);
    for (int i = 0; i < 500 && atomic_load(&s->cancels) == before; i++) {
        uv_sleep(10);
    }
    assert_int_equal(atomic_load(&s->cancels), before + 1);
    assert_still_serving(s);
}

static void test_robustness_garbage_instead_of_http2(void **state)
{
    srv *s = *state;
    /* HTTP/1.1 gets an HTTP/1.1 answer (JSON calls only), and connection: close is honoured. */
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    uint8_t got[1024];
    size_t got_len = 0;
    assert_true(
        pw_test_raw_exchange(s->port, get, sizeof(get) - 1, 5000, got, sizeof(got) - 1, &got_len));
    got[got_len] = 0;
    assert_non_null(strstr((const char *)got, "HTTP/1.1 405 Method Not Allowed\r\n"));
    /* Bytes that are neither HTTP/2 nor HTTP/1.1: 400 and the connection closes. */
    static const char junk[] = "\x01\x02 nonsense\r\n\r\n";
    got_len = 0;
    assert_true(pw_test_raw_exchange(s->port, junk, sizeof(junk) - 1, 5000, got, sizeof(got) - 1,
                                     &got_len));
    got[got_len] = 0;
    assert_non_null(strstr((const char *)got, "HTTP/1.1 400 Bad Request\r\n"));
    uint8_t noise[4096];
    for (size_t i = 0; i < sizeof(noise); i++) {
        noise[i] = (uint8_t)(i * 131 + 7);
    }
    assert_true(pw_test_raw_bytes(s->port, noise, sizeof(noise), 5000));
    assert_still_serving(s);
}

static void test_robustness_unknown_encoding_is_unimplemented(void **state)
{
    uint8_t body[16];
    size_t n = frame(body, 1, 3, "abc", 3);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "grpc-encoding", "snappy"),
                  body, n, PW_UNIMPLEMENTED, "not supported (supported: gzip,identity)");
}

/* A 1 KiB message that inflates to 1 MiB stops at the 64 KiB receive limit. */
static void test_robustness_gzip_bomb_stops_at_limit(void **state)
{
    static uint8_t zeros[1 << 20];
    pw_buf z = {0};
    assert_int_equal(pw__gzip_deflate(pw_slice_make(zeros, sizeof(zeros)), &z), PW_OK);
    assert_true(z.len < 4096);
    uint8_t *body = malloc(z.len + 5);
    pw__frame_prefix(body, 1, (uint32_t)z.len);
    memcpy(body + 5, z.data, z.len);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "grpc-encoding", "gzip"), body,
                  z.len + 5, PW_RESOURCE_EXHAUSTED,
                  "decompressed message exceeds the limit of 65536 bytes");
    free(body);
    pw_buf_reset(&z);
}

static void test_robustness_corrupt_gzip_is_internal(void **state)
{
    uint8_t body[32];
    size_t n = frame(body, 1, 12, "\x1f\x8b\x08\x00garbage!", 12);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "grpc-encoding", "gzip"), body,
                  n, PW_INTERNAL, "gzip");
}

/* A real gzip request is inflated and echoed (uncompressed: the client did not accept gzip). */
static void test_robustness_gzip_request_is_inflated(void **state)
{
    srv *s = *state;
    pw_buf z = {0};
    assert_int_equal(pw__gzip_deflate(pw_slice_make("hello gzip", 10), &z), PW_OK);
    uint8_t body[256];
    pw__frame_prefix(body, 1, (uint32_t)z.len);
    memcpy(body + 5, z.data, z.len);
    pw_test_raw_result r;
    pw_test_raw_request(s->port,
                        pw_test_raw_grpc_headers("/test.Svc/Echo", "grpc-encoding", "gzip"), body,
                        z.len + 5, 1, 0, 5000, &r);
    assert_int_equal(r.grpc_status, 0);
    assert_int_equal(r.data_bytes, 5 + 10);
    pw_buf_reset(&z);
}

static void test_robustness_oversized_headers_are_resource_exhausted(void **state)
{
    static char big[20000];
    memset(big, 'a', sizeof(big) - 1);
    uint8_t body[16];
    size_t n = frame(body, 0, 1, "x", 1);
    expect_status(*state, pw_test_raw_grpc_headers("/test.Svc/Echo", "x-big", big), body, n,
                  PW_RESOURCE_EXHAUSTED, "request headers exceed 16384 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_robustness_truncated_message),
        cmocka_unit_test(test_robustness_length_prefix_over_limit),
        cmocka_unit_test(test_robustness_compressed_without_encoding),
        cmocka_unit_test(test_robustness_bad_flag_byte),
        cmocka_unit_test(test_robustness_bad_base64_metadata),
        cmocka_unit_test(test_robustness_invalid_timeout),
        cmocka_unit_test(test_robustness_wrong_content_type_is_415),
        cmocka_unit_test(test_robustness_get_is_405),
        cmocka_unit_test(test_robustness_unary_without_message),
        cmocka_unit_test(test_robustness_two_messages_on_unary),
        cmocka_unit_test(test_robustness_server_enforces_deadline),
        cmocka_unit_test(test_robustness_peer_vanishes_mid_stream),
        cmocka_unit_test(test_robustness_garbage_instead_of_http2),
        cmocka_unit_test(test_robustness_unknown_encoding_is_unimplemented),
        cmocka_unit_test(test_robustness_gzip_bomb_stops_at_limit),
        cmocka_unit_test(test_robustness_corrupt_gzip_is_internal),
        cmocka_unit_test(test_robustness_gzip_request_is_inflated),
        cmocka_unit_test(test_robustness_oversized_headers_are_resource_exhausted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
