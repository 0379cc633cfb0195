/*
 * channel.c: a client's connection to one target. States follow gRPC's
 * connectivity semantics: IDLE (connect on the next call), CONNECTING, READY,
 * TRANSIENT_FAILURE (new calls fail fast with UNAVAILABLE unless
 * wait_for_ready; a backoff timer with jitter schedules the next attempt, as in
 * gRPC's connection-backoff document: 1 s initial, x1.6, +-20 %, 120 s cap).
 * A connection lives until its socket is closed and its last call is done.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "client.h"
#include "h2/session.h"
#include "net/addr.h"

static void channel_connect(pw_channel *ch);
static void channel_fail_pending(pw_channel *ch, int include_wait_for_ready, pw_status code);
static void channel_maybe_finish(pw_channel *ch);

/* ---- connection ---- */

void pw__cconn_release(pw__cconn *cc)
{
    if (--cc->refs == 0) {
        if (cc->session != NULL) {
            nghttp2_session_del(cc->session);
        }
        pw__conn_cleanup(&cc->conn);
        pw_free(cc);
    }
}

static void cconn_pump(pw__cconn *cc)
{
    if (pw__h2_pump(&cc->conn, cc->session, "channel") != 0 || !cc->ready_pending) {
        return;
    }
    cc->ready_pending = 0;
    PW_LIST_FOREACH(node, &cc->calls) {
        pw__client_call_fire_ready(PW_CONTAINER_OF(node, pw_client_call, link));
    }
}

static void cconn_pump_task(pw__task *t)
{
    cconn_pump(PW_CONTAINER_OF(t, pw__cconn, pump));
}

void pw__cconn_schedule(pw__cconn *cc)
{
    if (cc->ch != NULL && !cc->conn.closing) {
        pw__tick_push(&cc->ch->tick, &cc->pump);
    }
}

static pw_status cconn_on_read(pw__conn *c, const uint8_t *data, size_t len)
{
    pw__cconn *cc = c->owner;
    if (cc->session == NULL) {
        return PW_UNAVAILABLE;
    }
    cc->refs++; /* callbacks may complete every call */
    pw_status rv = pw__h2_feed(c, cc->session, data, len, "channel");
    if (rv == PW_OK) {
        cconn_pump(cc);
    }
    pw__cconn_release(cc);
    return rv;
}

static void cconn_on_writable(pw__conn *c)
{
    cconn_pump(c->owner);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    pw_client_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call != NULL && frame->hd.type == NGHTTP2_HEADERS) {
        pw__client_call_on_header(call, frame, name, namelen, value, valuelen);
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    pw__cconn *cc = ud;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* No new streams on this connection: the next call opens another one. */
        pw_channel *ch = cc->ch;
        if (ch != NULL && ch->conn == cc) {
            ch->conn = NULL;
            ch->state = PW_CHAN_IDLE;
            cc->ready = 0;
            if (!pw__list_empty(&ch->pending)) {
                channel_connect(ch);
            }
        }
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    pw_client_call *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call != NULL) {
        pw__client_call_on_headers_done(call, frame);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    pw_client_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call != NULL) {
        pw__client_call_on_data(call, data, len);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *ud)
{
    (void)ud;
    pw_client_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call != NULL) {
        nghttp2_session_set_stream_user_data(session, stream_id, NULL);
        pw__client_call_on_stream_close(call, error_code);
    }
    return 0;
}

static pw_status cconn_session_start(pw__cconn *cc)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return PW_ERRNO(ENOMEM);
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_send_data_callback(cbs, pw__client_call_send_data);
    int rv = nghttp2_session_client_new(&cc->session, cbs, cc);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        return PW_ERRNO(ENOMEM);
    }
    pw__h2_settings(cc->session, 0, 1);
    return PW_OK;
}

/* ---- state machine ---- */

