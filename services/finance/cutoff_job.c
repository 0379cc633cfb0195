/*
 * cutoff_job.c: the cut-off job (see cutoff_job.h). A run reads a page of
 * due accounts (ordered by mode, merchant and currency, after the last one
 * the previous page ended at) inside the job's transaction, which holds the
 * job's lock: one instance runs it. Each account is taken in turn: the
 * merchant's state, then the batch. A full page runs the job again at once
 * from where it ended; a shorter one starts the next run from the beginning.
 * A failure on one account is logged and counted, not the run's error: the
 * run goes on with the next account and the page cursor moves on, so one
 * account that keeps failing never holds back the others; it is tried again
 * at the next run (the batch's own idempotency makes a rerun harmless).
 */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "cutoff_job.h"
#include "ledger_names.h"
#include "settlement_jobs.h"
#include "paywire/merchant/v1/merchant.pw.h"

#define PAGE 100

typedef struct cutoff_account {
    char mode[8], merchant[40], currency[8], day[16];
    int64_t cutoff_s, reserved;
} cutoff_account;

struct cutoff_job {
    pw_channel *self, *merchant;
    int64_t cutoff_minute;
    svc_sched_run *run;
    cutoff_account accounts[PAGE];
    int n, at;
    /* Where the next page starts (mode, merchant, currency; all "" from the beginning). */
    char after[3][40];
    int created, skipped;
    pw_status first_error;
    int failed;
    char error[300];
    int stopping;
};

/* Accounts with a payable balance and no batch for the day whose cut-off has passed. */
static const pw_db_stmt due_accounts = {
    "cutoff_due_accounts",
    "WITH d AS (SELECT ((svc_now() AT TIME ZONE 'UTC') - make_interval(mins => $4::int))::date"
    " AS day)"
    " SELECT a.mode, a.owner AS merchant, a.currency, d.day::text AS day,"
    " extract(epoch FROM (d.day + make_interval(mins => $4::int)) AT TIME ZONE 'UTC')::int8"
    " AS cutoff_s,"
    " coalesce((SELECT r.posted_credits - r.posted_debits FROM accounts r WHERE r.mode = a.mode"
    "  AND r.kind = 'merchant_reserved' AND r.owner = a.owner AND r.currency = a.currency"
    "  AND r.shard = 0), 0)::int8 AS reserved"
    " FROM accounts a, d WHERE a.kind = 'merchant_available' AND a.shard = 0"
    " AND a.posted_credits - a.posted_debits - a.pending_debits > 0"
    " AND (a.mode, a.owner, a.currency) > ($1, $2, $3)"
    " AND NOT EXISTS (SELECT 1 FROM settlement_batches b WHERE b.mode = a.mode"
    "  AND b.merchant_id = a.owner AND b.currency = a.currency AND b.settlement_date = d.day)"
    " ORDER BY a.mode, a.owner, a.currency LIMIT 100",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};

static void next_account(cutoff_job *j);

static cutoff_account *current(cutoff_job *j)
{
    return &j->accounts[j->at];
}

/* An account that fails is logged and counted, and the run goes on: it is tried again at the
 * next run, and never holds back the accounts after it (only a failure to read the due
 * accounts fails the run). */
static void account_failed(cutoff_job *j, pw_status rv, const char *what, const char *message)
{
    cutoff_account *a = current(j);
    PW_LOG(PW_LOG_WARNING, "finance", "cut-off of %s %s %s: %s: %s %s", a->mode, a->merchant,
           a->currency, what, pw_status_str(rv), message);
    j->failed++;
    next_account(j);
}

static void finish(cutoff_job *j, int more)
{
    if (!more || j->first_error != PW_OK) {
        memset(j->after, 0, sizeof(j->after));
    }
    if (j->created + j->skipped + j->failed > 0) {
        PW_LOG(PW_LOG_NOTICE, "finance",
               "cut-off: %d batch(es) made, %d merchant(s) skipped, %d account(s) failed",
               j->created, j->skipped, j->failed);
    }
    svc_sched_run *run = j->run;
    j->run = NULL;
    svc_sched_run_done(run, j->first_error, more && j->first_error == PW_OK, j->error);
    if (j->stopping) {
        pw_free(j);
    }
}

static void created(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                    void *ud)
{
    (void)resp;
    (void)typed;
    cutoff_job *j = ud;
    /* ALREADY_EXISTS: the day's batch was made under another key (an operator's). */
    if (res->code != PW_OK && res->code != PW_ALREADY_EXISTS) {
        account_failed(j, res->code, "the batch was refused", res->message);
        return;
    }
    j->created += res->code == PW_OK;
    next_account(j);
}

static void create_batch(cutoff_job *j)
{
    cutoff_account *a = current(j);
    char key[160];
    snprintf(key, sizeof(key), "cutoff/%s/%s/%s/%s", a->mode, a->merchant, a->currency, a->day);
    Google__Protobuf__Timestamp cutoff = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    cutoff.seconds = a->cutoff_s;
    Paywire__Finance__V1__CreateSettlementBatchRequest req =
        PAYWIRE__FINANCE__V1__CREATE_SETTLEMENT_BATCH_REQUEST__INIT;
    req.idempotency_key = key;
    req.merchant_id = a->merchant;
    req.currency = a->currency;
    req.cutoff_time = &cutoff;
    req.mode = ledger_mode_value(a->mode);
    req.settlement_date = a->day;
    pw_call_options o = {.timeout_ms = 30000};
    pw_status rv = pw_client_unary(
        j->self, "/paywire.finance.v1.SettlementService/CreateSettlementBatch", &o, &req.base,
        &paywire__finance__v1__create_settlement_batch_response__descriptor, created, NULL, j);
    if (rv != PW_OK) {
        account_failed(j, rv, "cannot call CreateSettlementBatch", "");
    }
}

