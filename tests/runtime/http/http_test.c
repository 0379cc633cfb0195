/*
 * paywire_http against a real HTTP/1.1 server (http_peer.py, over TCP and
 * TLS with a local CA): bodies and headers both ways, HTTP error statuses,
 * refused connections, deadlines, a body over the limit, TLS verification
 * failing closed, mTLS, 50 requests at once, bad input, and closing with
 * requests in flight. Every test ends with the loop closed clean.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <paywire/http.h>
#include "pw_test.h"

static char certs[128];
static char ca[192], srv_crt[192], srv_key[192], cli_crt[192], cli_key[192];

typedef struct peer {
    pid_t pid;
    int port;
} peer;

static peer peer_start(const char *tls_mode)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    peer p = {0};
    p.pid = fork();
    if (p.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test must not leave the peer running */
        dup2(fds[1], 1);
        close(fds[0]);
        const char *script = pw_test_path("runtime/http/http_peer.py");
        if (tls_mode == NULL) {
            execlp("python3", "python3", script, (char *)NULL);
        } else if (strcmp(tls_mode, "tls") == 0) {
            execlp("python3", "python3", script, "--tls", srv_crt, srv_key, (char *)NULL);
        } else {
            execlp("python3", "python3", script, "--tls", srv_crt, srv_key, "--client-ca", ca,
                   (char *)NULL);
        }
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    assert_int_equal(fscanf(f, "%d", &p.port), 1);
    fclose(f);
    return p;
}

static void peer_stop(peer p)
{
    kill(p.pid, SIGTERM);
    waitpid(p.pid, NULL, 0);
}

typedef struct result {
    int done;
    pw_status status;
    long http_status;
    char body[256];
    size_t body_len;
    char error[512];
} result;

static void done(pw_http_client *c, const pw_http_response *r, void *ud)
{
    (void)c;
    result *res = ud;
    res->done++;
    res->status = r->status;
    res->http_status = r->http_status;
    res->body_len = r->body.len;
    size_t n = r->body.len < sizeof(res->body) - 1 ? r->body.len : sizeof(res->body) - 1;
    if (n > 0) {
        memcpy(res->body, r->body.base, n);
    }
    res->body[n] = '\0';
    snprintf(res->error, sizeof(res->error), "%s", r->error);
}

static void closed(pw_http_client *c, void *ud)
{
    (void)c;
    (*(int *)ud)++;
}

/* Sends req on a fresh client and loop, runs until it is answered, closes everything. */
static result run_one(const pw_http_request *req)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_http_client *c;
    assert_int_equal(pw_http_client_new(&c, &loop, NULL), PW_OK);
    result r = {0};
    assert_int_equal(pw_http_send(c, req, done, &r), PW_OK);
    assert_int_equal(r.done, 0); /* never inside pw_http_send */
    pw_test_run_until(&loop, &r.done, 15000);
    int was_closed = 0;
    pw_http_client_close(c, closed, &was_closed);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(r.done, 1);
    assert_int_equal(was_closed, 1);
    return r;
}

static void url(char *out, size_t cap, const char *scheme, int port, const char *path)
{
    snprintf(out, cap, "%s://%s:%d%s", scheme,
             strcmp(scheme, "https") == 0 ? "localhost" : "127.0.0.1", port, path);
}

static void test_http_post_get_and_statuses(void **state)
{
    (void)state;
    peer p = peer_start(NULL);
    char u[128];
    url(u, sizeof(u), "http", p.port, "/echo");
    pw_http_header h[] = {{"x-test", "hello"}, {"content-type", "application/json"}};
    pw_http_request req = {
        .url = u, .headers = h, .n_headers = 2, .body = "{\"a\":1}", .body_len = 7};
    result r = run_one(&req);
    assert_int_equal(r.status, PW_OK);
    assert_int_equal(r.http_status, 200);
    assert_string_equal(r.body, "POST|hello||{\"a\":1}");
    pw_http_request get = {.url = u, .method = "GET"};
    r = run_one(&get);
    assert_string_equal(r.body, "GET|||");
    /* An HTTP error status is an answer: PW_OK with the status and body. */
    url(u, sizeof(u), "http", p.port, "/status/503");
    pw_http_request e = {.url = u};
    r = run_one(&e);
    assert_int_equal(r.status, PW_OK);
    assert_int_equal(r.http_status, 503);
    assert_string_equal(r.body, "status 503");
    peer_stop(p);
}

static void test_http_failures(void **state)
{
    (void)state;
    peer p = peer_start(NULL);
    char u[128];
    /* Deadline. */
    url(u, sizeof(u), "http", p.port, "/slow");
    pw_http_request slow = {.url = u, .timeout_ms = 300};
    uint64_t t0 = uv_hrtime();
    result r = run_one(&slow);
    assert_int_equal(r.status, PW_DEADLINE_EXCEEDED);
    assert_true((uv_hrtime() - t0) / 1000000 < 2500);
    assert_non_null(strstr(r.error, "GET http://127.0.0.1:"));
    /* A body over the limit. */
    url(u, sizeof(u), "http", p.port, "/big");
    pw_http_request big = {.url = u};
    r = run_one(&big);
    assert_int_equal(r.status, PW_RESOURCE_EXHAUSTED);
    peer_stop(p);
    /* Nobody listens any more. */
    url(u, sizeof(u), "http", p.port, "/echo");
    pw_http_request gone = {.url = u};
    r = run_one(&gone);
    assert_int_equal(r.status, PW_UNAVAILABLE);
    assert_int_equal(r.http_status, 0);
}

