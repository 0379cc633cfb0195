/*
 * settlement_jobs.c: the availability job (see settlement_jobs.h). A run reads
 * a page of due captures with their merchant_pending entries inside the job's
 * transaction, sends one CreateTransfer per capture on the loopback channel,
 * and ends when every answer is in: all OK commits the run (another page at
 * once when this one was full); any failure rolls it back, and the next tick
 * sends the page again (the ledger replays the transfers it already has).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/log.h>
#include "ledger_names.h"
#include "payout_job.h"
#include "settlement_jobs.h"
#include "svc_sched.h"

#define PAGE 100

#define P(x) Paywire__Finance__V1__##x

typedef struct avail_job {
    pw_channel *ch;
    svc_sched *sched;
    /* The payout job on the same scheduler (NULL: off). */
    payout_job *payout;
    /* The run in progress. */
    svc_sched_run *run;
    int pending;
    int captures;
    pw_status first_error;
    char error[300];
    /* settlement_jobs_stop was called during a run: the run's end frees the job. */
    int stopping;
} avail_job;

/* Due captures (their merchant's delay passed, no txf_avail_ yet), oldest first, one row per
 * merchant_pending entry. */
static const pw_db_stmt due_captures = {
    "settlement_due_captures",
    "WITH due AS (SELECT t.mode, t.id, m.owner FROM transfers t"
    "  CROSS JOIN LATERAL (SELECT a.owner FROM entries e JOIN accounts a ON a.id = e.account_id"
    "  WHERE e.mode = t.mode AND e.transfer_id = t.id AND a.kind = 'merchant_pending' LIMIT 1) m"
    "  WHERE t.kind = 'capture' AND t.state = 'POSTED'"
    "  AND t.post_time <= svc_now() - make_interval(days => coalesce((SELECT delay_days FROM"
    "  settlement_settings WHERE merchant_id = m.owner), (SELECT delay_days FROM"
    "  settlement_settings WHERE merchant_id = '*')))"
    "  AND NOT EXISTS (SELECT 1 FROM transfers v WHERE v.mode = t.mode"
    "  AND v.id = 'txf_avail_' || substr(t.id, 13))"
    "  ORDER BY t.post_time LIMIT 100)"
    " SELECT d.mode, d.id, d.owner AS merchant, e.side, e.amount_minor, e.currency"
    " FROM due d JOIN entries e ON e.mode = d.mode AND e.transfer_id = d.id"
    " JOIN accounts a ON a.id = e.account_id AND a.kind = 'merchant_pending'"
    " WHERE e.phase = 'POSTED' ORDER BY d.id, e.sequence",
    0,
    {0}};

/* One CreateTransfer and what it points to. */
typedef struct avail_msg {
    P(CreateTransferRequest) req;
    P(Transfer) t;
    P(Entry) e[16];
    P(Entry) * ep[16];
    P(AccountRef) ref[16];
    P(MerchantAccount) m[16];
    Paywire__Common__V1__Money money[16];
    char id[128], reference[128], merchant[64], currency[8];
} avail_msg;

/* Ends the run (once); frees the job when it was stopped meanwhile. */
static void finish(avail_job *j, pw_status status, int more, const char *message)
{
    svc_sched_run *run = j->run;
    j->run = NULL;
    svc_sched_run_done(run, status, more, message);
    if (j->stopping) {
        pw_free(j);
    }
}

static void run_end(avail_job *j)
{
    finish(j, j->first_error, j->first_error == PW_OK && j->captures == PAGE, j->error);
}

static void created(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                    void *ud)
{
    (void)resp;
    (void)typed;
    avail_job *j = ud;
    if (res->code != PW_OK && j->first_error == PW_OK) {
        j->first_error = res->code;
        snprintf(j->error, sizeof(j->error), "availability transfer refused: %s %s",
                 pw_status_str(res->code), res->message);
    }
    if (--j->pending == 0) {
        run_end(j);
    }
}

/* The leg for one merchant_pending entry of the capture: C credited → Dr pending, Cr
 * available; F debited → Dr available, Cr pending. */
static void add_legs(avail_msg *m, size_t *n, int credit, int64_t amount)
{
    for (int k = 0; k < 2; k++) {
        size_t i = (*n)++;
        paywire__finance__v1__entry__init(&m->e[i]);
        paywire__finance__v1__account_ref__init(&m->ref[i]);
        paywire__finance__v1__merchant_account__init(&m->m[i]);
        paywire__common__v1__money__init(&m->money[i]);
        int pending_side = (k == 0) == (credit != 0); /* the debit leg first */
        m->m[i].merchant_id = m->merchant;
        m->m[i].currency = m->currency;
        m->m[i].kind = pending_side
                           ? PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING
                           : PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE;
        m->ref[i].ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
        m->ref[i].merchant = &m->m[i];
        m->money[i].amount_minor = amount;
        m->money[i].currency = m->currency;
        m->e[i].account = &m->ref[i];
        m->e[i].amount = &m->money[i];
        m->e[i].side = k == 0 ? PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT
                              : PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
        m->e[i].purpose = credit ? "payment" : "fee";
        m->ep[i] = &m->e[i];
    }
}

