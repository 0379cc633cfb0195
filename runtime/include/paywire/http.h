#ifndef PAYWIRE_HTTP_H
#define PAYWIRE_HTTP_H

/*
 * Outbound HTTP(S) on the loop (library paywire_http, over libcurl's multi
 * interface): webhooks, OTLP export, partner APIs. Requests run
 * concurrently on one client per loop, with connection reuse, HTTP/1.1 or
 * HTTP/2 (ALPN), TLS verified against the system or a given CA, optional
 * client certificates, and a deadline per request. Nothing blocks: libcurl's
 * sockets are watched with uv_poll and its timeouts with a uv_timer.
 * Threading: a client and its requests belong to one loop's thread.
 */
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <paywire/buf.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_http_client pw_http_client;

typedef struct pw_http_client_options {
    /** Bytes of a response body kept; a longer one fails with PW_RESOURCE_EXHAUSTED (default 1
     * MiB). */
    size_t max_response_bytes;
    /** Connections kept open per host for reuse (default 4). */
    unsigned max_host_connections;
} pw_http_client_options;

/** One header line's name and value (borrowed for the length of pw_http_send). */
typedef struct pw_http_header {
    const char *name;
    const char *value;
} pw_http_header;

/** What to send. Everything is copied by pw_http_send; nothing is kept after it returns. */
typedef struct pw_http_request {
    /** "GET", "POST", "PUT", "DELETE" (NULL: GET, or POST when there is a body). */
    const char *method;
    /** An http:// or https:// URL. */
    const char *url;
    const pw_http_header *headers;
    size_t n_headers;
    const void *body;
    size_t body_len;
    /** The whole request, connecting included (default 10000 ms). */
    uint32_t timeout_ms;
    /** Connecting, TLS included (default 5000 ms, never more than timeout_ms). */
    uint32_t connect_timeout_ms;
    /** CA certificates (PEM) that verify the server; NULL: the system's. Verification is always on.
     */
    const char *ca_file;
    /** A client certificate and key (PEM) for mTLS; NULL: none. */
    const char *cert_file;
    const char *key_file;
} pw_http_request;

/** What came back; valid only during the callback. */
typedef struct pw_http_response {
    /**
     * PW_OK when a response arrived (whatever its HTTP status); otherwise
     * PW_UNAVAILABLE (could not connect, TLS failed, connection lost),
     * PW_DEADLINE_EXCEEDED (timeout_ms passed), PW_RESOURCE_EXHAUSTED (body
     * over max_response_bytes), PW_CANCELLED (the client was closed),
     * PW_INTERNAL (anything else).
     */
    pw_status status;
    /** The HTTP status code (200, 503, ...), or 0 when none arrived. */
    long http_status;
    /** The response body. */
    pw_slice body;
    /** Why, when status is not PW_OK: a message naming the URL's host, never the body. */
    const char *error;
} pw_http_response;

/** The outcome of one request. Runs on the loop, never inside pw_http_send. */
typedef void (*pw_http_done_cb)(pw_http_client *client, const pw_http_response *response,
                                void *user_data);

/**
 * A client on loop (options may be NULL for the defaults). *out is NULL on
 * failure. Returns PW_OK, PW_ERRNO(ENOMEM), or PW_INTERNAL (libcurl could
 * not start).
 */
PW_EXTERN pw_status pw_http_client_new(pw_http_client **out, uv_loop_t *loop,
                                       const pw_http_client_options *options);

/**
 * Sends req; cb runs exactly once, on a later loop turn, with the outcome.
 * Returns PW_OK; PW_INVALID_ARGUMENT (no URL, a scheme other than http or
 * https, a header with CR or LF); PW_FAILED_PRECONDITION (the client is
 * closing); PW_ERRNO(ENOMEM). On failure cb never runs.
 */
PW_EXTERN pw_status pw_http_send(pw_http_client *client, const pw_http_request *req,
                                 pw_http_done_cb cb, void *user_data);

/** Requests in flight. */
PW_EXTERN size_t pw_http_client_pending(const pw_http_client *client);

typedef void (*pw_http_client_close_cb)(pw_http_client *client, void *user_data);
/**
 * Closes the client: requests in flight end with PW_CANCELLED (their
 * callbacks run first), then cb (may be NULL) runs once, on a later loop
 * turn, and the client is freed after it returns. Only the first call
 * counts; NULL is a no-op.
 */
PW_EXTERN void pw_http_client_close(pw_http_client *client, pw_http_client_close_cb cb,
                                    void *user_data);

#ifdef __cplusplus
}
#endif
#endif
