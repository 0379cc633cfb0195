/*
 * recon.c: ReconciliationService (docs/design/finance.md, Reconciliation).
 *
 * UploadPartnerReport: the client stream is collected (svc_collect), checked
 * row by row, and stored and matched in one transaction under an advisory
 * lock of (mode, partner), so a partner's reports are matched one after the
 * other and each sees the keys the earlier ones found or booked:
 *   - a second upload of the key with the same content (SHA-256 of the
 *     request) answers the first run; with other content REPORT_ID_REUSED;
 *   - the rows go in with one INSERT from the request's JSON, numbered by
 *     line, their ids derived from the run's (prw_ + 18 characters of the
 *     run + the line in hex), each with its outcome: matched-kind rows
 *     against the ledger's posted transfers of the last 45 days by (mode,
 *     partner_reference, kind) and the partner's own account entry
 *     (partner_receivable for card partners, platform_cash for a bank's
 *     statement): DUPLICATE, then MISSING_IN_LEDGER, CURRENCY_MISMATCH,
 *     AMOUNT_MISMATCH (beyond the partner's drift) or MATCHED — set-based,
 *     never a query per row; a net settlement line (settles: several of our
 *     operations of its kind) the same way by the sum of its members, each
 *     member stored in recon_row_members with the transfer found for it, so
 *     that later rows, the MISSING_IN_REPORT job and the clearing of breaks
 *     count it as found; payout, fee and bank_charge rows BOOKED with
 *     their transfer ids (txf_partnerpay_/txf_partnerfee_/txf_bankfee_<prw>)
 *     fixed in the run;
 *   - every other outcome becomes a break (a net line's names the member at
 *     fault); open breaks of earlier runs that this run matched, by a row or
 *     a member of a net line, clear themselves (AUTO_CLEARED).
 * After the commit the booked rows are applied to the ledger (ledger_apply,
 * ids fixed above, so a replayed upload after a crash books what is missing
 * and nothing twice), then the run is answered.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <paywire/json.h>
#include <paywire/log.h>
#include "batch.h"
#include "ledger_names.h"
#include "recon.h"
#include "svc_collect.h"

typedef Paywire__Finance__V1__ReconciliationRun Run;
typedef Paywire__Finance__V1__Break Break;

#define MAX_ROWS_PER_MESSAGE 1000
#define MAX_ROWS             1000000
#define MAX_ROW_VIOLATIONS   20
#define MAX_MEMBERS_PER_ROW  1000
#define MAX_MEMBERS          1000000

/* ---- statements ---- */

#define RUN_COLUMNS                                                                         \
    "id, mode, partner, report_id, report_date::text AS report_date, content_sha256, rows," \
    " matched, breaks, array_to_string(transfer_ids, ',') AS transfer_ids_text, create_time"

static const pw_db_stmt lock_report = {
    "recon_lock",
    "SELECT pg_advisory_xact_lock(hashtextextended('recon:' || $1, 0))",
    1,
    {PW_DB_TEXT}};
/* A report's sorts and hashes (up to 200,000 rows and their ledger items) in memory rather
 * than in temporary files: the default 4 MB spilled 50 MB to disk for the largest report. And
 * no JIT: compiling the matcher's plan cost about a second of a 200,000-row report's 7
 * (PostgreSQL 15 compiles any plan above jit_above_cost, and a new one each time). */
static const pw_db_stmt sort_memory = {"recon_sort_memory",
                                       "SELECT set_config('work_mem', '64MB', true),"
                                       " set_config('jit', 'off', true)",
                                       0,
                                       {0}};
