/*
 * chain-sim: an EVM chain and the custody partner of our deposit addresses
 * (chain.proto) in the process shell of services/common, for orchestration's
 * on-chain tests and the local stack. Settings: the common ones
 * (services/merchant/README.md) and chain.c's.
 */
#include "chain.h"

static const svc_service chain_service = {
    .name = "chain_sim",
    .health_service = "paywire.simulators.v1.ChainService",
    .domain = "chain-sim.paywire",
    .migrations = PW_CHAIN_SIM_MIGRATIONS,
    .listen = "127.0.0.1:15073,[::1]:15073",
    .settings = chain_settings,
    .setup = chain_setup,
    .teardown = chain_teardown,
    .register_services = chain_register,
};

int main(int argc, char **argv)
{
    return svc_main(&chain_service, argc, argv);
}
