/*
 * call.c: the server side of one RPC. Request headers are validated as they
 * arrive (gRPC PROTOCOL-HTTP2: POST, content-type application/grpc[+proto|;...],
 * grpc-timeout, metadata), the method is looked up, and the handler runs when
 * the request is complete (unary, server streaming) or at once (client/bidi
 * streaming). The response is Trailers-Only when the handler finishes before
 * sending anything, otherwise HEADERS, DATA..., trailing HEADERS.
 *
 * Lifetime: two holds, the stream's (released on stream close) and the
 * handler's (released by pw_call_finish). Requests that never reach a handler
 * have their handler hold released when the runtime answers for them.
 */
#include <stdio.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"
#include "h2/nva.h"
#include "h2/session.h"
#include "grpc/wire.h"
#include "grpc/compress.h"

static void call_maybe_free(pw_call *call);
static void call_respond_error(pw_call *call, pw_status code, const char *fmt, ...) PW_PRINTF(3, 4);

pw_call *pw__call_new(pw__sconn *sc, int32_t stream_id)
{
    pw_call *call = pw_calloc(1, sizeof(*call));
    if (call == NULL) {
        return NULL;
    }
    const pw_server_options *o = &sc->server->opts;
    call->sc = sc;
    call->stream_id = stream_id;
    call->timeout_ms = -1;
    call->start_ns = uv_hrtime();
    call->stats.start_ms = uv_now(sc->conn.h.handle.loop);
    pw__deframer_init(&call->in, o->max_recv_message_size);
    pw__outq_init(&call->out, o->write_high_water,
                  (size_t)o->write_high_water + o->max_send_message_size + 5);
    pw__list_init(&call->children);
    pw__list_init(&call->link);
    call->watchers.next = call->watchers.prev = &call->watchers;
    pw__list_push(&sc->calls, &call->link);
    sc->refs++;
    return call;
}

static void call_reject(pw_call *call, pw_status code, const char *fmt, ...) PW_PRINTF(3, 4);
static void call_reject(pw_call *call, pw_status code, const char *fmt, ...)
{
    if (call->reject_code != PW_OK || call->http_reject) {
        return; /* keep the first problem */
    }
    call->reject_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->reject_msg, sizeof(call->reject_msg), fmt, ap);
    va_end(ap);
}

static int name_is(const uint8_t *name, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/* content-type must be application/grpc, optionally followed by "+..." or ";...". */
static int content_type_ok(const uint8_t *v, size_t len)
{
    static const char base[] = "application/grpc";
    size_t n = sizeof(base) - 1;
    if (len < n || memcmp(v, base, n) != 0) {
        return 0;
    }
    return len == n || v[n] == '+' || v[n] == ';';
}

/* connect-timeout-ms: 1 to 10 decimal digits of milliseconds. */
static int parse_timeout_ms(const char *v, size_t len, int64_t *out)
{
    int64_t ms = 0;
    if (len == 0 || len > 10) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        ms = ms * 10 + (v[i] - '0');
    }
    *out = ms;
    return 0;
}

static void call_add_metadata(pw_call *call, const uint8_t *name, size_t name_len,
                              const uint8_t *value, size_t value_len)
{
    char key[256];
    if (name_len >= sizeof(key)) {
        call_reject(call, PW_INTERNAL, "metadata key longer than 255 bytes");
        return;
    }
    memcpy(key, name, name_len);
    key[name_len] = '\0';
    if (!pw_metadata_key_is_binary(key, name_len)) {
        if (pw_metadata_add(&call->md, key, value, value_len) != PW_OK) {
            call_reject(call, PW_INTERNAL, "invalid metadata %s", key);
        }
        return;
    }
    uint8_t *raw = pw_malloc(value_len / 4 * 3 + 3);
    size_t raw_len = 0;
    if (raw == NULL) {
        call_reject(call, PW_RESOURCE_EXHAUSTED, "out of memory decoding metadata");
        return;
    }
    if (pw_base64_decode((const char *)value, value_len, raw, &raw_len) != PW_OK) {
        call_reject(call, PW_INTERNAL, "metadata %s is not valid base64", key);
    } else if (pw_metadata_add(&call->md, key, raw, raw_len) != PW_OK) {
        call_reject(call, PW_INTERNAL, "invalid metadata %s", key);
    }
    pw_free(raw);
}

