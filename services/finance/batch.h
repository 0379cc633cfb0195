#ifndef PAYWIRE_FINANCE_BATCH_H
#define PAYWIRE_FINANCE_BATCH_H

/*
 * The ledger's write path (docs/design/finance.md, Ledger model: Batching).
 * Handlers validate a request's shape, describe the change as a ledger_op and
 * call ledger_apply, which queues it on the worker loop's batcher and
 * suspends the handler (svc_suspend). The batcher applies every queued op in
 * one PostgreSQL transaction: transfer ids locked (advisory locks in key
 * order), accounts created on first use and locked FOR UPDATE in id order,
 * each op validated on its own against the balances the ops before it left
 * (a refused op changes nothing and fails no neighbour), then one INSERT of
 * the transfers, one of the entries and one UPDATE per touched account row,
 * and one commit. Then it resumes every handler with its own result.
 */
#include <stdint.h>
#include "finance.h"

typedef enum ledger_op_kind {
    LEDGER_CREATE = 1,
    LEDGER_POST,
    LEDGER_VOID,
} ledger_op_kind;

/** One entry of a transfer to create: its account by id or by key, validated by the handler. */
typedef struct ledger_entry_in {
    /** "acc_…", or NULL when the account is named by its key below. */
    const char *account_id;
    /** The key: account kind ("merchant_available"), owner (merchant, partner, institution or
     * ""); the key's currency is the entry's. */
    const char *kind;
    const char *owner;
    int64_t amount;
    const char *currency;
    /** 1 credit, 0 debit. */
    int credit;
    const char *purpose;
} ledger_entry_in;

/** What a handler asks of the ledger, and what it gets back. Lives on the handler's stack. */
typedef struct ledger_op {
    ledger_op_kind kind;
    /** "TEST" or "LIVE". */
    const char *mode;
    const char *transfer_id;
    /* ---- LEDGER_CREATE ---- */
    const char *transfer_kind;
    const char *reference;
    /** Also LEDGER_POST: set on the transfer when it has none (NULL or "": leave it). */
    const char *partner_reference;
    int pending;
    /** "NONE", "AVAILABLE" or "MERCHANT_FUNDS". */
    const char *balance_check;
    const ledger_entry_in *entries;
    size_t entry_count;
    /* ---- the result ---- */
    /** PW_OK, or the failure: its ErrorInfo reason ("" for none), BadRequest field ("" for none)
     * and message. */
    pw_status code;
    char reason[40];
    char field[96];
    char message[300];
    /** On PW_OK: the transfer as stored now, in the call's memory. */
    Paywire__Finance__V1__Transfer *transfer;
    /* ---- the batcher's ---- */
    svc_req *r;
    int alone;
    /* The claim slots of its names (claims.h), in call memory. */
    uint32_t *slots;
    size_t nslots;
    struct ledger_op *next;
} ledger_op;

/**
 * Applies op in the worker loop's next batch and waits for it (the handler
 * is suspended meanwhile). Returns with op's result set; the call is not
 * finished. A failed batch (the database unreachable) gives every op in it
 * that failure; a batch that fails for a reason one op could cause (a
 * constraint) is applied again one op per transaction, so a bad op fails
 * only itself.
 */
void ledger_apply(svc_req *r, ledger_op *op);

#endif
