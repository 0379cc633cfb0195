/*
 * Reconciliation of the acquirer simulator's own settlement report (issue
 * 19): a real acquirer-sim and a real finance-server, each on its own fresh
 * database. Seeded card payments (PW_TEST_SEED, printed) are made at the
 * simulator (authorize, capture, some partial refunds) and booked in the
 * ledger as orchestration books them (the simulator's operation reference as
 * the transfer's partner_reference). The simulator writes its report of the
 * day with every kind of injected difference on rows its seed draws; pwrecon's
 * reader turns the file into the UploadPartnerReport stream. Exactly the
 * breaks the simulator says it injected must be found, nothing else; the same
 * report uploaded again answers the first run; the left-out rows become
 * MISSING_IN_REPORT once the partner's lag and grace have passed on the
 * business clock, and the next day's report, which carries them, clears them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>
#include "pw_test.h"
#include "pw_test_db.h"
#include "svc_process.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/reconciliation.pw.h"
#include "paywire/simulators/v1/acquirer.pw.h"
#include "report.h"

#define S(x)     Paywire__Simulators__V1__##x
#define F(x)     Paywire__Finance__V1__##x
#define PARTNER  "acquirer_sim"
#define MERCHANT "mer_0000000000000000000000000M"

static char sim_db[512], fin_db[512];
static svc_process sim = {.name = "acquirer",
                          .binary = PW_ACQUIRER_SIM,
                          .health_service = "paywire.simulators.v1.AcquirerService"};
static svc_process fin = {.name = "finance",
                          .binary = PW_FINANCE_SERVER,
                          .health_service = "paywire.finance.v1.LedgerService"};
static uv_loop_t loop;
static pw_channel *sim_ch, *fin_ch;
static unsigned seed;
static char today[11], tomorrow[11];

static int group_setup(void **state)
{
    (void)state;
    const char *seed_env = getenv("PW_TEST_SEED");
    seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    print_message("recon_sim_test: seed %u (PW_TEST_SEED=%u to repeat)\n", seed, seed);
    /* The report settles a UTC day: start clear of midnight, so every operation is today's. */
    time_t now = time(NULL);
    if (86400 - now % 86400 < 120) {
        uv_sleep((unsigned)(86400 - now % 86400 + 1) * 1000);
        now = time(NULL);
    }
    time_t next = now + 86400;
    strftime(today, sizeof(today), "%Y-%m-%d", gmtime(&now));
    strftime(tomorrow, sizeof(tomorrow), "%Y-%m-%d", gmtime(&next));
    svc_process_prepare(&sim);
    svc_process_prepare(&fin);
    pw_test_db_create("recon_sim_test_sim", sim_db, sizeof(sim_db));
    pw_test_db_create("recon_sim_test_fin", fin_db, sizeof(fin_db));
    svc_process_migrate(sim_db,
                        PW_SOURCE_DIR "/services/orchestration/simulators/acquirer-sim/migrations",
                        "paywire.migrate.acquirer_sim");
    svc_process_migrate(fin_db, PW_SOURCE_DIR "/services/finance/migrations",
                        "paywire.migrate.finance");
    char extra[256];
    snprintf(extra, sizeof(extra), "log_level = warning\nworkers = 2\nreport_dir = %s/reports\n",
             sim.dir);
    uv_loop_init(&loop);
    svc_process_start_serving(&sim, &loop, sim_db, extra);
    svc_process_start_serving(&fin, &loop, fin_db,
                              "log_level = warning\nworkers = 2\nrecon_job_seconds = 1\n");
    sim_ch = svc_process_channel(&sim, &loop);
    fin_ch = svc_process_channel(&fin, &loop);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pw_channel_close(sim_ch, NULL, NULL);
    pw_channel_close(fin_ch, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    svc_process_stop(&sim);
    svc_process_stop(&fin);
    svc_process_cleanup(&sim);
    svc_process_cleanup(&fin);
    return 0;
}

static long long fin_scalar(const char *sql)
{
    return pw_test_db_scalar(fin_db, sql);
}

/* ---- the simulator ---- */

static pw_status sim_call(const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *type, ProtobufCMessage **resp)
{
    char path[128];
    snprintf(path, sizeof(path), "/paywire.simulators.v1.AcquirerService/%s", method);
    pw_call_options o = {.timeout_ms = 20000};
    *resp = NULL;
    return pw_client_unary_blocking(sim_ch, path, &o, req, type, resp, NULL, NULL);
}

