/* Tracing across two servers: one trace id, correct parents, OTLP/HTTP JSON at a receiver. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/trace.h>
#include "pw_test.h"

/* ---- a minimal OTLP/HTTP receiver: collects POST bodies ---- */

typedef struct receiver {
    uv_tcp_t server;
    char bodies[8192];
    int posts;
} receiver;

typedef struct rconn {
    uv_tcp_t tcp;
    receiver *r;
    pw_buf in;
    uv_write_t w;
    int answered;
} rconn;

static void rconn_closed(uv_handle_t *h)
{
    rconn *c = h->data;
    pw_buf_reset(&c->in);
    free(c);
}

static void rconn_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    static char buf[65536];
    *b = uv_buf_init(buf, n < sizeof(buf) ? (unsigned)n : sizeof(buf));
}

static void rconn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    rconn *c = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)&c->tcp, rconn_closed);
        return;
    }
    pw_buf_append(&c->in, b->base, (size_t)n);
    pw_buf_append(&c->in, "", 1);
    c->in.len--;
    const char *text = (const char *)c->in.data;
    const char *end = strstr(text, "\r\n\r\n");
    const char *cl = strstr(text, "Content-Length: ");
    if (c->answered || end == NULL || cl == NULL) {
        return;
    }
    size_t want = strtoul(cl + 16, NULL, 10);
    if ((size_t)(text + c->in.len - (end + 4)) < want) {
        return;
    }
    strncat(c->r->bodies, end + 4, sizeof(c->r->bodies) - strlen(c->r->bodies) - 1);
    c->r->posts++;
    c->answered = 1;
    static char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    uv_buf_t out = uv_buf_init(ok, sizeof(ok) - 1);
    uv_write(&c->w, s, &out, 1, NULL);
}

static void receiver_accept(uv_stream_t *server, int status)
{
    if (status != 0) {
        return;
    }
    rconn *c = calloc(1, sizeof(*c));
    c->r = server->data;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    uv_accept(server, (uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, rconn_alloc, rconn_read);
}

/* ---- two servers: A's handler calls B ---- */

typedef struct app {
    pw_channel *to_b;
    pw_test_call child;
} app;

static void leaf(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_send_bytes(call, pw_slice_make("leaf", 4));
    pw_call_finish(call, PW_OK, NULL);
}

static void child_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    pw_call *parent = ud;
    pw_call_send_bytes(parent, pw_slice_make("root", 4));
    pw_call_finish(parent, r->code, NULL);
}

static const pw_client_ops child_ops = {.on_done = child_done};

static void root(pw_call *call, void *ud)
{
    app *a = ud;
    pw_call_options o = {.parent = call};
    pw_client_call *c;
    assert_int_equal(pw_client_call_start(&c, a->to_b, "/b.Svc/Leaf", &o, &child_ops, call), PW_OK);
    pw_client_call_send_bytes(c, pw_slice_make("", 0));
    pw_client_call_close_send(c);
}

typedef struct span_view {
    char trace[40], id[20], parent[20], name[64];
    int kind;
} span_view;

static int spans_parse(const char *text, span_view *out, int max)
{
    int n = 0;
    for (const char *p = text; n < max && (p = strstr(p, "{\"traceId\":\"")) != NULL; p++) {
        span_view *s = &out[n++];
        memset(s, 0, sizeof(*s));
        sscanf(p,
               "{\"traceId\":\"%32[0-9a-f]\",\"spanId\":\"%16[0-9a-f]\",\"parentSpanId\":\"%16[0-"
               "9a-f]",
               s->trace, s->id, s->parent);
        const char *nm = strstr(p, "\"name\":\"");
        if (nm != NULL) {
            sscanf(nm, "\"name\":\"%63[^\"]\",\"kind\":%d", s->name, &s->kind);
        }
    }
    return n;
}

static const span_view *find(const span_view *v, int n, const char *name, int kind)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(v[i].name, name) == 0 && v[i].kind == kind) {
            return &v[i];
        }
    }
    return NULL;
}

static void tracer_closed(pw_tracer *t, void *ud)
{
    (void)t;
    ++*(int *)ud;
}

