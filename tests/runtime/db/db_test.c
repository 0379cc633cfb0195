/*
 * The data layer against the local PostgreSQL cluster: types, many
 * concurrent queries through one loop's pool, SQLSTATE mapping, a deadline
 * cancelling a query on the server (seen in pg_stat_activity), the loop never
 * blocking in libpq, transaction retry on serialization failure, a pool that
 * cannot connect, a connection the server reset, and migrations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <paywire/db.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"

static char url[512];

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("db_test", url, sizeof(url));
    return 0;
}

static pw_db_pool *pool_on(uv_loop_t *loop, const pw_db_options *extra)
{
    pw_db_options o = extra ? *extra : (pw_db_options){0};
    if (o.conninfo == NULL) {
        o.conninfo = url;
    }
    pw_db_pool *pool;
    assert_int_equal(pw_db_pool_new(&pool, loop, &o), PW_OK);
    return pool;
}

typedef struct closing {
    pw_db_pool *pool;
    int calls;
} closing;

static void pool_closed(pw_db_pool *pool, void *ud)
{
    closing *c = ud;
    assert_ptr_equal(pool, c->pool);
    c->calls++;
}

/* Closes pool: its callback runs once, on a later turn, and the loop ends clean. */
static void pool_done(uv_loop_t *loop, pw_db_pool *pool)
{
    closing c = {pool, 0};
    pw_db_pool_close(pool, pool_closed, &c);
    pw_db_pool_close(pool, pool_closed, &c); /* only the first call counts */
    assert_int_equal(c.calls, 0);
    pw_test_loop_finish(loop, 5000);
    assert_int_equal(c.calls, 1);
}

/* ---- one query, remembered ---- */

typedef struct outcome {
    int done;
    pw_status status;
    char message[320];
    char constraint[64];
    int rows;
    int64_t affected;
    int64_t i64;
} outcome;

static void remember(pw_db_result *r, void *ud)
{
    outcome *o = ud;
    o->done = 1;
    o->status = pw_db_status(r);
    snprintf(o->message, sizeof(o->message), "%s", pw_db_message(r));
    snprintf(o->constraint, sizeof(o->constraint), "%s", pw_db_constraint(r));
    o->rows = pw_db_rows(r);
    o->affected = pw_db_affected(r);
    if (o->rows > 0) {
        pw_db_get_int64(r, 0, 0, &o->i64);
    }
}

static outcome run(uv_loop_t *loop, pw_db_pool *pool, const pw_db_stmt *stmt,
                   const pw_db_param *params, int n)
{
    outcome o = {0};
    assert_int_equal(pw_db_query(pool, NULL, stmt, params, n, remember, &o), PW_OK);
    assert_int_equal(o.done, 0); /* never inside the call */
    pw_test_run_until(loop, &o.done, 10000);
    return o;
}

/* ---- types ---- */

static const pw_db_stmt create_types = {
    "t_create",
    "CREATE TABLE IF NOT EXISTS typed (id int8 PRIMARY KEY, n int4, b bool, t text,"
    " raw bytea, at timestamptz, u uuid, amount numeric(20,4), doc jsonb)",
    0,
    {0}};
static const pw_db_stmt insert_types = {
    "t_insert",
    "INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    9,
    {PW_DB_INT8, PW_DB_INT4, PW_DB_BOOL, PW_DB_TEXT, PW_DB_BYTEA, PW_DB_TIMESTAMPTZ, PW_DB_UUID,
     PW_DB_NUMERIC, PW_DB_JSONB}};
static const pw_db_stmt select_types = {
    "t_select",
    "SELECT id, n, b, t, raw, at, u, amount::text, doc FROM typed WHERE id = $1",
    1,
    {PW_DB_INT8}};

typedef struct typed_row {
    int done;
    int64_t id, n, at;
    int b;
    char t[64], amount[32], doc[64];
    uint8_t raw[8], u[16];
    size_t raw_len;
    int null_n;
} typed_row;

