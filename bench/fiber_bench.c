/*
 * fiber_bench: what one wait costs a handler in the two styles of issue 13,
 * in one process, printed side by side (docs/performance.md, "Service
 * framework"). Old style: the callback that delivers a result calls the
 * handler's next step through a function pointer. New style: it resumes the
 * handler's fiber (svc_fiber_resume), which runs to its next wait and
 * suspends (svc_fiber_suspend): one round trip of two context switches.
 *   call         a continuation through a function pointer, in a tight loop
 *   fiber        a resume/suspend round trip, in a tight loop
 *   idle-call    one loop turn (uv_idle, so uv_run polls with no timeout) that
 *                calls the continuation: an old-style wait with its loop turn
 *   idle-fiber   one loop turn that resumes the fiber: a new-style wait
 *   alloc        malloc + free of a 512-byte request state (an old-style
 *                request's own state) and one continuation call
 *   spawn        svc_fiber_spawn of a fiber that returns at once: start and
 *                end of a request's fiber on a pooled stack
 *   spawn-cold   the same on a fresh pool of 256 fibers each suspended once:
 *                mmap, guard page, first touch and munmap of every stack
 *                (N / 20 operations)
 *   sigmask      two rt_sigprocmask system calls that change nothing: what
 *                glibc's swapcontext adds to each switch of a round trip
 * Each test runs ROUNDS times; it prints the median and the minimum ns per
 * operation and the new/old ratios.
 *   paywire-fiber-bench [N] [TEST]   (N operations per round, default 200000;
 *                                     TEST runs one test once, for perf/callgrind)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "svc_fiber.h"

#define ROUNDS     5
#define COLD_BATCH 256

typedef struct bench {
    uint64_t n;
    uint64_t done;
    svc_fibers *pool;
    svc_fiber *fiber;
    uv_loop_t loop;
    uv_idle_t idle;
} bench;

/* The "next step" of an old-style handler; volatile so no call is folded away. */
static void step(bench *b)
{
    b->done++;
}
static void (*volatile step_fn)(bench *) = step;

static void run_call(bench *b)
{
    while (b->done < b->n) {
        step_fn(b);
    }
}

/* A new-style handler that waits n times, one step after each wait. */
static void waiter(svc_fiber *f, void *arg)
{
    bench *b = arg;
    b->fiber = f;
    for (;;) {
        step_fn(b);
        if (b->done >= b->n) {
            return;
        }
        svc_fiber_suspend(f);
    }
}

static void run_fiber(bench *b)
{
    PW_ASSERT(svc_fiber_spawn(b->pool, waiter, b) == PW_OK);
    while (b->done < b->n) {
        svc_fiber_resume(b->fiber);
    }
}

static void idle_call_cb(uv_idle_t *h)
{
    bench *b = h->data;
    step_fn(b);
    if (b->done >= b->n) {
        uv_idle_stop(h);
    }
}

static void idle_fiber_cb(uv_idle_t *h)
{
    bench *b = h->data;
    svc_fiber_resume(b->fiber);
    if (b->done >= b->n) {
        uv_idle_stop(h);
    }
}

static void run_idle(bench *b, uv_idle_cb cb)
{
    uv_idle_start(&b->idle, cb);
    uv_run(&b->loop, UV_RUN_DEFAULT);
}

static void run_idle_call(bench *b)
{
    run_idle(b, idle_call_cb);
}

static void run_idle_fiber(bench *b)
{
    /* The first step runs inside spawn, like a handler's code before its first wait. */
    PW_ASSERT(svc_fiber_spawn(b->pool, waiter, b) == PW_OK);
    if (b->done < b->n) {
        run_idle(b, idle_fiber_cb);
    }
}

static void run_alloc(bench *b)
{
    while (b->done < b->n) {
        void *volatile state = pw_malloc(512);
        PW_ASSERT(state != NULL);
        step_fn(b);
        pw_free(state);
    }
}

static void once(svc_fiber *f, void *arg)
{
    (void)f;
    step_fn(arg);
}

static void run_spawn(bench *b)
{
    while (b->done < b->n) {
        PW_ASSERT(svc_fiber_spawn(b->pool, once, b) == PW_OK);
    }
}

/* Suspends once, so COLD_BATCH of them are alive at a time, each on its own stack. */
static void parked(svc_fiber *f, void *arg)
{
    svc_fiber **slot = arg;
    *slot = f;
    svc_fiber_suspend(f);
}

