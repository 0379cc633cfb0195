#ifndef PAYWIRE_TICK_H
#define PAYWIRE_TICK_H

/*
 * Deferred work on a loop: tasks queued during a loop turn run at the next
 * turn, once each, in order. Used so that output is produced once per turn
 * (batching many sends into one write) and so that callbacks never run inside
 * the API call that caused them.
 */
#include <uv.h>
#include "list.h"

typedef struct pw__task pw__task;
typedef void (*pw__task_fn)(pw__task *task);

struct pw__task {
    pw__list link;
    pw__task_fn fn;
};

typedef struct pw__tick {
    uv_idle_t idle;
    pw__list tasks;
} pw__tick;

static inline void pw__task_init(pw__task *t, pw__task_fn fn)
{
    pw__list_init(&t->link);
    t->fn = fn;
}

int pw__tick_init(pw__tick *tick, uv_loop_t *loop, void *owner);
/** Queues t (no-op when already queued). */
void pw__tick_push(pw__tick *tick, pw__task *t);
/** Runs every queued task now (used when the tick's owner closes). */
void pw__tick_drain(pw__tick *tick);
/** Removes t if queued. */
static inline void pw__task_cancel(pw__task *t)
{
    pw__list_remove(&t->link);
}

#endif