void pw__call_on_header(pw_call *call, const uint8_t *name, size_t name_len, const uint8_t *value,
                        size_t value_len)
{
    /* RFC 9113 §6.5.2: a header costs its name, its value and 32 bytes. */
    call->header_bytes += name_len + value_len + 32;
    if (call->header_bytes > call->sc->server->opts.max_header_list_size) {
        call_reject(call, PW_RESOURCE_EXHAUSTED, "request headers exceed %u bytes",
                    call->sc->server->opts.max_header_list_size);
        return;
    }
    if (name_len > 0 && name[0] == ':') {
        if (name_is(name, name_len, ":path")) {
            pw_free(call->path);
            call->path = pw_strndup((const char *)value, value_len);
        } else if (name_is(name, name_len, ":method")) {
            call->is_post = value_len == 4 && memcmp(value, "POST", 4) == 0;
            call->is_get = value_len == 3 && memcmp(value, "GET", 3) == 0;
        }
        return;
    }
    if (name_is(name, name_len, "content-type")) {
        call->content_type_seen = 1;
        if (pw__connect_content_type(value, value_len)) {
            call->json = 1;
            if (!call->sc->server->json_enabled) {
                call->http_reject = 415;
                snprintf(call->reject_msg, sizeof(call->reject_msg),
                         "content-type application/json is not accepted: JSON is not enabled on "
                         "this server");
            }
        } else if (!content_type_ok(value, value_len)) {
            call->http_reject = 415;
            snprintf(call->reject_msg, sizeof(call->reject_msg),
                     "invalid gRPC request content-type \"%.*s\"",
                     (int)(value_len > 64 ? 64 : value_len), (const char *)value);
        }
    } else if (name_is(name, name_len, "grpc-timeout")) {
        if (pw__timeout_parse((const char *)value, value_len, &call->timeout_ms) != 0) {
            call_reject(call, PW_INTERNAL, "invalid grpc-timeout \"%.*s\"",
                        (int)(value_len > 32 ? 32 : value_len), (const char *)value);
        }
    } else if (name_is(name, name_len, "grpc-encoding")) {
        pw_free(call->encoding);
        call->encoding = pw_strndup((const char *)value, value_len);
    } else if (name_is(name, name_len, "grpc-accept-encoding")) {
        call->accepts_gzip = pw__accept_has_gzip((const char *)value, value_len) ? 1u : 0u;
    } else if (name_is(name, name_len, "connect-timeout-ms")) {
        if (parse_timeout_ms((const char *)value, value_len, &call->timeout_ms) != 0) {
            call_reject(call, PW_INVALID_ARGUMENT, "invalid connect-timeout-ms \"%.*s\"",
                        (int)(value_len > 32 ? 32 : value_len), (const char *)value);
        }
    } else if (name_is(name, name_len, "content-encoding")) {
        if (!(value_len == 8 && memcmp(value, "identity", 8) == 0)) {
            call_reject(call, PW_UNIMPLEMENTED, "content-encoding \"%.*s\" is not supported",
                        (int)(value_len > 32 ? 32 : value_len), (const char *)value);
        }
    } else if (name_is(name, name_len, "te") || name_is(name, name_len, "content-length") ||
               name_is(name, name_len, "connect-protocol-version") ||
               name_is(name, name_len, "accept-encoding")) {
        /* Transport headers, not metadata. */
    } else {
        call_add_metadata(call, name, name_len, value, value_len);
    }
}

/* ---- sending ---- */

static pw_status call_submit_headers(pw_call *call, nghttp2_data_provider *prd, int with_status)
{
    nghttp2_session *session = call->sc->session;
    pw__nva b = {0};
    pw__nva_add_str(&b, ":status", "200");
    pw__nva_add_str(&b, "content-type", "application/grpc");
    pw__nva_add_str(&b, "grpc-accept-encoding", PW_ACCEPT_ENCODING);
    /* Decided once, with the headers: compress only what the client can decode. */
    call->compress_out = call->compression == PW_COMPRESSION_GZIP && call->accepts_gzip;
    if (call->compress_out && !with_status) {
        pw__nva_add_str(&b, "grpc-encoding", "gzip");
    }
    pw__nva_add_metadata(&b, &call->initial);
    if (with_status) {
        pw__nva_add_metadata(&b, &call->trailing);
        pw__nva_add_status(&b, call->final_code, call->final_msg);
    }
    nghttp2_nv *nv = pw__nva_finish(&b);
    int rv = nv ? nghttp2_submit_response(session, call->stream_id, nv, b.n, prd) : -1;
    pw__nva_free(&b);
    call->headers_sent = 1;
    return rv == 0 ? PW_OK : PW_INTERNAL;
}

static pw_status call_start_response(pw_call *call)
{
    if (call->headers_sent) {
        return PW_OK;
    }
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = pw__call_data_read};
    return call_submit_headers(call, &prd, 0);
}

