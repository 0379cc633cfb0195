/*
 * payout_job.c: the payout job (see payout_job.h). A run reads a page of
 * READY and IN_TRANSIT TEST batches inside the job's transaction (which holds
 * the job's lock: one instance pays), then takes them one at a time through
 * a chain of calls: the bank's record of the instruction, else the
 * merchant's state (a SUSPENDED merchant's batch is not sent and stays READY
 * until it is reinstated), the destination, its screening with compliance
 * (fail closed), the PREPARED row and the submission; then the transitions on
 * the channel to this service. Every step is idempotent by a fixed id (the
 * instruction id, the batch's transitions, their transfers), so a run that
 * stops anywhere is completed by the next one. A failure on one batch is
 * logged and counted, not the run's error (only reading the page fails a
 * run): the run goes on with the next batch, and the job keeps its interval
 * instead of retrying a batch that cannot be paid every tick. Pages follow a
 * keyset on (create_time, id): a full page runs the job again at once from
 * where it ended, so batches that wait (in transit, or not payable) never
 * hide newer ones; a shorter page starts the next run from the beginning.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <paywire/errors.h>
#include <paywire/log.h>
#include "payout_job.h"
#include "settlement_jobs.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/merchant/v1/merchant.pw.h"
#include "paywire/simulators/v1/chain.pw.h"
#include "paywire/simulators/v1/payout_bank.pw.h"

#define PAGE 50

typedef Paywire__Simulators__V1__Payout BankPayout;

typedef struct payout_batch {
    char id[40], mode[8], merchant[40], currency[8], state[16];
    int64_t net;
    int on_chain; /* a token: paid from the treasury wallet, else by the bank */
    int payable;  /* a rail pays its currency (else it waits, logged, for an operator) */
} payout_batch;

struct payout_job {
    pw_db_pool *pool;
    pw_channel *self, *merchant, *bank, *chain; /* chain NULL: token batches wait */
    pw_channel *compliance;                     /* screens each destination before it is paid */
    int64_t confirmations;                      /* a withdrawal's, to be SETTLED */
    int treasury_chain;                         /* the chain the treasury pays on */
    svc_sched_run *run;
    payout_batch batches[PAGE];
    int n, at;
    /* The batch in progress: its instruction and the bank's answer. */
    char instruction[40], destination[40], name[144], account[80], sha[65], country[4];
    char screening[40]; /* the destination's screening, when it matched */
    char lists[17];     /* a digest of the active sanctions list versions (the key's) */
    int wallet_chain;   /* the destination wallet's chain (paywire.common.v1.Chain) */
    char bank_reference[80], bank_state[16], reason[24];
    int32_t requests;
    pw_status first_error;
    char error[300];
    int failed;
    /* The keyset cursor: the last batch of the previous full page (-infinity from the start). */
    char after_time[40], after_id[40];
    int more;
    int stopping;
};

/* The bank pays EUR, GBP and USD; the treasury wallet USDC and USDT, when the job has the
 * custody partner ($3 = 1). A batch in another currency is read too, so that its wait is
 * logged instead of silent. */
static const pw_db_stmt due_batches = {
    "payout_due_batches",
    "SELECT id, mode, merchant_id, currency, state, net_payout,"
    " to_char(create_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || 'Z' AS after_time,"
    " (currency IN ('USDC', 'USDT'))::int4 AS on_chain,"
    " (currency IN ('EUR', 'GBP', 'USD') OR ($3 = 1 AND currency IN ('USDC', 'USDT')))::int4"
    " AS payable"
    " FROM settlement_batches"
    " WHERE state IN ('READY', 'IN_TRANSIT') AND mode = 'TEST' AND ledger_booked"
    " AND (create_time, id) > ($1::timestamptz, $2)"
    " ORDER BY create_time, id LIMIT 50",
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT4}};
/* The PREPARED instruction, once; its digest as first stored (the CTE's snapshot does not see
 * its own insert, so exactly one row comes back). */
static const pw_db_stmt prepare_payout = {
    "payout_prepare",
    "WITH ins AS (INSERT INTO payouts (id, batch_id, mode, rail, destination_id, amount_minor,"
    " currency, instruction_sha256) VALUES ($1, $2, $3, $8, $4, $5, $6, $7)"
    " ON CONFLICT (batch_id) DO NOTHING RETURNING instruction_sha256)"
    " SELECT instruction_sha256 FROM ins UNION ALL"
    " SELECT instruction_sha256 FROM payouts WHERE batch_id = $2",
    8,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_TEXT, PW_DB_TEXT,
     PW_DB_TEXT}};
