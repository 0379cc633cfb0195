/*
 * db_bench: the same N independent point reads against PostgreSQL, several
 * ways, in one process, printed side by side (bench/db runs it):
 *   blocking-on-loop  libpq PQexecPrepared one at a time on the loop thread:
 *                     what a naive handler does (every other call waits)
 *   async-serial      paywire_db, one connection, one query at a time
 *   async-pipeline16  paywire_db, one connection, 16 queries in flight (pipeline mode)
 *   async-pool8x1     paywire_db, 8 connections, 64 queries in flight
 * For each: queries per second, mean latency per query, and the worst gap of
 * a 1 ms timer on the same loop (how long other calls would have waited).
 *   db_bench URL [QUERIES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include <paywire/db.h>

#define ROWS 10000

static const pw_db_stmt point_read = {"bench_point_read",
                                      "SELECT id, balance_minor FROM bench_accounts WHERE id = $1",
                                      1,
                                      {PW_DB_INT8}};

typedef struct gap {
    uv_timer_t timer;
    uint64_t last;
    uint64_t worst;
} gap;

static void gap_tick(uv_timer_t *t)
{
    gap *g = t->data;
    uint64_t now = uv_hrtime();
    if (g->last != 0 && now - g->last > g->worst) {
        g->worst = now - g->last;
    }
    g->last = now;
}

static void gap_start(gap *g, uv_loop_t *loop)
{
    memset(g, 0, sizeof(*g));
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    uv_timer_start(&g->timer, gap_tick, 1, 1);
}

typedef struct run {
    const char *name;
    int queries;
    int sent;
    int done;
    int errors;
    int in_flight_max;
    uint64_t started_ns;
    uint64_t elapsed_ns;
    uint64_t worst_gap_ns;
    pw_db_pool *pool;
    uint64_t rng;
} run;

static int64_t next_id(run *r)
{
    r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (int64_t)((r->rng >> 33) % ROWS) + 1;
}

static void issue(run *r);

static void answered(pw_db_result *res, void *ud)
{
    run *r = ud;
    int64_t id;
    if (pw_db_status(res) != PW_OK || pw_db_rows(res) != 1 ||
        pw_db_get_int64(res, 0, 0, &id) != PW_OK) {
        r->errors++;
    }
    r->done++;
    if (r->sent < r->queries) {
        issue(r);
    } else if (r->done == r->queries) {
        r->elapsed_ns = uv_hrtime() - r->started_ns;
    }
}

static void issue(run *r)
{
    pw_db_param p = pw_db_int8(next_id(r));
    r->sent++;
    if (pw_db_query(r->pool, NULL, &point_read, &p, 1, answered, r) != PW_OK) {
        r->errors++;
        r->done++;
    }
}

static void async_run(run *r, const char *url, unsigned conns, unsigned depth, int in_flight)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options o = {.conninfo = url, .max_connections = conns, .pipeline_depth = depth};
    if (pw_db_pool_new(&r->pool, &loop, &o) != PW_OK) {
        exit(1);
    }
    /* Warm up: open every connection and prepare the statement on each. */
    run warm = {.queries = (int)(conns * depth * 4), .pool = r->pool, .rng = 7};
    for (unsigned i = 0; i < conns * depth; i++) {
        issue(&warm);
    }
    while (warm.done < warm.queries) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    gap g;
    gap_start(&g, &loop);
    r->rng = 42;
    r->started_ns = uv_hrtime();
    for (int i = 0; i < in_flight && r->sent < r->queries; i++) {
        issue(r);
    }
    while (r->done < r->queries) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    r->worst_gap_ns = g.worst;
    uv_close((uv_handle_t *)&g.timer, NULL);
    pw_db_pool_close(r->pool, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

/* One blocking point read, as a naive handler would run it on the loop thread. */
static void blocking_query(PGconn *pg, run *r)
{
    char id[24];
    const char *values[] = {id};
    snprintf(id, sizeof(id), "%lld", (long long)next_id(r));
    PGresult *res = PQexecPrepared(pg, "bench_point_read", 1, values, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        r->errors++;
    }
    PQclear(res);
}

static PGconn *connect_or_die(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "db_bench: %s", PQerrorMessage(pg));
        exit(1);
    }
    return pg;
}

