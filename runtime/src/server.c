/*
 * server.c: listeners, the method table and server-side HTTP/2 connections.
 * Each accepted socket becomes a pw__sconn with an nghttp2 server session fed
 * through the memory API. Calls (call.c) hold a reference on their connection,
 * so a connection's memory (and its peer identity) outlives its socket until
 * the last handler has finished.
 */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"
#include "h2/session.h"
#include "net/addr.h"

typedef struct pw__listener {
    pw__list link;
    pw_server *server;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    SSL_CTX *ssl_ctx;
    int is_pipe;
} pw__listener;

/* ---- method table: open addressing on the path, FNV-1a ---- */

static uint64_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

static pw_status table_insert(pw__method_table *t, const pw_method *m)
{
    if ((t->count + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        pw_method **slots = pw_calloc(cap, sizeof(*slots));
        if (slots == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->slots[i] != NULL) {
                size_t j = path_hash(t->slots[i]->path) & (cap - 1);
                while (slots[j] != NULL) {
                    j = (j + 1) & (cap - 1);
                }
                slots[j] = t->slots[i];
            }
        }
        pw_free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    size_t j = path_hash(m->path) & (t->cap - 1);
    while (t->slots[j] != NULL) {
        if (strcmp(t->slots[j]->path, m->path) == 0) {
            return PW_ALREADY_EXISTS;
        }
        j = (j + 1) & (t->cap - 1);
    }
    pw_method *copy = pw_malloc(sizeof(*copy));
    if (copy == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *copy = *m;
    t->slots[j] = copy;
    t->count++;
    return PW_OK;
}

static void table_free(pw__method_table *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        pw_free(t->slots[i]);
    }
    pw_free(t->slots);
}

const pw_method *pw__server_find(const pw_server *s, const char *path)
{
    const pw__method_table *t = &s->methods;
    if (t->cap == 0) {
        return NULL;
    }
    size_t j = path_hash(path) & (t->cap - 1);
    while (t->slots[j] != NULL) {
        if (strcmp(t->slots[j]->path, path) == 0) {
            return t->slots[j];
        }
        j = (j + 1) & (t->cap - 1);
    }
    return NULL;
}

int pw__server_has_service(const pw_server *s, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
        return 0;
    }
    size_t n = (size_t)(slash - path) + 1;
    for (size_t i = 0; i < s->methods.cap; i++) {
        const pw_method *m = s->methods.slots[i];
        if (m != NULL && strncmp(m->path, path, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- server object ---- */

void pw__ignore_sigpipe(void)
{
    /*
     * Writing to a socket the peer closed raises SIGPIPE, whose default action
     * ends the process. libuv leaves this to the application; an RPC runtime
     * must survive vanished peers, so we ignore it unless the application set
     * its own handler.
     */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
}

pw_status pw_server_new(pw_server **out, uv_loop_t *loop, const pw_server_options *opts)
{
    *out = NULL;
    pw_server *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw__ignore_sigpipe();
    s->loop = loop;
    if (opts != NULL) {
        s->opts = *opts;
    }
    if (s->opts.max_recv_message_size == 0) {
        s->opts.max_recv_message_size = PW_DEFAULT_MAX_MESSAGE;
    }
    if (s->opts.max_send_message_size == 0) {
        s->opts.max_send_message_size = PW_DEFAULT_MAX_MESSAGE;
    }
    if (s->opts.max_concurrent_streams == 0) {
        s->opts.max_concurrent_streams = PW_DEFAULT_MAX_STREAMS;
    }
    if (s->opts.write_high_water == 0) {
        s->opts.write_high_water = PW_DEFAULT_HIGH_WATER;
    }
    pw_server_options *o = &s->opts;
    o->max_header_list_size = o->max_header_list_size ? o->max_header_list_size : 16384;
    o->max_connections = o->max_connections ? o->max_connections : 10000;
    o->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 300000;
    o->max_connection_age_ms = o->max_connection_age_ms ? o->max_connection_age_ms : PW_DISABLED;
    o->max_connection_age_grace_ms =
        o->max_connection_age_grace_ms ? o->max_connection_age_grace_ms : 30000;
    o->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 10000;
    o->keepalive_time_ms = o->keepalive_time_ms ? o->keepalive_time_ms : 7200000;
    o->keepalive_timeout_ms = o->keepalive_timeout_ms ? o->keepalive_timeout_ms : 20000;
    o->min_ping_interval_ms = o->min_ping_interval_ms ? o->min_ping_interval_ms : 300000;
    pw__list_init(&s->listeners);
    pw__list_init(&s->conns);
    pw__tick_init(&s->tick, loop, s);
    uv_timer_init(loop, &s->grace_timer);
    s->grace_timer.data = s;
    s->open_handles = 1; /* the grace timer, closed by pw_server_close */
    *out = s;
    return PW_OK;
}

pw_status pw_server_add_method(pw_server *s, const pw_method *m)
{
    if (m->path == NULL || m->path[0] != '/' || strchr(m->path + 1, '/') == NULL ||
        m->handler == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    return table_insert(&s->methods, m);
}

pw_status pw_server_add_file(pw_server *s, const pw_file_descriptor *file)
{
    for (size_t i = 0; i < s->file_count; i++) {
        if (s->files[i] == file || strcmp(s->files[i]->name, file->name) == 0) {
            return PW_OK;
        }
    }
    if (s->file_count == s->file_cap) {
        size_t cap = s->file_cap ? s->file_cap * 2 : 16;
        const pw_file_descriptor **files = pw_realloc(s->files, cap * sizeof(*files));
        if (files == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        s->files = files;
        s->file_cap = cap;
    }
    s->files[s->file_count++] = file;
    for (size_t i = 0; i < file->dep_count; i++) {
        pw_status rv = pw_server_add_file(s, file->deps[i]);
        if (rv != PW_OK) {
            return rv;
        }
    }
    return PW_OK;
}

const pw_file_descriptor *const *pw_server_files(const pw_server *s, size_t *count)
{
    *count = s->file_count;
    return s->files;
}

pw_status pw_server_add_interceptor(pw_server *s, const pw_interceptor *ic)
{
    pw_interceptor *a = pw_realloc(s->interceptors, (s->interceptor_count + 1) * sizeof(*a));
    if (a == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    s->interceptors = a;
    s->interceptors[s->interceptor_count++] = *ic;
    return PW_OK;
}

void pw_server_set_json_codec(pw_server *s, const pw_json_codec *codec)
{
    s->json_enabled = codec != NULL;
    if (codec != NULL) {
        s->json = *codec;
    }
}

pw_status pw_server_add_hook(pw_server *s, pw_server_hook_cb cb, void *ud)
{
    struct pw__hook *h = pw_realloc(s->hooks, (s->hook_count + 1) * sizeof(*h));
    if (h == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    s->hooks = h;
    s->hooks[s->hook_count++] = (struct pw__hook){cb, ud};
    return PW_OK;
}

static void server_run_hooks(pw_server *s, pw_server_event event)
{
    for (size_t i = 0; i < s->hook_count; i++) {
        s->hooks[i].cb(s, event, s->hooks[i].user_data);
    }
}

const pw_method *pw_server_next_method(const pw_server *s, size_t *iter)
{
    while (*iter < s->methods.cap) {
        const pw_method *m = s->methods.slots[(*iter)++];
        if (m != NULL) {
            return m;
        }
    }
    return NULL;
}

size_t pw_server_connection_count(const pw_server *s)
{
    return s->conn_count;
}

pw_status pw_server_debug(const pw_server *s, pw_buf *out)
{
    uint64_t now = uv_now(s->loop);
    pw_status rv = pw_buf_printf(out, "connections: %zu\n", s->conn_count);
    PW_LIST_FOREACH(node, &s->conns) {
        const pw__sconn *sc = PW_CONTAINER_OF(node, pw__sconn, link);
        size_t calls = 0;
        PW_LIST_FOREACH(cn, &sc->calls) {
            calls++;
        }
        rv = rv == PW_OK ? pw_buf_printf(out, "  %s tls=%d identity=%s age_ms=%llu calls=%zu%s\n",
                                         sc->conn.address, sc->conn.peer.tls,
                                         sc->conn.peer.subject ? sc->conn.peer.subject : "-",
                                         (unsigned long long)(now - sc->accepted_at), calls,
                                         sc->draining ? " draining" : "")
                         : rv;
        PW_LIST_FOREACH(cn, &sc->calls) {
            const pw_call *c = PW_CONTAINER_OF(cn, pw_call, link);
            long long remaining = c->deadline ? (long long)(c->deadline - now) : -1;
            rv = rv == PW_OK
                     ? pw_buf_printf(out, "    call %s age_ms=%llu deadline_ms=%lld\n",
                                     c->path ? c->path : "?",
                                     (unsigned long long)(now - c->stats.start_ms), remaining)
                     : rv;
        }
    }
    return rv;
}

uv_loop_t *pw_server_loop(const pw_server *s)
{
    return s->loop;
}

static void server_tick_closed(uv_handle_t *h);
static void server_close(pw_server *s);

/* Frees the server once every listener and connection socket is closed. */
static void server_maybe_finish(pw_server *s)
{
    if (s->closing == 1 && s->open_handles == 0) {
        s->closing = 2;
        s->tick.idle.data = s;
        uv_close((uv_handle_t *)&s->tick.idle, server_tick_closed);
    }
}

/* ---- connections ---- */

static void sconn_free(pw__sconn *sc)
{
    if (sc->session != NULL) {
        nghttp2_session_del(sc->session);
    }
    pw__http1_free(sc);
    pw__conn_cleanup(&sc->conn);
    pw_free(sc);
}

void pw__sconn_release(pw__sconn *sc)
{
    if (--sc->refs == 0) {
        sconn_free(sc);
    }
}

static void sconn_fire_ready(pw__sconn *sc)
{
    if (!sc->ready_pending) {
        return;
    }
    sc->ready_pending = 0;
    PW_LIST_FOREACH(node, &sc->calls) {
        pw__call_fire_ready(PW_CONTAINER_OF(node, pw_call, link));
    }
}

void pw__sconn_pump(pw__sconn *sc)
{
    if (!sc->proto_known) {
        return; /* nothing goes out before we know which protocol the client speaks */
    }
    if (sc->http1) {
        pw__http1_pump(sc);
        return;
    }
    if (pw__h2_pump(&sc->conn, sc->session, "server") == 0) {
        sconn_fire_ready(sc);
    }
}

static void sconn_pump_task(pw__task *t)
{
    pw__sconn_pump(PW_CONTAINER_OF(t, pw__sconn, pump));
}

void pw__sconn_schedule(pw__sconn *sc)
{
    if (sc->server != NULL && !sc->conn.closing) {
        pw__tick_push(&sc->server->tick, &sc->pump);
    }
}

static pw_status sconn_on_read(pw__conn *c, const uint8_t *data, size_t len)
{
    pw__sconn *sc = c->owner;
    sc->last_read_at = uv_now(c->h.handle.loop);
    if (!sc->proto_known) {
        /* Cleartext, or TLS without ALPN (with ALPN, sconn_on_handshake knew it). */
        sc->proto_known = 1;
        if (pw__http1_detect(data, len)) {
            pw_status rv = pw__http1_start(sc);
            if (rv != PW_OK) {
                return rv;
            }
        }
    }
    if (sc->http1) {
        return pw__http1_feed(sc, data, len);
    }
    pw_status rv = pw__h2_feed(c, sc->session, data, len, "server");
    if (rv == PW_OK) {
        pw__sconn_pump(sc);
    }
    return rv;
}

static void sconn_on_writable(pw__conn *c)
{
    pw__sconn_pump(c->owner);
}

/* The lifecycle timer closed after the socket: the connection is gone from the server. */
static void sconn_timer_closed(uv_handle_t *h)
{
    pw__sconn *sc = h->data;
    pw_server *s = sc->server;
    sc->server = NULL;
    if (s != NULL) {
        pw__list_remove(&sc->link);
        s->conn_count--;
        s->open_handles--;
    }
    pw__sconn_release(sc);
    if (s != NULL) {
        if (s->shutting_down && s->closing == 0 && pw__list_empty(&s->conns)) {
            /* Every connection drained before the grace period ended. */
            server_close(s);
        }
        server_maybe_finish(s);
    }
}

/* The socket is gone: every unfinished call is cancelled. */
static void sconn_on_closed(pw__conn *c, pw_status why)
{
    (void)why;
    pw__sconn *sc = c->owner;
    pw__task_cancel(&sc->pump);
    while (!pw__list_empty(&sc->calls)) {
        pw_call *call = PW_CONTAINER_OF(sc->calls.next, pw_call, link);
        pw__list_remove(&call->link);
        pw__call_on_stream_close(call, NGHTTP2_CANCEL);
    }
    pw__sconn_lifecycle_stop(sc, sconn_timer_closed);
}

/* TLS handshake done: ALPN chose HTTP/2 (our SETTINGS go now) or HTTP/1.1; without ALPN the
 * client's first bytes tell, as in cleartext. */
static void sconn_on_handshake(pw__conn *c, pw_status st, const char *why)
{
    (void)why;
    pw__sconn *sc = c->owner;
    if (st != PW_OK || c->alpn_none) {
        return; /* a failed handshake closes the connection */
    }
    sc->proto_known = 1;
    if (c->alpn_http1) {
        pw_status rv = pw__http1_start(sc);
        if (rv != PW_OK) {
            pw__conn_close(c, rv, 0);
        }
        return;
    }
    pw__sconn_pump(sc);
}

static const pw__conn_ops sconn_ops = {
    .on_read = sconn_on_read,
    .on_writable = sconn_on_writable,
    .on_connect = sconn_on_handshake,
    .on_closed = sconn_on_closed,
};

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    pw__sconn *sc = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    pw_call *call = pw__call_new(sc, frame->hd.stream_id);
    if (call == NULL) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
        return 0;
    }
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    pw_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call != NULL && frame->hd.type == NGHTTP2_HEADERS &&
        frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        pw__call_on_header(call, name, namelen, value, valuelen);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    pw__sconn *sc = ud;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        if (!sc->h2_ready) {
            pw__sconn_on_h2_ready(sc);
        }
        return 0;
    }
    if (frame->hd.type == NGHTTP2_PING) {
        pw__sconn_on_ping(sc, frame);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    pw_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        pw__call_on_headers_done(call);
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        pw__call_on_half_close(call);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    pw_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call != NULL) {
        pw__call_on_data(call, data, len);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    pw__sconn *sc = ud;
    pw_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call != NULL) {
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        pw__list_remove(&call->link);
        if (pw__list_empty(&sc->calls)) {
            pw__sconn_on_idle(sc);
        }
        pw__call_on_stream_close(call, error_code);
    }
    return 0;
}

/*
 * RFC 9113 §8.1: a server that completes its response before the request is
 * complete may send RST_STREAM(NO_ERROR) so the client stops sending.
 */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) {
        pw__sconn_on_stream_frame_sent(ud);
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0) {
        /* Not for JSON calls: curl reports a reset after a complete response as an error. */
        const pw_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (call != NULL && call->json) {
            return 0;
        }
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    }
    return 0;
}

static nghttp2_session_callbacks *server_callbacks(void)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, pw__call_send_data);
    return cbs;
}

static pw_status sconn_session_start(pw__sconn *sc)
{
    nghttp2_session_callbacks *cbs = server_callbacks();
    if (cbs == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    int rv = nghttp2_session_server_new(&sc->session, cbs, sc);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        return PW_ERRNO(ENOMEM);
    }
    pw__h2_settings(sc->session, sc->server->opts.max_concurrent_streams,
                    sc->server->opts.max_header_list_size, 0);
    return PW_OK;
}

static void refused_closed(uv_handle_t *h)
{
    pw_free(h);
}

/* Over max_connections: take the socket off the backlog and close it at once. */
static void listener_refuse(pw__listener *l)
{
    uv_handle_t *h = pw_malloc(l->is_pipe ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t));
    if (h == NULL) {
        return;
    }
    int rv = l->is_pipe ? uv_pipe_init(l->h.handle.loop, (uv_pipe_t *)h, 0)
                        : uv_tcp_init(l->h.handle.loop, (uv_tcp_t *)h);
    if (rv != 0) {
        pw_free(h);
        return;
    }
    uv_accept(&l->h.stream, (uv_stream_t *)h);
    uv_close(h, refused_closed);
}

