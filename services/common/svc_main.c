/*
 * svc_main.c: the process shell of every business service (svc_main.h).
 *
 * The main thread reads the settings, runs --migrate or starts the workers,
 * then waits for SIGTERM/SIGINT. Each worker owns everything on its loop;
 * what the workers share (the settings, the sealer, the service's state) is
 * written before they start and only read afterwards. Shutdown runs on each
 * worker in this order: the sweeper, the service's jobs and (worker 0) the admin listener stop,
 * the server drains, then the tracer and the database pool close, then what
 * remains is freed. The admin listener renders every worker's metrics, so
 * the other workers free theirs only after worker 0 closed it (a semaphore).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/builtins.h>
#include <paywire/json.h>
#include <paywire/metrics.h>
#include <paywire/trace.h>
#include <paywire/workers.h>
#include "svc_main.h"
#include "svc_sweep.h"

#define MAX_WORKERS 64
#define MAX_LISTEN  4
#define DRAIN_MS    10000

const svc_setting svc_main_settings[] = {
    {"listen", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"admin_listen", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"database_url", SVC_SETTING_TEXT, NULL, 0, 0, 1},
    {"migrate_database_url", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"migrations", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"db_connections", SVC_SETTING_INT, "8", 1, 256, 0},
    {"workers", SVC_SETTING_INT, "0", 0, MAX_WORKERS, 0},
    {"tls_cert", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"tls_key", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"tls_ca", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"internal_identities", SVC_SETTING_TEXT, "", 0, 0, 0},
    {"encryption_key", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"log_level", SVC_SETTING_TEXT, "info", 0, 0, 0},
    {"otlp_endpoint", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"idempotency_retention_hours", SVC_SETTING_INT, "168", 24, 24 * 3650, 0},
    {"idempotency_sweep_seconds", SVC_SETTING_INT, "3600", 1, 7 * 86400, 0},
    {"merchant_rate_limit_per_second", SVC_SETTING_INT, "100", 0, 1000000, 0},
    {"merchant_rate_limit_burst", SVC_SETTING_INT, "200", 1, 1000000, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

struct shell;

/* One loop's share: everything here lives and dies on that worker's thread. */
typedef struct worker {
    struct shell *sh;
    int index;
    svc_app app;
    pw_server *server;
    pw_health *health;
    pw_metrics *metrics;
    pw_tracer *tracer;
    int stopping;
    /* Worker 0 only: the admin listener, the nudge that adds the others' metrics to it, and
     * the idempotency sweeper. */
    pw_admin *admin;
    uv_async_t add_metrics;
    svc_sweeper *sweeper;
    void *jobs;
} worker;

typedef struct shell {
    const svc_service *svc;
    svc_config *cfg;
    svc_sealer sealer;
    void *state;
    pw_db_options dbo;
    svc_sweep_options sweep;
    pw_tls_config tls;
    char *listen[MAX_LISTEN];
    int nlisten;
    int nworkers;
    worker workers[MAX_WORKERS];
    pw_workers *pool;
    uv_sem_t admin_closed;
    uv_signal_t sigterm;
    uv_signal_t sigint;
} shell;

/* ---- out-of-memory: service code never checks an allocation ---- */

static void *oom(size_t size)
{
    fprintf(stderr, "out of memory (%zu bytes); exiting\n", size);
    abort();
}

static void *checked_malloc(size_t size, void *ud)
{
    (void)ud;
    void *p = malloc(size ? size : 1);
    return p != NULL ? p : oom(size);
}

static void *checked_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    void *p = realloc(ptr, size ? size : 1);
    return p != NULL ? p : oom(size);
}

static void checked_free(void *ptr, void *ud)
{
    (void)ud;
    free(ptr);
}

static const pw_allocator abort_on_oom = {checked_malloc, checked_realloc, checked_free, NULL};

/* ---- health tied to the database ---- */

static void set_health(worker *w, int available)
{
    if (w->health != NULL && !w->stopping) {
        pw_health_status st = available ? PW_HEALTH_SERVING : PW_HEALTH_NOT_SERVING;
        pw_health_set(w->health, w->sh->svc->health_service, st);
        pw_health_set(w->health, "", st);
    }
}

