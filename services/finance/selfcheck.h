#ifndef PAYWIRE_FINANCE_SELFCHECK_H
#define PAYWIRE_FINANCE_SELFCHECK_H

/*
 * The ledger's self-check (docs/design/finance.md, Invariants): every
 * `ledger_check_seconds` (0: never), on worker 0, every account's stored
 * counters and version are recomputed from its entries and every (mode,
 * currency) must sum to zero; each difference is an error log line
 * ("ledger self-check: ..."), never silence, and the metric
 * ledger_selfcheck_differences is set to their number. LedgerService.CheckLedger
 * runs the same check on demand (internal callers) and answers with them.
 */
#include "ledger_names.h"

/** svc_service.start_jobs: starts the timer on loop (*jobs: the job, for selfcheck_stop). */
pw_status selfcheck_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
/** LedgerService.CheckLedger's handler (registered by ledger.c). */
void selfcheck_serve(pw_call *call, const Paywire__Finance__V1__CheckLedgerRequest *req, void *app);
/** svc_service.stop_jobs: stops it; freed once its timer closed and no check is running. */
void selfcheck_stop(void *jobs);

#endif