/* An approved operation of the simulator: its reference into ref. */
static void sim_operation(const char *method, const ProtobufCMessage *req, char *ref, size_t cap)
{
    ProtobufCMessage *m = NULL;
    assert_int_equal(
        sim_call(method, req, &paywire__simulators__v1__authorize_response__descriptor, &m), PW_OK);
    /* Every operation response has the operation as field 1. */
    S(Operation) *op = ((S(AuthorizeResponse) *)m)->operation;
    if (op->status != PAYWIRE__SIMULATORS__V1__OPERATION_STATUS__OPERATION_STATUS_APPROVED) {
        fail_msg("%s %s declined: %s", method, op->idempotency_key, op->decline_code);
    }
    snprintf(ref, cap, "%s", op->reference);
    pw_protobuf_free(m);
}

/* Authorize, then capture `captured`: the capture's reference. */
static void sim_pay(int i, int64_t amount, int64_t captured, const char *currency, char *cap_ref,
                    size_t cap)
{
    char key[32], auth_ref[64];
    snprintf(key, sizeof(key), "att_%d", i);
    S(AuthorizeRequest) a = PAYWIRE__SIMULATORS__V1__AUTHORIZE_REQUEST__INIT;
    a.idempotency_key = key;
    a.vault_token = "tok_4242424242424242";
    a.amount_minor = amount;
    a.currency = (char *)currency;
    sim_operation("Authorize", &a.base, auth_ref, sizeof(auth_ref));
    snprintf(key, sizeof(key), "cap_%d", i);
    S(CaptureRequest) c = PAYWIRE__SIMULATORS__V1__CAPTURE_REQUEST__INIT;
    c.idempotency_key = key;
    c.authorization_reference = auth_ref;
    c.amount_minor = captured;
    sim_operation("Capture", &c.base, cap_ref, cap);
    /* The refund needs the authorization: kept in the capture's slot after a '|'. */
    size_t len = strlen(cap_ref);
    snprintf(cap_ref + len, cap - len, "|%s", auth_ref);
}

static void sim_refund(int i, const char *auth_ref, int64_t amount, char *ref, size_t cap)
{
    char key[32];
    snprintf(key, sizeof(key), "ref_%d", i);
    S(RefundRequest) f = PAYWIRE__SIMULATORS__V1__REFUND_REQUEST__INIT;
    f.idempotency_key = key;
    f.authorization_reference = (char *)auth_ref;
    f.amount_minor = amount;
    sim_operation("Refund", &f.base, ref, cap);
}

/* ---- the ledger: the transfers orchestration books for them ---- */

static void account(F(AccountRef) * ref, F(MerchantAccount) * m, F(PlatformAccount) * p, int kind,
                    const char *currency)
{
    paywire__finance__v1__account_ref__init(ref);
    if (kind == PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE) {
        paywire__finance__v1__platform_account__init(p);
        p->kind = (Paywire__Finance__V1__AccountKind)kind;
        p->currency = (char *)currency;
        p->counterparty = PARTNER;
        ref->ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_PLATFORM;
        ref->platform = p;
    } else {
        paywire__finance__v1__merchant_account__init(m);
        m->merchant_id = MERCHANT;
        m->kind = (Paywire__Finance__V1__AccountKind)kind;
        m->currency = (char *)currency;
        ref->ref_case = PAYWIRE__FINANCE__V1__ACCOUNT_REF__REF_MERCHANT;
        ref->merchant = m;
    }
}

