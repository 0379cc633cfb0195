/*
 * report.c: WriteSettlementReport (acquirer.proto), the acquirer's
 * settlement report of a day from its own records, as the CSV file pwrecon
 * reads (clients/pwrecon/report.h), with differences injected on request so
 * a reconciliation test knows exactly which breaks must be found.
 *
 * A report settles the approved captures and refunds of its UTC day that no
 * earlier report wrote, and the rows an earlier report left out (a partner
 * settles those a day late). Under one advisory lock, in one transaction,
 * its rows are chosen, the differences put on rows drawn from the request's
 * seed (each row at most one), and every row is recorded as written or left
 * out in settlement_report_items; after the commit the file is written from
 * those rows (to a temporary name, then renamed: a reader never sees half a
 * report). The same request again finds the report recorded and writes the
 * same file from the same rows; the same report_id with another request is
 * refused. The file is written on the loop with stdio: a simulator's day is
 * small, and its size is bounded (MAX_REPORT_ROWS).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <paywire/log.h>
#include "acquirer.h"
#include "svc_req.h"

typedef Paywire__Simulators__V1__WriteSettlementReportRequest ReportRequest;
typedef Paywire__Simulators__V1__WriteSettlementReportResponse ReportResponse;
typedef Paywire__Simulators__V1__InjectedDifference Injected;

#define MAX_REPORT_ROWS 200000
#define MAX_INJECTED    10000
#define MAX_PER_KIND    1000

enum {
    DIFF_NONE = 0,
    DIFF_MISSING = PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_MISSING_ROW,
    DIFF_AMOUNT = PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_AMOUNT_OFF_BY_ONE,
    DIFF_DUPLICATE = PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_DUPLICATE_ROW,
    DIFF_UNKNOWN = PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_UNKNOWN_ROW,
    DIFF_CURRENCY = PAYWIRE__SIMULATORS__V1__REPORT_DIFFERENCE__REPORT_DIFFERENCE_CURRENCY_CHANGED,
    DIFF_KINDS,
};
/* As stored (settlement_report_items.difference): the enum's names without their prefix. */
static const char *const diff_names[DIFF_KINDS] = {
    "", "MISSING_ROW", "AMOUNT_OFF_BY_ONE", "DUPLICATE_ROW", "UNKNOWN_ROW", "CURRENCY_CHANGED"};

/* One row of a report: written to the file, or left out (MISSING_ROW). */
typedef struct report_item {
    const char *key; /* the operation's idempotency key; "" for an unknown row */
    const char *kind;
    const char *reference;
    const char *booked; /* RFC 3339, UTC */
    int64_t recorded_amount, amount;
    const char *recorded_currency, *currency;
    int difference;
    int written;
} report_item;

typedef struct report {
    const ReportRequest *req;
    char fingerprint[65];
    const char *path;
    report_item *items;
    size_t n;
    int operations;
} report;

/* ---- statements ---- */

static const pw_db_stmt lock_reports = {
    .name = "sim_report_lock",
    .sql = "SELECT pg_advisory_xact_lock(hashtextextended('acquirer_sim.reports', 0))",
    .nparams = 0,
};
static const pw_db_stmt find_report = {
    .name = "sim_report_find",
    .sql = "SELECT fingerprint, operations FROM settlement_reports WHERE report_id = $1",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
static const pw_db_stmt items_of = {
    .name = "sim_report_items",
    .sql = "SELECT operation_key, kind, reference, recorded_amount_minor, recorded_currency,"
           " amount_minor, currency, booked_time, difference, written"
           " FROM settlement_report_items WHERE report_id = $1 ORDER BY seq",
    .nparams = 1,
    .types = {PW_DB_TEXT},
};
/* What the day settles: its approved captures and refunds no report wrote yet, and those an
 * earlier report left out; in the order they were made. */
static const pw_db_stmt settled_on = {
    .name = "sim_report_settled",
    .sql = "SELECT o.key, lower(o.kind) AS kind, o.reference, o.amount_minor, o.currency,"
           " to_char(o.create_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
           " AS booked FROM operations o"
           " WHERE o.kind IN ('CAPTURE', 'REFUND') AND o.status = 'APPROVED'"
           " AND o.create_time < (($1::date + 1)::timestamp AT TIME ZONE 'UTC')"
           " AND (o.create_time >= ($1::date::timestamp AT TIME ZONE 'UTC')"
           "  OR EXISTS (SELECT 1 FROM settlement_report_items m WHERE m.operation_key = o.key"
           "  AND m.difference = 'MISSING_ROW'))"
           " AND NOT EXISTS (SELECT 1 FROM settlement_report_items w"
           "  WHERE w.operation_key = o.key AND w.written)"
           " ORDER BY o.create_time, o.key LIMIT $2",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_INT8},
};
static const pw_db_stmt insert_report = {
    .name = "sim_report_insert",
    .sql = "INSERT INTO settlement_reports (report_id, report_date, fingerprint, path, operations)"
           " VALUES ($1, $2::date, $3, $4, $5)",
    .nparams = 5,
    .types = {PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8},
};
/* Every row in one statement, from a JSON array built by items_json. */
static const pw_db_stmt insert_items = {
    .name = "sim_report_insert_items",
    .sql = "INSERT INTO settlement_report_items (report_id, seq, operation_key, kind, reference,"
           " recorded_amount_minor, recorded_currency, amount_minor, currency, booked_time,"
           " difference, written)"
           " SELECT $1, i.seq, i.k, i.kind, i.ref, i.ra, i.rc, i.a, i.c, i.b, i.d, i.w"
           " FROM jsonb_to_recordset($2::jsonb) AS i(seq int, k text, kind text, ref text,"
           " ra int8, rc text, a int8, c text, b text, d text, w boolean)",
    .nparams = 2,
    .types = {PW_DB_TEXT, PW_DB_JSONB},
};

