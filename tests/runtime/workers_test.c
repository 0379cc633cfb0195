/* Worker loops sharing a port (SO_REUSEPORT), and offloading work from a handler. */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <paywire/paywire.h>
#include "pw_test.h"

/* ---- workers ---- */

typedef struct shared {
    int port;
    atomic_int served[2];
    pw_server *servers[2];
} shared;

static void count(pw_call *call, void *ud)
{
    atomic_fetch_add((atomic_int *)ud, 1);
    pw_call_send_bytes(call, pw_slice_make("w", 1));
    pw_call_finish(call, PW_OK, NULL);
}

static void worker_start(uv_loop_t *loop, int index, void *ud)
{
    shared *sh = ud;
    pw_server_options o = {.reuse_port = 1};
    assert_int_equal(pw_server_new(&sh->servers[index], loop, &o), PW_OK);
    pw_method m = {.path = "/test.Svc/Count",
                   .kind = PW_METHOD_UNARY,
                   .handler = count,
                   .user_data = &sh->served[index]};
    pw_server_add_method(sh->servers[index], &m);
    char address[64];
    snprintf(address, sizeof(address), "127.0.0.1:%d", sh->port);
    assert_int_equal(pw_server_listen(sh->servers[index], address, NULL, NULL), PW_OK);
}

static void worker_stop(uv_loop_t *loop, int index, void *ud)
{
    (void)loop;
    shared *sh = ud;
    pw_server_shutdown(sh->servers[index], 1000, NULL, NULL);
}

/* Reserves a port: a bound (not listening) SO_REUSEPORT socket held by the test. */
static int reserve_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *fd_out = fd;
    return ntohs(a.sin_port);
}

static void test_workers_share_a_port_and_split_connections(void **state)
{
    (void)state;
    shared sh = {0};
    int holder;
    sh.port = reserve_port(&holder);
    pw_workers *ws;
    assert_int_equal(pw_workers_start(&ws, 2, worker_start, worker_stop, &sh), PW_OK);
    assert_int_equal(pw_workers_count(ws), 2);

    uv_loop_t loop;
    uv_loop_init(&loop);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", sh.port);
    enum { N = 24 };
    for (int i = 0; i < N; i++) {
        /* A new channel per call: a new connection, hashed to either worker. */
        pw_channel *ch;
        assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
        pw_test_call r = {0};
        assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Count", NULL, "", 0, &r), PW_OK);
        pw_test_call_reset(&r);
        pw_channel_close(ch, NULL, NULL);
    }
    pw_test_loop_finish(&loop, 5000);
    int a = atomic_load(&sh.served[0]), b = atomic_load(&sh.served[1]);
    printf("workers: worker 0 served %d, worker 1 served %d of %d connections\n", a, b, N);
    assert_int_equal(a + b, N);
    assert_true(a > 0 && b > 0);
    pw_workers_stop(ws);
    pw_workers_stop(ws); /* harmless twice */
    assert_int_equal(pw_workers_join(ws), PW_OK);
    close(holder);
}

/* ---- offload ---- */

typedef struct job {
    uint64_t n;
    uint64_t result;
    unsigned sleep_ms;
} job;

static void job_work(void *ud)
{
    job *j = ud;
    if (j->sleep_ms) {
        uv_sleep(j->sleep_ms);
    }
    uint64_t x = 0;
    for (uint64_t i = 1; i <= j->n; i++) {
        x += i * i;
    }
    j->result = x;
}

static int offload_done_status = -1;

static void job_done(pw_call *call, pw_status st, void *ud)
{
    job *j = ud;
    offload_done_status = st;
    if (st != PW_OK) {
        pw_call_finish(call, st, "offloaded work was cancelled");
        return;
    }
    char text[32];
    snprintf(text, sizeof(text), "%llu", (unsigned long long)j->result);
    pw_call_send_bytes(call, pw_slice_make(text, strlen(text)));
    pw_call_finish(call, PW_OK, NULL);
}

static void heavy(pw_call *call, void *ud)
{
    job *j = pw_call_alloc(call, sizeof(*j));
    j->n = 1000;
    j->sleep_ms = (unsigned)(uintptr_t)ud;
    assert_int_equal(pw_call_offload(call, job_work, job_done, j), PW_OK);
}

static void offload_run(unsigned sleep_ms, int64_t timeout_ms, pw_status want)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_server *s;
    assert_int_equal(pw_server_new(&s, &loop, NULL), PW_OK);
    pw_method m = {.path = "/test.Svc/Heavy",
                   .kind = PW_METHOD_UNARY,
                   .handler = heavy,
                   .user_data = (void *)(uintptr_t)sleep_ms};
    pw_server_add_method(s, &m);
    int port;
    assert_int_equal(pw_server_listen(s, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, NULL), PW_OK);
    pw_call_options opts = {.timeout_ms = timeout_ms};
    pw_test_call r = {0};
    offload_done_status = -1;
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Heavy", &opts, "", 0, &r), want);
    if (want == PW_OK) {
        assert_memory_equal(r.last.data, "333833500", 9); /* sum of i^2, i = 1..1000 */
    }
    /* done always runs, also after a cancel, and the call is freed only then. */
    while (offload_done_status == -1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(offload_done_status, want == PW_OK ? PW_OK : PW_CANCELLED);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, s, ch);
}

static void test_workers_offload_answers_from_the_pool(void **state)
{
    (void)state;
    offload_run(0, 0, PW_OK);
}

static void test_workers_offload_outlives_a_cancelled_call(void **state)
{
    (void)state;
    offload_run(300, 50, PW_DEADLINE_EXCEEDED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_share_a_port_and_split_connections),
        cmocka_unit_test(test_workers_offload_answers_from_the_pool),
        cmocka_unit_test(test_workers_offload_outlives_a_cancelled_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
