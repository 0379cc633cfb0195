/*
 * JSON over HTTP (pw_json_enable): Connect-style unary calls against a real
 * server on its own thread, over HTTP/1.1 (raw sockets) and HTTP/2 (raw
 * nghttp2 client): success, bad JSON, rich errors, deadlines, limits,
 * keep-alive and pipelining, streaming methods refused, JSON switched off,
 * HTTP/1.1 under TLS when ALPN chooses it.
 */
#include <stdatomic.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/errors.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include <protobuf-c/protobuf-c.h>
#include "pw_test.h"
#include "pw_test_raw.h"
#include "json_service.h"
#include "pwtest/json/v1/all.pb-c.h"

#define CERTS "certs-json-http-test"

typedef struct srv {
    pw_test_thread thread;
    pw_server *server;
    int port;
    int tls_port; /* the same server under TLS */
    int json;
    atomic_int cancels;
} srv;

static void srv_setup(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_options o = {.max_recv_message_size = 4096, .handshake_timeout_ms = 500};
    assert_int_equal(pw_server_new(&s->server, &t->loop, &o), PW_OK);
    assert_int_equal(pw_test_json_service_add(s->server, &s->cancels), PW_OK);
    if (s->json) {
        assert_int_equal(pw_json_enable(s->server), PW_OK);
    }
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", NULL, &s->port), PW_OK);
    pw_tls_config tls = {.cert_file = CERTS "/server.pem", .key_file = CERTS "/server.key"};
    assert_int_equal(pw_server_listen(s->server, "127.0.0.1:0", &tls, &s->tls_port), PW_OK);
}

static void srv_teardown(pw_test_thread *t)
{
    srv *s = t->user_data;
    pw_server_close(s->server, NULL, NULL);
}

static srv *srv_start(int json)
{
    srv *s = calloc(1, sizeof(*s));
    s->json = json;
    s->thread = (pw_test_thread){.setup = srv_setup, .teardown = srv_teardown, .user_data = s};
    pw_test_thread_start(&s->thread);
    return s;
}

static void srv_stop(srv *s)
{
    pw_test_thread_stop(&s->thread);
    free(s);
}

static int setup(void **state)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "bash %s/interop/make_certs.sh " CERTS, PW_TEST_DIR);
    if (system(cmd) != 0) {
        return -1;
    }
    *state = srv_start(1);
    return 0;
}

static int teardown(void **state)
{
    srv_stop(*state);
    return 0;
}

/* Sends raw HTTP/1.1 bytes, reads until the server closes; returns what came back. */
static char *h1_exchange(srv *s, const char *request)
{
    static char got[16384];
    size_t n = 0;
    assert_true(pw_test_raw_exchange(s->port, request, strlen(request), 5000, (uint8_t *)got,
                                     sizeof(got) - 1, &n));
    got[n] = '\0';
    return got;
}

/* One POST with a JSON body and connection: close; extra is more header lines. */
static char *h1_post(srv *s, const char *path, const char *extra, const char *body)
{
    char req[8192];
    snprintf(req, sizeof(req),
             "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             path, extra ? extra : "", strlen(body), body);
    return h1_exchange(s, req);
}

static const char *body_of(const char *response)
{
    const char *b = strstr(response, "\r\n\r\n");
    assert_non_null(b);
    return b + 4;
}

static void test_json_h1_echo(void **state)
{
    srv *s = *state;
    char *r =
        h1_post(s, "/pwtest.Json/Echo", "X-Reply: hi\r\n",
                "{\"i64\": 12, \"text\": \"caf\\u00e9\", \"inner\": {\"amount_minor\": \"5\"}}");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "content-type: application/json\r\n"));
    assert_non_null(strstr(r, "x-reply: hi\r\n"));
    assert_non_null(strstr(r, "trailer-x-after: done\r\n"));
    assert_string_equal(
        body_of(r), "{\"i64\":\"12\",\"text\":\"caf\xc3\xa9\",\"inner\":{\"amountMinor\":\"5\"}}");
    /* An empty body is an empty message. */
    r = h1_post(s, "/pwtest.Json/Echo", NULL, "");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(body_of(r), "{}");
}

