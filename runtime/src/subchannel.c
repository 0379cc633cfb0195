/*
 * subchannel.c: one address of a channel's target. Each subchannel follows
 * gRPC's connectivity states on its own: IDLE (connect when needed),
 * CONNECTING (bounded by connect_timeout), READY, TRANSIENT_FAILURE (a backoff
 * timer with jitter, as in gRPC's connection-backoff document: 1 s initial,
 * x1.6, +-20 %, 120 s cap, then IDLE again). It owns at most one HTTP/2
 * connection (pw__cconn), which lives until its socket is closed and its last
 * call is done. What the channel does with the states is in channel.c.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "client.h"
#include "h2/session.h"

/* ---- the connection ---- */

static void subchan_keepalive(uv_timer_t *t);
static void cconn_on_settings(pw__cconn *cc);

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
        pw__subchan *sub = cc->sub;
        if (sub != NULL && sub->conn == cc) {
            sub->conn = NULL;
            cc->ready = 0;
            pw__subchan_on_lost(sub);
        }
        return 0;
    }
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        cconn_on_settings(cc);
        return 0;
    }
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        cc->ping_outstanding = 0;
        if (cc->sub != NULL && cc->ch != NULL && cc->ch->opts.keepalive_time_ms != 0) {
            uv_timer_start(&cc->sub->timer, subchan_keepalive, cc->ch->opts.keepalive_time_ms, 0);
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
    pw__h2_settings(cc->session, 0, 65536, 1);
    return PW_OK;
}

/* ---- state machine ---- */

/* ---- state machine ---- */

static void subchan_backoff_fired(uv_timer_t *t)
{
    pw__subchan *s = t->data;
    if (s->state != PW_CHAN_TRANSIENT_FAILURE) {
        return;
    }
    s->state = PW_CHAN_IDLE;
    pw__channel_sub_changed(s->ch, s);
}

void pw__subchan_on_failed(pw__subchan *s, const char *why)
{
    pw_channel *ch = s->ch;
    snprintf(s->last_error, sizeof(s->last_error), "%s", why);
    snprintf(ch->last_error, sizeof(ch->last_error), "%s", why);
    /*
     * One address of several failing is not yet news ("localhost" resolves to
     * ::1 first while many servers listen on 127.0.0.1 only): the channel logs
     * it at info only once every address failed (pw__channel_sub_changed).
     */
    s->failure_unlogged = ch->sub_count > 1;
    PW_LOG(s->failure_unlogged ? PW_LOG_DEBUG : PW_LOG_INFO, "channel", "%s", why);
    s->state = PW_CHAN_TRANSIENT_FAILURE;
    uint32_t span = s->backoff_ms / 5;
    uint32_t delay = s->backoff_ms - span + pw__channel_jitter_below(ch, 2 * span + 1);
    uint64_t next = (uint64_t)s->backoff_ms * 8 / 5;
    s->backoff_ms = next > ch->opts.backoff_max_ms ? ch->opts.backoff_max_ms : (uint32_t)next;
    if (!ch->closing) {
        uv_timer_start(&s->timer, subchan_backoff_fired, delay, 0);
    }
    pw__channel_sub_changed(ch, s);
}

void pw__subchan_on_lost(pw__subchan *s)
{
    s->state = PW_CHAN_IDLE;
    uv_timer_stop(&s->timer);
    pw__channel_sub_changed(s->ch, s);
}

static void cconn_on_closed(pw__conn *c, pw_status why)
{
    pw__cconn *cc = c->owner;
    pw_channel *ch = cc->ch;
    pw__subchan *sub = cc->sub;
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
        if (cc->extra) {
            /* An overflow connection: no effect on the subchannel's state. */
            pw__list_remove(&cc->link);
            if (sub != NULL) {
                sub->extra_count--;
            }
        } else if (sub != NULL && sub->conn == cc) {
            sub->conn = NULL;
            int was_ready = cc->ready;
            cc->ready = 0;
            if (ch->closing) {
                /* nothing */
            } else if (was_ready) {
                pw__subchan_on_lost(sub);
            } else {
                pw__subchan_on_failed(sub, reason);
            }
        }
        cc->ch = NULL;
        cc->sub = NULL;
        pw__channel_maybe_finish(ch);
    }
    cc->refs--;
    pw__cconn_release(cc);
}

