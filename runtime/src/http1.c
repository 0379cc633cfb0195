/*
 * http1.c: HTTP/1.1 on the gRPC port, for JSON calls (connect.c) from tools
 * that do not speak HTTP/2 (curl without --http2, load balancers' health
 * checks, browsers' fetch). A cleartext connection whose first bytes are not
 * the HTTP/2 preface is served here. Debian's http-parser reads requests;
 * each becomes a pw_call fed through the same entry points nghttp2 uses
 * (pw__call_on_header, _on_headers_done, _on_data, _on_half_close), so the
 * method table, interceptors, deadlines and handlers are shared.
 *
 * One request at a time: after a request is complete the parser pauses, and
 * bytes that arrive meanwhile (a pipelining client) wait in `pending` until
 * the response is written.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <http_parser.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"

#define H1_MAX_HEADER_NAME 256

typedef struct pw__h1 {
    http_parser parser;
    pw__sconn *sc;
    pw_call *call;
    /* The call whose response is written; closed on the next pump. */
    pw_call *done;
    pw_buf url;
    pw_buf name;
    pw_buf value;
    pw_buf pending;
    /* When the head of the request being read began (0: not reading one). */
    uint64_t head_started_at;
    int32_t next_id;
    unsigned in_value : 1;
    unsigned expect_continue : 1;
    unsigned keep_alive : 1;
    unsigned closing : 1;
} pw__h1;

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int pw__http1_detect(const uint8_t *data, size_t len)
{
    size_t n = len < sizeof(preface) - 1 ? len : sizeof(preface) - 1;
    return n > 0 && memcmp(data, preface, n) != 0;
}

