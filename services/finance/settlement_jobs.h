#ifndef PAYWIRE_FINANCE_SETTLEMENT_JOBS_H
#define PAYWIRE_FINANCE_SETTLEMENT_JOBS_H

/*
 * Settlement's jobs (docs/design/finance.md, Settlement), on svc_sched (one
 * instance runs each, business time svc_now()):
 *   - availability, every `availability_job_seconds`: each capture posted at
 *     least its merchant's delay ago (settlement_settings, T+N days) gets
 *     txf_avail_<cap>, every merchant_pending entry of txf_capture_<cap>
 *     mirrored onto merchant_available (the capture's gross C: Dr pending,
 *     Cr available; its fee F: Dr available, Cr pending). The transfer goes
 *     through the ledger's own API (CreateTransfer on a channel to this
 *     service, as any writer's does: the batcher, its checks and its replay
 *     of a known id), so a run interrupted anywhere runs again and books
 *     nothing twice;
 *   - payouts, every `payout_job_seconds` (payout_job.h).
 */
#include "finance.h"

/**
 * A channel with this service's certificate to target, or to this service itself (its first
 * listen address) when target is NULL.
 */
pw_status settlement_channel(uv_loop_t *loop, const svc_config *cfg, const char *target,
                             pw_channel **out);
/** Starts the jobs on loop with app's pool (*jobs for settlement_jobs_stop). */
pw_status settlement_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs);
void settlement_jobs_stop(void *jobs);

#endif
