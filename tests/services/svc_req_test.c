/*
 * svc_req: handlers on fibers against the real PostgreSQL, served and called
 * on one loop. Each case is one request of grpc.testing's UnaryCall whose
 * response_size picks what the handler does: answer from a query; overrun the
 * deadline inside a query (the query is cancelled on the server, the call
 * ends DEADLINE_EXCEEDED); fail after writing in a transaction (nothing
 * stays); end without an answer (INTERNAL); a pipelined statement that fails
 * (the transaction rolls back); a serialization failure (the body runs again
 * and commits once); a handler that suspends until a timer resumes it
 * (svc_suspend/svc_resume: work it does not own answers for it).
 */
#include <stdio.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_req.h"
#include "src/proto/grpc/testing/test.pw.h"

typedef Grpc__Testing__SimpleRequest SimpleRequest;

enum {
    CASE_QUERY = 1,
    CASE_SLEEP,
    CASE_FAIL_AFTER_WRITE,
    CASE_NO_ANSWER,
    CASE_PIPE_FAILS,
    CASE_RETRY,
    CASE_SUSPEND,
    CASE_CALL,
    CASE_CALL_SLEEP
};

static char db_url[512];

static const pw_db_stmt q_count = {"t_count", "SELECT count(*)::text AS n FROM notes", 0, {0}};
static const pw_db_stmt q_sleep = {"t_sleep", "SELECT pg_sleep(5)", 0, {0}};
static const pw_db_stmt q_insert = {
    "t_insert", "INSERT INTO notes (body) VALUES ($1)", 1, {PW_DB_TEXT}};
static const pw_db_stmt q_bad = {"t_bad", "INSERT INTO notes (body) VALUES (NULL)", 0, {0}};
/* Raises 40001 on every odd call: the first attempt fails, the second commits. */
static const pw_db_stmt q_flaky = {"t_flaky", "SELECT flaky() AS ok", 0, {0}};

/* How many times the retried body started (the test's own counter, not the handler's state). */
static int retry_runs;

static void reply_count(svc_req *r, const pw_db_result *res)
{
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    resp.username = svc_text(svc_row_at(r, res, 0), "n");
    svc_reply(r, &resp.base);
}

static void write_then_fail(svc_req *r, const void *arg)
{
    (void)arg;
    pw_db_param p = pw_db_text("half-written");
    svc_tx_query(r, &q_insert, &p, 1);
    svc_fail(r, PW_FAILED_PRECONDITION, "changed my mind");
}

static void pipe_fails(svc_req *r, const void *arg)
{
    (void)arg;
    pw_db_param p = pw_db_text("before the bad one");
    svc_tx_query(r, &q_insert, &p, 1);
    svc_tx_pipe(r, &q_bad, NULL, 0);
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    svc_commit(r, &resp.base, NULL);
}

static void retried(svc_req *r, const void *arg)
{
    (void)arg;
    retry_runs++;
    pw_db_param p = pw_db_text("retried");
    svc_tx_query(r, &q_insert, &p, 1);
    svc_tx_query(r, &q_flaky, NULL, 0);
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    svc_commit(r, &resp.base, NULL);
}

/* The suspended handler and what its resumer hands it: the resumer is a timer on the loop. */
static svc_req *parked;
static const char *handed;

static void wake_parked(uv_timer_t *t)
{
    svc_req *r = parked;
    parked = NULL;
    handed = "woken by the timer";
    uv_close((uv_handle_t *)t, NULL);
    svc_resume(r);
}

static void suspend_until_timer(svc_req *r)
{
    static uv_timer_t timer;
    uv_timer_init(pw_call_loop(r->call), &timer);
    uv_timer_start(&timer, wake_parked, 20, 0);
    parked = r;
    handed = NULL;
    svc_suspend(r);
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    resp.username = svc_strdup(r, handed);
    svc_reply(r, &resp.base);
}