static void call_submit_trailers(pw_call *call)
{
    pw__nva b = {0};
    pw__nva_add_metadata(&b, &call->trailing);
    pw__nva_add_status(&b, call->final_code, call->final_msg);
    nghttp2_nv *nv = pw__nva_finish(&b);
    if (nv == NULL || nghttp2_submit_trailer(call->sc->session, call->stream_id, nv, b.n) != 0) {
        nghttp2_submit_rst_stream(call->sc->session, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
    pw__nva_free(&b);
}

ssize_t pw__call_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)source;
    pw_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    (void)buf;
    (void)user_data;
    int eof;
    ssize_t n = pw__outq_provide(&call->out, length, call->status_queued, &eof);
    if (n < 0) {
        return n;
    }
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (eof && call->json) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF; /* a JSON response has no trailers */
    } else if (eof) {
        /* Trailers follow the last DATA frame (PROTOCOL-HTTP2: Response → Trailers). */
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        call_submit_trailers(call);
    }
    return n;
}

int pw__call_send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                       size_t length, nghttp2_data_source *source, void *user_data)
{
    (void)source;
    pw__sconn *sc = user_data;
    pw_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    int rv = pw__h2_send_data(&sc->conn, &call->out, framehd, length);
    if (call->out.ready) {
        sc->ready_pending = 1;
    }
    return rv;
}

static void call_kick(pw_call *call)
{
    if (call->out.deferred && call->sc->session != NULL) {
        call->out.deferred = 0;
        nghttp2_session_resume_data(call->sc->session, call->stream_id);
    }
    pw__sconn_schedule(call->sc);
}

void pw__call_fire_ready(pw_call *call)
{
    if (!call->out.ready) {
        return;
    }
    call->out.ready = 0;
    if (!call->finished && !call->cancelled && call->ops && call->ops->on_write_ready) {
        call->ops->on_write_ready(call, call->ops_ud);
    }
}

/* A JSON call's one response message, encoded into the body buffer. */
static pw_status call_send_json(pw_call *call, const ProtobufCMessage *msg, pw_slice bytes)
{
    const pw_server *s = call->sc->server;
    if (pw_buf_pending(&call->out.buf) > 0 || s == NULL) {
        return PW_FAILED_PRECONDITION;
    }
    ProtobufCMessage *owned = NULL;
    if (msg == NULL) {
        const ProtobufCMessageDescriptor *type = call->method->response_type;
        if (type == NULL || pw_call_unpack(call, bytes, type, &owned) != PW_OK) {
            return PW_INTERNAL;
        }
        msg = owned;
    }
    char err[256];
    pw_status rv = s->json.encode(msg, &call->out.buf, err, sizeof(err), s->json.user_data);
    if (rv != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "server", "%s: cannot encode the response as JSON: %s",
               pw_call_method(call), err);
        pw_buf_consume(&call->out.buf, pw_buf_pending(&call->out.buf));
        return PW_INTERNAL;
    }
    if (pw_buf_pending(&call->out.buf) > s->opts.max_send_message_size) {
        pw_buf_consume(&call->out.buf, pw_buf_pending(&call->out.buf));
        return PW_RESOURCE_EXHAUSTED;
    }
    call->stats.messages_out++;
    call->stats.bytes_out += pw_buf_pending(&call->out.buf);
    return PW_OK;
}

static pw_status call_send(pw_call *call, const ProtobufCMessage *msg, pw_slice bytes,
                           uint32_t flags)
{
    if (call->cancelled) {
        return PW_CANCELLED;
    }
    if (call->finished || call->status_queued) {
        return PW_FAILED_PRECONDITION;
    }
    if (call->json) {
        return call_send_json(call, msg, bytes);
    }
    size_t len = msg ? protobuf_c_message_get_packed_size(msg) : bytes.len;
    if (len > call->sc->server->opts.max_send_message_size) {
        return PW_RESOURCE_EXHAUSTED;
    }
    pw_status rv = call_start_response(call);
    if (rv != PW_OK) {
        return rv;
    }
    /* Compression is per message (gRPC's compressed flag): the call's encoding allows it. */
    int compress = call->compress_out && !(flags & PW_WRITE_NO_COMPRESS);
    rv = compress ? pw__outq_push_gzip(&call->out, msg, bytes)
                  : pw__outq_push(&call->out, msg, bytes);
    if (rv != PW_OK) {
        return rv;
    }
    call->stats.messages_out++;
    call->stats.bytes_out += len;
    call_kick(call);
    return rv;
}

pw_status pw_call_send(pw_call *call, const ProtobufCMessage *msg)
{
    return call_send(call, msg, pw_slice_make(NULL, 0), 0);
}

pw_status pw_call_send_flags(pw_call *call, const ProtobufCMessage *msg, uint32_t flags)
{
    return call_send(call, msg, pw_slice_make(NULL, 0), flags);
}

