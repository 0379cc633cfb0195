#ifndef PAYWIRE_METRICS_H
#define PAYWIRE_METRICS_H

/*
 * Metrics (library paywire_builtins): per-method call counters, latency
 * histograms and message counts for servers and channels, in Prometheus text
 * format, served with /healthz, /readyz and /debug by an admin HTTP/1.1
 * listener. One registry per loop: only its loop's thread writes it, without
 * locks; a scrape may read registries of other loops (pw_workers) and sums
 * them.
 */
#include <paywire/buf.h>
#include <paywire/channel.h>
#include <paywire/server.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pw_metrics pw_metrics;
typedef struct pw_admin pw_admin;
struct pw_health;

/**
 * A registry for one loop (it owns a timer on it). Returns PW_OK with *out
 * set, or PW_ERRNO(ENOMEM) with *out set to NULL. Close it with
 * pw_metrics_close() after what it observes is closed.
 */
PW_EXTERN pw_status pw_metrics_new(pw_metrics **out, uv_loop_t *loop);

typedef void (*pw_metrics_close_cb)(pw_metrics *m, void *user_data);
/**
 * Closes the registry's timer and frees it. cb (may be NULL) runs exactly
 * once, on a later loop turn; the registry is freed after it returns. Only
 * the first call counts; NULL is a no-op.
 */
PW_EXTERN void pw_metrics_close(pw_metrics *m, pw_metrics_close_cb cb, void *user_data);

/** Counts every call of server (an interceptor added first). Returns PW_OK or PW_ERRNO(ENOMEM). */
PW_EXTERN pw_status pw_metrics_observe_server(pw_metrics *m, pw_server *server);
/**
 * Stops reading server's connection count (the loop-lag timer reads it every
 * 250 ms). Call it from the server's close callback when the registry lives
 * on past the server, as it must while channels it observes are still open.
 * A server m does not observe, and NULL, are no-ops.
 */
PW_EXTERN void pw_metrics_forget_server(pw_metrics *m, const pw_server *server);
/** Counts every call made on channel (a client interceptor). Returns PW_OK or PW_ERRNO(ENOMEM). */
PW_EXTERN pw_status pw_metrics_observe_channel(pw_metrics *m, pw_channel *channel);

/**
 * Sets the gauge name to value in m, a measurement of the application's own
 * (a service's "ledger_selfcheck_differences"), rendered with the call
 * metrics. Call it on m's loop thread. A scrape of several registries
 * (pw_metrics_render_all) shows per name the value set last on any of them.
 * name (a Prometheus name, [a-zA-Z_:][a-zA-Z0-9_:]*) and help are copied the
 * first time a name is set. Returns PW_OK, PW_INVALID_ARGUMENT (a bad name,
 * or NULL), PW_RESOURCE_EXHAUSTED (more than 32 names) or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_metrics_gauge_set(pw_metrics *m, const char *name, const char *help,
                                         int64_t value);

/**
 * Appends the Prometheus text exposition (version 0.0.4) of everything
 * observed. Returns PW_OK or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_metrics_render(const pw_metrics *m, pw_buf *out);

/**
 * Like pw_metrics_render for n registries summed series by series (one per
 * worker loop): counters and histograms add up, in-flight and connection
 * gauges add up, loop lag is the worst loop's. Safe from any thread while
 * the registries' loops run (values are read atomically; a scrape may see a
 * call counted as started but not yet as handled). Connection gauges are
 * refreshed every 250 ms. Returns PW_OK or PW_ERRNO(ENOMEM) (out may then
 * hold part of the text).
 */
PW_EXTERN pw_status pw_metrics_render_all(const pw_metrics *const *regs, size_t n, pw_buf *out);

/**
 * An admin HTTP/1.1 listener on address (e.g. "127.0.0.1:9090"): GET /metrics
 * (m, which may be NULL), /healthz (200 while the process serves), /readyz
 * (200 when health's "" is SERVING, else 503; health may be NULL: always
 * ready), /debug (live connections and in-flight calls of server, which may
 * be NULL). m, health and server are borrowed and must outlive the admin.
 * Returns PW_OK with *out set and *port_out (may be NULL) the bound port;
 * PW_INVALID_ARGUMENT (bad address), a libuv error of binding or listening
 * (e.g. UV_EADDRINUSE) or PW_ERRNO(ENOMEM), with *out set to NULL and
 * *port_out to 0. Close it with pw_admin_close().
 */
PW_EXTERN pw_status pw_admin_listen(pw_admin **out, uv_loop_t *loop, const char *address,
                                    pw_metrics *m, struct pw_health *health, pw_server *server,
                                    int *port_out);

typedef void (*pw_admin_close_cb)(pw_admin *admin, void *user_data);
/**
 * Stops listening and closes every admin connection. cb (may be NULL) runs
 * exactly once, on a later loop turn, when the listener and every connection
 * are closed; the admin is freed after it returns. Only the first call
 * counts; NULL is a no-op.
 */
PW_EXTERN void pw_admin_close(pw_admin *admin, pw_admin_close_cb cb, void *user_data);

/**
 * Adds the registry of another loop (a worker's) to what /metrics reports:
 * the admin endpoint then serves the sum (pw_metrics_render_all). Call on the
 * admin's loop thread, after the registry exists (e.g. after
 * pw_workers_start returns); the registry must outlive the admin listener.
 * Returns PW_OK or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_admin_add_metrics(pw_admin *admin, pw_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
