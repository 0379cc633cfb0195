#ifndef PAYWIRE_WORKERS_H
#define PAYWIRE_WORKERS_H

#include <uv.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * N worker threads, each running its own uv_loop_t: the way a service uses
 * every core. Each worker creates its own server (with reuse_port, on the same
 * address) in start; connections stay on the worker that accepted them, and
 * nothing is shared between workers but what the application shares read-only.
 */
typedef struct pw_workers pw_workers;

/** Runs on worker index's thread, before its loop runs: create servers, channels... */
typedef void (*pw_worker_start_cb)(uv_loop_t *loop, int index, void *user_data);
/**
 * Runs on worker index's thread when pw_workers_stop is called: begin closing
 * everything (e.g. pw_server_shutdown); the worker ends when its loop is empty.
 */
typedef void (*pw_worker_stop_cb)(uv_loop_t *loop, int index, void *user_data);

/**
 * Starts n workers (n <= 0: one per CPU) and returns once every start callback
 * has run. Returns PW_OK with *out set; PW_ERRNO(ENOMEM) or a libuv error of
 * uv_thread_create (e.g. UV_EAGAIN), with *out set to NULL (workers already
 * started were stopped and joined).
 */
PW_EXTERN pw_status pw_workers_start(pw_workers **out, int n, pw_worker_start_cb start,
                                     pw_worker_stop_cb stop, void *user_data);
/** Number of workers. */
PW_EXTERN int pw_workers_count(const pw_workers *w);
/** Asks every worker to stop (runs stop on each). Thread-safe; may be called more than once. */
PW_EXTERN void pw_workers_stop(pw_workers *w);
/**
 * Waits for every worker's loop to end, then frees w (in every case). Returns
 * PW_OK, or PW_FAILED_PRECONDITION when a worker's loop still had handles
 * when it closed (a leak; logged with how many).
 */
PW_EXTERN pw_status pw_workers_join(pw_workers *w);

#ifdef __cplusplus
}
#endif
#endif
