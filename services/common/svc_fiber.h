#ifndef PAYWIRE_SVC_FIBER_H
#define PAYWIRE_SVC_FIBER_H

/*
 * Stackful coroutines on a libuv loop (docs/design/services.md): a fiber
 * runs a function on a small stack of its own and can suspend itself, for
 * instance while a database query runs; the callback that delivers the
 * result resumes it where it stopped. So a handler reads top to bottom while
 * the loop never blocks.
 *
 * Fibers belong to one loop's thread, like everything on that loop. A pool
 * (svc_fibers, one per loop) keeps released stacks for reuse. Stacks are
 * mmap'd with a guard page below them, so an overflow faults instead of
 * corrupting a neighbour. Under AddressSanitizer every switch is announced
 * with its fiber annotations, so the sanitized build checks fiber stacks too.
 */
#include <stddef.h>
#include <paywire/status.h>

typedef struct svc_fiber svc_fiber;
typedef struct svc_fibers svc_fibers;

/** The body of a fiber. When it returns, the fiber ends and its stack goes back to the pool. */
typedef void (*svc_fiber_fn)(svc_fiber *f, void *arg);

/**
 * A pool of fiber stacks of stack_size bytes each (0: 128 KiB; 512 KiB under
 * AddressSanitizer, whose frames are larger). *out is NULL on failure.
 * Returns PW_OK or PW_ERRNO(ENOMEM).
 */
pw_status svc_fibers_new(svc_fibers **out, size_t stack_size);
/** Frees the pool and its stacks. Every fiber must have ended (asserted). NULL is a no-op. */
void svc_fibers_free(svc_fibers *pool);
/** Fibers running or suspended now. */
size_t svc_fibers_active(const svc_fibers *pool);

/**
 * Starts fn(f, arg) on a fiber and runs it until it first suspends or ends,
 * then returns. Returns PW_OK, or PW_ERRNO(ENOMEM) when no stack can be had
 * (then fn never runs).
 */
pw_status svc_fiber_spawn(svc_fibers *pool, svc_fiber_fn fn, void *arg);
/**
 * From inside f: suspends it and returns to whoever started or resumed it;
 * returns when something calls svc_fiber_resume(f).
 */
void svc_fiber_suspend(svc_fiber *f);
/**
 * Continues a suspended fiber until it suspends again or ends, then returns.
 * f must be suspended (asserted); after it ended, f must not be used.
 */
void svc_fiber_resume(svc_fiber *f);

#endif
