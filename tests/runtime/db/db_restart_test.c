/*
 * PostgreSQL restarted in the middle of a write load (on a cluster of its
 * own, so other test binaries are not disturbed): in-flight queries fail with
 * UNAVAILABLE, the pool reconnects by itself, and retrying every UNAVAILABLE
 * write with the same idempotency key leaves each key applied exactly once.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <paywire/db.h>
#include "pw_test.h"
#include "pw_test_db.h"

#define KEYS        600
#define CONCURRENCY 8

static const char *script = PW_SOURCE_DIR "/scripts/pg";
static char cluster_dir[64];
static char url[256];

static int run_script(const char *verb)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "bash %s %s >/dev/null 2>&1", script, verb);
    return system(cmd);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(cluster_dir, sizeof(cluster_dir), "/var/tmp/pw-restart-test-%ld", (long)getpid());
    setenv("PW_PG_DIR", cluster_dir, 1);
    setenv("PW_PG_PORT", "15497", 1);
    if (run_script("start") != 0) {
        fail_msg("cannot start a PostgreSQL cluster in %s", cluster_dir);
    }
    snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:15497/postgres");
    pw_test_db_exec(url, "DROP TABLE IF EXISTS payments");
    /* The idempotency key is the primary key: a second apply is a conflict, not a row. */
    pw_test_db_exec(url, "CREATE TABLE payments (idempotency_key text PRIMARY KEY,"
                         " amount_minor int8 NOT NULL)");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    run_script("stop");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", cluster_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A retry of a write that did commit finds its key taken and changes nothing. */
static const pw_db_stmt apply_payment = {
    "apply_payment",
    "INSERT INTO payments (idempotency_key, amount_minor) VALUES ($1, $2)"
    " ON CONFLICT (idempotency_key) DO NOTHING",
    2,
    {PW_DB_TEXT, PW_DB_INT8}};

/* How many times each write's final outcome was reported (must be exactly once). */
static int reported[KEYS];

typedef struct load {
    uv_loop_t *loop;
    pw_db_pool *pool;
    int next;
    int finished;
    int unavailable;
    int already_applied;
    int other_errors;
    int done;
    int restarted;
    /* Set by the restarter thread when pg_ctl restart returned. */
    _Atomic int restart_done;
    uv_thread_t restarter;
    uv_timer_t retry_timer;
} load;

typedef struct writer {
    load *l;
    int key;
    uv_timer_t timer;
} writer;

static void write_send(writer *w);

static void write_retry_fired(uv_timer_t *t)
{
    write_send(t->data);
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void write_next(load *l, writer *w);

static void write_paced(uv_timer_t *t)
{
    writer *w = t->data;
    write_next(w->l, w);
}

static void written(pw_db_result *r, void *ud)
{
    writer *w = ud;
    load *l = w->l;
    pw_status st = pw_db_status(r);
    if (st == PW_UNAVAILABLE) {
        /* What a client does with UNAVAILABLE: the same request, same key, a little later. */
        l->unavailable++;
        uv_timer_start(&w->timer, write_retry_fired, 50, 0);
        return;
    }
    if (st != PW_OK) {
        l->other_errors++;
        fprintf(stderr, "key %d: %s\n", w->key, pw_db_message(r));
    } else if (pw_db_affected(r) == 0) {
        /* Committed before the connection dropped, reported UNAVAILABLE, retried. */
        l->already_applied++;
    }
    reported[w->key]++;
    l->finished++;
    write_next(l, w);
}

static void write_send(writer *w)
{
    char key[32];
    snprintf(key, sizeof(key), "pay_%05d", w->key);
    pw_db_param p[] = {pw_db_text(key), pw_db_int8(100 + w->key)};
    assert_int_equal(pw_db_query(w->l->pool, NULL, &apply_payment, p, 2, written, w), PW_OK);
}

static void restart_thread(void *arg)
{
    load *l = arg;
    if (run_script("restart") != 0) {
        fprintf(stderr, "restart failed\n");
    }
    atomic_store(&l->restart_done, 1);
}

static void write_next(load *l, writer *w)
{
    if (l->next == KEYS / 3 && !l->restarted) {
        /* A third of the way in, restart the server under the running load. */
        l->restarted = 1;
        uv_thread_create(&l->restarter, restart_thread, l);
    }
    if (l->restarted && !atomic_load(&l->restart_done) && l->next < KEYS &&
        !uv_is_active((uv_handle_t *)&w->timer) && w->key != -1) {
        /* Until the restart is over, writes go out slowly, so some are always in flight while
         * the server is down, however slowly pg_ctl starts on a loaded machine (the remaining
         * keys would otherwise all be written before it stops the server). */
        w->key = -1;
        uv_timer_start(&w->timer, write_paced, 20, 0);
        return;
    }
    if (l->next >= KEYS) {
        uv_close((uv_handle_t *)&w->timer, timer_closed);
        if (l->finished == KEYS) {
            l->done = 1;
        }
        return;
    }
    w->key = l->next++;
    write_send(w);
}

static void test_db_restart_loses_nothing_and_applies_nothing_twice(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    load l = {.loop = &loop};
    pw_db_options o = {
        .conninfo = url, .max_connections = 4, .backoff_initial_ms = 50, .backoff_max_ms = 500};
    assert_int_equal(pw_db_pool_new(&l.pool, &loop, &o), PW_OK);
    for (int i = 0; i < CONCURRENCY; i++) {
        writer *w = calloc(1, sizeof(*w));
        w->l = &l;
        uv_timer_init(&loop, &w->timer);
        w->timer.data = w;
        write_next(&l, w);
    }
    uint64_t end = uv_now(&loop) + 60000;
    while (!(l.finished == KEYS) && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_thread_join(&l.restarter);
    assert_int_equal(l.finished, KEYS);
    printf("%d writes, %d UNAVAILABLE answers retried across the restart, %d found already "
           "applied\n",
           KEYS, l.unavailable, l.already_applied);
    assert_int_equal(l.other_errors, 0);
    for (int i = 0; i < KEYS; i++) {
        assert_int_equal(reported[i], 1);
    }
    /* The restart was felt, and the pool came back by itself. */
    assert_true(l.unavailable > 0);
    assert_int_equal(pw_db_pool_available(l.pool), 1);
    assert_int_equal(pw_test_db_scalar(url, "SELECT count(*) FROM payments"), KEYS);
    assert_int_equal(pw_test_db_scalar(url,
                                       "SELECT count(*) FROM payments WHERE amount_minor <> 100 + "
                                       "substr(idempotency_key, 5)::int"),
                     0);
    pw_db_pool_close(l.pool, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_restart_loses_nothing_and_applies_nothing_twice),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
