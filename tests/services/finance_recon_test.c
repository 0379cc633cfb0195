/*
 * Reconciliation end to end: a real finance-server on a fresh database;
 * captures and refunds booked through CreateTransfer as orchestration books
 * them, then a partner's report with one row of every outcome uploaded by
 * client streaming. Exactly the planted differences must come back as
 * breaks, the payout and fee rows must be booked once (also when the report
 * is uploaded again), a later report must clear what it settles, and an
 * operator's adjustment must keep the ledger balanced.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/reconciliation.pw.h"
#include "report.h"

#define P(x) Paywire__Finance__V1__##x

static char db_url[512];
static svc_process proc = {
    .name = "finance",
    .binary = PW_FINANCE_SERVER,
    .health_service = "paywire.finance.v1.LedgerService",
};
static uv_loop_t loop;
static pw_channel *ch;

#define MERCHANT "mer_0000000000000000000000000M"

static int group_setup(void **state)
{
    (void)state;
    svc_process_prepare(&proc);
    pw_test_db_create("finance_recon_test", db_url, sizeof(db_url));
    char err[512];
    assert_int_equal(pw_db_migrate(db_url, PW_SOURCE_DIR "/services/finance/migrations",
                                   "paywire.migrate.finance", NULL, err, sizeof(err)),
                     PW_OK);
    svc_process_start(&proc, db_url, "log_level = warning\nworkers = 2\nrecon_job_seconds = 1\n");
    uv_loop_init(&loop);
    ch = svc_process_channel(&proc, &loop);
    svc_process_wait_serving(&proc, ch);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (ch != NULL) {
        pw_channel_close(ch, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    svc_process_stop(&proc);
    svc_process_cleanup(&proc);
    return 0;
}

/* ---- calls ---- */

/* A unary call whose request is JSON; the status, the message into msg (may be NULL). */
static pw_status call_json(const char *method, const ProtobufCMessageDescriptor *req_type,
                           const ProtobufCMessageDescriptor *resp_type, const char *json,
                           ProtobufCMessage **resp, char *msg, size_t cap)
{
    ProtobufCMessage *req = NULL;
    char err[256];
    if (pw_json_decode(req_type, json, strlen(json), NULL, &req, err, sizeof(err)) != PW_OK) {
        fail_msg("test request %s: %s", json, err);
    }
    pw_call_options o = {.timeout_ms = 20000};
    char *m = NULL;
    *resp = NULL;
    pw_status rv = pw_client_unary_blocking(ch, method, &o, req, resp_type, resp, &m, NULL);
    if (msg != NULL) {
        snprintf(msg, cap, "%s", m ? m : "");
    }
    pw_free(m);
    pw_protobuf_free(req);
    return rv;
}

/* Books a posted transfer: Dr `debit_account` (JSON AccountRef), Cr `credit_account`. */
static void book(const char *id, const char *kind, const char *partner_reference, int64_t amount,
                 const char *currency, const char *debit_account, const char *credit_account)
{
    char json[2048];
    snprintf(json, sizeof(json),
             "{\"transfer\":{\"mode\":\"MODE_TEST\",\"id\":\"%s\",\"kind\":\"%s\","
             "\"partnerReference\":\"%s\",\"entries\":["
             "{\"account\":%s,\"amount\":{\"amountMinor\":\"%lld\",\"currency\":\"%s\"},"
             "\"side\":\"NORMAL_BALANCE_DEBIT\",\"purpose\":\"payment\"},"
             "{\"account\":%s,\"amount\":{\"amountMinor\":\"%lld\",\"currency\":\"%s\"},"
             "\"side\":\"NORMAL_BALANCE_CREDIT\",\"purpose\":\"payment\"}]},"
             "\"balanceCheck\":\"BALANCE_CHECK_NONE\"}",
             id, kind, partner_reference, debit_account, (long long)amount, currency,
             credit_account, (long long)amount, currency);
    ProtobufCMessage *resp;
    char msg[256];
    pw_status rv = call_json("/paywire.finance.v1.LedgerService/CreateTransfer",
                             &paywire__finance__v1__create_transfer_request__descriptor,
                             &paywire__finance__v1__create_transfer_response__descriptor, json,
                             &resp, msg, sizeof(msg));
    if (rv != PW_OK) {
        fail_msg("booking %s: %s %s", id, pw_status_str(rv), msg);
    }
    pw_protobuf_free(resp);
}

static const char receivable_usd[] =
    "{\"platform\":{\"kind\":\"ACCOUNT_KIND_PARTNER_RECEIVABLE\",\"currency\":\"USD\","
    "\"counterparty\":\"acq1\"}}";
static const char pending_usd[] =
    "{\"merchant\":{\"merchantId\":\"" MERCHANT "\",\"kind\":\"ACCOUNT_KIND_MERCHANT_PENDING\","
    "\"currency\":\"USD\"}}";
static const char available_usd[] =
    "{\"merchant\":{\"merchantId\":\"" MERCHANT "\",\"kind\":\"ACCOUNT_KIND_MERCHANT_AVAILABLE\","
    "\"currency\":\"USD\"}}";

static void capture(const char *cap, const char *reference, int64_t amount)
{
    char id[64];
    snprintf(id, sizeof(id), "txf_capture_%s", cap);
    book(id, "capture", reference, amount, "USD", receivable_usd, pending_usd);
}

/* ---- reports ---- */

typedef struct report_row {
    const char *kind, *reference;
    int64_t amount;
    const char *currency;
} report_row;

typedef struct upload_result {
    pw_status code;
    /* The message and every BadRequest field, for checks by substring. */
    char message[2048];
    P(ReconciliationRun) * run;
    ProtobufCMessage *resp;
} upload_result;

static void upload_partner(const char *partner, const char *report_id, const report_row *rows,
                           size_t n, size_t per_message, upload_result *out);

/* Uploads rows as one report of acq1, in messages of per_message rows (0: one message). */
static void upload(const char *report_id, const report_row *rows, size_t n, size_t per_message,
                   upload_result *out)
{
    upload_partner("acq1", report_id, rows, n, per_message, out);
}

/* A report of another partner (or a bank's statement), in one message. */
static void upload_as(const char *partner, const char *report_id, const report_row *rows, size_t n,
                      upload_result *out)
{
    upload_partner(partner, report_id, rows, n, 0, out);
}

