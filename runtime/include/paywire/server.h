#ifndef PAYWIRE_SERVER_H
#define PAYWIRE_SERVER_H

#include <stdint.h>
#include <uv.h>
#include <paywire/status.h>
#include <paywire/tls.h>
#include <paywire/call.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ProtobufCMessageDescriptor;

typedef struct pw_server pw_server;

/** The four RPC kinds. */
typedef enum pw_method_kind {
    PW_METHOD_UNARY = 0,
    PW_METHOD_SERVER_STREAMING = 1,
    PW_METHOD_CLIENT_STREAMING = 2,
    PW_METHOD_BIDI_STREAMING = 3,
} pw_method_kind;

/**
 * Called when a call to a method starts, on the server's loop.
 *  - UNARY and SERVER_STREAMING: after the request message and the client's
 *    half-close arrived; the request is pw_call_request() (decoded when the
 *    method has a request_type) and pw_call_request_bytes().
 *  - CLIENT_STREAMING and BIDI_STREAMING: when the request headers arrived; set
 *    pw_call_ops with pw_call_set_ops() before returning to receive messages.
 * The handler owns one hold on the call and must end it with exactly one
 * pw_call_finish() (or pw_call_reply()), now or later from any callback on the loop.
 */
typedef void (*pw_handler_cb)(pw_call *call, void *user_data);

/**
 * One RPC method. pw_server_add_method copies the struct; the strings and
 * descriptors it points to are borrowed and must outlive the server (generated
 * code keeps them in static storage).
 */
typedef struct pw_method {
    /** "/package.Service/Method". */
    const char *path;
    pw_method_kind kind;
    /** protobuf-c descriptors; request_type may be NULL for raw-bytes methods. */
    const struct ProtobufCMessageDescriptor *request_type;
    const struct ProtobufCMessageDescriptor *response_type;
    pw_handler_cb handler;
    void *user_data;
    /** Opaque pointer for the handler's own use (generated code: the typed handler table). */
    const void *impl;
    /** From the method's options; retry policies (issue 5) consult it. */
    pw_idempotency idempotency_level;
} pw_method;

/**
 * A handler that answers UNIMPLEMENTED ("method /pkg.Svc/M is not implemented
 * by this server"). Generated code mounts it for methods left unset.
 */
PW_EXTERN void pw_handler_unimplemented(pw_call *call, void *user_data);

/**
 * A compiled .proto file: its serialized google.protobuf.FileDescriptorProto
 * and the files it imports. Generated code defines one per file, in static
 * storage.
 */
typedef struct pw_file_descriptor {
    /** As protoc saw it, e.g. "src/proto/grpc/testing/test.proto". */
    const char *name;
    const uint8_t *data;
    size_t len;
    const struct pw_file_descriptor *const *deps;
    size_t dep_count;
} pw_file_descriptor;

/**
 * Records a file (and, transitively, its imports) as served, for reflection.
 * Borrowed; must outlive the server. Duplicates are ignored.
 * Returns PW_OK or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_server_add_file(pw_server *server, const pw_file_descriptor *file);

/** The files recorded with pw_server_add_file, including imports; *count receives the number. */
PW_EXTERN const pw_file_descriptor *const *pw_server_files(const pw_server *server, size_t *count);

