/*
 * pw_db_listener (runtime/db/listen.c) against the local PostgreSQL cluster:
 * it reports when its LISTEN is in place, delivers each NOTIFY of its
 * channel with the payload and none of another channel, comes back by
 * itself after its backend was terminated (reporting it, so the owner
 * re-reads), and leaves no handle behind once closed.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/db.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"

static char url[512];

typedef struct seen {
    int listening;
    int notes;
    char channel[64];
    char payload[64];
} seen;

static void noted(pw_db_listener *l, const char *channel, const char *payload, void *ud)
{
    (void)l;
    seen *s = ud;
    if (payload == NULL) {
        s->listening++;
        return;
    }
    s->notes++;
    snprintf(s->channel, sizeof(s->channel), "%s", channel);
    snprintf(s->payload, sizeof(s->payload), "%s", payload);
}

/* Runs loop until *counter reaches want (10 s); fails otherwise. */
static void run_until(uv_loop_t *loop, const int *counter, int want)
{
    uint64_t end = uv_hrtime() + 10000000000ull;
    while (*counter < want && uv_hrtime() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
    }
    assert_int_equal(*counter, want);
}

static void listener_closed(pw_db_listener *l, void *ud)
{
    assert_non_null(l);
    (*(int *)ud)++;
}

static void test_db_listener_notifies_and_reconnects(void **state)
{
    (void)state;
    pw_test_db_create("db_listen_test", url, sizeof(url));
    uv_loop_t loop;
    uv_loop_init(&loop);
    seen s = {0};
    pw_db_listener *l;
    assert_int_equal(pw_db_listener_new(&l, &loop, url, "payment_changes", noted, &s), PW_OK);
    assert_int_equal(s.listening, 0); /* never inside the call */
    run_until(&loop, &s.listening, 1);
    pw_test_db_exec(url, "NOTIFY other_channel, 'nope'; NOTIFY payment_changes, 'pay_1'");
    run_until(&loop, &s.notes, 1);
    assert_string_equal(s.channel, "payment_changes");
    assert_string_equal(s.payload, "pay_1");
    /* Its backend killed: it reconnects, says so, and hears the next one. */
    pw_test_db_exec(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'paywire-listen'");
    run_until(&loop, &s.listening, 2);
    pw_test_db_exec(url, "SELECT pg_notify('payment_changes', 'pay_2')");
    run_until(&loop, &s.notes, 2);
    assert_string_equal(s.payload, "pay_2");
    int closed = 0;
    pw_db_listener_close(l, listener_closed, &closed);
    pw_db_listener_close(l, listener_closed, &closed); /* only the first call counts */
    assert_int_equal(closed, 0);                       /* never inside the call */
    pw_test_db_exec(url, "NOTIFY payment_changes, 'pay_3'");
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(s.notes, 2);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_db_listener_rejects_bad_arguments(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_db_listener *l;
    seen s = {0};
    assert_int_equal(pw_db_listener_new(&l, &loop, NULL, "c", noted, &s), PW_INVALID_ARGUMENT);
    assert_null(l);
    assert_int_equal(pw_db_listener_new(&l, &loop, "dbname=x", "", noted, &s), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_db_listener_new(&l, &loop, "dbname=x", "c", NULL, &s), PW_INVALID_ARGUMENT);
    pw_db_listener_close(NULL, NULL, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_listener_notifies_and_reconnects),
        cmocka_unit_test(test_db_listener_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