static uint32_t channel_jitter(pw_channel *ch, uint32_t ms)
{
    /* xorshift64: per-channel state, no global RNG. Jitter is +-20 %. */
    ch->rng ^= ch->rng << 13;
    ch->rng ^= ch->rng >> 7;
    ch->rng ^= ch->rng << 17;
    uint32_t span = ms / 5;
    if (span == 0) {
        return ms;
    }
    return ms - span + (uint32_t)(ch->rng % (2 * (uint64_t)span + 1));
}

uint32_t pw__channel_jitter_below(pw_channel *ch, uint32_t ms)
{
    ch->rng ^= ch->rng << 13;
    ch->rng ^= ch->rng >> 7;
    ch->rng ^= ch->rng << 17;
    return ms == 0 ? 0 : (uint32_t)(ch->rng % ms);
}

int pw__channel_retry_allowed(pw_channel *ch)
{
    return ch->tokens > ch->max_tokens / 2;
}

void pw__channel_retry_record(pw_channel *ch, int success)
{
    if (success) {
        ch->tokens = ch->tokens + ch->token_ratio > ch->max_tokens ? ch->max_tokens
                                                                   : ch->tokens + ch->token_ratio;
    } else {
        ch->tokens = ch->tokens > 1000 ? ch->tokens - 1000 : 0;
    }
}

static void channel_backoff_fired(uv_timer_t *t)
{
    pw_channel *ch = t->data;
    if (ch->state != PW_CHAN_TRANSIENT_FAILURE) {
        return;
    }
    ch->state = PW_CHAN_IDLE;
    if (!pw__list_empty(&ch->pending)) {
        channel_connect(ch);
    }
}

static void channel_transient_failure(pw_channel *ch, const char *why)
{
    snprintf(ch->last_error, sizeof(ch->last_error), "%s", why);
    PW_LOG(PW_LOG_INFO, "channel", "%s", why);
    ch->state = PW_CHAN_TRANSIENT_FAILURE;
    channel_fail_pending(ch, 0, PW_UNAVAILABLE);
    uint32_t delay = channel_jitter(ch, ch->backoff_ms);
    uint64_t next = (uint64_t)ch->backoff_ms * 8 / 5;
    ch->backoff_ms = next > ch->opts.backoff_max_ms ? ch->opts.backoff_max_ms : (uint32_t)next;
    uv_timer_start(&ch->timer, channel_backoff_fired, delay, 0);
}

static void cconn_on_closed(pw__conn *c, pw_status why)
{
    pw__cconn *cc = c->owner;
    pw_channel *ch = cc->ch;
    pw__task_cancel(&cc->pump);
    char reason[300];
    if (cc->fail_reason[0] != '\0') {
        snprintf(reason, sizeof(reason), "%s", cc->fail_reason);
    } else {
        snprintf(reason, sizeof(reason), "connection to %s closed: %s", c->address,
                 why == PW_OK ? "by peer" : pw_status_str(why));
    }
    cc->refs++;
    while (!pw__list_empty(&cc->calls)) {
        pw_client_call *call = PW_CONTAINER_OF(cc->calls.next, pw_client_call, link);
        pw__client_call_attempt_failed(call, PW_UNAVAILABLE, "%s", reason);
    }
    if (ch != NULL) {
        ch->open_handles--;
        if (ch->conn == cc) {
            ch->conn = NULL;
            int was_ready = cc->ready;
            cc->ready = 0;
            if (ch->closing) {
                /* nothing */
            } else if (was_ready) {
                ch->state = PW_CHAN_IDLE;
                if (!pw__list_empty(&ch->pending)) {
                    channel_connect(ch);
                }
            } else {
                channel_transient_failure(ch, reason);
            }
        }
        cc->ch = NULL;
        channel_maybe_finish(ch);
    }
    cc->refs--;
    pw__cconn_release(cc);
}