/** Server-wide settings; zero fields take the defaults. */
typedef struct pw_server_options {
    /** Largest request message accepted (default 4 MiB); larger -> RESOURCE_EXHAUSTED. */
    uint32_t max_recv_message_size;
    /** Largest response message sent (default 4 MiB); larger -> RESOURCE_EXHAUSTED. */
    uint32_t max_send_message_size;
    /** SETTINGS_MAX_CONCURRENT_STREAMS per connection (default 256). */
    uint32_t max_concurrent_streams;
    /**
     * Request header list size (RFC 9113 §6.5.2 accounting: name + value + 32
     * per header), advertised and enforced (default 16 KiB); larger requests
     * get RESOURCE_EXHAUSTED.
     */
    uint32_t max_header_list_size;
    /** Bytes a streaming call may queue before pw_call_writable() turns 0 (default 64 KiB). */
    uint32_t write_high_water;
    /*
     * Connection limits. 0 takes the default; PW_DISABLED turns a timer off.
     */
    /**
     * TCP listeners set SO_REUSEPORT, so one server per worker loop can listen
     * on the same address and the kernel spreads connections (see workers.h).
     */
    int reuse_port;
    /** Open connections (default 10000); more are accepted and closed at once. */
    uint32_t max_connections;
    /** A connection without calls for this long gets GOAWAY and is closed (default 300000 ms). */
    uint32_t idle_timeout_ms;
    /** Connection age after which it is drained with GOAWAY (default PW_DISABLED). */
    uint32_t max_connection_age_ms;
    /** Time a drained connection's calls get before it is closed (default 30000 ms). */
    uint32_t max_connection_age_grace_ms;
    /**
     * Time from accept to the client's HTTP/2 SETTINGS, TLS included; on
     * HTTP/1.1, also the time a request's headers may take (then 408) (default 10000 ms).
     */
    uint32_t handshake_timeout_ms;
    /** Send a PING after this long without reading anything (default 7200000 ms, gRPC's). */
    uint32_t keepalive_time_ms;
    /** Close when a keepalive PING gets no ACK within this (default 20000 ms). */
    uint32_t keepalive_timeout_ms;
    /**
     * Client PINGs closer than this without data in between count as strikes;
     * the third gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (default 300000 ms, gRPC's).
     */
    uint32_t min_ping_interval_ms;
} pw_server_options;

/** Turns a pw_server_options timer off. */
#define PW_DISABLED UINT32_MAX

typedef void (*pw_server_close_cb)(pw_server *server, void *user_data);

/**
 * Creates a server on loop (borrowed; the application runs it). opts may be NULL
 * (copied). If SIGPIPE is at its default disposition it is set to ignored
 * (process-wide), so that a peer closing its socket cannot end the process;
 * pw_channel_new does the same. Returns PW_OK with *out set, or
 * PW_ERRNO(ENOMEM) with *out set to NULL. Close it with pw_server_close() or
 * pw_server_shutdown().
 */
PW_EXTERN pw_status pw_server_new(pw_server **out, uv_loop_t *loop, const pw_server_options *opts);

/**
 * Registers a method (copied; see pw_method for what is borrowed). Returns
 * PW_OK; PW_ALREADY_EXISTS for a duplicate path; PW_INVALID_ARGUMENT for a
 * path not of the form "/service/method"; PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_server_add_method(pw_server *server, const pw_method *method);

/**
 * Starts listening. address is "host:port" (IPv4, "[v6]:port", port 0 picks a
 * free one) or "unix:/path". tls NULL means cleartext HTTP/2 (h2c, prior
 * knowledge); otherwise TLS 1.2+ with ALPN "h2" (tls is read during the call).
 * *port_out (may be NULL) receives the bound TCP port (0 for a Unix socket and
 * on failure). Returns PW_OK; PW_INVALID_ARGUMENT for a bad address or TLS
 * files; a libuv error such as UV_EADDRINUSE or UV_EACCES (-errno);
 * PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_server_listen(pw_server *server, const char *address,
                                     const pw_tls_config *tls, int *port_out);

/**
 * Stops listening, cancels every in-flight call (handlers get on_cancel),
 * closes every connection and frees the server. cb (may be NULL) runs exactly
 * once, on a later loop turn, when every handle is closed (after the cb of a
 * pw_server_shutdown in progress); the server is freed after it returns. Only
 * the first call counts: later ones do nothing (their cb never runs). NULL is
 * a no-op. The calls' memory is released when their handlers have called
 * pw_call_finish.
 */
PW_EXTERN void pw_server_close(pw_server *server, pw_server_close_cb cb, void *user_data);

/**
 * Graceful shutdown: stops listening (new connections are refused), tells every
 * connection with the double GOAWAY (first "shutting down", then, one round
 * trip later, the last stream it will serve), lets in-flight calls finish for
 * up to grace_ms, then cancels what remains and closes like pw_server_close.
 * cb (may be NULL) runs exactly once, on a later loop turn, when everything is
 * closed; the server is freed after it returns. pw_server_close may still be
 * called to cut the grace short (both callbacks run). Only the first call
 * counts; NULL is a no-op.
 */
PW_EXTERN void pw_server_shutdown(pw_server *server, uint32_t grace_ms, pw_server_close_cb cb,
                                  void *user_data);

