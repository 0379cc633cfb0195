/*
 * finance-server: the finance service (docs/design/finance.md), in the
 * process shell of services/common (svc_main.h: settings, workers, TLS,
 * built-ins, --migrate, drain). Settings: the common ones
 * (services/merchant/README.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <paywire/log.h>
#include "batch.h"
#include "claims.h"
#include "recon_jobs.h"
#include "selfcheck.h"
#include "settlement_jobs.h"
#include "svc_audit.h"

/* The process-wide state: what the ledger's batchers share (claims.h). */
static pw_status finance_setup(const svc_config *cfg, void **state, char *err, size_t err_len)
{
    ledger_shared *s = ledger_shared_new((int)svc_config_int(cfg, "ledger_batches_in_flight"));
    *state = s;
    if (s == NULL) {
        snprintf(err, err_len, "out of memory");
        return PW_ERRNO(ENOMEM);
    }
    ledger_shared_set_fee_lead_us(s, svc_config_int(cfg, "fee_lead_seconds") * 1000000);
    return PW_OK;
}

/* The ledger's batch sizes since start, in one log line (bench/finance reads it). */
static void finance_teardown(void *state)
{
    uint64_t n[10];
    ledger_shared_sizes(state, n);
    char line[400];
    int len = 0;
    for (int i = 0; i < 10; i++) {
        len += snprintf(line + len, sizeof(line) - (size_t)len, "%s%d:%" PRIu64, i ? " " : "",
                        1 << i, n[i]);
    }
    PW_LOG(PW_LOG_NOTICE, "finance", "ledger batches by size (from): %s", line);
    ledger_shared_free(state);
}

static const svc_setting finance_settings[] = {
    /* The ledger self-check's period (0: never); daily by default. */
    {"ledger_check_seconds", SVC_SETTING_INT, "86400", 0, 7 * 86400, 0},
    /* Ledger batches a worker loop may have in flight at once, on disjoint accounts (each holds
     * a database connection while it runs: keep it below db_connections). */
    {"ledger_batches_in_flight", SVC_SETTING_INT, "4", 1, 64, 0},
    /* How far ahead a fee schedule must take effect (the fee of a capture never changes once
     * computed). Only a local stack or a demo sets 0, so a fresh ledger can price at once. */
    {"fee_lead_seconds", SVC_SETTING_INT, "3600", 0, 7 * 86400, 0},
    /* Reconciliation's jobs (recon_jobs.h), in business time (0: never); hourly by default. */
    {"recon_job_seconds", SVC_SETTING_INT, "3600", 0, 86400, 0},
    /* The availability and reserve release jobs (settlement_jobs.h), in business time (0:
     * never). */
    {"availability_job_seconds", SVC_SETTING_INT, "600", 0, 86400, 0},
    /* The payout job (payout_job.h), in business time (0: never), and the services it pays
     * through: merchant-server (ListSettlementDestinations) and payout-bank-sim (unset: off). */
    {"payout_job_seconds", SVC_SETTING_INT, "60", 0, 86400, 0},
    {"merchant_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"payout_bank_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* compliance-server, whose ScreenParty screens each destination before it is paid (fail
     * closed: unset, the payout job is off). */
    {"compliance_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    /* The custody partner whose treasury wallet pays batches in a token (chain-sim's
     * Withdraw; unset: token batches wait), and the confirmations after which such a payout
     * is SETTLED. */
    {"payout_chain_target", SVC_SETTING_TEXT, NULL, 0, 0, 0},
    {"payout_confirmations", SVC_SETTING_INT, "12", 1, 1000, 0},
    /* The chain its treasury pays on (paywire.common.v1.Chain: 1 Ethereum, 2 Polygon, 3 Base):
     * a wallet on another chain cannot be paid from it. */
    {"payout_chain", SVC_SETTING_INT, "1", 1, 3, 0},
    /* The cut-off job (cutoff_job.h), in business time (0: never; off without merchant_target),
     * and the cut-off: minutes after 00:00 UTC at which a day's batches are made. */
    {"cutoff_job_seconds", SVC_SETTING_INT, "300", 0, 86400, 0},
    {"settlement_cutoff_minute", SVC_SETTING_INT, "0", 0, 1439, 0},
    /* compliance-server's address; its AuditService gets the audit outbox (fee schedule
     * changes; unset: kept here). */
    SVC_AUDIT_SETTING,
    {NULL, SVC_SETTING_TEXT, NULL, 0, 0, 0},
};

/* The background jobs of worker 0: the ledger's self-check, reconciliation's and settlement's
 * jobs and the audit outbox's publisher. */
typedef struct finance_jobs {
    void *selfcheck;
    void *recon;
    void *settlement;
    svc_audit *audit;
} finance_jobs;

static void finance_stop_jobs(void *jobs)
{
    finance_jobs *j = jobs;
    if (j != NULL) {
        selfcheck_stop(j->selfcheck);
        recon_jobs_stop(j->recon);
        settlement_jobs_stop(j->settlement);
        svc_audit_stop(j->audit);
        pw_free(j);
    }
}

static pw_status finance_start_jobs(svc_app *app, uv_loop_t *loop, const svc_config *cfg,
                                    void **jobs)
{
    finance_jobs *j = pw_calloc(1, sizeof(*j));
    *jobs = j;
    if (j == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw_status rv = selfcheck_start(app, loop, cfg, &j->selfcheck);
    if (rv == PW_OK) {
        rv = recon_jobs_start(app, loop, cfg, &j->recon);
    }
    if (rv == PW_OK) {
        rv = settlement_jobs_start(app, loop, cfg, &j->settlement);
    }
    if (rv == PW_OK) {
        rv = svc_audit_start(&j->audit, app, loop, cfg, "finance");
    }
    return rv;
}

static const svc_service finance_service = {
    .name = "finance",
    .health_service = "paywire.finance.v1.LedgerService",
    .domain = FINANCE_DOMAIN,
    .migrations = PW_FINANCE_MIGRATIONS,
    .listen = FINANCE_LISTEN,
    .setup = finance_setup,
    .teardown = finance_teardown,
    .settings = finance_settings,
    .start_jobs = finance_start_jobs,
    .stop_jobs = finance_stop_jobs,
    .register_services = finance_register,
};

int main(int argc, char **argv)
{
    return svc_main(&finance_service, argc, argv);
}
