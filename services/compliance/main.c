/*
 * compliance-server: the compliance service (docs/design/compliance.md), in
 * the process shell of services/common (svc_main.h: settings, workers, TLS,
 * built-ins, --migrate, drain). Settings: services/compliance/README.md.
 */
#include <stdio.h>
#include <paywire/alloc.h>
#include "compliance.h"

static const svc_setting compliance_settings[] = {
    {"screening_match_threshold", SVC_SETTING_INT, "950", 1, 1000, 0},
    {"screening_potential_threshold", SVC_SETTING_INT, "880", 1, 1000, 0},
    {"comprehensive_sanctions_countries", SVC_SETTING_TEXT, "CU,IR,KP,SY", 0, 0, 0},
    {"reviewer_token_key", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {NULL, 0, NULL, 0, 0, 0},
};

static pw_status compliance_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    compliance_state *s = pw_calloc(1, sizeof(*s));
    if (s == NULL || compliance_lists_new(&s->lists) != PW_OK ||
        audit_queues_new(&s->queues) != PW_OK) {
        if (s != NULL) {
            compliance_lists_free(s->lists);
        }
        pw_free(s);
        snprintf(err, err_len, "out of memory");
        return PW_ERRNO(ENOMEM);
    }
    s->thresholds.match = (unsigned)svc_config_int(cfg, "screening_match_threshold");
    s->thresholds.potential = (unsigned)svc_config_int(cfg, "screening_potential_threshold");
    if (s->thresholds.potential > s->thresholds.match) {
        snprintf(err, err_len, "screening_potential_threshold is above screening_match_threshold");
        compliance_lists_free(s->lists);
        audit_queues_free(s->queues);
        pw_free(s);
        return PW_INVALID_ARGUMENT;
    }
    snprintf(s->comprehensive, sizeof(s->comprehensive), "%s",
             svc_config_text(cfg, "comprehensive_sanctions_countries"));
    const char *key = svc_config_text(cfg, "reviewer_token_key");
    pw_status rv = key && key[0] ? reviewer_key_load(key, &s->reviewer_key, err, err_len) : PW_OK;
    if (rv != PW_OK) {
        compliance_lists_free(s->lists);
        audit_queues_free(s->queues);
        pw_free(s);
        return rv;
    }
    audit_handlers_init(&s->audit);
    lists_handlers_init(&s->screening);
    screening_handlers_init(&s->screening);
    reviews_handlers_init(&s->screening);
    cases_handlers_init(&s->verification);
    monitoring_handlers_init(&s->monitoring);
    *state = s;
    return PW_OK;
}

static void compliance_teardown(void *state)
{
    compliance_state *s = state;
    if (s != NULL) {
        compliance_lists_free(s->lists);
        audit_queues_free(s->queues);
        reviewer_key_free(s->reviewer_key);
        pw_free(s);
    }
}

pw_status compliance_register(pw_server *server, svc_app *app)
{
    compliance_state *s = app->service;
    pw_status rv = paywire_compliance_v1_audit_service_register(server, &s->audit, app);
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_screening_service_register(server, &s->screening, app);
    }
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_verification_service_register(server, &s->verification, app);
    }
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_monitoring_service_register(server, &s->monitoring, app);
    }
    return rv;
}

static const svc_service compliance_service = {
    .name = "compliance",
    .health_service = "paywire.compliance.v1.ScreeningService",
    .domain = COMPLIANCE_DOMAIN,
    .migrations = PW_COMPLIANCE_MIGRATIONS,
    .listen = "127.0.0.1:15064,[::1]:15064",
    .settings = compliance_settings,
    .seals_secrets = 1, /* the parties of cases (personal data) are sealed at rest */
    .setup = compliance_setup,
    .teardown = compliance_teardown,
    .register_services = compliance_register,
};

int main(int argc, char **argv)
{
    return svc_main(&compliance_service, argc, argv);
}