/**
 * A server interceptor. Interceptors run in the order they were added.
 * on_start runs once the request headers and method are known, before the
 * handler (and before a unary request is read); it may read the metadata,
 * add response metadata, or reject the call by returning a gRPC status and
 * writing a message into message (message_size bytes): the handler then never
 * runs and the later interceptors neither. on_end runs when the call ends, for
 * every call whose on_start returned PW_OK, in reverse order.
 */
typedef struct pw_interceptor {
    pw_status (*on_start)(pw_call *call, char *message, size_t message_size, void *user_data);
    void (*on_end)(pw_call *call, const pw_call_stats *stats, void *user_data);
    void *user_data;
} pw_interceptor;

/** Adds an interceptor (copied). PW_OK or PW_ERRNO(ENOMEM). */
PW_EXTERN pw_status pw_server_add_interceptor(pw_server *server, const pw_interceptor *ic);

/**
 * JSON for unary methods (Connect-style: POST /pkg.Svc/Method with
 * content-type application/json, over HTTP/2 and HTTP/1.1). The core runtime
 * carries no JSON code: pw_json_enable (paywire_builtins) installs a codec.
 */
typedef struct pw_json_codec {
    /**
     * Parses json as a new message of type: PW_OK with *out set (allocated
     * with pw_protobuf_allocator(); the runtime frees it with
     * pw_protobuf_free()). On failure sets *out to NULL, writes a message a
     * person can act on into err and returns a gRPC status
     * (PW_INVALID_ARGUMENT) or PW_ERRNO(ENOMEM).
     */
    pw_status (*decode)(const struct ProtobufCMessageDescriptor *type, pw_slice json,
                        struct ProtobufCMessage **out, char *err, size_t err_len, void *user_data);
    /**
     * Appends msg as JSON to out; returns PW_OK, or PW_INVALID_ARGUMENT or
     * PW_ERRNO(ENOMEM) with err set (out keeps what it had).
     */
    pw_status (*encode)(const struct ProtobufCMessage *msg, pw_buf *out, char *err, size_t err_len,
                        void *user_data);
    /**
     * Appends the error body ({"code":"not_found","message":...,"details":[...]})
     * for code and message; trailing may hold grpc-status-details-bin. Returns
     * PW_OK or PW_ERRNO(ENOMEM).
     */
    pw_status (*encode_error)(pw_status code, const char *message, const pw_metadata *trailing,
                              pw_buf *out, void *user_data);
    void *user_data;
} pw_json_codec;

/** Installs (copies) the JSON codec; NULL turns JSON off (415 for application/json). */
PW_EXTERN void pw_server_set_json_codec(pw_server *server, const pw_json_codec *codec);

/** Server life events for pw_server_add_hook. */
typedef enum pw_server_event {
    /** pw_server_shutdown began: stop advertising readiness (health NOT_SERVING). */
    PW_SERVER_SHUTTING_DOWN = 1,
    /** Everything is closed; the server is freed right after the hooks run. */
    PW_SERVER_CLOSED = 2,
} pw_server_event;

typedef void (*pw_server_hook_cb)(pw_server *server, pw_server_event event, void *user_data);

/** Calls cb on server events, in the order hooks were added. PW_OK or PW_ERRNO(ENOMEM). */
PW_EXTERN pw_status pw_server_add_hook(pw_server *server, pw_server_hook_cb cb, void *user_data);

/**
 * Iterates the registered methods: start with *iter = 0; returns NULL at the
 * end. The order is unspecified but stable while no method is added.
 */
PW_EXTERN const pw_method *pw_server_next_method(const pw_server *server, size_t *iter);

/**
 * Appends a human-readable list of the server's live connections (peer, TLS
 * identity, age, calls) and in-flight calls (method, age, remaining deadline).
 * Returns PW_OK or PW_ERRNO(ENOMEM) (out then holds part of the list).
 */
PW_EXTERN pw_status pw_server_debug(const pw_server *server, pw_buf *out);

/** Open connections. */
PW_EXTERN size_t pw_server_connection_count(const pw_server *server);

/** The loop the server runs on. */
PW_EXTERN uv_loop_t *pw_server_loop(const pw_server *server);

#ifdef __cplusplus
}
#endif
#endif
