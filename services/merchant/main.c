/*
 * merchant-server: the merchant service (docs/design/merchant.md).
 *   merchant-server [--config FILE] [--migrate]
 * Settings come from FILE ("key = value") and PW_MERCHANT_<KEY> environment
 * variables (see services/merchant/README.md). --migrate applies the
 * migrations and exits. SIGTERM/SIGINT: graceful shutdown (health turns
 * NOT_SERVING, in-flight calls finish, up to 10 s).
 *
 * One worker loop per CPU (config `workers`), each with its own server on the
 * same port (SO_REUSEPORT), database pool, health and metrics; the admin
 * listener runs on worker 0 and reports the metrics of all of them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/builtins.h>
#include <paywire/json.h>
#include <paywire/metrics.h>
#include <paywire/workers.h>
#include "merchant.h"
#include "svc_sweep.h"

#define SERVICE_NAME "paywire.merchant.v1.MerchantService"
#define MAX_WORKERS  64

struct app;

/* One loop's share: everything here lives and dies on that worker's thread. */
typedef struct worker {
    struct app *app;
    int index;
    svc_app svc;
    pw_server *server;
    pw_health *health;
    pw_metrics *metrics;
    int stopping;
    /* Worker 0 only: the admin listener, the nudge that adds the others' metrics to it, and
     * the idempotency sweeper. */
    pw_admin *admin;
    uv_async_t add_metrics;
    svc_sweeper *sweeper;
} worker;

typedef struct app {
    svc_config *cfg;
    svc_app proto; /* what every worker's svc_app starts from (pool aside) */
    paywire_merchant_v1_merchant_service_handlers handlers;
    pw_db_options dbo;
    svc_sweep_options sweep;
    uint32_t rate_per_second; /* per merchant and worker; 0: no limit */
    uint32_t rate_burst;
    pw_tls_config tls;
    const char *listen;
    const char *admin_listen;
    int nworkers;
    worker workers[MAX_WORKERS];
    pw_workers *pool;
    /* Posted by worker 0 once its admin listener is closed: the others may free their metrics. */
    uv_sem_t admin_closed;
    uv_signal_t sigterm;
    uv_signal_t sigint;
} app;

static void set_health(worker *w, int available)
{
    if (w->health != NULL && !w->stopping) {
        pw_health_status st = available ? PW_HEALTH_SERVING : PW_HEALTH_NOT_SERVING;
        pw_health_set(w->health, SERVICE_NAME, st);
        pw_health_set(w->health, "", st);
    }
}

static void on_available(pw_db_pool *pool, int available, void *ud)
{
    (void)pool;
    set_health(ud, available);
}

static const pw_db_stmt probe = {"merchant_probe", "SELECT 1", 0, {0}};

static void probed(pw_db_result *res, void *ud)
{
    worker *w = ud;
    set_health(w, pw_db_status(res) == PW_OK);
    if (pw_db_status(res) != PW_OK && w->index == 0) {
        PW_LOG(PW_LOG_WARNING, "merchant", "database not reachable yet: %s", pw_db_message(res));
    }
}

static void pool_closed(void *ud)
{
    worker *w = ud;
    pw_rate_limiter_free(w->svc.merchant_limit);
    pw_metrics_free(w->metrics);
}

static void server_closed(pw_server *server, void *ud)
{
    (void)server;
    worker *w = ud;
    pw_db_pool_close(w->svc.pool, pool_closed, w);
}

static const char *flag_value(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return NULL;
}

static int has_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static void fail_setup(worker *w, const char *what, pw_status rv)
{
    fprintf(stderr, "merchant-server: worker %d: %s: %s\n", w->index, what, pw_status_str(rv));
    exit(1); /* a worker that cannot serve at start-up ends the process */
}

/* Worker 0: adds every other worker's registry to /metrics (they exist once start returned). */
static void on_add_metrics(uv_async_t *h)
{
    worker *w = h->data;
    app *a = w->app;
    for (int i = 1; i < a->nworkers; i++) {
        if (pw_admin_add_metrics(w->admin, a->workers[i].metrics) != PW_OK) {
            PW_LOG(PW_LOG_WARNING, "merchant", "admin: cannot add worker %d's metrics", i);
        }
    }
    uv_close((uv_handle_t *)h, NULL);
}

