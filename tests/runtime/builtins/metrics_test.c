/* Metrics and the admin endpoint: exact counters from a real HTTP/1.1 scrape. */
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <paywire/builtins.h>
#include <paywire/metrics.h>
#include "pw_test.h"
#include "pw_test_raw.h"

typedef struct srv {
    pw_test_thread thread;
    pw_server *server;
    pw_metrics *metrics;
    pw_admin *admin;
    pw_health *health;
    int port;
    int admin_port;
    /* Another loop's registry for this one's admin endpoint to sum in (may be NULL). */
    pw_metrics *other;
} srv;

static void echo(pw_call *call, void *ud)
{
    (void)ud;
    pw_slice req = pw_call_request_bytes(call);
    if (req.len == 0) {
        pw_call_finish(call, PW_NOT_FOUND, "empty");
        return;
    }
    pw_call_send_bytes(call, req);
    pw_call_finish(call, PW_OK, NULL);
}

static void srv_setup(pw_test_thread *t)
{
    srv *s = t->user_data;
    assert_int_equal(pw_server_new(&s->server, &t->loop, NULL), PW_OK);
    assert_int_equal(pw_metrics_new(&s->metrics, &t->loop), PW_OK);
    assert_int_equal(pw_metrics_observe_server(s->metrics, s->server), PW_OK);
    assert_int_equal(pw_health_enable(s->server, &s->health), PW_OK);
    pw_method m = {.path = "/test.Svc/Echo", .kind = PW_METHOD_UNARY, .handler = echo};
    pw_server_add_method(s->server, &m);
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", NULL, &s->port), PW_OK);
    assert_int_equal(pw_admin_listen(&s->admin, &t->loop, "127.0.0.1:0", s->metrics, s->health,
                                     s->server, &s->admin_port),
                     PW_OK);
    if (s->other != NULL) {
        assert_int_equal(pw_admin_add_metrics(s->admin, s->other), PW_OK);
    }
}

static void srv_teardown(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_admin_close(s->admin, NULL, NULL);
    pw_server_close(s->server, NULL, NULL);
    pw_metrics_close(s->metrics, NULL, NULL);
}

/* Sends raw HTTP bytes and reads responses until `responses` bodies are complete. */
static void expect_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (strstr(text, want) == NULL) {
        fail_msg("missing line: %s", line);
    }
}

static void test_metrics_scrape_has_exact_values(void **state)
{
    (void)state;
    srv s = {.thread = {.setup = srv_setup, .teardown = srv_teardown}};
    s.thread.user_data = &s;
    pw_test_thread_start(&s.thread);

    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", s.port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    for (int i = 0; i < 3; i++) {
        pw_test_call r = {0};
        assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Echo", NULL, "hi", 2, &r), PW_OK);
        pw_test_call_reset(&r);
    }
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Echo", NULL, "", 0, &r), PW_NOT_FOUND);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, NULL, ch);
    uv_sleep(100); /* the server's on_end runs as the streams close */

    static char text[65536];
    assert_int_equal(pw_test_http(s.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 1, text,
                                  sizeof(text)),
                     1);
    assert_non_null(strstr(text, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(text, "Content-Type: text/plain; version=0.0.4"));
    expect_line(text, "paywire_server_started_total{method=\"/test.Svc/Echo\"} 4");
    expect_line(text, "paywire_server_handled_total{method=\"/test.Svc/Echo\",code=\"OK\"} 3");
    expect_line(text,
                "paywire_server_handled_total{method=\"/test.Svc/Echo\",code=\"NOT_FOUND\"} 1");
    expect_line(text, "paywire_server_handling_seconds_count{method=\"/test.Svc/Echo\"} 4");
    expect_line(text,
                "paywire_server_handling_seconds_bucket{method=\"/test.Svc/Echo\",le=\"+Inf\"} 4");
    /* Four requests, the last one an empty message: four received, three sent. */
    expect_line(text, "paywire_server_msg_received_total{method=\"/test.Svc/Echo\"} 4");
    expect_line(text, "paywire_server_msg_sent_total{method=\"/test.Svc/Echo\"} 3");
    expect_line(text, "paywire_server_in_flight 0");
    expect_line(text, "# TYPE paywire_loop_lag_seconds gauge");

    /* Keep-alive: two requests on one connection; other routes. */
    assert_int_equal(
        pw_test_http(
            s.admin_port,
            "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", 2,
            text, sizeof(text)),
        2);
    assert_non_null(strstr(text, "\r\n\r\nok\n"));
    assert_non_null(strstr(text, "\r\n\r\nready\n"));
    pw_test_http(s.admin_port, "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 1,
                 text, sizeof(text));
    assert_non_null(strstr(text, "HTTP/1.1 404 Not Found"));
    pw_test_http(s.admin_port, "GET /debug HTTP/1.1\r\nHost: t\r\n\r\n", 1, text, sizeof(text));
    assert_non_null(strstr(text, "connections: "));
    pw_test_http(s.admin_port, "BREW /coffee HTCPCP/1.0\r\n\r\n", 1, text, sizeof(text));
    assert_non_null(strstr(text, "HTTP/1.1 400 Bad Request"));
    pw_test_thread_stop(&s.thread);
}

