/*
 * finance-server: the finance service (docs/design/finance.md), in the
 * process shell of services/common (svc_main.h: settings, workers, TLS,
 * built-ins, --migrate, drain). Settings: the common ones
 * (services/merchant/README.md).
 */
#include "finance.h"

static const svc_service finance_service = {
    .name = "finance",
    .health_service = "paywire.finance.v1.LedgerService",
    .domain = FINANCE_DOMAIN,
    .migrations = PW_FINANCE_MIGRATIONS,
    .listen = "127.0.0.1:15063,[::1]:15063",
    .register_services = finance_register,
};

int main(int argc, char **argv)
{
    return svc_main(&finance_service, argc, argv);
}
