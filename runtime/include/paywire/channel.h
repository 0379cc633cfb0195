#ifndef PAYWIRE_CHANNEL_H
#define PAYWIRE_CHANNEL_H

#include <stdint.h>
#include <uv.h>
#include <paywire/status.h>
#include <paywire/buf.h>
#include <paywire/metadata.h>
#include <paywire/tls.h>
#include <paywire/call.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

/** A client's connection to one target, reconnecting as needed. */
typedef struct pw_channel pw_channel;
/** One client-side RPC. */
typedef struct pw_client_call pw_client_call;

/**
 * Retry policy (gRPC's retry design, A6): a failed attempt is retried when its
 * status is retryable, the method is idempotent (pw_call_options.idempotency),
 * no response has been received yet, attempts remain, the deadline allows it
 * and retry throttling has tokens. Streams refused before the server processed
 * them (REFUSED_STREAM) are retried whatever the method. Zero fields take the
 * defaults.
 */
typedef struct pw_retry_policy {
    /** Attempts in all, the first included (default 3, at most 5). */
    uint32_t max_attempts;
    /** First backoff (default 100 ms); each delay is random in [0, backoff). */
    uint32_t initial_backoff_ms;
    /** Backoff cap (default 5000 ms). */
    uint32_t max_backoff_ms;
    /** Backoff growth per attempt, in percent (default 200: doubling). */
    uint32_t backoff_multiplier_pct;
    /** Bit (1u << code) per retryable gRPC code (default: UNAVAILABLE only). */
    uint32_t retryable_codes;
} pw_retry_policy;

/** How a channel spreads calls over the target's addresses. */
typedef enum pw_lb_policy {
    /** Addresses in order; every call on the first that connects (gRPC's default). */
    PW_LB_PICK_FIRST = 0,
    /** A connection to every address; calls rotate over the ready ones. */
    PW_LB_ROUND_ROBIN = 1,
} pw_lb_policy;

typedef struct pw_channel_options {
    /** NULL: cleartext HTTP/2 (h2c). Read during pw_channel_new. */
    const pw_tls_config *tls;
    /** :authority to send (default: the target's host:port). */
    const char *authority;
    /** Largest response message accepted (default 4 MiB). */
    uint32_t max_recv_message_size;
    /** Reconnect backoff: first delay (default 1000 ms) and cap (default 120000 ms). */
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    /** Connect timeout (default 20000 ms). */
    uint32_t connect_timeout_ms;
    /** Load balancing over the target's addresses (default pick_first). */
    pw_lb_policy lb_policy;
    /**
     * Keepalive: while calls are in flight, PING a connection every
     * keepalive_time_ms (default 0: off, as gRPC clients) and close it when the
     * ACK does not come within keepalive_timeout_ms (default 20000).
     */
    uint32_t keepalive_time_ms;
    uint32_t keepalive_timeout_ms;
    /** Retries for idempotent calls (copied); NULL: only transparent retries. */
    const pw_retry_policy *retry;
    /** Request bytes a call keeps for replay (default 256 KiB); past it, no retry. */
    uint32_t retry_buffer_size;
    /**
     * Retry throttling: a token bucket of retry_max_tokens (default 10); each
     * retryable failure costs one token, each success returns
     * retry_token_ratio_pct/100 of one; retries stop at or below half full.
     */
    uint32_t retry_max_tokens;
    uint32_t retry_token_ratio_pct;
} pw_channel_options;

typedef struct pw_call_options {
    /** Relative deadline; 0 means none, or the parent's. */
    int64_t timeout_ms;
    /** Request metadata (copied). */
    const pw_metadata *metadata;
    /** Queue the call while the channel is not connected instead of failing fast. */
    int wait_for_ready;
    /** Compress request messages (grpc-encoding); responses are decoded either way. */
    pw_compression compression;
    /**
     * The method's idempotency_level (generated clients fill it in): calls
     * with PW_IDEMPOTENCY_UNKNOWN are never retried after reaching the server.
     */
    pw_idempotency idempotency;
    /**
     * A server call this call is made from: the call inherits its deadline (when
     * sooner than timeout_ms) and is cancelled when the parent is cancelled.
     */
    pw_call *parent;
} pw_call_options;

/** How a client call ended. Borrowed during on_done. */
typedef struct pw_result {
    pw_status code;
    /** Decoded grpc-message (never NULL; "" when absent). */
    const char *message;
    const pw_metadata *initial_metadata;
    const pw_metadata *trailing_metadata;
} pw_result;