static void listener_on_connection(uv_stream_t *stream, int status)
{
    pw__listener *l = stream->data;
    pw_server *s = l->server;
    if (status != 0 || s->closing || s->shutting_down) {
        return;
    }
    if (s->conn_count >= s->opts.max_connections) {
        PW_LOG(PW_LOG_WARNING, "server", "refusing a connection: %zu open (max_connections)",
               s->conn_count);
        listener_refuse(l);
        return;
    }
    pw__sconn *sc = pw_calloc(1, sizeof(*sc));
    if (sc == NULL) {
        return;
    }
    pw__list_init(&sc->calls);
    pw__task_init(&sc->pump, sconn_pump_task);
    sc->server = s;
    sc->refs = 1;
    if (pw__conn_init(&sc->conn, s->loop, l->is_pipe, &sconn_ops, sc) != PW_OK) {
        pw_free(sc);
        return;
    }
    pw__list_init(&sc->link);
    pw__list_push(&s->conns, &sc->link);
    s->conn_count++;
    s->open_handles++;
    pw__sconn_lifecycle_start(sc);
    pw_status rv = pw__conn_accept(&sc->conn, stream, l->ssl_ctx);
    if (rv == PW_OK) {
        rv = sconn_session_start(sc);
    }
    if (rv != PW_OK) {
        pw__conn_close(&sc->conn, rv, 0);
        return;
    }
    /* Our SETTINGS wait: under TLS for ALPN's choice (sconn_on_handshake), in
     * cleartext for the client's first bytes, which may be HTTP/1.1. */
    PW_LOG(PW_LOG_DEBUG, "server", "accepted %s%s", sc->conn.address, l->ssl_ctx ? " (TLS)" : "");
}