pw_status pw_call_send_bytes(pw_call *call, pw_slice msg)
{
    return call_send(call, NULL, msg, 0);
}

void pw_call_set_compression(pw_call *call, pw_compression algo)
{
    if (!call->headers_sent) {
        call->compression = algo;
    }
}

int pw_call_request_compressed(const pw_call *call)
{
    return call->request_compressed;
}

int pw_call_writable(const pw_call *call)
{
    return !call->cancelled && pw__outq_writable(&call->out);
}

/* Queues the status; Trailers-Only when nothing was sent yet. */
static void call_queue_status(pw_call *call, pw_status code, const char *msg)
{
    if (call->status_queued || call->stream_closed ||
        (call->sc->session == NULL && !call->sc->http1)) {
        return;
    }
    call->status_queued = 1;
    call->final_code = pw_status_to_wire(code);
    pw_free(call->final_msg);
    call->final_msg = pw_strdup(msg);
    if (call->json) {
        pw__connect_respond(call);
        return;
    }
    if (!call->headers_sent && pw_buf_pending(&call->out.buf) == 0) {
        call_submit_headers(call, NULL, 1);
        pw__sconn_schedule(call->sc);
        return;
    }
    call_start_response(call);
    call_kick(call);
}

static void call_vfinish(pw_call *call, pw_status code, const char *fmt, va_list ap)
    PW_PRINTF(3, 0);
static void call_vfinish(pw_call *call, pw_status code, const char *fmt, va_list ap)
{
    char msg[512] = "";
    if (fmt != NULL) {
        vsnprintf(msg, sizeof(msg), fmt, ap);
    }
    if (!call->cancelled) {
        call_queue_status(call, code, msg);
    }
    if (call->deadline_timer != NULL) {
        uv_timer_stop(call->deadline_timer);
    }
}

void pw_call_finish(pw_call *call, pw_status code, const char *fmt, ...)
{
    PW_ASSERT(!call->finished);
    va_list ap;
    va_start(ap, fmt);
    call_vfinish(call, code, fmt, ap);
    va_end(ap);
    call->finished = 1;
    call_maybe_free(call);
}

void pw_call_reply(pw_call *call, const ProtobufCMessage *msg)
{
    pw_status rv = pw_call_send(call, msg);
    if (rv == PW_OK || rv == PW_CANCELLED) {
        pw_call_finish(call, PW_OK, NULL);
    } else {
        pw_call_finish(call, rv, "cannot send response: %s", pw_status_str(rv));
    }
}

/* The runtime answers for a request that never reached a handler. */
static void call_respond_error(pw_call *call, pw_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_vfinish(call, code, fmt, ap);
    va_end(ap);
    call->finished = 1;
}

static void call_respond_http(pw_call *call, int http_status)
{
    char status[8];
    snprintf(status, sizeof(status), "%d", http_status);
    pw__nva b = {0};
    pw__nva_add_str(&b, ":status", status);
    pw__nva_add_status(&b, PW_INTERNAL, call->reject_msg);
    if (call->sc->http1) {
        /* curl users read the body: say what went wrong there too. */
        pw__nva_add_str(&b, "content-type", "text/plain; charset=utf-8");
        pw_buf_printf(&call->out.buf, "%s\n", call->reject_msg);
    }
    nghttp2_nv *nv = pw__nva_finish(&b);
    if (nv != NULL && call->sc->http1) {
        pw__http1_respond(call, nv, b.n);
    } else if (nv != NULL) {
        nghttp2_submit_response(call->sc->session, call->stream_id, nv, b.n, NULL);
    }
    pw__nva_free(&b);
    call->headers_sent = 1;
    call->status_queued = 1;
    call->finished = 1;
    pw__sconn_schedule(call->sc);
}

/* ---- receiving ---- */

/* Each watcher runs once and is detached first, so it may free itself. */
static void call_fire_watchers(pw_call *call, pw_status why)
{
    while (call->watchers.next != &call->watchers) {
        pw_call_watch *w = call->watchers.next;
        pw_call_watch_stop(w);
        w->cb(w, why);
    }
}

pw_status pw_call_watch_start(pw_call *call, pw_call_watch *w)
{
    if (call->cancelled) {
        w->next = w->prev = NULL;
        return call->cancel_why == PW_DEADLINE_EXCEEDED ? PW_DEADLINE_EXCEEDED : PW_CANCELLED;
    }
    w->next = &call->watchers;
    w->prev = call->watchers.prev;
    call->watchers.prev->next = w;
    call->watchers.prev = w;
    return PW_OK;
}