static void test_json_h1_bad_request_names_the_field(void **state)
{
    srv *s = *state;
    char *r = h1_post(s, "/pwtest.Json/Echo", NULL, "{\"inner\": {\"amountMinor\": \"ten\"}}");
    assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
    assert_string_equal(body_of(r),
                        "{\"code\":\"invalid_argument\",\"message\":\"bad JSON request: "
                        "inner.amountMinor: expected an integer, got \\\"ten\\\"\"}");
    r = h1_post(s, "/pwtest.Json/Echo", NULL, "{\"i64\": 1");
    assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(body_of(r), "invalid JSON at line 1"));
    r = h1_post(s, "/pwtest.Json/Echo", NULL, "{\"merchant\": 1}");
    assert_non_null(strstr(body_of(r), "unknown field \\\"merchant\\\" in pwtest.json.v1.All"));
}

static void test_json_h1_error_details(void **state)
{
    srv *s = *state;
    char *r = h1_post(s, "/pwtest.Json/Reject", NULL, "{}");
    assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
    assert_null(strstr(r, "grpc-status-details-bin"));
    const char *b = body_of(r);
    assert_non_null(strstr(b, "{\"code\":\"failed_precondition\",\"message\":\"merchant "
                              "\\\"mer_1\\\" is suspended\",\"details\":[{\"type\":"
                              "\"google.rpc.ErrorInfo\",\"value\":\""));
    assert_non_null(strstr(b, "\"debug\":{\"reason\":\"MERCHANT_SUSPENDED\",\"domain\":"
                              "\"merchant.paywire\"}}"));
    assert_non_null(strstr(b, "\"type\":\"google.rpc.BadRequest\""));
    assert_non_null(strstr(b, "{\"fieldViolations\":[{\"field\":\"merchant.country\""));
}

static void test_json_h1_deadline_and_routing(void **state)
{
    srv *s = *state;
    int before = atomic_load(&s->cancels);
    char *r = h1_post(s, "/pwtest.Json/Never", "Connect-Timeout-Ms: 50\r\n", "{}");
    assert_non_null(strstr(r, "HTTP/1.1 504 Gateway Timeout\r\n"));
    assert_non_null(strstr(body_of(r), "\"code\":\"deadline_exceeded\""));
    assert_int_equal(atomic_load(&s->cancels), before + 1);
    r = h1_post(s, "/pwtest.Json/Never", "Connect-Timeout-Ms: soon\r\n", "{}");
    assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(body_of(r), "invalid connect-timeout-ms"));
    r = h1_post(s, "/pwtest.Json/Nope", NULL, "{}");
    assert_non_null(strstr(r, "HTTP/1.1 501 Not Implemented\r\n"));
    assert_non_null(strstr(body_of(r), "unknown method /pwtest.Json/Nope"));
    r = h1_post(s, "/pwtest.Json/Stream", NULL, "{}");
    assert_non_null(strstr(r, "HTTP/1.1 501 Not Implemented\r\n"));
    assert_non_null(strstr(body_of(r), "unary methods only"));
    r = h1_post(s, "/pwtest.Json/Silent", NULL, "{}");
    assert_non_null(strstr(r, "HTTP/1.1 500 Internal Server Error\r\n"));
    assert_non_null(strstr(body_of(r), "without a response message"));
}

static void test_json_h1_limits_and_content_types(void **state)
{
    srv *s = *state;
    char big[6000];
    snprintf(big, sizeof(big), "{\"text\":\"%0*d\"}", 5000, 0);
    char *r = h1_post(s, "/pwtest.Json/Echo", NULL, big);
    assert_non_null(strstr(r, "HTTP/1.1 429 Too Many Requests\r\n"));
    assert_non_null(strstr(body_of(r), "\"code\":\"resource_exhausted\""));
    r = h1_exchange(s, "POST /pwtest.Json/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/grpc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 415 Unsupported Media Type\r\n"));
    assert_non_null(strstr(body_of(r), "gRPC needs HTTP/2"));
    r = h1_post(s, "/pwtest.Json/Echo", "Content-Encoding: br\r\n", "{}");
    assert_non_null(strstr(body_of(r), "content-encoding \\\"br\\\" is not supported"));
}

