/*
 * conn.c: sockets and TLS for one connection. The only module that touches
 * sockets. Invariants: at most one uv_write in flight (inflight); new output
 * accumulates in out and is written when the previous write completes, so
 * output is batched per loop turn and memory is bounded by what the owner
 * produces between writes. TLS runs over memory BIOs: ciphertext read from the
 * socket goes into SSL's read BIO; whatever SSL writes is moved to out.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "net/conn.h"

#define CONN_READ_SIZE 65536

pw_status pw__conn_init(pw__conn *c, uv_loop_t *loop, int is_pipe, const pw__conn_ops *ops,
                        void *owner)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->owner = owner;
    c->is_pipe = is_pipe;
    int rv = is_pipe ? uv_pipe_init(loop, &c->h.pipe, 0) : uv_tcp_init(loop, &c->h.tcp);
    if (rv != 0) {
        return rv;
    }
    c->h.handle.data = c;
    c->write_req.data = c;
    c->connect_req.data = c;
    return PW_OK;
}

/* Moves whatever OpenSSL produced into the output buffer. */
static pw_status conn_drain_tls(pw__conn *c)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    char *data;
    long n = BIO_get_mem_data(wbio, &data);
    if (n > 0) {
        pw_status rv = pw_buf_append(&c->out, data, (size_t)n);
        (void)BIO_reset(wbio);
        return rv;
    }
    return PW_OK;
}

static void conn_write_cb(uv_write_t *req, int status);

void pw__conn_flush(pw__conn *c)
{
    if (c->writing || c->closing) {
        return;
    }
    if (pw_buf_pending(&c->out) == 0) {
        if (c->close_after_flush) {
            pw__conn_close(c, c->close_status, 0);
        }
        return;
    }
    /* Swap buffers: out becomes the in-flight write, inflight's storage is reused. */
    pw_buf tmp = c->inflight;
    c->inflight = c->out;
    c->out = tmp;
    c->out.len = c->out.off = 0;
    uv_buf_t b =
        uv_buf_init((char *)pw_buf_head(&c->inflight), (unsigned int)pw_buf_pending(&c->inflight));
    int rv = uv_write(&c->write_req, &c->h.stream, &b, 1, conn_write_cb);
    if (rv != 0) {
        pw__conn_close(c, rv, 0);
        return;
    }
    c->writing = 1;
}

static void conn_write_cb(uv_write_t *req, int status)
{
    pw__conn *c = req->data;
    c->writing = 0;
    c->inflight.len = c->inflight.off = 0;
    if (status != 0) {
        pw__conn_close(c, status, 0);
        return;
    }
    if (c->closing) {
        return;
    }
    if (pw_buf_pending(&c->out) == 0 && !c->close_after_flush) {
        c->ops->on_writable(c);
    }
    pw__conn_flush(c);
}

static pw_status conn_encrypt(pw__conn *c, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int chunk = len > 1 << 20 ? 1 << 20 : (int)len;
        int n = SSL_write(c->ssl, data, chunk);
        if (n <= 0) {
            char err[160];
            pw__tls_drain_errors("SSL_write", err, sizeof(err));
            return PW_INTERNAL;
        }
        data += n;
        len -= (size_t)n;
    }
    return conn_drain_tls(c);
}

pw_status pw__conn_write(pw__conn *c, const uint8_t *data, size_t len)
{
    if (c->ssl == NULL) {
        return pw_buf_append(&c->out, data, len);
    }
    if (!c->handshaken) {
        return pw_buf_append(&c->early, data, len);
    }
    return conn_encrypt(c, data, len);
}

size_t pw__conn_buffered(const pw__conn *c)
{
    return pw_buf_pending(&c->out);
}

static void conn_closed_cb(uv_handle_t *h)
{
    pw__conn *c = h->data;
    c->ops->on_closed(c, c->close_status);
}

void pw__conn_close(pw__conn *c, pw_status why, int graceful)
{
    if (c->closing) {
        return;
    }
    if (graceful && (c->writing || pw_buf_pending(&c->out) > 0)) {
        c->close_after_flush = 1;
        c->close_status = why;
        pw__conn_flush(c);
        return;
    }
    c->closing = 1;
    c->close_status = why;
    uv_close(&c->h.handle, conn_closed_cb);
}

