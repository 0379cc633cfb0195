/* grpc.health.v1.Health: statuses, watchers, NOT_SERVING on graceful shutdown. */
#include <stdlib.h>
#include <string.h>
#include <paywire/builtins.h>
#include "src/proto/grpc/health/v1/health.pw.h"
#include "pw_test.h"

typedef struct watch_log {
    int statuses[8];
    int count;
    int done;
    pw_status code;
} watch_log;

static void on_status(pw_client_call *c, const Grpc__Health__V1__HealthCheckResponse *r, void *ud)
{
    (void)c;
    watch_log *w = ud;
    if (w->count < 8) {
        w->statuses[w->count++] = (int)r->status;
    }
}

static void on_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    watch_log *w = ud;
    w->code = r->code;
    w->done = 1;
}

static const grpc_health_v1_health_watch_client_ops watch_ops = {
    .on_message = on_status,
    .on_done = on_done,
};

static void wait_count(uv_loop_t *loop, watch_log *w, int n)
{
    uint64_t end = uv_now(loop) + 3000;
    while (w->count < n && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    assert_int_equal(w->count, n);
}

static int closed;
static void server_closed(pw_server *s, void *ud)
{
    (void)s;
    (void)ud;
    closed = 1;
}

static void test_health_watch_sees_changes_and_shutdown(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *server;
    assert_int_equal(pw_server_new(&server, &loop, NULL), PW_OK);
    pw_health *health;
    assert_int_equal(pw_health_enable(server, &health), PW_OK);
    int port;
    assert_int_equal(pw_server_listen(server, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);

    /* Check: a service that set nothing is unknown; after set, it is served. */
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)"payments.Ledger";
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    char *msg = NULL;
    assert_int_equal(grpc_health_v1_health_check_blocking(ch, &req, NULL, &resp, &msg),
                     PW_NOT_FOUND);
    pw_free(msg);
    assert_int_equal(pw_health_set(health, "payments.Ledger", PW_HEALTH_NOT_SERVING), PW_OK);

    /* Watch: current status first, then every change. */
    watch_log w = {0};
    assert_int_equal(grpc_health_v1_health_watch_start(ch, &req, NULL, &watch_ops, &w, NULL),
                     PW_OK);
    wait_count(&loop, &w, 1);
    assert_int_equal(w.statuses[0], PW_HEALTH_NOT_SERVING);
    pw_health_set(health, "payments.Ledger", PW_HEALTH_SERVING);
    wait_count(&loop, &w, 2);
    assert_int_equal(w.statuses[1], PW_HEALTH_SERVING);
    assert_int_equal(grpc_health_v1_health_check_blocking(ch, &req, NULL, &resp, NULL), PW_OK);
    assert_int_equal(resp->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    pw_protobuf_free(&resp->base);

    /* Graceful shutdown: NOT_SERVING first, then the stream ends after the grace. */
    closed = 0;
    pw_server_shutdown(server, 200, server_closed, NULL);
    wait_count(&loop, &w, 3);
    assert_int_equal(w.statuses[2], PW_HEALTH_NOT_SERVING);
    pw_test_run_until(&loop, &w.done, 3000);
    pw_test_run_until(&loop, &closed, 3000);
    pw_test_shutdown(&loop, NULL, ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_watch_sees_changes_and_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