static void read_typed(pw_db_result *r, void *ud)
{
    typed_row *row = ud;
    row->done = 1;
    assert_int_equal(pw_db_status(r), PW_OK);
    assert_int_equal(pw_db_rows(r), 1);
    const char *s;
    const uint8_t *bytes;
    size_t len;
    assert_int_equal(pw_db_get_int64(r, 0, 0, &row->id), PW_OK);
    row->null_n = pw_db_get_int64(r, 0, 1, &row->n) == PW_NOT_FOUND;
    assert_int_equal(pw_db_get_bool(r, 0, 2, &row->b), PW_OK);
    assert_int_equal(pw_db_get_text(r, 0, 3, &s, &len), PW_OK);
    snprintf(row->t, sizeof(row->t), "%.*s", (int)len, s);
    assert_int_equal(pw_db_get_bytea(r, 0, 4, &bytes, &len), PW_OK);
    memcpy(row->raw, bytes, len < 8 ? len : 8);
    row->raw_len = len;
    assert_int_equal(pw_db_get_timestamptz(r, 0, 5, &row->at), PW_OK);
    assert_int_equal(pw_db_get_uuid(r, 0, 6, row->u), PW_OK);
    assert_int_equal(pw_db_get_text(r, 0, 7, &s, &len), PW_OK);
    snprintf(row->amount, sizeof(row->amount), "%s", s);
    assert_int_equal(pw_db_get_text(r, 0, 8, &s, &len), PW_OK);
    snprintf(row->doc, sizeof(row->doc), "%s", s);
    /* Wrong-type reads are refused, not reinterpreted. */
    int64_t wrong;
    assert_int_equal(pw_db_get_int64(r, 0, 3, &wrong), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_db_get_int64(r, 0, 99, &wrong), PW_NOT_FOUND);
}

static void test_db_types_round_trip(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_pool *pool = pool_on(&loop, NULL);
    assert_int_equal(run(&loop, pool, &create_types, NULL, 0).status, PW_OK);
    static const uint8_t raw[] = {0, 1, 0xfe, 0xff};
    static const uint8_t uuid[16] = {0x12, 0x34, 0x56, 0x78, 9, 8, 7,    6,
                                     5,    4,    3,    2,    1, 0, 0xab, 0xcd};
    /* 2026-11-24T18:30:00.123456Z, and a quote that would break SQL text if it were pasted in. */
    const int64_t at = 1795545000123456LL;
    pw_db_param p[] = {pw_db_int8(INT64_MAX),
                       pw_db_null(PW_DB_INT4),
                       pw_db_bool(1),
                       pw_db_text("O'Reilly; DROP TABLE typed; --"),
                       pw_db_bytea(raw, sizeof(raw)),
                       pw_db_timestamptz(at),
                       pw_db_uuid(uuid),
                       {PW_DB_NUMERIC, 0, 0, "12345678901234.5678", 0},
                       pw_db_jsonb("{\"k\": [1, 2]}")};
    outcome ins = run(&loop, pool, &insert_types, p, 9);
    assert_int_equal(ins.status, PW_OK);
    assert_int_equal(ins.affected, 1);
    typed_row row = {0};
    pw_db_param key = pw_db_int8(INT64_MAX);
    assert_int_equal(pw_db_query(pool, NULL, &select_types, &key, 1, read_typed, &row), PW_OK);
    pw_test_run_until(&loop, &row.done, 10000);
    assert_int_equal(row.id, INT64_MAX);
    assert_true(row.null_n);
    assert_int_equal(row.b, 1);
    assert_string_equal(row.t, "O'Reilly; DROP TABLE typed; --");
    assert_int_equal(row.raw_len, 4);
    assert_memory_equal(row.raw, raw, 4);
    assert_int_equal(row.at, at);
    assert_memory_equal(row.u, uuid, 16);
    assert_string_equal(row.amount, "12345678901234.5678");
    assert_string_equal(row.doc, "{\"k\": [1, 2]}");
    /* A parameter of the wrong type is refused before anything is sent. */
    pw_db_param bad = pw_db_text("1");
    assert_int_equal(pw_db_query(pool, NULL, &select_types, &bad, 1, remember, NULL),
                     PW_INVALID_ARGUMENT);
    pool_done(&loop, pool);
}

/* ---- many at once ---- */

static const pw_db_stmt doubled = {"t_double", "SELECT $1::int8 * 2", 1, {PW_DB_INT8}};

typedef struct many {
    int left;
    int wrong;
    int done;
    unsigned max_open;
    pw_db_pool *pool;
} many;

typedef struct one {
    many *m;
    int64_t v;
} one_query;

