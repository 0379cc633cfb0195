#ifndef PAYWIRE_STREAM_H
#define PAYWIRE_STREAM_H

#include <paywire/channel.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A blocking client call for tools and tests, of any kind: the blocking form
 * of pw_client_call, opened with pw_client_call_start_blocking(). Every
 * function on it runs the channel's loop (UV_RUN_ONCE) until it can answer,
 * so none may be called while that loop is running elsewhere.
 */
typedef struct pw_stream pw_stream;

/**
 * The blocking form of pw_client_call_start(): opens a call to path
 * ("/package.Service/Method") on channel. Returns PW_OK with *out set;
 * PW_CANCELLED (the channel is closing), PW_INVALID_ARGUMENT (a path not
 * starting with '/') or PW_ERRNO(ENOMEM), with *out set to NULL. Free the
 * stream with pw_stream_free().
 */
PW_EXTERN pw_status pw_client_call_start_blocking(pw_stream **out, pw_channel *channel,
                                                  const char *path, const pw_call_options *opts);

/**
 * Sends one message (copied), waiting while the send queue is full. Returns
 * PW_OK; PW_FAILED_PRECONDITION after pw_stream_close_send() or once the call
 * ended with OK; the status the call ended with when it ended otherwise
 * (PW_CANCELLED ... PW_UNAUTHENTICATED); PW_RESOURCE_EXHAUSTED (larger than
 * the send limit) or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_stream_send(pw_stream *s, const struct ProtobufCMessage *msg);

/**
 * pw_stream_send() with pw_write_flags (PW_WRITE_NO_COMPRESS: this message
 * goes uncompressed on a compressing call). The same codes as pw_stream_send()
 * (PW_OK, PW_FAILED_PRECONDITION, ...).
 */
PW_EXTERN pw_status pw_stream_send_flags(pw_stream *s, const struct ProtobufCMessage *msg,
                                         uint32_t flags);

/** Half-closes the call: no more messages. Returns PW_OK (also once the call ended). */
PW_EXTERN pw_status pw_stream_close_send(pw_stream *s);

/**
 * Waits for the next response message and decodes it as desc. Returns PW_OK
 * with *out set to the message (free it with pw_protobuf_free()), or PW_OK
 * with *out set to NULL at the end of the stream (pw_stream_finish() then
 * tells how it ended); PW_INTERNAL, with *out NULL, when the message cannot
 * be decoded (protobuf-c does not tell that apart from running out of memory).
 */
PW_EXTERN pw_status pw_stream_recv(pw_stream *s, const struct ProtobufCMessageDescriptor *desc,
                                   struct ProtobufCMessage **out);

/**
 * 1 when the message the last pw_stream_recv() returned arrived compressed
 * (its compressed flag was set on the wire), else 0.
 */
PW_EXTERN int pw_stream_message_compressed(const pw_stream *s);

/** Waits for the response headers; returns them (borrowed from s), or NULL if none came. */
PW_EXTERN const pw_metadata *pw_stream_headers(pw_stream *s);

/** Cancels the call (the status becomes PW_CANCELLED unless it already ended). */
PW_EXTERN void pw_stream_cancel(pw_stream *s);

/**
 * Waits for the end of the call and returns its status: PW_OK or any gRPC
 * code the call ended with (PW_CANCELLED ... PW_UNAUTHENTICATED; a local
 * failure is already mapped, e.g. PW_UNAVAILABLE for a refused connection).
 * message (may be NULL) receives the borrowed grpc-message ("" when there is
 * none) and trailers (may be NULL) the borrowed trailing metadata, on every
 * outcome; both stay valid until pw_stream_free(). Unread messages are
 * discarded.
 */
PW_EXTERN pw_status pw_stream_finish(pw_stream *s, const char **message,
                                     const pw_metadata **trailers);

/** Frees the stream (cancelling the call if it has not ended). Accepts NULL. */
PW_EXTERN void pw_stream_free(pw_stream *s);

#ifdef __cplusplus
}
#endif
#endif
