/* Server and server-call behaviour, against paywire's own client on one loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <paywire/paywire.h>
#include "src/proto/grpc/testing/messages.pb-c.h"
#include "pw_test.h"

typedef struct fixture {
    uv_loop_t loop;
    pw_server *server;
    pw_channel *ch;
    int port;
    /* What handlers saw. */
    int cancels;
    pw_status cancel_why;
    int64_t remaining_ms;
    pw_call *held;
    uv_timer_t timer;
    pw_test_call child;
    pw_channel *self;
} fixture;

static void echo(pw_call *call, void *ud)
{
    (void)ud;
    const pw_metadata_entry *e = pw_metadata_get(pw_call_metadata(call), "x-echo");
    if (e != NULL) {
        pw_call_add_initial_metadata(call, "x-echo", e->value, e->value_len);
    }
    e = pw_metadata_get(pw_call_metadata(call), "x-echo-bin");
    if (e != NULL) {
        pw_call_add_trailing_metadata(call, "x-echo-bin", e->value, e->value_len);
    }
    pw_status rv = pw_call_send_bytes(call, pw_call_request_bytes(call));
    pw_call_finish(call, rv, rv == PW_OK ? NULL : "send failed");
}

static void fail_not_found(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_finish(call, PW_NOT_FOUND, "merchant %s not found", "m_123");
}

static void later_fired(uv_timer_t *t)
{
    fixture *f = t->data;
    pw_call *call = f->held;
    f->held = NULL;
    pw_call_send_bytes(call, pw_slice_make("later", 5));
    pw_call_finish(call, PW_OK, NULL);
}

static void answer_later(pw_call *call, void *ud)
{
    fixture *f = ud;
    f->held = call;
    uv_timer_start(&f->timer, later_fired, 20, 0);
}

static void never_on_cancel(pw_call *call, pw_status why, void *ud)
{
    fixture *f = ud;
    f->cancels++;
    f->cancel_why = why;
    f->held = NULL;
    pw_call_finish(call, why, "stopped");
}

static const pw_call_ops never_ops = {.on_cancel = never_on_cancel};

static void never(pw_call *call, void *ud)
{
    fixture *f = ud;
    f->remaining_ms = pw_call_remaining_ms(call);
    f->held = call;
    pw_call_set_ops(call, &never_ops, f);
}

static void typed(pw_call *call, void *ud)
{
    (void)ud;
    const Grpc__Testing__SimpleRequest *req = (const void *)pw_call_request(call);
    pw_call_finish(call, PW_OK, "size %d", req->response_size);
}

/* Calls Never on this same server as a child of the current call. */
static void relay(pw_call *call, void *ud)
{
    fixture *f = ud;
    pw_call_options opts = {.parent = call};
    f->held = call;
    pw_test_call_start(f->self, "/test.Svc/Never", &opts, "x", 1, &f->child, NULL);
    pw_call_set_ops(call, &never_ops, f);
}

static pw_method methods[] = {
    {.path = "/test.Svc/Echo",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = echo,
     .user_data = NULL},
    {.path = "/test.Svc/Fail",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = fail_not_found,
     .user_data = NULL},
    {.path = "/test.Svc/Later",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = answer_later,
     .user_data = NULL},
    {.path = "/test.Svc/Never",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = never,
     .user_data = NULL},
    {.path = "/test.Svc/Typed",
     .kind = PW_METHOD_UNARY,
     .request_type = &grpc__testing__simple_request__descriptor,
     .response_type = NULL,
     .handler = typed,
     .user_data = NULL},
    {.path = "/test.Svc/Relay",
     .kind = PW_METHOD_UNARY,
     .request_type = NULL,
     .response_type = NULL,
     .handler = relay,
     .user_data = NULL},
};

