/*
 * admin.c: the admin HTTP/1.1 listener (Prometheus scrapes HTTP/1.1). Requests
 * are parsed with Debian's http-parser; responses are small and written
 * whole; connections are kept alive as HTTP/1.1 says unless the client asks
 * otherwise. Routes: /metrics, /healthz, /readyz, /debug. The admin owns its
 * listener and every accepted connection: pw_admin_close closes them all and
 * frees the admin once the last handle is closed.
 */
#include <stdio.h>
#include <string.h>
#include <http_parser.h>
#include <paywire/alloc.h>
#include <paywire/builtins.h>
#include <paywire/log.h>
#include <paywire/metrics.h>
#include "../src/list.h"
#include "../src/net/addr.h"

struct pw_admin {
    uv_tcp_t listener;
    pw_metrics **metrics;
    size_t metrics_count;
    pw_health *health;
    pw_server *server;
    pw__list conns;
    /* The listener and the open connections: freed when the last one closed. */
    int handles;
    int closing;
    pw_admin_close_cb close_cb;
    void *close_ud;
};

typedef struct admin_conn {
    uv_tcp_t tcp;
    pw__list link;
    pw_admin *admin;
    http_parser parser;
    char url[256];
    size_t url_len;
    char rbuf[4096];
    int closing;
} admin_conn;

typedef struct admin_write {
    uv_write_t req;
    admin_conn *conn;
    int close_after;
    pw_buf body;
} admin_write;

static void admin_handle_closed(pw_admin *a)
{
    if (--a->handles > 0) {
        return;
    }
    if (a->close_cb != NULL) {
        a->close_cb(a, a->close_ud);
    }
    pw_free(a->metrics);
    pw_free(a);
}

static void conn_closed(uv_handle_t *h)
{
    admin_conn *c = h->data;
    pw_admin *a = c->admin;
    pw__list_remove(&c->link);
    pw_free(c);
    admin_handle_closed(a);
}

static void listener_closed(uv_handle_t *h)
{
    admin_handle_closed(h->data);
}

static void conn_close(admin_conn *c)
{
    if (!c->closing) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
    }
}

static void write_done(uv_write_t *req, int status)
{
    admin_write *w = req->data;
    if (status != 0 || w->close_after) {
        conn_close(w->conn);
    }
    pw_buf_reset(&w->body);
    pw_free(w);
}