static void worker_start(uv_loop_t *loop, int index, void *ud)
{
    app *a = ud;
    worker *w = &a->workers[index];
    *w = (worker){.app = a, .index = index, .svc = a->proto};
    pw_db_options dbo = a->dbo;
    dbo.user_data = w;
    pw_server_options so = {.reuse_port = a->nworkers > 1};
    pw_status rv;
    if (a->rate_per_second > 0 &&
        (rv = pw_rate_limiter_new(&w->svc.merchant_limit, a->rate_per_second, a->rate_burst)) !=
            PW_OK) {
        fail_setup(w, "rate limiter", rv);
    }
    if ((rv = pw_db_pool_new(&w->svc.pool, loop, &dbo)) != PW_OK ||
        (rv = pw_server_new(&w->server, loop, &so)) != PW_OK ||
        (rv = paywire_merchant_v1_merchant_service_register(w->server, &a->handlers, &w->svc)) !=
            PW_OK ||
        (rv = pw_health_enable(w->server, &w->health)) != PW_OK ||
        (rv = pw_reflection_enable(w->server)) != PW_OK ||
        (rv = pw_json_enable(w->server)) != PW_OK ||
        (rv = pw_access_log_enable(w->server, "merchant")) != PW_OK ||
        (rv = pw_metrics_new(&w->metrics, loop)) != PW_OK ||
        (rv = pw_metrics_observe_server(w->metrics, w->server)) != PW_OK) {
        fail_setup(w, "setup failed", rv);
    }
    /* NOT_SERVING until the database answers. */
    pw_health_set(w->health, SERVICE_NAME, PW_HEALTH_NOT_SERVING);
    pw_health_set(w->health, "", PW_HEALTH_NOT_SERVING);
    if (index == 0 &&
        (rv = svc_sweeper_start(&w->sweeper, loop, w->svc.pool, &a->sweep)) != PW_OK) {
        fail_setup(w, "idempotency sweeper", rv);
    }
    if (index == 0 && a->admin_listen != NULL) {
        if ((rv = pw_admin_listen(&w->admin, loop, a->admin_listen, w->metrics, w->health,
                                  w->server, NULL)) != PW_OK) {
            fail_setup(w, "cannot listen (admin)", rv);
        }
        uv_async_init(loop, &w->add_metrics, on_add_metrics);
        w->add_metrics.data = w;
    }
    int port = 0;
    if ((rv = pw_server_listen(w->server, a->listen, a->tls.cert_file ? &a->tls : NULL, &port)) !=
        PW_OK) {
        fail_setup(w, a->listen, rv);
    }
    if (index == 0) {
        PW_LOG(PW_LOG_NOTICE, "merchant", "listening on %s (port %d, %s, %d worker%s)", a->listen,
               port, a->tls.cert_file ? "TLS" : "h2c", a->nworkers, a->nworkers == 1 ? "" : "s");
    }
    pw_db_query(w->svc.pool, NULL, &probe, NULL, 0, probed, w);
}

static void worker_stop(uv_loop_t *loop, int index, void *ud)
{
    (void)loop;
    app *a = ud;
    worker *w = &a->workers[index];
    w->stopping = 1;
    if (index == 0) {
        svc_sweeper_stop(w->sweeper);
        if (w->admin != NULL && !uv_is_closing((uv_handle_t *)&w->add_metrics)) {
            uv_close((uv_handle_t *)&w->add_metrics, NULL);
        }
        pw_admin_close(w->admin);
        for (int i = 1; i < a->nworkers; i++) {
            uv_sem_post(&a->admin_closed);
        }
    } else {
        uv_sem_wait(&a->admin_closed); /* worker 0 may still render this worker's metrics */
    }
    pw_server_shutdown(w->server, 10000, server_closed, w);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app *a = sig->data;
    PW_LOG(PW_LOG_NOTICE, "merchant", "signal %d: shutting down", signum);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    pw_workers_stop(a->pool);
}

static int migrate(const svc_config *cfg)
{
    const char *url =
        svc_config_get(cfg, "migrate_database_url", svc_config_get(cfg, "database_url", NULL));
    const char *dir = svc_config_get(cfg, "migrations", PW_MERCHANT_MIGRATIONS);
    char err[1024];
    int applied = 0;
    if (url == NULL) {
        fprintf(stderr, "merchant-server: database_url is not set\n");
        return 1;
    }
    pw_status rv = pw_db_migrate(url, dir, "paywire.migrate.merchant", &applied, err, sizeof(err));
    if (rv != PW_OK) {
        fprintf(stderr, "merchant-server: migration failed: %s\n", err);
        return 1;
    }
    fprintf(stderr, "merchant-server: %d migration%s applied; schema up to date\n", applied,
            applied == 1 ? "" : "s");
    return 0;
}