static fixture *fixture_new(const char *address, const pw_server_options *opts)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
    assert_int_equal(pw_server_new(&f->server, &f->loop, opts), PW_OK);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        pw_method *m = &methods[i];
        m->user_data = f;
        assert_int_equal(pw_server_add_method(f->server, m), PW_OK);
    }
    assert_int_equal(pw_server_listen(f->server, address, NULL, &f->port), PW_OK);
    char target[256];
    if (strncmp(address, "unix:", 5) == 0) {
        snprintf(target, sizeof(target), "%s", address);
    } else if (address[0] == '[') {
        snprintf(target, sizeof(target), "[::1]:%d", f->port);
    } else {
        snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    }
    assert_int_equal(pw_channel_new(&f->ch, &f->loop, target, NULL), PW_OK);
    assert_int_equal(pw_channel_new(&f->self, &f->loop, target, NULL), PW_OK);
    return f;
}

static void fixture_free(fixture *f)
{
    uv_close((uv_handle_t *)&f->timer, NULL);
    pw_channel_close(f->self, NULL, NULL);
    pw_test_call_reset(&f->child);
    pw_test_shutdown(&f->loop, f->server, f->ch);
    free(f);
}

static void roundtrip(const char *address)
{
    fixture *f = fixture_new(address, NULL);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, "hello", 5, &r),
                     PW_OK);
    assert_int_equal(r.messages, 1);
    assert_int_equal(pw_buf_pending(&r.last), 5);
    assert_memory_equal(r.last.data, "hello", 5);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_unary_roundtrip_ipv4(void **state)
{
    (void)state;
    roundtrip("127.0.0.1:0");
}

static void test_server_unary_roundtrip_ipv6(void **state)
{
    (void)state;
    roundtrip("[::1]:0");
}

static void test_server_unary_roundtrip_unix(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "unix:/tmp/pw-server-test-%d.sock", (int)getpid());
    unlink(path + 5);
    roundtrip(path);
    unlink(path + 5);
}