/* ---- settings ---- */

pw_status acquirer_report_dir_init(sim_behaviour *b, const char *dir, char *err, size_t err_len)
{
    b->report_dir[0] = '\0';
    if (dir == NULL || dir[0] == '\0') {
        return PW_OK;
    }
    struct stat st;
    if (strlen(dir) >= sizeof(b->report_dir)) {
        snprintf(err, err_len, "report_dir is longer than %zu characters",
                 sizeof(b->report_dir) - 1);
        return PW_INVALID_ARGUMENT;
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "report_dir %s cannot be made: %s", dir, strerror(errno));
        return PW_INVALID_ARGUMENT;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0) {
        snprintf(err, err_len, "report_dir %s is not a directory this process can write", dir);
        return PW_INVALID_ARGUMENT;
    }
    snprintf(b->report_dir, sizeof(b->report_dir), "%s", dir);
    return PW_OK;
}

/* ---- checks ---- */

/* A file name of its own: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot. */
static int report_id_ok(const char *id)
{
    size_t n = strlen(id);
    return n >= 1 && n <= 64 && id[0] != '.' &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* The differences asked for, by kind; the total into *total. */
static void check_request(svc_req *r, const ReportRequest *req, int want[DIFF_KINDS], int *total)
{
    if (!svc_date_ok(req->date)) {
        svc_violation(r, "date", "a UTC day as YYYY-MM-DD");
    }
    if (!report_id_ok(req->report_id)) {
        svc_violation(r, "report_id", "1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot");
    }
    memset(want, 0, sizeof(int) * DIFF_KINDS);
    *total = 0;
    for (size_t i = 0; i < req->n_inject; i++) {
        const Paywire__Simulators__V1__ReportInjection *in = req->inject[i];
        char field[48];
        int d = (int)in->difference;
        if (d <= DIFF_NONE || d >= DIFF_KINDS) {
            snprintf(field, sizeof(field), "inject[%zu].difference", i);
            svc_violation(r, field,
                          "REPORT_DIFFERENCE_ MISSING_ROW, AMOUNT_OFF_BY_ONE, DUPLICATE_ROW,"
                          " UNKNOWN_ROW or CURRENCY_CHANGED");
        } else if (in->count < 0 || in->count > MAX_PER_KIND) {
            snprintf(field, sizeof(field), "inject[%zu].count", i);
            svc_violation(r, field, "0 to 1000 (0 means 1)");
        } else {
            int n = in->count == 0 ? 1 : in->count;
            want[d] += n;
            *total += n;
        }
    }
    if (*total > MAX_INJECTED) {
        svc_violation(r, "inject", "at most 10000 differences in all");
    }
    svc_check(r);
}

/* ---- choosing and injecting ---- */

static report_item item_from_row(svc_row row)
{
    report_item it = {
        .key = svc_text(row, "key"),
        .kind = svc_text(row, "kind"),
        .reference = svc_text(row, "reference"),
        .booked = svc_text(row, "booked"),
        .recorded_amount = svc_int64(row, "amount_minor"),
        .recorded_currency = svc_text(row, "currency"),
        .written = 1,
    };
    it.amount = it.recorded_amount;
    it.currency = it.recorded_currency;
    return it;
}

/* The unknown row j: a capture the records do not have, its reference derived from the report
 * and the seed (two reports never invent the same one). */
static report_item unknown_row(svc_req *r, const report *rep, const report_item *rows, size_t m,
                               uint64_t *draws, int j)
{
    const sim_behaviour *b = r->app->service;
    const ReportRequest *req = rep->req;
    char seed_text[200];
    snprintf(seed_text, sizeof(seed_text), "%s|%llu|%d", req->report_id,
             (unsigned long long)req->seed, j);
    uint8_t h[32];
    svc_sha256(seed_text, strlen(seed_text), h);
    char *ref = svc_alloc(r, 64);
    int len = snprintf(ref, 64, "%s_unbooked_", b->prefix);
    for (int i = 0; i < 8; i++) {
        len += snprintf(ref + len, (size_t)(64 - len), "%02x", h[i]);
    }
    char *booked = svc_alloc(r, 24);
    snprintf(booked, 24, "%.10sT12:00:00Z", req->date);
    /* Drawn one after the other (an initializer list's order of evaluation is unspecified). */
    int64_t amount = 100 + (int64_t)svc_draw(req->seed, (*draws)++, 9901);
    const char *currency =
        m > 0 ? rows[svc_draw(req->seed, (*draws)++, m)].recorded_currency : "USD";
    report_item it = {.key = "",
                      .kind = "capture",
                      .reference = ref,
                      .booked = booked,
                      .recorded_currency = "",
                      .amount = amount,
                      .currency = currency,
                      .difference = DIFF_UNKNOWN,
                      .written = 1};
    return it;
}

/* Puts difference d on row it. */
static void inject(report_item *it, int d)
{
    it->difference = d;
    if (d == DIFF_MISSING) {
        it->written = 0;
        it->amount = 0;
        it->currency = "";
    } else if (d == DIFF_AMOUNT) {
        it->amount = it->recorded_amount + 1;
    } else if (d == DIFF_CURRENCY) {
        it->currency = strcmp(it->recorded_currency, "USD") == 0 ? "EUR" : "USD";
    }
}

/*
 * The report's items from the day's m rows: the row-based differences on
 * distinct rows drawn from the seed (a partial Fisher-Yates shuffle, in the
 * request's order of kinds), a duplicate right after its row, unknown rows
 * at the end.
 */
static void build_items(svc_req *r, report *rep, report_item *rows, size_t m,
                        const int want[DIFF_KINDS])
{
    const ReportRequest *req = rep->req;
    uint64_t draws = 0;
    size_t *perm = svc_alloc(r, sizeof(*perm) * (m ? m : 1));
    for (size_t i = 0; i < m; i++) {
        perm[i] = i;
    }
    size_t next = 0;
    static const int row_kinds[] = {DIFF_MISSING, DIFF_AMOUNT, DIFF_DUPLICATE, DIFF_CURRENCY};
    for (size_t k = 0; k < sizeof(row_kinds) / sizeof(row_kinds[0]); k++) {
        for (int c = 0; c < want[row_kinds[k]]; c++, next++) {
            size_t pick = next + (size_t)svc_draw(req->seed, draws++, m - next);
            size_t t = perm[next];
            perm[next] = perm[pick];
            perm[pick] = t;
            inject(&rows[perm[next]], row_kinds[k]);
        }
    }
    rep->items = svc_alloc(r, sizeof(report_item) * (m + next + (size_t)want[DIFF_UNKNOWN] + 1));
    rep->n = 0;
    for (size_t i = 0; i < m; i++) {
        if (rows[i].difference == DIFF_DUPLICATE) {
            rows[i].difference = DIFF_NONE;
            rep->items[rep->n++] = rows[i];
            rows[i].difference = DIFF_DUPLICATE;
        }
        rep->items[rep->n++] = rows[i];
    }
    for (int j = 0; j < want[DIFF_UNKNOWN]; j++) {
        rep->items[rep->n++] = unknown_row(r, rep, rows, m, &draws, j);
    }
    rep->operations = (int)m;
}

/* ---- storing ---- */

/* s as a JSON string (keys and references are printable ASCII: only " and \ need escaping). */
static void json_text(pw_buf *b, const char *s)
{
    pw_buf_append(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            pw_buf_append(b, "\\", 1);
        }
        pw_buf_append(b, p, 1);
    }
    pw_buf_append(b, "\"", 1);
}