void pw_call_watch_stop(pw_call_watch *w)
{
    if (w->next != NULL) {
        w->prev->next = w->next;
        w->next->prev = w->prev;
        w->next = w->prev = NULL;
    }
}

static void call_cancel(pw_call *call, pw_status why)
{
    if (call->cancelled) {
        return;
    }
    call->cancelled = 1;
    call->cancel_why = why;
    if (call->deadline_timer != NULL) {
        uv_timer_stop(call->deadline_timer);
    }
    pw__client_call_parent_cancelled(&call->children);
    call_fire_watchers(call, why);
    if (!call->finished && call->handler_started && call->ops && call->ops->on_cancel) {
        call->ops->on_cancel(call, why, call->ops_ud);
    }
}

static void call_deadline_fired(uv_timer_t *t)
{
    pw_call *call = t->data;
    if (call->finished || call->cancelled) {
        return;
    }
    /*
     * Drop unsent responses and answer DEADLINE_EXCEEDED at once. Once that
     * END_STREAM is out, on_frame_send (server.c) resets the stream with
     * NO_ERROR if the client is still sending. Resetting here instead would
     * race the status: nghttp2 sends RST_STREAM ahead of queued HEADERS.
     */
    pw_buf_consume(&call->out.buf, pw_buf_pending(&call->out.buf));
    call_queue_status(call, PW_DEADLINE_EXCEEDED, "deadline exceeded");
    if (!call->handler_started) {
        call->finished = 1;
    }
    call_cancel(call, PW_DEADLINE_EXCEEDED);
}

static void timer_closed(uv_handle_t *h)
{
    pw_free(h);
}

static void call_start_deadline(pw_call *call)
{
    uv_loop_t *loop = call->sc->server->loop;
    call->deadline = uv_now(loop) + (uint64_t)call->timeout_ms;
    call->deadline_timer = pw_malloc(sizeof(uv_timer_t));
    if (call->deadline_timer == NULL) {
        return;
    }
    uv_timer_init(loop, call->deadline_timer);
    call->deadline_timer->data = call;
    uv_timer_start(call->deadline_timer, call_deadline_fired, (uint64_t)call->timeout_ms, 0);
}

/* Runs each interceptor's on_start; returns 0 when one rejected the call (answered). */
static int call_run_interceptors(pw_call *call)
{
    const pw_server *s = call->sc->server;
    for (size_t i = 0; i < s->interceptor_count; i++) {
        const pw_interceptor *ic = &s->interceptors[i];
        if (ic->on_start != NULL) {
            char msg[256] = "";
            pw_status rv = ic->on_start(call, msg, sizeof(msg), ic->user_data);
            if (rv != PW_OK) {
                call_respond_error(call, rv, "%s", msg[0] ? msg : pw_status_str(rv));
                return 0;
            }
        }
        call->intercepted = i + 1;
    }
    return 1;
}

void pw__call_on_headers_done(pw_call *call)
{
    if (call->dispatched) {
        return;
    }
    call->dispatched = 1;
    char *query = call->path != NULL ? strchr(call->path, '?') : NULL;
    if (query != NULL && call->is_get && call->reject_code == PW_OK && !call->http_reject) {
        call->http_reject = pw__connect_get(call);
    } else if (query != NULL) {
        *query = '\0'; /* a query string means nothing to a POST */
    }
    if (!call->is_post && call->reject_code == PW_OK && !call->http_reject) {
        call->http_reject = 405;
        snprintf(call->reject_msg, sizeof(call->reject_msg),
                 call->json || call->sc->http1 ? "JSON calls use POST /package.Service/Method"
                                               : "gRPC requires the POST method");
    }
    if (!call->content_type_seen && !call->http_reject) {
        call->http_reject = 415;
        snprintf(call->reject_msg, sizeof(call->reject_msg), "missing content-type");
    }
    if (call->sc->http1 && !call->json && !call->http_reject) {
        call->http_reject = 415;
        snprintf(call->reject_msg, sizeof(call->reject_msg),
                 "HTTP/1.1 carries JSON calls only (content-type: application/json); gRPC needs "
                 "HTTP/2");
    }
    if (call->http_reject) {
        call_respond_http(call, call->http_reject);
        return;
    }
    if (call->reject_code != PW_OK) {
        call_respond_error(call, call->reject_code, "%s", call->reject_msg);
        return;
    }
    const char *path = call->path ? call->path : "";
    call->method = pw__server_find(call->sc->server, path);
    if (call->method == NULL) {
        if (pw__server_has_service(call->sc->server, path)) {
            call_respond_error(call, PW_UNIMPLEMENTED, "unknown method %s", path);
        } else {
            call_respond_error(call, PW_UNIMPLEMENTED, "unknown service in %s", path);
        }
        return;
    }
    if (call->json && (call->method->kind != PW_METHOD_UNARY ||
                       call->method->request_type == NULL || call->method->response_type == NULL)) {
        call_respond_error(call, PW_UNIMPLEMENTED,
                           "%s is not a unary method with message types; JSON over HTTP serves "
                           "unary methods only (use gRPC for streaming)",
                           path);
        return;
    }
    if (call->connect_get && call->method->idempotency_level != PW_IDEMPOTENCY_NO_SIDE_EFFECTS) {
        snprintf(call->reject_msg, sizeof(call->reject_msg),
                 "GET serves methods marked idempotency_level = NO_SIDE_EFFECTS; POST the JSON "
                 "to %s",
                 path);
        call_respond_http(call, 405);
        return;
    }
    if (call->timeout_ms == 0) {
        call_respond_error(call, PW_DEADLINE_EXCEEDED, "deadline exceeded before the call started");
        return;
    }
    if (pw__encoding_parse(call->encoding) < 0) {
        call_respond_error(call, PW_UNIMPLEMENTED,
                           "grpc-encoding \"%s\" is not supported (supported: %s)", call->encoding,
                           PW_ACCEPT_ENCODING);
        return;
    }
    if (call->timeout_ms > 0) {
        call_start_deadline(call);
    }
    if (!call_run_interceptors(call)) {
        return;
    }
    if (call->method->kind == PW_METHOD_CLIENT_STREAMING ||
        call->method->kind == PW_METHOD_BIDI_STREAMING) {
        call->handler_started = 1;
        call->method->handler(call, call->method->user_data);
    }
}