static void test_server_unknown_method_and_service(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Nope", NULL, "", 0, &r),
                     PW_UNIMPLEMENTED);
    assert_string_equal(r.message, "unknown method /test.Svc/Nope");
    pw_test_call_reset(&r);
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/other.Svc/X", NULL, "", 0, &r),
                     PW_UNIMPLEMENTED);
    assert_non_null(strstr(r.message, "unknown service"));
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_status_message_and_metadata(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Fail", NULL, "", 0, &r),
                     PW_NOT_FOUND);
    assert_string_equal(r.message, "merchant m_123 not found");
    pw_test_call_reset(&r);

    pw_metadata md = {0};
    const uint8_t bin[] = {0, 0xff, 10, 13};
    pw_metadata_add_str(&md, "x-echo", "ascii value");
    pw_metadata_add(&md, "x-echo-bin", bin, sizeof(bin));
    pw_call_options opts = {.metadata = &md};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", &opts, "x", 1, &r), PW_OK);
    const pw_metadata_entry *e = pw_metadata_get(&r.initial, "x-echo");
    assert_non_null(e);
    assert_string_equal((const char *)e->value, "ascii value");
    e = pw_metadata_get(&r.trailing, "x-echo-bin");
    assert_non_null(e);
    assert_int_equal(e->value_len, sizeof(bin));
    assert_memory_equal(e->value, bin, sizeof(bin));
    pw_metadata_clear(&md);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_handler_answers_later(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Later", NULL, "", 0, &r), PW_OK);
    assert_memory_equal(r.last.data, "later", 5);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_deadline_reaches_handler(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    pw_call_options opts = {.timeout_ms = 100};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Never", &opts, "x", 1, &r),
                     PW_DEADLINE_EXCEEDED);
    assert_true(f->remaining_ms > 0 && f->remaining_ms <= 100);
    /*
     * The handler is told: by the server's own deadline timer, or by the
     * client's RST_STREAM when the client's timer (same deadline) fires first.
     * robustness_test checks the server timer alone with a raw HTTP/2 client.
     */
    pw_test_run_until(&f->loop, &f->cancels, 2000);
    assert_true(f->cancel_why == PW_DEADLINE_EXCEEDED || f->cancel_why == PW_CANCELLED);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_client_cancel_reaches_handler(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    pw_client_call *c;
    assert_int_equal(pw_test_call_start(f->ch, "/test.Svc/Never", NULL, "x", 1, &r, &c), PW_OK);
    while (f->held == NULL) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    pw_client_call_cancel(c);
    pw_test_run_until(&f->loop, &f->cancels, 2000);
    assert_int_equal(f->cancel_why, PW_CANCELLED);
    pw_test_run_until(&f->loop, &r.done, 2000);
    assert_int_equal(r.code, PW_CANCELLED);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_rejects_oversized_request(void **state)
{
    (void)state;
    pw_server_options o = {.max_recv_message_size = 1024};
    fixture *f = fixture_new("127.0.0.1:0", &o);
    static uint8_t big[4096];
    pw_test_call r = {0};
    assert_int_equal(
        pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, big, sizeof(big), &r),
        PW_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(r.message, "exceeds the limit of 1024 bytes"));
    pw_test_call_reset(&r);
    /* The server keeps serving. */
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, "ok", 2, &r), PW_OK);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_undecodable_request_is_internal(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff};
    assert_int_equal(
        pw_test_call_run(&f->loop, f->ch, "/test.Svc/Typed", NULL, garbage, sizeof(garbage), &r),
        PW_INTERNAL);
    assert_non_null(strstr(r.message, "grpc.testing.SimpleRequest"));
    pw_test_call_reset(&r);
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = 42;
    uint8_t buf[16];
    size_t n = protobuf_c_message_pack(&req.base, buf);
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Typed", NULL, buf, n, &r), PW_OK);
    assert_string_equal(r.message, "size 42");
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_child_calls_inherit_deadline_and_cancellation(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    pw_client_call *c;
    pw_call_options opts = {.timeout_ms = 5000};
    assert_int_equal(pw_test_call_start(f->ch, "/test.Svc/Relay", &opts, "x", 1, &r, &c), PW_OK);
    /* Wait until the child reached Never: it saw the inherited deadline. */
    while (f->remaining_ms == 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_true(f->remaining_ms > 0 && f->remaining_ms <= 5000);
    pw_client_call_cancel(c);
    pw_test_run_until(&f->loop, &f->child.done, 2000);
    assert_int_equal(f->child.code, PW_CANCELLED);
    pw_test_run_until(&f->loop, &r.done, 2000);
    pw_test_call_reset(&r);
    fixture_free(f);
}

static void test_server_close_cancels_inflight_calls(void **state)
{
    (void)state;
    fixture *f = fixture_new("127.0.0.1:0", NULL);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_start(f->ch, "/test.Svc/Never", NULL, "x", 1, &r, NULL), PW_OK);
    while (f->held == NULL) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    pw_server_close(f->server, NULL, NULL);
    f->server = NULL;
    pw_test_run_until(&f->loop, &f->cancels, 2000);
    pw_test_run_until(&f->loop, &r.done, 2000);
    assert_int_equal(r.code, PW_UNAVAILABLE);
    pw_test_call_reset(&r);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_unary_roundtrip_ipv4),
        cmocka_unit_test(test_server_unary_roundtrip_ipv6),
        cmocka_unit_test(test_server_unary_roundtrip_unix),
        cmocka_unit_test(test_server_unknown_method_and_service),
        cmocka_unit_test(test_server_status_message_and_metadata),
        cmocka_unit_test(test_server_handler_answers_later),
        cmocka_unit_test(test_server_deadline_reaches_handler),
        cmocka_unit_test(test_server_client_cancel_reaches_handler),
        cmocka_unit_test(test_server_rejects_oversized_request),
        cmocka_unit_test(test_server_undecodable_request_is_internal),
        cmocka_unit_test(test_server_child_calls_inherit_deadline_and_cancellation),
        cmocka_unit_test(test_server_close_cancels_inflight_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