void pw__conn_cleanup(pw__conn *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    pw_buf_reset(&c->out);
    pw_buf_reset(&c->inflight);
    pw_buf_reset(&c->early);
    pw_free(c->rbuf);
    c->rbuf = NULL;
    pw__tls_identity_free(&c->id);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    pw__conn *c = h->data;
    if (c->rbuf == NULL) {
        c->rbuf = pw_malloc(CONN_READ_SIZE);
    }
    *buf = uv_buf_init((char *)c->rbuf, c->rbuf ? CONN_READ_SIZE : 0);
}

/* Handshake finished: record the peer identity and the protocol ALPN chose. */
static pw_status conn_handshake_done(pw__conn *c)
{
    c->handshaken = 1;
    if (pw_buf_pending(&c->early) > 0) {
        pw_status rv = conn_encrypt(c, pw_buf_head(&c->early), pw_buf_pending(&c->early));
        pw_buf_reset(&c->early);
        if (rv != PW_OK) {
            return rv;
        }
    }
    const unsigned char *proto = NULL;
    unsigned int proto_len = 0;
    SSL_get0_alpn_selected(c->ssl, &proto, &proto_len);
    /* A server selects http/1.1 only when it serves JSON over it (tls.c); a client that
     * offered no ALPN at all is told apart by its first bytes, as in cleartext. */
    int server = SSL_is_server(c->ssl);
    c->alpn_http1 = server && proto_len == 8 && memcmp(proto, "http/1.1", 8) == 0;
    c->alpn_none = server && proto_len == 0;
    if (!c->alpn_http1 && !c->alpn_none && (proto_len != 2 || memcmp(proto, "h2", 2) != 0)) {
        if (c->ops->on_connect != NULL) {
            c->ops->on_connect(c, PW_UNAVAILABLE, "TLS peer did not negotiate ALPN h2");
        }
        return PW_UNAVAILABLE;
    }
    pw__tls_identity_read(c->ssl, &c->id);
    c->peer.verified = c->id.verified;
    c->peer.subject = c->id.subject;
    c->peer.sans = (const char *const *)c->id.sans;
    c->peer.san_count = c->id.san_count;
    if (c->ops->on_connect != NULL) {
        c->ops->on_connect(c, PW_OK, NULL);
    }
    return PW_OK;
}

static pw_status conn_tls_fail(pw__conn *c, const char *what)
{
    char err[200];
    long vr = SSL_get_verify_result(c->ssl);
    pw__tls_drain_errors(what, err, sizeof(err));
    char why[320];
    if (vr != X509_V_OK) {
        snprintf(why, sizeof(why), "TLS handshake with %s failed: %s (%s)", c->address, err,
                 X509_verify_cert_error_string(vr));
    } else {
        snprintf(why, sizeof(why), "TLS handshake with %s failed: %s", c->address, err);
    }
    PW_LOG(PW_LOG_INFO, "tls", "%s", why);
    if (c->ops->on_connect != NULL) {
        c->ops->on_connect(c, PW_UNAVAILABLE, why);
    }
    return PW_UNAVAILABLE;
}

/* Feeds ciphertext through OpenSSL; hands plaintext to the owner. */
static pw_status conn_read_tls(pw__conn *c, const uint8_t *data, size_t len)
{
    if (BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len) {
        return PW_ERRNO(ENOMEM);
    }
    if (!c->handshaken) {
        int r = SSL_do_handshake(c->ssl);
        pw_status rv = conn_drain_tls(c);
        if (rv != PW_OK) {
            return rv;
        }
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                pw__conn_flush(c);
                return PW_OK;
            }
            pw__conn_flush(c);
            return conn_tls_fail(c, "SSL_do_handshake");
        }
        rv = conn_handshake_done(c);
        if (rv != PW_OK) {
            return rv;
        }
        pw__conn_flush(c);
    }
    for (;;) {
        int n = SSL_read(c->ssl, c->rbuf, CONN_READ_SIZE);
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            pw_status rv = conn_drain_tls(c);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                return rv;
            }
            if (e == SSL_ERROR_ZERO_RETURN) {
                return UV_EOF;
            }
            char err[160];
            pw__tls_drain_errors("SSL_read", err, sizeof(err));
            return PW_UNAVAILABLE;
        }
        pw_status rv = c->ops->on_read(c, c->rbuf, (size_t)n);
        if (rv != PW_OK || c->closing) {
            return rv;
        }
    }
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pw__conn *c = s->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        pw__conn_close(c, (pw_status)nread, 0);
        return;
    }
    pw_status rv;
    if (c->ssl != NULL) {
        /* SSL_read reuses rbuf for plaintext, so copy the ciphertext into the BIO first. */
        rv = conn_read_tls(c, (const uint8_t *)buf->base, (size_t)nread);
    } else {
        rv = c->ops->on_read(c, (const uint8_t *)buf->base, (size_t)nread);
    }
    if (rv != PW_OK) {
        pw__conn_close(c, rv, 1);
    }
}