static void test_http_bad_input(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_http_client *c;
    assert_int_equal(pw_http_client_new(&c, &loop, NULL), PW_OK);
    result r = {0};
    pw_http_request ftp = {.url = "ftp://127.0.0.1/x"};
    assert_int_equal(pw_http_send(c, &ftp, done, &r), PW_INVALID_ARGUMENT);
    pw_http_request none = {0};
    assert_int_equal(pw_http_send(c, &none, done, &r), PW_INVALID_ARGUMENT);
    pw_http_header inject[] = {{"x-test", "a\r\nx-evil: 1"}};
    pw_http_request crlf = {.url = "http://127.0.0.1:1/", .headers = inject, .n_headers = 1};
    assert_int_equal(pw_http_send(c, &crlf, done, &r), PW_INVALID_ARGUMENT);
    pw_http_header colon[] = {{"x:y", "1"}};
    crlf.headers = colon;
    assert_int_equal(pw_http_send(c, &crlf, done, &r), PW_INVALID_ARGUMENT);
    pw_http_client_close(c, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(r.done, 0);
}

static void test_http_tls_verified_and_mtls(void **state)
{
    (void)state;
    peer p = peer_start("tls");
    char u[128];
    url(u, sizeof(u), "https", p.port, "/echo");
    pw_http_request req = {.url = u, .ca_file = ca, .body = "x", .body_len = 1};
    result r = run_one(&req);
    assert_int_equal(r.status, PW_OK);
    assert_string_equal(r.body, "POST|||x");
    /* The system's CAs do not know our local CA: refused, never sent unverified. */
    pw_http_request unverified = {.url = u, .body = "x", .body_len = 1};
    r = run_one(&unverified);
    assert_int_equal(r.status, PW_UNAVAILABLE);
    peer_stop(p);
    p = peer_start("mtls");
    url(u, sizeof(u), "https", p.port, "/echo");
    pw_http_request anon = {.url = u, .ca_file = ca};
    r = run_one(&anon);
    assert_int_equal(r.status, PW_UNAVAILABLE); /* the server wants a certificate */
    pw_http_request mtls = {.url = u, .ca_file = ca, .cert_file = cli_crt, .key_file = cli_key};
    r = run_one(&mtls);
    assert_int_equal(r.status, PW_OK);
    assert_string_equal(r.body, "GET||tests|");
    peer_stop(p);
}

static void test_http_many_at_once_and_close_in_flight(void **state)
{
    (void)state;
    enum { N = 50 };
    peer p = peer_start(NULL);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_http_client *c;
    assert_int_equal(pw_http_client_new(&c, &loop, NULL), PW_OK);
    static result rs[N];
    char u[128], body[N][16];
    url(u, sizeof(u), "http", p.port, "/echo");
    for (int i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof(rs[i]));
        snprintf(body[i], sizeof(body[i]), "n%d", i);
        pw_http_request req = {.url = u, .body = body[i], .body_len = strlen(body[i])};
        assert_int_equal(pw_http_send(c, &req, done, &rs[i]), PW_OK);
    }
    assert_int_equal(pw_http_client_pending(c), N);
    uint64_t deadline = uv_hrtime() + 15000000000ull;
    while (pw_http_client_pending(c) > 0 && uv_hrtime() < deadline) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "POST|||n%d", i);
        assert_int_equal(rs[i].done, 1);
        assert_string_equal(rs[i].body, want);
    }
    /* In flight when the client closes: each ends once, CANCELLED, before the close callback. */
    url(u, sizeof(u), "http", p.port, "/slow");
    result slow = {0};
    pw_http_request req = {.url = u};
    assert_int_equal(pw_http_send(c, &req, done, &slow), PW_OK);
    uv_run(&loop, UV_RUN_NOWAIT);
    int was_closed = 0;
    pw_http_client_close(c, closed, &was_closed);
    assert_int_equal(slow.done, 0);
    assert_int_equal(pw_http_send(c, &req, done, &slow), PW_FAILED_PRECONDITION);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(slow.done, 1);
    assert_int_equal(slow.status, PW_CANCELLED);
    assert_int_equal(was_closed, 1);
    peer_stop(p);
}

static int make_certs(void **state)
{
    (void)state;
    snprintf(certs, sizeof(certs), "/tmp/pw-http-test-%d", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s/../scripts/certs %s >/dev/null", pw_test_path(""), certs);
    if (system(cmd) != 0) {
        return -1;
    }
    snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
    snprintf(srv_crt, sizeof(srv_crt), "%s/merchant.crt", certs);
    snprintf(srv_key, sizeof(srv_key), "%s/merchant.key", certs);
    snprintf(cli_crt, sizeof(cli_crt), "%s/tests.crt", certs);
    snprintf(cli_key, sizeof(cli_key), "%s/tests.key", certs);
    return 0;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_post_get_and_statuses),
        cmocka_unit_test(test_http_failures),
        cmocka_unit_test(test_http_bad_input),
        cmocka_unit_test(test_http_tls_verified_and_mtls),
        cmocka_unit_test(test_http_many_at_once_and_close_in_flight),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