static pw_status call_on_message(void *ud, int compressed, pw_slice msg)
{
    pw_call *call = ud;
    call->request_compressed = compressed != 0;
    if (compressed) {
        if (pw__encoding_parse(call->encoding) != PW_COMPRESSION_GZIP) {
            snprintf(call->in.err_text, sizeof(call->in.err_text),
                     "compressed message without grpc-encoding");
            return PW_INTERNAL;
        }
        call->inflated.len = call->inflated.off = 0;
        pw_status rv = pw__gzip_inflate(msg, call->in.max_len, &call->inflated, call->in.err_text,
                                        sizeof(call->in.err_text));
        if (rv != PW_OK) {
            return rv;
        }
        msg = pw_slice_make(call->inflated.data, call->inflated.len);
    }
    call->stats.messages_in++;
    call->stats.bytes_in += msg.len;
    if (!call->handler_started) {
        /* Unary and server-streaming requests carry exactly one message. */
        if (++call->request_count > 1) {
            snprintf(call->in.err_text, sizeof(call->in.err_text),
                     "more than one request message for a unary-request method");
            return PW_INTERNAL;
        }
        const ProtobufCMessageDescriptor *type = call->method->request_type;
        if (type == NULL) {
            return pw_buf_append(&call->request_bytes, msg.base, msg.len);
        }
        /* Decode straight from the frame: no intermediate copy of the bytes. */
        if (pw_call_unpack(call, msg, type, &call->request) != PW_OK) {
            snprintf(call->in.err_text, sizeof(call->in.err_text), "cannot decode request as %s",
                     type->name);
            return PW_INTERNAL;
        }
        return PW_OK;
    }
    if (call->ops != NULL && call->ops->on_message != NULL && !call->finished) {
        call->ops->on_message(call, msg, call->ops_ud);
    }
    return PW_OK;
}

static void call_fail_input(pw_call *call, pw_status rv, const char *why)
{
    if (call->handler_started) {
        /* The handler still holds the call: tell it, and answer for it. */
        call_queue_status(call, rv, why);
        call_cancel(call, rv);
    } else if (!call->finished) {
        call_respond_error(call, rv, "%s", why);
    }
}

void pw__call_on_data(pw_call *call, const uint8_t *data, size_t len)
{
    if (call->finished || call->cancelled || call->method == NULL || call->status_queued) {
        return;
    }
    if (call->json) {
        if (pw_buf_pending(&call->request_bytes) + len > call->in.max_len) {
            call_fail_input(call, PW_RESOURCE_EXHAUSTED, "request body larger than the limit");
        } else if (pw_buf_append(&call->request_bytes, data, len) != PW_OK) {
            call_fail_input(call, PW_RESOURCE_EXHAUSTED, "out of memory reading the request");
        }
        return;
    }
    pw_status rv = pw__deframer_feed(&call->in, data, len, call_on_message, call);
    if (rv != PW_OK) {
        call_fail_input(call, rv, call->in.err_text);
    }
}

