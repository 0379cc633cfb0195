/* Server interceptors: order, metadata, rejection before the handler, stats. */
#include <stdio.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"

static char trace[256];
static int handler_runs;
static pw_call_stats last_stats;

static pw_status a_start(pw_call *call, char *msg, size_t n, void *ud)
{
    (void)msg;
    (void)n;
    (void)ud;
    strcat(trace, "A+");
    pw_call_add_initial_metadata(call, "x-a", "seen", 4);
    return PW_OK;
}

static void a_end(pw_call *call, const pw_call_stats *st, void *ud)
{
    (void)call;
    (void)ud;
    strcat(trace, "A-");
    last_stats = *st;
}

static pw_status b_start(pw_call *call, char *msg, size_t n, void *ud)
{
    (void)ud;
    strcat(trace, "B+");
    if (pw_metadata_get(pw_call_metadata(call), "x-deny") != NULL) {
        snprintf(msg, n, "denied by B for %s", pw_call_method(call));
        return PW_PERMISSION_DENIED;
    }
    return PW_OK;
}

static void b_end(pw_call *call, const pw_call_stats *st, void *ud)
{
    (void)call;
    (void)st;
    (void)ud;
    strcat(trace, "B-");
}

static void echo(pw_call *call, void *ud)
{
    (void)ud;
    handler_runs++;
    pw_slice req = pw_call_request_bytes(call);
    if (req.len == 0) {
        pw_call_finish(call, PW_NOT_FOUND, "nothing");
        return;
    }
    pw_call_send_bytes(call, req);
    pw_call_finish(call, PW_OK, NULL);
}

static void run(const pw_metadata *md, const char *body, pw_test_call *r)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_method m = {.path = "/test.Svc/Echo", .kind = PW_METHOD_UNARY, .handler = echo};
    pw_server *s;
    pw_channel *ch;
    pw_test_serve(&loop, NULL, &m, 1, NULL, &s, &ch, NULL);
    pw_interceptor a = {a_start, a_end, NULL}, b = {b_start, b_end, NULL};
    assert_int_equal(pw_server_add_interceptor(s, &a), PW_OK);
    assert_int_equal(pw_server_add_interceptor(s, &b), PW_OK);
    pw_call_options o = {.metadata = md};
    trace[0] = '\0';
    handler_runs = 0;
    memset(&last_stats, 0, sizeof(last_stats));
    pw_test_call_run(&loop, ch, "/test.Svc/Echo", &o, body, strlen(body), r);
    pw_test_shutdown(&loop, s, ch); /* the call is freed by now: on_end ran */
}

static void test_interceptor_chain_runs_in_order_with_stats(void **state)
{
    (void)state;
    pw_test_call r = {0};
    run(NULL, "hello", &r);
    assert_int_equal(r.code, PW_OK);
    assert_string_equal(trace, "A+B+B-A-");
    assert_int_equal(handler_runs, 1);
    const pw_metadata_entry *e = pw_metadata_get(&r.initial, "x-a");
    assert_non_null(e);
    assert_int_equal(last_stats.code, PW_OK);
    assert_int_equal(last_stats.messages_in, 1);
    assert_int_equal(last_stats.bytes_in, 5);
    assert_int_equal(last_stats.messages_out, 1);
    assert_int_equal(last_stats.bytes_out, 5);
    assert_true(last_stats.duration_ns > 0);
    pw_test_call_reset(&r);
}

static void test_interceptor_rejection_never_reaches_the_handler(void **state)
{
    (void)state;
    pw_metadata md = {0};
    pw_metadata_add_str(&md, "x-deny", "1");
    pw_test_call r = {0};
    run(&md, "hello", &r);
    assert_int_equal(r.code, PW_PERMISSION_DENIED);
    assert_string_equal(r.message, "denied by B for /test.Svc/Echo");
    assert_int_equal(handler_runs, 0);
    /* A accepted, so it sees the end; B rejected, so it does not. */
    assert_string_equal(trace, "A+B+A-");
    assert_int_equal(last_stats.code, PW_PERMISSION_DENIED);
    pw_metadata_clear(&md);
    pw_test_call_reset(&r);
}

static void test_interceptor_sees_handler_status(void **state)
{
    (void)state;
    pw_test_call r = {0};
    run(NULL, "", &r);
    assert_int_equal(r.code, PW_NOT_FOUND);
    assert_int_equal(last_stats.code, PW_NOT_FOUND);
    assert_int_equal(last_stats.messages_out, 0);
    pw_test_call_reset(&r);
}

/* ---- client side ---- */

static pw_call_stats client_stats;
static pw_status client_end_code;

static pw_status c_start(pw_client_call *call, const char *path, pw_metadata *md, char *msg,
                         size_t n, void *ud)
{
    (void)call;
    (void)ud;
    if (strstr(path, "Forbidden") != NULL) {
        snprintf(msg, n, "client policy forbids %s", path);
        return PW_PERMISSION_DENIED;
    }
    return pw_metadata_add_str(md, "x-from-client", "c");
}

static void c_end(pw_client_call *call, const pw_result *r, const pw_call_stats *st, void *ud)
{
    (void)call;
    (void)ud;
    client_end_code = r->code;
    client_stats = *st;
}

static void needs_client_metadata(pw_call *call, void *ud)
{
    (void)ud;
    handler_runs++;
    if (pw_metadata_get(pw_call_metadata(call), "x-from-client") == NULL) {
        pw_call_finish(call, PW_FAILED_PRECONDITION, "client interceptor did not run");
        return;
    }
    pw_call_send_bytes(call, pw_slice_make("ok", 2));
    pw_call_finish(call, PW_OK, NULL);
}

static void test_interceptor_client_chain(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *s;
    assert_int_equal(pw_server_new(&s, &loop, NULL), PW_OK);
    pw_method m = {
        .path = "/test.Svc/Check", .kind = PW_METHOD_UNARY, .handler = needs_client_metadata};
    pw_method f = {
        .path = "/test.Svc/Forbidden", .kind = PW_METHOD_UNARY, .handler = needs_client_metadata};
    pw_server_add_method(s, &m);
    pw_server_add_method(s, &f);
    int port;
    assert_int_equal(pw_server_listen(s, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    pw_client_interceptor c = {c_start, c_end, NULL};
    assert_int_equal(pw_channel_add_interceptor(ch, &c), PW_OK);
    handler_runs = 0;

    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Check", NULL, "hello", 5, &r), PW_OK);
    assert_int_equal(client_end_code, PW_OK);
    assert_int_equal(client_stats.messages_out, 1);
    assert_int_equal(client_stats.bytes_out, 5);
    assert_int_equal(client_stats.messages_in, 1);
    assert_int_equal(client_stats.bytes_in, 2);
    pw_test_call_reset(&r);

    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Forbidden", NULL, "x", 1, &r),
                     PW_PERMISSION_DENIED);
    assert_string_equal(r.message, "client policy forbids /test.Svc/Forbidden");
    assert_int_equal(handler_runs, 1); /* only the first call reached a server */
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, s, ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interceptor_chain_runs_in_order_with_stats),
        cmocka_unit_test(test_interceptor_rejection_never_reaches_the_handler),
        cmocka_unit_test(test_interceptor_sees_handler_status),
        cmocka_unit_test(test_interceptor_client_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