static void on_available(pw_db_pool *pool, int available, void *ud)
{
    (void)pool;
    set_health(ud, available);
}

static const pw_db_stmt probe = {"svc_probe", "SELECT 1", 0, {0}};

static void probed(pw_db_result *res, void *ud)
{
    worker *w = ud;
    set_health(w, pw_db_status(res) == PW_OK);
    if (pw_db_status(res) != PW_OK && w->index == 0) {
        PW_LOG(PW_LOG_WARNING, w->sh->svc->name, "database not reachable yet: %s",
               pw_db_message(res));
    }
}

/* ---- a worker ---- */

static void pool_closed(pw_db_pool *pool, void *ud)
{
    (void)pool;
    worker *w = ud;
    pw_rate_limiter_free(w->app.merchant_limit);
    pw_metrics_close(w->metrics, NULL, NULL);
    if (svc_fibers_active(w->app.fibers) == 0) {
        svc_fibers_free(w->app.fibers);
    } else {
        PW_LOG(PW_LOG_ERR, w->sh->svc->name, "worker %d: %zu handlers still running at exit",
               w->index, svc_fibers_active(w->app.fibers));
    }
}

static void server_closed(pw_server *server, void *ud)
{
    worker *w = ud;
    /* The registry outlives the server (the pool's handlers may still call out), and
     * its lag timer must not read a freed server's connection count. */
    pw_metrics_forget_server(w->metrics, server);
    pw_tracer_close(w->tracer, NULL, NULL);
    pw_db_pool_close(w->app.pool, pool_closed, w);
}

static _Noreturn void fail_setup(worker *w, const char *what, pw_status rv)
{
    fprintf(stderr, "%s-server: worker %d: %s: %s\n", w->sh->svc->name, w->index, what,
            pw_status_str(rv));
    exit(1); /* a worker that cannot serve at start-up ends the process */
}

/* Worker 0: adds every other worker's registry to /metrics (they exist once start returned). */
static void on_add_metrics(uv_async_t *h)
{
    worker *w = h->data;
    shell *sh = w->sh;
    for (int i = 1; i < sh->nworkers; i++) {
        if (pw_admin_add_metrics(w->admin, sh->workers[i].metrics) != PW_OK) {
            PW_LOG(PW_LOG_WARNING, sh->svc->name, "admin: cannot add worker %d's metrics", i);
        }
    }
    uv_close((uv_handle_t *)h, NULL);
}

static void worker_app(worker *w, uv_loop_t *loop)
{
    shell *sh = w->sh;
    pw_db_options dbo = sh->dbo;
    dbo.user_data = w;
    w->app = (svc_app){
        .internal_identities = svc_config_text(sh->cfg, "internal_identities"),
        .resolve_key = sh->svc->resolve_key,
        .domain = sh->svc->domain,
        .sealer = sh->svc->seals_secrets ? &sh->sealer : NULL,
        .service = sh->state,
    };
    int64_t rate = svc_config_int(sh->cfg, "merchant_rate_limit_per_second");
    int64_t burst = svc_config_int(sh->cfg, "merchant_rate_limit_burst");
    pw_status rv;
    if (rate > 0 && (rv = pw_rate_limiter_new(&w->app.merchant_limit, (uint32_t)rate,
                                              (uint32_t)burst)) != PW_OK) {
        fail_setup(w, "rate limiter", rv);
    }
    if ((rv = svc_fibers_new(&w->app.fibers, 0)) != PW_OK ||
        (rv = pw_db_pool_new(&w->app.pool, loop, &dbo)) != PW_OK) {
        fail_setup(w, "database pool", rv);
    }
}