typedef struct pw_client_ops {
    /** Response headers arrived (not called for Trailers-Only responses). */
    void (*on_headers)(pw_client_call *call, const pw_metadata *md, void *user_data);
    /** One response message; msg valid during the callback. */
    void (*on_message)(pw_client_call *call, pw_slice msg, void *user_data);
    /** The send queue drained after pw_client_call_writable() was 0. */
    void (*on_write_ready)(pw_client_call *call, void *user_data);
    /** Exactly once, last; the call is freed after it returns. */
    void (*on_done)(pw_client_call *call, const pw_result *result, void *user_data);
} pw_client_ops;

/**
 * A client interceptor, run for every call on the channel in the order added.
 * on_start runs when the call starts: it may add request metadata to md, or
 * fail the call by returning a status and writing message (the call then ends
 * with it, on_done reporting it, and nothing is sent). on_end runs after the
 * call ended, before on_done, in reverse order, for interceptors that accepted
 * it; stats counts request (out) and response (in) messages and bytes.
 */
typedef struct pw_client_interceptor {
    pw_status (*on_start)(pw_client_call *call, const char *path, pw_metadata *md, char *message,
                          size_t message_size, void *user_data);
    void (*on_end)(pw_client_call *call, const pw_result *result, const pw_call_stats *stats,
                   void *user_data);
    void *user_data;
} pw_client_interceptor;

/**
 * Creates a channel to target on loop. Targets: "host:port" or
 * "dns:///host:port" (resolved on the loop to every address, re-resolved when
 * all fail), "[v6]:port", "ipv4:a:p,b:p" / "ipv6:[a]:p,..." (a fixed list) and
 * "unix:/path". Connects lazily on the first call. opts may be NULL (read
 * during the call). Returns PW_OK with *out set; PW_INVALID_ARGUMENT (bad
 * target or TLS files) or PW_ERRNO(ENOMEM), with *out set to NULL. Close it
 * with pw_channel_close().
 */
PW_EXTERN pw_status pw_channel_new(pw_channel **out, uv_loop_t *loop, const char *target,
                                   const pw_channel_options *opts);

typedef void (*pw_channel_close_cb)(pw_channel *channel, void *user_data);
/**
 * Fails every pending call with PW_CANCELLED, closes the connections and frees
 * the channel. cb (may be NULL) runs exactly once, on a later loop turn, when
 * every handle is closed; the channel is freed after it returns. Only the
 * first call counts: later ones do nothing (their cb never runs). NULL is a
 * no-op.
 */
PW_EXTERN void pw_channel_close(pw_channel *channel, pw_channel_close_cb cb, void *user_data);

PW_EXTERN uv_loop_t *pw_channel_loop(const pw_channel *channel);

/** Adds a client interceptor (copied). PW_OK or PW_ERRNO(ENOMEM). */
PW_EXTERN pw_status pw_channel_add_interceptor(pw_channel *channel,
                                               const pw_client_interceptor *ic);

/**
 * Starts a call to path ("/package.Service/Method"). ops (borrowed, keep static)
 * and user_data receive its events; on_done is required. Returns PW_OK, and
 * on_done runs exactly once, on a later loop turn; PW_CANCELLED (the channel
 * is closing), PW_INVALID_ARGUMENT (path not starting with '/', no on_done)
 * or PW_ERRNO(ENOMEM), and no callback runs. *out (may be NULL) receives the
 * call, valid until on_done returns (NULL on failure). The blocking form is
 * pw_client_call_start_blocking() (stream.h).
 */
PW_EXTERN pw_status pw_client_call_start(pw_client_call **out, pw_channel *channel,
                                         const char *path, const pw_call_options *opts,
                                         const pw_client_ops *ops, void *user_data);

/**
 * Queues one request message (copied). Returns PW_OK; PW_FAILED_PRECONDITION
 * after close_send or once the call ended with OK; the status the call ended
 * with when it ended otherwise (PW_CANCELLED ... PW_UNAUTHENTICATED);
 * PW_RESOURCE_EXHAUSTED (larger than the send limit) or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_client_call_send(pw_client_call *call, const struct ProtobufCMessage *msg);
/**
 * pw_client_call_send() with pw_write_flags: PW_WRITE_NO_COMPRESS sends this
 * message uncompressed on a call that compresses its requests
 * (pw_call_options.compression). The same codes (PW_OK,
 * PW_FAILED_PRECONDITION, ...).
 */