static pw_log_level level_from(const char *s)
{
    return strcmp(s, "debug") == 0     ? PW_LOG_DEBUG
           : strcmp(s, "warning") == 0 ? PW_LOG_WARNING
           : strcmp(s, "error") == 0   ? PW_LOG_ERR
           : strcmp(s, "notice") == 0  ? PW_LOG_NOTICE
                                       : PW_LOG_INFO;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    char err[512] = "";
    static app a; /* large (per-worker state); lives for the whole process */
    if (svc_config_load(&a.cfg, flag_value(argc, argv, "--config"), "PW_MERCHANT_", err,
                        sizeof(err)) != PW_OK) {
        fprintf(stderr, "merchant-server: %s\n", err);
        return 2;
    }
    pw_log_set_level(level_from(svc_config_get(a.cfg, "log_level", "info")));
    if (has_flag(argc, argv, "--migrate")) {
        int rc = migrate(a.cfg);
        svc_config_free(a.cfg);
        return rc;
    }
    const char *db_url = svc_config_get(a.cfg, "database_url", NULL);
    const char *key = svc_config_get(a.cfg, "encryption_key", NULL);
    if (db_url == NULL || svc_sealer_init(&a.proto.sealer, key) != PW_OK) {
        fprintf(stderr, "merchant-server: database_url and encryption_key (64 hex characters) are "
                        "required\n");
        return 2;
    }
    a.listen = svc_config_get(a.cfg, "listen", "127.0.0.1:15061");
    a.admin_listen = svc_config_get(a.cfg, "admin_listen", NULL);
    a.nworkers = atoi(svc_config_get(a.cfg, "workers", "0"));
    if (a.nworkers <= 0) {
        a.nworkers = (int)uv_available_parallelism();
    }
    const char *colon = strrchr(a.listen, ':');
    if (a.nworkers > MAX_WORKERS || (a.nworkers > 1 && colon != NULL && atoi(colon + 1) == 0)) {
        fprintf(stderr,
                "merchant-server: workers must be 1..%d, and 1 when listen has port 0 "
                "(each worker would get a port of its own)\n",
                MAX_WORKERS);
        return 2;
    }
    a.dbo = (pw_db_options){
        .conninfo = db_url,
        .max_connections = (unsigned)atoi(svc_config_get(a.cfg, "db_connections", "8")),
        .on_available = on_available,
    };
    a.sweep.retention_hours = atoi(svc_config_get(a.cfg, "idempotency_retention_hours", "168"));
    int sweep_s = atoi(svc_config_get(a.cfg, "idempotency_sweep_seconds", "3600"));
    a.sweep.interval_ms = sweep_s > 0 ? (uint64_t)sweep_s * 1000u : 0;
    a.sweep.first_ms = a.sweep.interval_ms < 10000 ? a.sweep.interval_ms : 10000;
    if (a.sweep.retention_hours < 24 || a.sweep.interval_ms == 0) {
        fprintf(stderr, "merchant-server: idempotency_retention_hours must be at least 24 and "
                        "idempotency_sweep_seconds at least 1\n");
        return 2;
    }
    int rate = atoi(svc_config_get(a.cfg, "merchant_rate_limit_per_second", "100"));
    int burst = atoi(svc_config_get(a.cfg, "merchant_rate_limit_burst", "200"));
    if (rate < 0 || burst < 1) {
        fprintf(stderr, "merchant-server: merchant_rate_limit_per_second must be 0 (off) or more, "
                        "merchant_rate_limit_burst at least 1\n");
        return 2;
    }
    a.rate_per_second = (uint32_t)rate;
    a.rate_burst = (uint32_t)burst;
    a.proto.internal_identities = svc_config_get(a.cfg, "internal_identities", "");
    a.proto.resolve_key = resolve_key_locally;
    a.proto.domain = MERCHANT_DOMAIN;
    merchant_handlers_init(&a.handlers);
    keys_handlers_init(&a.handlers);
    payout_handlers_init(&a.handlers);
    a.tls = (pw_tls_config){
        .cert_file = svc_config_get(a.cfg, "tls_cert", NULL),
        .key_file = svc_config_get(a.cfg, "tls_key", NULL),
        .ca_file = svc_config_get(a.cfg, "tls_ca", NULL),
        /* Client certificates are optional: merchants call with API keys; services present one. */
        .require_client_cert = 0,
    };
    uv_sem_init(&a.admin_closed, 0);
    if (pw_workers_start(&a.pool, a.nworkers, worker_start, worker_stop, &a) != PW_OK) {
        fprintf(stderr, "merchant-server: cannot start %d workers\n", a.nworkers);
        return 1;
    }
    if (a.admin_listen != NULL && a.nworkers > 1) {
        uv_async_send(&a.workers[0].add_metrics);
    }
    /* The main thread waits for signals; serving happens on the workers. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_signal_init(&loop, &a.sigterm);
    uv_signal_init(&loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    int leaked = pw_workers_join(a.pool) + (uv_loop_close(&loop) != 0);
    uv_sem_destroy(&a.admin_closed);
    svc_config_free(a.cfg);
    PW_LOG(PW_LOG_NOTICE, "merchant", "stopped%s", leaked ? " (handles left open)" : "");
    return leaked ? 1 : 0;
}