static const pw_db_stmt record_answer = {
    "payout_record_answer",
    "UPDATE payouts SET state = $2, bank_reference = $3, bank_state = $4, return_reason = $5,"
    " bank_requests = $6, send_time = coalesce(send_time, now()), update_time = now()"
    " WHERE id = $1",
    6,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};

static void next_batch(payout_job *j);
static void batch_failed(payout_job *j, pw_status rv, const char *what, const char *message);

/* One call of the batch in progress (borrowing req); cb continues the chain. */
static void call(payout_job *j, pw_channel *c, const char *path, const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *response_type, pw_unary_done_cb cb)
{
    pw_call_options o = {.timeout_ms = 30000};
    pw_status rv = pw_client_unary(c, path, &o, req, response_type, cb, NULL, j);
    if (rv != PW_OK) {
        OPENSSL_cleanse(j->account, sizeof(j->account));
        batch_failed(j, rv, "cannot call", path);
    }
}

static payout_batch *current(payout_job *j)
{
    return &j->batches[j->at];
}

/* Logs a batch's failure (with the batch; never an account number) and goes on. */
static void batch_failed(payout_job *j, pw_status rv, const char *what, const char *message)
{
    PW_LOG(PW_LOG_WARNING, "finance", "payout of batch %s: %s: %s %s", current(j)->id, what,
           pw_status_str(rv), message);
    j->failed++;
    next_batch(j);
}

static void cursor_reset(payout_job *j)
{
    snprintf(j->after_time, sizeof(j->after_time), "%s", "-infinity");
    j->after_id[0] = '\0';
}

static void finish(payout_job *j)
{
    OPENSSL_cleanse(j->account, sizeof(j->account));
    svc_sched_run *run = j->run;
    j->run = NULL;
    if (j->failed > 0) {
        PW_LOG(PW_LOG_NOTICE, "finance", "payouts: %d batch(es) failed, tried again next run",
               j->failed);
    }
    int more = j->more && j->first_error == PW_OK;
    if (!more) {
        cursor_reset(j);
    }
    svc_sched_run_done(run, j->first_error, more, j->error);
    if (j->stopping) {
        pw_free(j);
    }
}

/* ---- transitions (SettlementService on the channel to this service) ---- */

static void transitioned(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                         void *ud);

static void confirm(payout_job *j, int succeeded)
{
    payout_batch *b = current(j);
    char key[80], reason[64];
    snprintf(key, sizeof(key), "payout-job-confirm-%s-%d", b->id, succeeded);
    snprintf(reason, sizeof(reason), "%s by the %s: %s",
             strcmp(j->bank_state, "REJECTED") == 0 ? "rejected" : "returned",
             b->on_chain ? "custody partner" : "bank", j->reason);
    Paywire__Finance__V1__ConfirmBatchRequest req =
        PAYWIRE__FINANCE__V1__CONFIRM_BATCH_REQUEST__INIT;
    req.idempotency_key = key;
    req.batch_id = b->id;
    req.succeeded = succeeded;
    req.failure_reason = succeeded ? "" : reason;
    req.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    snprintf(b->state, sizeof(b->state), "%s", "CONFIRMING");
    call(j, j->self, "/paywire.finance.v1.SettlementService/ConfirmBatch", &req.base,
         &paywire__finance__v1__confirm_batch_response__descriptor, transitioned);
}

/* After the bank's answer is recorded: the transitions it calls for, in order. */
static void advance(payout_job *j)
{
    if (j->stopping) {
        finish(j); /* the channels are closed */
        return;
    }
    payout_batch *b = current(j);
    const char *s = j->bank_state;
    if (strcmp(b->state, "CONFIRMING") == 0) {
        next_batch(j);
    } else if (strcmp(s, "REJECTED") == 0) {
        confirm(j, 0);
    } else if (strcmp(b->state, "READY") == 0) {
        char key[80];
        snprintf(key, sizeof(key), "payout-job-paid-%s", b->id);
        Paywire__Finance__V1__MarkBatchPaidRequest req =
            PAYWIRE__FINANCE__V1__MARK_BATCH_PAID_REQUEST__INIT;
        req.idempotency_key = key;
        req.batch_id = b->id;
        req.payout_reference = j->bank_reference;
        req.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
        call(j, j->self, "/paywire.finance.v1.SettlementService/MarkBatchPaid", &req.base,
             &paywire__finance__v1__mark_batch_paid_response__descriptor, transitioned);
    } else if (strcmp(s, "SETTLED") == 0 || strcmp(s, "RETURNED") == 0) {
        confirm(j, strcmp(s, "SETTLED") == 0);
    } else {
        next_batch(j); /* ACCEPTED: in transit, asked again at the next run */
    }
}