/* A posted transfer of amount from account kind `debit` to `credit`. */
static void book(const char *id, const char *kind, const char *partner_reference, int64_t amount,
                 const char *currency, int debit, int credit)
{
    F(AccountRef) ref[2];
    F(MerchantAccount) m[2];
    F(PlatformAccount) p[2];
    Paywire__Common__V1__Money money = PAYWIRE__COMMON__V1__MONEY__INIT;
    money.amount_minor = amount;
    money.currency = (char *)currency;
    F(Entry) e[2];
    F(Entry) * ep[2];
    for (int i = 0; i < 2; i++) {
        account(&ref[i], &m[i], &p[i], i == 0 ? debit : credit, currency);
        paywire__finance__v1__entry__init(&e[i]);
        e[i].account = &ref[i];
        e[i].amount = &money;
        e[i].side = i == 0 ? PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_DEBIT
                           : PAYWIRE__FINANCE__V1__NORMAL_BALANCE__NORMAL_BALANCE_CREDIT;
        e[i].purpose = "payment";
        ep[i] = &e[i];
    }
    F(Transfer) t = PAYWIRE__FINANCE__V1__TRANSFER__INIT;
    t.id = (char *)id;
    t.kind = (char *)kind;
    t.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    t.partner_reference = (char *)partner_reference;
    t.entries = ep;
    t.n_entries = 2;
    F(CreateTransferRequest) req = PAYWIRE__FINANCE__V1__CREATE_TRANSFER_REQUEST__INIT;
    req.transfer = &t;
    req.balance_check = PAYWIRE__FINANCE__V1__BALANCE_CHECK__BALANCE_CHECK_NONE;
    pw_call_options o = {.timeout_ms = 20000};
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    pw_status rv = pw_client_unary_blocking(
        fin_ch, "/paywire.finance.v1.LedgerService/CreateTransfer", &o, &req.base,
        &paywire__finance__v1__create_transfer_response__descriptor, &resp, &msg, NULL);
    if (rv != PW_OK) {
        fail_msg("booking %s: %s %s", id, pw_status_str(rv), msg ? msg : "");
    }
    pw_free(msg);
    pw_protobuf_free(resp);
}

/* ---- the day's payments ---- */

static int operations; /* captures and refunds the simulator approved */

static void make_payments(void)
{
    srand(seed);
    int n = 8 + rand() % 8;
    for (int i = 0; i < n; i++) {
        const char *currency = rand() % 3 == 0 ? "EUR" : "USD";
        int64_t amount = 100 + rand() % 50000;
        int64_t captured = rand() % 4 == 0 ? amount - 1 - rand() % (amount - 1) : amount;
        char cap_ref[160], id[64];
        sim_pay(i, amount, captured, currency, cap_ref, sizeof(cap_ref));
        char *auth_ref = strchr(cap_ref, '|');
        *auth_ref++ = '\0';
        snprintf(id, sizeof(id), "txf_capture_cap_%d", i);
        book(id, "capture", cap_ref, captured, currency,
             PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE,
             PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_PENDING);
        operations++;
        if (rand() % 3 == 0) {
            char ref[64];
            int64_t back = 1 + rand() % captured;
            sim_refund(i, auth_ref, back, ref, sizeof(ref));
            snprintf(id, sizeof(id), "txf_refund_ref_%d", i);
            book(id, "refund", ref, back, currency,
                 PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_MERCHANT_AVAILABLE,
                 PAYWIRE__FINANCE__V1__ACCOUNT_KIND__ACCOUNT_KIND_PARTNER_RECEIVABLE);
            operations++;
        }
    }
    print_message("recon_sim_test: %d payments, %d captures and refunds\n", n, operations);
}

/* ---- reports ---- */

/* WriteSettlementReport: the status; the response in *out (free it). */
static pw_status write_report(const char *date, const char *report_id, const int *counts,
                              uint64_t report_seed, S(WriteSettlementReportResponse) * *out)
{
    S(ReportInjection) in[5];
    S(ReportInjection) * inp[5];
    S(WriteSettlementReportRequest)
    req = PAYWIRE__SIMULATORS__V1__WRITE_SETTLEMENT_REPORT_REQUEST__INIT;
    req.date = (char *)date;
    req.report_id = (char *)report_id;
    req.seed = report_seed;
    req.inject = inp;
    for (int d = 0; counts != NULL && d < 5; d++) {
        if (counts[d] > 0) {
            paywire__simulators__v1__report_injection__init(&in[req.n_inject]);
            in[req.n_inject].difference = (S(ReportDifference))(d + 1);
            in[req.n_inject].count = counts[d];
            inp[req.n_inject] = &in[req.n_inject];
            req.n_inject++;
        }
    }
    ProtobufCMessage *m = NULL;
    pw_status rv =
        sim_call("WriteSettlementReport", &req.base,
                 &paywire__simulators__v1__write_settlement_report_response__descriptor, &m);
    *out = (S(WriteSettlementReportResponse) *)m;
    return rv;
}

/* The file's bytes (malloc'd, NUL-terminated). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void print_bad_line(const char *file, int line, const char *why, void *user_data)
{
    (void)user_data;
    print_message("recon_sim_test: %s:%d: %s\n", file, line, why);
}

/* The report file read by pwrecon's reader (every line well-formed) and uploaded as partner
 * PARTNER. */
