#ifndef PAYWIRE_TRACE_H
#define PAYWIRE_TRACE_H

/*
 * Tracing (library paywire_builtins): W3C trace context (traceparent,
 * tracestate) is taken from incoming calls and passed on to calls made from
 * them (pw_call_options.parent); every server and client call is a span,
 * exported in batches as OTLP/HTTP JSON. One tracer per loop.
 */
#include <paywire/channel.h>
#include <paywire/server.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_tracer pw_tracer;

/**
 * Creates a tracer for service (copied) exporting to endpoint, an OTLP/HTTP
 * collector ("http://host:port/path" or https, verified against the system's
 * CAs, e.g. "http://127.0.0.1:4318/v1/traces"; without a path, /v1/traces;
 * NULL: spans are dropped), through paywire_http. Spans are sent every
 * second or every 64 spans. Returns PW_OK with *out set; PW_INVALID_ARGUMENT
 * (bad endpoint), PW_INTERNAL (the HTTP client could not start) or
 * PW_ERRNO(ENOMEM), with *out set to NULL. Close it with pw_tracer_close().
 */
PW_EXTERN pw_status pw_tracer_new(pw_tracer **out, uv_loop_t *loop, const char *service,
                                  const char *endpoint);
/** Traces every call of server (server spans). Returns PW_OK or PW_ERRNO(ENOMEM). */
PW_EXTERN pw_status pw_tracer_observe_server(pw_tracer *t, pw_server *server);
/**
 * Traces every call on channel (client spans; traceparent sent to the peer).
 * Returns PW_OK or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_tracer_observe_channel(pw_tracer *t, pw_channel *channel);
/** Sends the spans collected so far now (a failed export is logged and its spans dropped). */
PW_EXTERN void pw_tracer_flush(pw_tracer *t);

typedef void (*pw_tracer_close_cb)(pw_tracer *t, void *user_data);
/**
 * Flushes, then frees the tracer once the export is done. Call after what it
 * observes closed. cb (may be NULL) runs exactly once, on a later loop turn,
 * when the last export ended; the tracer is freed after it returns. Only the
 * first call counts; NULL is a no-op.
 */
PW_EXTERN void pw_tracer_close(pw_tracer *t, pw_tracer_close_cb cb, void *user_data);

/** The call's trace id (32 hex digits) when a tracer observes it, else NULL. */
PW_EXTERN const char *pw_trace_id(const pw_call *call);

#ifdef __cplusplus
}
#endif
#endif