static void cconn_on_connect(pw__conn *c, pw_status st, const char *why)
{
    pw__cconn *cc = c->owner;
    pw_channel *ch = cc->ch;
    if (ch == NULL || ch->conn != cc) {
        return;
    }
    uv_timer_stop(&ch->timer);
    if (st != PW_OK) {
        snprintf(cc->fail_reason, sizeof(cc->fail_reason), "cannot connect to %s: %s",
                 ch->authority, why);
        pw__conn_close(c, st, 0);
        return;
    }
    if (cconn_session_start(cc) != PW_OK) {
        pw__conn_close(c, PW_ERRNO(ENOMEM), 0);
        return;
    }
    cc->ready = 1;
    ch->state = PW_CHAN_READY;
    ch->backoff_ms = ch->opts.backoff_initial_ms;
    while (!pw__list_empty(&ch->pending)) {
        pw_client_call *call = PW_CONTAINER_OF(ch->pending.next, pw_client_call, link);
        pw__list_remove(&call->link);
        pw__client_call_submit(call, cc);
    }
    cconn_pump(cc);
}

static const pw__conn_ops cconn_ops = {
    .on_read = cconn_on_read,
    .on_writable = cconn_on_writable,
    .on_connect = cconn_on_connect,
    .on_closed = cconn_on_closed,
};

static void channel_connect_timeout(uv_timer_t *t)
{
    pw_channel *ch = t->data;
    if (ch->state == PW_CHAN_CONNECTING && ch->conn != NULL) {
        snprintf(ch->last_error, sizeof(ch->last_error), "connect to %s timed out", ch->authority);
        pw__conn_close(&ch->conn->conn, PW_ERRNO(ETIMEDOUT), 0);
    }
}

static void channel_start_conn(pw_channel *ch, const struct sockaddr *addr)
{
    pw__cconn *cc = pw_calloc(1, sizeof(*cc));
    if (cc == NULL) {
        channel_transient_failure(ch, "out of memory");
        return;
    }
    pw__list_init(&cc->calls);
    pw__task_init(&cc->pump, cconn_pump_task);
    cc->ch = ch;
    cc->refs = 1;
    pw_status rv = pw__conn_init(&cc->conn, ch->loop, ch->unix_path != NULL, &cconn_ops, cc);
    if (rv != PW_OK) {
        pw_free(cc);
        channel_transient_failure(ch, pw_status_str(rv));
        return;
    }
    ch->conn = cc;
    ch->open_handles++;
    rv = pw__conn_connect(&cc->conn, addr, ch->unix_path, ch->ssl_ctx, ch->sni);
    if (rv != PW_OK) {
        snprintf(ch->last_error, sizeof(ch->last_error), "connect to %s: %s", ch->authority,
                 pw_status_str(rv));
        pw__conn_close(&cc->conn, rv, 0);
        return;
    }
    uv_timer_start(&ch->timer, channel_connect_timeout, ch->opts.connect_timeout_ms, 0);
}

static void channel_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pw_channel *ch = req->data;
    pw_free(req);
    ch->resolving = NULL;
    ch->open_handles--;
    if (ch->closing) {
        uv_freeaddrinfo(res);
        channel_maybe_finish(ch);
        return;
    }
    if (status != 0 || res == NULL) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", ch->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        channel_transient_failure(ch, why);
        return;
    }
    channel_start_conn(ch, res->ai_addr);
    uv_freeaddrinfo(res);
}

