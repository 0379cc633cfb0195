/*
 * client_call.c: the client side of one RPC. A call is queued on its channel
 * until a connection is READY, then becomes an HTTP/2 stream: request HEADERS
 * (with grpc-timeout from the remaining deadline), framed messages from the
 * send queue, END_STREAM on close_send. The response is read as HEADERS,
 * messages, trailers (or a Trailers-Only HEADERS). The call completes exactly
 * once: pw__client_call_complete records the outcome and detaches the call
 * from its stream, and on_done runs from the channel's tick, after which the
 * call is freed. A call whose parent server call is cancelled is cancelled.
 */
#include <stdio.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "client.h"
#include "h2/nva.h"
#include "h2/session.h"
#include "grpc/wire.h"
#include "grpc/compress.h"

static void client_call_done_task(pw__task *t);
static void client_call_deadline(uv_timer_t *t);

pw_status pw_client_call_start(pw_client_call **out, pw_channel *ch, const char *path,
                               const pw_call_options *opts, const pw_client_ops *ops,
                               void *user_data)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (ch->closing) {
        return PW_CANCELLED;
    }
    if (path == NULL || path[0] != '/' || ops == NULL || ops->on_done == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    pw_client_call *call = pw_calloc(1, sizeof(*call));
    if (call == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    call->ch = ch;
    call->ops = ops;
    call->ud = user_data;
    call->path = pw_strdup(path);
    pw__list_init(&call->link);
    pw__list_init(&call->parent_link);
    call->attempts = 1;
    call->backoff_ms = ch->retry.initial_backoff_ms;
    pw__task_init(&call->done_task, client_call_done_task);
    pw__outq_init(&call->out, PW_DEFAULT_HIGH_WATER,
                  (size_t)PW_DEFAULT_HIGH_WATER + PW_DEFAULT_MAX_MESSAGE + 5);
    pw__deframer_init(&call->in, ch->opts.max_recv_message_size);
    pw_status rv = call->path ? PW_OK : PW_ERRNO(ENOMEM);
    if (rv == PW_OK && opts != NULL) {
        rv = pw_metadata_copy(&call->md, opts->metadata);
        call->wait_for_ready = opts->wait_for_ready;
        call->compress_out = opts->compression == PW_COMPRESSION_GZIP;
        call->idempotency = opts->idempotency;
    }
    if (rv != PW_OK) {
        pw_metadata_clear(&call->md);
        pw_free(call->path);
        pw_free(call);
        return rv;
    }
    uint64_t now = uv_now(ch->loop);
    if (opts != NULL && opts->timeout_ms > 0) {
        call->deadline = now + (uint64_t)opts->timeout_ms;
    }
    if (opts != NULL && opts->parent != NULL) {
        /* Deadline propagation: the sooner of ours and the parent's. */
        uint64_t pd = pw_call_deadline(opts->parent);
        if (pd != 0 && (call->deadline == 0 || pd < call->deadline)) {
            call->deadline = pd;
        }
        pw__list_push(&opts->parent->children, &call->parent_link);
        call->parent = opts->parent;
    }
    if (out != NULL) {
        *out = call;
    }
    call->start_ns = uv_hrtime();
    call->stats.start_ms = now;
    for (size_t i = 0; i < ch->interceptor_count; i++) {
        const pw_client_interceptor *ic = &ch->interceptors[i];
        if (ic->on_start != NULL) {
            char msg[256] = "";
            pw_status st = ic->on_start(call, path, &call->md, msg, sizeof(msg), ic->user_data);
            if (st != PW_OK) {
                pw__client_call_complete(call, st, "%s", msg[0] ? msg : pw_status_str(st));
                return PW_OK;
            }
        }
        call->intercepted = i + 1;
    }
    if (opts != NULL && opts->parent != NULL && pw_call_is_cancelled(opts->parent)) {
        pw__client_call_complete(call, PW_CANCELLED, "the parent call was cancelled");
        return PW_OK;
    }
    if (call->deadline != 0) {
        if (call->deadline <= now) {
            pw__client_call_complete(call, PW_DEADLINE_EXCEEDED, "deadline exceeded before start");
            return PW_OK;
        }
        /* Started now: a call waiting for a connection is bound by its deadline too. */
        call->timer = pw_malloc(sizeof(uv_timer_t));
        if (call->timer != NULL) {
            uv_timer_init(ch->loop, call->timer);
            call->timer->data = call;
            uv_timer_start(call->timer, client_call_deadline, call->deadline - now, 0);
        }
    }
    pw__channel_call_ready(ch, call);
    return PW_OK;
}

static void client_call_deadline(uv_timer_t *t)
{
    pw_client_call *call = t->data;
    pw__client_call_complete(call, PW_DEADLINE_EXCEEDED, "deadline exceeded");
}

static ssize_t client_data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                                size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                                void *user_data)
{
    (void)source;
    pw_client_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    (void)buf;
    (void)user_data;
    int eof;
    ssize_t n = pw__outq_provide(&call->out, length, call->send_closed, &eof);
    if (n < 0) {
        return n;
    }
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (eof) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return n;
}

