/*
 * svc_outbox against the real PostgreSQL: an outbox stopped while its claim
 * is still at the database must not deliver what the claim returns (its
 * owner may be gone by then: orchestration's webhooks were freed under a
 * late claim, a use-after-free seen under load); the row stays leased and a
 * later publisher delivers it once. Deliveries that end while the published
 * mark of earlier ones is still at the database are marked together, and
 * none is lost or marked twice, with retries among them.
 */
#include <string.h>
#include <libpq-fe.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_outbox.h"

static char db_url[512];

static const char schema[] =
    "CREATE TABLE t_outbox (id bigserial PRIMARY KEY, event_id text NOT NULL,"
    " published_time timestamptz, lease_until timestamptz, attempts int NOT NULL DEFAULT 0,"
    " last_error text, dead_time timestamptz);"
    "INSERT INTO t_outbox (event_id) VALUES ('evt_1');";

typedef struct seen {
    int delivered;
} seen;

static void deliver(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    (void)res;
    (void)row;
    ((seen *)ud)->delivered++;
    svc_outbox_delivered(o, token, PW_OK, NULL);
}

/* Runs loop for ms. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
        uv_update_time(loop);
    }
}

static void test_outbox_stopped_while_claiming_delivers_nothing(void **state)
{
    (void)state;
    /* The table locked by another session: the claim's UPDATE waits at the database. */
    PGconn *locker = PQconnectdb(db_url);
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    PGresult *r = PQexec(locker, "BEGIN; LOCK TABLE t_outbox IN EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options po = {.conninfo = db_url, .max_connections = 2};
    pw_db_pool *pool;
    assert_int_equal(pw_db_pool_new(&pool, &loop, &po), PW_OK);
    seen s = {0};
    svc_outbox_options oo = {
        .table = "t_outbox", .what = "test", .deliver = deliver, .user_data = &s, .idle_ms = 10};
    svc_outbox *o;
    assert_int_equal(svc_outbox_start(&o, &loop, pool, &oo), PW_OK);
    run_for(&loop, 600); /* the first claim is sent and waits for the lock */
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM pg_stat_activity"
                                               " WHERE wait_event_type = 'Lock'"
                                               " AND query LIKE 'UPDATE t_outbox%'"),
                     1);
    svc_outbox_stop(o);
    r = PQexec(locker, "COMMIT");
    PQclear(r);
    PQfinish(locker);
    run_for(&loop, 500); /* the claim answers after the stop */
    assert_int_equal(s.delivered, 0);
    pw_db_pool_close(pool, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
    /* Claimed, leased and not published: a later publisher takes it once the lease is over. */
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM t_outbox WHERE"
                                               " lease_until > now() AND published_time IS NULL"),
                     1);

    pw_test_db_exec(db_url, "UPDATE t_outbox SET lease_until = now() - interval '1 second'");
    uv_loop_init(&loop);
    assert_int_equal(pw_db_pool_new(&pool, &loop, &po), PW_OK);
    assert_int_equal(svc_outbox_start(&o, &loop, pool, &oo), PW_OK);
    for (int i = 0; i < 400 && pw_test_db_scalar(db_url, "SELECT count(*) FROM t_outbox"
                                                         " WHERE published_time IS NOT NULL") == 0;
         i++) {
        run_for(&loop, 10);
    }
    svc_outbox_stop(o);
    run_for(&loop, 100);
    pw_db_pool_close(pool, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(s.delivered, 1);
    assert_int_equal(
        pw_test_db_scalar(db_url, "SELECT count(*) FROM t_outbox WHERE published_time IS NOT NULL"),
        1);
}

/* ---- published rows marked together ---- */

#define ROWS 250

typedef struct async_seen {
    svc_outbox *o;
    void *pending[ROWS];
    int64_t pending_id[ROWS];
    int n_pending;
    int ok[ROWS + 1];    /* OK deliveries by row id */
    int tries[ROWS + 1]; /* deliveries by row id */
    uint64_t rng;
} async_seen;

static void deliver_later(svc_outbox *o, const pw_db_result *res, int row, void *token, void *ud)
{
    async_seen *a = ud;
    a->o = o;
    int64_t id = 0;
    pw_db_get_int64(res, row, pw_db_column(res, "id"), &id);
    assert_true(id >= 1 && id <= ROWS && a->n_pending < ROWS);
    a->pending[a->n_pending] = token;
    a->pending_id[a->n_pending++] = id;
}

/* Every millisecond, a few pending deliveries end (every 7th row fails its first try). */
static void end_some(uv_timer_t *t)
{
    async_seen *a = t->data;
    a->rng = a->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    int k = (int)(a->rng >> 60) % 8 + 1;
    for (int i = 0; i < k && a->n_pending > 0; i++) {
        void *token = a->pending[--a->n_pending];
        int64_t id = a->pending_id[a->n_pending];
        int fail = id % 7 == 0 && a->tries[id] == 0;
        a->tries[id]++;
        a->ok[id] += !fail;
        svc_outbox_delivered(a->o, token, fail ? PW_UNAVAILABLE : PW_OK, fail ? "later" : NULL);
    }
}

static void test_outbox_marks_published_rows_together(void **state)
{
    (void)state;
    pw_test_db_exec(db_url, "CREATE TABLE t_many (id bigserial PRIMARY KEY, event_id text NOT"
                            " NULL, published_time timestamptz, lease_until timestamptz, attempts"
                            " int NOT NULL DEFAULT 0, last_error text, dead_time timestamptz);"
                            "INSERT INTO t_many (event_id) SELECT 'evt_' || g FROM"
                            " generate_series(1, 250) g");
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_options po = {.conninfo = db_url, .max_connections = 2};
    pw_db_pool *pool;
    assert_int_equal(pw_db_pool_new(&pool, &loop, &po), PW_OK);
    static async_seen a;
    memset(&a, 0, sizeof(a));
    a.rng = 7;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &a;
    uv_timer_start(&t, end_some, 1, 1);
    svc_outbox_options oo = {.table = "t_many",
                             .what = "test",
                             .deliver = deliver_later,
                             .user_data = &a,
                             .batch = 100,
                             .idle_ms = 10,
                             .backoff_initial_ms = 20,
                             .backoff_max_ms = 40};
    svc_outbox *o;
    assert_int_equal(svc_outbox_start(&o, &loop, pool, &oo), PW_OK);
    for (int i = 0; i < 1000 && pw_test_db_scalar(db_url, "SELECT count(*) FROM t_many"
                                                          " WHERE published_time IS NULL") > 0;
         i++) {
        run_for(&loop, 10);
    }
    run_for(&loop, 100);
    svc_outbox_stop(o);
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    run_for(&loop, 100);
    pw_db_pool_close(pool, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM t_many WHERE published_time"
                                               " IS NOT NULL AND lease_until IS NULL"),
                     ROWS);
    for (int id = 1; id <= ROWS; id++) {
        assert_int_equal(a.ok[id], 1); /* delivered once, never again after its mark */
        assert_int_equal(a.tries[id], id % 7 == 0 ? 2 : 1);
    }
}

static int group_setup(void **state)
{
    (void)state;
    pw_test_db_create("svc_outbox", db_url, sizeof(db_url));
    pw_test_db_exec(db_url, schema);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox_stopped_while_claiming_delivers_nothing),
        cmocka_unit_test(test_outbox_marks_published_rows_together),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