static void many_cb(pw_db_result *r, void *ud)
{
    one_query *o = ud;
    int64_t got = -1;
    if (pw_db_status(r) != PW_OK || pw_db_get_int64(r, 0, 0, &got) != PW_OK || got != o->v * 2) {
        o->m->wrong++;
    }
    unsigned open;
    pw_db_pool_stats(o->m->pool, &open, NULL);
    if (open > o->m->max_open) {
        o->m->max_open = open;
    }
    o->m->done = --o->m->left == 0;
}

static void test_db_many_concurrent_queries(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options o = {.max_connections = 6, .pipeline_depth = 4};
    pw_db_pool *pool = pool_on(&loop, &o);
    enum { N = 3000 };
    static one_query items[N];
    many m = {.left = N, .pool = pool};
    for (int i = 0; i < N; i++) {
        items[i] = (one_query){&m, i - 1000};
        pw_db_param p = pw_db_int8(items[i].v);
        assert_int_equal(pw_db_query(pool, NULL, &doubled, &p, 1, many_cb, &items[i]), PW_OK);
    }
    pw_test_run_until(&loop, &m.done, 60000);
    assert_int_equal(m.wrong, 0);
    assert_true(m.max_open >= 2);
    assert_true(m.max_open <= 6);
    pool_done(&loop, pool);
}

/* ---- errors ---- */

static const pw_db_stmt create_err = {
    "t_create_err",
    "CREATE TABLE IF NOT EXISTS owners (id text PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS accounts (id text CONSTRAINT accounts_pkey PRIMARY KEY,"
    " owner text REFERENCES owners(id), balance int8 NOT NULL"
    " CONSTRAINT balance_not_negative CHECK (balance >= 0))",
    0,
    {0}};
