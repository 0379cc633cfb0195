/*
 * compliance-server: the compliance service (docs/design/compliance.md), in
 * the process shell of services/common (svc_main.h: settings, workers, TLS,
 * built-ins, --migrate, drain). Settings: services/compliance/README.md.
 */
#include "compliance.h"

pw_status compliance_register(pw_server *server, svc_app *app)
{
    static paywire_compliance_v1_audit_service_handlers audit;
    static paywire_compliance_v1_screening_service_handlers screening;
    static const paywire_compliance_v1_verification_service_handlers verification;
    static const paywire_compliance_v1_monitoring_service_handlers monitoring;
    audit_handlers_init(&audit);
    lists_handlers_init(&screening);
    pw_status rv = paywire_compliance_v1_audit_service_register(server, &audit, app);
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_screening_service_register(server, &screening, app);
    }
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_verification_service_register(server, &verification, app);
    }
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_monitoring_service_register(server, &monitoring, app);
    }
    return rv;
}

static const svc_service compliance_service = {
    .name = "compliance",
    .health_service = "paywire.compliance.v1.ScreeningService",
    .domain = COMPLIANCE_DOMAIN,
    .migrations = PW_COMPLIANCE_MIGRATIONS,
    .listen = "127.0.0.1:15064,[::1]:15064",
    .register_services = compliance_register,
};

int main(int argc, char **argv)
{
    return svc_main(&compliance_service, argc, argv);
}
