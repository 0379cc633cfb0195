/* svc_sweep.c: deletes expired idempotency records in batches on a timer. */
#include <paywire/log.h>
#include <paywire/paywire.h>
#include "svc_sweep.h"

#define SWEEP_BATCH 1000

struct svc_sweeper {
    uv_timer_t timer;
    pw_db_pool *pool;
    svc_sweep_options o;
    int running; /* a DELETE is in flight */
    int stopped;
    int timer_closed;
    int64_t deleted;
};

static const pw_db_stmt sweep_stmt = {
    "svc_idempotency_sweep",
    "DELETE FROM idempotency_keys WHERE (scope, method, key) IN (SELECT scope, method, key"
    " FROM idempotency_keys WHERE create_time < now() - make_interval(hours => $1) LIMIT 1000)",
    1,
    {PW_DB_INT4}};

static void maybe_free(svc_sweeper *s)
{
    if (s->stopped && s->timer_closed && !s->running) {
        pw_free(s);
    }
}

static void sweep(svc_sweeper *s);

static void swept(pw_db_result *res, void *ud)
{
    svc_sweeper *s = ud;
    s->running = 0;
    if (s->stopped) {
        maybe_free(s);
        return;
    }
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "sweep", "deleting expired idempotency keys: %s",
               pw_db_message(res));
        return; /* the next tick tries again */
    }
    int64_t n = pw_db_affected(res);
    s->deleted += n;
    if (n > 0) {
        PW_LOG(PW_LOG_INFO, "sweep", "deleted %lld expired idempotency keys", (long long)n);
    }
    if (n == SWEEP_BATCH) {
        sweep(s); /* more to do: the next batch at once */
    }
}

static void sweep(svc_sweeper *s)
{
    if (s->running || s->stopped) {
        return;
    }
    pw_db_param p = pw_db_int4(s->o.retention_hours);
    if (pw_db_query(s->pool, NULL, &sweep_stmt, &p, 1, swept, s) == PW_OK) {
        s->running = 1;
    }
}

static void on_tick(uv_timer_t *t)
{
    sweep(t->data);
}

pw_status svc_sweeper_start(svc_sweeper **out, uv_loop_t *loop, pw_db_pool *pool,
                            const svc_sweep_options *o)
{
    *out = NULL;
    if (o->retention_hours < 24 || o->interval_ms == 0) {
        return PW_INVALID_ARGUMENT;
    }
    svc_sweeper *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    s->pool = pool;
    s->o = *o;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_tick, o->first_ms, o->interval_ms);
    uv_unref((uv_handle_t *)&s->timer); /* never keeps the loop alive */
    *out = s;
    return PW_OK;
}

static void timer_closed(uv_handle_t *h)
{
    svc_sweeper *s = h->data;
    s->timer_closed = 1;
    maybe_free(s);
}

void svc_sweeper_stop(svc_sweeper *s)
{
    if (s == NULL || s->stopped) {
        return;
    }
    s->stopped = 1;
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

int64_t svc_sweeper_deleted(const svc_sweeper *s)
{
    return s->deleted;
}
