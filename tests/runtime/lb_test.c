/* Load balancing over a target's addresses: round_robin, pick_first, dns:///. */
#include <stdio.h>
#include <stdlib.h>
#include <netdb.h>
#include <string.h>
#include <paywire/paywire.h>
#include "pw_test.h"

typedef struct backend {
    pw_server *server;
    int port;
    int served;
    int v6;
} backend;

static void hit(pw_call *call, void *ud)
{
    backend *b = ud;
    b->served++;
    if (strncmp(pw_call_peer(call)->address, "[", 1) == 0) {
        b->v6++;
    }
    pw_call_send_bytes(call, pw_slice_make("hit", 3));
    pw_call_finish(call, PW_OK, NULL);
}

static void backend_start(uv_loop_t *loop, backend *b, const char *address)
{
    assert_int_equal(pw_server_new(&b->server, loop, NULL), PW_OK);
    pw_method m = {
        .path = "/test.Svc/Hit", .kind = PW_METHOD_UNARY, .handler = hit, .user_data = b};
    pw_server_add_method(b->server, &m);
    assert_int_equal(pw_server_listen(b->server, address, NULL, &b->port), PW_OK);
}

static void backend_stop(uv_loop_t *loop, backend *b)
{
    pw_server_close(b->server, NULL, NULL);
    b->server = NULL;
    for (int i = 0; i < 20; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
    }
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(loop);
    }
}

static int call_n(uv_loop_t *loop, pw_channel *ch, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        pw_test_call r = {0};
        pw_call_options o = {.timeout_ms = 5000, .wait_for_ready = 1};
        ok += pw_test_call_run(loop, ch, "/test.Svc/Hit", &o, "", 0, &r) == PW_OK;
        pw_test_call_reset(&r);
    }
    return ok;
}

static pw_channel *list_channel(uv_loop_t *loop, backend *b, int n, pw_lb_policy lb, int dead_first)
{
    char target[256] = "ipv4:";
    if (dead_first) {
        strcat(target, "127.0.0.1:1,");
    }
    for (int i = 0; i < n; i++) {
        char one[32];
        snprintf(one, sizeof(one), "%s127.0.0.1:%d", i ? "," : "", b[i].port);
        strcat(target, one);
    }
    pw_channel_options o = {.lb_policy = lb, .backoff_initial_ms = 50};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, loop, target, &o), PW_OK);
    return ch;
}

static void test_lb_round_robin_across_three_backends(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    backend b[3] = {0};
    for (int i = 0; i < 3; i++) {
        backend_start(&loop, &b[i], "127.0.0.1:0");
    }
    pw_channel *ch = list_channel(&loop, b, 3, PW_LB_ROUND_ROBIN, 0);
    assert_int_equal(call_n(&loop, ch, 1), 1); /* connects to all three */
    run_for(&loop, 100);
    for (int i = 0; i < 3; i++) {
        b[i].served = 0;
    }
    assert_int_equal(call_n(&loop, ch, 30), 30);
    printf("round_robin: %d / %d / %d\n", b[0].served, b[1].served, b[2].served);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i].served, 10);
    }
    /* One backend goes away: the others take every call. */
    backend_stop(&loop, &b[1]);
    b[0].served = b[2].served = 0;
    assert_int_equal(call_n(&loop, ch, 20), 20);
    assert_int_equal(b[0].served + b[2].served, 20);
    assert_true(b[0].served > 0 && b[2].served > 0);
    pw_channel_close(ch, NULL, NULL);
    pw_server_close(b[0].server, NULL, NULL);
    pw_server_close(b[2].server, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

static void test_lb_pick_first_in_order_and_fails_over(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    backend b[2] = {0};
    backend_start(&loop, &b[0], "127.0.0.1:0");
    backend_start(&loop, &b[1], "127.0.0.1:0");
    pw_channel *ch = list_channel(&loop, b, 2, PW_LB_PICK_FIRST, 0);
    assert_int_equal(call_n(&loop, ch, 10), 10);
    assert_int_equal(b[0].served, 10);
    assert_int_equal(b[1].served, 0);
    backend_stop(&loop, &b[0]);
    assert_int_equal(call_n(&loop, ch, 5), 5);
    assert_int_equal(b[1].served, 5);
    pw_channel_close(ch, NULL, NULL);
    pw_server_close(b[1].server, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

static void test_lb_pick_first_skips_a_dead_address(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    backend b = {0};
    backend_start(&loop, &b, "127.0.0.1:0");
    pw_channel *ch = list_channel(&loop, &b, 1, PW_LB_PICK_FIRST, 1);
    assert_int_equal(call_n(&loop, ch, 3), 3);
    assert_int_equal(b.served, 3);
    pw_channel_close(ch, NULL, NULL);
    pw_server_close(b.server, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

static void test_lb_dns_resolves_every_address(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    backend b = {0};
    backend_start(&loop, &b, "127.0.0.1:0");
    char v6[64];
    snprintf(v6, sizeof(v6), "[::1]:%d", b.port);
    int have_v6 = pw_server_listen(b.server, v6, NULL, NULL) == PW_OK;
    char target[64];
    snprintf(target, sizeof(target), "dns:///localhost:%d", b.port);
    pw_channel_options o = {.lb_policy = PW_LB_ROUND_ROBIN};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, &loop, target, &o), PW_OK);
    assert_int_equal(call_n(&loop, ch, 1), 1);
    run_for(&loop, 100);
    assert_int_equal(call_n(&loop, ch, 20), 20);
    /* Does this machine's localhost name both 127.0.0.1 and ::1? */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int families = 0;
    if (getaddrinfo("localhost", NULL, &hints, &res) == 0) {
        for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
            families |= a->ai_family == AF_INET6 ? 2 : (a->ai_family == AF_INET ? 1 : 0);
        }
        freeaddrinfo(res);
    }
    printf("dns: %d of %d calls over IPv6 (localhost families %d)\n", b.v6, b.served, families);
    if (have_v6 && families == 3) {
        /* Both addresses resolved: round_robin uses both. */
        assert_true(b.v6 > 0 && b.v6 < b.served);
    } else if (families == 1) {
        assert_int_equal(b.v6, 0);
    }
    pw_channel_close(ch, NULL, NULL);
    pw_server_close(b.server, NULL, NULL);
    pw_test_loop_finish(&loop, 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lb_round_robin_across_three_backends),
        cmocka_unit_test(test_lb_pick_first_in_order_and_fails_over),
        cmocka_unit_test(test_lb_pick_first_skips_a_dead_address),
        cmocka_unit_test(test_lb_dns_resolves_every_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
