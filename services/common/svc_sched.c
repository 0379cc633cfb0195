/*
 * svc_sched.c: periodic jobs, one instance at a time (see svc_sched.h).
 * Each tick walks the jobs in order, one transaction at a time: a step that
 * says "more" runs again before the walk moves on.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include <paywire/paywire.h>
#include "svc_sched.h"

#define NAME_CAP 64

typedef struct sched_job {
    char name[NAME_CAP];
    int64_t interval_ms;
    const pw_db_stmt *step;
    svc_job_run_fn run;
    void *user_data;
    int registered;
    int64_t runs, failures;
} sched_job;

struct svc_sched {
    uv_timer_t timer;
    pw_db_pool *pool;
    sched_job *jobs;
    int n;
    /* The walk: the job whose step runs (or runs next), -1 between walks. */
    int current;
    /* A statement or transaction is in flight. */
    int busy;
    /* Why the transaction in flight was rolled back by us (not an error). */
    int skipped;
    /* The step's first row said "more". */
    int more;
    /* The transaction in flight (its callbacks get the scheduler). */
    pw_db_tx *tx;
    /* A C job's run is in progress (one at a time: the run is the scheduler). */
    int running;
    int stopped;
    int timer_closed;
};

struct svc_sched_run {
    svc_sched s;
};