static void upload_rows(const char *partner, const char *report_id, const report_row *rows,
                        const char *const *settles, size_t n, size_t per_message,
                        upload_result *out);

static void upload_partner(const char *partner, const char *report_id, const report_row *rows,
                           size_t n, size_t per_message, upload_result *out)
{
    upload_rows(partner, report_id, rows, NULL, n, per_message, out);
}

/* A report of acq1 with net lines: settles[i] the members of row i, "a;b;c" (NULL: a plain
 * row). */
static void upload_net(const char *report_id, const report_row *rows, const char *const *settles,
                       size_t n, upload_result *out)
{
    upload_rows("acq1", report_id, rows, settles, n, 0, out);
}

static void upload_rows(const char *partner, const char *report_id, const report_row *rows,
                        const char *const *settles, size_t n, size_t per_message,
                        upload_result *out)
{
    P(PartnerReportRow) *msgs = calloc(n ? n : 1, sizeof(*msgs));
    P(PartnerReportRow) **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    Paywire__Common__V1__Money *money = calloc(n ? n : 1, sizeof(*money));
    char **members = calloc(n ? n : 1, sizeof(*members));
    Google__Protobuf__Timestamp booked = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    booked.seconds = 1796083200; /* 2026-12-01 */
    for (size_t i = 0; i < n; i++) {
        paywire__finance__v1__partner_report_row__init(&msgs[i]);
        paywire__common__v1__money__init(&money[i]);
        money[i].amount_minor = rows[i].amount;
        money[i].currency = (char *)rows[i].currency;
        msgs[i].kind = (char *)rows[i].kind;
        msgs[i].partner_reference = (char *)rows[i].reference;
        msgs[i].amount = &money[i];
        msgs[i].booked_time = &booked;
        if (settles != NULL && settles[i] != NULL) {
            /* The members' pointers, then their text, split at ';'. */
            size_t k = 1, len = strlen(settles[i]);
            for (const char *c = settles[i]; *c; c++) {
                k += *c == ';';
            }
            members[i] = malloc(k * sizeof(char *) + len + 1);
            char **v = (char **)members[i];
            char *text = members[i] + k * sizeof(char *);
            memcpy(text, settles[i], len + 1);
            for (size_t j = 0; j < k; j++) {
                size_t m = strcspn(text, ";");
                text[m] = '\0';
                v[j] = text;
                text += m + 1;
            }
            msgs[i].settles = v;
            msgs[i].n_settles = k;
        }
        ptrs[i] = &msgs[i];
    }
    pw_stream *s = NULL;
    assert_int_equal(paywire_finance_v1_reconciliation_service_upload_partner_report_start_blocking(
                         ch, NULL, &s),
                     PW_OK);
    size_t step = per_message ? per_message : (n ? n : 1);
    size_t sent = 0;
    do {
        P(UploadPartnerReportRequest)
        req = PAYWIRE__FINANCE__V1__UPLOAD_PARTNER_REPORT_REQUEST__INIT;
        if (sent == 0) {
            req.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
            req.partner = (char *)partner;
            req.report_id = (char *)report_id;
            req.report_date = "2026-12-01";
        }
        req.rows = ptrs + sent;
        req.n_rows = n - sent < step ? n - sent : step;
        assert_int_equal(
            paywire_finance_v1_reconciliation_service_upload_partner_report_stream_send(s, &req),
            PW_OK);
        sent += req.n_rows;
    } while (sent < n);
    assert_int_equal(pw_stream_close_send(s), PW_OK);
    memset(out, 0, sizeof(*out));
    ProtobufCMessage *m = NULL;
    pw_status rv =
        pw_stream_recv(s, &paywire__finance__v1__upload_partner_report_response__descriptor, &m);
    const char *msg = NULL;
    const pw_metadata *trailers = NULL;
    pw_status end = pw_stream_finish(s, &msg, &trailers);
    out->code = rv != PW_OK ? rv : end;
    int len = snprintf(out->message, sizeof(out->message), "%s", msg ? msg : "");
    pw_error_details d = {0};
    if (trailers != NULL && pw_error_details_read(trailers, &d) == PW_OK) {
        for (size_t i = 0; i < d.violation_count && len < (int)sizeof(out->message); i++) {
            len += snprintf(out->message + len, sizeof(out->message) - (size_t)len, " | %s",
                            d.violations[i].field);
        }
    }
    pw_error_details_clear(&d);
    if (out->code == PW_OK) {
        assert_non_null(m);
        out->resp = m;
        out->run = ((P(UploadPartnerReportResponse) *)m)->run;
    } else {
        pw_protobuf_free(m);
    }
    pw_stream_free(s);
    for (size_t i = 0; i < n; i++) {
        free(members[i]);
    }
    free(members);
    free(msgs);
    free(ptrs);
    free(money);
}

static long long scalar(const char *sql)
{
    return pw_test_db_scalar(db_url, sql);
}

/* Σ debits = Σ credits per (mode, currency), posted and pending: 0 when the ledger balances. */
static long long unbalanced(void)
{
    return scalar("SELECT count(*) FROM (SELECT mode, currency FROM accounts GROUP BY mode,"
                  " currency HAVING sum(posted_debits) <> sum(posted_credits)"
                  " OR sum(pending_debits) <> sum(pending_credits)) x");
}

/* The report of day one: one row of each outcome. */
static const report_row day_one[] = {
    {"capture", "sim1_c1", 10000, "USD"},  /* matched */
    {"capture", "sim1_c2", 2501, "USD"},   /* one unit more than booked */
    {"capture", "sim1_c3", 777, "EUR"},    /* booked in USD */
    {"capture", "sim1_c1", 10000, "USD"},  /* the first row again */
    {"capture", "sim1_zz", 300, "USD"},    /* never booked (yet) */
    {"refund", "sim1_r1", 500, "USD"},     /* matched */
    {"payout", "acq1-po-1", 12000, "USD"}, /* booked: the partner paid us */
    {"fee", "acq1-fee-1", 35, "USD"},      /* booked: the partner's charge */
};
#define DAY_ONE_ROWS (sizeof(day_one) / sizeof(day_one[0]))

static char run_one[40];

