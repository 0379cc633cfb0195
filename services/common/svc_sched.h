#ifndef PAYWIRE_SVC_SCHED_H
#define PAYWIRE_SVC_SCHED_H

/*
 * The job scheduler (issue 19): periodic jobs of a service — availability,
 * the settlement cut-off, capture expiry, reconciliation reruns — run by
 * exactly one instance however many run, resumed after a crash and never
 * doubled, on a business clock that tests can move.
 *
 * A job is one SQL statement, its *step*, run in a transaction that also
 * holds the job's lock and moves its next run:
 *   1. SELECT pg_try_advisory_xact_lock(job): another instance running the
 *      job makes this one skip it (no waiting);
 *   2. the job's row FOR UPDATE, and whether it is due (next_run <=
 *      svc_now()) — a statement after the lock, so it sees what a holder
 *      that just committed wrote;
 *   3. the step; its first row may carry a boolean column "more": true runs
 *      the step again at once (a job that works in chunks), without moving
 *      next_run;
 *   4. runs + 1 and next_run + interval (or svc_now() + interval when the
 *      clock has moved past it), then COMMIT.
 * The step's writes and the move of next_run commit together: a crash or an
 * error before the commit undoes both, and the next tick runs the step again.
 * A step that must call out of the database (a payout, a connector) writes
 * its intent to an outbox in the step instead (svc_outbox).
 *
 * The business clock is svc_now() = now() + svc_clock.offset_ms: the steps
 * use it wherever a day, a delay or an expiry is meant, so a test (or the
 * demo) moves time by updating svc_clock as the database owner; the app
 * role can only read it. What the service's migration creates (verbatim):
 *
 *   CREATE TABLE svc_clock (one boolean PRIMARY KEY DEFAULT true CHECK (one),
 *                           offset_ms bigint NOT NULL DEFAULT 0);
 *   INSERT INTO svc_clock DEFAULT VALUES;
 *   CREATE FUNCTION svc_now() RETURNS timestamptz LANGUAGE sql STABLE
 *     AS $$ SELECT now() + offset_ms * interval '1 millisecond' FROM svc_clock $$;
 *   CREATE TABLE svc_jobs (name text PRIMARY KEY, next_run timestamptz NOT NULL,
 *                          runs bigint NOT NULL DEFAULT 0, last_run_time timestamptz,
 *                          last_error text);
 *   -- and to the app role: SELECT on svc_clock, SELECT, INSERT, UPDATE on svc_jobs.
 *
 * A scheduler runs on one loop (a service's worker 0), one step at a time.
 */
#include <stdint.h>
#include <uv.h>
#include <paywire/db.h>

typedef struct svc_sched svc_sched;
/** A job's run in progress (a C job: see svc_job.run). */
typedef struct svc_sched_run svc_sched_run;
/**
 * A C job's step, for work SQL alone cannot do (calls to a service): it runs
 * inside the job's transaction, after the lock and the due check, may issue
 * statements on svc_sched_run_tx and start calls on the loop, and ends with
 * svc_sched_run_done exactly once. Its effects outside the transaction must be
 * idempotent (fixed ids): a crash or a failure runs the step again.
 */
typedef void (*svc_job_run_fn)(svc_sched_run *run, void *user_data);

typedef struct svc_job {
    /** Its row in svc_jobs and its lock ("availability"); at most 63 bytes. */
    const char *name;
    /** Business time between runs; at least 1 ms. */
    int64_t interval_ms;
    /** The step: no parameters; static storage (pw_db_stmt). Or NULL, and run set. */
    const pw_db_stmt *step;
    svc_job_run_fn run;
    void *user_data;
} svc_job;

/** The run's open transaction (the job's lock held, its row locked, due). */
pw_db_tx *svc_sched_run_tx(svc_sched_run *run);
/** Whether the scheduler is stopping (a long run should end early, with an error). */
int svc_sched_run_stopping(const svc_sched_run *run);
/**
 * Ends the run: PW_OK commits it and moves the job's next run (more: run the
 * step again at once, next run unmoved); anything else rolls it back (the
 * message is logged and kept in svc_jobs.last_error) and a later tick runs it
 * again. Call once, from the loop.
 */
void svc_sched_run_done(svc_sched_run *run, pw_status status, int more, const char *message);

typedef struct svc_sched_options {
    /** How often to look for due jobs (default 1000 ms). */
    uint64_t tick_ms;
} svc_sched_options;

/**
 * Starts scheduling the n jobs (copied, names too; the step statements are
 * referenced) on loop against pool's database. A job's row is created on
 * the first tick, due at once. Returns PW_OK; PW_INVALID_ARGUMENT (no jobs,
 * a missing name, neither or both of step and run, a name over 63 bytes, an
 * interval under 1 ms) or
 * PW_ERRNO(ENOMEM), with *out NULL. pool must outlive the scheduler until
 * svc_sched_stop.
 */
pw_status svc_sched_start(svc_sched **out, uv_loop_t *loop, pw_db_pool *pool, const svc_job *jobs,
                          int n, const svc_sched_options *o);
/**
 * Stops: no new step starts; the scheduler frees itself once its timer is
 * closed and the step in flight (if any) has ended — call before closing
 * the pool, which ends a running step (rolled back, run again later by
 * whoever runs next). NULL is a no-op. On the loop's thread.
 */
void svc_sched_stop(svc_sched *s);
/** Steps of job `name` this scheduler committed, and those that failed (-1: no such job). */
int64_t svc_sched_runs(const svc_sched *s, const char *name);
int64_t svc_sched_failures(const svc_sched *s, const char *name);

#endif
