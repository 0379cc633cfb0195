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
 * On x86-64 the switch is our own (svc__ctx_switch below): it saves the
 * callee-saved registers, MXCSR and the x87 control word on the old stack,
 * stores the stack pointer and loads the other one. glibc's swapcontext also
 * saves and restores the signal mask, two rt_sigprocmask system calls per
 * switch, which measured 55 % of a suspend/resume round trip
 * (docs/performance.md); fibers never change the signal mask, so they need
 * not carry it. Elsewhere (or with -DSVC_FIBER_UCONTEXT) ucontext is used.
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

#if defined(__x86_64__) && !defined(SVC_FIBER_UCONTEXT)
#define SVC_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

/* Stacks kept for reuse per pool; more than this many at once are unmapped when released. */
#define KEEP_STACKS 256

struct svc_fiber {
#ifdef SVC_ASM_SWITCH
    /* Saved stack pointers: the fiber's while it is suspended, its caller's while it runs. */
    void *sp;
    void *caller_sp;
#else
    ucontext_t self;
    ucontext_t caller;
#endif
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

#ifdef SVC_ASM_SWITCH
/*
 * svc__ctx_switch(void **save, void *load): pushes rbp, rbx, r12-r15 and an
 * 8-byte slot holding MXCSR and the x87 control word (the callee-saved state
 * of the System V ABI), stores rsp in *save, switches to load, and pops the
 * same from there. A new fiber's stack is laid out as if it had switched
 * away at the start of svc__fiber_start, which moves r12 (the fiber) into
 * the first argument and calls svc__fiber_entry.
 */
void svc__ctx_switch(void **save, void *load);
void svc__fiber_start(void);
void svc__fiber_entry(svc_fiber *f);
__asm__(".text\n"
        ".globl svc__ctx_switch\n"
        ".hidden svc__ctx_switch\n"
        ".type svc__ctx_switch,@function\n"
        "svc__ctx_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size svc__ctx_switch, .-svc__ctx_switch\n"
        ".globl svc__fiber_start\n"
        ".hidden svc__fiber_start\n"
        ".type svc__fiber_start,@function\n"
        "svc__fiber_start:\n"
        "    movq %r12, %rdi\n"
        "    call svc__fiber_entry\n"
        "    ud2\n"
        ".size svc__fiber_start, .-svc__fiber_start\n");

/* The stack of a fiber that has not run: what svc__ctx_switch pops, ending in svc__fiber_start. */
static int ctx_make(svc_fiber *f, uint8_t *stack, size_t size)
{
    uintptr_t top = ((uintptr_t)(stack + size)) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = (uint64_t)(uintptr_t)svc__fiber_start; /* at top - 8: rsp is 16-aligned after ret */
    *--sp = 0;                                     /* rbp */
    *--sp = 0;                                     /* rbx */
    *--sp = (uint64_t)(uintptr_t)f;                /* r12: the fiber */
    *--sp = 0;                                     /* r13 */
    *--sp = 0;                                     /* r14 */
    *--sp = 0;                                     /* r15 */
    *--sp = 0x037F00001F80ull;                     /* MXCSR default, x87 control word default */
    f->sp = sp;
    return 0;
}

static void ctx_in(svc_fiber *f)
{
    svc__ctx_switch(&f->caller_sp, f->sp);
}

static void ctx_out(svc_fiber *f)
{
    svc__ctx_switch(&f->sp, f->caller_sp);
}
#else
static void fiber_main(unsigned hi, unsigned lo);

static int ctx_make(svc_fiber *f, uint8_t *stack, size_t size)
{
    if (getcontext(&f->self) != 0) {
        return -1;
    }
    f->self.uc_stack.ss_sp = stack;
    f->self.uc_stack.ss_size = size;
    f->self.uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->self, (void (*)(void))fiber_main, 2, (unsigned)(p >> 32),
                (unsigned)(p & 0xffffffffu));
    return 0;
}

static void ctx_in(svc_fiber *f)
{
    swapcontext(&f->caller, &f->self);
}

static void ctx_out(svc_fiber *f)
{
    swapcontext(&f->self, &f->caller);
}
#endif

/* Caller → fiber. Returns when the fiber switches back (it suspended or ended). */
static void switch_in(svc_fiber *f)
{
    f->running = 1;
#ifdef SVC_ASAN
    __sanitizer_start_switch_fiber(&f->caller_fake, f->map + f->pool->page, f->pool->stack_size);
#endif
    ctx_in(f);
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
    ctx_out(f);
}

/* The fiber's first frame: runs its function, then leaves for good. */
static void fiber_run(svc_fiber *f)
{
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

#ifdef SVC_ASM_SWITCH
void svc__fiber_entry(svc_fiber *f)
{
    fiber_run(f);
}
#else
static void fiber_main(unsigned hi, unsigned lo)
{
    fiber_run((svc_fiber *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

pw_status svc_fiber_spawn(svc_fibers *pool, svc_fiber_fn fn, void *arg)
{
    svc_fiber *f = fiber_take(pool);
    if (f == NULL || ctx_make(f, f->map + pool->page, pool->stack_size) != 0) {
        if (f != NULL) {
            fiber_unmap(f);
        }
        return PW_ERRNO(ENOMEM);
    }
    f->fn = fn;
    f->arg = arg;
    f->ended = 0;
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
