/*
 * Connection limits, keepalive, PING policing and graceful shutdown
 * (runtime/src/lifecycle.c and pw_server_shutdown). Each test checks the
 * outcome on the wire (close, GOAWAY) and that the server keeps serving.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <paywire/paywire.h>
#include "internal.h"
#include "pw_test.h"
#include "pw_test_raw.h"

/* ---- a server on its own thread, for raw blocking clients ---- */

typedef struct srv {
    pw_test_thread thread;
    pw_server_options opts;
    pw_server *server;
    int port;
} srv;

static void echo(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_send_bytes(call, pw_call_request_bytes(call));
    pw_call_finish(call, PW_OK, NULL);
}

static const pw_method echo_method = {
    .path = "/test.Svc/Echo", .kind = PW_METHOD_UNARY, .handler = echo};

static void srv_setup(pw_test_thread *t)
{
    srv *s = t->user_data;
    assert_int_equal(pw_server_new(&s->server, &t->loop, &s->opts), PW_OK);
    pw_server_add_method(s->server, &echo_method);
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", NULL, &s->port), PW_OK);
}

static void srv_teardown(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_close(s->server, NULL, NULL);
}

static srv *srv_start(const pw_server_options *o)
{
    srv *s = calloc(1, sizeof(*s));
    s->opts = *o;
    s->thread.setup = srv_setup;
    s->thread.teardown = srv_teardown;
    s->thread.user_data = s;
    pw_test_thread_start(&s->thread);
    return s;
}

static void srv_stop(srv *s)
{
    pw_test_thread_stop(&s->thread);
    free(s);
}

static void assert_serving(srv *s)
{
    uint8_t body[7] = {0, 0, 0, 0, 2, 'o', 'k'};
    pw_test_raw_result r;
    pw_test_raw_request(s->port, pw_test_raw_grpc_headers("/test.Svc/Echo", NULL, NULL), body,
                        sizeof(body), 1, 0, 5000, &r);
    assert_int_equal(r.grpc_status, 0);
}

static int contains(const uint8_t *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void test_lifecycle_handshake_timeout_drops_silent_client(void **state)
{
    (void)state;
    pw_server_options o = {.handshake_timeout_ms = 200};
    srv *s = srv_start(&o);
    uint64_t t0 = uv_hrtime();
    /* Connects and sends nothing: closed after the handshake timeout. */
    assert_true(pw_test_raw_bytes(s->port, NULL, 0, 5000));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_true(ms >= 150 && ms < 3000);
    assert_serving(s);
    srv_stop(s);
}

static void test_lifecycle_keepalive_closes_unresponsive_peer(void **state)
{
    (void)state;
    pw_server_options o = {.keepalive_time_ms = 100, .keepalive_timeout_ms = 200};
    srv *s = srv_start(&o);
    size_t n;
    const uint8_t *preface = pw_test_raw_preface(&n);
    uint8_t got[4096];
    size_t got_len;
    /* Completes the HTTP/2 handshake, then never answers the server's PING. */
    assert_true(pw_test_raw_exchange(s->port, preface, n, 5000, got, sizeof(got), &got_len));
    assert_true(contains(got, got_len, "pwkeepal")); /* the PING's opaque data */
    assert_true(contains(got, got_len, "keepalive ping not acknowledged"));
    assert_serving(s);
    srv_stop(s);
}

static void test_lifecycle_ping_flood_gets_enhance_your_calm(void **state)
{
    (void)state;
    pw_server_options o = {0};
    srv *s = srv_start(&o);
    uint8_t wire[512];
    size_t n;
    const uint8_t *preface = pw_test_raw_preface(&n);
    memcpy(wire, preface, n);
    static const uint8_t ping[17] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < 5; i++) {
        memcpy(wire + n, ping, sizeof(ping));
        n += sizeof(ping);
    }
    uint8_t got[4096];
    size_t got_len;
    assert_true(pw_test_raw_exchange(s->port, wire, n, 5000, got, sizeof(got), &got_len));
    assert_true(contains(got, got_len, "too_many_pings"));
    /* GOAWAY frame (type 7) carrying ENHANCE_YOUR_CALM (0xb). */
    static const uint8_t calm[4] = {0, 0, 0, 0xb};
    assert_true(memmem(got, got_len, calm, 4) != NULL);
    assert_serving(s);
    srv_stop(s);
}

static void test_lifecycle_max_connections_refuses_extra(void **state)
{
    (void)state;
    pw_server_options o = {.max_connections = 2};
    srv *s = srv_start(&o);
    int a = pw_test_raw_connect(s->port);
    int b = pw_test_raw_connect(s->port);
    assert_true(a >= 0 && b >= 0);
    uv_sleep(100); /* let the server accept both */
    uint64_t t0 = uv_hrtime();
    assert_true(pw_test_raw_bytes(s->port, NULL, 0, 5000)); /* the third is closed at once */
    assert_true((uv_hrtime() - t0) / 1000000 < 1000);
    close(a);
    close(b);
    uv_sleep(100);
    assert_serving(s);
    srv_stop(s);
}