static void transitioned(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                         void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code != PW_OK) {
        batch_failed(j, res->code, "the batch's transition was refused", res->message);
        return;
    }
    (void)resp;
    payout_batch *b = current(j);
    if (strcmp(b->state, "CONFIRMING") != 0) {
        snprintf(b->state, sizeof(b->state), "%s", "IN_TRANSIT"); /* MarkBatchPaid answered */
    }
    advance(j);
}

/* ---- the bank's answer ---- */

static void answer_recorded(pw_db_result *res, void *ud)
{
    payout_job *j = ud;
    if (pw_db_status(res) != PW_OK) {
        batch_failed(j, pw_db_status(res), "cannot record the bank's answer", pw_db_message(res));
        return;
    }
    advance(j);
}

/* Stores the partner's answer (j->bank_state etc.) on the instruction: SENT, CONFIRMED or
 * FAILED. */
static void record(payout_job *j)
{
    const char *state = strcmp(j->bank_state, "SETTLED") == 0    ? "CONFIRMED"
                        : strcmp(j->bank_state, "ACCEPTED") == 0 ? "SENT"
                                                                 : "FAILED";
    pw_db_param q[] = {pw_db_text(j->instruction),    pw_db_text(state),
                       pw_db_text(j->bank_reference), pw_db_text(j->bank_state),
                       pw_db_text(j->reason),         pw_db_int8(j->requests)};
    pw_status rv = pw_db_query(j->pool, NULL, &record_answer, q, 6, answer_recorded, j);
    if (rv != PW_OK) {
        batch_failed(j, rv, "cannot record the bank's answer", "");
    }
}

/* Copies the bank's record and stores it. */
static void use_answer(payout_job *j, const BankPayout *p)
{
    static const char *const states[] = {"", "ACCEPTED", "SETTLED", "REJECTED", "RETURNED"};
    snprintf(j->bank_state, sizeof(j->bank_state), "%s",
             (unsigned)p->state < 5 ? states[p->state] : "");
    snprintf(j->bank_reference, sizeof(j->bank_reference), "%s", p->bank_reference);
    snprintf(j->reason, sizeof(j->reason), "%s", p->return_reason);
    j->requests = p->requests;
    record(j);
}

/* A withdrawal in the bank's terms: in a block below the confirmations ACCEPTED, at them
 * SETTLED, dropped by a reorg RETURNED (nothing arrived; the next batch pays it); its
 * reference the transaction hash. */
static void use_transfer(payout_job *j, const Paywire__Simulators__V1__Transfer *t)
{
    int dropped = t->state != PAYWIRE__SIMULATORS__V1__TRANSFER_STATE__TRANSFER_STATE_INCLUDED;
    snprintf(j->bank_state, sizeof(j->bank_state), "%s",
             dropped                                         ? "RETURNED"
             : (int64_t)t->confirmations >= j->confirmations ? "SETTLED"
                                                             : "ACCEPTED");
    snprintf(j->bank_reference, sizeof(j->bank_reference), "%s", t->transaction_hash);
    snprintf(j->reason, sizeof(j->reason), "%s", dropped ? "DROPPED_BY_REORG" : "");
    j->requests = t->requests;
    record(j);
}

/* 1 when a refusal's ErrorInfo reason is reason. */
static int refused_for(const pw_result *res, const char *reason)
{
    pw_error_details d = {0};
    int is = pw_error_details_read(res->trailing_metadata, &d) == PW_OK && d.reason != NULL &&
             strcmp(d.reason, reason) == 0;
    pw_error_details_clear(&d);
    return is;
}

static void withdrawn(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                      void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code == PW_FAILED_PRECONDITION && refused_for(res, "INSUFFICIENT_FUNDS")) {
        /* Nothing left the treasury: a rejection, the money goes back to available. */
        snprintf(j->bank_state, sizeof(j->bank_state), "%s", "REJECTED");
        snprintf(j->reason, sizeof(j->reason), "%s", "INSUFFICIENT_FUNDS");
        j->bank_reference[0] = '\0';
        j->requests = 1;
        record(j);
        return;
    }
    if (res->code != PW_OK) {
        /* A lost answer is asked for at the next run (the partner sent it, or not). */
        batch_failed(j, res->code, "the custody partner did not send the withdrawal", res->message);
        return;
    }
    use_transfer(j, ((const Paywire__Simulators__V1__WithdrawResponse *)resp)->transfer);
}

