/*
 * orchestration-server: the orchestration service
 * (docs/design/orchestration.md), in the process shell of services/common
 * (svc_main.h). Settings: the common ones (services/merchant/README.md) and
 * those of orch_settings (services/orchestration/README.md).
 */
#include "orchestration.h"

/* Each worker: its partner channels (kept open for its life), then the handlers. */
static pw_status register_worker(pw_server *server, svc_app *app)
{
    pw_status rv = orch_links_attach(server, app);
    return rv != PW_OK ? rv : orch_register(server, app);
}

static const svc_service orchestration_service = {
    .name = "orchestration",
    .health_service = "paywire.orchestration.v1.PaymentService",
    .domain = ORCH_DOMAIN,
    .migrations = PW_ORCHESTRATION_MIGRATIONS,
    .listen = "127.0.0.1:15062,[::1]:15062",
    .settings = orch_settings,
    .setup = orch_setup,
    .teardown = orch_teardown,
    .register_services = register_worker,
    .start_jobs = orch_jobs_start,
    .stop_jobs = orch_jobs_stop,
    .resolve_key = orch_resolve_key,
};

int main(int argc, char **argv)
{
    return svc_main(&orchestration_service, argc, argv);
}