int pw__client_call_send_data(nghttp2_session *session, nghttp2_frame *frame,
                              const uint8_t *framehd, size_t length, nghttp2_data_source *source,
                              void *user_data)
{
    (void)source;
    pw__cconn *cc = user_data;
    pw_client_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    int rv = pw__h2_send_data(&cc->conn, &call->out, framehd, length);
    if (call->out.ready) {
        cc->ready_pending = 1;
    }
    return rv;
}

int pw__client_call_submit(pw_client_call *call, pw__cconn *cc)
{
    pw_channel *ch = call->ch;
    pw__nva b = {0};
    pw__nva_add_str(&b, ":method", "POST");
    pw__nva_add_str(&b, ":scheme", ch->ssl_ctx ? "https" : "http");
    pw__nva_add_str(&b, ":path", call->path);
    pw__nva_add_str(&b, ":authority", ch->authority);
    pw__nva_add_str(&b, "content-type", "application/grpc");
    pw__nva_add_str(&b, "te", "trailers");
    pw__nva_add_str(&b, "user-agent", "grpc-c-paywire/" PW_VERSION_STRING);
    pw__nva_add_str(&b, "grpc-accept-encoding", PW_ACCEPT_ENCODING);
    if (call->compress_out) {
        pw__nva_add_str(&b, "grpc-encoding", "gzip");
    }
    if (call->deadline != 0) {
        uint64_t now = uv_now(ch->loop);
        char t[24];
        pw__timeout_format(call->deadline > now ? (int64_t)(call->deadline - now) : 0, t,
                           sizeof(t));
        pw__nva_add_str(&b, "grpc-timeout", t);
    }
    pw__nva_add_metadata(&b, &call->md);
    nghttp2_nv *nv = pw__nva_finish(&b);
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = client_data_read};
    int32_t id = nv ? nghttp2_submit_request(cc->session, NULL, nv, b.n, &prd, call) : -1;
    pw__nva_free(&b);
    if (id < 0) {
        pw__client_call_complete(call, PW_INTERNAL, "cannot start HTTP/2 stream: %s",
                                 nv ? nghttp2_strerror(id) : "out of memory");
        return -1;
    }
    call->stream_id = id;
    call->cc = cc;
    cc->refs++;
    cc->active++;
    pw__list_push(&cc->calls, &call->link);
    return 0;
}

/* ---- sending ---- */

/* Keeps sent messages (framed) for replay while a retry is still possible. */
static void client_call_log(pw_client_call *call, const uint8_t *framed, size_t len)
{
    if (call->committed) {
        return;
    }
    if (call->replay.len + len > call->ch->opts.retry_buffer_size ||
        pw_buf_append(&call->replay, framed, len) != PW_OK) {
        call->committed = 1; /* too much to replay: this attempt is the last */
        pw_buf_reset(&call->replay);
    }
}

