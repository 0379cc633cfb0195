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
 * Creates a tracer for service exporting to endpoint ("http://host:port/path",
 * e.g. "http://127.0.0.1:4318/v1/traces"; NULL: spans are dropped). Spans are
 * sent every second or every 64 spans. Returns PW_OK, PW_INVALID_ARGUMENT
 * (bad endpoint) or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_tracer_new(pw_tracer **out, uv_loop_t *loop, const char *service,
                                  const char *endpoint);
/** Traces every call of server (server spans). */
PW_EXTERN pw_status pw_tracer_observe_server(pw_tracer *t, pw_server *server);
/** Traces every call on channel (client spans; traceparent sent to the peer). */
PW_EXTERN pw_status pw_tracer_observe_channel(pw_tracer *t, pw_channel *channel);
/** Sends the spans collected so far now. */
PW_EXTERN void pw_tracer_flush(pw_tracer *t);
/** Flushes, then frees the tracer once the export is done. Call after what it observes closed. */
PW_EXTERN void pw_tracer_close(pw_tracer *t);

/** The call's trace id (32 hex digits) when a tracer observes it, else NULL. */
PW_EXTERN const char *pw_trace_id(const pw_call *call);

#ifdef __cplusplus
}
#endif
#endif
