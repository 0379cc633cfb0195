#ifndef PAYWIRE_STREAM_H
#define PAYWIRE_STREAM_H

#include <paywire/channel.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A blocking client stream for tools and tests: every function runs the
 * channel's loop until it can answer, so none may be called while that loop is
 * running elsewhere.
 */
typedef struct pw_stream pw_stream;

/** Opens a call. Returns PW_OK or the error of pw_client_call_start. */
PW_EXTERN pw_status pw_stream_open(pw_stream **out, pw_channel *channel, const char *path,
                                   const pw_call_options *opts);
/** Sends one message (waits while the send queue is full). */
PW_EXTERN pw_status pw_stream_send(pw_stream *s, const struct ProtobufCMessage *msg);
PW_EXTERN pw_status pw_stream_close_send(pw_stream *s);
/**
 * Waits for the next response message. Returns 1 and sets *out (free with
 * pw_protobuf_free(m)), 0 at the end of the stream, or a
 * negative/gRPC status when the message cannot be decoded (PW_INTERNAL).
 */
PW_EXTERN int pw_stream_recv(pw_stream *s, const struct ProtobufCMessageDescriptor *desc,
                             struct ProtobufCMessage **out);
/** Waits for the response headers; returns them (borrowed from s), or NULL if none came. */
PW_EXTERN const pw_metadata *pw_stream_headers(pw_stream *s);
/** Cancels the call. */
PW_EXTERN void pw_stream_cancel(pw_stream *s);
/**
 * Waits for the end and returns the status; message (may be NULL) receives the
 * borrowed grpc-message and trailers the borrowed trailing metadata.
 * Unread messages are discarded.
 */
PW_EXTERN pw_status pw_stream_finish(pw_stream *s, const char **message,
                                     const pw_metadata **trailers);
/** Frees the stream (cancelling the call if it has not ended). Accepts NULL. */
PW_EXTERN void pw_stream_free(pw_stream *s);

#ifdef __cplusplus
}
#endif
#endif
