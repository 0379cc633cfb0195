#ifndef PAYWIRE_CALL_H
#define PAYWIRE_CALL_H

#include <stdint.h>
#include <uv.h>
#include <paywire/status.h>
#include <paywire/alloc.h>
#include <paywire/buf.h>
#include <paywire/metadata.h>
#include <paywire/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;
struct pw_method;

/** google.protobuf.MethodOptions.IdempotencyLevel. */
typedef enum pw_idempotency {
    PW_IDEMPOTENCY_UNKNOWN = 0,
    PW_IDEMPOTENCY_NO_SIDE_EFFECTS = 1,
    PW_IDEMPOTENCY_IDEMPOTENT = 2,
} pw_idempotency;

/** What a finished call did, for interceptors' on_end. */
typedef struct pw_call_stats {
    /** The status sent (PW_CANCELLED when the call was cancelled first). */
    pw_status code;
    /** Loop time in ms when the call started and how long it lasted (ns). */
    uint64_t start_ms;
    uint64_t duration_ns;
    uint64_t messages_in;
    uint64_t messages_out;
    /** Message payload bytes (after decompression in, before compression out). */
    uint64_t bytes_in;
    uint64_t bytes_out;
} pw_call_stats;

/** Message compression (grpc-encoding). */
typedef enum pw_compression {
    PW_COMPRESSION_NONE = 0,
    PW_COMPRESSION_GZIP = 1,
} pw_compression;

/**
 * Per-message send flags, for pw_call_send_flags(), pw_client_call_send_flags()
 * and pw_stream_send_flags(). gRPC compresses per message: the call's encoding
 * (grpc-encoding) says how a message may be compressed, and each message's
 * compressed flag says whether it is.
 */
typedef enum pw_write_flags {
    /** Send this message uncompressed although the call's encoding compresses. */
    PW_WRITE_NO_COMPRESS = 1u << 0,
} pw_write_flags;

/** A server-side RPC. Owned by the runtime; see pw_handler_cb for the handler's hold. */
typedef struct pw_call pw_call;

/**
 * Per-call callbacks a handler may set. Every callback runs on the call's loop,
 * never inside a pw_call_* function the handler called.
 */
typedef struct pw_call_ops {
    /** A request message (streaming-request kinds). msg is valid during the callback. */
    void (*on_message)(pw_call *call, pw_slice msg, void *user_data);
    /** The client half-closed: no more messages will come. */
    void (*on_half_close)(pw_call *call, void *user_data);
    /** The send queue drained below the low-water mark after pw_call_writable() was 0. */
    void (*on_write_ready)(pw_call *call, void *user_data);
    /**
     * The call ended before the handler finished: PW_CANCELLED (client reset the
     * stream or disconnected, or the server is closing) or PW_DEADLINE_EXCEEDED.
     * The handler should stop work and must still call pw_call_finish().
     */
    void (*on_cancel)(pw_call *call, pw_status why, void *user_data);
} pw_call_ops;

/** Sets the callbacks (borrowed; keep them static) and their user_data. */
PW_EXTERN void pw_call_set_ops(pw_call *call, const pw_call_ops *ops, void *user_data);

/** "/package.Service/Method". */
PW_EXTERN const char *pw_call_method(const pw_call *call);
/** The request headers' metadata (reserved headers removed, -bin values decoded). */
PW_EXTERN const pw_metadata *pw_call_metadata(const pw_call *call);
/** The peer's address and verified TLS identity. */
PW_EXTERN const pw_peer *pw_call_peer(const pw_call *call);
PW_EXTERN uv_loop_t *pw_call_loop(const pw_call *call);

/** The decoded request of a unary or server-streaming call, or NULL. Owned by the call. */
PW_EXTERN const struct ProtobufCMessage *pw_call_request(const pw_call *call);
/**
 * The serialized request of a unary or server-streaming call whose method has
 * no request_type (raw-bytes methods); empty otherwise, as typed requests are
 * decoded straight from the wire. Owned by the call.
 */
PW_EXTERN pw_slice pw_call_request_bytes(const pw_call *call);

