#ifndef PAYWIRE_TLS_TLS_H
#define PAYWIRE_TLS_TLS_H

/* OpenSSL contexts for listeners and channels. Only runtime/src/tls and net see OpenSSL. */
#include <openssl/ssl.h>
#include <paywire/tls.h>
#include <paywire/status.h>

/**
 * Builds a server context: TLS 1.2+, ALPN "h2" (or "http/1.1" for a client
 * that offers no h2, while *http1_ok is non-zero; http1_ok may be NULL and
 * must outlive the context), client certificates verified against ca_file
 * when set. Returns PW_OK or PW_INVALID_ARGUMENT with the reason (file and
 * OpenSSL error) in err.
 */
pw_status pw__tls_server_ctx(const pw_tls_config *cfg, const int *http1_ok, SSL_CTX **out,
                             char *err, size_t err_size);
/** Builds a client context: TLS 1.2+, ALPN "h2", server verified, optional client cert. */
pw_status pw__tls_client_ctx(const pw_tls_config *cfg, SSL_CTX **out, char *err, size_t err_size);

/** Verified peer identity after a handshake; strings are pw_malloc'ed (see pw__tls_identity_free).
 */
typedef struct pw__tls_identity {
    int verified;
    char *subject;
    char **sans;
    size_t san_count;
} pw__tls_identity;

void pw__tls_identity_read(SSL *ssl, pw__tls_identity *out);
void pw__tls_identity_free(pw__tls_identity *id);

/** Logs and drains the OpenSSL error queue; returns the first error's text in buf. */
void pw__tls_drain_errors(const char *what, char *buf, size_t size);

#endif
