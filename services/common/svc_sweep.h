#ifndef PAYWIRE_SVC_SWEEP_H
#define PAYWIRE_SVC_SWEEP_H

/*
 * The idempotency sweeper: deletes idempotency_keys rows older than the
 * retention (api-conventions.md: kept at least 7 days), 1000 rows per
 * statement so no sweep holds locks for long, on a timer of the service's
 * loop. Several instances sweeping at once is harmless. Runs one worker's
 * loop per process.
 */
#include <stdint.h>
#include <uv.h>
#include <paywire/db.h>

typedef struct svc_sweeper svc_sweeper;

typedef struct svc_sweep_options {
    /** Rows older than this are deleted; at least 24. */
    int retention_hours;
    /** First sweep this long after start, then every interval_ms. */
    uint64_t first_ms;
    uint64_t interval_ms;
} svc_sweep_options;

/**
 * Starts sweeping pool's database on loop. Returns PW_OK, PW_INVALID_ARGUMENT
 * (retention under 24 hours, interval 0) or PW_ERRNO(ENOMEM). pool must
 * outlive the sweeper until svc_sweeper_stop.
 */
pw_status svc_sweeper_start(svc_sweeper **out, uv_loop_t *loop, pw_db_pool *pool,
                            const svc_sweep_options *o);
/**
 * Stops sweeping (call on the loop's thread, before closing the pool). The
 * sweeper frees itself once its timer is closed and no statement is running;
 * a running one ends with the pool. NULL is a no-op.
 */
void svc_sweeper_stop(svc_sweeper *s);
/** Rows deleted so far (for tests and logs). */
int64_t svc_sweeper_deleted(const svc_sweeper *s);

#endif