static const pw_db_stmt register_job = {
    "svc_sched_register",
    "INSERT INTO svc_jobs (name, next_run) VALUES ($1, svc_now()) ON CONFLICT (name) DO NOTHING",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt lock_job = {
    "svc_sched_lock",
    "SELECT pg_try_advisory_xact_lock(hashtextextended('svc_job:' || $1, 0)) AS locked",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt due_job = {"svc_sched_due",
                                   "SELECT next_run <= svc_now() AS due FROM svc_jobs"
                                   " WHERE name = $1 FOR UPDATE",
                                   1,
                                   {PW_DB_TEXT}};
static const pw_db_stmt advance_job = {
    "svc_sched_advance",
    "UPDATE svc_jobs SET runs = runs + 1, last_run_time = svc_now(), last_error = NULL,"
    " next_run = CASE WHEN $2 THEN next_run"
    " WHEN next_run + $3 * interval '1 millisecond' > svc_now()"
    " THEN next_run + $3 * interval '1 millisecond'"
    " ELSE svc_now() + $3 * interval '1 millisecond' END WHERE name = $1",
    3,
    {PW_DB_TEXT, PW_DB_BOOL, PW_DB_INT8}};
static const pw_db_stmt record_error = {"svc_sched_error",
                                        "UPDATE svc_jobs SET last_error = $2 WHERE name = $1",
                                        2,
                                        {PW_DB_TEXT, PW_DB_TEXT}};

static void walk(svc_sched *s);

static void maybe_free(svc_sched *s)
{
    if (s->stopped && s->timer_closed && !s->busy) {
        pw_free(s->jobs);
        pw_free(s);
    }
}

/* Ends what was in flight; 1 when the scheduler is still running. */
static int settle(svc_sched *s)
{
    s->busy = 0;
    if (s->stopped) {
        maybe_free(s);
        return 0;
    }
    return 1;
}

static int first_bool(const pw_db_result *res, const char *col, int *out)
{
    int c = pw_db_column(res, col);
    *out = 0;
    return pw_db_rows(res) > 0 && c >= 0 && !pw_db_is_null(res, 0, c) &&
           pw_db_get_bool(res, 0, c, out) == PW_OK;
}

/* ---- one step's transaction ---- */

static void advanced(pw_db_result *res, void *ud)
{
    pw_db_tx *tx = ((svc_sched *)ud)->tx;
    if (pw_db_status(res) != PW_OK) {
        pw_db_tx_abort(tx, pw_db_status(res), pw_db_message(res));
        return;
    }
    pw_db_tx_commit(tx);
}

/* The step succeeded: runs + 1 and the next run moved (unless more), then the commit. */
static void advance(svc_sched *s, int more)
{
    sched_job *j = &s->jobs[s->current];
    s->more = more;
    pw_db_param p[3] = {pw_db_text(j->name), pw_db_bool(more), pw_db_int8(j->interval_ms)};
    pw_status rv = pw_db_tx_query(s->tx, &advance_job, p, 3, advanced, s);
    if (rv != PW_OK) {
        pw_db_tx_abort(s->tx, rv, "cannot move the job's next run");
    }
}

static void stepped(pw_db_result *res, void *ud)
{
    svc_sched *s = ud;
    if (pw_db_status(res) != PW_OK) {
        pw_db_tx_abort(s->tx, pw_db_status(res), pw_db_message(res));
        return;
    }
    int more = 0;
    (void)first_bool(res, "more", &more);
    advance(s, more);
}

pw_db_tx *svc_sched_run_tx(svc_sched_run *run)
{
    return run->s.tx;
}

int svc_sched_run_stopping(const svc_sched_run *run)
{
    return run->s.stopped;
}

void svc_sched_run_done(svc_sched_run *run, pw_status status, int more, const char *message)
{
    svc_sched *s = &run->s;
    PW_ASSERT(s->running);
    s->running = 0;
    if (s->tx == NULL) {
        /* The transaction ended under the run (its connection or the pool closed): nothing of
         * the run was committed; the next tick runs it again. */
        if (settle(s)) {
            s->current++;
            walk(s);
        }
        return;
    }
    if (status != PW_OK) {
        pw_db_tx_abort(s->tx, status, message ? message : pw_status_str(status));
        return;
    }
    advance(s, more);
}

static void checked_due(pw_db_result *res, void *ud)
{
    svc_sched *s = ud;
    pw_db_tx *tx = s->tx;
    int due = 0;
    if (pw_db_status(res) != PW_OK) {
        pw_db_tx_abort(tx, pw_db_status(res), pw_db_message(res));
        return;
    }
    if (!first_bool(res, "due", &due) || !due) {
        s->skipped = 1;
        pw_db_tx_abort(tx, PW_ABORTED, "not due");
        return;
    }
    if (s->stopped) {
        /* Stopped while this step's lock or due check was in flight: the owner may already
         * have freed what a run reaches (its user_data), so no run starts. */
        s->skipped = 1;
        pw_db_tx_abort(tx, PW_CANCELLED, "stopping");
        return;
    }
    sched_job *j = &s->jobs[s->current];
    if (j->run != NULL) {
        s->running = 1;
        j->run((svc_sched_run *)s, j->user_data);
        return;
    }
    pw_status rv = pw_db_tx_query(tx, j->step, NULL, 0, stepped, s);
    if (rv != PW_OK) {
        pw_db_tx_abort(tx, rv, "cannot start the job's step");
    }
}

static void locked(pw_db_result *res, void *ud)
{
    svc_sched *s = ud;
    pw_db_tx *tx = s->tx;
    int got = 0;
    if (pw_db_status(res) != PW_OK) {
        pw_db_tx_abort(tx, pw_db_status(res), pw_db_message(res));
        return;
    }
    if (!first_bool(res, "locked", &got) || !got) {
        s->skipped = 1; /* another instance runs it now */
        pw_db_tx_abort(tx, PW_ABORTED, "running elsewhere");
        return;
    }
    pw_db_param p = pw_db_text(s->jobs[s->current].name);
    pw_status rv = pw_db_tx_query(tx, &due_job, &p, 1, checked_due, s);
    if (rv != PW_OK) {
        pw_db_tx_abort(tx, rv, "cannot read the job");
    }
}

static void step_body(pw_db_tx *tx, int attempt, void *ud)
{
    svc_sched *s = ud;
    (void)attempt;
    s->tx = tx;
    s->skipped = 0;
    s->more = 0;
    pw_db_param p = pw_db_text(s->jobs[s->current].name);
    pw_status rv = pw_db_tx_query(tx, &lock_job, &p, 1, locked, s);
    if (rv != PW_OK) {
        pw_db_tx_abort(tx, rv, "cannot take the job's lock");
    }
}

static void error_recorded(pw_db_result *res, void *ud)
{
    svc_sched *s = ud;
    (void)res; /* best effort: the log line has it already */
    if (settle(s)) {
        s->current++;
        walk(s);
    }
}

static void step_done(pw_status status, const char *message, void *ud)
{
    svc_sched *s = ud;
    sched_job *j = &s->jobs[s->current];
    if (s->running) {
        /* Ended under a C run (connection lost, pool closed): the run's done settles it. */
        PW_LOG(PW_LOG_WARNING, "sched", "job %s: its transaction ended during the run: %s", j->name,
               message ? message : pw_status_str(status));
        j->failures++;
        s->tx = NULL;
        return;
    }
    if (status == PW_OK) {
        j->runs++;
        if (settle(s)) {
            if (!s->more) {
                s->current++;
            }
            walk(s);
        }
        return;
    }
    if (s->skipped) {
        if (settle(s)) {
            s->current++;
            walk(s);
        }
        return;
    }
    j->failures++;
    if (s->stopped) {
        settle(s);
        return;
    }
    PW_LOG(PW_LOG_ERR, "sched", "job %s failed, rolled back, runs again on a later tick: %s (%s)",
           j->name, message ? message : "", pw_status_str(status));
    pw_db_param p[2] = {pw_db_text(j->name), pw_db_text(message ? message : pw_status_str(status))};
    if (pw_db_query(s->pool, NULL, &record_error, p, 2, error_recorded, s) != PW_OK) {
        settle(s);
        s->current++;
        walk(s);
    }
}

/* ---- the walk ---- */

static void registered(pw_db_result *res, void *ud)
{
    svc_sched *s = ud;
    sched_job *j = &s->jobs[s->current];
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "sched", "cannot register job %s: %s", j->name, pw_db_message(res));
        if (settle(s)) {
            s->current = -1; /* the next tick tries again */
        }
        return;
    }
    j->registered = 1;
    if (settle(s)) {
        walk(s);
    }
}

