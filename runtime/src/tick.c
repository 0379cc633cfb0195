/*
 * tick.c: a FIFO of tasks run from a uv_idle_t. The idle handle is active only
 * while tasks are queued, so an empty tick never keeps the loop spinning. Tasks
 * queued by a running task wait for the next turn, which bounds each turn.
 */
#include "tick.h"

static void tick_run(uv_idle_t *idle)
{
    pw__tick *tick = (pw__tick *)(void *)idle;
    pw__list batch;
    pw__list_init(&batch);
    if (!pw__list_empty(&tick->tasks)) {
        /* Move the whole queue to batch. */
        batch.next = tick->tasks.next;
        batch.prev = tick->tasks.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        pw__list_init(&tick->tasks);
    }
    while (!pw__list_empty(&batch)) {
        pw__task *t = PW_CONTAINER_OF(batch.next, pw__task, link);
        pw__list_remove(&t->link);
        t->fn(t);
    }
    if (pw__list_empty(&tick->tasks)) {
        uv_idle_stop(&tick->idle);
    }
}

int pw__tick_init(pw__tick *tick, uv_loop_t *loop, void *owner)
{
    pw__list_init(&tick->tasks);
    int rv = uv_idle_init(loop, &tick->idle);
    tick->idle.data = owner;
    return rv;
}

void pw__tick_push(pw__tick *tick, pw__task *t)
{
    if (t->link.next != &t->link) {
        return;
    }
    pw__list_push(&tick->tasks, &t->link);
    uv_idle_start(&tick->idle, tick_run);
}

void pw__tick_drain(pw__tick *tick)
{
    while (!pw__list_empty(&tick->tasks)) {
        pw__task *t = PW_CONTAINER_OF(tick->tasks.next, pw__task, link);
        pw__list_remove(&t->link);
        t->fn(t);
    }
}