static void blocking_run(run *r, const char *url)
{
    PGconn *pg = connect_or_die(url);
    PQclear(PQprepare(pg, "bench_point_read", point_read.sql, 0, NULL));
    uv_loop_t loop;
    uv_loop_init(&loop);
    gap g;
    gap_start(&g, &loop);
    r->rng = 42;
    r->started_ns = uv_hrtime();
    /* One query per loop turn: between queries the loop runs its timers. */
    for (; r->done < r->queries; r->done++) {
        blocking_query(pg, r);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    r->elapsed_ns = uv_hrtime() - r->started_ns;
    r->worst_gap_ns = g.worst;
    uv_close((uv_handle_t *)&g.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    PQfinish(pg);
}

/* ---- one slow query (200 ms): how long does the loop stand still? ---- */

static const pw_db_stmt slow = {"bench_slow", "SELECT pg_sleep(0.2)::text", 0, {0}};

static void slow_done(pw_db_result *res, void *ud)
{
    (void)res;
    *(int *)ud = 1;
}

static double slow_gap_ms(const char *url, int async)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    gap g;
    gap_start(&g, &loop);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (async) {
        pw_db_pool *pool;
        pw_db_options o = {.conninfo = url};
        int done = 0;
        pw_db_pool_new(&pool, &loop, &o);
        pw_db_query(pool, NULL, &slow, NULL, 0, slow_done, &done);
        while (!done) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        pw_db_pool_close(pool, NULL, NULL);
    } else {
        PGconn *pg = connect_or_die(url);
        g.last = uv_hrtime();
        PQclear(PQexec(pg, slow.sql));
        uv_run(&loop, UV_RUN_NOWAIT);
        PQfinish(pg);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    double ms = (double)g.worst / 1e6;
    uv_close((uv_handle_t *)&g.timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return ms;
}

static void setup(const char *url)
{
    PGconn *pg = connect_or_die(url);
    PQclear(PQexec(pg, "SET client_min_messages = warning"));
    PQclear(PQexec(pg, "DROP TABLE IF EXISTS bench_accounts"));
    PQclear(PQexec(pg, "CREATE TABLE bench_accounts (id int8 PRIMARY KEY, balance_minor int8)"));
    PQclear(PQexec(
        pg, "INSERT INTO bench_accounts SELECT g, g * 100 FROM generate_series(1, 10000) g"));
    PQclear(PQexec(pg, "ANALYZE bench_accounts"));
    PQfinish(pg);
}

static void print(const run *r)
{
    double secs = (double)r->elapsed_ns / 1e9;
    printf("%-18s %8d %10.0f %12.1f %14.2f %7d\n", r->name, r->queries, r->queries / secs,
           secs * 1e6 / r->queries, (double)r->worst_gap_ns / 1e6, r->errors);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: db_bench URL [QUERIES]\n");
        return 2;
    }
    const char *url = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 10000;
    setup(url);
    run runs[] = {
        {.name = "blocking-on-loop", .queries = n},
        {.name = "async-serial", .queries = n},
        {.name = "async-pipeline16", .queries = n},
        {.name = "async-pool8x1", .queries = n},
    };
    blocking_run(&runs[0], url);
    async_run(&runs[1], url, 1, 1, 1);
    async_run(&runs[2], url, 1, 16, 16);
    async_run(&runs[3], url, 8, 1, 64);
    printf("%-18s %8s %10s %12s %14s %7s\n", "mode", "queries", "q/s", "us/query", "worst gap ms",
           "errors");
    int errors = 0;
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        print(&runs[i]);
        errors += runs[i].errors;
    }
    printf("(us/query = wall time / queries; worst gap = longest stall of a 1 ms timer on the "
           "same loop)\n");
    printf("one 200 ms query: loop stood still %.1f ms with blocking libpq, %.1f ms with "
           "paywire_db\n",
           slow_gap_ms(url, 0), slow_gap_ms(url, 1));
    return errors ? 1 : 0;
}