/* Calls this same server (the channel is the app's service state) with another case. */
static void call_other(svc_req *r, int which)
{
    SimpleRequest inner = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    inner.response_size = which;
    svc_answer a = svc_call(r, r->app->service, "/grpc.testing.TestService/UnaryCall", &inner.base,
                            &grpc__testing__simple_response__descriptor, 0);
    if (a.code != PW_OK) {
        svc_fail_call(r, &a, "the inner call");
    }
    const Grpc__Testing__SimpleResponse *got = (const void *)a.response;
    Grpc__Testing__SimpleResponse resp = GRPC__TESTING__SIMPLE_RESPONSE__INIT;
    char name[64];
    snprintf(name, sizeof(name), "inner said %s", got->username);
    resp.username = svc_strdup(r, name);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(unary, SimpleRequest)
{
    switch (req->response_size) {
    case CASE_QUERY:
        reply_count(r, svc_query(r, &q_count, NULL, 0));
        break;
    case CASE_SLEEP:
        svc_query(r, &q_sleep, NULL, 0);
        svc_fail(r, PW_INTERNAL, "the sleep should have been cancelled");
    case CASE_FAIL_AFTER_WRITE:
        svc_transaction(r, write_then_fail, NULL);
        break;
    case CASE_NO_ANSWER:
        break;
    case CASE_PIPE_FAILS:
        svc_transaction(r, pipe_fails, NULL);
        break;
    case CASE_RETRY:
        svc_transaction(r, retried, NULL);
        break;
    case CASE_SUSPEND:
        suspend_until_timer(r);
        break;
    case CASE_CALL:
        call_other(r, CASE_QUERY);
        break;
    case CASE_CALL_SLEEP:
        call_other(r, CASE_SLEEP);
        break;
    default:
        svc_violation(r, "response_size", "a test case number");
        svc_check(r);
    }
}

typedef struct fixture {
    uv_loop_t loop;
    svc_app app;
    pw_server *server;
    pw_channel *channel;
    grpc_testing_test_service_handlers handlers;
} fixture;

/* One case; the response's username (when user is not NULL) into user. */
static pw_status call_case_user(fixture *f, int which, int64_t timeout_ms, char *msg, size_t cap,
                                char *user, size_t user_cap)
{
    SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    req.response_size = which;
    uint8_t buf[64];
    size_t len = protobuf_c_message_pack(&req.base, buf);
    pw_call_options o = {.timeout_ms = timeout_ms};
    pw_test_call res;
    memset(&res, 0, sizeof(res));
    pw_status rv = pw_test_call_run(&f->loop, f->channel, "/grpc.testing.TestService/UnaryCall", &o,
                                    buf, len, &res);
    snprintf(msg, cap, "%s", res.message);
    if (user != NULL) {
        Grpc__Testing__SimpleResponse *resp = grpc__testing__simple_response__unpack(
            pw_protobuf_allocator(), res.last.len, res.last.data);
        snprintf(user, user_cap, "%s", resp && resp->username ? resp->username : "");
        grpc__testing__simple_response__free_unpacked(resp, pw_protobuf_allocator());
    }
    pw_test_call_reset(&res);
    return rv;
}

static pw_status call_case(fixture *f, int which, int64_t timeout_ms, char *msg, size_t cap)
{
    return call_case_user(f, which, timeout_ms, msg, cap, NULL, 0);
}

static void pool_closed(pw_db_pool *pool, void *ud)
{
    (void)pool;
    (void)ud;
}

static void test_svc_req_cases(void **state)
{
    (void)state;
    pw_test_db_exec(db_url, "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);"
                            "CREATE SEQUENCE flaky_calls;"
                            "CREATE FUNCTION flaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN"
                            " IF nextval('flaky_calls') % 2 = 1 THEN RAISE EXCEPTION 'try again'"
                            " USING ERRCODE = '40001'; END IF; RETURN 1; END $$;");
    static fixture f;
    uv_loop_init(&f.loop);
    pw_db_options dbo = {.conninfo = db_url, .max_connections = 2};
    assert_int_equal(pw_db_pool_new(&f.app.pool, &f.loop, &dbo), PW_OK);
    assert_int_equal(svc_fibers_new(&f.app.fibers, 0), PW_OK);
    f.app.domain = "test.paywire";
    f.app.service = NULL; /* the channel, once it exists (call_other) */
    f.handlers.unary_call = unary_h;
    assert_int_equal(pw_server_new(&f.server, &f.loop, NULL), PW_OK);
    assert_int_equal(grpc_testing_test_service_register(f.server, &f.handlers, &f.app), PW_OK);
    int port = 0;
    assert_int_equal(pw_server_listen(f.server, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(pw_channel_new(&f.channel, &f.loop, target, NULL), PW_OK);
    f.app.service = f.channel;
    char msg[512];

    assert_int_equal(call_case(&f, CASE_QUERY, 0, msg, sizeof(msg)), PW_OK);

    uint64_t t0 = uv_hrtime();
    assert_int_equal(call_case(&f, CASE_SLEEP, 300, msg, sizeof(msg)), PW_DEADLINE_EXCEEDED);
    assert_true((uv_hrtime() - t0) / 1000000 < 3000);
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM pg_stat_activity WHERE query ="
                                            " 'SELECT pg_sleep(5)' AND state = 'active'",
                                            0, 2000),
                     0);

    assert_int_equal(call_case(&f, CASE_FAIL_AFTER_WRITE, 0, msg, sizeof(msg)),
                     PW_FAILED_PRECONDITION);
    assert_string_equal(msg, "changed my mind");
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM notes"), 0);

    assert_int_equal(call_case(&f, CASE_NO_ANSWER, 0, msg, sizeof(msg)), PW_INTERNAL);
    assert_non_null(strstr(msg, "ended without an answer"));

    assert_int_not_equal(call_case(&f, CASE_PIPE_FAILS, 0, msg, sizeof(msg)), PW_OK);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM notes"), 0);

    retry_runs = 0;
    assert_int_equal(call_case(&f, CASE_RETRY, 0, msg, sizeof(msg)), PW_OK);
    assert_int_equal(retry_runs, 2);
    assert_int_equal(pw_test_db_scalar(db_url, "SELECT count(*) FROM notes WHERE body = 'retried'"),
                     1);

    char user[64];
    assert_int_equal(call_case_user(&f, CASE_SUSPEND, 0, msg, sizeof(msg), user, sizeof(user)),
                     PW_OK);
    assert_string_equal(user, "woken by the timer");
    assert_null(parked);

    /* Another service's answer, waited for on the fiber; its deadline is the caller's. */
    assert_int_equal(call_case_user(&f, CASE_CALL, 0, msg, sizeof(msg), user, sizeof(user)), PW_OK);
    assert_string_equal(user, "inner said 1");
    t0 = uv_hrtime();
    assert_int_equal(call_case(&f, CASE_CALL_SLEEP, 300, msg, sizeof(msg)), PW_DEADLINE_EXCEEDED);
    assert_true((uv_hrtime() - t0) / 1000000 < 3000);
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM pg_stat_activity WHERE query ="
                                            " 'SELECT pg_sleep(5)' AND state = 'active'",
                                            0, 2000),
                     0);

    assert_int_equal(call_case(&f, 99, 0, msg, sizeof(msg)), PW_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "response_size"));

    assert_int_equal(svc_fibers_active(f.app.fibers), 0);
    pw_db_pool_close(f.app.pool, pool_closed, NULL);
    pw_test_shutdown(&f.loop, f.server, f.channel);
    svc_fibers_free(f.app.fibers);
}

int main(void)
{
    pw_test_db_create("svc_req", db_url, sizeof(db_url));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svc_req_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