static void test_json_h1_keep_alive_pipelining_and_continue(void **state)
{
    srv *s = *state;
    /* Two requests in one write: both answered in order on one connection. */
    char *r = h1_exchange(s, "POST /pwtest.Json/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             "application/json\r\nContent-Length: 9\r\n\r\n{\"i32\":1}"
                             "POST /pwtest.Json/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             "application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                             "{\"i32\":2}");
    char *first = strstr(r, "{\"i32\":1}");
    char *second = strstr(r, "{\"i32\":2}");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_non_null(strstr(r, "connection: keep-alive\r\n"));
    /* Expect: 100-continue gets its interim response before the body is read. */
    r = h1_post(s, "/pwtest.Json/Echo", "Expect: 100-continue\r\n", "{\"i32\":3}");
    assert_true(strncmp(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0);
}

/* Request headers for the raw HTTP/2 client (static storage; content_type NULL: none). */
static const char *const *h2_headers(const char *method, const char *path, const char *content_type)
{
    static const char *h[11];
    const char *const all[] = {":method",    method, ":scheme",      "http",       ":path", path,
                               ":authority", "x",    "content-type", content_type, NULL};
    memcpy(h, all, sizeof(all));
    if (content_type == NULL) {
        h[8] = NULL;
    }
    return h;
}

static void test_json_h2(void **state)
{
    srv *s = *state;
    pw_test_raw_result r;
    const char body[] = "{\"u64\":\"18446744073709551615\"}";
    assert_int_equal(
        pw_test_raw_request(s->port, h2_headers("POST", "/pwtest.Json/Echo", "application/json"),
                            body, sizeof(body) - 1, 1, 0, 5000, &r),
        0);
    assert_int_equal(r.http_status, 200);
    assert_int_equal(r.grpc_status, -1); /* no gRPC trailers on a JSON response */
    assert_int_equal(r.data_bytes, sizeof(body) - 1);
    assert_int_equal(pw_test_raw_request(s->port,
                                         h2_headers("POST", "/pwtest.Json/Reject",
                                                    "application/json; charset=utf-8"),
                                         "{}", 2, 1, 0, 5000, &r),
                     0);
    assert_int_equal(r.http_status, 400);
    assert_true(r.data_bytes > 100);
}

/*
 * Over TLS with ALPN alpn ("\x08http/1.1" style list); sends request and reads
 * until the server closes. Returns the protocol ALPN chose ("" when the
 * handshake failed) and what came back in got.
 */
static const char *tls_exchange(int port, const char *alpn, const char *request, char *got,
                                size_t cap)
{
    static char chosen[16];
    chosen[0] = '\0';
    got[0] = '\0';
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, CERTS "/ca.pem", NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)alpn, (unsigned)strlen(alpn));
    SSL *ssl = SSL_new(ctx);
    int fd = pw_test_raw_connect(port);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) == 1) {
        const unsigned char *p;
        unsigned len;
        SSL_get0_alpn_selected(ssl, &p, &len);
        snprintf(chosen, sizeof(chosen), "%.*s", (int)len, (const char *)p);
        SSL_write(ssl, request, (int)strlen(request));
        size_t n = 0;
        int r;
        while (n < cap - 1 && (r = SSL_read(ssl, got + n, (int)(cap - 1 - n))) > 0) {
            n += (size_t)r;
        }
        got[n] = '\0';
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return chosen;
}

/* A client that offers only HTTP/1.1 gets it under TLS while JSON is on; h2 wins when offered. */
static void test_json_h1_over_tls(void **state)
{
    srv *s = *state;
    static const char req[] = "POST /pwtest.Json/Echo HTTP/1.1\r\nHost: localhost\r\n"
                              "Content-Type: application/json\r\nContent-Length: 10\r\n"
                              "Connection: close\r\n\r\n{\"i32\": 7}";
    char got[4096];
    assert_string_equal(tls_exchange(s->tls_port, "\x08http/1.1", req, got, sizeof(got)),
                        "http/1.1");
    assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(body_of(got), "{\"i32\":7}");
    assert_string_equal(tls_exchange(s->tls_port, "\x08http/1.1\x02h2", "", got, sizeof(got)),
                        "h2");
    /* Without JSON there is nothing to serve over HTTP/1.1: the handshake fails (no ALPN match). */
    srv *off = srv_start(0);
    assert_string_equal(tls_exchange(off->tls_port, "\x08http/1.1", req, got, sizeof(got)), "");
    assert_string_equal(tls_exchange(off->tls_port, "\x02h2", "", got, sizeof(got)), "h2");
    srv_stop(off);
}

