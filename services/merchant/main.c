/*
 * merchant-server: the merchant service (docs/design/merchant.md), in the
 * process shell of services/common (svc_main.h: settings, workers, TLS,
 * built-ins, --migrate, drain). Settings: services/merchant/README.md.
 */
#include "merchant.h"

static const svc_service merchant_service = {
    .name = "merchant",
    .health_service = "paywire.merchant.v1.MerchantService",
    .domain = MERCHANT_DOMAIN,
    .migrations = PW_MERCHANT_MIGRATIONS,
    .listen = "127.0.0.1:15061,[::1]:15061",
    .settings = merchant_settings,
    .seals_secrets = 1,
    .setup = merchant_setup,
    .teardown = merchant_teardown,
    .register_services = merchant_register,
    .start_jobs = merchant_start_jobs,
    .stop_jobs = merchant_stop_jobs,
    .resolve_key = resolve_key_locally,
};

int main(int argc, char **argv)
{
    return svc_main(&merchant_service, argc, argv);
}