static void client_call_kick(pw_client_call *call)
{
    if (call->cc == NULL) {
        return; /* still queued: the data provider starts with the stream */
    }
    if (call->out.deferred && call->cc->session != NULL) {
        call->out.deferred = 0;
        nghttp2_session_resume_data(call->cc->session, call->stream_id);
    }
    pw__cconn_schedule(call->cc);
}

static pw_status client_call_send(pw_client_call *call, const ProtobufCMessage *msg, pw_slice bytes,
                                  uint32_t flags)
{
    if (call->done) {
        return call->status == PW_OK ? PW_FAILED_PRECONDITION : call->status;
    }
    if (call->send_closed) {
        return PW_FAILED_PRECONDITION;
    }
    size_t before = call->out.buf.len;
    int compress = call->compress_out && !(flags & PW_WRITE_NO_COMPRESS);
    pw_status rv = compress ? pw__outq_push_gzip(&call->out, msg, bytes)
                            : pw__outq_push(&call->out, msg, bytes);
    if (rv != PW_OK) {
        return rv;
    }
    client_call_log(call, call->out.buf.data + before, call->out.buf.len - before);
    call->stats.messages_out++;
    call->stats.bytes_out += msg != NULL ? protobuf_c_message_get_packed_size(msg) : bytes.len;
    client_call_kick(call);
    return PW_OK;
}

pw_status pw_client_call_send(pw_client_call *call, const ProtobufCMessage *msg)
{
    return client_call_send(call, msg, pw_slice_make(NULL, 0), 0);
}

pw_status pw_client_call_send_flags(pw_client_call *call, const ProtobufCMessage *msg,
                                    uint32_t flags)
{
    return client_call_send(call, msg, pw_slice_make(NULL, 0), flags);
}

pw_status pw_client_call_send_bytes(pw_client_call *call, pw_slice msg)
{
    return client_call_send(call, NULL, msg, 0);
}

int pw_client_call_message_compressed(const pw_client_call *call)
{
    return call->message_compressed;
}

pw_status pw_client_call_close_send(pw_client_call *call)
{
    if (call->done) {
        return PW_OK;
    }
    call->send_closed = 1;
    client_call_kick(call);
    return PW_OK;
}

pw_status pw_client_call_set_context(pw_client_call *call, const void *key, void *value)
{
    return pw__ctx_set(call->context, 4, key, value);
}

void *pw_client_call_get_context(const pw_client_call *call, const void *key)
{
    return pw__ctx_get(call->context, 4, key);
}

pw_call *pw_client_call_parent(const pw_client_call *call)
{
    return call->parent;
}

const char *pw_client_call_path(const pw_client_call *call)
{
    return call->path;
}

int pw_client_call_writable(const pw_client_call *call)
{
    return !call->done && pw__outq_writable(&call->out);
}

void pw__client_call_fire_ready(pw_client_call *call)
{
    if (!call->out.ready) {
        return;
    }
    call->out.ready = 0;
    if (!call->done && call->ops->on_write_ready != NULL) {
        call->ops->on_write_ready(call, call->ud);
    }
}

void pw_client_call_fail(pw_client_call *call, pw_status code, const char *message)
{
    pw__client_call_complete(call, code, "%s", message ? message : "");
}

void pw_client_call_cancel(pw_client_call *call)
{
    pw__client_call_complete(call, PW_CANCELLED, "cancelled by the client");
}

/* ---- receiving ---- */