static F(UploadPartnerReportResponse) *
    upload(const char *path, const char *report_id, const char *date)
{
    recon_report *rep = NULL;
    char err[256];
    assert_int_equal(recon_report_read(&rep, path, print_bad_line, NULL, err, sizeof(err)), PW_OK);
    assert_int_equal(recon_report_malformed(rep), 0);
    size_t n;
    F(PartnerReportRow) *const *rows = recon_report_rows(rep, &n);
    recon_report_header h = {PAYWIRE__COMMON__V1__MODE__MODE_TEST, PARTNER, report_id, date};
    F(UploadPartnerReportResponse) *resp = NULL;
    char msg[512];
    pw_status rv = recon_report_upload(fin_ch, &h, rows, n, 7, &resp, msg, sizeof(msg));
    if (rv != PW_OK) {
        fail_msg("upload of %s: %s %s", path, pw_status_str(rv), msg);
    }
    recon_report_free(rep);
    return resp;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The breaks of a run (or of every run: run_id ""), state filter (0: any), as sorted
 * "KIND reference" lines in out. */
static void breaks_of(const char *run_id, int state, char *out, size_t cap)
{
    F(ListBreaksRequest) req = PAYWIRE__FINANCE__V1__LIST_BREAKS_REQUEST__INIT;
    req.mode = PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    req.run_id = (char *)run_id;
    req.state = (F(BreakState))state;
    req.page_size = 500;
    pw_call_options o = {.timeout_ms = 20000};
    ProtobufCMessage *m = NULL;
    assert_int_equal(
        pw_client_unary_blocking(fin_ch, "/paywire.finance.v1.ReconciliationService/ListBreaks", &o,
                                 &req.base, &paywire__finance__v1__list_breaks_response__descriptor,
                                 &m, NULL, NULL),
        PW_OK);
    F(ListBreaksResponse) *l = (F(ListBreaksResponse) *)m;
    assert_true(l->next_page_token[0] == '\0');
    char **lines = calloc(l->n_breaks + 1, sizeof(char *));
    for (size_t i = 0; i < l->n_breaks; i++) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &paywire__finance__v1__break_kind__descriptor, l->breaks[i]->kind);
        lines[i] = malloc(160);
        snprintf(lines[i], 160, "%s %s", v->name + strlen("BREAK_KIND_"),
                 l->breaks[i]->partner_reference);
    }
    qsort(lines, l->n_breaks, sizeof(char *), by_text);
    out[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < l->n_breaks; i++) {
        len += (size_t)snprintf(out + len, cap - len, "%s\n", lines[i]);
        free(lines[i]);
    }
    free(lines);
    pw_protobuf_free(m);
}

/* The breaks the injected differences must make, as breaks_of prints them; the left-out rows'
 * MISSING_IN_REPORT lines into missing. */
static void expected_breaks(const S(WriteSettlementReportResponse) * w, char *out, size_t cap,
                            char *missing, size_t mcap)
{
    static const char *const kinds[] = {"",          "MISSING_IN_REPORT", "AMOUNT_MISMATCH",
                                        "DUPLICATE", "MISSING_IN_LEDGER", "CURRENCY_MISMATCH"};
    char **lines = calloc(w->n_injected + 1, sizeof(char *));
    char **gone = calloc(w->n_injected + 1, sizeof(char *));
    size_t n = 0, g = 0;
    for (size_t i = 0; i < w->n_injected; i++) {
        const S(InjectedDifference) *d = w->injected[i];
        char *line = malloc(160);
        snprintf(line, 160, "%s %s", kinds[d->difference], d->partner_reference);
        if (d->difference ==
            PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_MISSING_ROW) {
            gone[g++] = line;
        } else {
            lines[n++] = line;
        }
    }
    qsort(lines, n, sizeof(char *), by_text);
    qsort(gone, g, sizeof(char *), by_text);
    size_t len = 0, mlen = 0;
    out[0] = missing[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(out + len, cap - len, "%s\n", lines[i]);
        free(lines[i]);
    }
    for (size_t i = 0; i < g; i++) {
        mlen += (size_t)snprintf(missing + mlen, mcap - mlen, "%s\n", gone[i]);
        free(gone[i]);
    }
    free(lines);
    free(gone);
}

static int counts[5]; /* per ReportDifference - 1, drawn from the seed */
static char day_one_id[64], run_one[40], want_missing[8192];
static size_t n_missing;