static void channel_connect(pw_channel *ch)
{
    if (ch->state == PW_CHAN_CONNECTING || ch->state == PW_CHAN_READY || ch->closing) {
        return;
    }
    ch->state = PW_CHAN_CONNECTING;
    if (ch->unix_path != NULL) {
        channel_start_conn(ch, NULL);
        return;
    }
    uv_getaddrinfo_t *req = pw_malloc(sizeof(*req));
    if (req == NULL) {
        channel_transient_failure(ch, "out of memory");
        return;
    }
    req->data = ch;
    char port[16];
    snprintf(port, sizeof(port), "%d", ch->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rv = uv_getaddrinfo(ch->loop, req, channel_resolved, ch->host, port, &hints);
    if (rv != 0) {
        pw_free(req);
        channel_transient_failure(ch, uv_strerror(rv));
        return;
    }
    ch->resolving = req;
    ch->open_handles++;
}

/* A new call: send now, queue, or fail fast (never from inside start). */
void pw__channel_call_ready(pw_channel *ch, pw_client_call *call)
{
    switch (ch->state) {
    case PW_CHAN_READY:
        pw__client_call_submit(call, ch->conn);
        pw__cconn_schedule(ch->conn);
        return;
    case PW_CHAN_TRANSIENT_FAILURE:
        if (!call->wait_for_ready) {
            pw__list_push(&ch->pending, &call->link);
            channel_fail_pending(ch, 0, PW_UNAVAILABLE);
            return;
        }
        pw__list_push(&ch->pending, &call->link);
        return;
    case PW_CHAN_IDLE:
        pw__list_push(&ch->pending, &call->link);
        channel_connect(ch);
        return;
    case PW_CHAN_CONNECTING:
        pw__list_push(&ch->pending, &call->link);
        return;
    }
}

static void channel_fail_pending(pw_channel *ch, int include_wait_for_ready, pw_status code)
{
    pw__list keep;
    pw__list_init(&keep);
    while (!pw__list_empty(&ch->pending)) {
        pw_client_call *call = PW_CONTAINER_OF(ch->pending.next, pw_client_call, link);
        pw__list_remove(&call->link);
        if (call->wait_for_ready && !include_wait_for_ready) {
            pw__list_push(&keep, &call->link);
            continue;
        }
        pw__client_call_complete(call, code, "%s",
                                 code == PW_CANCELLED ? "channel closed" : ch->last_error);
    }
    while (!pw__list_empty(&keep)) {
        pw__list *n = keep.next;
        pw__list_remove(n);
        pw__list_push(&ch->pending, n);
    }
}

/* ---- public ---- */

static pw_status channel_parse_target(pw_channel *ch, const char *target)
{
    if (strncmp(target, "unix:", 5) == 0) {
        ch->unix_path = pw_strdup(target + 5);
        ch->authority = pw_strdup("localhost");
        return ch->unix_path && ch->authority ? PW_OK : PW_ERRNO(ENOMEM);
    }
    char host[256];
    int port;
    if (pw__parse_host_port(target, host, sizeof(host), &port) != PW_OK || host[0] == '\0' ||
        port == 0) {
        return PW_INVALID_ARGUMENT;
    }
    ch->host = pw_strdup(host);
    ch->port = port;
    ch->authority = pw_strdup(target);
    return ch->host && ch->authority ? PW_OK : PW_ERRNO(ENOMEM);
}

static void channel_free(pw_channel *ch)
{
    if (ch->ssl_ctx != NULL) {
        SSL_CTX_free(ch->ssl_ctx);
    }
    pw_free(ch->host);
    pw_free(ch->unix_path);
    pw_free(ch->authority);
    pw_free(ch->sni);
    pw_free(ch);
}

pw_status pw_channel_new(pw_channel **out, uv_loop_t *loop, const char *target,
                         const pw_channel_options *opts)
{
    pw_channel *ch = pw_calloc(1, sizeof(*ch));
    if (ch == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw__ignore_sigpipe();
    ch->loop = loop;
    if (opts != NULL) {
        ch->opts = *opts;
    }
    pw_channel_options *o = &ch->opts;
    o->max_recv_message_size =
        o->max_recv_message_size ? o->max_recv_message_size : PW_DEFAULT_MAX_MESSAGE;
    o->backoff_initial_ms = o->backoff_initial_ms ? o->backoff_initial_ms : 1000;
    o->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 120000;
    o->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 20000;
    ch->backoff_ms = o->backoff_initial_ms;
    ch->rng = uv_hrtime() | 1;
    if (opts != NULL && opts->retry != NULL) {
        pw_retry_policy *r = &ch->retry;
        *r = *opts->retry;
        r->max_attempts = r->max_attempts ? (r->max_attempts > 5 ? 5 : r->max_attempts) : 3;
        r->initial_backoff_ms = r->initial_backoff_ms ? r->initial_backoff_ms : 100;
        r->max_backoff_ms = r->max_backoff_ms ? r->max_backoff_ms : 5000;
        r->backoff_multiplier_pct = r->backoff_multiplier_pct ? r->backoff_multiplier_pct : 200;
        r->retryable_codes = r->retryable_codes ? r->retryable_codes : 1u << PW_UNAVAILABLE;
        ch->has_retry = 1;
    }
    o->retry = NULL;
    o->retry_buffer_size = o->retry_buffer_size ? o->retry_buffer_size : 256 * 1024;
    ch->max_tokens = 1000 * (o->retry_max_tokens ? o->retry_max_tokens : 10);
    ch->token_ratio = 10 * (o->retry_token_ratio_pct ? o->retry_token_ratio_pct : 10);
    ch->tokens = ch->max_tokens;
    pw__list_init(&ch->pending);
    pw_status rv = channel_parse_target(ch, target);
    if (rv == PW_OK && opts != NULL && opts->authority != NULL) {
        pw_free(ch->authority);
        ch->authority = pw_strdup(opts->authority);
    }
    if (rv == PW_OK && opts != NULL && opts->tls != NULL) {
        char err[256];
        rv = pw__tls_client_ctx(opts->tls, &ch->ssl_ctx, err, sizeof(err));
        if (rv != PW_OK) {
            PW_LOG(PW_LOG_ERR, "channel", "%s: %s", target, err);
        }
        const char *name = opts->tls->server_name_override ? opts->tls->server_name_override
                                                           : (ch->host ? ch->host : "localhost");
        ch->sni = pw_strdup(name);
    }
    ch->opts.tls = NULL;
    ch->opts.authority = NULL;
    if (rv != PW_OK) {
        channel_free(ch);
        return rv;
    }
    pw__tick_init(&ch->tick, loop, ch);
    uv_timer_init(loop, &ch->timer);
    ch->timer.data = ch;
    *out = ch;
    return PW_OK;
}

uv_loop_t *pw_channel_loop(const pw_channel *ch)
{
    return ch->loop;
}

static void channel_tick_closed(uv_handle_t *h)
{
    pw_channel *ch = h->data;
    pw__tick_drain(&ch->tick);
    if (ch->close_cb != NULL) {
        ch->close_cb(ch, ch->close_ud);
    }
    channel_free(ch);
}

/* Frees the channel once its timer, resolver and connection are closed. */
static void channel_maybe_finish(pw_channel *ch)
{
    if (ch->closing == 1 && ch->open_handles == 0) {
        ch->closing = 2;
        ch->tick.idle.data = ch;
        uv_close((uv_handle_t *)&ch->tick.idle, channel_tick_closed);
    }
}

static void channel_timer_closed(uv_handle_t *h)
{
    pw_channel *ch = h->data;
    ch->open_handles--;
    channel_maybe_finish(ch);
}

void pw_channel_close(pw_channel *ch, pw_channel_close_cb cb, void *ud)
{
    if (ch->closing) {
        return;
    }
    ch->closing = 1;
    ch->close_cb = cb;
    ch->close_ud = ud;
    channel_fail_pending(ch, 1, PW_CANCELLED);
    ch->open_handles++;
    uv_close((uv_handle_t *)&ch->timer, channel_timer_closed);
    if (ch->resolving != NULL) {
        uv_cancel((uv_req_t *)ch->resolving);
    }
    if (ch->conn != NULL) {
        pw__cconn *cc = ch->conn;
        while (!pw__list_empty(&cc->calls)) {
            pw_client_call_cancel(PW_CONTAINER_OF(cc->calls.next, pw_client_call, link));
        }
        if (cc->session != NULL) {
            nghttp2_submit_goaway(cc->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
            pw__h2_pump(&cc->conn, cc->session, "channel");
        }
        pw__conn_close(&cc->conn, PW_CANCELLED, 1);
    }
}