/* Starts the current job's next statement, or ends the walk after the last job. */
static void walk(svc_sched *s)
{
    if (s->stopped || s->busy) {
        return;
    }
    if (s->current >= s->n) {
        s->current = -1;
        return;
    }
    sched_job *j = &s->jobs[s->current];
    pw_status rv;
    if (!j->registered) {
        pw_db_param p = pw_db_text(j->name);
        rv = pw_db_query(s->pool, NULL, &register_job, &p, 1, registered, s);
    } else {
        rv = pw_db_tx_run(s->pool, NULL, PW_DB_READ_COMMITTED, 0, step_body, step_done, s);
    }
    if (rv == PW_OK) {
        s->busy = 1;
    } else {
        s->current = -1; /* out of memory: the next tick tries again */
    }
}

static void on_tick(uv_timer_t *t)
{
    svc_sched *s = t->data;
    if (s->current < 0) {
        s->current = 0;
        walk(s);
    }
}

pw_status svc_sched_start(svc_sched **out, uv_loop_t *loop, pw_db_pool *pool, const svc_job *jobs,
                          int n, const svc_sched_options *o)
{
    *out = NULL;
    if (jobs == NULL || n <= 0 || pool == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    for (int i = 0; i < n; i++) {
        if (jobs[i].name == NULL || jobs[i].name[0] == '\0' || strlen(jobs[i].name) >= NAME_CAP ||
            (jobs[i].step == NULL) == (jobs[i].run == NULL) || jobs[i].interval_ms < 1) {
            return PW_INVALID_ARGUMENT;
        }
    }
    svc_sched *s = pw_calloc(1, sizeof(*s));
    sched_job *js = pw_calloc((size_t)n, sizeof(*js));
    if (s == NULL || js == NULL) {
        pw_free(s);
        pw_free(js);
        return PW_ERRNO(ENOMEM);
    }
    for (int i = 0; i < n; i++) {
        snprintf(js[i].name, sizeof(js[i].name), "%s", jobs[i].name);
        js[i].interval_ms = jobs[i].interval_ms;
        js[i].step = jobs[i].step;
        js[i].run = jobs[i].run;
        js[i].user_data = jobs[i].user_data;
    }
    s->pool = pool;
    s->jobs = js;
    s->n = n;
    s->current = -1;
    uint64_t tick = o != NULL && o->tick_ms > 0 ? o->tick_ms : 1000;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_tick, 0, tick);
    uv_unref((uv_handle_t *)&s->timer); /* never keeps the loop alive */
    *out = s;
    return PW_OK;
}

static void timer_closed(uv_handle_t *h)
{
    svc_sched *s = h->data;
    s->timer_closed = 1;
    maybe_free(s);
}

void svc_sched_stop(svc_sched *s)
{
    if (s == NULL || s->stopped) {
        return;
    }
    s->stopped = 1;
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

static const sched_job *find(const svc_sched *s, const char *name)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->jobs[i].name, name) == 0) {
            return &s->jobs[i];
        }
    }
    return NULL;
}

int64_t svc_sched_runs(const svc_sched *s, const char *name)
{
    const sched_job *j = find(s, name);
    return j != NULL ? j->runs : -1;
}

int64_t svc_sched_failures(const svc_sched *s, const char *name)
{
    const sched_job *j = find(s, name);
    return j != NULL ? j->failures : -1;
}