static void submitted(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                      void *ud)
{
    (void)typed;
    payout_job *j = ud;
    OPENSSL_cleanse(j->account, sizeof(j->account));
    if (res->code != PW_OK) {
        /* A lost answer is asked for at the next run (the bank recorded it, or not). */
        batch_failed(j, res->code, "the bank did not accept the instruction", res->message);
        return;
    }
    use_answer(j, ((const Paywire__Simulators__V1__SubmitPayoutResponse *)resp)->payout);
}

static void submit(payout_job *j)
{
    payout_batch *b = current(j);
    if (b->on_chain) {
        Paywire__Common__V1__ChainAddress to = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
        to.chain = (Paywire__Common__V1__Chain)j->wallet_chain;
        to.address = j->account;
        Paywire__Simulators__V1__WithdrawRequest req =
            PAYWIRE__SIMULATORS__V1__WITHDRAW_REQUEST__INIT;
        req.idempotency_key = j->instruction;
        req.to_address = &to;
        req.token = b->currency;
        req.amount_minor = b->net;
        call(j, j->chain, "/paywire.simulators.v1.ChainService/Withdraw", &req.base,
             &paywire__simulators__v1__withdraw_response__descriptor, withdrawn);
        return;
    }
    Paywire__Simulators__V1__SubmitPayoutRequest req =
        PAYWIRE__SIMULATORS__V1__SUBMIT_PAYOUT_REQUEST__INIT;
    req.instruction_id = j->instruction;
    req.end_to_end_id = b->id;
    req.amount_minor = b->net;
    req.currency = b->currency;
    req.creditor_name = j->name;
    req.creditor_account = j->account;
    call(j, j->bank, "/paywire.simulators.v1.PayoutBankService/SubmitPayout", &req.base,
         &paywire__simulators__v1__submit_payout_response__descriptor, submitted);
}

static void prepared(pw_db_result *res, void *ud)
{
    payout_job *j = ud;
    if (j->stopping) {
        OPENSSL_cleanse(j->account, sizeof(j->account));
        finish(j);
        return;
    }
    if (pw_db_status(res) != PW_OK || pw_db_rows(res) != 1) {
        OPENSSL_cleanse(j->account, sizeof(j->account));
        batch_failed(j, pw_db_status(res), "cannot prepare the instruction", pw_db_message(res));
        return;
    }
    const char *sha = "";
    size_t len;
    pw_db_get_text(res, 0, 0, &sha, &len);
    if (strcmp(sha, j->sha) != 0) {
        OPENSSL_cleanse(j->account, sizeof(j->account));
        batch_failed(j, PW_FAILED_PRECONDITION, "not sent",
                     "the destination differs from the instruction prepared first (an operator"
                     " decides)");
        return;
    }
    submit(j);
}

/* ---- the destination ---- */

/* The instruction's digest: every field the bank receives, so any change shows. */
static void digest(payout_job *j)
{
    payout_batch *b = current(j);
    char content[512];
    int len = snprintf(content, sizeof(content), "%s|%s|%lld|%s|%s|%s", j->instruction, b->id,
                       (long long)b->net, b->currency, j->name, j->account);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)content, (size_t)len, md);
    OPENSSL_cleanse(content, sizeof(content));
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(j->sha + 2 * i, 3, "%02x", md[i]);
    }
}

/* The first wallet for the batch's token on the treasury's chain: 1 and its address copied,
 * or 0. */
static int pick_wallet(payout_job *j,
                       const Paywire__Merchant__V1__ListSettlementDestinationsResponse *r)
{
    for (size_t i = 0; i < r->n_destinations; i++) {
        const Paywire__Merchant__V1__SettlementDestination *d = r->destinations[i];
        const Paywire__Merchant__V1__Wallet *w = d->wallet;
        if (d->destination_case !=
                PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_WALLET ||
            w->address == NULL || (int)w->address->chain != j->treasury_chain ||
            strcmp(w->token, current(j)->currency) != 0) {
            continue;
        }
        snprintf(j->destination, sizeof(j->destination), "%s", d->id);
        j->name[0] = j->country[0] = '\0';
        snprintf(j->account, sizeof(j->account), "%s", w->address->address);
        j->wallet_chain = (int)w->address->chain;
        return 1;
    }
    return 0;
}

/* The first bank account in the batch's currency (a wallet for a token): 1 and its fields
 * copied, or 0. */
