#ifndef PAYWIRE_SVC_MAIN_H
#define PAYWIRE_SVC_MAIN_H

/*
 * The process shell every business service runs in (docs/design/services.md,
 * docs/adding-a-service.md). A service describes itself in a svc_service and
 * calls svc_main from main(); svc_main does the rest:
 *
 *   NAME-server [--config FILE] [--migrate]
 *
 * - settings from FILE and PW_<NAME>_* environment variables, typed and
 *   checked against the common settings (svc_main_settings) and the
 *   service's own, errors naming the key;
 * - an allocator that aborts the process on out-of-memory, so service code
 *   never checks an allocation;
 * - --migrate: applies the migrations folder as the owner role and exits;
 * - one worker loop per CPU (`workers`), each with its own server on the same
 *   addresses (SO_REUSEPORT; `listen` may list several, e.g. both loopbacks),
 *   database pool, fiber pool, health, metrics and per-merchant rate limiter;
 * - TLS with optional client certificates (mTLS identities of internal
 *   callers), health (SERVING only while the database answers), reflection,
 *   JSON over HTTP, access logs, metrics and /readyz on the admin listener
 *   (worker 0, summing every worker's metrics), the idempotency sweeper;
 * - SIGTERM/SIGINT: health turns NOT_SERVING, in-flight calls finish (up to
 *   10 s), everything closes, exit 0.
 */
#include "svc_req.h"

typedef struct svc_service {
    /** "merchant": settings PW_MERCHANT_*, log module, the migrations' advisory lock. */
    const char *name;
    /** The gRPC service that health reports on ("paywire.merchant.v1.MerchantService"). */
    const char *health_service;
    /** ErrorInfo domain ("merchant.paywire"). */
    const char *domain;
    /** The migrations folder when the `migrations` setting is not given. */
    const char *migrations;
    /** The `listen` default ("127.0.0.1:15061,[::1]:15061"). */
    const char *listen;
    /** The service's own settings (ending with a NULL key), or NULL. */
    const svc_setting *settings;
    /** 1: `encryption_key` (64 hex characters) is required; app->sealer seals with it. */
    int seals_secrets;
    /**
     * Runs once in the main thread before the workers start (may be NULL):
     * reads the service's settings and makes its process-wide state
     * (*state, then app->service on every worker; read-only from then on).
     * Returns PW_OK, or a failure with err saying why (the process exits 2).
     */
    pw_status (*setup)(const svc_config *cfg, void **state, char *err, size_t err_len);
    /** Frees the state after every worker ended (may be NULL). */
    void (*teardown)(void *state);
    /** On each worker: registers the service's generated stubs on server with app as user data. */
    pw_status (*register_services)(pw_server *server, svc_app *app);
    /**
     * On worker 0, once it serves (may be NULL): starts the service's
     * background jobs (outbox publishers, expiry and recovery jobs) on loop
     * with app's pool; *jobs goes to stop_jobs. Returns PW_OK or a failure
     * (the process exits 1).
     */
    pw_status (*start_jobs)(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
    /** At shutdown, before the server drains and the pool closes: stops them (may be NULL). */
    void (*stop_jobs)(void *jobs);
    /** Resolves API keys (NULL: only internal callers are served). */
    svc_key_resolver resolve_key;
} svc_service;

/** The settings svc_main itself reads (for docs and tests); ends with a NULL key. */
extern const svc_setting svc_main_settings[];

/** Runs the service as a process; returns the exit code for main (0 after a clean stop). */
int svc_main(const svc_service *s, int argc, char **argv);

#endif
