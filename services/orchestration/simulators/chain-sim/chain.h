#ifndef PAYWIRE_CHAIN_SIM_H
#define PAYWIRE_CHAIN_SIM_H

/* The chain simulator (chain.proto): what main.c needs of chain.c. */
#include "svc_main.h"
#include "paywire/simulators/v1/chain.pw.h"

/** Its settings: the chain, its tokens, the seed of its addresses and hashes. */
extern const svc_setting chain_settings[];
/** svc_service.setup: reads the settings into the process-wide behaviour. */
pw_status chain_setup(const svc_config *cfg, void **state, char *err, size_t err_len);
void chain_teardown(void *state);
/** svc_service.register_services: mounts ChainService. */
pw_status chain_register(pw_server *server, svc_app *app);

#endif
