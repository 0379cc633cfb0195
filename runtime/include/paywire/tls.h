#ifndef PAYWIRE_TLS_H
#define PAYWIRE_TLS_H

#include <stddef.h>
#include <paywire/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * TLS settings for a server listener or a client channel. All paths are PEM files
 * and are read when the listener or channel is created (the struct is borrowed
 * for that call only).
 *
 * Server: cert_file and key_file are required. When ca_file is set, client
 * certificates are requested and verified against it; with
 * require_client_cert a client without one is refused (mutual TLS).
 * Client: ca_file verifies the server (NULL: the system's default CAs);
 * server_name_override replaces the host name used for SNI and verification;
 * cert_file/key_file present a client certificate (mutual TLS).
 */
typedef struct pw_tls_config {
    const char *cert_file;
    const char *key_file;
    const char *ca_file;
    int require_client_cert;
    const char *server_name_override;
} pw_tls_config;

/**
 * Who is on the other end of a connection. Borrowed from the connection; valid
 * while the call that returned it is alive.
 */
typedef struct pw_peer {
    /** "127.0.0.1:5000", "[::1]:5000" or "unix:/path". */
    const char *address;
    /** 1 when the connection is TLS. */
    int tls;
    /** 1 when the peer presented a certificate that verified against the CA. */
    int verified;
    /** Verified certificate's subject (RFC 2253 form), or NULL. */
    const char *subject;
    /** Verified certificate's subject alternative names: "DNS:host", "URI:spiffe://...". */
    const char *const *sans;
    size_t san_count;
} pw_peer;

#ifdef __cplusplus
}
#endif
#endif
