/*
 * settlement.c: SettlementService's batches (docs/design/finance.md,
 * Settlement; "Settlement as built").
 *
 * CreateSettlementBatch, for (mode, merchant, currency, settlement_date):
 *   1. one transaction under an advisory lock of the key: a batch of that
 *      day answers (the same idempotency key: the call is a retry, and
 *      completes what a crash left PREPARED) or is ALREADY_EXISTS (another
 *      key); otherwise the merchant's available account row is locked (no
 *      ledger batch can add to it meanwhile), its unbatched lines read and
 *      summed, and the batch stored: net > 0 PREPARED with every line
 *      linked, else CARRIED_FORWARD with none;
 *   2. a PREPARED batch's net moves to clearing, txf_payout_<stl> (Dr
 *      merchant_available, Cr settlement_clearing, balance check
 *      AVAILABLE) through the ledger's write path, a fixed id, so a retry
 *      books it once;
 *   3. READY. If the ledger refuses the payout for funds (a refund reserved
 *      between 1 and 2), the lines are unlinked and the batch is
 *      CARRIED_FORWARD with the reason: they count in the next batch.
 * A line is an entry of the available account: a one-phase entry (credit +,
 * debit −), a pending debit when reserved (−), the void of a pending debit
 * (+), the post of a pending credit (+); posting a pending debit is no line
 * (it counted when reserved), nor are the batches' own payout entries. So a
 * batch's net is the account's payable balance (posted − pending debits).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "batch.h"
#include "fx.h"
#include "ledger_names.h"
#include "settlement.h"

typedef Paywire__Finance__V1__SettlementBatch Batch;

#define BATCH_COLUMNS                                                                         \
    "id, mode, merchant_id, currency, settlement_date::text AS settlement_date,"              \
    " idempotency_key, state, cutoff_time, gross_captured, refunded, fees, reserve_withheld," \
    " other, net_payout, lines, failure_reason, create_time, payout_reference, paid_time,"    \
    " settled_time, ledger_transfer_id, ledger_transfer_kind, ledger_booked"

/* The signed amount of an available-account entry as a line (0: not a line). */
#define LINE_AMOUNT                                                                   \
    "CASE WHEN e.phase = 'POSTED' THEN CASE e.side WHEN 'CREDIT' THEN e.amount_minor" \
    " ELSE -e.amount_minor END"                                                       \
    " WHEN e.phase = 'PENDING' AND e.side = 'DEBIT' THEN -e.amount_minor"             \
    " WHEN e.phase = 'VOID' AND e.side = 'DEBIT' THEN e.amount_minor"                 \
    " WHEN e.phase = 'POST' AND e.side = 'CREDIT' THEN e.amount_minor ELSE 0 END"

/* The account's unbatched lines ($1 the account id). */
#define UNBATCHED_LINES                                                              \
    "SELECT e.sequence, e.purpose, e.transfer_id, e.time, " LINE_AMOUNT " AS amount" \
    " FROM entries e JOIN transfers t ON t.mode = e.mode AND t.id = e.transfer_id"   \
    " WHERE e.account_id = $1 AND t.kind <> 'payout'"                                \
    " AND NOT EXISTS (SELECT 1 FROM settlement_links l WHERE l.entry_sequence = e.sequence)"