static void test_recon_finds_exactly_the_planted_breaks(void **state)
{
    (void)state;
    capture("cap_c1", "sim1_c1", 10000);
    capture("cap_c2", "sim1_c2", 2500);
    capture("cap_c3", "sim1_c3", 777);
    capture("cap_c4", "sim1_c4", 4000); /* not in the report: no break from a report */
    book("txf_refund_ref_r1", "refund", "sim1_r1", 500, "USD", available_usd, receivable_usd);
    upload_result u;
    upload("acq1-2026-12-01", day_one, DAY_ONE_ROWS, 3, &u);
    if (u.code != PW_OK) {
        fail_msg("upload: %s %s", pw_status_str(u.code), u.message);
    }
    snprintf(run_one, sizeof(run_one), "%s", u.run->id);
    assert_int_equal(u.run->rows, 8);
    assert_int_equal(u.run->matched, 4); /* two matched, two booked */
    assert_int_equal(u.run->breaks, 4);
    assert_int_equal(u.run->n_transfer_ids, 2);
    assert_true(strncmp(u.run->transfer_ids[0], "txf_partnerpay_prw_", 19) == 0);
    assert_true(strncmp(u.run->transfer_ids[1], "txf_partnerfee_prw_", 19) == 0);
    assert_int_equal(strlen(u.run->content_sha256), 64);
    /* Exactly the planted differences, by row. */
    char sql[512];
    const char *want[][2] = {
        {"1", "MATCHED"},
        {"2", "AMOUNT_MISMATCH"},
        {"3", "CURRENCY_MISMATCH"},
        {"4", "DUPLICATE"},
        {"5", "MISSING_IN_LEDGER"},
        {"6", "MATCHED"},
        {"7", "BOOKED"},
        {"8", "BOOKED"},
    };
    for (size_t i = 0; i < 8; i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM recon_rows WHERE run_id = '%s' AND line = %s AND outcome"
                 " = '%s'",
                 run_one, want[i][0], want[i][1]);
        if (scalar(sql) != 1) {
            fail_msg("row %s is not %s", want[i][0], want[i][1]);
        }
    }
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_breaks WHERE run_id = '%s' AND state = 'OPEN'", run_one);
    assert_int_equal(scalar(sql), 4);
    assert_int_equal(scalar("SELECT ledger_amount_minor FROM recon_breaks WHERE kind ="
                            " 'AMOUNT_MISMATCH'"),
                     2500);
    assert_int_equal(scalar("SELECT partner_amount_minor FROM recon_breaks WHERE kind ="
                            " 'AMOUNT_MISMATCH'"),
                     2501);
    /* Booked: our bank got the payout, the partner's fee is an expense, both off the receivable. */
    assert_int_equal(scalar("SELECT posted_debits FROM accounts WHERE kind = 'platform_cash'"
                            " AND owner = 'bank_1' AND currency = 'USD'"),
                     12000);
    assert_int_equal(scalar("SELECT posted_debits FROM accounts WHERE kind = 'partner_fees'"
                            " AND owner = 'acq1'"),
                     35);
    assert_int_equal(scalar("SELECT posted_credits FROM accounts WHERE kind ="
                            " 'partner_receivable' AND owner = 'acq1' AND currency = 'USD'"),
                     500 + 12000 + 35);
    assert_int_equal(unbalanced(), 0);
    pw_protobuf_free(u.resp);
}

static void test_recon_same_report_again_is_the_first_run(void **state)
{
    (void)state;
    long long entries = scalar("SELECT count(*) FROM entries");
    long long breaks = scalar("SELECT count(*) FROM recon_breaks");
    upload_result u;
    upload("acq1-2026-12-01", day_one, DAY_ONE_ROWS, 0, &u); /* the same rows, other chunks */
    assert_int_equal(u.code, PW_OK);
    assert_string_equal(u.run->id, run_one);
    assert_int_equal(u.run->breaks, 4);
    assert_int_equal(scalar("SELECT count(*) FROM entries"), entries);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks"), breaks);
    assert_int_equal(scalar("SELECT count(*) FROM recon_runs"), 1);
    pw_protobuf_free(u.resp);
    /* The same report id with other rows: refused, nothing stored. */
    report_row changed[DAY_ONE_ROWS];
    memcpy(changed, day_one, sizeof(changed));
    changed[1].amount = 2500;
    upload("acq1-2026-12-01", changed, DAY_ONE_ROWS, 0, &u);
    assert_int_equal(u.code, PW_FAILED_PRECONDITION);
    assert_non_null(strstr(u.message, "other rows"));
    assert_int_equal(scalar("SELECT count(*) FROM recon_runs"), 1);
    assert_int_equal(scalar("SELECT count(*) FROM entries"), entries);
}

static void test_recon_later_report_clears_what_it_settles(void **state)
{
    (void)state;
    /* The capture the partner reported first is booked late; the next report has it again. */
    capture("cap_zz", "sim1_zz", 300);
    const report_row day_two[] = {
        {"capture", "sim1_zz", 300, "USD"},
        {"capture", "sim1_c4", 4000, "USD"},
    };
    upload_result u;
    upload("acq1-2026-12-02", day_two, 2, 0, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->matched, 2);
    assert_int_equal(u.run->breaks, 0);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_LEDGER'"
                            " AND state = 'AUTO_CLEARED' AND clear_time IS NOT NULL"),
                     1);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE state = 'OPEN'"), 3);
    pw_protobuf_free(u.resp);
}

/* The open break of kind (a BreakKind name) from ListBreaks; its id into id. */
static void open_break(const char *kind, char *id, size_t cap)
{
    char json[256];
    snprintf(json, sizeof(json), "{\"mode\":\"MODE_TEST\",\"state\":\"BREAK_STATE_OPEN\"}");
    ProtobufCMessage *resp;
    assert_int_equal(call_json("/paywire.finance.v1.ReconciliationService/ListBreaks",
                               &paywire__finance__v1__list_breaks_request__descriptor,
                               &paywire__finance__v1__list_breaks_response__descriptor, json, &resp,
                               NULL, 0),
                     PW_OK);
    P(ListBreaksResponse) *l = (P(ListBreaksResponse) *)resp;
    id[0] = '\0';
    for (size_t i = 0; i < l->n_breaks; i++) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &paywire__finance__v1__break_kind__descriptor, l->breaks[i]->kind);
        if (v != NULL && strstr(v->name, kind) != NULL) {
            snprintf(id, cap, "%s", l->breaks[i]->id);
        }
    }
    pw_protobuf_free(resp);
    assert_true(id[0] != '\0');
}