static void run_spawn_cold(bench *b)
{
    svc_fiber *live[COLD_BATCH];
    while (b->done < b->n) {
        svc_fibers *pool;
        PW_ASSERT(svc_fibers_new(&pool, 0) == PW_OK);
        uint64_t k = b->n - b->done < COLD_BATCH ? b->n - b->done : COLD_BATCH;
        for (uint64_t i = 0; i < k; i++) {
            PW_ASSERT(svc_fiber_spawn(pool, parked, &live[i]) == PW_OK);
        }
        for (uint64_t i = 0; i < k; i++) {
            svc_fiber_resume(live[i]);
        }
        svc_fibers_free(pool);
        b->done += k;
    }
}

static void run_sigmask(bench *b)
{
    sigset_t cur;
    PW_ASSERT(sigprocmask(SIG_SETMASK, NULL, &cur) == 0);
    while (b->done < b->n) {
        sigprocmask(SIG_SETMASK, &cur, NULL);
        sigprocmask(SIG_SETMASK, &cur, NULL);
        step_fn(b);
    }
}

typedef struct test {
    const char *name;
    void (*run)(bench *b);
    const char *what;
    unsigned divisor; /* runs N / divisor operations (slow tests) */
} test;

static const test tests[] = {
    {"call", run_call, "old: continuation through a function pointer", 1},
    {"fiber", run_fiber, "new: svc_fiber_resume + svc_fiber_suspend", 1},
    {"idle-call", run_idle_call, "old: loop turn (uv_idle) + continuation", 1},
    {"idle-fiber", run_idle_fiber, "new: loop turn (uv_idle) + resume/suspend", 1},
    {"alloc", run_alloc, "old: request state malloc/free + continuation", 1},
    {"spawn", run_spawn, "new: spawn + end of a fiber, pooled stack", 1},
    {"spawn-cold", run_spawn_cold, "new: spawn + end, fresh mmap'd stack", 20},
    {"sigmask", run_sigmask, "2 rt_sigprocmask syscalls (swapcontext's part)", 1},
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

/* One round of t over n operations (fewer for a slow test); returns ns per operation. */
static double measure(const test *t, uint64_t n)
{
    n = n / t->divisor ? n / t->divisor : 1;
    bench b = {.n = n};
    PW_ASSERT(svc_fibers_new(&b.pool, 0) == PW_OK);
    PW_ASSERT(uv_loop_init(&b.loop) == 0);
    uv_idle_init(&b.loop, &b.idle);
    b.idle.data = &b;
    uint64_t start = uv_hrtime();
    t->run(&b);
    uint64_t ns = uv_hrtime() - start;
    PW_ASSERT(b.done == n);
    uv_close((uv_handle_t *)&b.idle, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    PW_ASSERT(uv_loop_close(&b.loop) == 0);
    svc_fibers_free(b.pool);
    return (double)ns / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    if (n == 0) {
        fprintf(stderr, "usage: paywire-fiber-bench [N > 0] [TEST]\n");
        return 2;
    }
    if (argc > 2) {
        for (size_t i = 0; i < NTESTS; i++) {
            if (strcmp(argv[2], tests[i].name) == 0) {
                printf("%s: %.1f ns/op\n", tests[i].name, measure(&tests[i], n));
                return 0;
            }
        }
        fprintf(stderr, "paywire-fiber-bench: unknown test '%s'\n", argv[2]);
        return 2;
    }
    double med[NTESTS];
    printf("%-11s %-48s %9s %9s\n", "test", "what one operation is", "median ns", "min ns");
    for (size_t i = 0; i < NTESTS; i++) {
        double r[ROUNDS];
        for (int k = 0; k < ROUNDS; k++) {
            r[k] = measure(&tests[i], n);
        }
        qsort(r, ROUNDS, sizeof(r[0]), cmp_double);
        med[i] = r[ROUNDS / 2];
        printf("%-11s %-48s %9.1f %9.1f\n", tests[i].name, tests[i].what, med[i], r[0]);
    }
    printf("(%llu operations per round, median of %d rounds)\n", (unsigned long long)n, ROUNDS);
    printf("fiber / call            %6.1fx  (+%.1f ns per wait)\n", med[1] / med[0],
           med[1] - med[0]);
    printf("idle-fiber / idle-call  %6.2fx  (+%.1f ns per wait, loop turn included)\n",
           med[3] / med[2], med[3] - med[2]);
    printf("spawn / alloc           %6.2fx  (+%.1f ns per request)\n", med[5] / med[4],
           med[5] - med[4]);
    printf("sigmask / fiber         %6.2f   (share of a round trip spent in rt_sigprocmask)\n",
           med[7] / med[1]);
    return 0;
}