/* The items as the JSON array insert_items reads, in call memory. */
static const char *items_json(svc_req *r, const report *rep)
{
    pw_buf b = {0};
    pw_buf_append(&b, "[", 1);
    for (size_t i = 0; i < rep->n; i++) {
        const report_item *it = &rep->items[i];
        pw_buf_printf(&b, "%s{\"seq\":%zu,\"k\":", i ? "," : "", i + 1);
        json_text(&b, it->key);
        pw_buf_append(&b, ",\"ref\":", 7);
        json_text(&b, it->reference);
        pw_buf_printf(&b,
                      ",\"kind\":\"%s\",\"ra\":%lld,\"rc\":\"%s\",\"a\":%lld,"
                      "\"c\":\"%s\",\"b\":\"%s\",\"d\":\"%s\",\"w\":%s}",
                      it->kind, (long long)it->recorded_amount, it->recorded_currency,
                      (long long)it->amount, it->currency, it->booked, diff_names[it->difference],
                      it->written ? "true" : "false");
    }
    pw_buf_append(&b, "]", 2); /* with the terminating NUL */
    char *json = svc_strdup(r, (const char *)b.data);
    pw_buf_reset(&b);
    return json;
}

static int diff_index(const char *name)
{
    for (int d = 1; d < DIFF_KINDS; d++) {
        if (strcmp(diff_names[d], name) == 0) {
            return d;
        }
    }
    return DIFF_NONE;
}

