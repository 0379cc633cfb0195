/*
 * finance-server: the finance service (docs/design/finance.md), in the
 * process shell of services/common (svc_main.h: settings, workers, TLS,
 * built-ins, --migrate, drain). Settings: the common ones
 * (services/merchant/README.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <paywire/log.h>
#include "batch.h"
#include "selfcheck.h"

/* No process-wide state yet: setup gives teardown something to run for. */
static int finance_state;

static pw_status finance_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    (void)cfg;
    (void)err;
    (void)err_len;
    *state = &finance_state;
    return PW_OK;
}

/* The ledger's batch sizes since start, in one log line (bench/finance reads it). */
static void finance_teardown(void *state)
{
    (void)state;
    uint64_t n[10];
    ledger_batch_sizes(n);
    char line[400];
    int len = 0;
    for (int i = 0; i < 10; i++) {
        len += snprintf(line + len, sizeof(line) - (size_t)len, "%s%d:%" PRIu64, i ? " " : "",
                        1 << i, n[i]);
    }
    PW_LOG(PW_LOG_NOTICE, "finance", "ledger batches by size (from): %s", line);
}

static const svc_setting finance_settings[] = {
    /* The ledger self-check's period (0: never); daily by default. */
    {"ledger_check_seconds", SVC_SETTING_INT, "86400", 0, 7 * 86400, 0},
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

static const svc_service finance_service = {
    .name = "finance",
    .health_service = "paywire.finance.v1.LedgerService",
    .domain = FINANCE_DOMAIN,
    .migrations = PW_FINANCE_MIGRATIONS,
    .listen = "127.0.0.1:15063,[::1]:15063",
    .setup = finance_setup,
    .teardown = finance_teardown,
    .settings = finance_settings,
    .start_jobs = selfcheck_start,
    .stop_jobs = selfcheck_stop,
    .register_services = finance_register,
};

int main(int argc, char **argv)
{
    return svc_main(&finance_service, argc, argv);
}
