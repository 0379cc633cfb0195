/* Channel connectivity: fail fast, wait-for-ready, reconnect with backoff. */
#include <stdio.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"

static void ok(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_send_bytes(call, pw_slice_make("up", 2));
    pw_call_finish(call, PW_OK, NULL);
}

static const pw_method ok_method = {.path = "/test.Svc/Ok",
                                    .kind = PW_METHOD_UNARY,
                                    .request_type = NULL,
                                    .response_type = NULL,
                                    .handler = ok,
                                    .user_data = NULL};

static pw_server *start_server(uv_loop_t *loop, const char *address, int *port)
{
    pw_server *s;
    assert_int_equal(pw_server_new(&s, loop, NULL), PW_OK);
    pw_server_add_method(s, &ok_method);
    assert_int_equal(pw_server_listen(s, address, NULL, port), PW_OK);
    return s;
}

/* A port with nothing listening: bind one, close it, use its number. */
static int dead_port(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    pw_server *s = start_server(&loop, "127.0.0.1:0", &port);
    pw_test_shutdown(&loop, s, NULL);
    return port;
}

static void test_channel_fails_fast_when_unreachable(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", dead_port());
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", NULL, "", 0, &r), PW_UNAVAILABLE);
    assert_non_null(strstr(r.message, "connection refused"));
    pw_test_call_reset(&r);
    /* In backoff now: the next call fails at once, without waiting for a connect. */
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", NULL, "", 0, &r), PW_UNAVAILABLE);
    assert_true(uv_now(&loop) - t0 < 500);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, NULL, ch);
}

static void test_channel_wait_for_ready_honours_deadline(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", dead_port());
    pw_channel_options o = {.backoff_initial_ms = 20};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, &o), PW_OK);
    pw_call_options co = {.wait_for_ready = 1, .timeout_ms = 200};
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", &co, "", 0, &r),
                     PW_DEADLINE_EXCEEDED);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, NULL, ch);
}

static void test_channel_reconnects_after_server_restart(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    pw_server *s = start_server(&loop, "127.0.0.1:0", &port);
    char target[64], address[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    pw_channel_options o = {.backoff_initial_ms = 20, .backoff_max_ms = 100};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, &o), PW_OK);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", NULL, "", 0, &r), PW_OK);
    pw_test_call_reset(&r);

    /* The server goes away: calls fail with UNAVAILABLE. */
    pw_server_close(s, NULL, NULL);
    for (int i = 0; i < 20; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", NULL, "", 0, &r), PW_UNAVAILABLE);
    pw_test_call_reset(&r);

    /* It comes back on the same port: a wait-for-ready call gets through. */
    s = start_server(&loop, address, &port);
    pw_call_options co = {.wait_for_ready = 1, .timeout_ms = 5000};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", &co, "", 0, &r), PW_OK);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, s, ch);
}

static void test_channel_close_cancels_pending_calls(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", dead_port());
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    pw_call_options co = {.wait_for_ready = 1};
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_start(ch, "/test.Svc/Ok", &co, "", 0, &r, NULL), PW_OK);
    pw_channel_close(ch, NULL, NULL);
    pw_test_run_until(&loop, &r.done, 2000);
    assert_int_equal(r.code, PW_CANCELLED);
    pw_test_call_reset(&r);
    pw_test_loop_finish(&loop, 5000);
}

static void test_channel_rejects_bad_targets(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel *ch = (pw_channel *)&loop; /* not NULL: failures must set it */
    assert_int_equal(pw_channel_new(&ch, &loop, "no-port", NULL), PW_INVALID_ARGUMENT);
    assert_null(ch);
    assert_int_equal(pw_channel_new(&ch, &loop, "host:99999", NULL), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_channel_new(&ch, &loop, "[::1:80", NULL), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_channel_new(&ch, &loop, "localhost:50051", NULL), PW_OK);
    pw_test_call r = {0};
    pw_client_call *call = (pw_client_call *)&r;
    assert_int_equal(pw_client_call_start(&call, ch, "no-slash", NULL, &pw_test_call_ops, &r),
                     PW_INVALID_ARGUMENT);
    assert_null(call);
    /* A bad address leaves no port behind. */
    pw_server *s;
    assert_int_equal(pw_server_new(&s, &loop, NULL), PW_OK);
    int port = -1;
    assert_int_equal(pw_server_listen(s, "not-an-ip:0", NULL, &port), PW_INVALID_ARGUMENT);
    assert_int_equal(port, 0);
    pw_channel_close(NULL, NULL, NULL); /* close functions accept NULL */
    pw_server_close(NULL, NULL, NULL);
    pw_test_shutdown(&loop, s, ch);
}

/* An HTTP/2 peer that says SETTINGS once, then reads and never writes again. */
typedef struct mute {
    uv_tcp_t server;
    uv_tcp_t conn;
    uv_write_t w;
    char buf[4096];
    int accepted;
} mute;

static void mute_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    mute *m = h->data;
    *b = uv_buf_init(m->buf, sizeof(m->buf));
}

static void mute_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0) {
        uv_read_stop(s);
    }
}