/* While READY the subchannel's timer drives keepalive PINGs. */
static void subchan_keepalive(uv_timer_t *t)
{
    pw__subchan *s = t->data;
    pw__cconn *cc = s->conn;
    const pw_channel_options *o = &s->ch->opts;
    if (s->state != PW_CHAN_READY || cc == NULL || cc->session == NULL) {
        return;
    }
    if (cc->ping_outstanding) {
        snprintf(cc->fail_reason, sizeof(cc->fail_reason),
                 "connection to %s: keepalive ping not acknowledged within %u ms", s->label,
                 o->keepalive_timeout_ms);
        pw__conn_close(&cc->conn, PW_UNAVAILABLE, 0);
        return;
    }
    if (!pw__list_empty(&cc->calls)) {
        cc->ping_outstanding = 1;
        nghttp2_submit_ping(cc->session, NGHTTP2_FLAG_NONE, NULL);
        pw__cconn_schedule(cc);
        uv_timer_start(t, subchan_keepalive, o->keepalive_timeout_ms, 0);
        return;
    }
    uv_timer_start(t, subchan_keepalive, o->keepalive_time_ms, 0);
}

/*
 * The server's SETTINGS arrived: the connection is ready. Waiting for them
 * (as gRPC core does) means the first requests already respect the server's
 * MAX_CONCURRENT_STREAMS, and a peer that never speaks HTTP/2 times out as a
 * failed connection attempt instead of swallowing calls.
 */
static void cconn_on_settings(pw__cconn *cc)
{
    pw__subchan *sub = cc->sub;
    if (cc->ready || sub == NULL) {
        return;
    }
    cc->ready = 1;
    if (cc->extra) {
        pw__channel_sub_changed(sub->ch, sub);
        return;
    }
    if (sub->conn != cc) {
        return;
    }
    uv_timer_stop(&sub->timer);
    sub->state = PW_CHAN_READY;
    sub->backoff_ms = sub->ch->opts.backoff_initial_ms;
    if (sub->ch->opts.keepalive_time_ms != 0) {
        uv_timer_start(&sub->timer, subchan_keepalive, sub->ch->opts.keepalive_time_ms, 0);
    }
    pw__channel_sub_changed(sub->ch, sub);
}

static void cconn_on_connect(pw__conn *c, pw_status st, const char *why)
{
    pw__cconn *cc = c->owner;
    pw__subchan *sub = cc->sub;
    if (sub == NULL || (sub->conn != cc && !cc->extra)) {
        return;
    }
    if (st != PW_OK) {
        snprintf(cc->fail_reason, sizeof(cc->fail_reason), "cannot connect to %s: %s", sub->label,
                 why);
        pw__conn_close(c, st, 0);
        return;
    }
    if (cconn_session_start(cc) != PW_OK) {
        pw__conn_close(c, PW_ERRNO(ENOMEM), 0);
        return;
    }
    /* Our preface and SETTINGS go out now; ready when the server's arrive. */
    cconn_pump(cc);
}

static const pw__conn_ops cconn_ops = {
    .on_read = cconn_on_read,
    .on_writable = cconn_on_writable,
    .on_connect = cconn_on_connect,
    .on_closed = cconn_on_closed,
};

static void subchan_connect_timeout(uv_timer_t *t)
{
    pw__subchan *s = t->data;
    if (s->state == PW_CHAN_CONNECTING && s->conn != NULL) {
        snprintf(s->conn->fail_reason, sizeof(s->conn->fail_reason), "connect to %s timed out",
                 s->label);
        pw__conn_close(&s->conn->conn, PW_ERRNO(ETIMEDOUT), 0);
    }
}

