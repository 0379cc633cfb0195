#ifndef PAYWIRE_FINANCE_PAYOUT_JOB_H
#define PAYWIRE_FINANCE_PAYOUT_JOB_H

/*
 * The payout job (docs/design/finance.md, "Payout execution and
 * idempotency"; "Settlement as built"), a C job of settlement's scheduler:
 * every `payout_job_seconds` of business time, each READY TEST batch is paid
 * to its merchant's bank destination (the merchant service's
 * ListSettlementDestinations, the first bank account in the batch's
 * currency) through payout-bank-sim, and each IN_TRANSIT one is asked about:
 *   1. the bank is asked for the instruction pyo_<the batch's 26 characters>
 *      (the bank's idempotency key, derived from the batch: a retry or a run
 *      after a crash asks for the same one); known: its answer is used;
 *   2. unknown (READY): the merchant's state is read (GetMerchant); a
 *      SUSPENDED merchant's batch is not sent (logged, stays READY, paid
 *      once the merchant is reinstated); the destination is screened
 *      (compliance's ScreenParty: the holder's name and the bank's country,
 *      or the wallet, keyed by the destination and the active list
 *      versions, so one review decides every batch to it): only
 *      CLEAR, or a match a reviewer has CLEARED (GetScreening), goes on; a
 *      match awaiting or confirmed by review, or compliance not answering,
 *      leaves the batch READY, logged (fail closed); else the instruction is written
 *      PREPARED (payouts, with the SHA-256 of its exact content, committed
 *      before it leaves; a later attempt whose content differs, a
 *      destination changed meanwhile, is refused and logged), then
 *      submitted;
 *   3. accepted: MarkBatchPaid with the bank's reference (IN_TRANSIT);
 *      rejected: ConfirmBatch failed; settled: ConfirmBatch succeeded
 *      (SETTLED, clearing → our cash); returned: ConfirmBatch failed
 *      (FAILED, clearing → available, paid by the next batch). The
 *      transitions go through SettlementService on the channel to this
 *      service, which books each transfer once by its fixed id.
 * Account numbers are held in call memory only, never stored or logged.
 * Batches in a token (USDC, USDT) take the same steps on the chain rail
 * when payout_chain_target is set: the merchant's wallet for the token on
 * payout_chain, chain-sim's GetTransfer/Withdraw from our treasury wallet
 * keyed by the instruction id; in a block → accepted (the transaction hash
 * is the reference), at payout_confirmations → settled, dropped by a reorg
 * → returned, INSUFFICIENT_FUNDS → rejected. Unset, they wait. A batch in a
 * currency no rail pays (those, or any other) waits READY, logged at each run,
 * for an operator.
 * LIVE batches are left alone (payout-bank-sim is a simulator, and no real
 * rail exists yet).
 */
#include "finance.h"
#include "svc_sched.h"

typedef struct payout_job payout_job;

/**
 * A job for settlement's scheduler (*job filled; the job's state into *out), or PW_OK with
 * *out NULL when the job is off (payout_job_seconds 0, or merchant_target,
 * payout_bank_target or compliance_target unset: no destination is paid unscreened). self is the
 * channel to this service (borrowed; it must outlive the job). PW_ERRNO(ENOMEM) or a channel error
 * otherwise.
 */
pw_status payout_job_new(payout_job **out, svc_job *job, svc_app *app, uv_loop_t *loop,
                         const svc_config *cfg, pw_channel *self);
/** Stops: closes its channels; frees it now, or when the run in progress ends. NULL: no-op. */
void payout_job_stop(payout_job *j);

#endif