static const pw_db_stmt add_account = {"t_add_account",
                                       "INSERT INTO accounts VALUES ($1, $2, $3)",
                                       3,
                                       {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};
static const pw_db_stmt broken_sql = {"t_broken", "SELEKT 1", 0, {0}};

static void test_db_errors_map_to_status(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_pool *pool = pool_on(&loop, NULL);
    /* Multi-statement SQL cannot be prepared: that is an error like any other. */
    outcome c = run(&loop, pool, &create_err, NULL, 0);
    assert_int_equal(c.status, PW_INTERNAL);
    pw_test_db_exec(url, create_err.sql);
    pw_db_param ok[] = {pw_db_text("acc_secret_1"), pw_db_null(PW_DB_TEXT), pw_db_int8(5)};
    assert_int_equal(run(&loop, pool, &add_account, ok, 3).status, PW_OK);
    outcome dup = run(&loop, pool, &add_account, ok, 3);
    assert_int_equal(dup.status, PW_ALREADY_EXISTS);
    assert_string_equal(dup.constraint, "accounts_pkey");
    assert_string_equal(dup.message, "already exists (constraint accounts_pkey)");
    assert_null(strstr(dup.message, "acc_secret_1")); /* values never leak into messages */
    pw_db_param neg[] = {pw_db_text("acc_2"), pw_db_null(PW_DB_TEXT), pw_db_int8(-1)};
    outcome chk = run(&loop, pool, &add_account, neg, 3);
    assert_int_equal(chk.status, PW_INVALID_ARGUMENT);
    assert_string_equal(chk.message, "violates check constraint balance_not_negative");
    pw_db_param fk[] = {pw_db_text("acc_3"), pw_db_text("nobody"), pw_db_int8(1)};
    outcome ref = run(&loop, pool, &add_account, fk, 3);
    assert_int_equal(ref.status, PW_FAILED_PRECONDITION);
    assert_non_null(strstr(ref.message, "accounts_owner_fkey"));
    pw_db_param nul[] = {pw_db_text("acc_4"), pw_db_null(PW_DB_TEXT), pw_db_null(PW_DB_INT8)};
    outcome nn = run(&loop, pool, &add_account, nul, 3);
    assert_int_equal(nn.status, PW_INVALID_ARGUMENT);
    assert_string_equal(nn.message, "accounts.balance must not be null");
    outcome syn = run(&loop, pool, &broken_sql, NULL, 0);
    assert_int_equal(syn.status, PW_INTERNAL);
    assert_string_equal(syn.message, "database error (SQLSTATE 42601)");
    /* The connection is still good after all that. */
    pw_db_param one = pw_db_int8(21);
    outcome after = run(&loop, pool, &doubled, &one, 1);
    assert_int_equal(after.status, PW_OK);
    assert_int_equal(after.i64, 42);
    pool_done(&loop, pool);
}

/* ---- deadline and cancellation reach the server ---- */

static const pw_db_stmt sleepy = {
    "t_sleepy", "SELECT pg_sleep($1::float8 / 1000)::text, 1", 1, {PW_DB_INT8}};

typedef struct sleeper {
    pw_db_pool *pool;
    pw_status db_status;
    int db_done;
} sleeper;

static void sleep_answered(pw_db_result *r, void *ud)
{
    pw_call *call = ud;
    sleeper *s = pw_call_get_method(call)->user_data;
    s->db_status = pw_db_status(r);
    s->db_done = 1;
    pw_call_finish(call, pw_db_status(r), "%s", pw_db_message(r));
}

static void sleep_handler(pw_call *call, void *ud)
{
    sleeper *s = ud;
    pw_db_param ms = pw_db_int8(30000);
    assert_int_equal(pw_db_query(s->pool, call, &sleepy, &ms, 1, sleep_answered, call), PW_OK);
}

static long long sleeping_queries(void)
{
    return pw_test_db_scalar(url, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                                  " AND query LIKE '%pg_sleep(%' AND pid <> pg_backend_pid()");
}

static void test_db_deadline_cancels_query_on_server(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sleeper s = {0};
    s.pool = pool_on(&loop, NULL);
    pw_method m = {.path = "/test.Db/Sleep",
                   .kind = PW_METHOD_UNARY,
                   .handler = sleep_handler,
                   .user_data = &s};
    pw_server *server;
    pw_channel *ch;
    pw_test_serve(&loop, NULL, &m, 1, NULL, &server, &ch, NULL);
    pw_call_options co = {.timeout_ms = 300};
    pw_test_call r = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Db/Sleep", &co, "", 0, &r),
                     PW_DEADLINE_EXCEEDED);
    pw_test_run_until(&loop, &s.db_done, 5000);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    /* The server's deadline timer and the client's RST_STREAM (its own 300 ms ran out) race:
     * the query ends for either reason; what matters is that it stops on the server. */
    assert_true(s.db_status == PW_DEADLINE_EXCEEDED || s.db_status == PW_CANCELLED);
    assert_true(ms < 3000); /* the query stopped long before its 30 s */
    /* And the server is no longer running it. */
    long long left = sleeping_queries();
    for (int i = 0; i < 20 && left > 0; i++) {
        uv_sleep(50);
        left = sleeping_queries();
    }
    assert_int_equal(left, 0);
    pw_test_call_reset(&r);
    pw_db_pool_close(s.pool, NULL, NULL);
    pw_test_shutdown(&loop, server, ch);
}

/* ---- the loop never blocks in libpq ---- */

typedef struct lag {
    uint64_t last;
    uint64_t worst;
} lag;

static void lag_tick(uv_timer_t *t)
{
    lag *l = t->data;
    uint64_t now = uv_hrtime();
    if (l->last != 0 && now - l->last > l->worst) {
        l->worst = now - l->last;
    }
    l->last = now;
}

static void test_db_loop_keeps_running_while_database_is_slow(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_pool *pool = pool_on(&loop, NULL);
    /* Connect first, so connection set-up is not what we time. */
    pw_db_param one = pw_db_int8(1);
    assert_int_equal(run(&loop, pool, &doubled, &one, 1).status, PW_OK);
    uv_timer_t timer;
    lag l = {0};
    uv_timer_init(&loop, &timer);
    timer.data = &l;
    uv_timer_start(&timer, lag_tick, 1, 1);
    pw_db_param ms = pw_db_int8(1000);
    outcome o = {0};
    assert_int_equal(pw_db_query(pool, NULL, &sleepy, &ms, 1, remember, &o), PW_OK);
    pw_test_run_until(&loop, &o.done, 10000);
    uv_close((uv_handle_t *)&timer, NULL);
    assert_int_equal(o.status, PW_OK);
    /* A blocking client would show a ~1000 ms gap; allow slow CI machines 50 ms. */
    printf("worst loop gap while a 1 s query ran: %.2f ms\n", (double)l.worst / 1e6);
    assert_true(l.worst < 50 * 1000000ull);
    pool_done(&loop, pool);
}

