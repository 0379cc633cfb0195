#ifndef PAYWIRE_FINANCE_RECON_JOBS_H
#define PAYWIRE_FINANCE_RECON_JOBS_H

/*
 * Reconciliation's jobs (docs/design/finance.md, Reconciliation), on the
 * scheduler of services/common (svc_sched: one instance runs each, on the
 * business clock svc_now()), every `recon_job_seconds`:
 *   - recon_missing_in_report: each posted partner-facing transfer (capture,
 *     refund, their reversals, chargeback) of the last 45 days that no report
 *     row found, by itself or as a member of a net settlement line
 *     (recon_row_members), once its expected settlement date (booking date +
 *     the partner's lag) + grace days has passed gets one MISSING_IN_REPORT
 *     break;
 *   - recon_rerun: open MISSING_IN_LEDGER breaks of plain rows younger than 7
 *     days are matched again, and clear when the ledger now has their item
 *     (a delayed booking), same currency, amount within the drift. A net
 *     line's are not: the line sent again in a later report clears them.
 */
#include "finance.h"

/** Starts the scheduler on loop with app's pool (*jobs for recon_jobs_stop). */
pw_status recon_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
void recon_jobs_stop(void *jobs);

#endif
