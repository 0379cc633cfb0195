/*
 * session.c: the glue between nghttp2's memory API and pw__conn, shared by the
 * server (server.c) and the client (channel.c). nghttp2 produces frames only
 * when pulled, so stopping at PW_CONN_OUTPUT_HIGH is what bounds a
 * connection's output memory when the peer reads slowly.
 */
#include <paywire/log.h>
#include "internal.h"
#include "h2/session.h"

int pw__h2_pump(pw__conn *conn, nghttp2_session *session, const char *who)
{
    if (conn->closing || session == NULL) {
        return -1;
    }
    while (pw__conn_buffered(conn) < PW_CONN_OUTPUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(session, &data);
        if (n < 0) {
            PW_LOG(PW_LOG_WARNING, who, "%s: HTTP/2 send error: %s", conn->address,
                   nghttp2_strerror((int)n));
            pw__conn_close(conn, PW_INTERNAL, 0);
            return -1;
        }
        if (n == 0) {
            break;
        }
        if (pw__conn_write(conn, data, (size_t)n) != PW_OK) {
            pw__conn_close(conn, PW_ERRNO(ENOMEM), 0);
            return -1;
        }
    }
    pw__conn_flush(conn);
    if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) {
        pw__conn_close(conn, PW_UNAVAILABLE, 1);
        return -1;
    }
    return 0;
}

pw_status pw__h2_feed(pw__conn *conn, nghttp2_session *session, const uint8_t *data, size_t len,
                      const char *who)
{
    ssize_t n = nghttp2_session_mem_recv(session, data, len);
    if (n < 0) {
        PW_LOG(PW_LOG_INFO, who, "%s: HTTP/2 protocol error: %s", conn->address,
               nghttp2_strerror((int)n));
        /* nghttp2 queued a GOAWAY for most errors: send it before closing. */
        pw__h2_pump(conn, session, who);
        return PW_UNAVAILABLE;
    }
    return PW_OK;
}

int pw__h2_send_data(pw__conn *conn, pw__outq *q, const uint8_t *framehd, size_t length)
{
    if (pw__conn_write(conn, framehd, 9) != PW_OK ||
        pw__conn_write(conn, pw__outq_data(q), length) != PW_OK) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    pw__outq_consume(q, length);
    return 0;
}

void pw__h2_settings(nghttp2_session *session, uint32_t max_streams, uint32_t max_header_list,
                     int is_client)
{
    nghttp2_settings_entry iv[5];
    size_t n = 0;
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PW_H2_WINDOW};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_header_list};
    /* Larger DATA frames let a message of up to 64 KiB arrive in one frame,
     * which the deframer hands over without reassembling it. */
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 65536};
    if (is_client) {
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    } else {
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams};
    }
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, n);
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, PW_H2_CONN_WINDOW);
}