static const pw_db_stmt lock_key = {
    "settlement_lock_key",
    "SELECT pg_advisory_xact_lock(hashtextextended('stl:' || $1, 0))",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt batch_of_day = {"settlement_batch_of_day",
                                        "SELECT " BATCH_COLUMNS " FROM settlement_batches"
                                        " WHERE mode = $1 AND merchant_id = $2 AND currency = $3"
                                        " AND settlement_date = $4::date",
                                        4,
                                        {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt lock_account = {
    "settlement_lock_account",
    "SELECT id FROM accounts WHERE mode = $1 AND kind = 'merchant_available' AND owner = $2"
    " AND currency = $3 AND shard = 0 FOR UPDATE",
    3,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt sum_lines = {
    "settlement_sum_lines",
    "SELECT coalesce(sum(amount) FILTER (WHERE purpose = 'payment'), 0)::int8 AS gross,"
    " coalesce(-sum(amount) FILTER (WHERE purpose = 'refund'), 0)::int8 AS refunded,"
    " coalesce(-sum(amount) FILTER (WHERE purpose = 'fee'), 0)::int8 AS fees,"
    " coalesce(-sum(amount) FILTER (WHERE purpose = 'reserve'), 0)::int8 AS reserve,"
    " coalesce(sum(amount) FILTER (WHERE purpose NOT IN ('payment', 'refund', 'fee', 'reserve')),"
    " 0)::int8 AS other, coalesce(sum(amount), 0)::int8 AS net, count(*) AS lines"
    " FROM (" UNBATCHED_LINES ") l WHERE amount <> 0",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt insert_batch = {
    "settlement_insert_batch",
    "INSERT INTO settlement_batches (id, mode, merchant_id, currency, settlement_date,"
    " idempotency_key, state, account_id, cutoff_time, gross_captured, refunded, fees,"
    " reserve_withheld, other, net_payout, lines) VALUES ($1, $2, $3, $4, $5::date, $6, $7, $8,"
    " now(), $9, $10, $11, $12, $13, $14, $15) RETURNING " BATCH_COLUMNS,
    15,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT,
     PW_DB_INT8, PW_DB_INT8, PW_DB_INT8, PW_DB_INT8, PW_DB_INT8, PW_DB_INT8, PW_DB_INT8}};
static const pw_db_stmt link_lines = {"settlement_link_lines",
                                      "INSERT INTO settlement_links (entry_sequence, batch_id)"
                                      " SELECT sequence, $2 FROM (" UNBATCHED_LINES
                                      ") l WHERE amount <> 0",
                                      2,
                                      {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt mark_ready = {
    "settlement_mark_ready",
    "UPDATE settlement_batches SET state = 'READY' WHERE id = $1 AND state = 'PREPARED'"
    " RETURNING " BATCH_COLUMNS,
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt carry_forward = {
    "settlement_carry_forward",
    "WITH u AS (DELETE FROM settlement_links WHERE batch_id = $1)"
    " UPDATE settlement_batches SET state = 'CARRIED_FORWARD', failure_reason = $2"
    " WHERE id = $1 AND state = 'PREPARED' RETURNING " BATCH_COLUMNS,
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt batch_by_id = {"settlement_batch_by_id",
                                       "SELECT " BATCH_COLUMNS " FROM settlement_batches"
                                       " WHERE id = $1 AND mode = $2",
                                       2,
                                       {PW_DB_TEXT, PW_DB_TEXT}};

/* ---- messages ---- */

static const char *const state_names[] = {"",        "READY",  "IN_TRANSIT",
                                          "SETTLED", "FAILED", "CARRIED_FORWARD"};

static Batch *batch_from_row(svc_req *r, svc_row row)
{
    Batch *b = svc_alloc(r, sizeof(*b));
    paywire__finance__v1__settlement_batch__init(b);
    b->id = svc_text(row, "id");
    b->mode = strcmp(svc_text(row, "mode"), "LIVE") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                                         : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    b->merchant_id = svc_text(row, "merchant_id");
    b->currency = svc_text(row, "currency");
    b->settlement_date = svc_text(row, "settlement_date");
    b->cutoff_time = svc_time(row, "cutoff_time");
    b->create_time = svc_time(row, "create_time");
    const char *cur = b->currency;
    b->gross_captured = ledger_money(r, svc_int64(row, "gross_captured"), cur);
    b->refunded = ledger_money(r, svc_int64(row, "refunded"), cur);
    b->fees = ledger_money(r, svc_int64(row, "fees"), cur);
    b->reserve_withheld = ledger_money(r, svc_int64(row, "reserve_withheld"), cur);
    b->other = ledger_money(r, svc_int64(row, "other"), cur);
    b->net_payout = ledger_money(r, svc_int64(row, "net_payout"), cur);
    const char *state = svc_text(row, "state");
    for (int i = 1; i < 6; i++) {
        if (strcmp(state, state_names[i]) == 0) {
            b->state = (Paywire__Finance__V1__BatchState)i;
        }
    }
    b->failure_reason = svc_text(row, "failure_reason");
    b->payout_reference = svc_text(row, "payout_reference");
    b->paid_time = svc_is_null(row, "paid_time") ? NULL : svc_time(row, "paid_time");
    b->settled_time = svc_is_null(row, "settled_time") ? NULL : svc_time(row, "settled_time");
    return b;
}

/* ---- CreateSettlementBatch ---- */

typedef struct create_args {
    const Paywire__Finance__V1__CreateSettlementBatchRequest *req;
    const char *mode;
    const char *date;
    /* Out: the batch's id and state ("PREPARED" needs steps 2 and 3) and its net. */
    char id[40];
    char state[24];
    int64_t net;
    Batch *batch;
} create_args;

static void create_tx(svc_req *r, const void *arg)
{
    create_args *a = (create_args *)arg;
    const Paywire__Finance__V1__CreateSettlementBatchRequest *req = a->req;
    char key[300];
    snprintf(key, sizeof(key), "%s|%s|%s|%s", a->mode, req->merchant_id, req->currency, a->date);
    pw_db_param k = pw_db_text(key);
    svc_tx_query(r, &lock_key, &k, 1);
    pw_db_param day[] = {pw_db_text(a->mode), pw_db_text(req->merchant_id),
                         pw_db_text(req->currency), pw_db_text(a->date)};
    const pw_db_result *seen = svc_tx_query(r, &batch_of_day, day, 4);
    svc_row row;
    if (pw_db_rows(seen) == 1) {
        row = svc_row_at(r, seen, 0);
        if (strcmp(svc_text(row, "idempotency_key"), req->idempotency_key) != 0) {
            svc_abort(r, PW_ALREADY_EXISTS, "BATCH_EXISTS",
                      "merchant %s has batch %s for %s %s already", req->merchant_id,
                      svc_text(row, "id"), req->currency, a->date);
        }
    } else {
        pw_db_param acc[] = {pw_db_text(a->mode), pw_db_text(req->merchant_id),
                             pw_db_text(req->currency)};
        const pw_db_result *ar = svc_tx_query(r, &lock_account, acc, 3);
        const char *account = pw_db_rows(ar) == 1 ? svc_text(svc_row_at(r, ar, 0), "id") : "";
        int64_t sums[7] = {0};
        if (account[0] != '\0') {
            pw_db_param p = pw_db_text(account);
            svc_row s = svc_row_at(r, svc_tx_query(r, &sum_lines, &p, 1), 0);
            const char *names[7] = {"gross", "refunded", "fees", "reserve",
                                    "other", "net",      "lines"};
            for (int i = 0; i < 7; i++) {
                sums[i] = svc_int64(s, names[i]);
            }
        }
        int pay = sums[5] > 0;
        char id[40];
        if (svc_new_id("stl", id, sizeof(id)) != PW_OK) {
            svc_abort(r, PW_INTERNAL, NULL, "cannot create an id");
        }
        pw_db_param b[] = {pw_db_text(id),
                           pw_db_text(a->mode),
                           pw_db_text(req->merchant_id),
                           pw_db_text(req->currency),
                           pw_db_text(a->date),
                           pw_db_text(req->idempotency_key),
                           pw_db_text(pay ? "PREPARED" : "CARRIED_FORWARD"),
                           pw_db_text(account),
                           pw_db_int8(pay ? sums[0] : 0),
                           pw_db_int8(pay ? sums[1] : 0),
                           pw_db_int8(pay ? sums[2] : 0),
                           pw_db_int8(pay ? sums[3] : 0),
                           pw_db_int8(pay ? sums[4] : 0),
                           pw_db_int8(pay ? sums[5] : 0),
                           pw_db_int8(pay ? sums[6] : 0)};
        row = svc_row_at(r, svc_tx_query(r, &insert_batch, b, 15), 0);
        if (pay) {
            pw_db_param l[] = {pw_db_text(account), pw_db_text(id)};
            svc_tx_pipe(r, &link_lines, l, 2);
        }
    }
    snprintf(a->id, sizeof(a->id), "%s", svc_text(row, "id"));
    snprintf(a->state, sizeof(a->state), "%s", svc_text(row, "state"));
    a->net = svc_int64(row, "net_payout");
    a->batch = batch_from_row(r, row);
    svc_tx_commit(r);
}

/* Step 2: txf_payout_<stl>, the net from available to clearing. PW_OK, or the refusal. */
static pw_status book_payout(svc_req *r, const create_args *a, ledger_op *op)
{
    char *id = svc_alloc(r, 64);
    snprintf(id, 64, "txf_payout_%s", a->id);
    ledger_entry_in *e = svc_alloc(r, 2 * sizeof(*e));
    e[0] = (ledger_entry_in){.kind = "merchant_available",
                             .owner = a->req->merchant_id,
                             .amount = a->net,
                             .currency = a->req->currency,
                             .credit = 0,
                             .purpose = "payout"};
    e[1] = (ledger_entry_in){.kind = "settlement_clearing",
                             .owner = "",
                             .amount = a->net,
                             .currency = a->req->currency,
                             .credit = 1,
                             .purpose = "payout"};
    memset(op, 0, sizeof(*op));
    op->kind = LEDGER_CREATE;
    op->mode = a->mode;
    op->transfer_id = id;
    op->transfer_kind = "payout";
    op->reference = svc_strdup(r, a->id);
    op->partner_reference = "";
    op->balance_check = "AVAILABLE";
    op->entries = e;
    op->entry_count = 2;
    ledger_apply(r, op);
    return op->code;
}

typedef struct finish_args {
    const char *id;
    const char *reason; /* NULL: READY */
    Batch *batch;
} finish_args;

static void finish_tx(svc_req *r, const void *arg)
{
    finish_args *f = (finish_args *)arg;
    const pw_db_result *res;
    if (f->reason == NULL) {
        pw_db_param p = pw_db_text(f->id);
        res = svc_tx_query(r, &mark_ready, &p, 1);
    } else {
        pw_db_param p[] = {pw_db_text(f->id), pw_db_text(f->reason)};
        res = svc_tx_query(r, &carry_forward, p, 2);
    }
    if (pw_db_rows(res) == 1) {
        f->batch = batch_from_row(r, svc_row_at(r, res, 0));
    }
    svc_tx_commit(r);
}

static void check_create(svc_req *r, const Paywire__Finance__V1__CreateSettlementBatchRequest *req,
                         const char **mode, const char **date)
{
    *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_key_ok(req->idempotency_key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    if (!svc_currency_ok(req->currency)) {
        svc_violation(r, "currency", "an ISO 4217 currency code");
    }
    if (req->settlement_date[0] != '\0') {
        if (!svc_date_ok(req->settlement_date)) {
            svc_violation(r, "settlement_date", "empty, or a date as YYYY-MM-DD (UTC)");
        }
        *date = req->settlement_date;
    } else if (req->cutoff_time == NULL) {
        svc_violation(r, "cutoff_time", "required when settlement_date is empty");
    } else {
        time_t t = (time_t)req->cutoff_time->seconds;
        struct tm tm;
        gmtime_r(&t, &tm);
        char *d = svc_alloc(r, 16);
        strftime(d, 16, "%Y-%m-%d", &tm);
        *date = d;
    }
    svc_check(r);
}

SVC_HANDLER(create_batch, Paywire__Finance__V1__CreateSettlementBatchRequest)
{
    const char *mode = NULL, *date = NULL;
    check_create(r, req, &mode, &date);
    svc_authenticate(r, NULL);
    create_args a;
    memset(&a, 0, sizeof(a));
    a.req = req;
    a.mode = mode;
    a.date = date;
    svc_transaction(r, create_tx, &a);
    Batch *batch = a.batch;
    if (strcmp(a.state, "PREPARED") == 0) {
        ledger_op op;
        pw_status rv = book_payout(r, &a, &op);
        finish_args f = {.id = a.id};
        if (rv == PW_FAILED_PRECONDITION && strcmp(op.reason, "TRANSFER_ID_REUSED") != 0) {
            f.reason = svc_strdup(r, op.message); /* short of funds: the lines wait */
        } else if (rv != PW_OK) {
            svc_fail(r, rv == PW_UNAVAILABLE ? PW_UNAVAILABLE : PW_INTERNAL,
                     "batch %s is prepared but its payout transfer is not booked (%s): retry"
                     " with the same idempotency key",
                     a.id, op.message);
        }
        svc_transaction(r, finish_tx, &f);
        if (f.batch != NULL) {
            batch = f.batch;
        }
    }
    Paywire__Finance__V1__CreateSettlementBatchResponse resp =
        PAYWIRE__FINANCE__V1__CREATE_SETTLEMENT_BATCH_RESPONSE__INIT;
    resp.batch = batch;
    svc_reply(r, &resp.base);
}

/* ---- reads ---- */

SVC_HANDLER(get_batch, Paywire__Finance__V1__GetSettlementBatchRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_id_ok(req->batch_id, "stl")) {
        svc_violation(r, "batch_id", "a batch id: \"stl_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_text(req->batch_id), pw_db_text(mode)};
    svc_row row = svc_one(r, svc_query(r, &batch_by_id, p, 2), "settlement batch", req->batch_id);
    Paywire__Finance__V1__GetSettlementBatchResponse resp =
        PAYWIRE__FINANCE__V1__GET_SETTLEMENT_BATCH_RESPONSE__INIT;
    resp.batch = batch_from_row(r, row);
    svc_reply(r, &resp.base);
}

static const pw_db_stmt list_batches = {
    "settlement_list_batches",
    "SELECT " BATCH_COLUMNS " FROM settlement_batches WHERE mode = $1 AND merchant_id = $2"
    " AND id > $3 AND ($4 = '' OR state = $4) ORDER BY id LIMIT $5",
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8}};

SVC_HANDLER(list_batches_body, Paywire__Finance__V1__ListSettlementBatchesRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_id_ok(req->merchant_id, "mer")) {
        svc_violation(r, "merchant_id", "a merchant id: \"mer_\" and 26 characters");
    }
    const char *state = "";
    if (req->state != PAYWIRE__FINANCE__V1__BATCH_STATE__BATCH_STATE_UNSPECIFIED) {
        state = (unsigned)req->state < 6 ? state_names[req->state] : NULL;
        if (state == NULL) {
            svc_violation(r, "state", "unspecified (any) or a BatchState");
            state = "";
        }
    }
    char filter[200], after[64];
    snprintf(filter, sizeof(filter), "%s,%s,%s", mode ? mode : "", req->merchant_id, state);
    svc_page_token_read(r, req->page_token, filter, after, sizeof(after));
    svc_check(r);
    svc_authenticate(r, NULL);
    int want = svc_page_size(req->page_size);
    pw_db_param p[] = {pw_db_text(mode), pw_db_text(req->merchant_id), pw_db_text(after),
                       pw_db_text(state), pw_db_int8(want + 1)};
    const pw_db_result *res = svc_query(r, &list_batches, p, 5);
    int n = pw_db_rows(res) > want ? want : pw_db_rows(res);
    Paywire__Finance__V1__ListSettlementBatchesResponse resp =
        PAYWIRE__FINANCE__V1__LIST_SETTLEMENT_BATCHES_RESPONSE__INIT;
    resp.batches = svc_alloc(r, sizeof(*resp.batches) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        resp.batches[i] = batch_from_row(r, svc_row_at(r, res, i));
    }
    resp.n_batches = (size_t)n;
    if (pw_db_rows(res) > want) {
        resp.next_page_token = svc_page_token(r, resp.batches[n - 1]->id, filter);
    }
    svc_reply(r, &resp.base);
}

/* ---- StreamSettlementReport ---- */

enum { REPORT_PAGE = 500 };

static const pw_db_stmt report_lines = {
    "settlement_report_lines",
    "SELECT e.sequence, e.purpose, e.transfer_id, e.time, e.currency, t.reference, " LINE_AMOUNT
    " AS amount FROM settlement_links l JOIN entries e ON e.sequence = l.entry_sequence"
    " JOIN transfers t ON t.mode = e.mode AND t.id = e.transfer_id"
    " WHERE l.batch_id = $1 AND l.entry_sequence > $2 ORDER BY l.entry_sequence LIMIT 500",
    2,
    {PW_DB_TEXT, PW_DB_INT8}};

SVC_HANDLER(stream_report, Paywire__Finance__V1__StreamSettlementReportRequest)
{
    const char *mode = ledger_mode_required(r, req->mode, "mode");
    if (!svc_id_ok(req->batch_id, "stl")) {
        svc_violation(r, "batch_id", "a batch id: \"stl_\" and 26 characters");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    pw_db_param p[] = {pw_db_text(req->batch_id), pw_db_text(mode)};
    svc_one(r, svc_query(r, &batch_by_id, p, 2), "settlement batch", req->batch_id);
    int64_t after = 0;
    for (;;) {
        svc_wait_writable(r);
        pw_db_param q[] = {pw_db_text(req->batch_id), pw_db_int8(after)};
        const pw_db_result *res = svc_query(r, &report_lines, q, 2);
        int n = pw_db_rows(res);
        if (n == 0) {
            break;
        }
        Paywire__Finance__V1__StreamSettlementReportResponse page =
            PAYWIRE__FINANCE__V1__STREAM_SETTLEMENT_REPORT_RESPONSE__INIT;
        page.lines = svc_alloc(r, sizeof(*page.lines) * (size_t)n);
        for (int i = 0; i < n; i++) {
            svc_row row = svc_row_at(r, res, i);
            Paywire__Finance__V1__SettlementLine *l = svc_alloc(r, sizeof(*l));
            paywire__finance__v1__settlement_line__init(l);
            l->kind = svc_text(row, "purpose");
            l->reference = svc_text(row, "reference");
            l->amount = ledger_money(r, svc_int64(row, "amount"), svc_text(row, "currency"));
            l->time = svc_time(row, "time");
            l->transfer_id = svc_text(row, "transfer_id");
            l->entry_sequence = svc_int64(row, "sequence");
            page.lines[i] = l;
        }
        page.n_lines = (size_t)n;
        after = page.lines[n - 1]->entry_sequence;
        svc_reply(r, &page.base);
        if (n < REPORT_PAGE) {
            break;
        }
    }
    svc_stream_end(r);
}

/* ---- MarkBatchPaid, ConfirmBatch ---- */

static const pw_db_stmt lock_batch = {"settlement_lock_batch",
                                      "SELECT " BATCH_COLUMNS " FROM settlement_batches"
                                      " WHERE id = $1 AND mode = $2 FOR UPDATE",
                                      2,
                                      {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt set_paid = {
    "settlement_set_paid",
    "UPDATE settlement_batches SET state = 'IN_TRANSIT', payout_reference = $2, paid_time = now()"
    " WHERE id = $1 RETURNING " BATCH_COLUMNS,
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt set_outcome = {
    "settlement_set_outcome",
    "UPDATE settlement_batches SET state = $2, failure_reason = $3,"
    " settled_time = CASE WHEN $2 = 'SETTLED' THEN now() ELSE settled_time END,"
    " ledger_transfer_id = $4, ledger_transfer_kind = $5, ledger_booked = false"
    " WHERE id = $1 RETURNING " BATCH_COLUMNS,
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt set_booked = {
    "settlement_set_booked",
    "UPDATE settlement_batches SET ledger_booked = true WHERE id = $1 AND ledger_transfer_id = $2"
    " RETURNING " BATCH_COLUMNS,
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
/* Our cash account's institution: where payouts leave from (the default partner's). A batch
 * in a token leaves from our treasury wallet instead (TREASURY_INSTITUTION). */
static const pw_db_stmt our_institution = {
    "settlement_institution",
    "SELECT cash_institution FROM recon_partners WHERE partner = '*'",
    0,
    {0}};

#define TREASURY_INSTITUTION "treasury"

/* What a transition needs of a batch, copied out of its row (rows end at the next wait). */
typedef struct batch_snap {
    const char *id, *mode, *merchant, *currency, *state, *transfer_id, *kind, *reference;
    int64_t net;
    int booked;
    Batch *message;
} batch_snap;

static batch_snap snap_of(svc_req *r, svc_row row)
{
    batch_snap s = {.id = svc_text(row, "id"),
                    .mode = svc_text(row, "mode"),
                    .merchant = svc_text(row, "merchant_id"),
                    .currency = svc_text(row, "currency"),
                    .state = svc_text(row, "state"),
                    .transfer_id = svc_text(row, "ledger_transfer_id"),
                    .kind = svc_text(row, "ledger_transfer_kind"),
                    .reference = svc_text(row, "payout_reference"),
                    .net = svc_int64(row, "net_payout"),
                    .booked = svc_bool(row, "ledger_booked"),
                    .message = batch_from_row(r, row)};
    return s;
}

typedef struct transition_args {
    const char *id;
    const char *mode;
    /* MarkBatchPaid: the reference; ConfirmBatch: the outcome. */
    const char *reference;
    int confirm, succeeded;
    const char *reason;
    batch_snap after; /* out: the batch after the transition */
} transition_args;

/* The transfer a confirmation books, by kind: its entries (2) into e. */
static void transfer_legs(const batch_snap *b, const char *cash, ledger_entry_in *e)
{
    int paid = strcmp(b->kind, "paid") == 0;
    int from_cash = strcmp(b->kind, "return_cash") == 0;
    e[0] = (ledger_entry_in){.kind = from_cash ? "platform_cash" : "settlement_clearing",
                             .owner = from_cash ? cash : "",
                             .amount = b->net,
                             .currency = b->currency,
                             .credit = 0,
                             .purpose = paid ? "payout" : "return"};
    e[1] = (ledger_entry_in){.kind = paid ? "platform_cash" : "merchant_available",
                             .owner = paid ? cash : b->merchant,
                             .amount = b->net,
                             .currency = b->currency,
                             .credit = 1,
                             .purpose = paid ? "payout" : "return"};
}

/* Books the batch's decided transfer when it is not yet (fixed id: once), then marks it. */
static batch_snap ensure_booked(svc_req *r, batch_snap b)
{
    if (b.booked) {
        return b;
    }
    const char *cash = fx_is_token(b.currency)
                           ? TREASURY_INSTITUTION
                           : svc_text(svc_row_at(r, svc_query(r, &our_institution, NULL, 0), 0),
                                      "cash_institution");
    ledger_entry_in *e = svc_alloc(r, 2 * sizeof(*e));
    transfer_legs(&b, cash, e);
    int paid = strcmp(b.kind, "paid") == 0;
    ledger_op op;
    memset(&op, 0, sizeof(op));
    op.kind = LEDGER_CREATE;
    op.mode = b.mode;
    op.transfer_id = b.transfer_id;
    op.transfer_kind = paid ? "paid" : "return";
    op.reference = b.id;
    /* The payout's EndToEndId: what our bank's statement debit matches (bank_debit). */
    op.partner_reference = paid ? b.id : "";
    op.balance_check = "NONE";
    op.entries = e;
    op.entry_count = 2;
    ledger_apply(r, &op);
    if (op.code != PW_OK) {
        svc_fail(r, op.code == PW_UNAVAILABLE ? PW_UNAVAILABLE : PW_INTERNAL,
                 "batch %s is decided but its transfer %s is not booked (%s): call again", b.id,
                 b.transfer_id, op.message);
    }
    pw_db_param p[] = {pw_db_text(b.id), pw_db_text(b.transfer_id)};
    return snap_of(r, svc_one(r, svc_query(r, &set_booked, p, 2), "settlement batch", b.id));
}

static void transition_tx(svc_req *r, const void *arg)
{
    transition_args *a = (transition_args *)arg;
    pw_db_param k[] = {pw_db_text(a->id), pw_db_text(a->mode)};
    batch_snap b =
        snap_of(r, svc_one(r, svc_tx_query(r, &lock_batch, k, 2), "settlement batch", a->id));
    if (!b.booked) {
        svc_abort(r, PW_UNAVAILABLE, NULL,
                  "batch %s's last transfer is still being booked: call again", a->id);
    }
    const char *to = NULL, *kind = "";
    if (!a->confirm) {
        if (strcmp(b.state, "IN_TRANSIT") == 0 && strcmp(b.reference, a->reference) == 0) {
            a->after = b; /* a retry */
            svc_tx_commit(r);
            return;
        }
        if (strcmp(b.state, "READY") != 0) {
            svc_abort(r, PW_FAILED_PRECONDITION, "INVALID_STATE_TRANSITION",
                      "batch %s is %s: only a READY batch is paid (a paid one keeps its first"
                      " payout_reference)",
                      a->id, b.state);
        }
        pw_db_param p[] = {pw_db_text(a->id), pw_db_text(a->reference)};
        a->after = snap_of(r, svc_row_at(r, svc_tx_query(r, &set_paid, p, 2), 0));
        svc_tx_commit(r);
        return;
    }
    if ((a->succeeded && strcmp(b.state, "SETTLED") == 0) ||
        (!a->succeeded && strcmp(b.state, "FAILED") == 0)) {
        a->after = b; /* a retry */
        svc_tx_commit(r);
        return;
    }
    if (a->succeeded && strcmp(b.state, "IN_TRANSIT") == 0) {
        to = "SETTLED", kind = "paid";
    } else if (!a->succeeded &&
               (strcmp(b.state, "IN_TRANSIT") == 0 || strcmp(b.state, "READY") == 0)) {
        to = "FAILED", kind = "return_clearing";
    } else if (!a->succeeded && strcmp(b.state, "SETTLED") == 0) {
        to = "FAILED", kind = "return_cash"; /* a late return: the money came back to our cash */
    } else {
        svc_abort(r, PW_FAILED_PRECONDITION, "INVALID_STATE_TRANSITION",
                  "batch %s is %s: it cannot be confirmed %s", a->id, b.state,
                  a->succeeded ? "settled" : "failed");
    }
    char transfer_id[80];
    snprintf(transfer_id, sizeof(transfer_id), "txf_%s_%s",
             strcmp(kind, "paid") == 0 ? "paid" : "return", a->id);
    pw_db_param p[] = {pw_db_text(a->id), pw_db_text(to), pw_db_text(a->reason ? a->reason : ""),
                       pw_db_text(transfer_id), pw_db_text(kind)};
    a->after = snap_of(r, svc_row_at(r, svc_tx_query(r, &set_outcome, p, 5), 0));
    svc_tx_commit(r);
}

/* Runs the transition, then books what it decided; the batch as it is now. */
static Batch *transition(svc_req *r, transition_args *a)
{
    /* A transfer an earlier call decided but did not book (a crash, the ledger away) first. */
    pw_db_param k[] = {pw_db_text(a->id), pw_db_text(a->mode)};
    ensure_booked(
        r, snap_of(r, svc_one(r, svc_query(r, &batch_by_id, k, 2), "settlement batch", a->id)));
    svc_transaction(r, transition_tx, a);
    return ensure_booked(r, a->after).message;
}

static void check_transition(svc_req *r, const char *key, const char *batch_id, int mode_value,
                             const char **mode)
{
    *mode = ledger_mode_required(r, mode_value, "mode");
    if (!svc_key_ok(key)) {
        svc_violation(r, "idempotency_key", "1 to 128 printable characters");
    }
    if (!svc_id_ok(batch_id, "stl")) {
        svc_violation(r, "batch_id", "a batch id: \"stl_\" and 26 characters");
    }
}

SVC_HANDLER(mark_paid, Paywire__Finance__V1__MarkBatchPaidRequest)
{
    const char *mode;
    check_transition(r, req->idempotency_key, req->batch_id, req->mode, &mode);
    if (!svc_text_ok(req->payout_reference, 128)) {
        svc_violation(r, "payout_reference", "1 to 128 characters: the bank's reference or hash");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    transition_args a = {.id = req->batch_id, .mode = mode, .reference = req->payout_reference};
    Paywire__Finance__V1__MarkBatchPaidResponse resp =
        PAYWIRE__FINANCE__V1__MARK_BATCH_PAID_RESPONSE__INIT;
    resp.batch = transition(r, &a);
    svc_reply(r, &resp.base);
}

SVC_HANDLER(confirm, Paywire__Finance__V1__ConfirmBatchRequest)
{
    const char *mode;
    check_transition(r, req->idempotency_key, req->batch_id, req->mode, &mode);
    if (!req->succeeded && !svc_text_ok(req->failure_reason, 300)) {
        svc_violation(r, "failure_reason", "1 to 300 characters: why the payout came back");
    }
    svc_check(r);
    svc_authenticate(r, NULL);
    transition_args a = {.id = req->batch_id,
                         .mode = mode,
                         .confirm = 1,
                         .succeeded = req->succeeded,
                         .reason = req->succeeded ? "" : req->failure_reason};
    Paywire__Finance__V1__ConfirmBatchResponse resp =
        PAYWIRE__FINANCE__V1__CONFIRM_BATCH_RESPONSE__INIT;
    resp.batch = transition(r, &a);
    svc_reply(r, &resp.base);
}

static const paywire_finance_v1_settlement_service_handlers handlers = {
    .create_settlement_batch = create_batch_h,
    .get_settlement_batch = get_batch_h,
    .list_settlement_batches = list_batches_body_h,
    .stream_settlement_report = stream_report_h,
    .mark_batch_paid = mark_paid_h,
    .confirm_batch = confirm_h,
};

/* The whole table, built once: the servers of every worker keep a pointer to it. */
static paywire_finance_v1_settlement_service_handlers all_handlers;
static uv_once_t all_handlers_once = UV_ONCE_INIT;

static void build_handlers(void)
{
    all_handlers = handlers;
    reserves_handlers_init(&all_handlers);
}

pw_status settlement_register(pw_server *server, svc_app *app)
{
    uv_once(&all_handlers_once, build_handlers);
    return paywire_finance_v1_settlement_service_register(server, &all_handlers, app);
}
