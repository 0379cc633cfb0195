#ifndef PAYWIRE_ORCHESTRATION_EVENTS_H
#define PAYWIRE_ORCHESTRATION_EVENTS_H

/*
 * The event consumers of orchestration (docs/design/orchestration.md,
 * "Events: outbox and consumers"), on worker 0: the ledger consumer
 * (ledger.c: finance transfers from the outbox) and the webhooks
 * (webhooks.c: each event to each of the merchant's endpoints, signed).
 * Both run on svc_outbox; each delivery is a fiber of the worker's pool that
 * waits for its database statements and calls with ev_query and ev_call, so
 * a delivery reads top to bottom as a handler does.
 */
#include "orchestration.h"
#include "svc_outbox.h"

/** One delivery on a fiber: what ev_query and ev_call leave for it. */
typedef struct ev_wait {
    svc_fiber *fiber;
    pw_status code;
    char message[300];
    /** The last answer; valid until the next wait. */
    const ProtobufCMessage *response;
    const pw_db_result *result;
} ev_wait;

/**
 * From a delivery's fiber: runs stmt on pool and waits for it. Returns the
 * result (valid until the next wait) with w->code its status (PW_OK, or the
 * statement's failure with w->message).
 */
const pw_db_result *ev_query(ev_wait *w, pw_db_pool *pool, const pw_db_stmt *stmt,
                             const pw_db_param *params, int n);
/**
 * From a delivery's fiber: the unary call path on ch (10 s deadline), waits
 * for it. Returns its status (w->message says why; w->response is the answer,
 * valid until the next wait).
 */
pw_status ev_call(ev_wait *w, pw_channel *ch, const char *path, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *response_type);
/** A text column of row ("" when NULL or absent). */
const char *ev_text(const pw_db_result *res, int row, const char *col);
/** An int8 column of row (0 when NULL or absent). */
int64_t ev_int64(const pw_db_result *res, int row, const char *col);

/**
 * A consumer's channel to target (our mTLS identity) and its publisher o on
 * the app's pool. On failure neither is left open (*ch NULL). Returns PW_OK
 * or the failure of pw_channel_new or svc_outbox_start.
 */
pw_status ev_consumer_start(svc_app *app, uv_loop_t *loop, const char *target,
                            const svc_outbox_options *o, pw_channel **ch, svc_outbox **outbox);

/* ---- ledger.c ---- */

typedef struct ev_ledger ev_ledger;
/** Starts the ledger consumer (finance at target) on loop; *out NULL on failure. */
pw_status ev_ledger_start(ev_ledger **out, svc_app *app, uv_loop_t *loop, const char *target);
/** Stops it; calls in flight end CANCELLED and their rows are delivered again. NULL: no-op. */
void ev_ledger_stop(ev_ledger *l);

/**
 * CreateRefund's step 2 (design: "Idempotency and consistency") from fiber
 * (a handler's, or a job's) with finance on the channel: the capture's
 * transfer (a replay when the ledger consumer was first), then
 * txf_refund_<ref> pending with MERCHANT_FUNDS, the content the consumer
 * would send. Returns PW_OK (reserved, or reserved before: a replay),
 * PW_FAILED_PRECONDITION (finance refused: the merchant's funds are short;
 * message says why), or another status (finance or the database
 * unavailable: try again, with the same ids).
 */
pw_status ev_reserve_refund(svc_app *app, svc_fiber *fiber, pw_channel *finance,
                            const char *refund_id, char *message, size_t cap);

/* ---- monitoring.c ---- */

typedef struct ev_monitoring ev_monitoring;
/** Starts sending captured payments to compliance's RecordPayments (at target) on loop. */
pw_status ev_monitoring_start(ev_monitoring **out, svc_app *app, uv_loop_t *loop,
                              const char *target);
/** Stops; a call in flight ends CANCELLED and its row is sent again later. NULL: no-op. */
void ev_monitoring_stop(ev_monitoring *m);

/* ---- webhooks.c ---- */

typedef struct ev_webhooks ev_webhooks;
/** Starts the webhook fan-out and delivery (endpoints from merchant at target) on loop. */
pw_status ev_webhooks_start(ev_webhooks **out, svc_app *app, uv_loop_t *loop, const char *target);
/** Stops both stages; a request in flight ends CANCELLED and is sent again. NULL: no-op. */
void ev_webhooks_stop(ev_webhooks *w);

#endif
