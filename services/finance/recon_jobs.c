/* recon_jobs.c: MISSING_IN_REPORT and the reruns of open breaks (see recon_jobs.h). */
#include "recon_jobs.h"
#include "svc_sched.h"

/* The partner's settings, else the default row's. */
#define PARTNER_SETTING(col, partner)                                            \
    "coalesce((SELECT " col " FROM recon_partners WHERE partner = " partner ")," \
    " (SELECT " col " FROM recon_partners WHERE partner = '*'))"

static const pw_db_stmt missing_in_report = {
    "recon_job_missing_in_report",
    "WITH items AS (SELECT t.mode, a.owner AS partner, t.id AS transfer_id, t.kind,"
    "  t.partner_reference, e.amount_minor, e.currency,"
    "  (t.create_time AT TIME ZONE 'UTC')::date + " PARTNER_SETTING(
        "settlement_lag_days",
        "a.owner") " AS expected,"
                   "  " PARTNER_SETTING(
                       "grace_days",
                       "a.owner") " AS grace"
                                  "  FROM transfers t JOIN entries e ON e.mode = t.mode AND "
                                  "e.transfer_id = t.id"
                                  "  AND e.phase IN ('POSTED', 'PENDING')"
                                  "  JOIN accounts a ON a.id = e.account_id AND a.kind = "
                                  "'partner_receivable'"
                                  "  WHERE t.state = 'POSTED' AND t.partner_reference <> ''"
                                  "  AND t.kind IN ('capture', 'refund', 'refundrev', "
                                  "'chargeback', 'chargebackrev')"
                                  "  AND t.create_time > svc_now() - interval '45 days'),"
                                  " raised AS (INSERT INTO recon_breaks (id, mode, partner, kind, "
                                  "partner_reference, item_kind,"
                                  "  transfer_id, ledger_amount_minor, ledger_currency, "
                                  "expected_settlement_date)"
                                  "  SELECT recon_new_id('brk'), i.mode, i.partner, "
                                  "'MISSING_IN_REPORT', i.partner_reference,"
                                  "  CASE i.kind WHEN 'refundrev' THEN 'refund_reversal'"
                                  "  WHEN 'chargebackrev' THEN 'chargeback_reversal' ELSE i.kind "
                                  "END,"
                                  "  i.transfer_id, i.amount_minor, i.currency, i.expected FROM "
                                  "items i"
                                  "  WHERE i.expected + i.grace < (svc_now() AT TIME ZONE "
                                  "'UTC')::date"
                                  "  AND NOT EXISTS (SELECT 1 FROM recon_rows w WHERE w.mode = "
                                  "i.mode"
                                  "  AND w.transfer_id = i.transfer_id"
                                  "  AND w.outcome IN ('MATCHED', 'AMOUNT_MISMATCH', "
                                  "'CURRENCY_MISMATCH'))"
                                  /* A member of a net line that found it. */
                                  "  AND NOT EXISTS (SELECT 1 FROM recon_row_members m"
                                  "  JOIN recon_rows w ON w.id = m.row_id AND w.outcome IN"
                                  "  ('MATCHED', 'AMOUNT_MISMATCH', 'CURRENCY_MISMATCH')"
                                  "  WHERE m.mode = i.mode AND m.transfer_id = i.transfer_id AND "
                                  "m.transfer_id <> '')"
                                  /* A row that found it only when rerun (its break cleared onto
                                     this transfer). */
                                  "  AND NOT EXISTS (SELECT 1 FROM recon_breaks c WHERE c.mode = "
                                  "i.mode"
                                  "  AND c.transfer_id = i.transfer_id AND c.kind = "
                                  "'MISSING_IN_LEDGER'"
                                  "  AND c.state = 'AUTO_CLEARED')"
                                  "  ON CONFLICT (mode, transfer_id) WHERE kind = "
                                  "'MISSING_IN_REPORT' DO NOTHING"
                                  "  RETURNING 1)"
                                  " SELECT false AS more, (SELECT count(*) FROM raised) AS raised",
    0,
    {0}};

static const pw_db_stmt rerun = {
    "recon_job_rerun",
    "WITH found AS (SELECT DISTINCT ON (b.id) b.id, t.id AS transfer_id, e.amount_minor"
    "  FROM recon_breaks b JOIN transfers t ON t.mode = b.mode"
    "  AND t.partner_reference = b.partner_reference AND t.partner_reference <> ''"
    "  AND t.state = 'POSTED' AND t.kind = CASE b.item_kind WHEN 'refund_reversal'"
    "  THEN 'refundrev' WHEN 'chargeback_reversal' THEN 'chargebackrev'"
    "  WHEN 'bank_credit' THEN 'partnerpay' WHEN 'bank_debit' THEN 'paid' ELSE b.item_kind END"
    "  JOIN entries e ON e.mode = t.mode AND e.transfer_id = t.id"
    "  AND e.phase IN ('POSTED', 'PENDING') AND e.currency = b.partner_currency"
    "  JOIN accounts a ON a.id = e.account_id AND a.owner = b.partner AND a.kind ="
    "  CASE WHEN b.item_kind LIKE 'bank_%' THEN 'platform_cash' ELSE 'partner_receivable' END"
    "  WHERE b.state = 'OPEN' AND b.kind = 'MISSING_IN_LEDGER'"
    "  AND b.create_time > svc_now() - interval '7 days'"
    /* Not a net line's: its partner_reference is the line's id, not an operation's (the line
     * sent again once its members are booked clears it). */
    "  AND NOT EXISTS (SELECT 1 FROM recon_row_members m WHERE m.row_id = b.row_id)"
    "  AND abs(e.amount_minor - b.partner_amount_minor) <= " PARTNER_SETTING(
        "amount_drift_minor",
        "b.partner") " ORDER BY b.id, e.sequence),"
                     " cleared AS (UPDATE recon_breaks b SET state = 'AUTO_CLEARED', clear_time = "
                     "now(),"
                     "  transfer_id = f.transfer_id, ledger_amount_minor = f.amount_minor,"
                     "  ledger_currency = b.partner_currency,"
                     "  resolution_note = 'booked later: ' || f.transfer_id"
                     "  FROM found f WHERE b.id = f.id AND b.state = 'OPEN' RETURNING 1)"
                     " SELECT false AS more, (SELECT count(*) FROM cleared) AS cleared",
    0,
    {0}};

pw_status recon_jobs_start(svc_app *app, uv_loop_t *loop, const svc_config *cfg, void **jobs)
{
    int64_t every_ms = svc_config_int(cfg, "recon_job_seconds") * 1000;
    *jobs = NULL;
    if (every_ms <= 0) {
        return PW_OK; /* 0: never */
    }
    const svc_job list[] = {
        {.name = "recon_missing_in_report", .interval_ms = every_ms, .step = &missing_in_report},
        {.name = "recon_rerun", .interval_ms = every_ms, .step = &rerun},
    };
    svc_sched_options o = {.tick_ms = (uint64_t)(every_ms < 1000 ? every_ms : 1000)};
    svc_sched *s = NULL;
    pw_status rv = svc_sched_start(&s, loop, app->pool, list, 2, &o);
    *jobs = s;
    return rv;
}

void recon_jobs_stop(void *jobs)
{
    svc_sched_stop(jobs);
}