/* ---- listening ---- */

static pw_status listener_bind(pw__listener *l, uv_loop_t *loop, const char *address,
                               int reuse_port, int *port_out)
{
    if (strncmp(address, "unix:", 5) == 0) {
        l->is_pipe = 1;
        int rv = uv_pipe_init(loop, &l->h.pipe, 0);
        if (rv != 0) {
            return rv;
        }
        return uv_pipe_bind(&l->h.pipe, address + 5);
    }
    char host[128];
    int port;
    pw_status st = pw__parse_host_port(address, host, sizeof(host), &port);
    if (st != PW_OK) {
        return st;
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        return PW_INVALID_ARGUMENT;
    }
    int rv = uv_tcp_init(loop, &l->h.tcp);
    if (rv != 0) {
        return rv;
    }
    if (reuse_port) {
        /* libuv 1.44 has no SO_REUSEPORT flag: make the socket ourselves. */
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0) {
            return PW_ERRNO(errno);
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
            int e = errno;
            close(fd);
            return PW_ERRNO(e);
        }
        rv = uv_tcp_open(&l->h.tcp, fd);
        if (rv != 0) {
            close(fd);
            return rv;
        }
    }
    rv = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss, 0);
    if (rv == 0 && port_out != NULL) {
        int len = sizeof(ss);
        uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len);
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return rv;
}