/* A report recorded before: its items as stored. */
static void load_items(svc_req *r, report *rep)
{
    pw_db_param id = pw_db_text(rep->req->report_id);
    const pw_db_result *res = svc_tx_query(r, &items_of, &id, 1);
    rep->n = (size_t)pw_db_rows(res);
    rep->items = svc_alloc(r, sizeof(report_item) * (rep->n + 1));
    for (size_t i = 0; i < rep->n; i++) {
        svc_row row = svc_row_at(r, res, (int)i);
        rep->items[i] = (report_item){
            .key = svc_text(row, "operation_key"),
            .kind = svc_text(row, "kind"),
            .reference = svc_text(row, "reference"),
            .booked = svc_text(row, "booked_time"),
            .recorded_amount = svc_int64(row, "recorded_amount_minor"),
            .recorded_currency = svc_text(row, "recorded_currency"),
            .amount = svc_int64(row, "amount_minor"),
            .currency = svc_text(row, "currency"),
            .difference = diff_index(svc_text(row, "difference")),
            .written = svc_bool(row, "written"),
        };
    }
}

typedef struct report_args {
    report *rep;
    const int *want;
    int total;
} report_args;

static void report_tx(svc_req *r, const void *arg)
{
    const report_args *a = arg;
    report *rep = a->rep;
    const ReportRequest *req = rep->req;
    svc_tx_query(r, &lock_reports, NULL, 0);
    pw_db_param id = pw_db_text(req->report_id);
    const pw_db_result *seen = svc_tx_query(r, &find_report, &id, 1);
    if (pw_db_rows(seen) == 1) {
        svc_row row = svc_row_at(r, seen, 0);
        if (strcmp(svc_text(row, "fingerprint"), rep->fingerprint) != 0) {
            svc_abort(r, PW_FAILED_PRECONDITION, "REPORT_ID_REUSED",
                      "report %s was written for another request: a new report needs its own"
                      " report_id",
                      req->report_id);
        }
        rep->operations = (int)svc_int64(row, "operations");
        load_items(r, rep);
        svc_tx_commit(r);
        return;
    }
    pw_db_param q[] = {pw_db_text(req->date), pw_db_int8(MAX_REPORT_ROWS + 1)};
    const pw_db_result *res = svc_tx_query(r, &settled_on, q, 2);
    size_t m = (size_t)pw_db_rows(res);
    if (m > MAX_REPORT_ROWS) {
        svc_abort(r, PW_FAILED_PRECONDITION, "REPORT_TOO_LARGE",
                  "%s settles more than %d operations: the simulator writes no report that large",
                  req->date, MAX_REPORT_ROWS);
    }
    int on_rows = a->total - a->want[DIFF_UNKNOWN];
    if ((size_t)on_rows > m) {
        svc_abort(r, PW_FAILED_PRECONDITION, "NOT_ENOUGH_ROWS",
                  "the report of %s has %zu rows: %d differences on rows cannot be injected",
                  req->date, m, on_rows);
    }
    report_item *rows = svc_alloc(r, sizeof(*rows) * (m ? m : 1));
    for (size_t i = 0; i < m; i++) {
        rows[i] = item_from_row(svc_row_at(r, res, (int)i));
    }
    build_items(r, rep, rows, m, a->want);
    pw_db_param ins[] = {pw_db_text(req->report_id), pw_db_text(req->date),
                         pw_db_text(rep->fingerprint), pw_db_text(rep->path),
                         pw_db_int8(rep->operations)};
    svc_tx_pipe(r, &insert_report, ins, 5);
    pw_db_param items[] = {pw_db_text(req->report_id), pw_db_jsonb(items_json(r, rep))};
    svc_tx_pipe(r, &insert_items, items, 2);
    svc_tx_commit(r);
}

