#ifndef PAYWIRE_ACQUIRER_SIM_H
#define PAYWIRE_ACQUIRER_SIM_H

/* The acquirer simulator (acquirer.proto): its behaviour, and what main.c needs of acquirer.c
 * and acquirer.c of report.c. */
#include <stdatomic.h>
#include "svc_main.h"
#include "paywire/simulators/v1/acquirer.pw.h"

/* The behaviour (settings), process-wide and read-only once set up but for the draw counter. */
typedef struct sim_behaviour {
    int64_t latency_min_ms;
    int64_t latency_max_ms;
    int64_t failure_percent;
    int64_t hang_percent;
    int64_t hang_ms;
    int64_t timeout_delay_ms;
    uint64_t seed;
    char prefix[16];
    /* Test cards this acquirer approves whatever acquirer.proto says (comma-separated). */
    char approve_cards[256];
    /* WriteSettlementReport's directory ("": none). */
    char report_dir[400];
    /* Draws so far (the seeded sequence's position), shared by the workers. */
    _Atomic uint64_t draws;
} sim_behaviour;

/** Its settings: latency, failure rate, delays, seed, reference prefix, report_dir. */
extern const svc_setting acquirer_settings[];
/** svc_service.setup: reads the settings into the process-wide behaviour. */
pw_status acquirer_setup(const svc_config *cfg, void **state, char *err, size_t err_len);
void acquirer_teardown(void *state);
/** svc_service.register_services: mounts AcquirerService. */
pw_status acquirer_register(pw_server *server, svc_app *app);

/**
 * report.c: checks dir (NULL or "": reports off), makes it when missing and
 * copies it into b. PW_OK, or PW_INVALID_ARGUMENT with err naming report_dir.
 */
pw_status acquirer_report_dir_init(sim_behaviour *b, const char *dir, char *err, size_t err_len);
/** report.c: the WriteSettlementReport handler (acquirer.proto). */
void acquirer_write_settlement_report(
    pw_call *call, const Paywire__Simulators__V1__WriteSettlementReportRequest *request, void *app);

#endif
