/*
 * settlement_jobs.c: the ledger jobs of settlement, availability and reserve
 * release (see settlement_jobs.h), and the scheduler that also runs the
 * payout and cut-off jobs. A ledger job's run reads a page of due causes
 * inside the job's transaction (a capture with its merchant_pending entries
 * and the reserve its rule holds; a held reserve), sends one CreateTransfer
 * per cause on the loopback channel, and ends when every answer is in: all
 * OK commits the run (another page at once when this one was full); any
 * failure rolls it back, and the next tick sends the page again (the ledger
 * replays the transfers it already has).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/log.h>
#include "cutoff_job.h"
#include "ledger_names.h"
#include "payout_job.h"
#include "settlement_jobs.h"
#include "svc_sched.h"

#define PAGE 100

#define P(x) Paywire__Finance__V1__##x

/* What a ledger job books: its due statement and its transfers' kind. */
typedef enum ledger_job_kind { JOB_AVAIL, JOB_UNRESERVE } ledger_job_kind;

typedef struct ledger_job {
    ledger_job_kind kind;
    pw_channel *ch;
    /* The run in progress. */
    svc_sched_run *run;
    int pending;
    int captures;
    pw_status first_error;
    char error[300];
    /* The jobs it belongs to (freed at its run's end once stopping). */
    struct settlement_jobs *all;
} ledger_job;

typedef struct settlement_jobs {
    pw_channel *ch;
    svc_sched *sched;
    ledger_job avail, unreserve;
    /* The payout and cut-off jobs on the same scheduler (NULL: off). */
    payout_job *payout;
    cutoff_job *cutoff;
    int stopping;
} settlement_jobs;

/* Due captures (their merchant's delay passed, no txf_avail_ yet), oldest first, one row per
 * merchant_pending entry, each with the reserve the capture's net (C − F) owes under its
 * merchant's rule in force now (0: none). They are read from availability_due (migration 0022:
 * the captures not yet available), not from every posted capture; the shortest delay of any
 * merchant bounds its range, so the not yet due ones are not read either. */
static const pw_db_stmt due_captures = {
    "settlement_due_captures",
    "WITH due AS (SELECT t.mode, t.id, m.owner FROM availability_due q"
    "  JOIN transfers t ON t.mode = q.mode AND t.id = q.transfer_id"
    "  CROSS JOIN LATERAL (SELECT a.owner FROM entries e JOIN accounts a ON a.id = e.account_id"
    "  WHERE e.mode = t.mode AND e.transfer_id = t.id AND a.kind = 'merchant_pending' LIMIT 1) m"
    "  WHERE t.kind = 'capture' AND t.state = 'POSTED'"
    "  AND q.post_time <= svc_now() - make_interval(days => (SELECT min(delay_days)"
    "  FROM settlement_settings))"
    "  AND t.post_time <= svc_now() - make_interval(days => coalesce((SELECT delay_days FROM"
    "  settlement_settings WHERE merchant_id = m.owner), (SELECT delay_days FROM"
    "  settlement_settings WHERE merchant_id = '*')))"
    "  AND NOT EXISTS (SELECT 1 FROM transfers v WHERE v.mode = t.mode"
    "  AND v.id = 'txf_avail_' || substr(t.id, 13))"
    "  ORDER BY q.post_time LIMIT 100)"
    " SELECT d.mode, d.id, d.owner AS merchant, e.side, e.amount_minor, e.currency,"
    " reserve_amount(sum(CASE e.side WHEN 'CREDIT' THEN e.amount_minor ELSE -e.amount_minor END)"
    "  OVER (PARTITION BY d.id)::int8,"
    "  (reserve_rule_at(d.owner, e.currency, now())).basis_points) AS reserve_minor"
    " FROM due d JOIN entries e ON e.mode = d.mode AND e.transfer_id = d.id"
    " JOIN accounts a ON a.id = e.account_id AND a.kind = 'merchant_pending'"
    " WHERE e.phase = 'POSTED' ORDER BY d.id, e.sequence",
    0,
    {0}};

/* Held reserves due for release: txf_avail_ transfers that credited merchant_reserved, posted
 * at least the hold days of the rule in force at their posting ago, without txf_unreserve_;
 * read from reserve_release_due (migration 0022: the reserves still held), not from every
 * avail transfer. */