/* Calls n times with a fresh channel to port; each answers OK. */
static void call_n(int port, int n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    for (int i = 0; i < n; i++) {
        pw_test_call r = {0};
        assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Echo", NULL, "hi", 2, &r), PW_OK);
        pw_test_call_reset(&r);
    }
    pw_test_shutdown(&loop, NULL, ch);
}

/* Two loops (as pw_workers runs them), one admin endpoint: /metrics is their sum. */
static void test_metrics_sums_registries_of_several_loops(void **state)
{
    (void)state;
    srv b = {.thread = {.setup = srv_setup, .teardown = srv_teardown}};
    b.thread.user_data = &b;
    pw_test_thread_start(&b.thread);
    srv a = {.thread = {.setup = srv_setup, .teardown = srv_teardown}, .other = b.metrics};
    a.thread.user_data = &a;
    pw_test_thread_start(&a.thread);
    call_n(a.port, 2);
    call_n(b.port, 3);
    uv_sleep(300); /* on_end as streams close; connection gauges refresh every 250 ms */

    static char text[65536];
    assert_int_equal(pw_test_http(a.admin_port, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 1, text,
                                  sizeof(text)),
                     1);
    expect_line(text, "paywire_server_started_total{method=\"/test.Svc/Echo\"} 5");
    expect_line(text, "paywire_server_handled_total{method=\"/test.Svc/Echo\",code=\"OK\"} 5");
    expect_line(text, "paywire_server_handling_seconds_count{method=\"/test.Svc/Echo\"} 5");
    expect_line(text, "paywire_server_msg_sent_total{method=\"/test.Svc/Echo\"} 5");
    expect_line(text, "paywire_server_in_flight 0");
    /* One series per method, not one per loop. */
    const char *first = strstr(text, "paywire_server_started_total{method=\"/test.Svc/Echo\"}");
    assert_null(strstr(first + 1, "paywire_server_started_total{method=\"/test.Svc/Echo\"}"));
    pw_test_thread_stop(&a.thread);
    pw_test_thread_stop(&b.thread);
}

/* ---- closing: pw_admin_close and pw_metrics_close (issue 13) ---- */

/* A keep-alive HTTP client on the test's loop. */
typedef struct peer {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    char buf[512];
    int answered;
    int eof;
} peer;