static pw_status resolve(const char *key, const char *break_id, int adjust, ProtobufCMessage **resp,
                         char *msg, size_t cap)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"idempotencyKey\":\"%s\",\"breakId\":\"%s\",\"note\":\"checked with the"
             " partner\",\"bookAdjustment\":%s,\"mode\":\"MODE_TEST\"}",
             key, break_id, adjust ? "true" : "false");
    return call_json("/paywire.finance.v1.ReconciliationService/ResolveBreak",
                     &paywire__finance__v1__resolve_break_request__descriptor,
                     &paywire__finance__v1__resolve_break_response__descriptor, json, resp, msg,
                     cap);
}

static void test_recon_resolve_with_an_adjustment(void **state)
{
    (void)state;
    char id[40], msg[512];
    open_break("AMOUNT_MISMATCH", id, sizeof(id));
    ProtobufCMessage *a, *b, *c;
    assert_int_equal(resolve("resolve-1", id, 1, &a, msg, sizeof(msg)), PW_OK);
    P(Break) *done = ((P(ResolveBreakResponse) *)a)->break_;
    assert_int_equal(done->state, PAYWIRE__FINANCE__V1__BREAK_STATE__BREAK_STATE_RESOLVED);
    char want[64];
    snprintf(want, sizeof(want), "txf_adjust_%s", id);
    assert_string_equal(done->adjustment_transfer_id, want);
    /* The partner reported one unit more: it owes us one more, booked as revenue. */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT sum(amount_minor) FROM entries e JOIN accounts a ON a.id = e.account_id"
             " WHERE e.transfer_id = '%s' AND a.kind = 'partner_receivable' AND e.side = 'DEBIT'",
             want);
    assert_int_equal(scalar(sql), 1);
    /* The retry answers the first result; another operator's key finds it resolved. */
    assert_int_equal(resolve("resolve-1", id, 1, &b, msg, sizeof(msg)), PW_OK);
    assert_string_equal(((P(ResolveBreakResponse) *)b)->break_->adjustment_transfer_id, want);
    assert_int_equal(resolve("resolve-2", id, 0, &c, msg, sizeof(msg)), PW_FAILED_PRECONDITION);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM entries WHERE transfer_id = '%s'", want);
    assert_int_equal(scalar(sql), 2);
    assert_int_equal(unbalanced(), 0);
    pw_protobuf_free(a);
    pw_protobuf_free(b);
    /* A duplicate has no amount to adjust: refused naming the field, resolvable without. */
    open_break("DUPLICATE", id, sizeof(id));
    assert_int_equal(resolve("resolve-3", id, 1, &c, msg, sizeof(msg)), PW_FAILED_PRECONDITION);
    assert_non_null(strstr(msg, "adjust"));
    assert_int_equal(resolve("resolve-3", id, 0, &c, msg, sizeof(msg)), PW_OK);
    pw_protobuf_free(c);
    assert_int_equal(scalar("SELECT count(*) FROM audit_outbox WHERE action ="
                            " 'recon.break_resolved'"),
                     2);
}

static void test_recon_refuses_bad_reports(void **state)
{
    (void)state;
    long long runs = scalar("SELECT count(*) FROM recon_runs");
    const report_row bad[] = {
        {"capture", "sim1_ok", 100, "USD"}, {"settlement", "sim1_x", 100, "USD"}, /* no such kind */
        {"capture", "", 100, "USD"},      /* a capture without the partner's reference */
        {"capture", "sim1_y", 0, "USD"},  /* zero */
        {"refund", "sim1_z", 100, "usd"}, /* not a currency code */
    };
    upload_result u;
    upload("acq1-bad", bad, 5, 2, &u);
    assert_int_equal(u.code, PW_INVALID_ARGUMENT);
    const char *fields[] = {"rows[1].kind", "rows[2].partner_reference",
                            "rows[3].amount.amount_minor", "rows[4].amount.currency"};
    for (int i = 0; i < 4; i++) {
        if (strstr(u.message, fields[i]) == NULL) {
            fail_msg("\"%s\" does not name %s", u.message, fields[i]);
        }
    }
    assert_int_equal(scalar("SELECT count(*) FROM recon_runs"), runs);
    /* Too many rows in one message. */
    report_row *many = calloc(1001, sizeof(*many));
    for (int i = 0; i < 1001; i++) {
        many[i] = (report_row){"capture", "sim1_many", 1, "USD"};
    }
    upload("acq1-many", many, 1001, 0, &u);
    free(many);
    assert_int_equal(u.code, PW_INVALID_ARGUMENT);
    assert_non_null(strstr(u.message, "rows"));
    assert_int_equal(scalar("SELECT count(*) FROM recon_runs"), runs);
    /* The server keeps serving. */
    assert_int_equal(svc_process_health(ch, "paywire.finance.v1.LedgerService"), 1);
}

/* ---- pwrecon's reader and upload ---- */

typedef struct bad_lines {
    int lines[8];
    int n;
} bad_lines;