/* ---- transactions ---- */

static const pw_db_stmt counter_setup = {"t_counter_setup",
                                         "INSERT INTO counters VALUES ('c', 0)"
                                         " ON CONFLICT (id) DO UPDATE SET n = 0",
                                         0,
                                         {0}};
static const pw_db_stmt counter_read = {
    "t_counter_read", "SELECT n FROM counters WHERE id = 'c'", 0, {0}};
static const pw_db_stmt counter_write = {
    "t_counter_write", "UPDATE counters SET n = $1 WHERE id = 'c'", 1, {PW_DB_INT8}};

/* Two transactions that read-modify-write one row, interleaved so that the second must retry. */
typedef struct racer {
    struct racer *other;
    pw_db_tx *tx;
    int64_t seen;
    int has_read;
    int waiting;
    int attempts;
    int done;
    pw_status status;
} racer;

static void racer_write(racer *r);

static void racer_written(pw_db_result *res, void *ud)
{
    racer *r = ud;
    if (pw_db_status(res) != PW_OK) {
        pw_db_tx_abort(r->tx, pw_db_status(res), pw_db_message(res));
        return;
    }
    pw_db_tx_commit(r->tx);
}

static void racer_write(racer *r)
{
    pw_db_param v = pw_db_int8(r->seen + 1);
    assert_int_equal(pw_db_tx_query(r->tx, &counter_write, &v, 1, racer_written, r), PW_OK);
}

static void racer_read(pw_db_result *res, void *ud)
{
    racer *r = ud;
    assert_int_equal(pw_db_status(res), PW_OK);
    pw_db_get_int64(res, 0, 0, &r->seen);
    r->has_read = 1;
    /* Both read before either writes: a lost update, unless SERIALIZABLE steps in. */
    if (r->other->has_read && r->other->waiting) {
        r->other->waiting = 0;
        racer_write(r->other);
        racer_write(r);
    } else if (r->other->has_read || r->attempts > 1) {
        racer_write(r);
    } else {
        r->waiting = 1;
    }
}

static void racer_body(pw_db_tx *tx, int attempt, void *ud)
{
    racer *r = ud;
    r->tx = tx;
    r->attempts = attempt;
    r->has_read = 0;
    assert_int_equal(pw_db_tx_query(tx, &counter_read, NULL, 0, racer_read, r), PW_OK);
}

static void racer_done(pw_status status, const char *message, void *ud)
{
    (void)message;
    racer *r = ud;
    r->status = status;
    r->done = 1;
}

static void test_db_serializable_retry(void **state)
{
    (void)state;
    pw_test_db_exec(url, "CREATE TABLE IF NOT EXISTS counters (id text PRIMARY KEY, n int8)");
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_pool *pool = pool_on(&loop, NULL);
    assert_int_equal(run(&loop, pool, &counter_setup, NULL, 0).status, PW_OK);
    racer a = {0}, b = {0};
    a.other = &b;
    b.other = &a;
    assert_int_equal(pw_db_tx_run(pool, NULL, PW_DB_SERIALIZABLE, 5, racer_body, racer_done, &a),
                     PW_OK);
    assert_int_equal(pw_db_tx_run(pool, NULL, PW_DB_SERIALIZABLE, 5, racer_body, racer_done, &b),
                     PW_OK);
    pw_test_run_until(&loop, &a.done, 10000);
    pw_test_run_until(&loop, &b.done, 10000);
    assert_int_equal(a.status, PW_OK);
    assert_int_equal(b.status, PW_OK);
    /* One of them ran twice, and no increment was lost. */
    assert_int_equal(a.attempts + b.attempts, 3);
    assert_int_equal(pw_test_db_scalar(url, "SELECT n FROM counters WHERE id = 'c'"), 2);
    pool_done(&loop, pool);
}

/* A body that ignores a failed statement and commits anyway: ABORTED, nothing applied. */
static const pw_db_stmt bad_insert = {
    "t_bad_insert", "INSERT INTO accounts VALUES ('tx_acc', NULL, -5)", 0, {0}};
static const pw_db_stmt good_insert = {
    "t_good_insert", "INSERT INTO accounts VALUES ('tx_acc_ok', NULL, 5)", 0, {0}};