static void test_recon_sim_report_finds_exactly_the_injected_breaks(void **state)
{
    (void)state;
    make_payments();
    for (int d = 0; d < 5; d++) {
        counts[d] = 1 + rand() % 2;
    }
    n_missing = (size_t)counts[0];
    snprintf(day_one_id, sizeof(day_one_id), "%s-%s", PARTNER, today);
    S(WriteSettlementReportResponse) *w = NULL;
    assert_int_equal(write_report(today, day_one_id, counts, seed, &w), PW_OK);
    print_message("recon_sim_test: report %s, %d rows of %d operations, %zu differences\n", w->path,
                  w->rows, w->operations, w->n_injected);
    assert_int_equal(w->operations, operations);
    /* Every row once, but the left-out ones; the duplicates and unknown rows on top. */
    assert_int_equal(w->rows, operations - counts[0] + counts[2] + counts[3]);
    assert_int_equal(w->n_injected, counts[0] + counts[1] + counts[2] + counts[3] + counts[4]);
    for (size_t i = 0; i < w->n_injected; i++) {
        const S(InjectedDifference) *d = w->injected[i];
        if (d->difference ==
            PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_AMOUNT_OFF_BY_ONE) {
            assert_int_equal(d->reported_amount_minor, d->recorded_amount_minor + 1);
        }
        if (d->difference ==
            PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_CURRENCY_CHANGED) {
            assert_string_not_equal(d->reported_currency, d->recorded_currency);
        }
    }
    /* The same request again: the same file, the same answer. */
    char *first = slurp(w->path);
    S(WriteSettlementReportResponse) *again = NULL;
    assert_int_equal(write_report(today, day_one_id, counts, seed, &again), PW_OK);
    char *second = slurp(again->path);
    assert_string_equal(first, second);
    assert_int_equal(again->rows, w->rows);
    assert_int_equal(again->n_injected, w->n_injected);
    for (size_t i = 0; i < w->n_injected; i++) {
        assert_string_equal(again->injected[i]->partner_reference,
                            w->injected[i]->partner_reference);
    }
    free(first);
    free(second);
    pw_protobuf_free(&again->base);
    /* The same report id for another request is refused, the file left as it was. */
    assert_int_equal(write_report(today, day_one_id, counts, seed + 1, &again),
                     PW_FAILED_PRECONDITION);
    pw_protobuf_free(again ? &again->base : NULL);

    F(UploadPartnerReportResponse) *u = upload(w->path, day_one_id, today);
    snprintf(run_one, sizeof(run_one), "%s", u->run->id);
    char want[8192], got[8192];
    expected_breaks(w, want, sizeof(want), want_missing, sizeof(want_missing));
    breaks_of(run_one, 0, got, sizeof(got));
    print_message("recon_sim_test: breaks found:\n%s", got);
    assert_string_equal(got, want);
    int n_breaks = counts[1] + counts[2] + counts[3] + counts[4];
    assert_int_equal(u->run->rows, w->rows);
    assert_int_equal(u->run->breaks, n_breaks);
    assert_int_equal(u->run->matched, w->rows - n_breaks);
    /* Nothing else anywhere: no break of another run, none raised by the jobs yet. */
    assert_int_equal(fin_scalar("SELECT count(*) FROM recon_breaks"), n_breaks);
    pw_protobuf_free(&u->base);
    pw_protobuf_free(&w->base);
}

static void test_recon_sim_report_again_is_the_first_run(void **state)
{
    (void)state;
    long long entries = fin_scalar("SELECT count(*) FROM entries");
    long long breaks = fin_scalar("SELECT count(*) FROM recon_breaks");
    char path[256];
    snprintf(path, sizeof(path), "%s/reports/%s.csv", sim.dir, day_one_id);
    F(UploadPartnerReportResponse) *u = upload(path, day_one_id, today);
    assert_string_equal(u->run->id, run_one);
    assert_int_equal(fin_scalar("SELECT count(*) FROM recon_runs"), 1);
    assert_int_equal(fin_scalar("SELECT count(*) FROM recon_breaks"), breaks);
    assert_int_equal(fin_scalar("SELECT count(*) FROM entries"), entries);
    pw_protobuf_free(&u->base);
}