static void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    peer *p = h->data;
    *b = uv_buf_init(p->buf, sizeof(p->buf));
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    peer *p = s->data;
    if (n > 0) {
        p->answered = 1;
    } else if (n < 0) {
        p->eof = 1;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void peer_connected(uv_connect_t *req, int status)
{
    peer *p = req->data;
    assert_int_equal(status, 0);
    static char get[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    uv_buf_t b = uv_buf_init(get, sizeof(get) - 1);
    uv_write(&p->write, (uv_stream_t *)&p->tcp, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static void tick(uv_timer_t *t)
{
    (void)t; /* keeps UV_RUN_ONCE from blocking while the test waits for a flag */
}

static void admin_closed(pw_admin *a, void *ud)
{
    (void)a;
    ++*(int *)ud;
}

static void metrics_closed(pw_metrics *m, void *ud)
{
    (void)m;
    ++*(int *)ud;
}

/* The text of regs rendered together, NUL-terminated, in out. */
static void render_text(const pw_metrics *const *regs, size_t n, char *out, size_t cap)
{
    pw_buf b = {0};
    assert_int_equal(pw_metrics_render_all(regs, n, &b), PW_OK);
    snprintf(out, cap, "%.*s", (int)b.len, (const char *)b.data);
    pw_buf_reset(&b);
}

static void count_lines(const char *text, const char *prefix, int *n)
{
    *n = 0;
    for (const char *p = strstr(text, prefix); p != NULL; p = strstr(p + 1, prefix)) {
        (*n)++;
    }
}

static void test_metrics_gauge_is_the_value_set_last_on_any_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_metrics *m[2];
    assert_int_equal(pw_metrics_new(&m[0], &loop), PW_OK);
    assert_int_equal(pw_metrics_new(&m[1], &loop), PW_OK);
    static char text[65536];
    assert_int_equal(pw_metrics_gauge_set(m[0], "app_things", "Things.", 3), PW_OK);
    render_text((const pw_metrics *const *)m, 2, text, sizeof(text));
    expect_line(text, "# TYPE app_things gauge");
    expect_line(text, "app_things 3");
    uv_sleep(2); /* a later time stamp */
    assert_int_equal(pw_metrics_gauge_set(m[1], "app_things", "Things.", 5), PW_OK);
    render_text((const pw_metrics *const *)m, 2, text, sizeof(text));
    expect_line(text, "app_things 5");
    int n;
    count_lines(text, "\napp_things ", &n);
    assert_int_equal(n, 1);
    uv_sleep(2);
    assert_int_equal(pw_metrics_gauge_set(m[0], "app_things", "Things.", 0), PW_OK);
    render_text((const pw_metrics *const *)m, 2, text, sizeof(text));
    expect_line(text, "app_things 0");
    assert_int_equal(pw_metrics_gauge_set(m[0], "9bad", "", 1), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_metrics_gauge_set(m[0], "bad-name", "", 1), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_metrics_gauge_set(NULL, "app_things", "", 1), PW_INVALID_ARGUMENT);
    pw_metrics_close(m[0], NULL, NULL);
    pw_metrics_close(m[1], NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

static void test_metrics_admin_close_ends_connections_then_calls_back_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t ticker;
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, tick, 20, 20);
    pw_metrics *m;
    assert_int_equal(pw_metrics_new(&m, &loop), PW_OK);
    pw_admin *admin;
    int port;
    assert_int_equal(pw_admin_listen(&admin, &loop, "127.0.0.1:0", m, NULL, NULL, &port), PW_OK);

    peer p = {0};
    uv_tcp_init(&loop, &p.tcp);
    p.tcp.data = p.connect.data = &p;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_connect(&p.connect, &p.tcp, (const struct sockaddr *)&a, peer_connected);
    pw_test_run_until(&loop, &p.answered, 5000); /* accepted, answered, kept alive */

    int closed = 0, mclosed = 0;
    pw_admin_close(admin, admin_closed, &closed);
    pw_admin_close(admin, admin_closed, &closed); /* only the first call counts */
    assert_int_equal(closed, 0);                  /* deferred */
    pw_test_run_until(&loop, &p.eof, 5000);       /* the admin closed the kept-alive connection */
    pw_metrics_close(m, metrics_closed, &mclosed);
    assert_int_equal(mclosed, 0);
    uv_close((uv_handle_t *)&ticker, NULL);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(closed, 1);
    assert_int_equal(mclosed, 1);
}

/* A registry that outlives its server (svc_main closes it after the database pool) must not
 * read the freed server's connection count on its lag timer (ASan finds it if it does). */
typedef struct outlive {
    pw_metrics *metrics;
    uv_timer_t wait;
    int closed;
} outlive;

static void outlive_server_closed(pw_server *server, void *ud)
{
    outlive *o = ud;
    pw_metrics_forget_server(o->metrics, server);
    o->closed = 1;
}

static void outlive_done(uv_timer_t *t)
{
    outlive *o = t->data;
    pw_metrics_close(o->metrics, NULL, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_metrics_forget_server_outlives_it(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    outlive o = {0};
    assert_int_equal(pw_server_new(&server, &loop, NULL), PW_OK);
    assert_int_equal(pw_metrics_new(&o.metrics, &loop), PW_OK);
    assert_int_equal(pw_metrics_observe_server(o.metrics, server), PW_OK);
    int port;
    assert_int_equal(pw_server_listen(server, "127.0.0.1:0", NULL, &port), PW_OK);
    pw_server_close(server, outlive_server_closed, &o);
    /* Three lag ticks after the server is gone. */
    uv_timer_init(&loop, &o.wait);
    o.wait.data = &o;
    uv_timer_start(&o.wait, outlive_done, 800, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(o.closed, 1);
    pw_metrics_forget_server(NULL, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_scrape_has_exact_values),
        cmocka_unit_test(test_metrics_sums_registries_of_several_loops),
        cmocka_unit_test(test_metrics_gauge_is_the_value_set_last_on_any_loop),
        cmocka_unit_test(test_metrics_admin_close_ends_connections_then_calls_back_once),
        cmocka_unit_test(test_metrics_forget_server_outlives_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