static void note_bad(const char *file, int line, const char *why, void *ud)
{
    (void)file;
    (void)why;
    bad_lines *b = ud;
    if (b->n < 8) {
        b->lines[b->n++] = line;
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_recon_csv_report_through_pwrecon(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof(path), "%s/report.csv", proc.dir);
    /* Columns in another order, an extra one, quoting; lines 3, 4, 5 and 7 are malformed. */
    write_file(path, "kind,currency,partner_reference,amount_minor,booked_time,note\n"
                     "capture,USD,sim1_c4,4000,2026-12-03T10:00:00Z,\"late, but fine\"\n"
                     "capture,USD,sim1_c4,40.00,2026-12-03,decimal amount\n"
                     "capture,usd,sim1_c4,4000,2026-12-03,lower-case currency\n"
                     "capture,USD,sim1_c4,4000,yesterday,no date\n"
                     "fee,USD,acq1-fee-2,12,2026-12-03\n"
                     "capture,USD,\"sim1_c4,4000,2026-12-03\n");
    recon_report *r = NULL;
    bad_lines bad = {0};
    char err[256];
    assert_int_equal(recon_report_read(&r, path, note_bad, &bad, err, sizeof(err)), PW_OK);
    size_t n;
    P(PartnerReportRow) *const *rows = recon_report_rows(r, &n);
    assert_int_equal(n, 2);
    assert_int_equal(recon_report_malformed(r), 4);
    assert_int_equal(bad.n, 4);
    int want[] = {3, 4, 5, 7};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bad.lines[i], want[i]);
    }
    assert_string_equal(rows[0]->partner_reference, "sim1_c4");
    assert_int_equal(rows[0]->amount->amount_minor, 4000);
    assert_int_equal(rows[0]->booked_time->seconds, 1796292000); /* 2026-12-03T10:00:00Z */
    assert_string_equal(rows[1]->kind, "fee");
    /* The good rows uploaded: the capture was reported on day two already (a duplicate), the
     * fee is booked. */
    recon_report_header h = {PAYWIRE__COMMON__V1__MODE__MODE_TEST, "acq1", "acq1-2026-12-03",
                             "2026-12-03"};
    P(UploadPartnerReportResponse) *resp = NULL;
    char msg[512];
    assert_int_equal(recon_report_upload(ch, &h, rows, n, 1, &resp, msg, sizeof(msg)), PW_OK);
    assert_int_equal(resp->run->rows, 2);
    assert_int_equal(resp->run->breaks, 1);
    assert_int_equal(resp->run->n_transfer_ids, 1);
    pw_protobuf_free(&resp->base);
    recon_report_free(r);
    /* A file without a required column is refused naming it. */
    write_file(path, "kind,currency,amount_minor,booked_time\ncapture,USD,1,2026-12-03\n");
    assert_int_equal(recon_report_read(&r, path, NULL, NULL, err, sizeof(err)),
                     PW_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "partner_reference"));
}

/* ---- the same partner line in reports uploaded at once ---- */

typedef struct racer {
    char report_id[40];
    pw_status code;
} racer;

static void *race_upload(void *arg)
{
    racer *rc = arg;
    uv_loop_t l;
    uv_loop_init(&l);
    pw_channel *c = svc_process_channel(&proc, &l);
    Paywire__Common__V1__Money money = PAYWIRE__COMMON__V1__MONEY__INIT;
    money.amount_minor = 7000;
    money.currency = "USD";
    Google__Protobuf__Timestamp booked = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    booked.seconds = 1796083200;
    P(PartnerReportRow) row = PAYWIRE__FINANCE__V1__PARTNER_REPORT_ROW__INIT;
    row.kind = "payout";
    row.partner_reference = "acq1-po-race";
    row.amount = &money;
    row.booked_time = &booked;
    P(PartnerReportRow) * rows[] = {&row};
    recon_report_header h = {PAYWIRE__COMMON__V1__MODE__MODE_TEST, "acq1", rc->report_id,
                             "2026-12-05"};
    P(UploadPartnerReportResponse) *resp = NULL;
    char msg[256];
    rc->code = recon_report_upload(c, &h, rows, 1, 1, &resp, msg, sizeof(msg));
    if (resp != NULL) {
        pw_protobuf_free(&resp->base);
    }
    pw_channel_close(c, NULL, NULL);
    uv_run(&l, UV_RUN_DEFAULT);
    uv_loop_close(&l);
    return NULL;
}

static void test_recon_one_payout_line_books_once_across_reports(void **state)
{
    (void)state;
    long long cash = scalar("SELECT posted_debits FROM accounts WHERE kind = 'platform_cash'"
                            " AND owner = 'bank_1' AND currency = 'USD'");
    enum { RACERS = 4 };
    racer rc[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
        snprintf(rc[i].report_id, sizeof(rc[i].report_id), "acq1-race-%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, race_upload, &rc[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(rc[i].code, PW_OK);
    }
    /* Four reports of the same payout line: booked once, the other three DUPLICATE. */
    assert_int_equal(scalar("SELECT count(*) FROM recon_rows WHERE partner_reference ="
                            " 'acq1-po-race' AND outcome = 'BOOKED'"),
                     1);
    assert_int_equal(scalar("SELECT count(*) FROM recon_rows WHERE partner_reference ="
                            " 'acq1-po-race' AND outcome = 'DUPLICATE'"),
                     RACERS - 1);
    assert_int_equal(scalar("SELECT posted_debits FROM accounts WHERE kind = 'platform_cash'"
                            " AND owner = 'bank_1' AND currency = 'USD'"),
                     cash + 7000);
    assert_int_equal(unbalanced(), 0);
    /* Our bank's statement shows the payout arriving: it matches the booked transfer. */
    const report_row statement[] = {{"bank_credit", "acq1-po-race", 7000, "USD"}};
    upload_result u;
    upload_as("bank_1", "bank_1-2026-12-05", statement, 1, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->matched, 1);
    assert_int_equal(u.run->breaks, 0);
    pw_protobuf_free(u.resp);
}

/* ---- net settlement lines (one-to-many) ---- */

/* The outcome of line `line` of run `run` is `want`, else the test fails naming both. */
static void assert_outcome(const char *run, int line, const char *want)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_rows WHERE run_id = '%s' AND line = %d AND outcome = '%s'",
             run, line, want);
    if (scalar(sql) != 1) {
        fail_msg("line %d of %s is not %s", line, run, want);
    }
}

/* The break of line `line` of run `run`: of kind `kind`, naming member `member` ("" for none). */
static void assert_break(const char *run, int line, const char *kind, const char *member)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_breaks b JOIN recon_rows w ON w.id = b.row_id"
             " WHERE w.run_id = '%s' AND w.line = %d AND b.kind = '%s' AND b.member_reference ="
             " '%s' AND b.state = 'OPEN'",
             run, line, kind, member);
    if (scalar(sql) != 1) {
        fail_msg("line %d of %s has no open %s break naming \"%s\"", line, run, kind, member);
    }
}

static char net_run[40];

