#ifndef PAYWIRE_NET_CONN_H
#define PAYWIRE_NET_CONN_H

/*
 * A byte stream to one peer (TCP or Unix socket), optionally TLS over memory
 * BIOs. The owner (an HTTP/2 session) embeds it, writes plaintext with
 * pw__conn_write, and gets plaintext through ops->on_read.
 */
#include <uv.h>
#include <openssl/ssl.h>
#include <paywire/buf.h>
#include <paywire/tls.h>
#include "tls/tls.h"

typedef struct pw__conn pw__conn;

typedef struct pw__conn_ops {
    /** Plaintext arrived. Return PW_OK, or an error to close the connection. */
    pw_status (*on_read)(pw__conn *c, const uint8_t *data, size_t len);
    /** A write finished and the output buffer is empty: produce more output. */
    void (*on_writable)(pw__conn *c);
    /** Client side: connected (and TLS handshake done) with PW_OK, or failed with why. */
    void (*on_connect)(pw__conn *c, pw_status st, const char *why);
    /** The socket is closed; the owner may free (call pw__conn_cleanup first). */
    void (*on_closed)(pw__conn *c, pw_status why);
} pw__conn_ops;

struct pw__conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t connect_req;
    uv_write_t write_req;
    const pw__conn_ops *ops;
    void *owner;
    SSL *ssl;
    int is_pipe;
    int handshaken;
    /* Server side: the client chose HTTP/1.1 by ALPN (JSON calls only), or offered no ALPN. */
    int alpn_http1;
    int alpn_none;
    int writing;
    int closing;
    int close_after_flush;
    pw_status close_status;
    pw_buf out;
    pw_buf inflight;
    /* Plaintext written before the TLS handshake finished; encrypted right after it. */
    pw_buf early;
    uint8_t *rbuf;
    pw__tls_identity id;
    char address[80];
    pw_peer peer;
};

/** Initialises the handle (TCP, or a Unix pipe when is_pipe). */
pw_status pw__conn_init(pw__conn *c, uv_loop_t *loop, int is_pipe, const pw__conn_ops *ops,
                        void *owner);
/** Server side: accept from listener, start TLS (ctx may be NULL) and reading. */
pw_status pw__conn_accept(pw__conn *c, uv_stream_t *listener, SSL_CTX *ctx);
/**
 * Client side: connect to addr (TCP) or path (pipe); ctx NULL for cleartext;
 * sni the server name to send and verify. ops->on_connect reports the outcome.
 */
pw_status pw__conn_connect(pw__conn *c, const struct sockaddr *addr, const char *path, SSL_CTX *ctx,
                           const char *sni);
/** Queues plaintext (encrypting under TLS). */
pw_status pw__conn_write(pw__conn *c, const uint8_t *data, size_t len);
/** Bytes queued and not yet handed to the kernel. */
size_t pw__conn_buffered(const pw__conn *c);
/** Starts writing queued bytes when no write is in flight. */
void pw__conn_flush(pw__conn *c);
/**
 * Closes the socket; with graceful, after queued bytes are written. ops->on_closed
 * runs once, on a later loop turn.
 */
void pw__conn_close(pw__conn *c, pw_status why, int graceful);
/** Frees TLS state and buffers; call from on_closed (or if init failed). */
void pw__conn_cleanup(pw__conn *c);

#endif
