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
    pw_admin_close(s->admin);
    pw_server_close(s->server, NULL, NULL);
    pw_metrics_free(s->metrics);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_scrape_has_exact_values),
        cmocka_unit_test(test_metrics_sums_registries_of_several_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