static void careless_second(pw_db_result *r, void *ud)
{
    (void)r;
    pw_db_tx_commit(ud);
}

static void careless_first(pw_db_result *r, void *ud)
{
    assert_int_equal(pw_db_status(r), PW_OK);
    assert_int_equal(pw_db_tx_query(ud, &bad_insert, NULL, 0, careless_second, ud), PW_OK);
}

static void careless_body(pw_db_tx *tx, int attempt, void *ud)
{
    (void)attempt;
    (void)ud;
    assert_int_equal(pw_db_tx_query(tx, &good_insert, NULL, 0, careless_first, tx), PW_OK);
}

static void test_db_tx_commit_after_error_is_aborted(void **state)
{
    (void)state;
    pw_test_db_exec(url, create_err.sql);
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_pool *pool = pool_on(&loop, NULL);
    racer r = {0};
    assert_int_equal(
        pw_db_tx_run(pool, NULL, PW_DB_READ_COMMITTED, 1, careless_body, racer_done, &r), PW_OK);
    pw_test_run_until(&loop, &r.done, 10000);
    assert_int_equal(r.status, PW_ABORTED);
    assert_int_equal(pw_test_db_scalar(url, "SELECT count(*) FROM accounts WHERE id = 'tx_acc_ok'"),
                     0);
    pool_done(&loop, pool);
}

/* ---- a database that is not there ---- */

typedef struct avail {
    int calls;
    int last;
} avail;

static void on_available(pw_db_pool *pool, int available, void *ud)
{
    (void)pool;
    avail *a = ud;
    a->calls++;
    a->last = available;
}

static void test_db_unreachable_fails_fast(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    avail a = {0};
    pw_db_options o = {.conninfo = "postgresql://postgres@127.0.0.1:1/none",
                       .on_available = on_available,
                       .user_data = &a};
    pw_db_pool *pool = pool_on(&loop, &o);
    pw_db_param one = pw_db_int8(1);
    uint64_t t0 = uv_hrtime();
    outcome first = run(&loop, pool, &doubled, &one, 1);
    assert_int_equal(first.status, PW_UNAVAILABLE);
    assert_non_null(strstr(first.message, "database unavailable"));
    assert_int_equal(pw_db_pool_available(pool), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.last, 0);
    /* While backing off, queries fail at once instead of waiting for their deadline. */
    outcome second = run(&loop, pool, &doubled, &one, 1);
    assert_int_equal(second.status, PW_UNAVAILABLE);
    assert_true((uv_hrtime() - t0) / 1000000 < 2000);
    /* A bad connection string is reported the same way. */
    pw_db_options bad = {.conninfo = "this is = not a connection string"};
    pw_db_pool *pool2 = pool_on(&loop, &bad);
    outcome third = run(&loop, pool2, &doubled, &one, 1);
    assert_int_equal(third.status, PW_UNAVAILABLE);
    pw_db_pool_close(pool2, NULL, NULL);
    pool_done(&loop, pool);
}

/*
 * `pg_ctl restart -m immediate` ends every backend; a query sent on a pooled connection
 * before the loop has seen the server's goodbye reaches a closed socket, so the kernel
 * answers with a reset, epoll reports POLLERR and libuv calls the poll callback with
 * UV_EBADF. The op fails UNAVAILABLE naming the server's reason, which libpq reads from the
 * socket, not "bad file descriptor" (answers seen in issue 20's fault test).
 */
static void test_db_reset_connection_names_its_cause(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options o = {.max_connections = 1};
    pw_db_pool *pool = pool_on(&loop, &o);
    pw_db_param one = pw_db_int8(1);
    assert_int_equal(run(&loop, pool, &doubled, &one, 1).status, PW_OK);
    long long pid = pw_test_db_scalar(url, "SELECT pid FROM pg_stat_activity WHERE"
                                           " application_name = 'paywire' AND"
                                           " datname = current_database()");
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld, 5000)", pid);
    pw_test_db_exec(url, sql);
    usleep(100 * 1000); /* the server's FATAL and FIN arrive; the loop does not run */
    outcome sent = {0};
    assert_int_equal(pw_db_query(pool, NULL, &doubled, &one, 1, remember, &sent), PW_OK);
    usleep(100 * 1000); /* the reset arrives */
    pw_test_run_until(&loop, &sent.done, 10000);
    assert_int_equal(sent.status, PW_UNAVAILABLE);
    assert_null(strstr(sent.message, "bad file descriptor"));
    assert_non_null(strstr(sent.message, "57P01")); /* admin_shutdown: the server's FATAL */
    pool_done(&loop, pool);
}

