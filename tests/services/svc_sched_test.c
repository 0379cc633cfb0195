/*
 * svc_sched: two schedulers (two pools, as two instances would have) race
 * for the same jobs against the real PostgreSQL while the test moves the
 * business clock a day at a time. Each job must run exactly once per day:
 * a plain job, a job that works in chunks of ten rows ("more") and must
 * touch every row once, and a job whose first step fails (rolled back, run
 * again, its effect once).
 */
#include <stdio.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_sched.h"

#define DAY_MS 86400000LL
#define DAYS   5

static char db_url[512];

static const char schema[] =
    "CREATE TABLE svc_clock (one boolean PRIMARY KEY DEFAULT true CHECK (one),"
    "                        offset_ms bigint NOT NULL DEFAULT 0);"
    "INSERT INTO svc_clock DEFAULT VALUES;"
    "CREATE FUNCTION svc_now() RETURNS timestamptz LANGUAGE sql STABLE"
    "  AS $$ SELECT now() + offset_ms * interval '1 millisecond' FROM svc_clock $$;"
    "CREATE TABLE svc_jobs (name text PRIMARY KEY, next_run timestamptz NOT NULL,"
    "                       runs bigint NOT NULL DEFAULT 0, last_run_time timestamptz,"
    "                       last_error text);"
    "CREATE TABLE job_log (job text NOT NULL, clock timestamptz NOT NULL);"
    "CREATE TABLE chunks (id int PRIMARY KEY, day int NOT NULL DEFAULT -1,"
    "                     touched int NOT NULL DEFAULT 0);"
    "INSERT INTO chunks (id) SELECT generate_series(1, 95);"
    "CREATE SEQUENCE flaky_calls;"
    "CREATE FUNCTION flaky_step() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
    "  INSERT INTO job_log VALUES ('flaky', svc_now());"
    "  IF nextval('flaky_calls') = 1 THEN RAISE EXCEPTION 'the first try fails'; END IF;"
    "  RETURN false; END $$;";

static const pw_db_stmt daily_step = {
    "t_sched_daily",
    "WITH ins AS (INSERT INTO job_log VALUES ('daily', svc_now()) RETURNING 1)"
    " SELECT false AS more FROM ins",
    0,
    {0}};
/* Ten rows not yet seen today per step; "more" while a full chunk was found. */
static const pw_db_stmt chunk_step = {
    "t_sched_chunk",
    "WITH today AS (SELECT (offset_ms / 86400000)::int AS d FROM svc_clock),"
    " c AS (UPDATE chunks SET day = (SELECT d FROM today), touched = touched + 1"
    " WHERE id IN (SELECT id FROM chunks WHERE day < (SELECT d FROM today)"
    " ORDER BY id LIMIT 10 FOR UPDATE) RETURNING id)"
    " SELECT count(*) = 10 AS more FROM c",
    0,
    {0}};
static const pw_db_stmt flaky_step = {"t_sched_flaky", "SELECT flaky_step() AS more", 0, {0}};

static const svc_job jobs[] = {
    {.name = "daily", .interval_ms = DAY_MS, .step = &daily_step},
    {.name = "chunked", .interval_ms = DAY_MS, .step = &chunk_step},
    {.name = "flaky", .interval_ms = DAY_MS, .step = &flaky_step},
};

typedef struct waiter {
    uv_timer_t timer;
    const char *sql;
    long long want;
    int reached;
} waiter;

static void poll_db(uv_timer_t *t)
{
    waiter *w = t->data;
    if (pw_test_db_scalar(db_url, w->sql) >= w->want) {
        w->reached = 1;
    }
}