/**
 * Decodes bytes as desc into memory owned by the call (freed when the call
 * ends; do not free it). Returns PW_OK with *out set; PW_INTERNAL
 * (undecodable, as the gRPC spec requires) or PW_ERRNO(ENOMEM), with *out set
 * to NULL.
 */
PW_EXTERN pw_status pw_call_unpack(pw_call *call, pw_slice bytes,
                                   const struct ProtobufCMessageDescriptor *desc,
                                   struct ProtobufCMessage **out);

/** Absolute deadline in loop milliseconds (uv_now), or 0 when the client set none. */
PW_EXTERN uint64_t pw_call_deadline(const pw_call *call);
/** Milliseconds until the deadline (0 when passed), or -1 when there is none. */
PW_EXTERN int64_t pw_call_remaining_ms(const pw_call *call);
/** 1 once the call was cancelled or its deadline passed. */
PW_EXTERN int pw_call_is_cancelled(const pw_call *call);

/**
 * A watcher told when a call is cancelled or its deadline passes, for
 * libraries that act for a handler (the database layer cancels the query it
 * runs). cb also runs (with PW_CANCELLED) if the call is freed while still
 * watched. Storage is the caller's (embed it); it must stay valid until
 * pw_call_watch_stop or until cb has run (watchers run once, then are
 * detached). The handler's own on_cancel is unaffected.
 */
typedef struct pw_call_watch {
    struct pw_call_watch *next;
    struct pw_call_watch *prev;
    void (*cb)(struct pw_call_watch *w, pw_status why);
    void *user_data;
} pw_call_watch;

/**
 * Starts watching call with w (cb and user_data set by the caller). When the
 * call is already cancelled, cb is not run and PW_CANCELLED is returned (or
 * PW_DEADLINE_EXCEEDED when its deadline passed); otherwise PW_OK.
 */
PW_EXTERN pw_status pw_call_watch_start(pw_call *call, pw_call_watch *w);
/** Stops watching (no-op when cb already ran or w never started). */
PW_EXTERN void pw_call_watch_stop(pw_call_watch *w);

/**
 * Response metadata to send with the response headers (before the first message
 * or the status); key and value are copied. Returns PW_OK;
 * PW_FAILED_PRECONDITION once the headers were sent; PW_INVALID_ARGUMENT (a
 * key or value pw_metadata_add() refuses); PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_call_add_initial_metadata(pw_call *call, const char *key, const void *value,
                                                 size_t len);
/**
 * Metadata sent in the trailers together with the status (copied). Returns
 * PW_OK; PW_FAILED_PRECONDITION once the status was queued;
 * PW_INVALID_ARGUMENT or PW_ERRNO(ENOMEM) as pw_call_add_initial_metadata().
 */
PW_EXTERN pw_status pw_call_add_trailing_metadata(pw_call *call, const char *key, const void *value,
                                                  size_t len);

/**
 * Queues one response message (copied). Returns PW_OK; PW_RESOURCE_EXHAUSTED
 * when the message exceeds the send limit or the handler ignored back-pressure
 * far past the high-water mark; PW_CANCELLED after the call was cancelled;
 * PW_FAILED_PRECONDITION after finish or a second message on a unary method;
 * PW_INTERNAL when a JSON call's response cannot be encoded as JSON;
 * PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_call_send(pw_call *call, const struct ProtobufCMessage *msg);
/**
 * pw_call_send() with pw_write_flags: PW_WRITE_NO_COMPRESS sends this
 * message uncompressed on a call whose responses are compressed
 * (pw_call_set_compression), as gRPC's per-message compressed flag allows.
 * The same codes as pw_call_send() (PW_OK, PW_RESOURCE_EXHAUSTED, ...).
 */
PW_EXTERN pw_status pw_call_send_flags(pw_call *call, const struct ProtobufCMessage *msg,
                                       uint32_t flags);
/**
 * Like pw_call_send() for a message already serialized (copied); the same
 * codes (PW_OK, PW_RESOURCE_EXHAUSTED, PW_CANCELLED, ...).
 */