static void worker_server(worker *w, uv_loop_t *loop)
{
    shell *sh = w->sh;
    pw_server_options so = {.reuse_port = sh->nworkers > 1};
    pw_status rv;
    if ((rv = pw_server_new(&w->server, loop, &so)) != PW_OK ||
        (rv = sh->svc->register_services(w->server, &w->app)) != PW_OK ||
        (rv = pw_health_enable(w->server, &w->health)) != PW_OK ||
        (rv = pw_reflection_enable(w->server)) != PW_OK ||
        (rv = pw_json_enable(w->server)) != PW_OK ||
        (rv = pw_access_log_enable(w->server, sh->svc->name)) != PW_OK ||
        (rv = pw_metrics_new(&w->metrics, loop)) != PW_OK ||
        (rv = pw_metrics_observe_server(w->metrics, w->server)) != PW_OK) {
        fail_setup(w, "setup failed", rv);
    }
    w->app.metrics = w->metrics;
    /* Spans only where they go somewhere: a tracer draws random ids for every call. */
    const char *otlp = svc_config_text(sh->cfg, "otlp_endpoint");
    if (otlp != NULL && ((rv = pw_tracer_new(&w->tracer, loop, sh->svc->name, otlp)) != PW_OK ||
                         (rv = pw_tracer_observe_server(w->tracer, w->server)) != PW_OK)) {
        fail_setup(w, "tracing", rv);
    }
    /* NOT_SERVING until the database answers. */
    pw_health_set(w->health, sh->svc->health_service, PW_HEALTH_NOT_SERVING);
    pw_health_set(w->health, "", PW_HEALTH_NOT_SERVING);
}

/* Every listen address; one the machine lacks (no IPv6 loopback, say) is skipped if another
 * one works. */
static void worker_listen(worker *w)
{
    shell *sh = w->sh;
    const pw_tls_config *tls = sh->tls.cert_file ? &sh->tls : NULL;
    int bound = 0;
    for (int i = 0; i < sh->nlisten; i++) {
        int port = 0;
        pw_status rv = pw_server_listen(w->server, sh->listen[i], tls, &port);
        if (rv == UV_EADDRNOTAVAIL || rv == UV_EAFNOSUPPORT) {
            PW_LOG(PW_LOG_WARNING, sh->svc->name, "cannot listen on %s: %s; skipped", sh->listen[i],
                   pw_status_str(rv));
            continue;
        }
        if (rv != PW_OK) {
            fail_setup(w, sh->listen[i], rv);
        }
        bound++;
        if (w->index == 0) {
            PW_LOG(PW_LOG_NOTICE, sh->svc->name, "listening on %s (port %d, %s, %d worker%s)",
                   sh->listen[i], port, tls ? "TLS" : "h2c", sh->nworkers,
                   sh->nworkers == 1 ? "" : "s");
        }
    }
    if (bound == 0) {
        fail_setup(w, "no listen address could be bound", UV_EADDRNOTAVAIL);
    }
}

static void worker_start(uv_loop_t *loop, int index, void *ud)
{
    shell *sh = ud;
    worker *w = &sh->workers[index];
    *w = (worker){.sh = sh, .index = index};
    worker_app(w, loop);
    worker_server(w, loop);
    pw_status rv;
    if (index == 0 &&
        (rv = svc_sweeper_start(&w->sweeper, loop, w->app.pool, &sh->sweep)) != PW_OK) {
        fail_setup(w, "idempotency sweeper", rv);
    }
    if (index == 0 && sh->svc->start_jobs != NULL &&
        (rv = sh->svc->start_jobs(&w->app, loop, sh->cfg, &w->jobs)) != PW_OK) {
        fail_setup(w, "background jobs", rv);
    }
    const char *admin = svc_config_text(sh->cfg, "admin_listen");
    if (index == 0 && admin != NULL) {
        if ((rv = pw_admin_listen(&w->admin, loop, admin, w->metrics, w->health, w->server,
                                  NULL)) != PW_OK) {
            fail_setup(w, "cannot listen (admin)", rv);
        }
        uv_async_init(loop, &w->add_metrics, on_add_metrics);
        w->add_metrics.data = w;
    }
    worker_listen(w);
    pw_db_query(w->app.pool, NULL, &probe, NULL, 0, probed, w);
}

