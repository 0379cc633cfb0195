/*
 * workers.c: one thread and one loop per worker. The only cross-thread
 * operation is the stop request, delivered through each worker's uv_async_t,
 * so the callbacks always run on their own worker's thread.
 */
#include <stdatomic.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include <paywire/workers.h>

typedef struct worker {
    struct pw_workers *owner;
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    int loop_close_rv;
} worker;

struct pw_workers {
    int n;
    worker *w;
    pw_worker_start_cb start;
    pw_worker_stop_cb stop;
    void *user_data;
    uv_sem_t started;
    atomic_int stopping;
};

static void worker_stop_cb(uv_async_t *a)
{
    worker *w = a->data;
    uv_close((uv_handle_t *)&w->stop, NULL);
    w->owner->stop(&w->loop, w->index, w->owner->user_data);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    pw_workers *ws = w->owner;
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->stop, worker_stop_cb);
    w->stop.data = w;
    ws->start(&w->loop, w->index, ws->user_data);
    uv_sem_post(&ws->started);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->loop_close_rv = uv_loop_close(&w->loop);
}

pw_status pw_workers_start(pw_workers **out, int n, pw_worker_start_cb start,
                           pw_worker_stop_cb stop, void *user_data)
{
    *out = NULL;
    if (n <= 0) {
        n = (int)uv_available_parallelism();
    }
    pw_workers *ws = pw_calloc(1, sizeof(*ws));
    worker *w = pw_calloc((size_t)n, sizeof(*w));
    if (ws == NULL || w == NULL) {
        pw_free(ws);
        pw_free(w);
        return PW_ERRNO(ENOMEM);
    }
    *ws = (pw_workers){.n = n, .w = w, .start = start, .stop = stop, .user_data = user_data};
    uv_sem_init(&ws->started, 0);
    for (int i = 0; i < n; i++) {
        w[i].owner = ws;
        w[i].index = i;
        int rv = uv_thread_create(&w[i].thread, worker_main, &w[i]);
        if (rv != 0) {
            /* Stop the ones already running, then report. */
            ws->n = i;
            for (int j = 0; j < i; j++) {
                uv_sem_wait(&ws->started);
            }
            pw_workers_stop(ws);
            pw_workers_join(ws);
            return rv;
        }
    }
    for (int i = 0; i < n; i++) {
        uv_sem_wait(&ws->started);
    }
    *out = ws;
    return PW_OK;
}

int pw_workers_count(const pw_workers *ws)
{
    return ws->n;
}

void pw_workers_stop(pw_workers *ws)
{
    /* Each async handle closes when its stop runs: send at most once. */
    if (atomic_exchange(&ws->stopping, 1) != 0) {
        return;
    }
    for (int i = 0; i < ws->n; i++) {
        uv_async_send(&ws->w[i].stop);
    }
}

pw_status pw_workers_join(pw_workers *ws)
{
    int leaks = 0;
    for (int i = 0; i < ws->n; i++) {
        uv_thread_join(&ws->w[i].thread);
        leaks += ws->w[i].loop_close_rv != 0;
    }
    uv_sem_destroy(&ws->started);
    pw_free(ws->w);
    pw_free(ws);
    if (leaks > 0) {
        PW_LOG(PW_LOG_WARNING, "workers", "%d worker loop(s) ended with handles still open", leaks);
        return PW_FAILED_PRECONDITION;
    }
    return PW_OK;
}