PW_EXTERN pw_status pw_call_send_bytes(pw_call *call, pw_slice msg);

/**
 * Compresses this call's response messages with algo when the client accepts
 * it (grpc-accept-encoding, then sent as grpc-encoding); otherwise they go
 * uncompressed. Takes effect only before the response headers are sent (the
 * first message or the status). Single messages can still go uncompressed
 * with pw_call_send_flags(PW_WRITE_NO_COMPRESS).
 */
PW_EXTERN void pw_call_set_compression(pw_call *call, pw_compression algo);
/**
 * 1 when the request message being delivered arrived compressed (its
 * compressed flag was set), else 0: during on_message (and the generated
 * typed on_message), that message; for unary and server-streaming calls, the
 * one request.
 */
PW_EXTERN int pw_call_request_compressed(const pw_call *call);

/** 1 while the send queue is under the high-water mark; when 0, wait for on_write_ready. */
PW_EXTERN int pw_call_writable(const pw_call *call);

/**
 * Ends the handler's part: queues the status (code and a printf-style message,
 * percent-encoded on the wire) after any queued messages. Negative codes are
 * mapped with pw_status_to_wire. Must be called exactly once per call, also after
 * on_cancel (then nothing more is sent). The call must not be used afterwards.
 * fmt may be NULL for no message.
 */
PW_EXTERN void pw_call_finish(pw_call *call, pw_status code, const char *fmt, ...) PW_PRINTF(3, 4);

/**
 * Ends the call on the wire now with code and message (for example PW_INTERNAL
 * for an undecodable streamed request), and tells the handler through
 * on_cancel(code). The handler still owns its hold and must call
 * pw_call_finish() (which then sends nothing).
 */
PW_EXTERN void pw_call_abort(pw_call *call, pw_status code, const char *message);

/** Sends msg then finishes with PW_OK; if the send fails, finishes with that status. */
PW_EXTERN void pw_call_reply(pw_call *call, const struct ProtobufCMessage *msg);

/** Runs on a thread-pool thread; must not touch the call or any loop object. */
typedef void (*pw_offload_work_cb)(void *user_data);
/** Runs on the call's loop after work; status is PW_OK, or PW_CANCELLED if the call was. */
typedef void (*pw_offload_done_cb)(pw_call *call, pw_status status, void *user_data);

/**
 * Runs blocking or CPU-heavy work (hashing a password, signing) on libuv's
 * thread pool, then done on the call's loop. The call stays allocated until
 * done has run, even if it is cancelled meanwhile. Returns PW_OK (done runs
 * exactly once, on a later loop turn), or PW_ERRNO(ENOMEM) or a libuv error
 * of uv_queue_work (UV_EINVAL) (then neither work nor done runs).
 */
PW_EXTERN pw_status pw_call_offload(pw_call *call, pw_offload_work_cb work, pw_offload_done_cb done,
                                    void *user_data);

/**
 * Allocates size bytes owned by the call (zeroed, suitably aligned), freed
 * when the call is freed. NULL on allocation failure.
 */
PW_EXTERN void *pw_call_alloc(pw_call *call, size_t size);

/** The method this call is for (as registered), or NULL before it was looked up. */
PW_EXTERN const struct pw_method *pw_call_get_method(const pw_call *call);

/**
 * Per-call context for interceptors and handlers (e.g. the authenticated
 * principal): up to 8 (key, value) pairs, keys compared by address (use the
 * address of a static variable); setting a key again replaces its value.
 * Returns PW_OK or PW_RESOURCE_EXHAUSTED when 8 other keys are set. The value
 * is borrowed; pw_call_alloc memory lives long enough.
 */
PW_EXTERN pw_status pw_call_set_context(pw_call *call, const void *key, void *value);
/** The value set for key, or NULL. */
PW_EXTERN void *pw_call_get_context(const pw_call *call, const void *key);

PW_EXTERN void pw_call_set_user_data(pw_call *call, void *user_data);
PW_EXTERN void *pw_call_get_user_data(const pw_call *call);

#ifdef __cplusplus
}
#endif
#endif