static int pick_destination(payout_job *j,
                            const Paywire__Merchant__V1__ListSettlementDestinationsResponse *r)
{
    if (current(j)->on_chain) {
        return pick_wallet(j, r);
    }
    for (size_t i = 0; i < r->n_destinations; i++) {
        const Paywire__Merchant__V1__SettlementDestination *d = r->destinations[i];
        const Paywire__Merchant__V1__BankAccount *a = d->bank_account;
        if (d->destination_case !=
                PAYWIRE__MERCHANT__V1__SETTLEMENT_DESTINATION__DESTINATION_BANK_ACCOUNT ||
            strcmp(a->currency, current(j)->currency) != 0) {
            continue;
        }
        snprintf(j->destination, sizeof(j->destination), "%s", d->id);
        snprintf(j->name, sizeof(j->name), "%s", a->account_holder_name);
        snprintf(j->country, sizeof(j->country), "%s", a->country);
        if (a->iban[0] != '\0') {
            snprintf(j->account, sizeof(j->account), "%s", a->iban);
        } else {
            snprintf(j->account, sizeof(j->account), "%s:%s", a->routing_code, a->account_number);
        }
        return 1;
    }
    return 0;
}

/* The PREPARED instruction to the screened destination, then its submission. */
static void prepare(payout_job *j)
{
    digest(j);
    payout_batch *b = current(j);
    pw_db_param q[] = {pw_db_text(j->instruction), pw_db_text(b->id),
                       pw_db_text(b->mode),        pw_db_text(j->destination),
                       pw_db_int8(b->net),         pw_db_text(b->currency),
                       pw_db_text(j->sha),         pw_db_text(b->on_chain ? "CHAIN" : "SIMULATOR")};
    pw_status rv = pw_db_query(j->pool, NULL, &prepare_payout, q, 8, prepared, j);
    if (rv != PW_OK) {
        OPENSSL_cleanse(j->account, sizeof(j->account));
        batch_failed(j, rv, "cannot prepare the instruction", "");
    }
}

/* ---- the destination's screening (fail closed) ---- */

#define SCREENING(x) PAYWIRE__COMPLIANCE__V1__SCREENING_OUTCOME__SCREENING_OUTCOME_##x
#define REVIEW(x)    PAYWIRE__COMPLIANCE__V1__SCREENING_REVIEW_STATE__SCREENING_REVIEW_STATE_##x

/* Not sent: compliance did not answer, or the destination matched and is not cleared. */
static void not_screened(payout_job *j, pw_status rv, const char *why)
{
    OPENSSL_cleanse(j->account, sizeof(j->account));
    char message[400];
    snprintf(message, sizeof(message), "destination %s: %s (the batch stays READY)", j->destination,
             why);
    batch_failed(j, rv, "not sent", message);
}

static void got_screening(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                          void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code != PW_OK) {
        not_screened(j, res->code, "compliance did not answer about its screening (fail closed)");
        return;
    }
    const Paywire__Compliance__V1__Screening *s =
        ((const Paywire__Compliance__V1__GetScreeningResponse *)resp)->screening;
    if (s != NULL && s->review_state == REVIEW(CLEARED)) {
        prepare(j); /* a reviewer cleared the match: a false positive */
        return;
    }
    char why[200];
    snprintf(why, sizeof(why),
             "matches a sanctions list (screening %s, %s): paid once compliance"
             " clears the screening",
             j->screening,
             s != NULL && s->review_state == REVIEW(CONFIRMED) ? "confirmed by review"
                                                               : "awaiting review");
    not_screened(j, PW_FAILED_PRECONDITION, why);
}

static void screened(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                     void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code != PW_OK) {
        char why[300];
        snprintf(why, sizeof(why), "compliance did not screen it (fail closed): %s", res->message);
        not_screened(j, res->code, why);
        return;
    }
    const Paywire__Compliance__V1__ScreenPartyResponse *r = (const void *)resp;
    if (r->outcome == SCREENING(CLEAR)) {
        prepare(j);
        return;
    }
    /* A match, or one for a person to judge: paid only when its review has cleared it. */
    snprintf(j->screening, sizeof(j->screening), "%s", r->screening_id);
    Paywire__Compliance__V1__GetScreeningRequest req =
        PAYWIRE__COMPLIANCE__V1__GET_SCREENING_REQUEST__INIT;
    req.screening_id = j->screening;
    call(j, j->compliance, "/paywire.compliance.v1.ScreeningService/GetScreening", &req.base,
         &paywire__compliance__v1__get_screening_response__descriptor, got_screening);
}

/* ScreenParty of the destination about to be paid: the holder's name (fuzzily) and the bank's
 * country, or the wallet (exactly), against the active lists. The key is the destination's and
 * the active list versions': every batch to it, the runs of one that waits and a run after a
 * crash get the same screening while the lists stay the same (one review decides them all),
 * and a new version of any list screens it afresh (an earlier CLEAR is never replayed over a
 * list that could name it). */
