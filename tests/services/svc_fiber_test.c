/*
 * svc_fiber: fibers suspended and resumed from loop callbacks, many at once,
 * in any order, nested, with their stacks reused and used deeply; run under
 * ASan/UBSan in CI, which checks the switch annotations.
 */
#include <string.h>
#include <uv.h>
#include "pw_test.h"
#include "svc_fiber.h"

typedef struct waiter {
    svc_fiber *fiber;
    uv_timer_t timer;
    int steps;
    int *log;
    int *log_len;
    int id;
} waiter;

static void timer_fired(uv_timer_t *t)
{
    waiter *w = t->data;
    svc_fiber_resume(w->fiber);
}

/* A fiber that waits for its timer `steps` times, noting each wake-up. */
static void sleeper(svc_fiber *f, void *arg)
{
    waiter *w = arg;
    w->fiber = f;
    for (int i = 0; i < w->steps; i++) {
        uv_timer_start(&w->timer, timer_fired, (uint64_t)(w->id % 3), 0);
        svc_fiber_suspend(f);
        w->log[(*w->log_len)++] = w->id;
    }
}

static void closed(uv_handle_t *h)
{
    (void)h;
}

static void test_svc_fiber_many_suspended_at_once(void **state)
{
    (void)state;
    enum { N = 300, STEPS = 4 };
    uv_loop_t loop;
    uv_loop_init(&loop);
    svc_fibers *pool;
    assert_int_equal(svc_fibers_new(&pool, 0), PW_OK);
    static waiter ws[N];
    static int log[N * STEPS];
    int log_len = 0;
    for (int i = 0; i < N; i++) {
        ws[i] = (waiter){.steps = STEPS, .log = log, .log_len = &log_len, .id = i};
        uv_timer_init(&loop, &ws[i].timer);
        ws[i].timer.data = &ws[i];
        assert_int_equal(svc_fiber_spawn(pool, sleeper, &ws[i]), PW_OK);
    }
    assert_int_equal(svc_fibers_active(pool), N);
    assert_int_equal(log_len, 0); /* every one is waiting */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(svc_fibers_active(pool), 0);
    assert_int_equal(log_len, N * STEPS);
    int seen[N] = {0};
    for (int i = 0; i < log_len; i++) {
        seen[log[i]]++;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], STEPS);
        uv_close((uv_handle_t *)&ws[i].timer, closed);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    svc_fibers_free(pool);
}

/* Uses most of a 128 KiB stack, then returns a checksum through arg. */
static void deep(svc_fiber *f, void *arg)
{
    (void)f;
    volatile unsigned char big[96 * 1024];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (unsigned char)i;
    }
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof(big); i += 4096) {
        sum += big[i];
    }
    *(unsigned *)arg = sum + 1;
}

static void test_svc_fiber_deep_stack_and_reuse(void **state)
{
    (void)state;
    svc_fibers *pool;
    assert_int_equal(svc_fibers_new(&pool, 256 * 1024), PW_OK);
    for (int round = 0; round < 50; round++) {
        unsigned sum = 0;
        assert_int_equal(svc_fiber_spawn(pool, deep, &sum), PW_OK);
        assert_true(sum > 0); /* it ran to its end inside spawn */
    }
    assert_int_equal(svc_fibers_active(pool), 0);
    svc_fibers_free(pool);
}

typedef struct pair {
    svc_fibers *pool;
    svc_fiber *inner;
    int trace[8];
    int n;
} pair;

static void inner_fn(svc_fiber *f, void *arg)
{
    pair *p = arg;
    p->inner = f;
    p->trace[p->n++] = 2;
    svc_fiber_suspend(f);
    p->trace[p->n++] = 4;
}

static void outer_fn(svc_fiber *f, void *arg)
{
    pair *p = arg;
    p->trace[p->n++] = 1;
    assert_int_equal(svc_fiber_spawn(p->pool, inner_fn, p), PW_OK);
    p->trace[p->n++] = 3;
    svc_fiber_resume(p->inner); /* a fiber resumes another; it comes back here */
    p->trace[p->n++] = 5;
    (void)f;
}

static void test_svc_fiber_nested(void **state)
{
    (void)state;
    pair p = {0};
    assert_int_equal(svc_fibers_new(&p.pool, 0), PW_OK);
    assert_int_equal(svc_fiber_spawn(p.pool, outer_fn, &p), PW_OK);
    assert_int_equal(p.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p.trace[i], i + 1);
    }
    assert_int_equal(svc_fibers_active(p.pool), 0);
    svc_fibers_free(p.pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svc_fiber_many_suspended_at_once),
        cmocka_unit_test(test_svc_fiber_deep_stack_and_reuse),
        cmocka_unit_test(test_svc_fiber_nested),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
