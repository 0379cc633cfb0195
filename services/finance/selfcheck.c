/*
 * selfcheck.c: the periodic ledger self-check (see selfcheck.h). One query
 * returns the differences; none means the ledger is whole. The job is freed
 * when both its timer has closed and its query (if one runs at shutdown) has
 * answered, so neither callback sees freed memory.
 */
#include <paywire/log.h>
#include <paywire/metrics.h>
#include "selfcheck.h"

typedef struct selfcheck {
    uv_timer_t timer;
    pw_db_pool *pool;
    pw_metrics *metrics;
    int querying;
    int stopped;
    int timer_closed;
} selfcheck;

/* Accounts whose counters are not their entries', and (mode, currency) pairs that do not sum to
 * zero, posted or pending. */
static const pw_db_stmt find_differences = {
    "ledger_selfcheck",
    "SELECT 'account ' || a.id AS subject, format('stored posted %s/%s pending %s/%s version %s,"
    " entries give %s/%s pending %s/%s version %s', a.posted_debits, a.posted_credits,"
    " a.pending_debits, a.pending_credits, a.version, coalesce(e.pd, 0), coalesce(e.pc, 0),"
    " coalesce(e.qd, 0), coalesce(e.qc, 0), coalesce(e.n, 0)) AS detail"
    " FROM accounts a LEFT JOIN (SELECT account_id,"
    " sum(CASE WHEN side = 'DEBIT' AND phase IN ('POSTED', 'POST') THEN amount_minor END) AS pd,"
    " sum(CASE WHEN side = 'CREDIT' AND phase IN ('POSTED', 'POST') THEN amount_minor END) AS pc,"
    " sum(CASE WHEN side = 'DEBIT' THEN CASE phase WHEN 'PENDING' THEN amount_minor"
    " WHEN 'POSTED' THEN 0 ELSE -amount_minor END END) AS qd,"
    " sum(CASE WHEN side = 'CREDIT' THEN CASE phase WHEN 'PENDING' THEN amount_minor"
    " WHEN 'POSTED' THEN 0 ELSE -amount_minor END END) AS qc, count(*) AS n"
    " FROM entries GROUP BY account_id) e ON e.account_id = a.id"
    " WHERE a.posted_debits <> coalesce(e.pd, 0) OR a.posted_credits <> coalesce(e.pc, 0)"
    " OR a.pending_debits <> coalesce(e.qd, 0) OR a.pending_credits <> coalesce(e.qc, 0)"
    " OR a.version <> coalesce(e.n, 0)"
    " UNION ALL SELECT 'currency ' || mode || ' ' || currency, format('posted debits %s credits"
    " %s, pending debits %s credits %s', sum(posted_debits), sum(posted_credits),"
    " sum(pending_debits), sum(pending_credits)) FROM accounts GROUP BY mode, currency"
    " HAVING sum(posted_debits::numeric) <> sum(posted_credits)"
    " OR sum(pending_debits::numeric) <> sum(pending_credits)",
    0,
    {0}};

static void maybe_free(selfcheck *c)
{
    if (c->stopped && c->timer_closed && !c->querying) {
        pw_free(c);
    }
}

/* Logs each difference of a self-check's result as an error line (or that there is none) and
 * sets the metric; returns how many there are. */
static int report(pw_metrics *m, const pw_db_result *res)
{
    int n = pw_db_rows(res);
    if (n == 0) {
        PW_LOG(PW_LOG_INFO, "finance", "ledger self-check: every balance matches its entries");
    }
    for (int i = 0; i < n; i++) {
        const char *subject = "", *detail = "";
        pw_db_get_text(res, i, pw_db_column(res, "subject"), &subject, NULL);
        pw_db_get_text(res, i, pw_db_column(res, "detail"), &detail, NULL);
        PW_LOG(PW_LOG_ERR, "finance", "ledger self-check: %s differs: %s", subject, detail);
    }
    if (m != NULL) {
        pw_metrics_gauge_set(m, "ledger_selfcheck_differences",
                             "Accounts and currencies whose stored balances differ from their"
                             " entries at the last ledger self-check.",
                             n);
    }
    return n;
}

static void checked(pw_db_result *res, void *ud)
{
    selfcheck *c = ud;
    c->querying = 0;
    if (pw_db_status(res) != PW_OK) {
        if (!c->stopped) {
            PW_LOG(PW_LOG_ERR, "finance", "ledger self-check could not run: %s",
                   pw_db_message(res));
        }
    } else if (!c->stopped) {
        report(c->metrics, res);
    }
    maybe_free(c);
}

static void tick(uv_timer_t *t)
{
    selfcheck *c = t->data;
    if (c->querying) {
        return; /* the last one is still running */
    }
    if (pw_db_query(c->pool, NULL, &find_differences, NULL, 0, checked, c) == PW_OK) {
        c->querying = 1;
    }
}

pw_status selfcheck_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    int64_t every = svc_config_int(cfg, "ledger_check_seconds");
    *jobs = NULL;
    if (every == 0) {
        return PW_OK;
    }
    /* Not call memory: the job outlives every call. */
    selfcheck *c = pw_calloc(1, sizeof(*c));
    if (c == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    c->pool = app->pool;
    c->metrics = app->metrics;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, tick, (uint64_t)every * 1000, (uint64_t)every * 1000);
    *jobs = c;
    return PW_OK;
}

static void timer_closed(uv_handle_t *h)
{
    selfcheck *c = h->data;
    c->timer_closed = 1;
    maybe_free(c);
}

void selfcheck_stop(void *jobs)
{
    selfcheck *c = jobs;
    if (c == NULL) {
        return;
    }
    c->stopped = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

/* The self-check on demand: the job's query and report, and the differences as the answer. */
SVC_HANDLER(check_ledger, Paywire__Finance__V1__CheckLedgerRequest)
{
    (void)req;
    svc_authenticate(r, NULL);
    const pw_db_result *res = svc_query(r, &find_differences, NULL, 0);
    int n = report(r->app->metrics, res);
    Paywire__Finance__V1__CheckLedgerResponse resp =
        PAYWIRE__FINANCE__V1__CHECK_LEDGER_RESPONSE__INIT;
    resp.differences = svc_alloc(r, (size_t)(n > 0 ? n : 1) * sizeof(*resp.differences));
    for (int i = 0; i < n; i++) {
        Paywire__Finance__V1__LedgerDifference *d = svc_alloc(r, sizeof(*d));
        paywire__finance__v1__ledger_difference__init(d);
        svc_row row = svc_row_at(r, res, i);
        d->subject = svc_text(row, "subject");
        d->detail = svc_text(row, "detail");
        resp.differences[i] = d;
    }
    resp.n_differences = (size_t)n;
    svc_reply(r, &resp.base);
}

void selfcheck_serve(pw_call *call, const Paywire__Finance__V1__CheckLedgerRequest *req, void *app)
{
    check_ledger_h(call, req, app);
}