static void screen_party(payout_job *j)
{
    Paywire__Compliance__V1__Party party = PAYWIRE__COMPLIANCE__V1__PARTY__INIT;
    Paywire__Common__V1__ChainAddress wallet = PAYWIRE__COMMON__V1__CHAIN_ADDRESS__INIT;
    Paywire__Common__V1__ChainAddress *wallets[] = {&wallet};
    char *names[] = {j->name}, *countries[] = {j->country};
    if (current(j)->on_chain) {
        wallet.chain = (Paywire__Common__V1__Chain)j->wallet_chain;
        wallet.address = j->account;
        party.wallets = wallets;
        party.n_wallets = 1;
    } else {
        party.names = names;
        party.n_names = j->name[0] != '\0';
        party.countries = countries;
        party.n_countries = j->country[0] != '\0';
    }
    char key[100];
    snprintf(key, sizeof(key), "payout-%s-%s", j->destination, j->lists);
    Paywire__Compliance__V1__ScreenPartyRequest req =
        PAYWIRE__COMPLIANCE__V1__SCREEN_PARTY_REQUEST__INIT;
    req.idempotency_key = key;
    req.party = &party;
    req.subject_id = j->destination;
    j->screening[0] = '\0';
    call(j, j->compliance, "/paywire.compliance.v1.ScreeningService/ScreenParty", &req.base,
         &paywire__compliance__v1__screen_party_response__descriptor, screened);
}

typedef Paywire__Compliance__V1__SanctionsList SanctionsList;

static int by_list_version(const void *a, const void *b)
{
    const SanctionsList *x = *(const SanctionsList *const *)a,
                        *y = *(const SanctionsList *const *)b;
    int c = strcmp(x->list, y->list);
    return c != 0 ? c : strcmp(x->version, y->version);
}

/* The active versions, sorted, digested into j->lists; then the screening. */
static void got_lists(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                      void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code != PW_OK) {
        char why[300];
        snprintf(why, sizeof(why), "compliance did not list its sanctions lists (fail closed): %s",
                 res->message);
        not_screened(j, res->code, why);
        return;
    }
    const Paywire__Compliance__V1__ListSanctionsListsResponse *r = (const void *)resp;
    const SanctionsList *active[64];
    size_t n = 0;
    for (size_t i = 0; i < r->n_lists; i++) {
        if (r->lists[i]->active && n == 64) {
            not_screened(j, PW_FAILED_PRECONDITION,
                         "compliance has more than 64 active sanctions lists (fail closed)");
            return;
        }
        if (r->lists[i]->active) {
            active[n++] = r->lists[i];
        }
    }
    qsort(active, n, sizeof(*active), by_list_version);
    /* "list@version" each with its NUL ("a@b" "c" is not "a" "b@c"); snprintf cuts a field
     * at 199 characters, far beyond any list's name or version. */
    char joined[64 * 200];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(joined + len, 200, "%s@%s", active[i]->list, active[i]->version);
        len += (w < 200 ? (size_t)w : 199) + 1;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)joined, len, md);
    for (int i = 0; i < 8; i++) {
        snprintf(j->lists + 2 * i, 3, "%02x", md[i]);
    }
    screen_party(j);
}

static void screen(payout_job *j)
{
    Paywire__Compliance__V1__ListSanctionsListsRequest req =
        PAYWIRE__COMPLIANCE__V1__LIST_SANCTIONS_LISTS_REQUEST__INIT;
    call(j, j->compliance, "/paywire.compliance.v1.ScreeningService/ListSanctionsLists", &req.base,
         &paywire__compliance__v1__list_sanctions_lists_response__descriptor, got_lists);
}

static void got_destinations(const ProtobufCMessage *resp, const pw_result *res,
                             void (*typed)(void), void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code != PW_OK) {
        batch_failed(j, res->code, "the merchant service did not list the destinations",
                     res->message);
        return;
    }
    if (!pick_destination(j, (const void *)resp)) {
        batch_failed(j, PW_FAILED_PRECONDITION, "not sent",
                     current(j)->on_chain
                         ? "the merchant has no wallet destination for the batch's token on"
                           " the treasury's chain (setting payout_chain)"
                         : "the merchant has no bank destination in the batch's currency");
        return;
    }
    if (strchr(j->account, '*') != NULL) {
        OPENSSL_cleanse(j->account, sizeof(j->account));
        batch_failed(j, PW_PERMISSION_DENIED, "not sent",
                     "the merchant service masked the account number (add finance to its"
                     " payout_readers)");
        return;
    }
    screen(j);
}

