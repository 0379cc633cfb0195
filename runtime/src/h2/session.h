#ifndef PAYWIRE_H2_SESSION_H
#define PAYWIRE_H2_SESSION_H

/* What server and client connections share: moving frames between nghttp2 and the socket. */
#include <nghttp2/nghttp2.h>
#include "net/conn.h"
#include "h2/outq.h"

/**
 * Pulls frames from nghttp2 into the connection's output until it holds
 * PW_CONN_OUTPUT_HIGH bytes, then starts a write. Closes the connection (and
 * returns non-zero) on an nghttp2 error, or gracefully when neither side wants
 * anything more.
 */
int pw__h2_pump(pw__conn *conn, nghttp2_session *session, const char *who);

/** Feeds received plaintext to nghttp2; returns PW_OK or PW_UNAVAILABLE on a protocol error. */
pw_status pw__h2_feed(pw__conn *conn, nghttp2_session *session, const uint8_t *data, size_t len,
                      const char *who);

/**
 * nghttp2's send_data step for both sides: writes the 9-byte frame header and
 * length bytes from q to conn, and consumes them from q. Returns 0, or
 * NGHTTP2_ERR_CALLBACK_FAILURE when the connection cannot take them.
 */
int pw__h2_send_data(pw__conn *conn, struct pw__outq *q, const uint8_t *framehd, size_t length);

/** Sends our SETTINGS (streams, window, header list size) and widens the connection window. */
void pw__h2_settings(nghttp2_session *session, uint32_t max_streams, uint32_t max_header_list,
                     int is_client);

#endif
