#ifndef PAYWIRE_ACQUIRER_SIM_H
#define PAYWIRE_ACQUIRER_SIM_H

/* The acquirer simulator (acquirer.proto): what main.c needs of acquirer.c. */
#include "svc_main.h"
#include "paywire/simulators/v1/acquirer.pw.h"

/** Its settings: latency, failure rate, delays, seed, reference prefix. */
extern const svc_setting acquirer_settings[];
/** svc_service.setup: reads the settings into the process-wide behaviour. */
pw_status acquirer_setup(const svc_config *cfg, void **state, char *err, size_t err_len);
void acquirer_teardown(void *state);
/** svc_service.register_services: mounts AcquirerService. */
pw_status acquirer_register(pw_server *server, svc_app *app);

#endif