/* ---- migrations ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

typedef struct migrator {
    uv_thread_t tid;
    const char *dir;
    pw_status rv;
    int applied;
    char err[512];
} migrator;

static void migrate_thread(void *arg)
{
    migrator *m = arg;
    m->rv = pw_db_migrate(url, m->dir, "paywire.migrate.test", &m->applied, m->err, sizeof(m->err));
}

static void test_db_migrations(void **state)
{
    (void)state;
    char dir[] = "/tmp/pw-migrations-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "0001_merchants.sql",
               "CREATE TABLE merchants (id text PRIMARY KEY, name text NOT NULL);");
    write_file(dir, "0002_merchant_country.sql",
               "ALTER TABLE merchants ADD COLUMN country text NOT NULL DEFAULT 'US';\n"
               "CREATE INDEX merchants_country ON merchants (country);");
    /* Two instances starting at once: one applies both, the other finds nothing to do. */
    migrator a = {.dir = dir}, b = {.dir = dir};
    uv_thread_create(&a.tid, migrate_thread, &a);
    uv_thread_create(&b.tid, migrate_thread, &b);
    uv_thread_join(&a.tid);
    uv_thread_join(&b.tid);
    assert_int_equal(a.rv, PW_OK);
    assert_int_equal(b.rv, PW_OK);
    assert_int_equal(a.applied + b.applied, 2);
    assert_int_equal(pw_test_db_scalar(url, "SELECT count(*) FROM schema_migrations"), 2);
    /* Applied twice: a no-op. */
    int applied = -1;
    char err[512];
    assert_int_equal(pw_db_migrate(url, dir, "paywire.migrate.test", &applied, err, sizeof(err)),
                     PW_OK);
    assert_int_equal(applied, 0);
    /* A failing migration is rolled back and named; the ones before it stay. */
    write_file(dir, "0003_broken.sql", "ALTER TABLE merchants ADD COLUMN x int;\nSELEKT;");
    assert_int_equal(pw_db_migrate(url, dir, "paywire.migrate.test", &applied, err, sizeof(err)),
                     PW_INTERNAL);
    assert_non_null(strstr(err, "migration 0003_broken.sql failed"));
    assert_int_equal(pw_test_db_scalar(url,
                                       "SELECT count(*) FROM information_schema.columns"
                                       " WHERE table_name = 'merchants' AND column_name = 'x'"),
                     0);
    char path[512];
    snprintf(path, sizeof(path), "%s/0003_broken.sql", dir);
    unlink(path);
    /* An edited migration is refused, naming the file. */
    write_file(dir, "0001_merchants.sql",
               "CREATE TABLE merchants (id text PRIMARY KEY, name text);");
    assert_int_equal(pw_db_migrate(url, dir, "paywire.migrate.test", &applied, err, sizeof(err)),
                     PW_FAILED_PRECONDITION);
    assert_non_null(strstr(err, "migration 0001_merchants.sql was edited after it was applied"));
    /* Badly named files are refused before anything runs. */
    write_file(dir, "2_oops.sql", "SELECT 1;");
    assert_int_equal(pw_db_migrate(url, dir, "paywire.migrate.test", &applied, err, sizeof(err)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "2_oops.sql is not named NNNN_lower_snake_case.sql"));
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_types_round_trip),
        cmocka_unit_test(test_db_many_concurrent_queries),
        cmocka_unit_test(test_db_errors_map_to_status),
        cmocka_unit_test(test_db_deadline_cancels_query_on_server),
        cmocka_unit_test(test_db_loop_keeps_running_while_database_is_slow),
        cmocka_unit_test(test_db_serializable_retry),
        cmocka_unit_test(test_db_tx_commit_after_error_is_aborted),
        cmocka_unit_test(test_db_unreachable_fails_fast),
        cmocka_unit_test(test_db_reset_connection_names_its_cause),
        cmocka_unit_test(test_db_migrations),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