static void call_run_unary(pw_call *call)
{
    if (call->request_count == 0) {
        call_respond_error(call, PW_INTERNAL, "request ended without a message");
        return;
    }
    call->handler_started = 1;
    call->method->handler(call, call->method->user_data);
}

static pw_status call_keep_unpacked(pw_call *call, ProtobufCMessage *m)
{
    ProtobufCMessage **list =
        pw_realloc(call->unpacked, (call->unpacked_count + 1) * sizeof(*list));
    if (list == NULL) {
        pw_protobuf_free(m);
        return PW_ERRNO(ENOMEM);
    }
    call->unpacked = list;
    list[call->unpacked_count++] = m;
    return PW_OK;
}

/* The whole JSON body is here: decode it (an empty body is {}) and run the handler. */
static void call_run_json(pw_call *call)
{
    const pw_server *s = call->sc->server;
    pw_slice body = pw_call_request_bytes(call);
    if (body.len == 0) {
        body = pw_slice_make("{}", 2);
    }
    ProtobufCMessage *m = NULL;
    char err[320] = "";
    pw_status rv =
        s->json.decode(call->method->request_type, body, &m, err, sizeof(err), s->json.user_data);
    if (rv != PW_OK) {
        call_respond_error(call, rv, "bad JSON request: %s", err);
        return;
    }
    if (call_keep_unpacked(call, m) != PW_OK) {
        call_respond_error(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    call->request = m;
    call->request_count = 1;
    call->stats.messages_in++;
    call->stats.bytes_in += body.len;
    call_run_unary(call);
}

void pw__call_on_half_close(pw_call *call)
{
    if (call->half_closed) {
        return;
    }
    call->half_closed = 1;
    if (call->finished || call->cancelled || call->method == NULL || call->status_queued) {
        return;
    }
    if (call->json) {
        call_run_json(call);
        return;
    }
    if (pw__deframer_pending(&call->in) > 0) {
        call_fail_input(call, PW_INTERNAL, "request ended inside a message (truncated frame)");
        return;
    }
    if (!call->handler_started) {
        call_run_unary(call);
    } else if (call->ops != NULL && call->ops->on_half_close != NULL) {
        call->ops->on_half_close(call, call->ops_ud);
    }
}

void pw__call_on_stream_close(pw_call *call, uint32_t error_code)
{
    /*
     * Cancel before marking the stream closed: a handler that finishes inside
     * on_cancel must not free the call under us (it is freed just below).
     */
    if (!call->finished && (!call->status_queued || error_code != NGHTTP2_NO_ERROR)) {
        call_cancel(call, PW_CANCELLED);
    }
    call->stream_closed = 1;
    if (!call->handler_started) {
        call->finished = 1;
    }
    call_maybe_free(call);
}

/* ---- lifetime ---- */

/* Interceptors' on_end, in reverse order, for those that accepted the call. */
static void call_run_on_end(pw_call *call)
{
    const pw_server *s = call->sc->server;
    if (s == NULL || call->intercepted == 0) {
        return;
    }
    call->stats.code = call->status_queued ? call->final_code : PW_CANCELLED;
    call->stats.duration_ns = uv_hrtime() - call->start_ns;
    for (size_t i = call->intercepted; i-- > 0;) {
        const pw_interceptor *ic = &s->interceptors[i];
        if (ic->on_end != NULL) {
            ic->on_end(call, &call->stats, ic->user_data);
        }
    }
}

static void call_free(pw_call *call)
{
    /* Watchers still attached are told the call is gone. */
    call_fire_watchers(call, PW_CANCELLED);
    call_run_on_end(call);
    pw__client_call_parent_gone(&call->children);
    if (call->deadline_timer != NULL) {
        uv_close((uv_handle_t *)call->deadline_timer, timer_closed);
    }
    for (size_t i = 0; i < call->unpacked_count; i++) {
        pw_protobuf_free(call->unpacked[i]);
    }
    pw_free(call->unpacked);
    pw_metadata_clear(&call->md);
    pw_metadata_clear(&call->initial);
    pw_metadata_clear(&call->trailing);
    pw__deframer_free(&call->in);
    pw__outq_free(&call->out);
    pw_buf_reset(&call->request_bytes);
    pw_buf_reset(&call->inflated);
    pw_free(call->path);
    pw_free(call->encoding);
    pw_free(call->final_msg);
    pw__chunk_free_all(&call->chunks);
    pw__sconn *sc = call->sc;
    pw_free(call);
    pw__sconn_release(sc);
}

static void call_maybe_free(pw_call *call)
{
    if (call->finished && call->stream_closed && call->offloads == 0) {
        call_free(call);
    }
}

/* ---- accessors ---- */

void pw_call_set_ops(pw_call *call, const pw_call_ops *ops, void *user_data)
{
    call->ops = ops;
    call->ops_ud = user_data;
}

const char *pw_call_method(const pw_call *call)
{
    return call->path ? call->path : "";
}

const pw_metadata *pw_call_metadata(const pw_call *call)
{
    return &call->md;
}

const pw_peer *pw_call_peer(const pw_call *call)
{
    return &call->sc->conn.peer;
}

uv_loop_t *pw_call_loop(const pw_call *call)
{
    return call->sc->conn.h.handle.loop;
}

const ProtobufCMessage *pw_call_request(const pw_call *call)
{
    return call->request;
}

pw_slice pw_call_request_bytes(const pw_call *call)
{
    return pw_slice_make(pw_buf_head(&call->request_bytes), pw_buf_pending(&call->request_bytes));
}

pw_status pw_call_unpack(pw_call *call, pw_slice bytes, const ProtobufCMessageDescriptor *desc,
                         ProtobufCMessage **out)
{
    *out = NULL;
    ProtobufCMessage *m =
        protobuf_c_message_unpack(desc, pw_protobuf_allocator(), bytes.len, bytes.base);
    if (m == NULL) {
        return PW_INTERNAL;
    }
    pw_status rv = call_keep_unpacked(call, m);
    if (rv == PW_OK) {
        *out = m;
    }
    return rv;
}

uint64_t pw_call_deadline(const pw_call *call)
{
    return call->deadline;
}

int64_t pw_call_remaining_ms(const pw_call *call)
{
    if (call->deadline == 0) {
        return -1;
    }
    uint64_t now = uv_now(pw_call_loop(call));
    return now >= call->deadline ? 0 : (int64_t)(call->deadline - now);
}

int pw_call_is_cancelled(const pw_call *call)
{
    return call->cancelled;
}

pw_status pw_call_add_initial_metadata(pw_call *call, const char *key, const void *value,
                                       size_t len)
{
    if (call->headers_sent) {
        return PW_FAILED_PRECONDITION;
    }
    return pw_metadata_add(&call->initial, key, value, len);
}

pw_status pw_call_add_trailing_metadata(pw_call *call, const char *key, const void *value,
                                        size_t len)
{
    if (call->status_queued) {
        return PW_FAILED_PRECONDITION;
    }
    return pw_metadata_add(&call->trailing, key, value, len);
}

typedef struct offload {
    uv_work_t req;
    pw_call *call;
    pw_offload_work_cb work;
    pw_offload_done_cb done;
    void *user_data;
} offload;

static void offload_work(uv_work_t *req)
{
    offload *o = req->data;
    o->work(o->user_data);
}

static void offload_after(uv_work_t *req, int status)
{
    offload *o = req->data;
    pw_call *call = o->call;
    pw_status st = status == 0 && !call->cancelled ? PW_OK : PW_CANCELLED;
    /* Still held while done runs: a done that finishes the call must not free it here. */
    o->done(call, st, o->user_data);
    pw_free(o);
    call->offloads--;
    call_maybe_free(call);
}

pw_status pw_call_offload(pw_call *call, pw_offload_work_cb work, pw_offload_done_cb done,
                          void *user_data)
{
    offload *o = pw_malloc(sizeof(*o));
    if (o == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *o = (offload){.call = call, .work = work, .done = done, .user_data = user_data};
    o->req.data = o;
    int rv = uv_queue_work(pw_call_loop(call), &o->req, offload_work, offload_after);
    if (rv != 0) {
        pw_free(o);
        return rv;
    }
    call->offloads++;
    return PW_OK;
}

void *pw_call_alloc(pw_call *call, size_t size)
{
    return pw__chunk_alloc(&call->chunks, size);
}

const pw_method *pw_call_get_method(const pw_call *call)
{
    return call->method;
}

void pw_handler_unimplemented(pw_call *call, void *user_data)
{
    (void)user_data;
    pw_call_finish(call, PW_UNIMPLEMENTED, "method %s is not implemented by this server",
                   pw_call_method(call));
}

void pw_call_abort(pw_call *call, pw_status code, const char *message)
{
    if (call->finished || call->cancelled) {
        return;
    }
    call_fail_input(call, code, message ? message : "");
}

pw_status pw_call_set_context(pw_call *call, const void *key, void *value)
{
    return pw__ctx_set(call->context, 8, key, value);
}

void *pw_call_get_context(const pw_call *call, const void *key)
{
    return pw__ctx_get(call->context, 8, key);
}

void pw_call_set_user_data(pw_call *call, void *user_data)
{
    call->user_data = user_data;
}

void *pw_call_get_user_data(const pw_call *call)
{
    return call->user_data;
}