static void test_trace_across_two_servers(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    receiver rx = {0};
    uv_tcp_init(&loop, &rx.server);
    rx.server.data = &rx;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_bind(&rx.server, (const struct sockaddr *)&sa, 0);
    uv_listen((uv_stream_t *)&rx.server, 16, receiver_accept);
    int len = sizeof(sa);
    uv_tcp_getsockname(&rx.server, (struct sockaddr *)&sa, &len);
    char endpoint[96];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d/v1/traces", ntohs(sa.sin_port));

    pw_tracer *ta, *tb;
    assert_int_equal(pw_tracer_new(&ta, &loop, "service-a", endpoint), PW_OK);
    assert_int_equal(pw_tracer_new(&tb, &loop, "service-b", endpoint), PW_OK);
    pw_server *a, *b;
    int pa, pb;
    app ctx = {0};
    assert_int_equal(pw_server_new(&b, &loop, NULL), PW_OK);
    assert_int_equal(pw_tracer_observe_server(tb, b), PW_OK);
    pw_method mb = {.path = "/b.Svc/Leaf", .kind = PW_METHOD_UNARY, .handler = leaf};
    pw_server_add_method(b, &mb);
    assert_int_equal(pw_server_listen(b, "127.0.0.1:0", NULL, &pb), PW_OK);
    assert_int_equal(pw_server_new(&a, &loop, NULL), PW_OK);
    assert_int_equal(pw_tracer_observe_server(ta, a), PW_OK);
    pw_method ma = {
        .path = "/a.Svc/Root", .kind = PW_METHOD_UNARY, .handler = root, .user_data = &ctx};
    pw_server_add_method(a, &ma);
    assert_int_equal(pw_server_listen(a, "127.0.0.1:0", NULL, &pa), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", pb);
    assert_int_equal(pw_channel_new(&ctx.to_b, &loop, target, NULL), PW_OK);
    assert_int_equal(pw_tracer_observe_channel(ta, ctx.to_b), PW_OK);

    snprintf(target, sizeof(target), "127.0.0.1:%d", pa);
    pw_channel *client;
    assert_int_equal(pw_channel_new(&client, &loop, target, NULL), PW_OK);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, client, "/a.Svc/Root", NULL, "go", 2, &r), PW_OK);
    pw_test_call_reset(&r);

    /* Let the server calls end (their spans finish when the streams close), then export. */
    pw_channel_close(client, NULL, NULL);
    pw_channel_close(ctx.to_b, NULL, NULL);
    for (int i = 0; i < 50; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    pw_tracer_flush(ta);
    pw_tracer_flush(tb);
    uint64_t end = uv_now(&loop) + 3000;
    while (rx.posts < 2 && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(rx.posts, 2);
    assert_non_null(
        strstr(rx.bodies, "\"service.name\",\"value\":{\"stringValue\":\"service-a\"}"));

    span_view v[8];
    int n = spans_parse(rx.bodies, v, 8);
    assert_int_equal(n, 3);
    const span_view *a_srv = find(v, n, "a.Svc/Root", 2);
    const span_view *a_cli = find(v, n, "b.Svc/Leaf", 3);
    const span_view *b_srv = find(v, n, "b.Svc/Leaf", 2);
    assert_non_null(a_srv);
    assert_non_null(a_cli);
    assert_non_null(b_srv);
    assert_string_equal(a_srv->trace, a_cli->trace);
    assert_string_equal(a_srv->trace, b_srv->trace);
    assert_string_equal(a_srv->parent, "");
    assert_string_equal(a_cli->parent, a_srv->id);
    assert_string_equal(b_srv->parent, a_cli->id);

    int closed = 0;
    pw_tracer_close(ta, tracer_closed, &closed);
    pw_tracer_close(ta, tracer_closed, &closed); /* only the first call counts */
    pw_tracer_close(tb, NULL, NULL);
    assert_int_equal(closed, 0); /* deferred */
    uv_close((uv_handle_t *)&rx.server, NULL);
    pw_server_close(a, NULL, NULL);
    pw_server_close(b, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(closed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_across_two_servers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