static const pw_db_stmt find_run = {"recon_find_run",
                                    "SELECT " RUN_COLUMNS " FROM recon_runs"
                                    " WHERE mode = $1 AND partner = $2 AND report_id = $3",
                                    3,
                                    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt run_by_id = {"recon_run_by_id",
                                     "SELECT " RUN_COLUMNS " FROM recon_runs"
                                     " WHERE id = $1 AND mode = $2",
                                     2,
                                     {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt insert_run = {
    "recon_insert_run",
    "INSERT INTO recon_runs (id, mode, partner, report_id, report_date, content_sha256, rows)"
    " VALUES ($1, $2, $3, $4, $5::date, $6, $7)",
    7,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};
/* The ledger's transfer kind of a matched row's kind (of the row or member aliased x). */
#define X_LEDGER_KIND                                                                       \
    "CASE x.kind WHEN 'capture' THEN 'capture' WHEN 'refund' THEN 'refund'"                 \
    " WHEN 'refund_reversal' THEN 'refundrev' WHEN 'chargeback' THEN 'chargeback'"          \
    " WHEN 'chargeback_reversal' THEN 'chargebackrev' WHEN 'bank_credit' THEN 'partnerpay'" \
    " WHEN 'bank_debit' THEN 'paid' END"
/* The partner's own account a row's amount is read from: a bank statement's, our cash there. */
#define X_PARTNER_ACCOUNT \
    "CASE WHEN x.kind LIKE 'bank_%' THEN 'platform_cash' ELSE 'partner_receivable' END"
/* The outcomes of a row that found its ledger item (the item is settled, however wrongly). */
#define FOUND_OUTCOMES "'MATCHED', 'AMOUNT_MISMATCH', 'CURRENCY_MISMATCH'"

/*
 * Stores and matches the rows in one INSERT ($4: the request as proto-named
 * JSON; rows numbered from 1): each row is written once, with its outcome.
 * DUPLICATE: an earlier line of this report with the same key, or a row of
 * an earlier run that found its item; booked kinds get their transfer id.
 * A net line (settles) is matched by its members: each is looked up as a
 * plain row's item would be and stored in recon_row_members with what was
 * found; the line is DUPLICATE if a member was found by an earlier run (by a
 * row, or as a member of a line) or is on an earlier line of this report
 * (as a row or a member), then MISSING_IN_LEDGER if a member is not booked,
 * CURRENCY_MISMATCH if one is booked in another currency, AMOUNT_MISMATCH if
 * the members' sum is beyond the drift, else MATCHED. A plain row whose key
 * a member of an earlier line has is DUPLICATE too.
 */
static const char *const insert_rows_parts[] = {
    "WITH x AS (SELECT 'prw_' || substr($1, 5, 18) || upper(lpad(to_hex(n), 8, '0')) AS id,"
    "  n AS line, coalesce(r->>'partner_reference', '') AS ref, r->>'kind' AS kind,"
    "  (r->'amount'->>'amount_minor')::int8 AS amount, r->'amount'->>'currency' AS currency,"
    "  (r->>'booked_time')::timestamptz AS booked, nullif(r->'settles', '[]') AS settles,"
    "  row_number() OVER (PARTITION BY coalesce(r->>'partner_reference', ''), r->>'kind'"
    "  ORDER BY n) AS nth"
    "  FROM jsonb_array_elements($4::jsonb->'rows') WITH ORDINALITY AS j(r, n)),"
    " drift AS (SELECT coalesce((SELECT amount_drift_minor FROM recon_partners"
    "  WHERE partner = $3), (SELECT amount_drift_minor FROM recon_partners WHERE partner = '*'),"
    "  0) AS minor),"
    /* The business clock, read once: svc_now() reads svc_clock, so in the probe's filter it
     * was a query per row. */
    " horizon AS (SELECT svc_now() - interval '45 days' AS since),"
    /* The members of the net lines, in their order (none in a plain report). */
    " mem AS (SELECT x.id AS row_id, x.line, x.kind, x.currency, m.ref, m.ord FROM x,"
    "  jsonb_array_elements_text(x.settles) WITH ORDINALITY AS m(ref, ord)"
    "  WHERE x.settles IS NOT NULL),"
    " keys AS (SELECT ref, kind FROM x UNION SELECT ref, kind FROM mem),"
    /* Keys earlier runs settled, read once before the insert (not a scan per row of a table
     * the statement is growing): by a row, or as a member of a line. */
    " seen AS MATERIALIZED (SELECT o.partner_reference, o.kind FROM recon_rows o"
    "  JOIN keys k ON o.partner_reference = k.ref AND o.kind = k.kind"
    "  WHERE o.mode = $2 AND o.partner = $3 AND o.outcome IN (" FOUND_OUTCOMES ", 'BOOKED')"
    "  UNION SELECT p.partner_reference, p.kind FROM recon_row_members p"
    "  JOIN keys k ON p.partner_reference = k.ref AND p.kind = k.kind"
    "  JOIN recon_rows o ON o.id = p.row_id AND o.outcome IN (" FOUND_OUTCOMES ")"
    "  WHERE p.mode = $2 AND p.partner = $3 AND p.transfer_id <> ''),"
    " item AS (SELECT DISTINCT ON (x.line) x.line, t.id AS transfer_id, e.amount_minor,"
    "  e.currency FROM x"
    "  JOIN transfers t ON t.mode = $2 AND t.partner_reference = x.ref"
    "  AND t.partner_reference <> '' AND t.state = 'POSTED'"
    "  AND t.create_time > (SELECT since FROM horizon) AND t.kind = " X_LEDGER_KIND
    "  JOIN entries e ON e.mode = t.mode AND e.transfer_id = t.id"
    "  AND e.phase IN ('POSTED', 'PENDING')"
    "  JOIN accounts a ON a.id = e.account_id AND a.owner = $3 AND a.kind = " X_PARTNER_ACCOUNT
    /* Net lines too (their own id rarely finds anything, and the answer is not used): a filter
     * on settles here made the planner probe the accounts once per entry, 0.7 of the speed. */
    "  ORDER BY x.line, e.sequence),",
    /* Each member's item, the same way (a member is x here, as the kind mappings name it). */
    " mitem AS (SELECT DISTINCT ON (x.line, x.ord) x.line, x.ord, t.id AS transfer_id,"
    "  e.amount_minor, e.currency FROM mem x"
    "  JOIN transfers t ON t.mode = $2 AND t.partner_reference = x.ref AND t.state = 'POSTED'"
    "  AND t.create_time > (SELECT since FROM horizon) AND t.kind = " X_LEDGER_KIND
    "  JOIN entries e ON e.mode = t.mode AND e.transfer_id = t.id"
    "  AND e.phase IN ('POSTED', 'PENDING')"
    "  JOIN accounts a ON a.id = e.account_id AND a.owner = $3 AND a.kind = " X_PARTNER_ACCOUNT
    "  ORDER BY x.line, x.ord, e.sequence),"
    /* The first line of this report that lists a key as a member, and as a plain row. */
    " mfirst AS (SELECT ref, kind, min(line) AS line FROM mem GROUP BY ref, kind),"
    /* The lines whose key a member of an earlier line has: an inner join, by line, so that
     * with no members nothing of x is hashed for it. */
    " mlater AS (SELECT DISTINCT y.line FROM mfirst f JOIN x y ON y.ref = f.ref"
    "  AND y.kind = f.kind AND y.line > f.line),"
    " xfirst AS (SELECT y.ref, y.kind, min(y.line) AS line FROM x y"
    "  WHERE y.settles IS NULL"
    "  AND EXISTS (SELECT 1 FROM mem m WHERE m.ref = y.ref AND m.kind = y.kind)"
    "  GROUP BY y.ref, y.kind),"
    " mst AS (SELECT m.*, i.transfer_id, i.amount_minor, i.currency AS ledger_currency,"
    "  CASE WHEN s.kind IS NOT NULL OR f.line < m.line OR g.line < m.line THEN 'DUPLICATE'"
    "  WHEN i.line IS NULL THEN 'MISSING_IN_LEDGER'"
    "  WHEN i.currency <> m.currency THEN 'CURRENCY_MISMATCH' ELSE '' END AS problem"
    "  FROM mem m LEFT JOIN mitem i ON i.line = m.line AND i.ord = m.ord"
    "  LEFT JOIN seen s ON s.partner_reference = m.ref AND s.kind = m.kind"
    "  LEFT JOIN mfirst f ON f.ref = m.ref AND f.kind = m.kind"
    "  LEFT JOIN xfirst g ON g.ref = m.ref AND g.kind = m.kind),"
    /* Per line: the members' sum and the first currency other than the line's, if any. */
    " net AS (SELECT line, bool_or(problem = 'DUPLICATE') AS dup,"
    "  bool_or(problem = 'MISSING_IN_LEDGER') AS missing, sum(amount_minor) AS total,"
    "  coalesce(min(ledger_currency) FILTER (WHERE ledger_currency <> currency),"
    "  min(ledger_currency)) AS ledger_currency FROM mst GROUP BY line),"
    " members AS (INSERT INTO recon_row_members (row_id, ord, run_id, mode, partner,"
    "  partner_reference, kind, transfer_id, ledger_amount_minor, ledger_currency, problem)"
    "  SELECT row_id, ord, $1, $2, $3, ref, kind, coalesce(transfer_id, ''), amount_minor,"
    "  ledger_currency, problem FROM mst)",
    " INSERT INTO recon_rows (id, run_id, mode, partner, line, partner_reference, kind,"
    " amount_minor, currency, booked_time, outcome, transfer_id, ledger_amount_minor,"
    " ledger_currency)"
    " SELECT z.id, $1, $2, $3, z.line, z.ref, z.kind, z.amount, z.currency, z.booked, z.outcome,"
    " CASE WHEN z.outcome <> 'BOOKED' THEN coalesce(z.transfer_id, '')"
    "  WHEN z.kind = 'payout' THEN 'txf_partnerpay_' || z.id"
    "  WHEN z.kind = 'fee' THEN 'txf_partnerfee_' || z.id ELSE 'txf_bankfee_' || z.id END,"
    " z.ledger_amount, z.ledger_currency"
    " FROM (SELECT y.*, CASE WHEN (y.kind NOT IN ('fee', 'bank_charge') OR y.ref <> '')"
    "  AND y.dup THEN 'DUPLICATE'"
    "  WHEN y.kind IN ('payout', 'fee', 'bank_charge') THEN 'BOOKED'"
    "  WHEN NOT y.found THEN 'MISSING_IN_LEDGER'"
    "  WHEN y.ledger_currency <> y.currency THEN 'CURRENCY_MISMATCH'"
    "  WHEN abs(y.ledger_amount - y.amount) > (SELECT minor FROM drift) THEN 'AMOUNT_MISMATCH'"
    "  ELSE 'MATCHED' END AS outcome"
    "  FROM (SELECT x.*, CASE WHEN x.settles IS NULL THEN i.transfer_id END AS transfer_id,"
    "  CASE WHEN x.settles IS NULL THEN i.amount_minor ELSE n.total::int8 END AS ledger_amount,"
    "  CASE WHEN x.settles IS NULL THEN i.currency ELSE n.ledger_currency END"
    "  AS ledger_currency,"
    "  CASE WHEN x.settles IS NULL THEN i.line IS NOT NULL ELSE NOT n.missing END AS found,"
    /* DUPLICATE: the key on an earlier line (as a row, or as a member of a line), found by an
     * earlier run, or (a net line) a member that is. */
    "  (x.nth > 1 OR s.kind IS NOT NULL OR d.line IS NOT NULL OR coalesce(n.dup, false)) AS dup"
    "  FROM x LEFT JOIN item i ON i.line = x.line LEFT JOIN net n ON n.line = x.line"
    "  LEFT JOIN mlater d ON d.line = x.line"
    "  LEFT JOIN seen s ON s.partner_reference = x.ref AND s.kind = x.kind) y) z",
};
/* Longer than a C string literal may portably be (4095 characters): the parts are joined once,
 * when the service registers (insert_rows_join). */
static char insert_rows_sql[8192];
static const pw_db_stmt insert_rows = {
    "recon_insert_rows", insert_rows_sql, 4, {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_JSONB}};
static uv_once_t insert_rows_once = UV_ONCE_INIT;

static void insert_rows_join(void)
{
    size_t len = 0;
    for (size_t i = 0; i < sizeof(insert_rows_parts) / sizeof(insert_rows_parts[0]); i++) {
        size_t n = strlen(insert_rows_parts[i]);
        PW_ASSERT(len + n < sizeof(insert_rows_sql));
        memcpy(insert_rows_sql + len, insert_rows_parts[i], n);
        len += n;
    }
    insert_rows_sql[len] = '\0';
}
static const pw_db_stmt insert_breaks = {
    "recon_insert_breaks",
    "INSERT INTO recon_breaks (id, mode, partner, kind, run_id, row_id, partner_reference,"
    " item_kind, transfer_id, partner_amount_minor, partner_currency, ledger_amount_minor,"
    " ledger_currency, member_reference)"
    " SELECT 'brk_' || substr(w.id, 5), w.mode, w.partner, w.outcome, w.run_id, w.id,"
    " w.partner_reference, w.kind, w.transfer_id, w.amount_minor, w.currency,"
    " w.ledger_amount_minor, w.ledger_currency,"
    /* A net line's: the first member that makes the outcome. */
    " coalesce((SELECT m.partner_reference FROM recon_row_members m WHERE m.row_id = w.id"
    "  AND m.problem = w.outcome ORDER BY m.ord LIMIT 1), '')"
    " FROM recon_rows w WHERE w.run_id = $1 AND w.outcome NOT IN ('MATCHED', 'BOOKED')",
    1,
    {PW_DB_TEXT}};
/* Earlier open breaks this run's matches settle: the item reported at last (by a row, or as a
 * member of a net line), or the row now booked. */
static const pw_db_stmt clear_breaks = {
    "recon_clear_breaks",
    "UPDATE recon_breaks b SET state = 'AUTO_CLEARED', clear_time = now(),"
    " resolution_note = 'matched by report row ' || w.id"
    " FROM (SELECT id, mode, partner, partner_reference, kind, transfer_id FROM recon_rows"
    "  WHERE run_id = $1 AND outcome = 'MATCHED'"
    "  UNION ALL SELECT m.row_id, m.mode, m.partner, m.partner_reference, m.kind, m.transfer_id"
    "  FROM recon_row_members m JOIN recon_rows o ON o.id = m.row_id AND o.outcome = 'MATCHED'"
    "  WHERE m.run_id = $1) w"
    " WHERE b.state = 'OPEN' AND b.mode = w.mode AND b.partner = w.partner AND b.run_id <> $1"
    " AND ((b.kind = 'MISSING_IN_REPORT' AND b.transfer_id = w.transfer_id"
    " AND w.transfer_id <> '')"
    " OR (b.kind = 'MISSING_IN_LEDGER' AND b.partner_reference = w.partner_reference"
    " AND b.item_kind = w.kind))",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt count_run = {
    "recon_count_run",
    "UPDATE recon_runs SET"
    " matched = (SELECT count(*) FROM recon_rows WHERE run_id = $1"
    "  AND outcome IN ('MATCHED', 'BOOKED')),"
    " breaks = (SELECT count(*) FROM recon_breaks WHERE run_id = $1),"
    " transfer_ids = ARRAY(SELECT transfer_id FROM recon_rows WHERE run_id = $1"
    "  AND outcome = 'BOOKED' ORDER BY line)"
    " WHERE id = $1 RETURNING " RUN_COLUMNS,
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt booked_rows = {
    "recon_booked_rows",
    "SELECT w.id, w.kind, w.amount_minor, w.currency, w.transfer_id, w.partner_reference,"
    " coalesce((SELECT"
    " cash_institution FROM recon_partners WHERE partner = w.partner), (SELECT cash_institution"
    " FROM recon_partners WHERE partner = '*')) AS institution"
    " FROM recon_rows w WHERE w.run_id = $1 AND w.outcome = 'BOOKED' ORDER BY w.line",
    1,
    {PW_DB_TEXT}};

/* ---- field checks ---- */

static const char *const row_kinds[] = {
    "capture",     "refund",     "refund_reversal", "chargeback", "chargeback_reversal",
    "bank_credit", "bank_debit", "payout",          "fee",        "bank_charge",
};

static int row_kind_ok(const char *kind)
{
    for (size_t i = 0; i < sizeof(row_kinds) / sizeof(row_kinds[0]); i++) {
        if (strcmp(row_kinds[i], kind) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A partner or institution name as the ledger's account owners spell them. */
static int partner_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/* One row's problem as a violation "rows[i].field"; returns 0 when it has one. */
static int row_bad(svc_req *r, size_t i, const char *field, const char *what, int *reported)
{
    if (*reported < MAX_ROW_VIOLATIONS) {
        char path[64];
        snprintf(path, sizeof(path), "rows[%zu].%s", i, field);
        svc_violation(r, path, what);
    }
    (*reported)++;
    return 0;
}

/* A net line's members: of a matched kind, each a reference, each once, not too many. */
static int settles_ok(svc_req *r, const Paywire__Finance__V1__PartnerReportRow *row, size_t i,
                      int *reported)
{
    if (strcmp(row->kind, "payout") == 0 || strcmp(row->kind, "fee") == 0 ||
        strcmp(row->kind, "bank_charge") == 0) {
        return row_bad(r, i, "settles",
                       "empty for payout, fee and bank_charge rows (a net line settles"
                       " operations of a matched kind)",
                       reported);
    }
    if (row->n_settles > MAX_MEMBERS_PER_ROW) {
        return row_bad(r, i, "settles", "at most 1000 members in one net line", reported);
    }
    for (size_t j = 0; j < row->n_settles; j++) {
        char field[32];
        snprintf(field, sizeof(field), "settles[%zu]", j);
        if (!svc_text_ok(row->settles[j], 100)) {
            return row_bad(r, i, field,
                           "1 to 100 characters (the partner's reference of an operation the line"
                           " settles)",
                           reported);
        }
        /* Quadratic, but bounded: at most 1000 members of at most 100 characters. */
        for (size_t k = 0; k < j; k++) {
            if (strcmp(row->settles[k], row->settles[j]) == 0) {
                return row_bad(r, i, field, "listed twice in the line", reported);
            }
        }
    }
    return 1;
}

static int row_ok(svc_req *r, const Paywire__Finance__V1__PartnerReportRow *row, size_t i,
                  int *reported)
{
    if (!row_kind_ok(row->kind)) {
        return row_bad(r, i, "kind",
                       "one of capture, refund, refund_reversal, chargeback,"
                       " chargeback_reversal, bank_credit, bank_debit, payout, fee, bank_charge",
                       reported);
    }
    /* Fee and charge lines too: their reference is what keeps a re-issued report from
     * booking them twice. */
    if (!svc_text_ok(row->partner_reference, 100)) {
        return row_bad(r, i, "partner_reference",
                       "1 to 100 characters (the partner's reference of the line)", reported);
    }
    if (row->amount == NULL || row->amount->amount_minor <= 0) {
        return row_bad(r, i, "amount.amount_minor", "above 0 (the kind says the direction)",
                       reported);
    }
    if (!svc_currency_ok(row->amount->currency)) {
        return row_bad(r, i, "amount.currency", "an ISO 4217 currency code", reported);
    }
    if (row->booked_time == NULL) {
        return row_bad(r, i, "booked_time", "required", reported);
    }
    return row->n_settles == 0 || settles_ok(r, row, i, reported);
}

static void check_report(svc_req *r, const Paywire__Finance__V1__UploadPartnerReportRequest *req)
{
    ledger_mode_required(r, req->mode, "mode");
    if (!partner_ok(req->partner)) {
        svc_violation(r, "partner", "1 to 64 of a-z 0-9 _ - (the partner's account owner name)");
    }
    if (!svc_text_ok(req->report_id, 128)) {
        svc_violation(r, "report_id", "1 to 128 characters");
    }
    if (!svc_date_ok(req->report_date)) {
        svc_violation(r, "report_date", "a date as YYYY-MM-DD");
    }
    int reported = 0;
    size_t members = 0;
    for (size_t i = 0; i < req->n_rows; i++) {
        row_ok(r, req->rows[i], i, &reported);
        members += req->rows[i]->n_settles;
    }
    if (members > MAX_MEMBERS) {
        svc_violation(r, "rows", "at most 1000000 members of net lines (settles) in one report");
    }
    if (reported > MAX_ROW_VIOLATIONS) {
        char more[80];
        snprintf(more, sizeof(more), "%d more rows are invalid", reported - MAX_ROW_VIOLATIONS);
        svc_violation(r, "rows", more);
    }
    svc_check(r);
}

/* ---- messages ---- */

static Run *run_from_row(svc_req *r, svc_row row)
{
    Run *run = svc_alloc(r, sizeof(*run));
    paywire__finance__v1__reconciliation_run__init(run);
    run->id = svc_text(row, "id");
    run->mode = ledger_mode_value(svc_text(row, "mode"));
    run->partner = svc_text(row, "partner");
    run->report_id = svc_text(row, "report_id");
    run->report_date = svc_text(row, "report_date");
    run->content_sha256 = svc_text(row, "content_sha256");
    run->rows = svc_int64(row, "rows");
    run->matched = svc_int64(row, "matched");
    run->breaks = svc_int64(row, "breaks");
    run->create_time = svc_time(row, "create_time");
    /* The booked transfers, comma-separated (ids have no commas). */
    const char *ids = svc_text(row, "transfer_ids_text");
    size_t n = ids[0] ? 1 : 0;
    for (const char *p = ids; *p; p++) {
        n += *p == ',';
    }
    run->transfer_ids = svc_alloc(r, sizeof(char *) * (n ? n : 1));
    const char *p = ids;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        char *id = svc_alloc(r, len + 1);
        memcpy(id, p, len);
        run->transfer_ids[i] = id;
        p += len + (p[len] == ',');
    }
    run->n_transfer_ids = n;
    run->transfer_id = n > 0 ? run->transfer_ids[0] : "";
    return run;
}

/* ---- UploadPartnerReport ---- */

typedef struct upload_args {
    const Paywire__Finance__V1__UploadPartnerReportRequest *req;
    const char *mode;
    char lock_key[400];
    char sha[65];
    const char *json;
    /* Out: the run as stored. */
    Run *run;
} upload_args;

static void upload_tx(svc_req *r, const void *arg)
{
    upload_args *a = (upload_args *)arg;
    const Paywire__Finance__V1__UploadPartnerReportRequest *req = a->req;
    pw_db_param key = pw_db_text(a->lock_key);
    svc_tx_query(r, &lock_report, &key, 1);
    pw_db_param k[] = {pw_db_text(a->mode), pw_db_text(req->partner), pw_db_text(req->report_id)};
    const pw_db_result *seen = svc_tx_query(r, &find_run, k, 3);
    if (pw_db_rows(seen) == 1) {
        svc_row row = svc_row_at(r, seen, 0);
        if (strcmp(svc_text(row, "content_sha256"), a->sha) != 0) {
            svc_abort(r, PW_FAILED_PRECONDITION, "REPORT_ID_REUSED",
                      "report %s of %s was uploaded with other rows (run %s): a corrected report"
                      " needs its own report_id",
                      req->report_id, req->partner, svc_text(row, "id"));
        }
        a->run = run_from_row(r, row);
        svc_tx_commit(r);
        return;
    }
    char id[40];
    if (svc_new_id("rec", id, sizeof(id)) != PW_OK) {
        svc_abort(r, PW_INTERNAL, NULL, "cannot create an id");
    }
    pw_db_param run[] = {pw_db_text(id),
                         pw_db_text(a->mode),
                         pw_db_text(req->partner),
                         pw_db_text(req->report_id),
                         pw_db_text(req->report_date),
                         pw_db_text(a->sha),
                         pw_db_int8((int64_t)req->n_rows)};
    svc_tx_pipe(r, &insert_run, run, 7);
    svc_tx_pipe(r, &sort_memory, NULL, 0);
    pw_db_param rows[] = {pw_db_text(id), pw_db_text(a->mode), pw_db_text(req->partner),
                          pw_db_jsonb(a->json)};
    svc_tx_pipe(r, &insert_rows, rows, 4);
    pw_db_param run_id = pw_db_text(id);
    svc_tx_pipe(r, &insert_breaks, &run_id, 1);
    svc_tx_pipe(r, &clear_breaks, &run_id, 1);
    a->run = run_from_row(r, svc_row_at(r, svc_tx_query(r, &count_run, &run_id, 1), 0));
    svc_tx_commit(r);
}

/* A booked row, copied out of its result (which the ledger's wait ends). */
typedef struct booked_row {
    const char *id, *kind, *currency, *transfer_id, *institution, *partner_reference;
    int64_t amount;
} booked_row;

/* A booked row's transfer: the partner paid us, charged us, or our bank charged us. */
static void book_row(svc_req *r, const char *mode, const char *partner, const booked_row *row)
{
    const char *kind = row->kind;
    const char *institution = row->institution;
    int64_t amount = row->amount;
    const char *currency = row->currency;
    ledger_entry_in e[2];
    memset(e, 0, sizeof(e));
    const char *kinds[2];
    const char *owners[2];
    if (strcmp(kind, "payout") == 0) {
        kinds[0] = "platform_cash", owners[0] = institution;
        kinds[1] = "partner_receivable", owners[1] = partner;
    } else if (strcmp(kind, "fee") == 0) {
        kinds[0] = "partner_fees", owners[0] = partner;
        kinds[1] = "partner_receivable", owners[1] = partner;
    } else { /* bank_charge: the report is the bank's own statement */
        kinds[0] = "partner_fees", owners[0] = partner;
        kinds[1] = "platform_cash", owners[1] = partner;
    }
    for (int i = 0; i < 2; i++) {
        e[i].kind = kinds[i];
        e[i].owner = owners[i];
        e[i].amount = amount;
        e[i].currency = currency;
        e[i].credit = i;
        e[i].purpose = kind;
    }
    const char *transfer_id = row->transfer_id;
    char transfer_kind[24];
    snprintf(transfer_kind, sizeof(transfer_kind), "%.*s",
             (int)(strchr(transfer_id + 4, '_') - (transfer_id + 4)), transfer_id + 4);
    ledger_op op;
    memset(&op, 0, sizeof(op));
    op.kind = LEDGER_CREATE;
    op.mode = mode;
    op.transfer_id = transfer_id;
    op.transfer_kind = transfer_kind;
    op.reference = row->id;
    /* A payout's reference is what our bank's statement credit matches (bank_credit). */
    op.partner_reference = row->partner_reference;
    op.balance_check = "NONE";
    op.entries = e;
    op.entry_count = 2;
    ledger_apply(r, &op);
    if (op.code != PW_OK) {
        svc_fail(r, op.code == PW_UNAVAILABLE ? PW_UNAVAILABLE : PW_INTERNAL,
                 "report row %s is stored but its transfer %s was not booked (%s): upload the"
                 " same report again to complete it",
                 row->id, transfer_id, op.message);
    }
}

static void upload_body(svc_req *r, const void *request)
{
    const Paywire__Finance__V1__UploadPartnerReportRequest *req = request;
    check_report(r, req);
    svc_authenticate(r, NULL);
    upload_args a;
    memset(&a, 0, sizeof(a));
    a.req = req;
    a.mode = ledger_mode_name(req->mode);
    /* One partner's reports one at a time: each sees what the ones before it found or booked. */
    snprintf(a.lock_key, sizeof(a.lock_key), "%s|%s", a.mode, req->partner);
    size_t len = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *bytes = svc_alloc(r, len);
    protobuf_c_message_pack(&req->base, bytes);
    uint8_t sha[32];
    svc_sha256(bytes, len, sha);
    for (int i = 0; i < 32; i++) {
        snprintf(a.sha + 2 * i, 3, "%02x", sha[i]);
    }
    pw_buf json = {0};
    pw_json_options jo = {.proto_names = 1};
    char err[200];
    if (pw_json_encode(&req->base, &jo, &json, err, sizeof(err)) != PW_OK ||
        pw_buf_append(&json, "", 1) != PW_OK) {
        pw_buf_reset(&json);
        svc_fail(r, PW_INVALID_ARGUMENT, "the report cannot be stored: %s", err);
    }
    a.json = svc_strdup(r, (const char *)json.data);
    pw_buf_reset(&json);
    svc_transaction(r, upload_tx, &a);
    pw_db_param run_id = pw_db_text(a.run->id);
    const pw_db_result *res = svc_query(r, &booked_rows, &run_id, 1);
    int n = pw_db_rows(res);
    booked_row *rows = svc_alloc(r, sizeof(*rows) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        svc_row row = svc_row_at(r, res, i);
        rows[i] = (booked_row){svc_text(row, "id"),           svc_text(row, "kind"),
                               svc_text(row, "currency"),     svc_text(row, "transfer_id"),
                               svc_text(row, "institution"),  svc_text(row, "partner_reference"),
                               svc_int64(row, "amount_minor")};
    }
    for (int i = 0; i < n; i++) {
        book_row(r, a.mode, req->partner, &rows[i]);
    }
    Paywire__Finance__V1__UploadPartnerReportResponse resp =
        PAYWIRE__FINANCE__V1__UPLOAD_PARTNER_REPORT_RESPONSE__INIT;
    resp.run = a.run;
    svc_reply(r, &resp.base);
}

static const svc_collect_spec upload_spec = {
    .type = &paywire__finance__v1__upload_partner_report_request__descriptor,
    .items = "rows",
    .max_per_message = MAX_ROWS_PER_MESSAGE,
    .max_total = MAX_ROWS,
    .first_message = "mode, partner, report_id and report_date",
};

static void upload_partner_report_h(pw_call *call, void *app)
{
    svc_serve_collected(call, app, &upload_spec, upload_body);
}

/* ---- GetReconciliationRun ---- */

SVC_HANDLER(get_run, Paywire__Finance__V1__GetReconciliationRunRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_id_ok(req->run_id, "rec")) {
        svc_violation(r, "run_id", "a run id: \"rec_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_text(req->run_id), pw_db_text(mode)};
    svc_row row = svc_one(r, svc_query(r, &run_by_id, p, 2), "reconciliation run", req->run_id);
    Paywire__Finance__V1__GetReconciliationRunResponse resp =
        PAYWIRE__FINANCE__V1__GET_RECONCILIATION_RUN_RESPONSE__INIT;
    resp.run = run_from_row(r, row);
    svc_reply(r, &resp.base);
}

/* ---- breaks ---- */

#define BREAK_COLUMNS                                                                  \
    "id, mode, partner, kind, state, run_id, row_id, partner_reference, item_kind,"    \
    " transfer_id, partner_amount_minor, partner_currency, ledger_amount_minor,"       \
    " ledger_currency, coalesce(expected_settlement_date::text, '') AS expected_date," \
    " resolution_note, adjustment_transfer_id, member_reference"

static const char *const break_kinds[] = {
    "",          "MISSING_IN_LEDGER", "MISSING_IN_REPORT", "AMOUNT_MISMATCH",
    "DUPLICATE", "CURRENCY_MISMATCH", "FEE_MISMATCH"};
static const char *const break_states[] = {"", "OPEN", "AUTO_CLEARED", "RESOLVED"};

static int name_index(const char *const *names, int n, const char *name)
{
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return 0;
}

static Paywire__Common__V1__Money *money_or_null(svc_req *r, svc_row row, const char *amount,
                                                 const char *currency)
{
    return svc_is_null(row, amount)
               ? NULL
               : ledger_money(r, svc_int64(row, amount), svc_text(row, currency));
}

static Break *break_from_row(svc_req *r, svc_row row)
{
    Break *b = svc_alloc(r, sizeof(*b));
    paywire__finance__v1__break__init(b);
    b->id = svc_text(row, "id");
    b->mode = ledger_mode_value(svc_text(row, "mode"));
    b->partner = svc_text(row, "partner");
    b->kind = (Paywire__Finance__V1__BreakKind)name_index(break_kinds, 7, svc_text(row, "kind"));
    b->state =
        (Paywire__Finance__V1__BreakState)name_index(break_states, 4, svc_text(row, "state"));
    b->run_id = svc_text(row, "run_id");
    b->row_id = svc_text(row, "row_id");
    b->partner_reference = svc_text(row, "partner_reference");
    b->item_kind = svc_text(row, "item_kind");
    b->reference = svc_text(row, "transfer_id");
    b->partner_amount = money_or_null(r, row, "partner_amount_minor", "partner_currency");
    b->ledger_amount = money_or_null(r, row, "ledger_amount_minor", "ledger_currency");
    b->expected_settlement_date = svc_text(row, "expected_date");
    b->resolution_note = svc_text(row, "resolution_note");
    b->adjustment_transfer_id = svc_text(row, "adjustment_transfer_id");
    b->member_reference = svc_text(row, "member_reference");
    return b;
}

static const pw_db_stmt list_breaks = {
    "recon_list_breaks",
    "SELECT " BREAK_COLUMNS " FROM recon_breaks WHERE mode = $1 AND id > $2"
    " AND ($3 = '' OR run_id = $3) AND ($4 = '' OR state = $4) AND ($5 = '' OR partner = $5)"
    " ORDER BY id LIMIT $6",
    6,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};

SVC_HANDLER(list_breaks_h_body, Paywire__Finance__V1__ListBreaksRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (req->run_id[0] != '\0' && !svc_id_ok(req->run_id, "rec")) {
        svc_violation(r, "run_id", "empty, or a run id: \"rec_\" and 26 characters");
    }
    if (req->partner[0] != '\0' && !partner_ok(req->partner)) {
        svc_violation(r, "partner", "empty, or 1 to 64 of a-z 0-9 _ -");
    }
    const char *state = "";
    if (req->state != PAYWIRE__FINANCE__V1__BREAK_STATE__BREAK_STATE_UNSPECIFIED) {
        state = (unsigned)req->state < 4 ? break_states[req->state] : NULL;
        if (state == NULL) {
            svc_violation(r, "state", "unspecified (any), OPEN, AUTO_CLEARED or RESOLVED");
        }
    }
    char filter[200], after[64];
    snprintf(filter, sizeof(filter), "%s,%s,%s,%s", mode ? mode : "", req->run_id,
             state ? state : "", req->partner);
    svc_page_token_read(r, req->page_token, filter, after, sizeof(after));
    svc_check(r);
    svc_authenticate(r, NULL);
    int want = svc_page_size(req->page_size);
    pw_db_param p[] = {pw_db_text(mode),  pw_db_text(after),        pw_db_text(req->run_id),
                       pw_db_text(state), pw_db_text(req->partner), pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &list_breaks, p, 6);
    int n = pw_db_rows(res) > want ? want : pw_db_rows(res);
    Paywire__Finance__V1__ListBreaksResponse resp =
        PAYWIRE__FINANCE__V1__LIST_BREAKS_RESPONSE__INIT;
    resp.breaks = svc_alloc(r, sizeof(*resp.breaks) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        resp.breaks[i] = break_from_row(r, svc_row_at(r, res, i));
    }
    resp.n_breaks = (size_t)n;
    if (pw_db_rows(res) > want) {
        resp.next_page_token = svc_page_token(r, resp.breaks[n - 1]->id, filter);
    }
    svc_reply(r, &resp.base);
}

/* ---- ResolveBreak ---- */

static const pw_db_stmt break_by_id = {"recon_break_by_id",
                                       "SELECT " BREAK_COLUMNS
                                       " FROM recon_breaks WHERE id = $1 AND mode = $2",
                                       2,
                                       {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt lock_break = {"recon_lock_break",
                                      "SELECT " BREAK_COLUMNS " FROM recon_breaks"
                                      " WHERE id = $1 AND mode = $2 FOR UPDATE",
                                      2,
                                      {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt resolve_break = {
    "recon_resolve_break",
    "UPDATE recon_breaks SET state = CASE WHEN state = 'OPEN' THEN 'RESOLVED' ELSE state END,"
    " clear_time = coalesce(clear_time, now()),"
    " resolution_note = CASE WHEN state = 'OPEN' THEN $3 ELSE resolution_note END,"
    " resolved_by = CASE WHEN state = 'OPEN' THEN $4 ELSE resolved_by END,"
    " adjustment_transfer_id = CASE WHEN $5 = '' THEN adjustment_transfer_id ELSE $5 END"
    " WHERE id = $1 AND mode = $2 RETURNING " BREAK_COLUMNS,
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt audit_resolution = {
    "recon_audit_resolution",
    "INSERT INTO audit_outbox (actor, action, subject_id, detail) VALUES ($1, $2, $3, $4)",
    4,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_JSONB}};

/* The difference an adjustment books: what the partner says minus what the ledger has. */
static int adjustment_of(svc_row b, int64_t *diff, const char **currency)
{
    const char *kind = svc_text(b, "kind");
    if (strcmp(kind, "DUPLICATE") == 0 || strcmp(kind, "CURRENCY_MISMATCH") == 0) {
        return 0;
    }
    int64_t partner =
        svc_is_null(b, "partner_amount_minor") ? 0 : svc_int64(b, "partner_amount_minor");
    int64_t ledger =
        svc_is_null(b, "ledger_amount_minor") ? 0 : svc_int64(b, "ledger_amount_minor");
    *currency = !svc_is_null(b, "partner_currency") ? svc_text(b, "partner_currency")
                                                    : svc_text(b, "ledger_currency");
    /* Refunds and chargebacks reduce what the partner owes, a bank debit our cash: their
     * difference runs the other way. */
    const char *item = svc_text(b, "item_kind");
    int reduces = strcmp(item, "refund") == 0 || strcmp(item, "chargeback") == 0 ||
                  strcmp(item, "bank_debit") == 0;
    *diff = reduces ? ledger - partner : partner - ledger;
    return *diff != 0;
}

/*
 * txf_adjust_<brk>, by the difference's sign: the partner's receivable (a bank
 * statement's break: our cash account at that institution) against platform
 * revenue.
 */
static const char *book_adjustment(svc_req *r, const char *mode, svc_row b)
{
    int64_t diff;
    const char *currency;
    if (!adjustment_of(b, &diff, &currency)) {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "NOTHING_TO_ADJUST",
                        "break %s has no amount difference to book (a duplicate, a currency"
                        " mismatch or equal amounts): resolve it without book_adjustment",
                        svc_text(b, "id"));
    }
    char *transfer_id = svc_alloc(r, 64);
    snprintf(transfer_id, 64, "txf_adjust_%s", svc_text(b, "id"));
    ledger_entry_in e[2];
    memset(e, 0, sizeof(e));
    int partner_debit = diff > 0; /* the partner owes us more: Dr receivable, Cr revenue */
    e[0].kind =
        strncmp(svc_text(b, "item_kind"), "bank_", 5) == 0 ? "platform_cash" : "partner_receivable";
    e[0].owner = svc_text(b, "partner");
    e[0].credit = !partner_debit;
    e[1].kind = "platform_revenue";
    e[1].owner = "";
    e[1].credit = partner_debit;
    for (int i = 0; i < 2; i++) {
        e[i].amount = diff > 0 ? diff : -diff;
        e[i].currency = currency;
        e[i].purpose = "adjustment";
    }
    ledger_op op;
    memset(&op, 0, sizeof(op));
    op.kind = LEDGER_CREATE;
    op.mode = mode;
    op.transfer_id = transfer_id;
    op.transfer_kind = "adjust";
    op.reference = svc_text(b, "id");
    op.partner_reference = "";
    op.balance_check = "NONE";
    op.entries = e;
    op.entry_count = 2;
    ledger_apply(r, &op);
    if (op.code != PW_OK) {
        svc_fail(r, op.code, "the adjustment %s was not booked: %s", transfer_id, op.message);
    }
    return transfer_id;
}

typedef struct resolve_args {
    const Paywire__Finance__V1__ResolveBreakRequest *req;
    const char *mode;
    const char *adjustment;
} resolve_args;

static void resolve_tx(svc_req *r, const void *arg)
{
    const resolve_args *a = arg;
    pw_db_param k[] = {pw_db_text(a->req->break_id), pw_db_text(a->mode)};
    svc_row b = svc_one(r, svc_tx_query(r, &lock_break, k, 2), "break", a->req->break_id);
    int open = strcmp(svc_text(b, "state"), "OPEN") == 0;
    if (!open && a->adjustment == NULL) {
        svc_abort(r, PW_FAILED_PRECONDITION, "BREAK_NOT_OPEN", "break %s is %s already",
                  a->req->break_id, svc_text(b, "state"));
    }
    /* Open: resolved now. Not open but an adjustment was booked for it (another resolution or a
     * later report got there first): the adjustment is recorded on the break and audited all
     * the same, and the answer shows the break as it is, so no booked money is left without
     * its record. */
    pw_db_param p[] = {pw_db_text(a->req->break_id), pw_db_text(a->mode), pw_db_text(a->req->note),
                       pw_db_text(r->caller.identity),
                       pw_db_text(a->adjustment ? a->adjustment : "")};
    svc_row done = svc_row_at(r, svc_tx_query(r, &resolve_break, p, 5), 0);
    char detail[400];
    snprintf(detail, sizeof(detail), "{\"adjustment_transfer_id\":\"%s\",\"was_open\":%s}",
             a->adjustment ? a->adjustment : "", open ? "true" : "false");
    pw_db_param audit[] = {pw_db_text(r->caller.identity), pw_db_text("recon.break_resolved"),
                           pw_db_text(a->req->break_id), pw_db_jsonb(detail)};
    svc_tx_pipe(r, &audit_resolution, audit, 4);
    Paywire__Finance__V1__ResolveBreakResponse resp =
        PAYWIRE__FINANCE__V1__RESOLVE_BREAK_RESPONSE__INIT;
    resp.break_ = break_from_row(r, done);
    svc_commit(r, &resp.base, NULL);
}

SVC_HANDLER(resolve_break_h_body, Paywire__Finance__V1__ResolveBreakRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_id_ok(req->break_id, "brk")) {
        svc_violation(r, "break_id", "a break id: \"brk_\" and 26 characters");
    }
    if (!svc_text_ok(req->note, 1000)) {
        svc_violation(r, "note", "1 to 1000 characters: why the break is resolved");
    }
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    resolve_args a = {.req = req, .mode = mode};
    if (req->book_adjustment) {
        /* Booked first, under its own fixed id: a retry or a racing resolution books it once. */
        pw_db_param k[] = {pw_db_text(req->break_id), pw_db_text(mode)};
        svc_row b = svc_one(r, svc_query(r, &break_by_id, k, 2), "break", req->break_id);
        if (strcmp(svc_text(b, "state"), "OPEN") == 0 ||
            svc_text(b, "adjustment_transfer_id")[0] != '\0') {
            a.adjustment = book_adjustment(r, mode, b);
        }
    }
    svc_idempotent(r, "ResolveBreak", req->idempotency_key,
                   &paywire__finance__v1__resolve_break_response__descriptor, resolve_tx, &a);
}

static const paywire_finance_v1_reconciliation_service_handlers handlers = {
    .upload_partner_report = upload_partner_report_h,
    .get_reconciliation_run = get_run_h,
    .list_breaks = list_breaks_h_body_h,
    .resolve_break = resolve_break_h_body_h,
};

pw_status recon_register(pw_server *server, svc_app *app)
{
    uv_once(&insert_rows_once, insert_rows_join);
    return paywire_finance_v1_reconciliation_service_register(server, &handlers, app);
}