static int name_is(const uint8_t *name, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

void pw__client_call_on_header(pw_client_call *call, const nghttp2_frame *frame,
                               const uint8_t *name, size_t namelen, const uint8_t *value,
                               size_t valuelen)
{
    int trailers = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
    if (name_is(name, namelen, ":status")) {
        call->http_status = atoi((const char *)value);
        return;
    }
    if (name_is(name, namelen, "grpc-status")) {
        pw_status st;
        if (pw_status_parse((const char *)value, valuelen, &st) == PW_OK) {
            call->status = st;
            call->have_status = 1;
        }
        return;
    }
    if (name_is(name, namelen, "grpc-message")) {
        pw_free(call->message);
        call->message = pw__percent_decode((const char *)value, valuelen);
        return;
    }
    if (name_is(name, namelen, "content-type")) {
        static const char base[] = "application/grpc";
        if (valuelen < sizeof(base) - 1 || memcmp(value, base, sizeof(base) - 1) != 0) {
            call->bad_content_type = 1;
        }
        return;
    }
    if (namelen > 0 && name[0] == ':') {
        return;
    }
    if (name_is(name, namelen, "grpc-encoding")) {
        call->response_gzip = valuelen == 4 && memcmp(value, "gzip", 4) == 0;
        return;
    }
    if (name_is(name, namelen, "grpc-accept-encoding")) {
        return;
    }
    char key[256];
    if (namelen >= sizeof(key)) {
        return;
    }
    memcpy(key, name, namelen);
    key[namelen] = '\0';
    pw_metadata *md =
        trailers || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ? &call->trailing : &call->initial;
    if (pw_metadata_key_is_binary(key, namelen)) {
        uint8_t *raw = pw_malloc(valuelen / 4 * 3 + 3);
        size_t n;
        if (raw != NULL && pw_base64_decode((const char *)value, valuelen, raw, &n) == PW_OK) {
            pw_metadata_add(md, key, raw, n);
        }
        pw_free(raw);
    } else {
        pw_metadata_add(md, key, value, valuelen);
    }
}

void pw__client_call_on_headers_done(pw_client_call *call, const nghttp2_frame *frame)
{
    if (call->done || frame->headers.cat != NGHTTP2_HCAT_RESPONSE) {
        return;
    }
    if (call->http_status != 200) {
        return; /* mapped when the stream closes */
    }
    if (call->bad_content_type && !call->have_status) {
        pw__client_call_complete(call, PW_UNKNOWN, "response is not gRPC (content-type)");
        return;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        call->headers_seen = 1;
        /* A response has started: gRPC commits the call, no further attempt. */
        call->committed = 1;
        pw_buf_reset(&call->replay);
        if (call->ops->on_headers != NULL) {
            call->ops->on_headers(call, &call->initial, call->ud);
        }
    }
}

static pw_status client_call_on_message(void *ud, int compressed, pw_slice msg)
{
    pw_client_call *call = ud;
    call->message_compressed = compressed != 0;
    if (compressed) {
        if (!call->response_gzip) {
            snprintf(call->in.err_text, sizeof(call->in.err_text),
                     "compressed response without a known grpc-encoding");
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
    if (!call->done && call->ops->on_message != NULL) {
        call->ops->on_message(call, msg, call->ud);
    }
    return PW_OK;
}

void pw__client_call_on_data(pw_client_call *call, const uint8_t *data, size_t len)
{
    if (call->done) {
        return;
    }
    pw_status rv = pw__deframer_feed(&call->in, data, len, client_call_on_message, call);
    if (rv != PW_OK && !call->done) {
        pw__client_call_complete(call, rv, "%s", call->in.err_text);
    }
}

/* RST_STREAM codes to gRPC status (PROTOCOL-HTTP2, "Errors"). */
static pw_status rst_to_status(uint32_t code)
{
    switch (code) {
    case NGHTTP2_REFUSED_STREAM:
        return PW_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return PW_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return PW_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return PW_PERMISSION_DENIED;
    default:
        return PW_INTERNAL;
    }
}

void pw__client_call_on_stream_close(pw_client_call *call, uint32_t error_code)
{
    call->stream_id = 0;
    if (call->done) {
        return;
    }
    if (call->have_status) {
        if (pw__deframer_pending(&call->in) > 0) {
            pw__client_call_complete(call, PW_INTERNAL, "response ended inside a message");
            return;
        }
        pw__client_call_attempt_failed(call, call->status, "%s",
                                       call->message ? call->message : "");
    } else if (call->http_status != 0 && call->http_status != 200) {
        pw__client_call_attempt_failed(call, pw__http_to_grpc_status(call->http_status),
                                       "HTTP status %d without grpc-status", call->http_status);
    } else if (error_code != NGHTTP2_NO_ERROR) {
        call->refused = error_code == NGHTTP2_REFUSED_STREAM;
        pw__client_call_attempt_failed(call, rst_to_status(error_code),
                                       "stream reset by server: %s",
                                       nghttp2_http2_strerror(error_code));
    } else {
        pw__client_call_complete(call, PW_INTERNAL, "server closed the stream without grpc-status");
    }
}

/* ---- retries ---- */

static void retry_timer_closed(uv_handle_t *h)
{
    pw_free(h);
}

static void client_call_retry_fired(uv_timer_t *t)
{
    pw_client_call *call = t->data;
    if (call->done) {
        return;
    }
    /* Replay everything sent so far on a new stream. */
    call->out.buf.len = call->out.buf.off = 0;
    pw_buf_append(&call->out.buf, call->replay.data, call->replay.len);
    call->out.deferred = 0;
    call->out.blocked = 0;
    pw__channel_call_ready(call->ch, call);
}

/* Decides whether a failed attempt is tried again; returns 1 if a retry is scheduled. */
static int client_call_retry(pw_client_call *call, pw_status code)
{
    pw_channel *ch = call->ch;
    const pw_retry_policy *p = &ch->retry;
    uint32_t max = ch->has_retry ? p->max_attempts : 1;
    if (call->refused && max < 2) {
        max = 2; /* transparent retry: the server never processed the stream */
    }
    int eligible =
        !call->committed && call->attempts < max &&
        (call->refused || (ch->has_retry && call->idempotency != PW_IDEMPOTENCY_UNKNOWN &&
                           (p->retryable_codes & (1u << code))));
    if (!call->refused && ch->has_retry && (p->retryable_codes & (1u << code))) {
        pw__channel_retry_record(ch, 0);
    }
    if (!eligible || (!call->refused && !pw__channel_retry_allowed(ch))) {
        return 0;
    }
    uint32_t delay = call->refused ? 0 : pw__channel_jitter_below(ch, call->backoff_ms);
    uint64_t now = uv_now(ch->loop);
    if (call->deadline != 0 && now + delay >= call->deadline) {
        return 0;
    }
    if (call->retry_timer == NULL) {
        call->retry_timer = pw_malloc(sizeof(uv_timer_t));
        if (call->retry_timer == NULL) {
            return 0;
        }
        uv_timer_init(ch->loop, call->retry_timer);
        call->retry_timer->data = call;
    }
    uint64_t next = (uint64_t)call->backoff_ms * p->backoff_multiplier_pct / 100;
    call->backoff_ms = next > p->max_backoff_ms ? p->max_backoff_ms : (uint32_t)next;
    call->attempts++;
    call->refused = 0;
    /* Leave this attempt's stream and reset what the next one rebuilds. */
    pw__list_remove(&call->link);
    if (call->cc != NULL) {
        pw__cconn *cc = call->cc;
        call->cc = NULL;
        cc->active--;
        pw__cconn_release(cc);
    }
    call->stream_id = 0;
    call->http_status = 0;
    call->have_status = 0;
    call->bad_content_type = 0;
    call->response_gzip = 0;
    pw_free(call->message);
    call->message = NULL;
    pw_metadata_clear(&call->initial);
    pw_metadata_clear(&call->trailing);
    uint32_t max_len = call->in.max_len;
    pw__deframer_free(&call->in);
    pw__deframer_init(&call->in, max_len);
    uv_timer_start(call->retry_timer, client_call_retry_fired, delay, 0);
    return 1;
}

void pw__client_call_attempt_failed(pw_client_call *call, pw_status code, const char *fmt, ...)
{
    if (call->done) {
        return;
    }
    if (code == PW_OK) {
        if (call->ch->has_retry) {
            pw__channel_retry_record(call->ch, 1);
        }
    } else if (client_call_retry(call, code)) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pw__client_call_complete(call, code, "%s", msg);
}

/* ---- completion ---- */

void pw__client_call_complete(pw_client_call *call, pw_status code, const char *fmt, ...)
{
    if (call->done) {
        return;
    }
    call->done = 1;
    call->status = pw_status_to_wire(code);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pw_free(call->message);
    call->message = pw_strdup(msg);
    if (call->timer != NULL) {
        uv_timer_stop(call->timer);
    }
    if (call->retry_timer != NULL) {
        uv_timer_stop(call->retry_timer);
    }
    pw__list_remove(&call->link);
    pw__list_remove(&call->parent_link);
    call->parent = NULL;
    pw__cconn *cc = call->cc;
    if (cc != NULL) {
        cc->active--;
        if (!pw__list_empty(&call->ch->pending)) {
            pw__channel_kick_pending(call->ch); /* a stream freed up */
        }
    }
    if (cc != NULL && cc->session != NULL && call->stream_id != 0) {
        /* Still open on the wire: reset it and forget the call. */
        nghttp2_session_set_stream_user_data(cc->session, call->stream_id, NULL);
        nghttp2_submit_rst_stream(cc->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_CANCEL);
        pw__cconn_schedule(cc);
    }
    pw__tick_push(&call->ch->tick, &call->done_task);
}

static void timer_closed(uv_handle_t *h)
{
    pw_free(h);
}

static void client_call_done_task(pw__task *t)
{
    pw_client_call *call = PW_CONTAINER_OF(t, pw_client_call, done_task);
    pw_result result = {
        .code = call->status,
        .message = call->message ? call->message : "",
        .initial_metadata = &call->initial,
        .trailing_metadata = &call->trailing,
    };
    if (call->intercepted > 0) {
        call->stats.code = result.code;
        call->stats.duration_ns = uv_hrtime() - call->start_ns;
        for (size_t i = call->intercepted; i-- > 0;) {
            const pw_client_interceptor *ic = &call->ch->interceptors[i];
            if (ic->on_end != NULL) {
                ic->on_end(call, &result, &call->stats, ic->user_data);
            }
        }
    }
    call->ops->on_done(call, &result, call->ud);
    if (call->timer != NULL) {
        uv_close((uv_handle_t *)call->timer, timer_closed);
    }
    if (call->retry_timer != NULL) {
        uv_close((uv_handle_t *)call->retry_timer, retry_timer_closed);
    }
    pw_buf_reset(&call->replay);
    pw_metadata_clear(&call->md);
    pw_metadata_clear(&call->initial);
    pw_metadata_clear(&call->trailing);
    pw__outq_free(&call->out);
    pw__deframer_free(&call->in);
    pw_buf_reset(&call->inflated);
    pw_free(call->message);
    pw_free(call->path);
    pw__cconn *cc = call->cc;
    pw_free(call);
    if (cc != NULL) {
        pw__cconn_release(cc);
    }
}

/* ---- parent propagation (called from call.c) ---- */

void pw__client_call_parent_cancelled(pw__list *children)
{
    while (!pw__list_empty(children)) {
        pw_client_call *call = PW_CONTAINER_OF(children->next, pw_client_call, parent_link);
        pw__client_call_complete(call, PW_CANCELLED, "the parent call was cancelled");
    }
}

void pw__client_call_parent_gone(pw__list *children)
{
    while (!pw__list_empty(children)) {
        pw_client_call *call = PW_CONTAINER_OF(children->next, pw_client_call, parent_link);
        call->parent = NULL;
        pw__list_remove(children->next);
    }
}