static void test_recon_net_lines_matched_by_grouping(void **state)
{
    (void)state;
    capture("cap_na1", "net_a1", 1000);
    capture("cap_na2", "net_a2", 2000);
    capture("cap_na3", "net_a3", 3000);
    capture("cap_nb1", "net_b1", 1000);
    capture("cap_nb2", "net_b2", 2000);
    capture("cap_nc1", "net_c1", 700); /* net_c2 is not booked (yet) */
    capture("cap_nd1", "net_d1", 400);
    capture("cap_ne1", "net_e1", 500);
    capture("cap_nh1", "net_h1", 800);
    const report_row rows[] = {
        {"capture", "acq1-net-1", 6000, "USD"}, /* three captures: matched */
        {"capture", "acq1-net-2", 3001, "USD"}, /* one unit more than the sum */
        {"capture", "acq1-net-3", 1500, "USD"}, /* one member not booked */
        {"capture", "net_d1", 400, "USD"},      /* a plain row, matched */
        {"capture", "acq1-net-4", 400, "USD"},  /* lists net_d1 again */
        {"capture", "acq1-net-5", 500, "USD"},  /* matched */
        {"capture", "net_e1", 500, "USD"},      /* listed by the line before */
        {"capture", "acq1-net-7", 800, "EUR"},  /* its member is booked in USD */
    };
    const char *const settles[] = {
        "net_a1;net_a2;net_a3",
        "net_b1;net_b2",
        "net_c1;net_c2",
        NULL,
        "net_e2;net_d1",
        "net_e1",
        NULL,
        "net_h1",
    };
    upload_result u;
    upload_net("acq1-net-2026-12-06", rows, settles, 8, &u);
    if (u.code != PW_OK) {
        fail_msg("upload: %s %s", pw_status_str(u.code), u.message);
    }
    snprintf(net_run, sizeof(net_run), "%s", u.run->id);
    assert_int_equal(u.run->rows, 8);
    assert_int_equal(u.run->matched, 3);
    assert_int_equal(u.run->breaks, 5);
    pw_protobuf_free(u.resp);
    assert_outcome(net_run, 1, "MATCHED");
    assert_outcome(net_run, 2, "AMOUNT_MISMATCH");
    assert_outcome(net_run, 3, "MISSING_IN_LEDGER");
    assert_outcome(net_run, 4, "MATCHED");
    assert_outcome(net_run, 5, "DUPLICATE");
    assert_outcome(net_run, 6, "MATCHED");
    assert_outcome(net_run, 7, "DUPLICATE");
    assert_outcome(net_run, 8, "CURRENCY_MISMATCH");
    /* Each member of the matched line with the transfer found for it, in the line's order. */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_row_members m JOIN recon_rows w ON w.id = m.row_id"
             " WHERE w.run_id = '%s' AND w.line = 1 AND m.problem = '' AND m.transfer_id ="
             " 'txf_capture_cap_na' || m.ord AND m.partner_reference = 'net_a' || m.ord",
             net_run);
    assert_int_equal(scalar(sql), 3);
    snprintf(sql, sizeof(sql),
             "SELECT ledger_amount_minor FROM recon_rows WHERE run_id = '%s' AND line = 1",
             net_run);
    assert_int_equal(scalar(sql), 6000);
    /* The breaks name what is wrong: the sum, the member not booked, the member found before
     * (not the unbooked one listed first: DUPLICATE comes first), the other currency. */
    assert_break(net_run, 2, "AMOUNT_MISMATCH", "");
    snprintf(sql, sizeof(sql),
             "SELECT ledger_amount_minor * 10000 + partner_amount_minor FROM recon_breaks"
             " WHERE run_id = '%s' AND kind = 'AMOUNT_MISMATCH'",
             net_run);
    assert_int_equal(scalar(sql), 3000LL * 10000 + 3001);
    assert_break(net_run, 3, "MISSING_IN_LEDGER", "net_c2");
    assert_break(net_run, 5, "DUPLICATE", "net_d1");
    assert_break(net_run, 7, "DUPLICATE", "");
    assert_break(net_run, 8, "CURRENCY_MISMATCH", "net_h1");
    /* ListBreaks carries the member. */
    char json[256];
    snprintf(json, sizeof(json), "{\"mode\":\"MODE_TEST\",\"runId\":\"%s\"}", net_run);
    ProtobufCMessage *resp;
    assert_int_equal(call_json("/paywire.finance.v1.ReconciliationService/ListBreaks",
                               &paywire__finance__v1__list_breaks_request__descriptor,
                               &paywire__finance__v1__list_breaks_response__descriptor, json, &resp,
                               NULL, 0),
                     PW_OK);
    P(ListBreaksResponse) *l = (P(ListBreaksResponse) *)resp;
    int named = 0;
    for (size_t i = 0; i < l->n_breaks; i++) {
        if (l->breaks[i]->kind == PAYWIRE__FINANCE__V1__BREAK_KIND__BREAK_KIND_MISSING_IN_LEDGER) {
            assert_string_equal(l->breaks[i]->partner_reference, "acq1-net-3");
            assert_string_equal(l->breaks[i]->member_reference, "net_c2");
            named++;
        }
    }
    assert_int_equal(named, 1);
    pw_protobuf_free(resp);
    assert_int_equal(unbalanced(), 0);
}

static void test_recon_net_line_members_count_as_found_later(void **state)
{
    (void)state;
    capture("cap_nc2", "net_c2", 800); /* booked at last */
    const report_row rows[] = {
        {"capture", "acq1-net-3", 1500, "USD"}, /* the same line again: now it matches */
        {"capture", "net_a1", 1000, "USD"},     /* found by a net line of an earlier run */
        {"capture", "acq1-net-8", 2000, "USD"}, /* a member found by an earlier net line */
        {"capture", "acq1-net-9", 2000, "USD"}, /* one whose line's amount was off: found */
    };
    const char *const settles[] = {"net_c1;net_c2", NULL, "net_a2", "net_b2"};
    upload_result u;
    upload_net("acq1-net-2026-12-07", rows, settles, 4, &u);
    if (u.code != PW_OK) {
        fail_msg("upload: %s %s", pw_status_str(u.code), u.message);
    }
    char run[40];
    snprintf(run, sizeof(run), "%s", u.run->id);
    assert_int_equal(u.run->matched, 1);
    assert_int_equal(u.run->breaks, 3);
    pw_protobuf_free(u.resp);
    assert_outcome(run, 1, "MATCHED");
    assert_outcome(run, 2, "DUPLICATE");
    assert_outcome(run, 3, "DUPLICATE");
    assert_outcome(run, 4, "DUPLICATE");
    assert_break(run, 3, "DUPLICATE", "net_a2");
    assert_break(run, 4, "DUPLICATE", "net_b2");
    /* The line's MISSING_IN_LEDGER break of the earlier run cleared itself. */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_breaks WHERE run_id = '%s' AND kind ="
             " 'MISSING_IN_LEDGER' AND state = 'AUTO_CLEARED' AND member_reference = 'net_c2'",
             net_run);
    assert_int_equal(scalar(sql), 1);
}

