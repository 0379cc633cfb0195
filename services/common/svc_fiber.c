/*
 * svc_fiber.c: stackful coroutines over ucontext (makecontext/swapcontext).
 *
 * A fiber is a saved context on its own stack plus the context of whoever
 * switched to it (its "caller": the loop, inside some callback). Switching is
 * symmetric and always between a fiber and its caller, so fibers nest only
 * through their callers: a fiber may resume another, which then returns to
 * it. A fiber that ends switches to its caller one last time; the caller,
 * back in svc_fiber_resume or svc_fiber_spawn, puts the stack back in the
 * pool (a fiber cannot free the stack it is running on).
 *
 * AddressSanitizer must know which stack is current: before each switch we
 * call __sanitizer_start_switch_fiber with the target stack's bounds, and on
 * arrival __sanitizer_finish_switch_fiber. A fiber learns its caller's stack
 * bounds at each arrival, which is what lets fibers be resumed from
 * different callers' stacks.
 */

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "svc_fiber.h"

#if defined(__SANITIZE_ADDRESS__)
#define SVC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SVC_ASAN 1
#endif
#endif

#ifdef SVC_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define DEFAULT_STACK (512u * 1024u)
#else
#define DEFAULT_STACK (128u * 1024u)
#endif

/* Stacks kept for reuse per pool; more than this many at once are unmapped when released. */
#define KEEP_STACKS 256

struct svc_fiber {
    ucontext_t self;
    ucontext_t caller;
    svc_fibers *pool;
    svc_fiber *next_free;
    /* The mapping: a guard page, then the stack. */
    uint8_t *map;
    size_t map_len;
    svc_fiber_fn fn;
    void *arg;
    int running;
    int ended;
#ifdef SVC_ASAN
    void *caller_fake;
    void *self_fake;
    const void *caller_bottom;
    size_t caller_size;
#endif
};

struct svc_fibers {
    size_t stack_size;
    size_t page;
    svc_fiber *free_list;
    size_t free_count;
    size_t active;
};

pw_status svc_fibers_new(svc_fibers **out, size_t stack_size)
{
    *out = NULL;
    svc_fibers *p = pw_calloc(1, sizeof(*p));
    if (p == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t want = stack_size ? stack_size : DEFAULT_STACK;
    p->stack_size = (want + p->page - 1) / p->page * p->page;
    *out = p;
    return PW_OK;
}

static void fiber_unmap(svc_fiber *f)
{
#ifdef SVC_ASAN
    /* A fiber's frames leave poisoned shadow behind; the mapping may be reused by anything. */
    __asan_unpoison_memory_region(f->map, f->map_len);
#endif
    munmap(f->map, f->map_len);
    pw_free(f);
}

void svc_fibers_free(svc_fibers *pool)
{
    if (pool == NULL) {
        return;
    }
    PW_ASSERT(pool->active == 0);
    while (pool->free_list != NULL) {
        svc_fiber *f = pool->free_list;
        pool->free_list = f->next_free;
        fiber_unmap(f);
    }
    pw_free(pool);
}

size_t svc_fibers_active(const svc_fibers *pool)
{
    return pool->active;
}

static svc_fiber *fiber_take(svc_fibers *pool)
{
    svc_fiber *f = pool->free_list;
    if (f != NULL) {
        pool->free_list = f->next_free;
        pool->free_count--;
        return f;
    }
    f = pw_calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->map_len = pool->stack_size + pool->page;
    void *map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        pw_free(f);
        return NULL;
    }
    f->map = map;
    /* Stacks grow down: the lowest page faults on overflow. */
    mprotect(f->map, pool->page, PROT_NONE);
    f->pool = pool;
    return f;
}

static void fiber_release(svc_fiber *f)
{
    svc_fibers *pool = f->pool;
    pool->active--;
    if (pool->free_count >= KEEP_STACKS) {
        fiber_unmap(f);
        return;
    }
#ifdef SVC_ASAN
    __asan_unpoison_memory_region(f->map + pool->page, pool->stack_size);
#endif
    f->next_free = pool->free_list;
    pool->free_list = f;
    pool->free_count++;
}

/* ---- switching ---- */

/* Caller → fiber. Returns when the fiber switches back (it suspended or ended). */
static void switch_in(svc_fiber *f)
{
    f->running = 1;
#ifdef SVC_ASAN
    __sanitizer_start_switch_fiber(&f->caller_fake, f->map + f->pool->page, f->pool->stack_size);
#endif
    swapcontext(&f->caller, &f->self);
#ifdef SVC_ASAN
    __sanitizer_finish_switch_fiber(f->caller_fake, NULL, NULL);
#endif
    if (f->ended) {
        fiber_release(f);
    }
}

/* On the fiber's stack, after arriving: note the caller's stack for the way back. */
static void arrived(svc_fiber *f)
{
#ifdef SVC_ASAN
    __sanitizer_finish_switch_fiber(f->self_fake, &f->caller_bottom, &f->caller_size);
#else
    (void)f;
#endif
}

/* Fiber → caller. last: the fiber has ended and its fake stack may go. */
static void switch_out(svc_fiber *f, int last)
{
    f->running = 0;
#ifdef SVC_ASAN
    __sanitizer_start_switch_fiber(last ? NULL : &f->self_fake, f->caller_bottom, f->caller_size);
#else
    (void)last;
#endif
    swapcontext(&f->self, &f->caller);
}

static void fiber_main(unsigned hi, unsigned lo)
{
    svc_fiber *f = (svc_fiber *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
#ifdef SVC_ASAN
    /* A pooled stack's last fiber ended without saving a fake stack; this one starts with none. */
    f->self_fake = NULL;
#endif
    arrived(f);
    f->fn(f, f->arg);
    f->ended = 1;
    switch_out(f, 1);
    PW_ASSERT(!"an ended fiber was resumed");
}

pw_status svc_fiber_spawn(svc_fibers *pool, svc_fiber_fn fn, void *arg)
{
    svc_fiber *f = fiber_take(pool);
    if (f == NULL || getcontext(&f->self) != 0) {
        if (f != NULL) {
            fiber_unmap(f);
        }
        return PW_ERRNO(ENOMEM);
    }
    f->fn = fn;
    f->arg = arg;
    f->ended = 0;
    f->self.uc_stack.ss_sp = f->map + pool->page;
    f->self.uc_stack.ss_size = pool->stack_size;
    f->self.uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->self, (void (*)(void))fiber_main, 2, (unsigned)(p >> 32),
                (unsigned)(p & 0xffffffffu));
    pool->active++;
    switch_in(f);
    return PW_OK;
}

void svc_fiber_suspend(svc_fiber *f)
{
    PW_ASSERT(f->running);
    switch_out(f, 0);
    arrived(f);
}

void svc_fiber_resume(svc_fiber *f)
{
    PW_ASSERT(!f->running && !f->ended);
    switch_in(f);
}