static void listener_closed(uv_handle_t *h)
{
    pw__listener *l = h->data;
    pw_server *s = l->server;
    if (l->ssl_ctx != NULL) {
        SSL_CTX_free(l->ssl_ctx);
    }
    pw_free(l);
    if (s != NULL) {
        s->open_handles--;
        server_maybe_finish(s);
    }
}

pw_status pw_server_listen(pw_server *s, const char *address, const pw_tls_config *tls,
                           int *port_out)
{
    if (port_out != NULL) {
        *port_out = 0;
    }
    pw__listener *l = pw_calloc(1, sizeof(*l));
    if (l == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    l->server = s;
    if (tls != NULL) {
        char err[256];
        pw_status st = pw__tls_server_ctx(tls, &s->json_enabled, &l->ssl_ctx, err, sizeof(err));
        if (st != PW_OK) {
            PW_LOG(PW_LOG_ERR, "server", "listen %s: %s", address, err);
            pw_free(l);
            return st;
        }
    }
    pw_status rv = listener_bind(l, s->loop, address, s->opts.reuse_port, port_out);
    l->h.handle.data = l;
    if (rv == PW_OK) {
        rv = uv_listen(&l->h.stream, 1024, listener_on_connection);
    }
    pw__list_init(&l->link);
    if (rv != PW_OK) {
        PW_LOG(PW_LOG_ERR, "server", "listen %s: %s", address, pw_status_str(rv));
        if (port_out != NULL) {
            *port_out = 0;
        }
        if (l->h.handle.type != UV_UNKNOWN_HANDLE) {
            l->server = NULL;
            uv_close(&l->h.handle, listener_closed);
        } else {
            if (l->ssl_ctx != NULL) {
                SSL_CTX_free(l->ssl_ctx);
            }
            pw_free(l);
        }
        return rv;
    }
    pw__list_push(&s->listeners, &l->link);
    s->open_handles++;
    return PW_OK;
}

static void server_tick_closed(uv_handle_t *h)
{
    pw_server *s = h->data;
    if (s->shutdown_cb != NULL) {
        s->shutdown_cb(s, s->shutdown_ud);
    }
    if (s->close_cb != NULL) {
        s->close_cb(s, s->close_ud);
    }
    server_run_hooks(s, PW_SERVER_CLOSED);
    pw_free(s->hooks);
    pw_free(s->interceptors);
    table_free(&s->methods);
    pw_free(s->files);
    pw_free(s);
}

static void grace_timer_closed(uv_handle_t *h)
{
    pw_server *s = h->data;
    s->open_handles--;
    server_maybe_finish(s);
}

static void grace_expired(uv_timer_t *t)
{
    pw_server *s = t->data;
    PW_LOG(PW_LOG_NOTICE, "server", "shutdown grace period over: cancelling remaining calls");
    server_close(s);
}

static void server_stop_listening(pw_server *s)
{
    while (!pw__list_empty(&s->listeners)) {
        pw__listener *l = PW_CONTAINER_OF(s->listeners.next, pw__listener, link);
        pw__list_remove(&l->link);
        uv_close(&l->h.handle, listener_closed);
    }
}

void pw_server_shutdown(pw_server *s, uint32_t grace_ms, pw_server_close_cb cb, void *ud)
{
    if (s == NULL || s->shutting_down) {
        return;
    }
    s->shutting_down = 1;
    s->shutdown_cb = cb;
    s->shutdown_ud = ud;
    if (s->closing) {
        return; /* already closing: cb runs when it is done */
    }
    server_run_hooks(s, PW_SERVER_SHUTTING_DOWN);
    server_stop_listening(s);
    if (pw__list_empty(&s->conns)) {
        server_close(s);
        return;
    }
    PW_LIST_FOREACH(node, &s->conns) {
        pw__sconn_drain(PW_CONTAINER_OF(node, pw__sconn, link));
    }
    uv_timer_start(&s->grace_timer, grace_expired, grace_ms, 0);
}

void pw_server_close(pw_server *s, pw_server_close_cb cb, void *ud)
{
    if (s == NULL || s->close_requested) {
        return;
    }
    s->close_requested = 1;
    s->close_cb = cb;
    s->close_ud = ud;
    server_close(s);
}

static void server_close(pw_server *s)
{
    if (s->closing) {
        return;
    }
    s->closing = 1;
    uv_close((uv_handle_t *)&s->grace_timer, grace_timer_closed);
    server_stop_listening(s);
    PW_LIST_FOREACH(node, &s->conns) {
        pw__sconn *sc = PW_CONTAINER_OF(node, pw__sconn, link);
        pw__task_cancel(&sc->pump);
        if (sc->session != NULL) {
            nghttp2_submit_goaway(sc->session, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(sc->session),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            pw__sconn_pump(sc);
        }
        pw__conn_close(&sc->conn, PW_CANCELLED, 1);
    }
    server_maybe_finish(s);
}