PW_EXTERN pw_status pw_client_call_send_flags(pw_client_call *call,
                                              const struct ProtobufCMessage *msg, uint32_t flags);
/**
 * Like pw_client_call_send() for a message already serialized (copied); the
 * same codes (PW_OK, PW_FAILED_PRECONDITION, ...).
 */
PW_EXTERN pw_status pw_client_call_send_bytes(pw_client_call *call, pw_slice msg);
/** Half-closes: no more request messages. Returns PW_OK (also once the call ended). */
PW_EXTERN pw_status pw_client_call_close_send(pw_client_call *call);
/**
 * Per-call context slots for interceptors (as pw_call_set_context; up to 4).
 * Returns PW_OK, or PW_RESOURCE_EXHAUSTED when 4 other keys are set.
 */
PW_EXTERN pw_status pw_client_call_set_context(pw_client_call *call, const void *key, void *value);
PW_EXTERN void *pw_client_call_get_context(const pw_client_call *call, const void *key);
/** The server call this call was made from (pw_call_options.parent), or NULL. */
PW_EXTERN pw_call *pw_client_call_parent(const pw_client_call *call);

/**
 * 1 when the response message being delivered to on_message (and the
 * generated typed on_message) arrived compressed (its compressed flag was
 * set), else 0.
 */
PW_EXTERN int pw_client_call_message_compressed(const pw_client_call *call);

/** The call's path ("/package.Service/Method"), valid until on_done returns. */
PW_EXTERN const char *pw_client_call_path(const pw_client_call *call);

/** 1 while the request queue is under the high-water mark. */
PW_EXTERN int pw_client_call_writable(const pw_client_call *call);
/**
 * Ends the call locally with code and message (e.g. PW_INTERNAL for an
 * undecodable response) and resets its stream; on_done follows with them.
 */
PW_EXTERN void pw_client_call_fail(pw_client_call *call, pw_status code, const char *message);

/** Cancels the call (RST_STREAM CANCEL); on_done follows with PW_CANCELLED. */
PW_EXTERN void pw_client_call_cancel(pw_client_call *call);

/**
 * Completion of pw_client_unary: response is the decoded message (NULL unless
 * result->code is PW_OK), valid during the callback (the runtime frees it
 * after). typed is the function pointer given to pw_client_unary, passed back
 * so generated code can call its typed callback through the right type.
 */
typedef void (*pw_unary_done_cb)(const struct ProtobufCMessage *response, const pw_result *result,
                                 void (*typed)(void), void *user_data);

/**
 * Unary call: sends request (copied), decodes the single response as
 * response_type. Returns PW_OK, and done runs exactly once, on a later loop
 * turn (a missing or undecodable response is reported as PW_INTERNAL); or,
 * as pw_client_call_start, PW_CANCELLED, PW_INVALID_ARGUMENT or
 * PW_ERRNO(ENOMEM), and done never runs. The blocking form is
 * pw_client_unary_blocking().
 */
PW_EXTERN pw_status pw_client_unary(pw_channel *channel, const char *path,
                                    const pw_call_options *opts,
                                    const struct ProtobufCMessage *request,
                                    const struct ProtobufCMessageDescriptor *response_type,
                                    pw_unary_done_cb done, void (*typed)(void), void *user_data);

/**
 * The blocking form of pw_client_unary(), for tools and tests: runs the
 * channel's loop until the call ends, so it must not be called while that
 * loop is running. Returns PW_OK with *response_out the decoded response
 * (free it with pw_protobuf_free()). Otherwise *response_out is NULL and it
 * returns the status the call ended with (PW_CANCELLED ... PW_UNAUTHENTICATED;
 * PW_INTERNAL for a missing or undecodable response), or the error of
 * pw_client_call_start_blocking() (PW_CANCELLED, PW_INVALID_ARGUMENT,
 * PW_ERRNO(ENOMEM)) when the call did not start. status_message (may be NULL)
 * receives a copy of grpc-message ("" when there was none; pw_free it), or
 * NULL when the call did not start. trailers (may be NULL) gets copies of the
 * trailing metadata appended.
 */
PW_EXTERN pw_status pw_client_unary_blocking(pw_channel *channel, const char *path,
                                             const pw_call_options *opts,
                                             const struct ProtobufCMessage *request,
                                             const struct ProtobufCMessageDescriptor *response_type,
                                             struct ProtobufCMessage **response_out,
                                             char **status_message, pw_metadata *trailers);

#ifdef __cplusplus
}
#endif
#endif