static void test_recon_refuses_bad_net_lines(void **state)
{
    (void)state;
    long long runs = scalar("SELECT count(*) FROM recon_runs");
    char *many = malloc(1001 * 8 + 1);
    char *p = many;
    for (int i = 0; i < 1001; i++) {
        p += sprintf(p, "%sm%04d", i ? ";" : "", i);
    }
    char longer[110];
    memset(longer, 'x', 101);
    longer[101] = '\0';
    const report_row rows[] = {
        {"capture", "acq1-bad-1", 100, "USD"}, {"capture", "acq1-bad-2", 100, "USD"},
        {"capture", "acq1-bad-3", 100, "USD"}, {"payout", "acq1-bad-4", 100, "USD"},
        {"capture", "acq1-bad-5", 100, "USD"}, {"capture", "acq1-ok-6", 100, "USD"},
    };
    const char *const settles[] = {"net_a1;;net_a3", "net_a1;net_a2;net_a1", longer, "net_a1", many,
                                   "net_zz"};
    upload_result u;
    upload_net("acq1-net-bad", rows, settles, 6, &u);
    free(many);
    assert_int_equal(u.code, PW_INVALID_ARGUMENT);
    const char *fields[] = {"rows[0].settles[1]", "rows[1].settles[2]", "rows[2].settles[0]",
                            "rows[3].settles", "rows[4].settles"};
    for (int i = 0; i < 5; i++) {
        if (strstr(u.message, fields[i]) == NULL) {
            fail_msg("\"%s\" does not name %s", u.message, fields[i]);
        }
    }
    assert_null(strstr(u.message, "rows[5]"));
    assert_int_equal(scalar("SELECT count(*) FROM recon_runs"), runs);
}

static void test_recon_csv_net_lines_through_pwrecon(void **state)
{
    (void)state;
    capture("cap_np1", "net_p1", 300);
    capture("cap_np2", "net_p2", 400);
    char path[160];
    snprintf(path, sizeof(path), "%s/net.csv", proc.dir);
    /* Lines 4, 5 and 6 are malformed: an empty member, one twice, a trailing separator. */
    write_file(path, "partner_reference,kind,amount_minor,currency,booked_time,settles\n"
                     "acq1-net-csv,capture,700,USD,2026-12-06,net_p1;net_p2\n"
                     "net_p9,capture,5,USD,2026-12-06,\n"
                     "acq1-net-b1,capture,700,USD,2026-12-06,net_p1;;net_p2\n"
                     "acq1-net-b2,capture,700,USD,2026-12-06,net_p1;net_p1\n"
                     "acq1-net-b3,capture,700,USD,2026-12-06,net_p1;\n");
    recon_report *r = NULL;
    bad_lines bad = {0};
    char err[256];
    assert_int_equal(recon_report_read(&r, path, note_bad, &bad, err, sizeof(err)), PW_OK);
    size_t n;
    P(PartnerReportRow) *const *rows = recon_report_rows(r, &n);
    assert_int_equal(n, 2);
    assert_int_equal(bad.n, 3);
    int want[] = {4, 5, 6};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bad.lines[i], want[i]);
    }
    assert_int_equal(rows[0]->n_settles, 2);
    assert_string_equal(rows[0]->settles[0], "net_p1");
    assert_string_equal(rows[0]->settles[1], "net_p2");
    assert_int_equal(rows[1]->n_settles, 0); /* an empty field: a plain row */
    /* The net line uploaded: matched by its two captures. */
    recon_report_header h = {PAYWIRE__COMMON__V1__MODE__MODE_TEST, "acq1", "acq1-net-csv-1",
                             "2026-12-06"};
    P(UploadPartnerReportResponse) *resp = NULL;
    char msg[512];
    assert_int_equal(recon_report_upload(ch, &h, rows, 1, 1, &resp, msg, sizeof(msg)), PW_OK);
    assert_int_equal(resp->run->matched, 1);
    assert_int_equal(resp->run->breaks, 0);
    pw_protobuf_free(&resp->base);
    recon_report_free(r);
}

/* The rerun job retries MISSING_IN_LEDGER breaks by their partner_reference, which for a net
 * line is the line's own id: it must not clear the line's break onto a transfer of that id. */
static void test_recon_rerun_leaves_net_lines_alone(void **state)
{
    (void)state;
    const report_row line[] = {{"capture", "net_q_line", 900, "USD"}};
    const char *const members[] = {"net_q1"}; /* never booked */
    upload_result u;
    upload_net("acq1-net-2026-12-08", line, members, 1, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->breaks, 1);
    pw_protobuf_free(u.resp);
    capture("cap_nq", "net_q_line", 900); /* the line's id, same amount */
    long long runs = scalar("SELECT runs FROM svc_jobs WHERE name = 'recon_rerun'");
    /* Two runs of the job after the booking (it runs every second). */
    for (int i = 0; i < 100; i++) {
        if (scalar("SELECT runs FROM svc_jobs WHERE name = 'recon_rerun'") >= runs + 2) {
            break;
        }
        uv_sleep(100);
    }
    assert_true(scalar("SELECT runs FROM svc_jobs WHERE name = 'recon_rerun'") >= runs + 2);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE partner_reference ="
                            " 'net_q_line' AND kind = 'MISSING_IN_LEDGER' AND state = 'OPEN'"
                            " AND member_reference = 'net_q1'"),
                     1);
    /* The capture of that id is reported by itself, so that the jobs test finds it reported. */
    const report_row plain[] = {{"capture", "net_q_line", 900, "USD"}};
    upload("acq1-net-2026-12-09", plain, 1, 0, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->matched, 1);
    pw_protobuf_free(u.resp);
}

