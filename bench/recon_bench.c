/*
 * recon-bench: reconciliation's matching speed (bench/recon runs it).
 *   recon-bench HOST:PORT CERT_DIR DATABASE_URL ROWS
 * The ledger gets ROWS posted captures of partner acqb (written with SQL,
 * the balance trigger off: set-up only), then one report of ROWS capture
 * rows (one in a hundred a unit off, one in a thousand never booked) is
 * uploaded to finance-server in messages of 1000 rows: rows/s from the first
 * message to the answer, so storing, matching and the breaks are all in it.
 * The floor beside it is the naive design (a query per row, as Blnk's
 * matcher does): for a sample of the same rows, one SELECT of the ledger
 * item and one INSERT of the outcome per row on one connection; the ratio is
 * printed. The database is the bench's own (dropped by bench/recon).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>
#include <paywire/paywire.h>
#include "paywire/finance/v1/reconciliation.pw.h"

#define P(x)        Paywire__Finance__V1__##x
#define PER_MESSAGE 1000
#define NAIVE_ROWS  20000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "recon-bench: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

/* ROWS captures of 100 + i % 900 USD cents, reference bench_<i>, booked with plain SQL. */
static void seed_ledger(PGconn *c, long rows)
{
    char sql[2048];
    exec_or_die(c, "SET session_replication_role = replica");
    exec_or_die(c, "INSERT INTO accounts (id, mode, kind, owner, currency, normal_balance) VALUES"
                   " ('acc_00000000000000000000000R01', 'TEST', 'partner_receivable', 'acqb',"
                   " 'USD', 'DEBIT'), ('acc_00000000000000000000000P01', 'TEST',"
                   " 'merchant_pending', 'mer_BENCH', 'USD', 'CREDIT') ON CONFLICT DO NOTHING");
    snprintf(sql, sizeof(sql),
             "INSERT INTO transfers (mode, id, kind, state, partner_reference, two_phase,"
             " balance_check, create_time, post_time) SELECT 'TEST', 'txf_capture_bench' || i,"
             " 'capture', 'POSTED', 'bench_' || i, false, 'NONE', now(), now()"
             " FROM generate_series(1, %ld) i",
             rows);
    exec_or_die(c, sql);
    snprintf(sql, sizeof(sql),
             "INSERT INTO entries (mode, transfer_id, account_id, side, amount_minor, currency,"
             " phase, balance_after_minor, time) SELECT 'TEST', 'txf_capture_bench' || i, a, s,"
             " 100 + i %% 900, 'USD', 'POSTED', 0, now() FROM generate_series(1, %ld) i,"
             " (VALUES ('acc_00000000000000000000000R01', 'DEBIT'),"
             " ('acc_00000000000000000000000P01', 'CREDIT')) v(a, s)",
             rows);
    exec_or_die(c, sql);
    exec_or_die(c, "SET session_replication_role = origin");
    exec_or_die(c, "ANALYZE");
}

/* Row i of the report: a unit off for one in a hundred, unknown for one in a thousand. */
static void report_row(long i, char *ref, size_t cap, int64_t *amount)
{
    snprintf(ref, cap, i % 1000 == 999 ? "nobody_%ld" : "bench_%ld", i);
    *amount = 100 + i % 900 + (i % 100 == 42);
}

static pw_status upload(pw_channel *ch, long rows, double *seconds, P(ReconciliationRun) * *run)
{
    P(PartnerReportRow) *msgs = calloc(PER_MESSAGE, sizeof(*msgs));
    P(PartnerReportRow) **ptrs = calloc(PER_MESSAGE, sizeof(*ptrs));
    Paywire__Common__V1__Money *money = calloc(PER_MESSAGE, sizeof(*money));
    char(*refs)[32] = calloc(PER_MESSAGE, sizeof(*refs));
    Google__Protobuf__Timestamp booked = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    booked.seconds = (int64_t)time(NULL);
    pw_call_options o = {.timeout_ms = 600000};
    pw_stream *s = NULL;
    double t0 = now_s();
    pw_status rv =
        paywire_finance_v1_reconciliation_service_upload_partner_report_start_blocking(ch, &o, &s);
    for (long sent = 0; rv == PW_OK && sent < rows; sent += PER_MESSAGE) {
        size_t n = (size_t)(rows - sent < PER_MESSAGE ? rows - sent : PER_MESSAGE);
        for (size_t k = 0; k < n; k++) {
            paywire__finance__v1__partner_report_row__init(&msgs[k]);
            paywire__common__v1__money__init(&money[k]);
            report_row(sent + (long)k + 1, refs[k], sizeof(refs[k]), &money[k].amount_minor);
            money[k].currency = "USD";
            msgs[k].kind = "capture";
            msgs[k].partner_reference = refs[k];
            msgs[k].amount = &money[k];
            msgs[k].booked_time = &booked;
            ptrs[k] = &msgs[k];
        }
        P(UploadPartnerReportRequest)
        req = PAYWIRE__FINANCE__V1__UPLOAD_PARTNER_REPORT_REQUEST__INIT;
        if (sent == 0) {
            req.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
            req.partner = "acqb";
            req.report_id = "bench-report";
            req.report_date = "2026-12-01";
        }
        req.rows = ptrs;
        req.n_rows = n;
        rv = paywire_finance_v1_reconciliation_service_upload_partner_report_stream_send(s, &req);
    }
    if (rv == PW_OK) {
        rv = pw_stream_close_send(s);
    }
    ProtobufCMessage *m = NULL;
    if (rv == PW_OK) {
        rv = pw_stream_recv(s, &paywire__finance__v1__upload_partner_report_response__descriptor,
                            &m);
    }
    const char *msg = NULL;
    pw_status end = s ? pw_stream_finish(s, &msg, NULL) : rv;
    *seconds = now_s() - t0;
    if (rv == PW_OK && end != PW_OK) {
        rv = end;
    }
    if (rv != PW_OK) {
        fprintf(stderr, "recon-bench: upload: %s %s\n", pw_status_str(rv), msg ? msg : "");
    }
    *run = m ? ((P(UploadPartnerReportResponse) *)m)->run : NULL;
    if (s) {
        pw_stream_free(s);
    }
    free(msgs);
    free(ptrs);
    free(money);
    free(refs);
    return rv;
}