/* ---- one loop: server and paywire's own client ---- */

typedef struct fx {
    uv_loop_t loop;
    pw_server *server;
    pw_channel *ch;
    uv_timer_t timer;
    pw_call *held;
    int cancels;
    int closed;
    int port;
} fx;

static void later_fired(uv_timer_t *t)
{
    fx *f = t->data;
    if (f->held != NULL) {
        pw_call_send_bytes(f->held, pw_slice_make("done", 4));
        pw_call_finish(f->held, PW_OK, NULL);
        f->held = NULL;
    }
}

static void hold_on_cancel(pw_call *call, pw_status why, void *ud)
{
    fx *f = ud;
    f->cancels++;
    f->held = NULL;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops hold_ops = {.on_cancel = hold_on_cancel};

/* Answers after 300 ms (or never, when the timer is not started). */
static void slow(pw_call *call, void *ud)
{
    fx *f = ud;
    f->held = call;
    pw_call_set_ops(call, &hold_ops, f);
    uv_timer_start(&f->timer, later_fired, 300, 0);
}

static void never(pw_call *call, void *ud)
{
    fx *f = ud;
    f->held = call;
    pw_call_set_ops(call, &hold_ops, f);
}

static void server_closed(pw_server *s, void *ud)
{
    (void)s;
    ((fx *)ud)->closed = 1;
}

static fx *fx_new(const pw_server_options *o)
{
    fx *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->timer);
    f->timer.data = f;
    assert_int_equal(pw_server_new(&f->server, &f->loop, o), PW_OK);
    pw_method m1 = {
        .path = "/test.Svc/Slow", .kind = PW_METHOD_UNARY, .handler = slow, .user_data = f};
    pw_method m2 = {
        .path = "/test.Svc/Never", .kind = PW_METHOD_UNARY, .handler = never, .user_data = f};
    pw_method m3 = echo_method;
    pw_server_add_method(f->server, &m1);
    pw_server_add_method(f->server, &m2);
    pw_server_add_method(f->server, &m3);
    assert_int_equal(pw_server_listen(f->server, "127.0.0.1:0", NULL, &f->port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", f->port);
    pw_channel_options co = {.backoff_initial_ms = 20};
    assert_int_equal(pw_channel_new(&f->ch, &f->loop, target, &co), PW_OK);
    return f;
}

/* Starts a call to path (Slow or Never) and runs the loop until its handler holds it. */
static void hold_call(fx *f, const char *path, pw_test_call *r)
{
    assert_int_equal(pw_test_call_start(f->ch, path, NULL, "x", 1, r, NULL), PW_OK);
    while (f->held == NULL) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void fx_free(fx *f)
{
    uv_close((uv_handle_t *)&f->timer, NULL);
    pw_test_shutdown(&f->loop, f->server, f->ch);
    free(f);
}

static void test_lifecycle_idle_connection_is_closed(void **state)
{
    (void)state;
    pw_server_options o = {.idle_timeout_ms = 100};
    fx *f = fx_new(&o);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, "x", 1, &r), PW_OK);
    pw_test_call_reset(&r);
    assert_int_equal(f->server->conn_count, 1);
    uint64_t t0 = uv_now(&f->loop);
    while (f->server->conn_count > 0 && uv_now(&f->loop) - t0 < 3000) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->server->conn_count, 0);
    /* The channel reconnects for the next call. */
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, "x", 1, &r), PW_OK);
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_lifecycle_max_age_drains_then_closes(void **state)
{
    (void)state;
    pw_server_options o = {.max_connection_age_ms = 150, .max_connection_age_grace_ms = 400};
    fx *f = fx_new(&o);
    pw_test_call held = {0};
    hold_call(f, "/test.Svc/Never", &held);
    /* After the age and its grace, the held call's connection is closed. */
    pw_test_run_until(&f->loop, &held.done, 5000);
    assert_true(held.code == PW_UNAVAILABLE || held.code == PW_CANCELLED);
    assert_int_equal(f->cancels, 1);
    /* New calls go to a new connection. */
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, "x", 1, &r), PW_OK);
    pw_test_call_reset(&r);
    pw_test_call_reset(&held);
    fx_free(f);
}

static void test_lifecycle_graceful_shutdown_finishes_inflight(void **state)
{
    (void)state;
    pw_server_options o = {0};
    fx *f = fx_new(&o);
    pw_test_call r = {0};
    hold_call(f, "/test.Svc/Slow", &r);
    pw_server_shutdown(f->server, 5000, server_closed, f);
    f->server = NULL;
    /* The in-flight call completes normally... */
    pw_test_run_until(&f->loop, &r.done, 5000);
    assert_int_equal(r.code, PW_OK);
    assert_memory_equal(r.last.data, "done", 4);
    pw_test_call_reset(&r);
    /* ...the server finishes closing well before the grace period... */
    pw_test_run_until(&f->loop, &f->closed, 3000);
    assert_int_equal(f->cancels, 0);
    /* ...and new calls are refused. */
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/test.Svc/Echo", NULL, "x", 1, &r),
                     PW_UNAVAILABLE);
    pw_test_call_reset(&r);
    fx_free(f);
}