static void list_destinations(payout_job *j)
{
    Paywire__Merchant__V1__ListSettlementDestinationsRequest req =
        PAYWIRE__MERCHANT__V1__LIST_SETTLEMENT_DESTINATIONS_REQUEST__INIT;
    req.merchant_id = current(j)->merchant;
    req.page_size = 100;
    call(j, j->merchant, "/paywire.merchant.v1.MerchantService/ListSettlementDestinations",
         &req.base, &paywire__merchant__v1__list_settlement_destinations_response__descriptor,
         got_destinations);
}

/* ---- the merchant's state, before a new instruction ---- */

static void got_merchant(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                         void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code != PW_OK) {
        batch_failed(j, res->code, "the merchant service did not answer", res->message);
        return;
    }
    const Paywire__Merchant__V1__Merchant *m =
        ((const Paywire__Merchant__V1__GetMerchantResponse *)resp)->merchant;
    if (m != NULL && m->state == PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_SUSPENDED) {
        /* As the cut-off job: its funds wait until it is reinstated. */
        batch_failed(j, PW_FAILED_PRECONDITION, "not sent",
                     "the merchant is SUSPENDED (the batch stays READY and is paid once the"
                     " merchant is reinstated)");
        return;
    }
    list_destinations(j);
}

static void check_merchant(payout_job *j)
{
    Paywire__Merchant__V1__GetMerchantRequest req =
        PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    req.merchant_id = current(j)->merchant;
    call(j, j->merchant, "/paywire.merchant.v1.MerchantService/GetMerchant", &req.base,
         &paywire__merchant__v1__get_merchant_response__descriptor, got_merchant);
}

/* ---- one batch after the other ---- */

static void got_payout(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                       void *ud)
{
    (void)typed;
    payout_job *j = ud;
    if (res->code == PW_OK && current(j)->on_chain) {
        use_transfer(j, ((const Paywire__Simulators__V1__GetTransferResponse *)resp)->transfer);
    } else if (res->code == PW_OK) {
        use_answer(j, ((const Paywire__Simulators__V1__GetPayoutResponse *)resp)->payout);
    } else if (res->code != PW_NOT_FOUND) {
        batch_failed(j, res->code, "the bank did not answer", res->message);
    } else if (strcmp(current(j)->state, "READY") == 0) {
        check_merchant(j); /* a new instruction; one the bank knows is completed whatever */
    } else {
        batch_failed(j, PW_DATA_LOSS, "in transit, but unknown to the bank", "");
    }
}

static void start_batch(payout_job *j)
{
    payout_batch *b = current(j);
    if (!b->payable) {
        char why[300];
        snprintf(why, sizeof(why),
                 "no payout rail pays %s (the bank pays EUR, GBP and USD; the treasury wallet"
                 " USDC and USDT, with payout_chain_target): it waits READY for an operator"
                 " (MarkBatchPaid, ConfirmBatch)",
                 b->currency);
        batch_failed(j, PW_FAILED_PRECONDITION, "not sent", why);
        return;
    }
    snprintf(j->instruction, sizeof(j->instruction), "pyo_%s", b->id + 4);
    j->bank_state[0] = j->bank_reference[0] = j->reason[0] = '\0';
    if (b->on_chain) {
        Paywire__Simulators__V1__GetTransferRequest t =
            PAYWIRE__SIMULATORS__V1__GET_TRANSFER_REQUEST__INIT;
        t.idempotency_key = j->instruction;
        call(j, j->chain, "/paywire.simulators.v1.ChainService/GetTransfer", &t.base,
             &paywire__simulators__v1__get_transfer_response__descriptor, got_payout);
        return;
    }
    Paywire__Simulators__V1__GetPayoutRequest req =
        PAYWIRE__SIMULATORS__V1__GET_PAYOUT_REQUEST__INIT;
    req.instruction_id = j->instruction;
    call(j, j->bank, "/paywire.simulators.v1.PayoutBankService/GetPayout", &req.base,
         &paywire__simulators__v1__get_payout_response__descriptor, got_payout);
}

static void next_batch(payout_job *j)
{
    j->at++;
    if (j->at >= j->n || j->stopping || svc_sched_run_stopping(j->run)) {
        finish(j);
        return;
    }
    start_batch(j);
}