static void mute_accept(uv_stream_t *server, int status)
{
    mute *m = server->data;
    if (status != 0 || m->accepted) {
        return;
    }
    m->accepted = 1;
    uv_tcp_init(server->loop, &m->conn);
    m->conn.data = m;
    uv_accept(server, (uv_stream_t *)&m->conn);
    static char settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    uv_buf_t b = uv_buf_init(settings, sizeof(settings));
    uv_write(&m->w, (uv_stream_t *)&m->conn, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&m->conn, mute_alloc, mute_read);
}

static void test_channel_keepalive_closes_a_silent_connection(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mute m = {0};
    uv_tcp_init(&loop, &m.server);
    m.server.data = &m;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&m.server, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&m.server, 8, mute_accept);
    int len = sizeof(a);
    uv_tcp_getsockname(&m.server, (struct sockaddr *)&a, &len);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(a.sin_port));
    pw_channel_options o = {.keepalive_time_ms = 100, .keepalive_timeout_ms = 100};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, &o), PW_OK);
    pw_call_options co = {.timeout_ms = 10000};
    pw_test_call r = {0};
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Ok", &co, "", 0, &r), PW_UNAVAILABLE);
    assert_non_null(strstr(r.message, "keepalive ping not acknowledged"));
    assert_true(uv_now(&loop) - t0 < 3000);
    pw_test_call_reset(&r);
    uv_close((uv_handle_t *)&m.server, NULL);
    if (m.accepted) {
        uv_close((uv_handle_t *)&m.conn, NULL);
    }
    pw_test_shutdown(&loop, NULL, ch);
}

/* ---- issue 13: a failed address of a multi-address target ---- */

typedef struct logged {
    int level; /* of the line naming the failed address; 0 if none */
    int lines;
} logged;

static char watched[64];

static void capture(pw_log_level level, const char *module, const char *line, void *ud)
{
    logged *l = ud;
    if (strcmp(module, "channel") == 0 && strstr(line, watched) != NULL) {
        l->level = level;
        l->lines++;
    }
}

/*
 * Calls target on loop (server, on the same loop, may be NULL) with the log
 * lines naming the address 127.0.0.1:dead captured in *l, and closes both.
 */
static pw_status call_logging(uv_loop_t *loop, pw_server *server, const char *target, int dead,
                              logged *l)
{
    snprintf(watched, sizeof(watched), "cannot connect to 127.0.0.1:%d", dead);
    pw_log_set_sink(capture, l);
    pw_log_set_level(PW_LOG_DEBUG);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, loop, target, NULL), PW_OK);
    pw_test_call r = {0};
    pw_status rv = pw_test_call_run(loop, ch, "/test.Svc/Ok", NULL, "", 0, &r);
    pw_test_call_reset(&r);
    pw_test_shutdown(loop, server, ch);
    pw_log_set_sink(NULL, NULL);
    pw_log_set_level(PW_LOG_INFO);
    return rv;
}

static void test_channel_issue13_failed_address_is_debug_when_another_connects(void **state)
{
    (void)state;
    int dead = dead_port();
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    pw_server *s = start_server(&loop, "127.0.0.1:0", &port);
    char target[128];
    snprintf(target, sizeof(target), "ipv4:127.0.0.1:%d,127.0.0.1:%d", dead, port);
    logged l = {0};
    assert_int_equal(call_logging(&loop, s, target, dead, &l), PW_OK);
    assert_int_equal(l.lines, 1);
    assert_int_equal(l.level, PW_LOG_DEBUG);
}

static void test_channel_issue13_every_address_failed_is_info(void **state)
{
    (void)state;
    int dead = dead_port(), dead2 = dead_port();
    while (dead2 == dead) {
        dead2 = dead_port();
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[128];
    snprintf(target, sizeof(target), "ipv4:127.0.0.1:%d,127.0.0.1:%d", dead, dead2);
    logged l = {0};
    assert_int_equal(call_logging(&loop, NULL, target, dead, &l), PW_UNAVAILABLE);
    /* Once at debug when it failed, once at info when the last address failed too. */
    assert_int_equal(l.lines, 2);
    assert_int_equal(l.level, PW_LOG_INFO);

    /* A single-address target has nothing else to try: info at once. */
    uv_loop_init(&loop);
    snprintf(target, sizeof(target), "127.0.0.1:%d", dead);
    l = (logged){0};
    assert_int_equal(call_logging(&loop, NULL, target, dead, &l), PW_UNAVAILABLE);
    assert_int_equal(l.lines, 1);
    assert_int_equal(l.level, PW_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channel_fails_fast_when_unreachable),
        cmocka_unit_test(test_channel_wait_for_ready_honours_deadline),
        cmocka_unit_test(test_channel_reconnects_after_server_restart),
        cmocka_unit_test(test_channel_close_cancels_pending_calls),
        cmocka_unit_test(test_channel_rejects_bad_targets),
        cmocka_unit_test(test_channel_keepalive_closes_a_silent_connection),
        cmocka_unit_test(test_channel_issue13_failed_address_is_debug_when_another_connects),
        cmocka_unit_test(test_channel_issue13_every_address_failed_is_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