/* A new connection to s's address: the primary (state CONNECTING) or an overflow one. */
static pw__cconn *subchan_new_conn(pw__subchan *s, int extra, pw_status *rv_out)
{
    pw_channel *ch = s->ch;
    pw__cconn *cc = pw_calloc(1, sizeof(*cc));
    if (cc == NULL) {
        *rv_out = PW_ERRNO(ENOMEM);
        return NULL;
    }
    pw__list_init(&cc->calls);
    pw__list_init(&cc->link);
    pw__task_init(&cc->pump, cconn_pump_task);
    cc->ch = ch;
    cc->sub = s;
    cc->refs = 1;
    cc->extra = extra;
    pw_status rv = pw__conn_init(&cc->conn, ch->loop, ch->unix_path != NULL, &cconn_ops, cc);
    if (rv != PW_OK) {
        pw_free(cc);
        *rv_out = rv;
        return NULL;
    }
    if (extra) {
        pw__list_push(&s->extras, &cc->link);
        s->extra_count++;
    } else {
        s->state = PW_CHAN_CONNECTING;
        s->conn = cc;
    }
    ch->open_handles++;
    rv = pw__conn_connect(&cc->conn, ch->unix_path ? NULL : (const struct sockaddr *)&s->addr,
                          ch->unix_path, ch->ssl_ctx, ch->sni);
    if (rv != PW_OK) {
        snprintf(cc->fail_reason, sizeof(cc->fail_reason), "connect to %s: %s", s->label,
                 pw_status_str(rv));
        pw__conn_close(&cc->conn, rv, 0);
    }
    *rv_out = PW_OK;
    return cc;
}

void pw__subchan_connect(pw__subchan *s)
{
    pw_channel *ch = s->ch;
    if (s->state != PW_CHAN_IDLE || ch->closing) {
        return;
    }
    pw_status rv;
    pw__cconn *cc = subchan_new_conn(s, 0, &rv);
    if (cc == NULL) {
        pw__subchan_on_failed(s, pw_status_str(rv));
        return;
    }
    if (cc->conn.closing) {
        return; /* failed at once: on_closed reports it */
    }
    uv_timer_start(&s->timer, subchan_connect_timeout, ch->opts.connect_timeout_ms, 0);
}

pw__cconn *pw__subchan_room(pw__subchan *s)
{
    pw__cconn *cc = s->conn;
    if (cc != NULL && cc->ready && cc->session != NULL &&
        (uint32_t)cc->active < nghttp2_session_get_remote_settings(
                                   cc->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)) {
        return cc;
    }
    PW_LIST_FOREACH(node, &s->extras) {
        cc = PW_CONTAINER_OF(node, pw__cconn, link);
        if (cc->ready && cc->session != NULL &&
            (uint32_t)cc->active < nghttp2_session_get_remote_settings(
                                       cc->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)) {
            return cc;
        }
    }
    return NULL;
}

void pw__subchan_open_extra(pw__subchan *s)
{
    PW_LIST_FOREACH(node, &s->extras) {
        if (!PW_CONTAINER_OF(node, pw__cconn, link)->ready) {
            return; /* one is already connecting */
        }
    }
    if (s->extra_count >= 16 || s->ch->closing) {
        return;
    }
    pw_status rv;
    subchan_new_conn(s, 1, &rv);
}

pw__subchan *pw__subchan_new(pw_channel *ch, const struct sockaddr *addr, const char *label)
{
    pw__subchan *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->ch = ch;
    if (addr != NULL) {
        memcpy(&s->addr, addr,
               addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in));
    }
    snprintf(s->label, sizeof(s->label), "%s", label);
    s->state = PW_CHAN_IDLE;
    s->backoff_ms = ch->opts.backoff_initial_ms;
    pw__list_init(&s->extras);
    uv_timer_init(ch->loop, &s->timer);
    s->timer.data = s;
    ch->open_handles++;
    return s;
}

static void subchan_timer_closed(uv_handle_t *h)
{
    pw__subchan *s = h->data;
    pw_channel *ch = s->ch;
    ch->open_handles--;
    pw__channel_maybe_finish(ch);
}

static void cconn_close_for_channel(pw__cconn *cc)
{
    while (!pw__list_empty(&cc->calls)) {
        pw_client_call_cancel(PW_CONTAINER_OF(cc->calls.next, pw_client_call, link));
    }
    if (cc->session != NULL) {
        nghttp2_submit_goaway(cc->session, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        pw__h2_pump(&cc->conn, cc->session, "channel");
    }
    pw__conn_close(&cc->conn, PW_CANCELLED, 1);
}

void pw__subchan_close(pw__subchan *s)
{
    uv_close((uv_handle_t *)&s->timer, subchan_timer_closed);
    if (s->conn != NULL) {
        cconn_close_for_channel(s->conn);
    }
    PW_LIST_FOREACH(node, &s->extras) {
        cconn_close_for_channel(PW_CONTAINER_OF(node, pw__cconn, link));
    }
}
