#ifndef PAYWIRE_SVC_COLLECT_H
#define PAYWIRE_SVC_COLLECT_H

/*
 * Client-streamed uploads served like a unary request: every message of the
 * call is collected, the repeated field that carries the upload's items is
 * concatenated across them, and the handler runs on a fiber (svc_serve)
 * with one request: the first message's other fields and all the items.
 * Nothing is served until the client half-closes, so an interrupted upload
 * never reaches the handler (it ends CANCELLED or as the client's reset
 * says, "nothing was applied").
 */
#include "svc_req.h"

typedef struct svc_collect_spec {
    /** The request type. */
    const ProtobufCMessageDescriptor *type;
    /** Its repeated message field holding the items ("rows", "entries"). */
    const char *items;
    /** Items per message and in all; over either: INVALID_ARGUMENT naming the field. */
    size_t max_per_message;
    size_t max_total;
    /** What the first message must carry, for the error when nothing arrived. */
    const char *first_message;
} svc_collect_spec;

/**
 * Takes over call (a client-streaming method's generated handler calls it
 * with its call and app): collects as spec says, then serves handler with
 * the whole request. spec must be in static storage.
 */
void svc_serve_collected(pw_call *call, svc_app *app, const svc_collect_spec *spec,
                         svc_handler_fn handler);

#endif