/* Runs last: it moves the business clock. */
static void test_recon_jobs_missing_in_report_and_late_bookings(void **state)
{
    (void)state;
    /* A capture no report will have, and a report row whose capture is booked a bit later. */
    capture("cap_c5", "sim1_c5", 650);
    const report_row late[] = {{"capture", "sim1_late", 900, "USD"}};
    upload_result u;
    upload("acq1-2026-12-04", late, 1, 0, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->breaks, 1);
    pw_protobuf_free(u.resp);
    capture("cap_late", "sim1_late", 900);
    /* The rerun finds the late booking (the job runs every second). */
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM recon_breaks WHERE"
                                            " partner_reference = 'sim1_late' AND state ="
                                            " 'AUTO_CLEARED' AND transfer_id ="
                                            " 'txf_capture_cap_late'",
                                            1, 20000),
                     1);
    /* Not missing yet: the partner settles a day later, with two days of grace. */
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"),
                     0);
    pw_test_db_exec(db_url, "UPDATE svc_clock SET offset_ms = offset_ms + 4 * 86400000");
    /* Four days on, only c5 was never reported (late was found by the rerun). */
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM recon_breaks WHERE kind ="
                                            " 'MISSING_IN_REPORT'",
                                            1, 20000),
                     1);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"
                            " AND transfer_id = 'txf_capture_cap_c5' AND ledger_amount_minor ="
                            " 650 AND expected_settlement_date IS NOT NULL"),
                     1);
    uv_sleep(2500); /* more runs of the job raise nothing more */
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"),
                     1);
    assert_true(scalar("SELECT runs FROM svc_jobs WHERE name = 'recon_missing_in_report'") >= 2);
    /* The partner's late report clears it. */
    const report_row c5[] = {{"capture", "sim1_c5", 650, "USD"}};
    upload("acq1-2026-12-08", c5, 1, 0, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->breaks, 0);
    pw_protobuf_free(u.resp);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"
                            " AND state = 'AUTO_CLEARED'"),
                     1);
}

/* After the jobs test: a net line's members are not missing in the report, and a later line
 * settles the members' MISSING_IN_REPORT breaks. */
static void test_recon_net_line_settles_missing_in_report(void **state)
{
    (void)state;
    /* The clock back to today (the jobs wait until it has caught up with their next run), so
     * that the captures below are not due before their line is uploaded. */
    pw_test_db_exec(db_url, "UPDATE svc_clock SET offset_ms = 0");
    capture("cap_nm1", "net_m1", 100);
    capture("cap_nm2", "net_m2", 200);
    capture("cap_nm3", "net_m3", 300);
    capture("cap_nf1", "net_f1", 150);
    capture("cap_nf2", "net_f2", 250);
    const report_row line[] = {{"capture", "acq1-net-m", 600, "USD"}};
    const char *const members[] = {"net_m1;net_m2;net_m3"};
    upload_result u;
    upload_net("acq1-net-2026-12-10", line, members, 1, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->matched, 1);
    pw_protobuf_free(u.resp);
    pw_test_db_exec(db_url, "UPDATE svc_clock SET offset_ms = offset_ms + 4 * 86400000");
    /* The job has run since: the two captures no report had are missing... */
    assert_int_equal(pw_test_db_wait_scalar(db_url,
                                            "SELECT count(*) FROM recon_breaks WHERE kind ="
                                            " 'MISSING_IN_REPORT' AND state = 'OPEN' AND"
                                            " transfer_id IN ('txf_capture_cap_nf1',"
                                            " 'txf_capture_cap_nf2')",
                                            2, 20000),
                     2);
    /* ...the net line's three are not. */
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"
                            " AND transfer_id LIKE 'txf_capture_cap_nm%'"),
                     0);
    /* The partner's next report settles both with one line: both breaks clear. */
    const report_row late[] = {{"capture", "acq1-net-f", 400, "USD"}};
    const char *const late_members[] = {"net_f2;net_f1"};
    upload_net("acq1-net-2026-12-14", late, late_members, 1, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->matched, 1);
    assert_int_equal(u.run->breaks, 0);
    pw_protobuf_free(u.resp);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"
                            " AND state = 'AUTO_CLEARED' AND resolution_note LIKE"
                            " 'matched by report row prw_%' AND transfer_id IN"
                            " ('txf_capture_cap_nf1', 'txf_capture_cap_nf2')"),
                     2);
    uv_sleep(2500); /* more runs of the job raise nothing for them */
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'"
                            " AND state = 'OPEN' AND transfer_id LIKE 'txf_capture_cap_n%'"),
                     0);
    /* A row reported before its capture was booked (too old by now for the rerun job to retry)
     * is cleared by a later line that has it as a member. */
    const report_row early[] = {{"capture", "net_g1", 120, "USD"}};
    upload("acq1-net-2026-12-15", early, 1, 0, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->breaks, 1);
    pw_protobuf_free(u.resp);
    capture("cap_ng1", "net_g1", 120);
    const report_row g[] = {{"capture", "acq1-net-g", 120, "USD"}};
    const char *const g_members[] = {"net_g1"};
    upload_net("acq1-net-2026-12-16", g, g_members, 1, &u);
    assert_int_equal(u.code, PW_OK);
    assert_int_equal(u.run->matched, 1);
    pw_protobuf_free(u.resp);
    assert_int_equal(scalar("SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_LEDGER'"
                            " AND partner_reference = 'net_g1' AND state = 'AUTO_CLEARED' AND"
                            " resolution_note LIKE 'matched by report row prw_%'"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recon_finds_exactly_the_planted_breaks),
        cmocka_unit_test(test_recon_same_report_again_is_the_first_run),
        cmocka_unit_test(test_recon_later_report_clears_what_it_settles),
        cmocka_unit_test(test_recon_resolve_with_an_adjustment),
        cmocka_unit_test(test_recon_refuses_bad_reports),
        cmocka_unit_test(test_recon_csv_report_through_pwrecon),
        cmocka_unit_test(test_recon_one_payout_line_books_once_across_reports),
        cmocka_unit_test(test_recon_net_lines_matched_by_grouping),
        cmocka_unit_test(test_recon_net_line_members_count_as_found_later),
        cmocka_unit_test(test_recon_refuses_bad_net_lines),
        cmocka_unit_test(test_recon_csv_net_lines_through_pwrecon),
        cmocka_unit_test(test_recon_rerun_leaves_net_lines_alone),
        cmocka_unit_test(test_recon_jobs_missing_in_report_and_late_bookings),
        cmocka_unit_test(test_recon_net_line_settles_missing_in_report),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