static void worker_stop(uv_loop_t *loop, int index, void *ud)
{
    (void)loop;
    shell *sh = ud;
    worker *w = &sh->workers[index];
    w->stopping = 1;
    if (index == 0) {
        svc_sweeper_stop(w->sweeper);
        if (sh->svc->stop_jobs != NULL) {
            sh->svc->stop_jobs(w->jobs);
        }
        if (w->admin != NULL && !uv_is_closing((uv_handle_t *)&w->add_metrics)) {
            uv_close((uv_handle_t *)&w->add_metrics, NULL);
        }
        pw_admin_close(w->admin, NULL, NULL);
        for (int i = 1; i < sh->nworkers; i++) {
            uv_sem_post(&sh->admin_closed);
        }
    } else {
        uv_sem_wait(&sh->admin_closed); /* worker 0 may still render this worker's metrics */
    }
    pw_server_shutdown(w->server, DRAIN_MS, server_closed, w);
}

/* ---- the process ---- */

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

static int migrate(const shell *sh)
{
    const char *url = svc_config_text(sh->cfg, "migrate_database_url");
    const char *dir = svc_config_text(sh->cfg, "migrations");
    char lock[96], err[1024];
    int applied = 0;
    snprintf(lock, sizeof(lock), "paywire.migrate.%s", sh->svc->name);
    pw_status rv = pw_db_migrate(url ? url : svc_config_text(sh->cfg, "database_url"),
                                 dir ? dir : sh->svc->migrations, lock, &applied, err, sizeof(err));
    if (rv != PW_OK) {
        fprintf(stderr, "%s-server: migration failed: %s\n", sh->svc->name, err);
        return 1;
    }
    fprintf(stderr, "%s-server: %d migration%s applied; schema up to date\n", sh->svc->name,
            applied, applied == 1 ? "" : "s");
    return 0;
}

static int log_level(const char *s, pw_log_level *out)
{
    static const struct {
        const char *name;
        pw_log_level level;
    } levels[] = {{"debug", PW_LOG_DEBUG},
                  {"info", PW_LOG_INFO},
                  {"notice", PW_LOG_NOTICE},
                  {"warning", PW_LOG_WARNING},
                  {"error", PW_LOG_ERR}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcmp(s, levels[i].name) == 0) {
            *out = levels[i].level;
            return 1;
        }
    }
    return 0;
}

/* "a,b" into sh->listen; each worker listens on all of them. */
static int split_listen(shell *sh, const char *list, char *err, size_t err_len)
{
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0 || sh->nlisten == MAX_LISTEN) {
            snprintf(err, err_len, "listen: 1 to %d addresses separated by commas", MAX_LISTEN);
            return 0;
        }
        sh->listen[sh->nlisten++] = pw_strndup(p, n);
        const char *colon = strrchr(sh->listen[sh->nlisten - 1], ':');
        if (sh->nworkers > 1 && (colon == NULL || atoi(colon + 1) == 0)) {
            snprintf(err, err_len,
                     "listen: %s: with more than one worker every address needs "
                     "a fixed port (each worker would get a port of its own)",
                     sh->listen[sh->nlisten - 1]);
            return 0;
        }
        p += n + (comma != NULL);
    }
    return 1;
}

