#ifndef PAYWIRE_FINANCE_CUTOFF_JOB_H
#define PAYWIRE_FINANCE_CUTOFF_JOB_H

/*
 * The cut-off job (docs/design/finance.md, Settlement; "Settlement as
 * built"), a C job of settlement's scheduler: every `cutoff_job_seconds` of
 * business time, once the day's cut-off (`settlement_cutoff_minute` after
 * 00:00 UTC) has passed, each merchant available account (mode, merchant,
 * currency) with a payable balance and no batch for that day gets one:
 * CreateSettlementBatch on the channel to this service, its idempotency key
 * "cutoff/<mode>/<merchant>/<currency>/<day>" (a rerun, or another instance,
 * answers the same batch; the day's batch is unique anyway). The merchant's
 * state is asked of the merchant service first (GetMerchant): SUSPENDED
 * merchants get no batch (their funds stay available); CLOSED ones get no
 * batch while a reserve is still held, so their final balance is paid once
 * the reserve period is over. The job is off without merchant_target (it
 * never batches a merchant whose state it cannot know).
 */
#include "finance.h"
#include "svc_sched.h"

typedef struct cutoff_job cutoff_job;

/**
 * A job for settlement's scheduler (*job filled; the job's state into *out), or PW_OK with
 * *out NULL when the job is off (cutoff_job_seconds 0, or merchant_target unset). self is the
 * channel to this service (borrowed; it must outlive the job). PW_ERRNO(ENOMEM) or a channel
 * error otherwise.
 */
pw_status cutoff_job_new(cutoff_job **out, svc_job *job, svc_app *app, uv_loop_t *loop,
                         const svc_config *cfg, pw_channel *self);
/** Stops: closes its channel; frees it now, or when the run in progress ends. NULL: no-op. */
void cutoff_job_stop(cutoff_job *j);

#endif
