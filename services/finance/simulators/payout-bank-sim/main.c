/*
 * payout-bank-sim: a payout bank simulator (payout_bank.proto) in the process
 * shell of services/common, for finance's tests and the local stack.
 * Settings: the common ones (services/merchant/README.md) and bank.c's.
 */
#include "bank.h"

static const svc_service bank_service = {
    .name = "payout_bank_sim",
    .health_service = "paywire.simulators.v1.PayoutBankService",
    .domain = "payout-bank-sim.paywire",
    .migrations = PW_PAYOUT_BANK_SIM_MIGRATIONS,
    .listen = "127.0.0.1:15075,[::1]:15075",
    .settings = bank_settings,
    .setup = bank_setup,
    .teardown = bank_teardown,
    .register_services = bank_register,
};

int main(int argc, char **argv)
{
    return svc_main(&bank_service, argc, argv);
}