static int is_hop_header(const char *name)
{
    static const char *const hop[] = {"host",    "connection",        "keep-alive",
                                      "upgrade", "transfer-encoding", "proxy-connection",
                                      "expect",  "http2-settings"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        if (strcmp(name, hop[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One complete header: lower-cased and handed to the call, except hop-by-hop ones. */
static void h1_flush_header(pw__h1 *h)
{
    if (h->name.len == 0) {
        return;
    }
    char name[H1_MAX_HEADER_NAME];
    size_t n = h->name.len < sizeof(name) - 1 ? h->name.len : sizeof(name) - 1;
    for (size_t i = 0; i < n; i++) {
        name[i] = (char)tolower(h->name.data[i]);
    }
    name[n] = '\0';
    if (strcmp(name, "expect") == 0 && h->value.len == 12 &&
        strncasecmp((const char *)h->value.data, "100-continue", 12) == 0) {
        h->expect_continue = 1;
    }
    if (!is_hop_header(name) && h->call != NULL) {
        pw__call_on_header(h->call, (const uint8_t *)name, n,
                           h->value.data ? h->value.data : (const uint8_t *)"", h->value.len);
    }
    h->name.len = h->value.len = 0;
    h->in_value = 0;
}

static int on_message_begin(http_parser *p)
{
    pw__h1 *h = p->data;
    h->url.len = h->name.len = h->value.len = 0;
    h->in_value = 0;
    h->expect_continue = 0;
    h->next_id += 2;
    h->call = pw__call_new(h->sc, h->next_id);
    if (h->call == NULL) {
        return -1;
    }
    /* The head must arrive within the handshake timeout (a slow-header client holds nothing). */
    h->head_started_at = uv_now(h->sc->conn.h.handle.loop);
    pw__sconn_lifecycle_kick(h->sc, h->head_started_at + h->sc->server->opts.handshake_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    pw__h1 *h = p->data;
    return pw_buf_append(&h->url, at, len) == PW_OK ? 0 : -1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    pw__h1 *h = p->data;
    if (h->in_value) {
        h1_flush_header(h);
    }
    return pw_buf_append(&h->name, at, len) == PW_OK ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    pw__h1 *h = p->data;
    h->in_value = 1;
    return pw_buf_append(&h->value, at, len) == PW_OK ? 0 : -1;
}

static int on_headers_complete(http_parser *p)
{
    pw__h1 *h = p->data;
    h->head_started_at = 0;
    h1_flush_header(h);
    const char *method = http_method_str((enum http_method)p->method);
    pw__call_on_header(h->call, (const uint8_t *)":method", 7, (const uint8_t *)method,
                       strlen(method));
    /* The target as sent, query included (call.c reads a Connect GET's query, else drops it). */
    pw__call_on_header(h->call, (const uint8_t *)":path", 5,
                       h->url.data ? h->url.data : (const uint8_t *)"", h->url.len);
    h->keep_alive = http_should_keep_alive(p) ? 1u : 0u;
    if (h->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        pw__conn_write(&h->sc->conn, (const uint8_t *)cont, sizeof(cont) - 1);
        pw__conn_flush(&h->sc->conn);
    }
    pw__call_on_headers_done(h->call);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    pw__h1 *h = p->data;
    pw__call_on_data(h->call, (const uint8_t *)at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    pw__h1 *h = p->data;
    pw__call_on_half_close(h->call);
    /* Nothing more is parsed until this request has its response. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

pw_status pw__http1_start(pw__sconn *sc)
{
    pw__h1 *h = pw_calloc(1, sizeof(*h));
    if (h == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->sc = sc;
    h->next_id = -1;
    sc->h1 = h;
    sc->http1 = 1;
    if (sc->session != NULL) {
        nghttp2_session_del(sc->session);
        sc->session = NULL;
    }
    PW_LOG(PW_LOG_DEBUG, "server", "%s speaks HTTP/1.1", sc->conn.address);
    /* The handshake deadline no longer applies: re-evaluate the others. */
    pw__sconn_lifecycle_kick(sc, 0);
    return PW_OK;
}

/* Answers status (e.g. "400 Bad Request") with why as plain text, then closes. */
static void h1_refuse(pw__h1 *h, const char *status, const char *why, pw_status close_status)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     "content-length: %zu\r\nconnection: close\r\n\r\n",
                     status, strlen(why) + 1);
    pw__conn_write(&h->sc->conn, (const uint8_t *)head, (size_t)n);
    pw__conn_write(&h->sc->conn, (const uint8_t *)why, strlen(why));
    pw__conn_write(&h->sc->conn, (const uint8_t *)"\n", 1);
    h->closing = 1;
    pw__conn_close(&h->sc->conn, close_status, 1);
}

/* A request we cannot parse: 400 with the parser's reason, then close. */
static void h1_bad_request(pw__h1 *h)
{
    h1_refuse(h, "400 Bad Request", http_errno_description(HTTP_PARSER_ERRNO(&h->parser)),
              PW_INVALID_ARGUMENT);
}

uint64_t pw__http1_head_started_at(const pw__sconn *sc)
{
    return sc->h1 != NULL && !sc->h1->closing ? sc->h1->head_started_at : 0;
}

void pw__http1_head_timeout(pw__sconn *sc)
{
    h1_refuse(sc->h1, "408 Request Timeout", "the request's headers did not arrive in time",
              PW_DEADLINE_EXCEEDED);
}

/* Parses what it can; keeps the rest while a request waits for its response. */
static void h1_parse(pw__h1 *h, const uint8_t *data, size_t len)
{
    if (h->closing) {
        return;
    }
    if (HTTP_PARSER_ERRNO(&h->parser) == HPE_PAUSED) {
        pw_buf_append(&h->pending, data, len);
        return;
    }
    size_t done = http_parser_execute(&h->parser, &h1_settings, (const char *)data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_PAUSED) {
        pw_buf_append(&h->pending, data + done, len - done);
    } else if (e != HPE_OK || (done != len && !h->parser.upgrade)) {
        h1_bad_request(h);
    }
}

pw_status pw__http1_feed(pw__sconn *sc, const uint8_t *data, size_t len)
{
    h1_parse(sc->h1, data, len);
    return PW_OK;
}

void pw__http1_respond(pw_call *call, const nghttp2_nv *nv, size_t n)
{
    pw__sconn *sc = call->sc;
    pw__h1 *h = sc->h1;
    pw_buf head = {0};
    int status = 500;
    for (size_t i = 0; i < n; i++) {
        if (nv[i].namelen == 7 && memcmp(nv[i].name, ":status", 7) == 0) {
            status = atoi((const char *)nv[i].value);
        }
    }
    if (sc->draining || (sc->server && sc->server->shutting_down)) {
        h->keep_alive = 0;
    }
    pw_buf_printf(&head, "HTTP/1.1 %d %s\r\n", status, http_status_str((enum http_status)status));
    for (size_t i = 0; i < n; i++) {
        if (nv[i].namelen > 0 && nv[i].name[0] != ':') {
            pw_buf_printf(&head, "%.*s: %.*s\r\n", (int)nv[i].namelen, (const char *)nv[i].name,
                          (int)nv[i].valuelen, (const char *)nv[i].value);
        }
    }
    size_t body = pw_buf_pending(&call->out.buf);
    pw_buf_printf(&head, "content-length: %zu\r\nconnection: %s\r\n\r\n", body,
                  h->keep_alive ? "keep-alive" : "close");
    pw__conn_write(&sc->conn, head.data, head.len);
    pw__conn_write(&sc->conn, pw__outq_data(&call->out), body);
    pw__outq_consume(&call->out, body);
    pw_buf_reset(&head);
    pw__conn_flush(&sc->conn);
    h->done = call;
    pw__sconn_schedule(sc);
}

/* After a response: the call's "stream" closes, and parsing resumes (or the connection closes). */
void pw__http1_pump(pw__sconn *sc)
{
    pw__h1 *h = sc->h1;
    pw_call *call = h->done;
    if (call == NULL) {
        return;
    }
    h->done = NULL;
    h->call = NULL;
    pw__list_remove(&call->link);
    pw__call_on_stream_close(call, NGHTTP2_NO_ERROR);
    if (pw__list_empty(&sc->calls)) {
        pw__sconn_on_idle(sc);
    }
    if (!h->keep_alive) {
        h->closing = 1;
        pw__conn_close(&sc->conn, PW_OK, 1);
        return;
    }
    http_parser_pause(&h->parser, 0);
    if (pw_buf_pending(&h->pending) > 0) {
        pw_buf more = h->pending;
        h->pending = (pw_buf){0};
        h1_parse(h, pw_buf_head(&more), pw_buf_pending(&more));
        pw_buf_reset(&more);
    }
}

void pw__http1_free(pw__sconn *sc)
{
    pw__h1 *h = sc->h1;
    if (h == NULL) {
        return;
    }
    pw_buf_reset(&h->url);
    pw_buf_reset(&h->name);
    pw_buf_reset(&h->value);
    pw_buf_reset(&h->pending);
    pw_free(h);
    sc->h1 = NULL;
}
