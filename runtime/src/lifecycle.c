/*
 * lifecycle.c: what happens to a server connection over time. One uv_timer_t
 * per connection watches every deadline (handshake, idle, maximum age and its
 * grace, keepalive and its timeout, the drain's second GOAWAY); it is re-armed
 * for the earliest, and deadlines that moved (a read since) are simply
 * re-checked when it fires, so the hot path never touches the timer.
 *
 * Draining follows gRPC's double GOAWAY: a first GOAWAY with the maximum
 * stream id plus a PING tells the client to stop opening streams; when the
 * PING's ACK returns (one round trip, so anything the client sent before it
 * has arrived) a second GOAWAY names the last stream served. nghttp2 then
 * reports nothing more to read or write once those streams end, and the pump
 * closes the connection.
 */
#include <string.h>
#include <paywire/log.h>
#include "internal.h"

#define PW_DRAIN_PING_FALLBACK_MS 1000
static const uint8_t drain_opaque[8] = {'p', 'w', 'd', 'r', 'a', 'i', 'n', '!'};
static const uint8_t keepalive_opaque[8] = {'p', 'w', 'k', 'e', 'e', 'p', 'a', 'l'};

static uint64_t at(uint64_t base, uint32_t ms)
{
    return ms == PW_DISABLED ? UINT64_MAX : base + ms;
}

