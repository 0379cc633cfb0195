/*
 * merchant-server: the merchant service (docs/design/merchant.md).
 *   merchant-server [--config FILE] [--migrate]
 * Settings come from FILE ("key = value") and PW_MERCHANT_<KEY> environment
 * variables (see services/merchant/README.md). --migrate applies the
 * migrations and exits. SIGTERM/SIGINT: graceful shutdown (health turns
 * NOT_SERVING, in-flight calls finish, up to 10 s).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/builtins.h>
#include <paywire/json.h>
#include <paywire/metrics.h>
#include "merchant.h"

#define SERVICE_NAME "paywire.merchant.v1.MerchantService"

typedef struct app {
    uv_loop_t *loop;
    svc_config *cfg;
    svc_app svc;
    pw_server *server;
    pw_health *health;
    pw_metrics *metrics;
    pw_admin *admin;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int stopping;
} app;

static void set_health(app *a, int available)
{
    if (a->health != NULL && !a->stopping) {
        pw_health_status st = available ? PW_HEALTH_SERVING : PW_HEALTH_NOT_SERVING;
        pw_health_set(a->health, SERVICE_NAME, st);
        pw_health_set(a->health, "", st);
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
    app *a = ud;
    set_health(a, pw_db_status(res) == PW_OK);
    if (pw_db_status(res) != PW_OK) {
        PW_LOG(PW_LOG_WARNING, "merchant", "database not reachable yet: %s", pw_db_message(res));
    }
}

static void pool_closed(void *ud)
{
    app *a = ud;
    pw_metrics_free(a->metrics);
}

static void server_closed(pw_server *server, void *ud)
{
    (void)server;
    app *a = ud;
    pw_db_pool_close(a->svc.pool, pool_closed, a);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    app *a = sig->data;
    PW_LOG(PW_LOG_NOTICE, "merchant", "signal %d: shutting down", signum);
    a->stopping = 1;
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    pw_admin_close(a->admin);
    pw_server_shutdown(a->server, 10000, server_closed, a);
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
    app a = {0};
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
    if (db_url == NULL || svc_sealer_init(&a.svc.sealer, key) != PW_OK) {
        fprintf(stderr, "merchant-server: database_url and encryption_key (64 hex characters) are "
                        "required\n");
        return 2;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    a.loop = &loop;
    pw_db_options dbo = {.conninfo = db_url,
                         .max_connections =
                             (unsigned)atoi(svc_config_get(a.cfg, "db_connections", "8")),
                         .on_available = on_available,
                         .user_data = &a};
    a.svc.internal_identities = svc_config_get(a.cfg, "internal_identities", "");
    a.svc.resolve_key = resolve_key_locally;
    a.svc.domain = MERCHANT_DOMAIN;
    paywire_merchant_v1_merchant_service_handlers h = {0};
    merchant_handlers_init(&h);
    keys_handlers_init(&h);
    payout_handlers_init(&h);
    pw_tls_config tls = {
        .cert_file = svc_config_get(a.cfg, "tls_cert", NULL),
        .key_file = svc_config_get(a.cfg, "tls_key", NULL),
        .ca_file = svc_config_get(a.cfg, "tls_ca", NULL),
        /* Client certificates are optional: merchants call with API keys; services present one. */
        .require_client_cert = 0,
    };
    const char *listen = svc_config_get(a.cfg, "listen", "127.0.0.1:50061");
    const char *admin_listen = svc_config_get(a.cfg, "admin_listen", NULL);
    int port = 0;
    pw_status rv;
    if ((rv = pw_db_pool_new(&a.svc.pool, &loop, &dbo)) != PW_OK ||
        (rv = pw_server_new(&a.server, &loop, NULL)) != PW_OK ||
        (rv = paywire_merchant_v1_merchant_service_register(a.server, &h, &a.svc)) != PW_OK ||
        (rv = pw_health_enable(a.server, &a.health)) != PW_OK ||
        (rv = pw_reflection_enable(a.server)) != PW_OK ||
        (rv = pw_json_enable(a.server)) != PW_OK ||
        (rv = pw_access_log_enable(a.server, "merchant")) != PW_OK ||
        (rv = pw_metrics_new(&a.metrics, &loop)) != PW_OK ||
        (rv = pw_metrics_observe_server(a.metrics, a.server)) != PW_OK) {
        fprintf(stderr, "merchant-server: setup failed: %s\n", pw_status_str(rv));
        return 1;
    }
    /* NOT_SERVING until the database answers. */
    pw_health_set(a.health, SERVICE_NAME, PW_HEALTH_NOT_SERVING);
    pw_health_set(a.health, "", PW_HEALTH_NOT_SERVING);
    if (admin_listen != NULL && pw_admin_listen(&a.admin, &loop, admin_listen, a.metrics, a.health,
                                                a.server, NULL) != PW_OK) {
        fprintf(stderr, "merchant-server: cannot listen on %s (admin)\n", admin_listen);
        return 1;
    }
    rv = pw_server_listen(a.server, listen, tls.cert_file ? &tls : NULL, &port);
    if (rv != PW_OK) {
        fprintf(stderr, "merchant-server: cannot listen on %s: %s\n", listen, pw_status_str(rv));
        return 1;
    }
    PW_LOG(PW_LOG_NOTICE, "merchant", "listening on %s (port %d, %s)", listen, port,
           tls.cert_file ? "TLS" : "h2c");
    pw_db_query(a.svc.pool, NULL, &probe, NULL, 0, probed, &a);
    uv_signal_init(&loop, &a.sigterm);
    uv_signal_init(&loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);
    int leaked = uv_loop_close(&loop);
    svc_config_free(a.cfg);
    PW_LOG(PW_LOG_NOTICE, "merchant", "stopped%s", leaked ? " (handles left open)" : "");
    return leaked ? 1 : 0;
}