static void respond(admin_conn *c, int code, const char *reason, const char *type, pw_buf *body,
                    int keep_alive)
{
    admin_write *w = pw_calloc(1, sizeof(*w));
    if (w == NULL) {
        conn_close(c);
        return;
    }
    w->conn = c;
    w->close_after = !keep_alive;
    pw_buf_printf(&w->body, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                  code, reason, type, pw_buf_pending(body),
                  keep_alive ? "" : "Connection: close\r\n");
    pw_buf_append(&w->body, pw_buf_head(body), pw_buf_pending(body));
    uv_buf_t b = uv_buf_init((char *)w->body.data, (unsigned int)w->body.len);
    w->req.data = w;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_done) != 0) {
        pw_buf_reset(&w->body);
        pw_free(w);
        conn_close(c);
    }
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    admin_conn *c = p->data;
    size_t room = sizeof(c->url) - 1 - c->url_len;
    size_t n = len < room ? len : room;
    memcpy(c->url + c->url_len, at, n);
    c->url_len += n;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_message_begin(http_parser *p)
{
    admin_conn *c = p->data;
    c->url_len = 0;
    c->url[0] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    admin_conn *c = p->data;
    pw_admin *a = c->admin;
    int keep = http_should_keep_alive(p);
    char *q = strchr(c->url, '?');
    if (q != NULL) {
        *q = '\0';
    }
    pw_buf body = {0};
    const char *text = "text/plain; charset=utf-8";
    if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
        pw_buf_printf(&body, "method not allowed\n");
        respond(c, 405, "Method Not Allowed", text, &body, keep);
    } else if (strcmp(c->url, "/metrics") == 0) {
        pw_metrics_render_all((const pw_metrics *const *)a->metrics, a->metrics_count, &body);
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &body, keep);
    } else if (strcmp(c->url, "/healthz") == 0) {
        pw_buf_printf(&body, "ok\n");
        respond(c, 200, "OK", text, &body, keep);
    } else if (strcmp(c->url, "/readyz") == 0) {
        int ready = a->health == NULL || pw_health_get(a->health, "") == PW_HEALTH_SERVING;
        pw_buf_printf(&body, ready ? "ready\n" : "not ready\n");
        respond(c, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", text, &body, keep);
    } else if (strcmp(c->url, "/debug") == 0) {
        if (a->server != NULL) {
            pw_server_debug(a->server, &body);
        }
        respond(c, 200, "OK", text, &body, keep);
    } else {
        pw_buf_printf(&body, "not found: %s (try /metrics, /healthz, /readyz, /debug)\n", c->url);
        respond(c, 404, "Not Found", text, &body, keep);
    }
    pw_buf_reset(&body);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

static void conn_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)n;
    admin_conn *c = h->data;
    *b = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    admin_conn *c = s->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    size_t done = http_parser_execute(&c->parser, &settings, b->base, (size_t)n);
    if (c->parser.http_errno != HPE_OK || done != (size_t)n) {
        pw_buf body = {0};
        pw_buf_printf(&body, "bad request: %s\n",
                      http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
        respond(c, 400, "Bad Request", "text/plain; charset=utf-8", &body, 0);
        pw_buf_reset(&body);
        uv_read_stop(s);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    pw_admin *a = server->data;
    if (status != 0 || a->closing) {
        return;
    }
    admin_conn *c = pw_calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->admin = a;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    pw__list_push(&a->conns, &c->link);
    a->handles++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read) != 0) {
        conn_close(c);
    }
}

pw_status pw_admin_listen(pw_admin **out, uv_loop_t *loop, const char *address, pw_metrics *m,
                          pw_health *health, pw_server *server, int *port_out)
{
    *out = NULL;
    if (port_out != NULL) {
        *port_out = 0;
    }
    char host[128];
    int port;
    struct sockaddr_storage ss;
    if (pw__parse_host_port(address, host, sizeof(host), &port) != PW_OK ||
        (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
         uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)) {
        return PW_INVALID_ARGUMENT;
    }
    pw_admin *a = pw_calloc(1, sizeof(*a));
    if (a == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *a = (pw_admin){.health = health, .server = server, .handles = 1};
    pw__list_init(&a->conns);
    if (m != NULL && pw_admin_add_metrics(a, m) != PW_OK) {
        pw_free(a);
        return PW_ERRNO(ENOMEM);
    }
    uv_tcp_init(loop, &a->listener);
    a->listener.data = a;
    int rv = uv_tcp_bind(&a->listener, (const struct sockaddr *)&ss, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&a->listener, 64, on_connection);
    }
    if (rv != 0) {
        a->closing = 1;
        uv_close((uv_handle_t *)&a->listener, listener_closed);
        return rv;
    }
    if (port_out != NULL) {
        int len = sizeof(ss);
        uv_tcp_getsockname(&a->listener, (struct sockaddr *)&ss, &len);
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    *out = a;
    return PW_OK;
}

pw_status pw_admin_add_metrics(pw_admin *a, pw_metrics *m)
{
    pw_metrics **list = pw_realloc(a->metrics, (a->metrics_count + 1) * sizeof(*list));
    if (list == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    list[a->metrics_count++] = m;
    a->metrics = list;
    return PW_OK;
}

void pw_admin_close(pw_admin *a, pw_admin_close_cb cb, void *user_data)
{
    if (a == NULL || a->closing) {
        return;
    }
    a->closing = 1;
    a->close_cb = cb;
    a->close_ud = user_data;
    uv_close((uv_handle_t *)&a->listener, listener_closed);
    PW_LIST_FOREACH(node, &a->conns) {
        conn_close(PW_CONTAINER_OF(node, admin_conn, link));
    }
}