static void test_recon_sim_next_day_clears_the_missing_rows(void **state)
{
    (void)state;
    /* Not missing yet: the partner settles a day later, with two days of grace. */
    uv_sleep(1500);
    assert_int_equal(fin_scalar("SELECT count(*) FROM recon_breaks WHERE kind ="
                                " 'MISSING_IN_REPORT'"),
                     0);
    pw_test_db_exec(fin_db, "UPDATE svc_clock SET offset_ms = offset_ms + 4 * 86400000");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT'");
    assert_int_equal(pw_test_db_wait_scalar(fin_db, sql, (long long)n_missing, 20000),
                     (long long)n_missing);
    uv_sleep(2500); /* more runs of the job raise nothing more */
    char got[8192];
    breaks_of("", PAYWIRE__FINANCE__V1__BREAK_STATE__BREAK_STATE_OPEN, got, sizeof(got));
    char *only_missing = calloc(1, sizeof(got));
    for (char *line = strtok(got, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "MISSING_IN_REPORT ", 18) == 0) {
            strcat(only_missing, line);
            strcat(only_missing, "\n");
        }
    }
    assert_string_equal(only_missing, want_missing);
    free(only_missing);
    /* The next day's report carries the rows the first left out: they match and clear. */
    char day_two_id[64];
    snprintf(day_two_id, sizeof(day_two_id), "%s-%s", PARTNER, tomorrow);
    S(WriteSettlementReportResponse) *w = NULL;
    assert_int_equal(write_report(tomorrow, day_two_id, NULL, seed, &w), PW_OK);
    assert_int_equal(w->rows, (int)n_missing);
    assert_int_equal(w->n_injected, 0);
    F(UploadPartnerReportResponse) *u = upload(w->path, day_two_id, tomorrow);
    assert_int_equal(u->run->breaks, 0);
    assert_int_equal(u->run->matched, (long long)n_missing);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM recon_breaks WHERE kind = 'MISSING_IN_REPORT' AND state ="
             " 'AUTO_CLEARED'");
    assert_int_equal(fin_scalar(sql), (long long)n_missing);
    /* The other breaks stay open: nothing booked them since. */
    assert_int_equal(fin_scalar("SELECT count(*) FROM recon_breaks WHERE state = 'OPEN'"),
                     counts[1] + counts[2] + counts[3] + counts[4]);
    pw_protobuf_free(&u->base);
    pw_protobuf_free(&w->base);
    /* Everything of today is settled now: a further report of it has no row. */
    assert_int_equal(write_report(today, "acquirer_sim-late", NULL, seed, &w), PW_OK);
    assert_int_equal(w->rows, 0);
    assert_int_equal(w->operations, 0);
    pw_protobuf_free(&w->base);
}

static void test_recon_sim_report_refuses_bad_requests(void **state)
{
    (void)state;
    S(WriteSettlementReportResponse) *w = NULL;
    char *msg = NULL;
    S(ReportInjection) in = PAYWIRE__SIMULATORS__V1__REPORT_INJECTION__INIT;
    S(ReportInjection) * inp[] = {&in};
    S(WriteSettlementReportRequest)
    req = PAYWIRE__SIMULATORS__V1__WRITE_SETTLEMENT_REPORT_REQUEST__INIT;
    req.date = "2026-02-30";
    req.report_id = "../etc/passwd";
    req.inject = inp;
    req.n_inject = 1;
    pw_call_options o = {.timeout_ms = 20000};
    pw_metadata trailers = {0};
    pw_status rv = pw_client_unary_blocking(
        sim_ch, "/paywire.simulators.v1.AcquirerService/WriteSettlementReport", &o, &req.base,
        &paywire__simulators__v1__write_settlement_report_response__descriptor,
        (ProtobufCMessage **)&w, &msg, &trailers);
    assert_int_equal(rv, PW_INVALID_ARGUMENT);
    pw_error_details d = {0};
    assert_int_equal(pw_error_details_read(&trailers, &d), PW_OK);
    const char *fields[] = {"date", "report_id", "inject[0].difference"};
    assert_int_equal(d.violation_count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(d.violations[i].field, fields[i]);
    }
    pw_error_details_clear(&d);
    pw_metadata_clear(&trailers);
    pw_free(msg);
    /* More differences on rows than the day has rows: refused, nothing recorded. */
    int many[5] = {0, 1000, 0, 0, 0};
    assert_int_equal(write_report(today, "acquirer_sim-many", many, seed, &w),
                     PW_FAILED_PRECONDITION);
    assert_int_equal(pw_test_db_scalar(sim_db, "SELECT count(*) FROM settlement_reports WHERE"
                                               " report_id = 'acquirer_sim-many'"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recon_sim_report_finds_exactly_the_injected_breaks),
        cmocka_unit_test(test_recon_sim_report_again_is_the_first_run),
        cmocka_unit_test(test_recon_sim_report_refuses_bad_requests),
        cmocka_unit_test(test_recon_sim_next_day_clears_the_missing_rows),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
