/*
 * settings.c: orchestration's own settings and the process-wide state made
 * from them (orch_state), read-only once the workers run.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "orchestration.h"

const svc_setting orch_settings[] = {
    /* The acquirer (simulator) address: its AcquirerService authorizes, captures, refunds. */
    {"acquirer_target", SVC_SETTING_TEXT, "localhost:15071", 0, 0, 0},
    /* The card connectors, "name@host:port/cost_bps/cost_fixed_minor" comma-separated, in
     * the default routing order (unset: one, "acquirer_sim@<acquirer_target>"). */
    {"connectors", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* Circuit breakers per connector: rolling window, the requests and error percentage
     * that open it, how long it stays open, trial requests when half open. */
    {"breaker_window_ms", SVC_SETTING_INT, "30000", 30, 3600000, 0},
    {"breaker_min_requests", SVC_SETTING_INT, "20", 1, 1000000, 0},
    {"breaker_error_percent", SVC_SETTING_INT, "50", 1, 100, 0},
    {"breaker_open_ms", SVC_SETTING_INT, "15000", 1, 3600000, 0},
    {"breaker_trials", SVC_SETTING_INT, "5", 1, 1000, 0},
    /* The merchant service's address: API keys are resolved there (unset: internal callers
     * only). */
    {"merchant_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* The finance service's address: the ledger consumer books the outbox's events there
     * (unset: they wait in the outbox). */
    {"finance_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* compliance-server's address: ScreenTransaction before any connector (unset: not
     * screened), and captured payments go to its MonitoringService (unset: they wait in
     * monitoring_events). */
    {"compliance_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* The screening call's deadline (compliance loads a list version on first use). */
    {"compliance_timeout_ms", SVC_SETTING_INT, "5000", 50, 60000, 0},
    /* Compliance unavailable at confirm: "closed" (UNAVAILABLE, the payment waits for the
     * retry) or "open" (routed unscreened). */
    {"compliance_unavailable", SVC_SETTING_TEXT, "closed", 0, 0, 0},
    /* Each partner call's deadline; a lease is 2 × this + 5 s. */
    {"connector_timeout_ms", SVC_SETTING_INT, "2000", 50, 60000, 0},
    {"recovery_interval_ms", SVC_SETTING_INT, "1000", 10, 600000, 0},
    /* On-chain: the custody partner's address (chain.proto), the chain it watches (1
     * Ethereum, 2 Polygon, 3 Base), the confirmations a deposit needs to be final, and how
     * often the watcher polls each open deposit. */
    {"chain_target", SVC_SETTING_TEXT, "localhost:15073", 0, 0, 0},
    {"chain", SVC_SETTING_INT, "1", 1, 3, 0},
    {"chain_confirmations", SVC_SETTING_INT, "12", 1, 1000, 0},
    {"chain_poll_interval_ms", SVC_SETTING_INT, "1000", 10, 600000, 0},
    /* Recovery: an attempt the acquirer has no record of after this long is FAILED. */
    {"attempt_give_up_ms", SVC_SETTING_INT, "60000", 0, 86400000, 0},
    /* Webhooks: 2xx within the deadline is delivered; otherwise retried with exponential
     * backoff from initial to max (jitter up to half), and given up after give_up (3 days). */
    {"webhook_timeout_ms", SVC_SETTING_INT, "10000", 100, 60000, 0},
    {"webhook_backoff_initial_ms", SVC_SETTING_INT, "60000", 10, 86400000, 0},
    {"webhook_backoff_max_ms", SVC_SETTING_INT, "43200000", 10, 86400000, 0},
    {"webhook_give_up_ms", SVC_SETTING_INT, "259200000", 1000, 2592000000, 0},
    /* Tests only: "after_authorize" kills the process once the acquirer answered;
     * "after_capture_commit" once a capture's outcome and event are committed. */
    {"fault_point", SVC_SETTING_TEXT, "", 0, 0, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

static int copy(char *out, size_t cap, const char *s)
{
    return snprintf(out, cap, "%s", s != NULL ? s : "") < (int)cap;
}

pw_status orch_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    orch_state *s = pw_calloc(1, sizeof(*s));
    int ok = copy(s->acquirer_target, sizeof(s->acquirer_target),
                  svc_config_text(cfg, "acquirer_target")) &&
             copy(s->merchant_target, sizeof(s->merchant_target),
                  svc_config_text(cfg, "merchant_target")) &&
             copy(s->compliance_target, sizeof(s->compliance_target),
                  svc_config_text(cfg, "compliance_target")) &&
             copy(s->chain_target, sizeof(s->chain_target), svc_config_text(cfg, "chain_target")) &&
             copy(s->database_url, sizeof(s->database_url), svc_config_text(cfg, "database_url")) &&
             copy(s->finance_target, sizeof(s->finance_target),
                  svc_config_text(cfg, "finance_target")) &&
             copy(s->tls_cert, sizeof(s->tls_cert), svc_config_text(cfg, "tls_cert")) &&
             copy(s->tls_key, sizeof(s->tls_key), svc_config_text(cfg, "tls_key")) &&
             copy(s->tls_ca, sizeof(s->tls_ca), svc_config_text(cfg, "tls_ca")) &&
             copy(s->fault, sizeof(s->fault), svc_config_text(cfg, "fault_point"));
    if (!ok || (s->fault[0] != '\0' && strcmp(s->fault, "after_authorize") != 0 &&
                strcmp(s->fault, "after_capture_commit") != 0)) {
        snprintf(err, err_len,
                 "a path or target is too long, or fault_point is not"
                 " \"after_authorize\" or \"after_capture_commit\"");
        pw_free(s);
        return PW_INVALID_ARGUMENT;
    }
    const char *policy = svc_config_text(cfg, "compliance_unavailable");
    if (strcmp(policy, "open") != 0 && strcmp(policy, "closed") != 0) {
        snprintf(err, err_len, "compliance_unavailable is \"open\" or \"closed\"");
        pw_free(s);
        return PW_INVALID_ARGUMENT;
    }
    s->compliance_fail_open = strcmp(policy, "open") == 0;
    s->compliance_timeout_ms = svc_config_int(cfg, "compliance_timeout_ms");
    s->connector_timeout_ms = svc_config_int(cfg, "connector_timeout_ms");
    s->recovery_interval_ms = svc_config_int(cfg, "recovery_interval_ms");
    s->chain = (int)svc_config_int(cfg, "chain");
    s->chain_confirmations = svc_config_int(cfg, "chain_confirmations");
    s->chain_poll_interval_ms = svc_config_int(cfg, "chain_poll_interval_ms");
    s->attempt_give_up_ms = svc_config_int(cfg, "attempt_give_up_ms");
    s->webhook_timeout_ms = svc_config_int(cfg, "webhook_timeout_ms");
    s->webhook_backoff_initial_ms = svc_config_int(cfg, "webhook_backoff_initial_ms");
    s->webhook_backoff_max_ms = svc_config_int(cfg, "webhook_backoff_max_ms");
    s->webhook_give_up_ms = svc_config_int(cfg, "webhook_give_up_ms");
    const char *connectors = svc_config_text(cfg, "connectors");
    if (connectors == NULL) {
        s->n_connectors = 1;
        snprintf(s->connectors[0].name, sizeof(s->connectors[0].name), "acquirer_sim");
        snprintf(s->connectors[0].target, sizeof(s->connectors[0].target), "%s",
                 s->acquirer_target);
    } else if (orch_connectors_parse(s, connectors, err, err_len) != PW_OK ||
               s->n_connectors == 0) {
        if (s->n_connectors == 0) {
            snprintf(err, err_len, "connectors: at least one");
        }
        pw_free(s);
        return PW_INVALID_ARGUMENT;
    }
    orch_breaker_config bc = {
        .window_ms = svc_config_int(cfg, "breaker_window_ms"),
        .min_requests = svc_config_int(cfg, "breaker_min_requests"),
        .error_percent = svc_config_int(cfg, "breaker_error_percent"),
        .open_ms = svc_config_int(cfg, "breaker_open_ms"),
        .trials = svc_config_int(cfg, "breaker_trials"),
    };
    char suffix[40];
    if (svc_new_id("orch", suffix, sizeof(suffix)) != PW_OK) {
        pw_free(s);
        return PW_ERRNO(ENOMEM);
    }
    snprintf(s->instance, sizeof(s->instance), "%s_%ld", suffix, (long)getpid());
    s->keys = orch_key_cache_new();
    s->breakers = orch_breakers_new(&bc, s->n_connectors);
    s->links = orch_links_new();
    if (s->keys == NULL || s->breakers == NULL || s->links == NULL) {
        orch_key_cache_free(s->keys);
        orch_breakers_free(s->breakers);
        orch_links_free(s->links);
        pw_free(s);
        return PW_ERRNO(ENOMEM);
    }
    *state = s;
    return PW_OK;
}

void orch_teardown(void *state)
{
    orch_state *s = state;
    orch_key_cache_free(s->keys);
    orch_breakers_free(s->breakers);
    orch_links_free(s->links);
    pw_free(s);
}