static const pw_db_stmt due_reserves = {
    "settlement_due_reserves",
    "SELECT t.mode, t.id, a.owner AS merchant, 'CREDIT' AS side, e.amount_minor, e.currency,"
    " e.amount_minor AS reserve_minor FROM reserve_release_due q"
    " JOIN transfers t ON t.mode = q.mode AND t.id = q.transfer_id"
    " JOIN entries e ON e.mode = t.mode AND e.transfer_id = t.id AND e.side = 'CREDIT'"
    " JOIN accounts a ON a.id = e.account_id AND a.kind = 'merchant_reserved'"
    " WHERE t.kind = 'avail' AND t.state = 'POSTED'"
    " AND t.post_time + make_interval(days => (reserve_rule_at(a.owner, e.currency,"
    "  t.post_time)).hold_days) <= svc_now()"
    " AND NOT EXISTS (SELECT 1 FROM transfers u WHERE u.mode = t.mode"
    "  AND u.id = 'txf_unreserve_' || substr(t.id, 11))"
    " ORDER BY q.post_time, t.id LIMIT 100",
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

/* Ends the run (once); frees the jobs when they were stopped meanwhile. */
static void finish(ledger_job *j, pw_status status, int more, const char *message)
{
    svc_sched_run *run = j->run;
    j->run = NULL;
    svc_sched_run_done(run, status, more, message);
    if (j->all->stopping) {
        pw_free(j->all);
    }
}

static void run_end(ledger_job *j)
{
    finish(j, j->first_error, j->first_error == PW_OK && j->captures == PAGE, j->error);
}

static const char *what(const ledger_job *j)
{
    return j->kind == JOB_AVAIL ? "availability" : "reserve release";
}

static void created(const ProtobufCMessage *resp, const pw_result *res, void (*typed)(void),
                    void *ud)
{
    (void)resp;
    (void)typed;
    ledger_job *j = ud;
    if (res->code != PW_OK && j->first_error == PW_OK) {
        j->first_error = res->code;
        snprintf(j->error, sizeof(j->error), "%s transfer refused: %s %s", what(j),
                 pw_status_str(res->code), res->message);
    }
    if (--j->pending == 0) {
        run_end(j);
    }
}

/* One entry of amount on the merchant's account of kind, debit or credit. */
static void add_leg(avail_msg *m, size_t *n, P(AccountKind) kind, int debit, int64_t amount,
                    const char *purpose)
{
    size_t i = (*n)++;
    paywire__finance__v1__entry__init(&m->e[i]);
    paywire__finance__v1__account_ref__init(&m->ref[i]);
    paywire__finance__v1__merchant_account__init(&m->m[i]);
    paywire__common__v1__money__init(&m->money[i]);
    m->m[i].merchant_id = m->merchant;
    m->m[i].currency = m->currency;
    m->m[i].kind = kind;
    m->ref[i].ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
    m->ref[i].merchant = &m->m[i];
    m->money[i].amount_minor = amount;
    m->money[i].currency = m->currency;
    m->e[i].account = &m->ref[i];
    m->e[i].amount = &m->money[i];
    m->e[i].side = debit ? PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT
                         : PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
    m->e[i].purpose = (char *)purpose;
    m->ep[i] = &m->e[i];
}

#define PENDING   PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING
#define AVAILABLE PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE
#define RESERVED  PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_RESERVED

/* The legs for one merchant_pending entry of the capture: C credited → Dr pending, Cr
 * available; F debited → Dr available, Cr pending (the debit leg first). */
static void add_legs(avail_msg *m, size_t *n, int credit, int64_t amount)
{
    const char *purpose = credit ? "payment" : "fee";
    add_leg(m, n, credit ? PENDING : AVAILABLE, 1, amount, purpose);
    add_leg(m, n, credit ? AVAILABLE : PENDING, 0, amount, purpose);
}

static void send_transfer(ledger_job *j, avail_msg *m, size_t n, const char *mode)
{
    paywire__finance__v1__create_transfer_request__init(&m->req);
    paywire__finance__v1__transfer__init(&m->t);
    m->t.mode = ledger_mode_value(mode);
    m->t.id = m->id;
    m->t.kind = j->kind == JOB_AVAIL ? "avail" : "unreserve";
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
            snprintf(j->error, sizeof(j->error), "cannot send a %s transfer: %s", what(j),
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

static int64_t col_int64(const pw_db_result *res, int row, const char *name)
{
    int64_t v = 0;
    pw_db_get_int64(res, row, pw_db_column(res, name), &v);
    return v;
}

/* A new message for the cause on row i: txf_avail_<cap> of txf_capture_<cap>, or
 * txf_unreserve_<cap> of txf_avail_<cap>. */
static void begin_transfer(const ledger_job *j, avail_msg *m, const pw_db_result *res, int i)
{
    const char *id = col(res, i, "id");
    memset(m, 0, sizeof(*m));
    if (j->kind == JOB_AVAIL) {
        snprintf(m->id, sizeof(m->id), "txf_avail_%s", id + 12);
    } else {
        snprintf(m->id, sizeof(m->id), "txf_unreserve_%s", id + 10);
    }
    snprintf(m->reference, sizeof(m->reference), "%s", id);
    snprintf(m->merchant, sizeof(m->merchant), "%s", col(res, i, "merchant"));
    snprintf(m->currency, sizeof(m->currency), "%s", col(res, i, "currency"));
}

static void got_due(pw_db_result *res, void *ud)
{
    ledger_job *j = ud;
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
            begin_transfer(j, &m, res, i);
        }
        if (j->kind == JOB_AVAIL && n + 2 <= 14) {
            add_legs(&m, &n, strcmp(col(res, i, "side"), "CREDIT") == 0,
                     col_int64(res, i, "amount_minor"));
        }
        if (i + 1 < rows && strcmp(col(res, i + 1, "id"), id) == 0) {
            continue;
        }
        /* The capture's last entry: the reserve its rule holds, or the release of one. */
        int64_t reserve = col_int64(res, i, "reserve_minor");
        if (reserve > 0) {
            add_leg(&m, &n, j->kind == JOB_AVAIL ? AVAILABLE : RESERVED, 1, reserve, "reserve");
            add_leg(&m, &n, j->kind == JOB_AVAIL ? RESERVED : AVAILABLE, 0, reserve, "reserve");
        }
        send_transfer(j, &m, n, col(res, i, "mode"));
        j->captures++;
        n = 0;
    }
    if (--j->pending == 0) {
        run_end(j);
    }
}

static void ledger_run(svc_sched_run *run, void *ud)
{
    ledger_job *j = ud;
    j->run = run;
    j->pending = 0;
    j->captures = 0;
    j->first_error = PW_OK;
    j->error[0] = '\0';
    const pw_db_stmt *due = j->kind == JOB_AVAIL ? &due_captures : &due_reserves;
    pw_status rv = pw_db_tx_query(svc_sched_run_tx(run), due, NULL, 0, got_due, j);
    if (rv != PW_OK) {
        finish(j, rv, 0, "cannot read what is due");
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

/* The shortest period of the jobs, for the scheduler's tick (at most a second). */
static uint64_t tick_of(const svc_job *list, int n)
{
    int64_t tick = 1000;
    for (int i = 0; i < n; i++) {
        tick = list[i].interval_ms < tick ? list[i].interval_ms : tick;
    }
    return (uint64_t)tick;
}

pw_status settlement_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    *jobs = NULL;
    settlement_jobs *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *jobs = s;
    pw_status rv = settlement_channel(loop, cfg, NULL, &s->ch);
    svc_job list[4];
    int n = 0;
    /* Availability, and the release of the reserves it holds, at one period. */
    int64_t every_ms = svc_config_int(cfg, "availability_job_seconds") * 1000;
    ledger_job *lj[] = {&s->avail, &s->unreserve};
    const char *names[] = {"availability", "reserve_release"};
    for (int k = 0; k < 2 && every_ms > 0; k++) {
        *lj[k] = (ledger_job){.kind = k == 0 ? JOB_AVAIL : JOB_UNRESERVE, .ch = s->ch, .all = s};
        list[n++] = (svc_job){
            .name = names[k], .interval_ms = every_ms, .run = ledger_run, .user_data = lj[k]};
    }
    if (rv == PW_OK) {
        rv = payout_job_new(&s->payout, &list[n], app, loop, cfg, s->ch);
        n += s->payout != NULL;
    }
    if (rv == PW_OK) {
        rv = cutoff_job_new(&s->cutoff, &list[n], app, loop, cfg, s->ch);
        n += s->cutoff != NULL;
    }
    if (rv == PW_OK && n > 0) {
        svc_sched_options o = {.tick_ms = tick_of(list, n)};
        rv = svc_sched_start(&s->sched, loop, app->pool, list, n, &o);
    }
    return rv;
}

void settlement_jobs_stop(void *jobs)
{
    settlement_jobs *s = jobs;
    if (s == NULL) {
        return;
    }
    /* The scheduler frees itself once a run in progress ends (it runs one at a time); the
     * channels' close fails the calls still open, which ends the run, and a ledger job's run
     * end frees these jobs. */
    svc_sched_stop(s->sched);
    payout_job_stop(s->payout);
    cutoff_job_stop(s->cutoff);
    if (s->ch != NULL) {
        pw_channel_close(s->ch, NULL, NULL);
    }
    if (s->avail.run == NULL && s->unreserve.run == NULL) {
        pw_free(s);
    } else {
        s->stopping = 1;
    }
}