/* Runs loop until sql's value reaches want (asserted within 20 s). */
static void run_until(uv_loop_t *loop, const char *sql, long long want)
{
    waiter w = {.sql = sql, .want = want};
    uv_timer_init(loop, &w.timer);
    w.timer.data = &w;
    uv_timer_start(&w.timer, poll_db, 20, 20);
    pw_test_run_until(loop, &w.reached, 20000);
    uv_close((uv_handle_t *)&w.timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void elapsed(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Lets both schedulers tick for ms more (a second run would show up now). */
static void settle_for(uv_loop_t *loop, uint64_t ms)
{
    int done = 0;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &done;
    uv_timer_start(&t, elapsed, ms, 0);
    pw_test_run_until(loop, &done, ms + 5000);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void expect_count(const char *job, long long want)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM job_log WHERE job = '%s'", job);
    assert_int_equal(pw_test_db_scalar(db_url, sql), want);
}

static void test_sched_each_job_once_per_day(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options o = {.conninfo = db_url, .max_connections = 2};
    pw_db_pool *pools[2];
    svc_sched *scheds[2];
    svc_sched_options so = {.tick_ms = 15};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pw_db_pool_new(&pools[i], &loop, &o), PW_OK);
        assert_int_equal(svc_sched_start(&scheds[i], &loop, pools[i], jobs, 3, &so), PW_OK);
    }
    for (long long day = 0; day <= DAYS; day++) {
        if (day > 0) {
            pw_test_db_exec(db_url, "UPDATE svc_clock SET offset_ms = offset_ms + 86400000");
        }
        run_until(&loop, "SELECT count(*) FROM job_log WHERE job = 'daily'", day + 1);
        run_until(&loop,
                  "SELECT count(*) FROM chunks WHERE day = (SELECT offset_ms / 86400000"
                  " FROM svc_clock)",
                  95);
        /* flaky's failed first try left no row: its log counts committed steps. */
        run_until(&loop, "SELECT count(*) FROM job_log WHERE job = 'flaky'", day + 1);
        settle_for(&loop, 150);
        expect_count("daily", day + 1);
        expect_count("flaky", day + 1);
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM chunks WHERE touched = %lld", day + 1);
        assert_int_equal(pw_test_db_scalar(db_url, sql), 95);
    }
    int64_t daily = svc_sched_runs(scheds[0], "daily") + svc_sched_runs(scheds[1], "daily");
    int64_t flaky_failed =
        svc_sched_failures(scheds[0], "flaky") + svc_sched_failures(scheds[1], "flaky");
    assert_int_equal(daily, DAYS + 1);
    assert_int_equal(flaky_failed, 1);
    /* 95 rows in chunks of ten: ten steps a day, the last with five rows. */
    int64_t chunked = svc_sched_runs(scheds[0], "chunked") + svc_sched_runs(scheds[1], "chunked");
    assert_int_equal(chunked, 10 * (DAYS + 1));
    assert_int_equal(svc_sched_runs(scheds[0], "nope"), -1);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT runs FROM svc_jobs WHERE name = 'daily'"),
                     DAYS + 1);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM svc_jobs"
                                               " WHERE next_run <= svc_now()"),
                     0);
    for (int i = 0; i < 2; i++) {
        svc_sched_stop(scheds[i]);
        pw_db_pool_close(pools[i], NULL, NULL);
    }
    pw_test_loop_finish(&loop, 5000);
}

static void test_sched_refuses_bad_jobs(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options o = {.conninfo = db_url};
    pw_db_pool *pool;
    assert_int_equal(pw_db_pool_new(&pool, &loop, &o), PW_OK);
    svc_sched *s = (svc_sched *)&loop;
    char long_name[65];
    memset(long_name, 'j', 64);
    long_name[64] = '\0';
    svc_job bad[] = {
        {.name = "", .interval_ms = DAY_MS, .step = &daily_step},
        {.name = "x", .interval_ms = 0, .step = &daily_step},
        {.name = "x", .interval_ms = DAY_MS},
        {.name = long_name, .interval_ms = DAY_MS, .step = &daily_step},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(svc_sched_start(&s, &loop, pool, &bad[i], 1, NULL), PW_INVALID_ARGUMENT);
        assert_null(s);
    }
    assert_int_equal(svc_sched_start(&s, &loop, pool, jobs, 0, NULL), PW_INVALID_ARGUMENT);
    svc_sched_stop(NULL);
    pw_db_pool_close(pool, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("svc_sched", db_url, sizeof(db_url));
    pw_test_db_exec(db_url, schema);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_refuses_bad_jobs),
        cmocka_unit_test(test_sched_each_job_once_per_day),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