static void conn_format_address(pw__conn *c)
{
    if (c->is_pipe) {
        char path[64];
        size_t len = sizeof(path);
        if (uv_pipe_getsockname(&c->h.pipe, path, &len) == 0 && len < sizeof(path)) {
            path[len] = '\0';
            snprintf(c->address, sizeof(c->address), "unix:%s", path);
        } else {
            snprintf(c->address, sizeof(c->address), "unix:");
        }
        c->peer.address = c->address;
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(c->address, sizeof(c->address), "[%s]:%d", ip, port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
            snprintf(c->address, sizeof(c->address), "%s:%d", ip, port);
        }
    }
    c->peer.address = c->address;
}

static pw_status conn_start_tls(pw__conn *c, SSL_CTX *ctx, int server)
{
    c->ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        return PW_ERRNO(ENOMEM);
    }
    SSL_set_bio(c->ssl, rbio, wbio);
    if (server) {
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
    }
    c->peer.tls = 1;
    return PW_OK;
}

pw_status pw__conn_accept(pw__conn *c, uv_stream_t *listener, SSL_CTX *ctx)
{
    int rv = uv_accept(listener, &c->h.stream);
    if (rv != 0) {
        return rv;
    }
    if (!c->is_pipe) {
        uv_tcp_nodelay(&c->h.tcp, 1);
    }
    conn_format_address(c);
    if (ctx != NULL) {
        pw_status st = conn_start_tls(c, ctx, 1);
        if (st != PW_OK) {
            return st;
        }
    }
    return uv_read_start(&c->h.stream, conn_alloc_cb, conn_read_cb);
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
    pw__conn *c = req->data;
    if (c->closing) {
        return;
    }
    if (status != 0) {
        char why[160];
        snprintf(why, sizeof(why), "connect failed: %s", uv_strerror(status));
        c->ops->on_connect(c, status, why);
        return;
    }
    if (!c->is_pipe) {
        uv_tcp_nodelay(&c->h.tcp, 1);
        conn_format_address(c);
    }
    int rv = uv_read_start(&c->h.stream, conn_alloc_cb, conn_read_cb);
    if (rv != 0) {
        c->ops->on_connect(c, rv, "cannot start reading");
        return;
    }
    if (c->ssl == NULL) {
        c->ops->on_connect(c, PW_OK, NULL);
        return;
    }
    int r = SSL_do_handshake(c->ssl);
    if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
        conn_tls_fail(c, "SSL_do_handshake");
        return;
    }
    if (conn_drain_tls(c) != PW_OK) {
        c->ops->on_connect(c, PW_ERRNO(ENOMEM), "out of memory");
        return;
    }
    pw__conn_flush(c);
}

pw_status pw__conn_connect(pw__conn *c, const struct sockaddr *addr, const char *path, SSL_CTX *ctx,
                           const char *sni)
{
    if (ctx != NULL) {
        pw_status st = conn_start_tls(c, ctx, 0);
        if (st != PW_OK) {
            return st;
        }
        if (sni != NULL) {
            SSL_set_tlsext_host_name(c->ssl, sni);
            /* Verify the certificate names this host (RFC 6125 matching by OpenSSL). */
            SSL_set1_host(c->ssl, sni);
        }
    }
    if (path != NULL) {
        snprintf(c->address, sizeof(c->address), "unix:%s", path);
        c->peer.address = c->address;
        uv_pipe_connect(&c->connect_req, &c->h.pipe, path, conn_connect_cb);
        return PW_OK;
    }
    return uv_tcp_connect(&c->connect_req, &c->h.tcp, addr, conn_connect_cb);
}
