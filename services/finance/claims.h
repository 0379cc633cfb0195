#ifndef PAYWIRE_FINANCE_CLAIMS_H
#define PAYWIRE_FINANCE_CLAIMS_H

/*
 * What the ledger's batchers share across a process (docs/design/finance.md,
 * Batching): the names (accounts, transfer ids) that batches in flight have
 * claimed, so that a batcher starts another batch only with ops whose names
 * no batch in flight holds, and so batches in flight never wait on each
 * other's row locks (they would hold their own locks and a connection while
 * waiting, and commit one after the other). A claim is a slot of a hash
 * table: two names in one slot are a false conflict, which only delays an op
 * to the next batch. Claims are a schedule, not a lock: correctness comes
 * from the row locks the transaction takes, so a name claimed under another
 * spelling (an account by id and by key) costs a wait, never a wrong result.
 * Also the batch size counts. Shared by every worker thread (a mutex).
 */
#include <stddef.h>
#include <stdint.h>

typedef struct ledger_shared ledger_shared;

/** Slots per process; a power of two. */
#define LEDGER_CLAIM_SLOTS (1u << 16)

/** A new shared state; batches_in_flight per worker loop (>= 1). NULL on out-of-memory. */
ledger_shared *ledger_shared_new(int batches_in_flight);
/** Frees it (NULL is a no-op); no batch may be in flight. */
void ledger_shared_free(ledger_shared *s);
/**
 * The fee schedules' lead time (fees.c; the `fee_lead_seconds` setting, an hour by
 * default): set by setup before the workers run, read by the handlers.
 */
void ledger_shared_set_fee_lead_us(ledger_shared *s, int64_t us);
int64_t ledger_shared_fee_lead_us(const ledger_shared *s);
/** Batches a worker loop may have in flight at once. */
int ledger_shared_batches_in_flight(const ledger_shared *s);

/** The slot of a name ("id:acc_…", "key:TEST|kind|owner|USD", "txf:TEST|txf_…"). */
uint32_t ledger_claim_slot(const char *name);

/** Takes the lock for the calls below (batch formation checks and claims many names at once). */
void ledger_claims_lock(ledger_shared *s);
void ledger_claims_unlock(ledger_shared *s);
/**
 * 1 when one of slots is held by a batch other than batch: any batch of loop,
 * and, unless other_loops_ignored, a batch of another loop. Lock held.
 */
int ledger_claims_conflict(const ledger_shared *s, const uint32_t *slots, size_t n,
                           const void *batch, const void *loop, int other_loops_ignored);
/** Claims the free slots of slots for batch (of loop). Lock held. */
void ledger_claims_take(ledger_shared *s, const uint32_t *slots, size_t n, const void *batch,
                        const void *loop);
/** Frees the slots batch holds of slots (takes the lock itself). */
void ledger_claims_release(ledger_shared *s, const uint32_t *slots, size_t n, const void *batch);

/** Counts a committed batch of n ops (buckets 1, 2-3, 4-7, ..., 512). */
void ledger_shared_count_size(ledger_shared *s, size_t n);
/** The counts so far. */
void ledger_shared_sizes(ledger_shared *s, uint64_t out[10]);

#endif
