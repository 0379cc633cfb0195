#ifndef PAYWIRE_SVC_OUTBOX_H
#define PAYWIRE_SVC_OUTBOX_H

/*
 * The outbox publisher (STYLE §12, api-conventions.md): delivers the rows of
 * a service's outbox table — written in the transaction that made the fact —
 * to another service, at least once, surviving restarts and the consumer
 * being down. The consumer de-duplicates by the row's event id.
 *
 * The table needs, besides its own columns: id bigserial, published_time,
 * lease_until, attempts, last_error and dead_time (timestamptz / int / text).
 * A batch of due rows is claimed with a lease (FOR UPDATE SKIP LOCKED, so
 * instances never deliver one row at the same time), delivered concurrently,
 * and each row is then marked published (the rows delivered while a mark is
 * at the database in the next one: one statement for many), or given a next attempt with
 * exponential backoff and jitter (the consumer unavailable, a deadline, any
 * retryable status), or dead-lettered with an error log line when the
 * consumer refuses it for good (INVALID_ARGUMENT, FAILED_PRECONDITION,
 * PERMISSION_DENIED, UNAUTHENTICATED, NOT_FOUND, OUT_OF_RANGE, UNIMPLEMENTED,
 * DATA_LOSS): one bad event never holds up the others. Rows are delivered in
 * id order within a batch; a row waiting for its retry does not hold up later
 * ones, so a consumer must not rely on arrival order (it has the row's time).
 *
 * Runs on one loop (the service's worker 0); several processes may each run one.
 */
#include <stdint.h>
#include <uv.h>
#include <paywire/db.h>

typedef struct svc_outbox svc_outbox;

/**
 * Starts delivering row `row` of res (its columns as the table has them),
 * then calls svc_outbox_delivered once with the outcome — later, or before
 * returning. res is valid only during this call: copy what the delivery needs.
 */
typedef void (*svc_outbox_deliver_cb)(svc_outbox *o, const pw_db_result *res, int row, void *token,
                                      void *user_data);

typedef struct svc_outbox_options {
    /** The outbox table ("audit_outbox"); an SQL identifier, not user input. */
    const char *table;
    /** For log lines ("audit events to compliance"). */
    const char *what;
    svc_outbox_deliver_cb deliver;
    void *user_data;
    /** Rows per batch (default 50). */
    int batch;
    /** How often to look for rows when there were none (default 500 ms). */
    uint64_t idle_ms;
    /** First retry delay and its cap (defaults 500 ms and 60 000 ms); jitter up to half. */
    uint64_t backoff_initial_ms;
    uint64_t backoff_max_ms;
    /** A row's lease while it is delivered (default 30 000 ms): after it, another may take it. */
    uint64_t lease_ms;
} svc_outbox_options;

/**
 * Starts publishing from pool on loop. The options are copied, the strings
 * too. *out is NULL on failure. Returns PW_OK, PW_INVALID_ARGUMENT (no table
 * or deliver, a table name that is not an identifier) or PW_ERRNO(ENOMEM).
 */
pw_status svc_outbox_start(svc_outbox **out, uv_loop_t *loop, pw_db_pool *pool,
                           const svc_outbox_options *o);
/**
 * The outcome of one delivery started by deliver (token is the one it was
 * given): PW_OK when the consumer has the event, otherwise its status and
 * message. Exactly once per delivery.
 */
void svc_outbox_delivered(svc_outbox *o, void *token, pw_status status, const char *message);
/** Rows delivered, retried and dead-lettered so far (for tests and logs). */
void svc_outbox_counts(const svc_outbox *o, int64_t *published, int64_t *retried, int64_t *dead);
/**
 * Stops: no new batch starts; the outbox frees itself once the deliveries
 * and statements in flight have ended (their rows stay leased until the lease
 * runs out, then another publisher takes them). Call before the pool closes.
 * NULL is a no-op.
 */
void svc_outbox_stop(svc_outbox *o);

#endif