static void send_final_goaway(pw__sconn *sc)
{
    if (sc->final_goaway || sc->session == NULL) {
        return;
    }
    sc->final_goaway = 1;
    nghttp2_submit_goaway(sc->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(sc->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    pw__sconn_schedule(sc);
}

void pw__sconn_drain(pw__sconn *sc)
{
    if (sc->http1 && !sc->draining && !sc->conn.closing) {
        /* HTTP/1.1 has no GOAWAY: the response in flight says "connection: close". */
        sc->draining = 1;
        sc->drain_started_at = uv_now(sc->conn.h.handle.loop);
        if (pw__list_empty(&sc->calls)) {
            pw__conn_close(&sc->conn, PW_UNAVAILABLE, 1);
        }
        return;
    }
    if (sc->draining || sc->session == NULL || sc->conn.closing) {
        return;
    }
    sc->draining = 1;
    sc->drain_started_at = uv_now(sc->conn.h.handle.loop);
    nghttp2_submit_shutdown_notice(sc->session);
    nghttp2_submit_ping(sc->session, NGHTTP2_FLAG_NONE, drain_opaque);
    pw__sconn_schedule(sc);
    uv_timer_start(&sc->timer, sc->timer.timer_cb, PW_DRAIN_PING_FALLBACK_MS, 0);
}

/* Closes for a lifecycle reason: GOAWAY first when the session is up. */
static void sconn_expire(pw__sconn *sc, const char *why, uint32_t code, int graceful)
{
    PW_LOG(PW_LOG_INFO, "server", "%s: closing: %s", sc->conn.address, why);
    if (sc->session != NULL && sc->h2_ready) {
        nghttp2_submit_goaway(sc->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(sc->session), code,
                              (const uint8_t *)why, strlen(why));
        sc->final_goaway = 1;
        pw__sconn_pump(sc);
    }
    pw__conn_close(&sc->conn, PW_UNAVAILABLE, graceful);
}

static void lifecycle_fired(uv_timer_t *t)
{
    pw__sconn *sc = t->data;
    if (sc->conn.closing || sc->server == NULL) {
        return;
    }
    const pw_server_options *o = &sc->server->opts;
    uint64_t now = uv_now(t->loop);
    uint64_t next = UINT64_MAX;
#define DUE(deadline) ((deadline) <= now ? 1 : ((deadline) < next ? (next = (deadline), 0) : 0))
    if (!sc->h2_ready && !sc->http1) {
        if (DUE(at(sc->accepted_at, o->handshake_timeout_ms))) {
            sconn_expire(sc, "no HTTP/2 handshake in time", NGHTTP2_NO_ERROR, 0);
            return;
        }
    }
    uint64_t head = sc->http1 ? pw__http1_head_started_at(sc) : 0;
    if (head != 0 && DUE(at(head, o->handshake_timeout_ms))) {
        PW_LOG(PW_LOG_INFO, "server", "%s: closing: HTTP/1.1 request head too slow",
               sc->conn.address);
        pw__http1_head_timeout(sc);
        return;
    }
    if (sc->draining && !sc->final_goaway &&
        DUE(sc->drain_started_at + PW_DRAIN_PING_FALLBACK_MS)) {
        send_final_goaway(sc);
    }
    if (sc->draining && DUE(at(sc->drain_started_at, o->max_connection_age_grace_ms)) &&
        !sc->server->shutting_down) {
        sconn_expire(sc, "max connection age grace period over", NGHTTP2_NO_ERROR, 0);
        return;
    }
    if (!sc->draining && DUE(at(sc->accepted_at, o->max_connection_age_ms))) {
        pw__sconn_drain(sc);
        next = now + PW_DRAIN_PING_FALLBACK_MS;
    }
    if (pw__list_empty(&sc->calls) && (sc->h2_ready || sc->http1)) {
        if (DUE(at(sc->idle_since, o->idle_timeout_ms))) {
            sconn_expire(sc, "idle timeout", NGHTTP2_NO_ERROR, 1);
            return;
        }
    }
    if (sc->ping_outstanding) {
        if (DUE(at(sc->ping_sent_at, o->keepalive_timeout_ms))) {
            sconn_expire(sc, "keepalive ping not acknowledged", NGHTTP2_NO_ERROR, 0);
            return;
        }
    } else if (sc->h2_ready && DUE(at(sc->last_read_at, o->keepalive_time_ms))) {
        sc->ping_outstanding = 1;
        sc->ping_sent_at = now;
        nghttp2_submit_ping(sc->session, NGHTTP2_FLAG_NONE, keepalive_opaque);
        pw__sconn_schedule(sc);
        DUE(at(now, o->keepalive_timeout_ms));
    }
#undef DUE
    if (next != UINT64_MAX) {
        uv_timer_start(&sc->timer, lifecycle_fired, next - now, 0);
    }
}

void pw__sconn_lifecycle_kick(pw__sconn *sc, uint64_t deadline)
{
    if (sc->conn.closing || uv_is_closing((uv_handle_t *)&sc->timer)) {
        return;
    }
    uint64_t now = uv_now(sc->conn.h.handle.loop);
    uint64_t due = uv_is_active((uv_handle_t *)&sc->timer) ? now + uv_timer_get_due_in(&sc->timer)
                                                           : UINT64_MAX;
    if (deadline < due) {
        uv_timer_start(&sc->timer, lifecycle_fired, deadline > now ? deadline - now : 0, 0);
    }
}

void pw__sconn_on_h2_ready(pw__sconn *sc)
{
    sc->h2_ready = 1;
    /* The handshake deadline is gone: re-evaluate every other one now. */
    pw__sconn_lifecycle_kick(sc, 0);
}

void pw__sconn_on_idle(pw__sconn *sc)
{
    sc->idle_since = uv_now(sc->conn.h.handle.loop);
    if (sc->server != NULL) {
        pw__sconn_lifecycle_kick(sc, at(sc->idle_since, sc->server->opts.idle_timeout_ms));
    }
}

void pw__sconn_lifecycle_start(pw__sconn *sc)
{
    uv_loop_t *loop = sc->conn.h.handle.loop;
    uv_timer_init(loop, &sc->timer);
    sc->timer.data = sc;
    sc->timer.timer_cb = lifecycle_fired;
    uint64_t now = uv_now(loop);
    sc->accepted_at = sc->last_read_at = sc->idle_since = now;
    /* The first deadline is always the handshake's (or nothing, when disabled). */
    uint32_t first = sc->server->opts.handshake_timeout_ms;
    uv_timer_start(&sc->timer, lifecycle_fired, first == PW_DISABLED ? 1000 : first, 0);
}

void pw__sconn_lifecycle_stop(pw__sconn *sc, uv_close_cb closed)
{
    uv_close((uv_handle_t *)&sc->timer, closed);
}

void pw__sconn_on_ping(pw__sconn *sc, const nghttp2_frame *frame)
{
    uint64_t now = uv_now(sc->conn.h.handle.loop);
    if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
        if (memcmp(frame->ping.opaque_data, drain_opaque, 8) == 0) {
            send_final_goaway(sc);
        } else if (memcmp(frame->ping.opaque_data, keepalive_opaque, 8) == 0) {
            sc->ping_outstanding = 0;
            uv_timer_start(&sc->timer, lifecycle_fired, 0, 0);
        }
        return;
    }
    /*
     * gRPC's ping policy: pings closer than min_ping_interval with no data
     * sent in between are strikes; more than two is abuse.
     */
    uint32_t min = sc->server->opts.min_ping_interval_ms;
    if (min != PW_DISABLED && sc->last_client_ping_at != 0 && now - sc->last_client_ping_at < min) {
        if (++sc->ping_strikes > 2) {
            sconn_expire(sc, "too_many_pings", NGHTTP2_ENHANCE_YOUR_CALM, 1);
            return;
        }
    }
    sc->last_client_ping_at = now;
}

void pw__sconn_on_stream_frame_sent(pw__sconn *sc)
{
    sc->ping_strikes = 0;
    sc->last_client_ping_at = 0;
}
