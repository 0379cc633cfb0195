/*
 * acquirer-sim: a card acquirer simulator (acquirer.proto) in the process
 * shell of services/common, for orchestration's tests and the local stack.
 * Settings: the common ones (services/merchant/README.md) and acquirer.c's.
 */
#include "acquirer.h"

static const svc_service acquirer_service = {
    .name = "acquirer_sim",
    .health_service = "paywire.simulators.v1.AcquirerService",
    .domain = "acquirer-sim.paywire",
    .migrations = PW_ACQUIRER_SIM_MIGRATIONS,
    .listen = "127.0.0.1:15071,[::1]:15071",
    .settings = acquirer_settings,
    .setup = acquirer_setup,
    .teardown = acquirer_teardown,
    .register_services = acquirer_register,
};

int main(int argc, char **argv)
{
    return svc_main(&acquirer_service, argc, argv);
}