static void got_merchant(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                         void *ud)
{
    (void)typed;
    cutoff_job *j = ud;
    if (res->code != PW_OK) {
        account_failed(j, res->code, "the merchant service did not answer", res->message);
        return;
    }
    if (j->stopping) {
        finish(j, 0);
        return;
    }
    const Paywire__Merchant__V1__Merchant *m =
        ((const Paywire__Merchant__V1__GetMerchantResponse *)resp)->merchant;
    cutoff_account *a = current(j);
    if (m != NULL && m->state == PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_SUSPENDED) {
        j->skipped++;
        next_account(j); /* its funds stay available until it is reinstated */
        return;
    }
    if (m != NULL && m->state == PAYWIRE__MERCHANT__V1__MERCHANT_STATE__MERCHANT_STATE_CLOSED &&
        a->reserved > 0) {
        j->skipped++;
        next_account(j); /* the final balance is paid once the reserve is released */
        return;
    }
    create_batch(j);
}

static void start_account(cutoff_job *j)
{
    Paywire__Merchant__V1__GetMerchantRequest req =
        PAYWIRE__MERCHANT__V1__GET_MERCHANT_REQUEST__INIT;
    req.merchant_id = current(j)->merchant;
    pw_call_options o = {.timeout_ms = 30000};
    pw_status rv = pw_client_unary(
        j->merchant, "/paywire.merchant.v1.MerchantService/GetMerchant", &o, &req.base,
        &paywire__merchant__v1__get_merchant_response__descriptor, got_merchant, NULL, j);
    if (rv != PW_OK) {
        account_failed(j, rv, "cannot call the merchant service", "");
    }
}

static void next_account(cutoff_job *j)
{
    j->at++;
    if (j->at >= j->n || j->stopping || svc_sched_run_stopping(j->run)) {
        finish(j, j->n == PAGE && !j->stopping);
        return;
    }
    start_account(j);
}

static void got_accounts(pw_db_result *res, void *ud)
{
    cutoff_job *j = ud;
    if (pw_db_status(res) != PW_OK || j->stopping) {
        j->first_error = j->stopping ? PW_CANCELLED : pw_db_status(res);
        snprintf(j->error, sizeof(j->error), "cannot read the due accounts: %s",
                 pw_db_message(res));
        finish(j, 0);
        return;
    }
    j->n = pw_db_rows(res) < PAGE ? pw_db_rows(res) : PAGE;
    for (int i = 0; i < j->n; i++) {
        cutoff_account *a = &j->accounts[i];
        char *out[] = {a->mode, a->merchant, a->currency, a->day};
        size_t cap[] = {sizeof(a->mode), sizeof(a->merchant), sizeof(a->currency), sizeof(a->day)};
        for (int c = 0; c < 4; c++) {
            const char *s = "";
            size_t len;
            pw_db_get_text(res, i, c, &s, &len);
            snprintf(out[c], cap[c], "%s", s);
        }
        pw_db_get_int64(res, i, 4, &a->cutoff_s);
        pw_db_get_int64(res, i, 5, &a->reserved);
    }
    if (j->n > 0) {
        cutoff_account *last = &j->accounts[j->n - 1];
        snprintf(j->after[0], sizeof(j->after[0]), "%s", last->mode);
        snprintf(j->after[1], sizeof(j->after[1]), "%s", last->merchant);
        snprintf(j->after[2], sizeof(j->after[2]), "%s", last->currency);
    }
    j->at = -1;
    next_account(j);
}

static void cutoff_run(svc_sched_run *run, void *ud)
{
    cutoff_job *j = ud;
    j->run = run;
    j->n = 0;
    j->created = j->skipped = j->failed = 0;
    j->first_error = PW_OK;
    j->error[0] = '\0';
    pw_db_param p[] = {pw_db_text(j->after[0]), pw_db_text(j->after[1]), pw_db_text(j->after[2]),
                       pw_db_int8(j->cutoff_minute)};
    pw_status rv = pw_db_tx_query(svc_sched_run_tx(run), &due_accounts, p, 4, got_accounts, j);
    if (rv != PW_OK) {
        j->first_error = rv;
        snprintf(j->error, sizeof(j->error), "cannot read the due accounts");
        finish(j, 0);
    }
}

pw_status cutoff_job_new(cutoff_job **out, svc_job *job, svc_app *app, uv_loop_t *loop,
                         const svc_config *cfg, pw_channel *self)
{
    (void)app;
    *out = NULL;
    int64_t every_ms = svc_config_int(cfg, "cutoff_job_seconds") * 1000;
    const char *merchant = svc_config_text(cfg, "merchant_target");
    if (every_ms <= 0 || merchant == NULL || merchant[0] == '\0') {
        return PW_OK;
    }
    cutoff_job *j = pw_calloc(1, sizeof(*j));
    if (j == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    j->self = self;
    j->cutoff_minute = svc_config_int(cfg, "settlement_cutoff_minute");
    pw_status rv = settlement_channel(loop, cfg, merchant, &j->merchant);
    if (rv != PW_OK) {
        cutoff_job_stop(j);
        return rv;
    }
    *job = (svc_job){.name = "cutoff", .interval_ms = every_ms, .run = cutoff_run, .user_data = j};
    *out = j;
    return PW_OK;
}

void cutoff_job_stop(cutoff_job *j)
{
    if (j == NULL) {
        return;
    }
    if (j->merchant != NULL) {
        pw_channel_close(j->merchant, NULL, NULL);
    }
    if (j->run == NULL) {
        pw_free(j);
    } else {
        j->stopping = 1;
    }
}