/* The naive matcher on `rows` report rows: a lookup and an outcome insert per row. */
static double naive(PGconn *c, long rows)
{
    exec_or_die(c, "CREATE TEMP TABLE naive_outcomes (line int8, outcome text, transfer_id text)");
    double t0 = now_s();
    for (long i = 1; i <= rows; i++) {
        char ref[32], line[32], amount_s[32];
        int64_t amount;
        report_row(i, ref, sizeof(ref), &amount);
        const char *p[] = {ref};
        PGresult *r = PQexecParams(
            c,
            "SELECT t.id, e.amount_minor, e.currency FROM transfers t JOIN entries e ON"
            " e.mode = t.mode AND e.transfer_id = t.id JOIN accounts a ON a.id = e.account_id"
            " AND a.kind = 'partner_receivable' AND a.owner = 'acqb' WHERE t.mode = 'TEST'"
            " AND t.partner_reference = $1 AND t.kind = 'capture' AND t.state = 'POSTED'",
            1, NULL, p, NULL, NULL, 0);
        const char *outcome = "MISSING_IN_LEDGER", *tid = "";
        if (PQntuples(r) == 1) {
            tid = PQgetvalue(r, 0, 0);
            outcome = atoll(PQgetvalue(r, 0, 1)) == amount ? "MATCHED" : "AMOUNT_MISMATCH";
        }
        snprintf(line, sizeof(line), "%ld", i);
        snprintf(amount_s, sizeof(amount_s), "%lld", (long long)amount);
        const char *q[] = {line, outcome, tid};
        PGresult *w = PQexecParams(c, "INSERT INTO naive_outcomes VALUES ($1, $2, $3)", 3, NULL, q,
                                   NULL, NULL, 0);
        PQclear(w);
        PQclear(r);
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: recon-bench HOST:PORT CERT_DIR DATABASE_URL ROWS\n");
        return 2;
    }
    long rows = atol(argv[4]);
    PGconn *c = PQconnectdb(argv[3]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "recon-bench: %s", PQerrorMessage(c));
        return 1;
    }
    double t0 = now_s();
    seed_ledger(c, rows);
    printf("ledger: %ld posted captures seeded in %.1f s\n", rows, now_s() - t0);

    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof(cert), "%s/tests.crt", argv[2]);
    snprintf(key, sizeof(key), "%s/tests.key", argv[2]);
    snprintf(ca, sizeof(ca), "%s/ca.crt", argv[2]);
    pw_tls_config tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
    pw_channel_options co = {.tls = &tls, .connect_timeout_ms = 5000};
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel *ch = NULL;
    if (pw_channel_new(&ch, &loop, argv[1], &co) != PW_OK) {
        fprintf(stderr, "recon-bench: cannot open a channel to %s\n", argv[1]);
        return 1;
    }
    double secs;
    P(ReconciliationRun) *run = NULL;
    if (upload(ch, rows, &secs, &run) != PW_OK || run == NULL) {
        return 1;
    }
    long want_breaks = 0;
    for (long i = 1; i <= rows; i++) {
        want_breaks += i % 1000 == 999 || i % 100 == 42;
    }
    if (run->breaks != want_breaks || run->matched != rows - want_breaks) {
        fprintf(stderr, "recon-bench: %lld breaks and %lld matched, planted %ld and %ld\n",
                (long long)run->breaks, (long long)run->matched, want_breaks, rows - want_breaks);
        return 1;
    }
    printf("paywire: %ld rows uploaded, stored and matched in %.2f s: %.0f rows/s"
           " (matched %lld, breaks %lld)\n",
           rows, secs, (double)rows / secs, (long long)run->matched, (long long)run->breaks);
    long sample = rows < NAIVE_ROWS ? rows : NAIVE_ROWS;
    double nsecs = naive(c, sample);
    printf("naive (a query per row, %ld rows): %.2f s: %.0f rows/s\n", sample, nsecs,
           (double)sample / nsecs);
    printf("paywire / naive: %.1fx   target >= 50000 rows/s: %s\n",
           ((double)rows / secs) / ((double)sample / nsecs),
           (double)rows / secs >= 50000 ? "met" : "NOT met");
    pw_channel_close(ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    PQfinish(c);
    return 0;
}