/* Everything that depends only on the settings; err says what is wrong. */
static int configure(shell *sh, char *err, size_t err_len)
{
    const svc_config *cfg = sh->cfg;
    pw_log_level level;
    if (!log_level(svc_config_text(cfg, "log_level"), &level)) {
        snprintf(err, err_len, "log_level: one of debug, info, notice, warning, error");
        return 0;
    }
    pw_log_set_level(level);
    if (sh->svc->seals_secrets &&
        svc_sealer_init(&sh->sealer, svc_config_text(cfg, "encryption_key")) != PW_OK) {
        snprintf(err, err_len, "encryption_key is required: 64 hex characters (32 bytes)");
        return 0;
    }
    sh->nworkers = (int)svc_config_int(cfg, "workers");
    if (sh->nworkers == 0) {
        sh->nworkers = (int)uv_available_parallelism();
        sh->nworkers = sh->nworkers > MAX_WORKERS ? MAX_WORKERS : sh->nworkers;
    }
    const char *listen = svc_config_text(cfg, "listen");
    if (!split_listen(sh, listen ? listen : sh->svc->listen, err, err_len)) {
        return 0;
    }
    sh->dbo = (pw_db_options){
        .conninfo = svc_config_text(cfg, "database_url"),
        .max_connections = (unsigned)svc_config_int(cfg, "db_connections"),
        .on_available = on_available,
    };
    sh->sweep.retention_hours = (int)svc_config_int(cfg, "idempotency_retention_hours");
    sh->sweep.interval_ms = (uint64_t)svc_config_int(cfg, "idempotency_sweep_seconds") * 1000u;
    sh->sweep.first_ms = sh->sweep.interval_ms < 10000 ? sh->sweep.interval_ms : 10000;
    sh->tls = (pw_tls_config){
        .cert_file = svc_config_text(cfg, "tls_cert"),
        .key_file = svc_config_text(cfg, "tls_key"),
        .ca_file = svc_config_text(cfg, "tls_ca"),
        /* Client certificates are optional: merchants call with API keys; services present one. */
        .require_client_cert = 0,
    };
    return sh->svc->setup == NULL || sh->svc->setup(cfg, &sh->state, err, err_len) == PW_OK;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    shell *sh = sig->data;
    PW_LOG(PW_LOG_NOTICE, sh->svc->name, "signal %d: shutting down", signum);
    uv_close((uv_handle_t *)&sh->sigterm, NULL);
    uv_close((uv_handle_t *)&sh->sigint, NULL);
    pw_workers_stop(sh->pool);
}

/* Serves until a signal; returns the exit code. */
static int serve(shell *sh)
{
    uv_sem_init(&sh->admin_closed, 0);
    /* The main thread waits for signals; serving happens on the workers. The handlers are
     * in place before any worker can report SERVING: a SIGTERM right after that must drain,
     * not kill (libuv holds it until the loop below runs). */
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_signal_init(&loop, &sh->sigterm);
    uv_signal_init(&loop, &sh->sigint);
    sh->sigterm.data = sh->sigint.data = sh;
    uv_signal_start(&sh->sigterm, on_signal, SIGTERM);
    uv_signal_start(&sh->sigint, on_signal, SIGINT);
    if (pw_workers_start(&sh->pool, sh->nworkers, worker_start, worker_stop, sh) != PW_OK) {
        fprintf(stderr, "%s-server: cannot start %d workers\n", sh->svc->name, sh->nworkers);
        uv_close((uv_handle_t *)&sh->sigterm, NULL);
        uv_close((uv_handle_t *)&sh->sigint, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    if (svc_config_text(sh->cfg, "admin_listen") != NULL && sh->nworkers > 1) {
        uv_async_send(&sh->workers[0].add_metrics);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int leaked = (pw_workers_join(sh->pool) != PW_OK) + (uv_loop_close(&loop) != 0);
    uv_sem_destroy(&sh->admin_closed);
    PW_LOG(PW_LOG_NOTICE, sh->svc->name, "stopped%s", leaked ? " (handles left open)" : "");
    return leaked ? 1 : 0;
}

int svc_main(const svc_service *s, int argc, char **argv)
{
    pw_set_allocator(&abort_on_oom);
    signal(SIGPIPE, SIG_IGN);
    char err[512] = "", prefix[64];
    snprintf(prefix, sizeof(prefix), "PW_%s_", s->name);
    for (char *p = prefix; *p; p++) {
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    }
    shell *sh = pw_calloc(1, sizeof(*sh)); /* large (per-worker state); lives for the process */
    sh->svc = s;
    int rc = 2;
    if (svc_config_load(&sh->cfg, svc_main_settings, s->settings,
                        flag_value(argc, argv, "--config"), prefix, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "%s-server: %s\n", s->name, err);
    } else if (has_flag(argc, argv, "--migrate")) {
        rc = migrate(sh);
    } else if (!configure(sh, err, sizeof(err))) {
        fprintf(stderr, "%s-server: %s\n", s->name, err);
    } else {
        rc = serve(sh);
    }
    if (s->teardown != NULL && sh->state != NULL) {
        s->teardown(sh->state);
    }
    for (int i = 0; i < sh->nlisten; i++) {
        pw_free(sh->listen[i]);
    }
    svc_config_free(sh->cfg);
    pw_free(sh);
    return rc;
}