/* ---- the file and the answer ---- */

/* Writes the written items to rep->path (a temporary file renamed over it); 0 and why on
 * failure. */
static int write_file(const report *rep, char *why, size_t cap)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", rep->path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(why, cap, "%s", strerror(errno));
        return 0;
    }
    /* References, kinds, currencies and times need no CSV quoting (no comma, no quote). */
    fputs("partner_reference,kind,amount_minor,currency,booked_time\n", f);
    for (size_t i = 0; i < rep->n; i++) {
        const report_item *it = &rep->items[i];
        if (it->written) {
            fprintf(f, "%s,%s,%lld,%s,%s\n", it->reference, it->kind, (long long)it->amount,
                    it->currency, it->booked);
        }
    }
    int ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, rep->path) != 0) {
        snprintf(why, cap, "%s", strerror(errno));
        unlink(tmp);
        return 0;
    }
    return 1;
}

static void answer(svc_req *r, const report *rep)
{
    ReportResponse resp = PAYWIRE__SIMULATORS__V1__WRITE_SETTLEMENT_REPORT_RESPONSE__INIT;
    resp.path = (char *)rep->path;
    resp.operations = rep->operations;
    resp.injected = svc_alloc(r, sizeof(Injected *) * (rep->n + 1));
    for (size_t i = 0; i < rep->n; i++) {
        const report_item *it = &rep->items[i];
        resp.rows += it->written;
        if (it->difference == DIFF_NONE) {
            continue;
        }
        Injected *d = svc_alloc(r, sizeof(*d));
        paywire__simulators__v1__injected_difference__init(d);
        d->difference = (Paywire__Simulators__V1__ReportDifference)it->difference;
        d->partner_reference = (char *)it->reference;
        d->kind = (char *)it->kind;
        d->idempotency_key = (char *)it->key;
        d->recorded_amount_minor = it->recorded_amount;
        d->recorded_currency = (char *)it->recorded_currency;
        d->reported_amount_minor = it->amount;
        d->reported_currency = (char *)it->currency;
        resp.injected[resp.n_injected++] = d;
    }
    svc_reply(r, &resp.base);
}

SVC_HANDLER(write_settlement_report, ReportRequest)
{
    int want[DIFF_KINDS], total;
    check_request(r, req, want, &total);
    svc_authenticate(r, NULL);
    const sim_behaviour *b = r->app->service;
    if (b->report_dir[0] == '\0') {
        svc_fail_reason(r, PW_FAILED_PRECONDITION, "NO_REPORT_DIR",
                        "this simulator writes no reports: report_dir is not configured");
    }
    report rep = {.req = req};
    uint8_t fp[32];
    if (svc_fingerprint(&req->base, NULL, fp) != PW_OK) {
        svc_fail(r, PW_INTERNAL, "the request cannot be fingerprinted");
    }
    for (int i = 0; i < 32; i++) {
        snprintf(rep.fingerprint + 2 * i, 3, "%02x", fp[i]);
    }
    char *path = svc_alloc(r, sizeof(b->report_dir) + 80);
    snprintf(path, sizeof(b->report_dir) + 80, "%s/%s.csv", b->report_dir, req->report_id);
    rep.path = path;
    report_args a = {.rep = &rep, .want = want, .total = total};
    svc_transaction(r, report_tx, &a);
    char why[200];
    if (!write_file(&rep, why, sizeof(why))) {
        svc_fail(r, PW_INTERNAL,
                 "report %s is recorded but %s cannot be written (%s): the same request again"
                 " writes it",
                 req->report_id, rep.path, why);
    }
    PW_LOG(PW_LOG_INFO, "acquirer_sim", "report %s of %s: %zu items in %s", req->report_id,
           req->date, rep.n, rep.path);
    answer(r, &rep);
}

void acquirer_write_settlement_report(pw_call *call, const ReportRequest *request, void *app)
{
    write_settlement_report_h(call, request, app);
}