static void got_batches(pw_db_result *res, void *ud)
{
    payout_job *j = ud;
    if (pw_db_status(res) != PW_OK || j->stopping) {
        j->first_error = j->stopping ? PW_CANCELLED : pw_db_status(res);
        snprintf(j->error, sizeof(j->error), "cannot read the batches: %s", pw_db_message(res));
        finish(j);
        return;
    }
    j->n = pw_db_rows(res) < PAGE ? pw_db_rows(res) : PAGE;
    for (int i = 0; i < j->n; i++) {
        payout_batch *b = &j->batches[i];
        char *out[] = {b->id, b->mode, b->merchant, b->currency, b->state};
        size_t cap[] = {sizeof(b->id), sizeof(b->mode), sizeof(b->merchant), sizeof(b->currency),
                        sizeof(b->state)};
        for (int c = 0; c < 5; c++) {
            const char *s = "";
            size_t len;
            pw_db_get_text(res, i, c, &s, &len);
            snprintf(out[c], cap[c], "%s", s);
        }
        pw_db_get_int64(res, i, 5, &b->net);
        int64_t on_chain = 0, payable = 0;
        pw_db_get_int64(res, i, 7, &on_chain);
        pw_db_get_int64(res, i, 8, &payable);
        b->on_chain = on_chain != 0;
        b->payable = payable != 0;
    }
    j->more = pw_db_rows(res) >= PAGE;
    if (j->more) {
        const char *t = "";
        size_t len;
        pw_db_get_text(res, j->n - 1, 6, &t, &len);
        snprintf(j->after_time, sizeof(j->after_time), "%s", t);
        snprintf(j->after_id, sizeof(j->after_id), "%s", j->batches[j->n - 1].id);
    }
    j->at = -1;
    next_batch(j);
}

static void payout_run(svc_sched_run *run, void *ud)
{
    payout_job *j = ud;
    j->run = run;
    j->n = 0;
    j->failed = 0;
    j->more = 0;
    j->first_error = PW_OK;
    j->error[0] = '\0';
    pw_db_param p[] = {pw_db_text(j->after_time), pw_db_text(j->after_id),
                       pw_db_int4(j->chain != NULL)};
    pw_status rv = pw_db_tx_query(svc_sched_run_tx(run), &due_batches, p, 3, got_batches, j);
    if (rv != PW_OK) {
        j->first_error = rv;
        snprintf(j->error, sizeof(j->error), "cannot read the batches");
        finish(j);
    }
}

pw_status payout_job_new(payout_job **out, svc_job *job, svc_app *app, uv_loop_t *loop,
                         const svc_config *cfg, pw_channel *self)
{
    *out = NULL;
    int64_t every_ms = svc_config_int(cfg, "payout_job_seconds") * 1000;
    const char *merchant = svc_config_text(cfg, "merchant_target");
    const char *bank = svc_config_text(cfg, "payout_bank_target");
    const char *chain = svc_config_text(cfg, "payout_chain_target");
    const char *compliance = svc_config_text(cfg, "compliance_target");
    if (every_ms <= 0 || merchant == NULL || merchant[0] == '\0' || bank == NULL ||
        bank[0] == '\0') {
        return PW_OK;
    }
    if (compliance == NULL || compliance[0] == '\0') {
        /* Fail closed: no destination is paid unscreened. */
        PW_LOG(PW_LOG_WARNING, "finance",
               "the payout job is off: compliance_target is unset, and every destination is"
               " screened before it is paid");
        return PW_OK;
    }
    payout_job *j = pw_calloc(1, sizeof(*j));
    if (j == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    j->pool = app->pool;
    j->self = self;
    j->confirmations = svc_config_int(cfg, "payout_confirmations");
    j->treasury_chain = (int)svc_config_int(cfg, "payout_chain");
    cursor_reset(j);
    pw_status rv = settlement_channel(loop, cfg, merchant, &j->merchant);
    if (rv == PW_OK) {
        rv = settlement_channel(loop, cfg, bank, &j->bank);
    }
    if (rv == PW_OK) {
        rv = settlement_channel(loop, cfg, compliance, &j->compliance);
    }
    if (rv == PW_OK && chain != NULL && chain[0] != '\0') {
        rv = settlement_channel(loop, cfg, chain, &j->chain);
    }
    if (rv != PW_OK) {
        payout_job_stop(j);
        return rv;
    }
    *job = (svc_job){.name = "payout", .interval_ms = every_ms, .run = payout_run, .user_data = j};
    *out = j;
    return PW_OK;
}

void payout_job_stop(payout_job *j)
{
    if (j == NULL) {
        return;
    }
    pw_channel *chans[] = {j->merchant, j->bank, j->chain, j->compliance};
    for (int i = 0; i < 4; i++) {
        if (chans[i] != NULL) {
            pw_channel_close(chans[i], NULL, NULL);
        }
    }
    if (j->run == NULL) {
        pw_free(j);
    } else {
        j->stopping = 1;
    }
}
