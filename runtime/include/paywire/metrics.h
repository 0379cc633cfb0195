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

/** A registry for one loop. Free with pw_metrics_free after what it observes is closed. */
PW_EXTERN pw_status pw_metrics_new(pw_metrics **out, uv_loop_t *loop);
PW_EXTERN void pw_metrics_free(pw_metrics *m);

/** Counts every call of server (an interceptor added first). */
PW_EXTERN pw_status pw_metrics_observe_server(pw_metrics *m, pw_server *server);
/** Counts every call made on channel (a client interceptor). */
PW_EXTERN pw_status pw_metrics_observe_channel(pw_metrics *m, pw_channel *channel);

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
 * refreshed every 250 ms.
 */
PW_EXTERN pw_status pw_metrics_render_all(const pw_metrics *const *regs, size_t n, pw_buf *out);

/**
 * An admin HTTP/1.1 listener on address (e.g. "127.0.0.1:9090"): GET /metrics
 * (m), /healthz (200 while the process serves), /readyz (200 when health's ""
 * is SERVING, else 503; health may be NULL: always ready), /debug (live
 * connections and in-flight calls of server, which may be NULL). *port_out
 * (may be NULL) receives the bound port. Close with pw_admin_close.
 */
PW_EXTERN pw_status pw_admin_listen(pw_admin **out, uv_loop_t *loop, const char *address,
                                    pw_metrics *m, struct pw_health *health, pw_server *server,
                                    int *port_out);
PW_EXTERN void pw_admin_close(pw_admin *admin);

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