static void test_lifecycle_shutdown_grace_cancels_the_rest(void **state)
{
    (void)state;
    pw_server_options o = {0};
    fx *f = fx_new(&o);
    pw_test_call r = {0};
    hold_call(f, "/test.Svc/Never", &r);
    pw_server_shutdown(f->server, 200, server_closed, f);
    f->server = NULL;
    pw_test_run_until(&f->loop, &f->closed, 3000);
    assert_int_equal(f->cancels, 1);
    pw_test_run_until(&f->loop, &r.done, 3000);
    assert_int_not_equal(r.code, PW_OK);
    pw_test_call_reset(&r);
    fx_free(f);
}

/* Records which close callback ran, in order ('S' shutdown, 'C' close). */
static char close_order[8];

static void shutdown_done(pw_server *s, void *ud)
{
    (void)s;
    (void)ud;
    strcat(close_order, "S");
}

static void close_done(pw_server *s, void *ud)
{
    (void)s;
    strcat(close_order, "C");
    ((fx *)ud)->closed = 1;
}

/* Issue 13: pw_server_close cutting a shutdown short keeps both callbacks, each once. */
static void test_lifecycle_close_during_shutdown_runs_both_callbacks_once(void **state)
{
    (void)state;
    pw_server_options o = {0};
    fx *f = fx_new(&o);
    pw_test_call r = {0};
    hold_call(f, "/test.Svc/Never", &r);
    close_order[0] = '\0';
    pw_server_shutdown(f->server, 5000, shutdown_done, f);
    pw_server_shutdown(f->server, 5000, shutdown_done, f); /* only the first call counts */
    pw_server_close(f->server, close_done, f);
    pw_server_close(f->server, close_done, f);
    assert_string_equal(close_order, ""); /* deferred */
    f->server = NULL;
    pw_test_run_until(&f->loop, &f->closed, 3000);
    assert_string_equal(close_order, "SC");
    pw_test_run_until(&f->loop, &r.done, 3000);
    pw_test_call_reset(&r);
    fx_free(f);
}

/* ---- max concurrent streams ---- */

static pw_call *parked[8];
static int parked_count;

static void park(pw_call *call, void *ud)
{
    (void)ud;
    parked[parked_count++] = call;
}

static void test_lifecycle_max_concurrent_streams_opens_another_connection(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server_options o = {.max_concurrent_streams = 2};
    pw_server *s;
    assert_int_equal(pw_server_new(&s, &loop, &o), PW_OK);
    pw_method m = {.path = "/test.Svc/Park", .kind = PW_METHOD_UNARY, .handler = park};
    pw_server_add_method(s, &m);
    int port;
    assert_int_equal(pw_server_listen(s, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    /* A first call brings the connection up and its SETTINGS (2 streams) in. */
    pw_test_call warm = {0};
    parked_count = 0;
    assert_int_equal(pw_test_call_start(ch, "/test.Svc/Park", NULL, "x", 1, &warm, NULL), PW_OK);
    while (parked_count < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    pw_test_call r[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pw_test_call_start(ch, "/test.Svc/Park", NULL, "x", 1, &r[i], NULL),
                         PW_OK);
    }
    /* Five calls, two streams per connection: the client opens more connections. */
    uint64_t end = uv_now(&loop) + 3000;
    while (parked_count < 5 && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(parked_count, 5);
    assert_true(s->conn_count >= 3);
    for (int i = 0; i < 5; i++) {
        pw_call_finish(parked[i], PW_OK, NULL);
    }
    pw_test_run_until(&loop, &warm.done, 2000);
    pw_test_call_reset(&warm);
    for (int i = 0; i < 4; i++) {
        pw_test_run_until(&loop, &r[i].done, 2000);
        assert_int_equal(r[i].code, PW_OK);
        pw_test_call_reset(&r[i]);
    }
    pw_test_shutdown(&loop, s, ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_handshake_timeout_drops_silent_client),
        cmocka_unit_test(test_lifecycle_keepalive_closes_unresponsive_peer),
        cmocka_unit_test(test_lifecycle_ping_flood_gets_enhance_your_calm),
        cmocka_unit_test(test_lifecycle_max_connections_refuses_extra),
        cmocka_unit_test(test_lifecycle_idle_connection_is_closed),
        cmocka_unit_test(test_lifecycle_max_age_drains_then_closes),
        cmocka_unit_test(test_lifecycle_graceful_shutdown_finishes_inflight),
        cmocka_unit_test(test_lifecycle_shutdown_grace_cancels_the_rest),
        cmocka_unit_test(test_lifecycle_close_during_shutdown_runs_both_callbacks_once),
        cmocka_unit_test(test_lifecycle_max_concurrent_streams_opens_another_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