static char *h1_get(srv *s, const char *target)
{
    char req[4096];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
             target);
    return h1_exchange(s, req);
}

/* Connect's GET form serves NO_SIDE_EFFECTS methods from the query string, and only them. */
static void test_json_connect_get(void **state)
{
    srv *s = *state;
    char *r = h1_get(s, "/pwtest.Json/Lookup?connect=v1&encoding=json&message=%7B%22i32%22%3A7%7D");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_string_equal(body_of(r), "{\"i32\":7}");
    /* {"text":"a b"} as unpadded base64url, and '+' as a space in plain form. */
    r = h1_get(s, "/pwtest.Json/Lookup?encoding=json&base64=1&message=eyJ0ZXh0IjoiYSBiIn0");
    assert_string_equal(body_of(r), "{\"text\":\"a b\"}");
    r = h1_get(s, "/pwtest.Json/Lookup?encoding=json&message=%7B%22text%22:%22a+b%22%7D");
    assert_string_equal(body_of(r), "{\"text\":\"a b\"}");
    r = h1_get(s, "/pwtest.Json/Lookup?message=%7B%22i32%22%3A%22x%22%7D&encoding=json");
    assert_non_null(strstr(r, "HTTP/1.1 400 "));
    assert_non_null(strstr(body_of(r), "i32: expected an integer"));
    r = h1_get(s, "/pwtest.Json/Echo?encoding=json&message=%7B%7D");
    assert_non_null(strstr(r, "HTTP/1.1 405 "));
    assert_non_null(strstr(r, "NO_SIDE_EFFECTS; POST the JSON to /pwtest.Json/Echo"));
    r = h1_get(s, "/pwtest.Json/Lookup?encoding=proto&message=");
    assert_non_null(strstr(r, "HTTP/1.1 415 "));
    r = h1_get(s, "/pwtest.Json/Lookup?encoding=json&message=%7");
    assert_non_null(strstr(r, "HTTP/1.1 400 "));
    r = h1_get(s, "/pwtest.Json/Lookup?encoding=json");
    assert_non_null(strstr(r, "HTTP/1.1 405 "));
    assert_non_null(strstr(r, "?encoding=json&message="));
    /* The same over HTTP/2. */
    pw_test_raw_result res;
    const char *const *get =
        h2_headers("GET", "/pwtest.Json/Lookup?encoding=json&message=%7B%22i32%22%3A9%7D", NULL);
    assert_int_equal(pw_test_raw_request(s->port, get, NULL, 0, 1, 0, 5000, &res), 0);
    assert_int_equal(res.http_status, 200);
    assert_int_equal(res.data_bytes, strlen("{\"i32\":9}"));
}

/* A client that sends its headers slowly gets 408 once the handshake timeout passes. */
static void test_json_h1_slow_head_is_408(void **state)
{
    srv *s = *state;
    uint64_t t0 = uv_hrtime();
    char *r = h1_exchange(s, "POST /pwtest.Json/Echo HTTP/1.1\r\nHost: x\r\nContent-Ty");
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_non_null(strstr(r, "HTTP/1.1 408 Request Timeout\r\n"));
    assert_non_null(strstr(r, "did not arrive in time"));
    assert_true(ms >= 450 && ms < 3000);
}

static void test_json_off_is_415(void **state)
{
    (void)state;
    srv *s = srv_start(0);
    pw_test_raw_result r;
    assert_int_equal(
        pw_test_raw_request(s->port, h2_headers("POST", "/pwtest.Json/Echo", "application/json"),
                            "{}", 2, 1, 0, 5000, &r),
        0);
    assert_int_equal(r.http_status, 415);
    assert_non_null(strstr(r.grpc_message, "JSON is not enabled"));
    srv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_h1_echo),
        cmocka_unit_test(test_json_h1_bad_request_names_the_field),
        cmocka_unit_test(test_json_h1_error_details),
        cmocka_unit_test(test_json_h1_deadline_and_routing),
        cmocka_unit_test(test_json_h1_limits_and_content_types),
        cmocka_unit_test(test_json_h1_keep_alive_pipelining_and_continue),
        cmocka_unit_test(test_json_h2),
        cmocka_unit_test(test_json_h1_over_tls),
        cmocka_unit_test(test_json_h1_slow_head_is_408),
        cmocka_unit_test(test_json_connect_get),
        cmocka_unit_test(test_json_off_is_415),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