static void send_capture(avail_job *j, avail_msg *m, size_t n, const char *mode)
{
    paywire__finance__v1__create_transfer_request__init(&m->req);
    paywire__finance__v1__transfer__init(&m->t);
    m->t.mode = ledger_mode_value(mode);
    m->t.id = m->id;
    m->t.kind = "avail";
    m->t.reference = m->reference;
    m->t.entries = m->ep;
    m->t.n_entries = n;
    m->req.transfer = &m->t;
    m->req.balance_check = PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_NONE;
    pw_call_options o = {.timeout_ms = 30000};
    pw_status rv = pw_client_unary(
        j->ch, "/paywire.finance.v1.LedgerService/CreateTransfer", &o, &m->req.base,
        &paywire__finance__v1__create_transfer_response__descriptor, created, NULL, j);
    if (rv != PW_OK) {
        if (j->first_error == PW_OK) {
            j->first_error = rv;
            snprintf(j->error, sizeof(j->error), "cannot send an availability transfer: %s",
                     pw_status_str(rv));
        }
        return;
    }
    j->pending++;
}

static const char *col(const pw_db_result *res, int row, const char *name)
{
    const char *s = "";
    size_t len;
    pw_db_get_text(res, row, pw_db_column(res, name), &s, &len);
    return s;
}

static void got_due(pw_db_result *res, void *ud)
{
    avail_job *j = ud;
    if (pw_db_status(res) != PW_OK) {
        finish(j, pw_db_status(res), 0, pw_db_message(res));
        return;
    }
    j->pending = 1; /* held while sending, so no answer ends the run early */
    int rows = pw_db_rows(res);
    avail_msg m;
    size_t n = 0;
    for (int i = 0; i < rows; i++) {
        const char *id = col(res, i, "id");
        if (n == 0) {
            memset(&m, 0, sizeof(m));
            snprintf(m.id, sizeof(m.id), "txf_avail_%s", id + 12); /* txf_capture_<cap> */
            snprintf(m.reference, sizeof(m.reference), "%s", id);
            snprintf(m.merchant, sizeof(m.merchant), "%s", col(res, i, "merchant"));
            snprintf(m.currency, sizeof(m.currency), "%s", col(res, i, "currency"));
        }
        int64_t amount = 0;
        pw_db_get_int64(res, i, pw_db_column(res, "amount_minor"), &amount);
        if (n + 2 <= 16) {
            add_legs(&m, &n, strcmp(col(res, i, "side"), "CREDIT") == 0, amount);
        }
        if (i + 1 == rows || strcmp(col(res, i + 1, "id"), id) != 0) {
            send_capture(j, &m, n, col(res, i, "mode"));
            j->captures++;
            n = 0;
        }
    }
    if (--j->pending == 0) {
        run_end(j);
    }
}

static void availability_run(svc_sched_run *run, void *ud)
{
    avail_job *j = ud;
    j->run = run;
    j->pending = 0;
    j->captures = 0;
    j->first_error = PW_OK;
    j->error[0] = '\0';
    pw_status rv = pw_db_tx_query(svc_sched_run_tx(run), &due_captures, NULL, 0, got_due, j);
    if (rv != PW_OK) {
        finish(j, rv, 0, "cannot read the due captures");
    }
}

pw_status settlement_channel(uv_loop_t *loop, const svc_config *cfg, const char *target,
                             pw_channel **out)
{
    char self[256];
    if (target == NULL) {
        const char *listen = svc_config_text(cfg, "listen");
        if (listen == NULL || listen[0] == '\0') {
            listen = FINANCE_LISTEN;
        }
        snprintf(self, sizeof(self), "%.*s", (int)strcspn(listen, ","), listen);
        target = self;
    }
    pw_tls_config tls = {.cert_file = svc_config_text(cfg, "tls_cert"),
                         .key_file = svc_config_text(cfg, "tls_key"),
                         .ca_file = svc_config_text(cfg, "tls_ca")};
    pw_channel_options co = {.tls = tls.cert_file && tls.cert_file[0] ? &tls : NULL,
                             .connect_timeout_ms = 5000};
    return pw_channel_new(out, loop, target, &co);
}

pw_status settlement_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    *jobs = NULL;
    int64_t every_ms = svc_config_int(cfg, "availability_job_seconds") * 1000;
    int64_t payout_ms = svc_config_int(cfg, "payout_job_seconds") * 1000;
    if (every_ms <= 0 && payout_ms <= 0) {
        return PW_OK; /* 0: never */
    }
    avail_job *j = pw_calloc(1, sizeof(*j));
    if (j == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *jobs = j;
    pw_status rv = settlement_channel(loop, cfg, NULL, &j->ch);
    svc_job list[2];
    int n = 0;
    if (rv == PW_OK && every_ms > 0) {
        list[n++] = (svc_job){.name = "availability",
                              .interval_ms = every_ms,
                              .run = availability_run,
                              .user_data = j};
    }
    if (rv == PW_OK) {
        rv = payout_job_new(&j->payout, &list[n], app, loop, cfg, j->ch);
        n += j->payout != NULL;
    }
    if (rv == PW_OK && n > 0) {
        int64_t tick =
            every_ms > 0 && (payout_ms <= 0 || every_ms < payout_ms) ? every_ms : payout_ms;
        svc_sched_options o = {.tick_ms = (uint64_t)(tick < 1000 ? tick : 1000)};
        rv = svc_sched_start(&j->sched, loop, app->pool, list, n, &o);
    }
    return rv;
}

void settlement_jobs_stop(void *jobs)
{
    avail_job *j = jobs;
    if (j == NULL) {
        return;
    }
    /* The scheduler frees itself once a run in progress ends; the channels' close fails the
     * calls still open, which ends the run, and its end frees the job. */
    svc_sched_stop(j->sched);
    payout_job_stop(j->payout);
    if (j->ch != NULL) {
        pw_channel_close(j->ch, NULL, NULL);
    }
    if (j->run == NULL) {
        pw_free(j);
    } else {
        j->stopping = 1;
    }
}
