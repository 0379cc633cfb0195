#ifndef PAYWIRE_PAYOUT_BANK_SIM_H
#define PAYWIRE_PAYOUT_BANK_SIM_H

/* The payout bank simulator (payout_bank.proto): what main.c needs of bank.c. */
#include "svc_main.h"
#include "paywire/simulators/v1/payout_bank.pw.h"

/** Its settings: latency, failures, lost answers, settlement delay, charge, seed. */
extern const svc_setting bank_settings[];
/** svc_service.setup: reads the settings into the process-wide behaviour. */
pw_status bank_setup(const svc_config *cfg, void **state, char *err, size_t err_len);
void bank_teardown(void *state);
/** svc_service.register_services: mounts PayoutBankService. */
pw_status bank_register(pw_server *server, svc_app *app);

#endif
