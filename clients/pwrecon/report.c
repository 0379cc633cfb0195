/* report.c: a settlement report's CSV into rows, and its upload (see report.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "report.h"

#define P(x)        Paywire__Finance__V1__##x
#define MAX_FIELDS  32
#define MAX_LINE    4096
#define MAX_MEMBERS 1000
#define MAX_REF     100

/* The required columns, then the optional ones (COL_SETTLES: a net line's members). */
enum {
    COL_REFERENCE,
    COL_KIND,
    COL_AMOUNT,
    COL_CURRENCY,
    COL_BOOKED,
    COLS,
    COL_SETTLES = COLS,
    ALL_COLS
};
static const char *const col_names[ALL_COLS] = {"partner_reference", "kind",        "amount_minor",
                                                "currency",          "booked_time", "settles"};

/* One row and everything it points to, in one allocation (a net line's members in a second). */
typedef struct row_block {
    P(PartnerReportRow) row;
    Paywire__Common__V1__Money money;
    Google__Protobuf__Timestamp booked;
    char reference[MAX_REF + 1];
    char kind[24];
    char currency[8];
    /* The members' pointers, then their text: one allocation, or NULL. */
    char **settles;
} row_block;

struct recon_report {
    row_block **blocks;
    P(PartnerReportRow) * *rows;
    size_t n, cap;
    size_t malformed;
};

/* Splits line (modified in place) into at most MAX_FIELDS fields; -1 on a broken quote. */
static int split(char *line, char **fields)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == MAX_FIELDS) {
            return -1;
        }
        char *out = p;
        fields[n++] = out;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    return -1;
                }
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            if (*p != ',' && *p != '\0') {
                return -1;
            }
        } else {
            while (*p != ',' && *p != '\0') {
                *out++ = *p++;
            }
        }
        int end = *p == '\0';
        *out = '\0';
        if (end) {
            return n;
        }
        p++;
    }
}

/* "2026-12-01T10:00:00Z" or "2026-12-01": seconds since the epoch; -1 when neither. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    char tail = '\0';
    int n = sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &tail);
    size_t len = strlen(s);
    if (!((n == 7 && tail == 'Z' && len == 20) || (n == 3 && len == 10))) {
        return -1;
    }
    if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* A whole number of minor units, above 0 (a decimal point is refused: no floats). */
static int parse_amount(const char *s, int64_t *out)
{
    if (*s == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 18) {
        return 0;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    *out = v;
    return errno == 0 && v > 0;
}

static int grow(recon_report *r)
{
    if (r->n < r->cap) {
        return 1;
    }
    size_t cap = r->cap ? r->cap * 2 : 1024;
    row_block **b = realloc(r->blocks, cap * sizeof(*b));
    if (b == NULL) {
        return 0;
    }
    r->blocks = b;
    P(PartnerReportRow) **p = realloc(r->rows, cap * sizeof(*p));
    if (p == NULL) {
        return 0;
    }
    r->rows = p;
    r->cap = cap;
    return 1;
}

/*
 * A net line's members, "ref;ref;…", into b (nothing for an empty field): NULL, or the reason
 * the field is malformed. The server checks the same (recon.c), but a bad line is the file's
 * FILE:LINE here, before anything is uploaded.
 */
static const char *parse_settles(const char *text, row_block *b)
{
    if (text[0] == '\0') {
        return NULL;
    }
    size_t n = 1;
    for (const char *p = text; *p; p++) {
        n += *p == ';';
    }
    if (n > MAX_MEMBERS) {
        return "settles has more than 1000 members";
    }
    size_t len = strlen(text);
    char **v = malloc(n * sizeof(char *) + len + 1);
    if (v == NULL) {
        return "out of memory";
    }
    char *buf = (char *)(v + n);
    memcpy(buf, text, len + 1);
    char *p = buf;
    for (size_t i = 0; i < n; i++) {
        size_t k = strcspn(p, ";");
        p[k] = '\0';
        v[i] = p;
        p += k + 1;
        const char *why = NULL;
        if (k == 0) {
            why = "settles has an empty member (members are separated by ';')";
        } else if (k > MAX_REF) {
            why = "a member of settles is longer than 100 characters";
        }
        for (size_t j = 0; why == NULL && j < i; j++) {
            if (strcmp(v[j], v[i]) == 0) {
                why = "settles lists a member twice";
            }
        }
        if (why != NULL) {
            free(v);
            return why;
        }
    }
    b->settles = v;
    b->row.settles = v;
    b->row.n_settles = n;
    return NULL;
}

/* The row of one data line, or the reason it is malformed. */
static const char *parse_row(char **f, int nf, const int *col, row_block *b)
{
    for (int c = 0; c < ALL_COLS; c++) {
        if (col[c] >= nf) {
            return "fewer fields than the header names";
        }
    }
    const char *ref = f[col[COL_REFERENCE]], *kind = f[col[COL_KIND]];
    const char *cur = f[col[COL_CURRENCY]];
    int64_t amount, at;
    if (strlen(ref) > 100) {
        return "partner_reference longer than 100 characters";
    }
    if (kind[0] == '\0' || strlen(kind) >= sizeof(b->kind)) {
        return "kind is empty or too long";
    }
    if (!parse_amount(f[col[COL_AMOUNT]], &amount)) {
        return "amount_minor is not a whole number of minor units above 0";
    }
    if (strlen(cur) != 3 || !isupper((unsigned char)cur[0]) || !isupper((unsigned char)cur[1]) ||
        !isupper((unsigned char)cur[2])) {
        return "currency is not a three-letter ISO 4217 code";
    }
    if ((at = parse_time(f[col[COL_BOOKED]])) < 0) {
        return "booked_time is neither YYYY-MM-DDTHH:MM:SSZ nor YYYY-MM-DD";
    }
    paywire__finance__v1__partner_report_row__init(&b->row);
    paywire__common__v1__money__init(&b->money);
    google__protobuf__timestamp__init(&b->booked);
    snprintf(b->reference, sizeof(b->reference), "%s", ref);
    snprintf(b->kind, sizeof(b->kind), "%s", kind);
    snprintf(b->currency, sizeof(b->currency), "%s", cur);
    b->money.amount_minor = amount;
    b->money.currency = b->currency;
    b->booked.seconds = at;
    b->row.partner_reference = b->reference;
    b->row.kind = b->kind;
    b->row.amount = &b->money;
    b->row.booked_time = &b->booked;
    return col[COL_SETTLES] >= 0 ? parse_settles(f[col[COL_SETTLES]], b) : NULL;
}

/* The header's columns; NULL, or the name of the first required column missing. */
static const char *read_header(char *line, int *col)
{
    char *f[MAX_FIELDS];
    int nf = split(line, f);
    for (int c = 0; c < ALL_COLS; c++) {
        col[c] = -1;
        for (int i = 0; i < nf; i++) {
            if (strcmp(f[i], col_names[c]) == 0) {
                col[c] = i;
            }
        }
        if (col[c] < 0 && c < COLS) {
            return col_names[c];
        }
    }
    return NULL;
}

static void chomp(char *line)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        line[--len] = '\0';
    }
}

pw_status recon_report_read(recon_report **out, const char *path, recon_report_bad_cb bad,
                            void *user_data, char *err, size_t err_len)
{
    *out = NULL;
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, err_len, "cannot open %s: %s", path, strerror(errno));
        return PW_NOT_FOUND;
    }
    recon_report *r = calloc(1, sizeof(*r));
    char *line = malloc(MAX_LINE);
    if (r == NULL || line == NULL) {
        free(r);
        free(line);
        fclose(fp);
        return PW_ERRNO(ENOMEM);
    }
    int col[ALL_COLS];
    pw_status rv = PW_OK;
    if (fgets(line, MAX_LINE, fp) == NULL) {
        snprintf(err, err_len, "%s is empty: it must start with a header line", path);
        rv = PW_INVALID_ARGUMENT;
    } else {
        chomp(line);
        const char *missing = read_header(line, col);
        if (missing != NULL) {
            snprintf(err, err_len, "%s:1: the header has no %s column", path, missing);
            rv = PW_INVALID_ARGUMENT;
        }
    }
    for (int no = 2; rv == PW_OK && fgets(line, MAX_LINE, fp) != NULL; no++) {
        size_t len = strlen(line);
        if (len == MAX_LINE - 1 && line[len - 1] != '\n') {
            int c;
            while ((c = fgetc(fp)) != EOF && c != '\n') {
            }
            r->malformed++;
            if (bad) {
                bad(path, no, "longer than 4095 characters", user_data);
            }
            continue;
        }
        chomp(line);
        if (line[0] == '\0') {
            continue;
        }
        char *f[MAX_FIELDS];
        int nf = split(line, f);
        row_block *b = calloc(1, sizeof(*b));
        if (b == NULL || !grow(r)) {
            free(b);
            rv = PW_ERRNO(ENOMEM);
            break;
        }
        const char *why = nf < 0 ? "a quoted field is not closed" : parse_row(f, nf, col, b);
        if (why != NULL) {
            free(b);
            r->malformed++;
            if (bad) {
                bad(path, no, why, user_data);
            }
            continue;
        }
        r->blocks[r->n] = b;
        r->rows[r->n] = &b->row;
        r->n++;
    }
    free(line);
    fclose(fp);
    if (rv != PW_OK) {
        recon_report_free(r);
        return rv;
    }
    *out = r;
    return PW_OK;
}

void recon_report_free(recon_report *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        free(r->blocks[i]->settles);
        free(r->blocks[i]);
    }
    free(r->blocks);
    free(r->rows);
    free(r);
}

P(PartnerReportRow) *const *recon_report_rows(const recon_report *r, size_t *n)
{
    *n = r->n;
    return r->rows;
}

size_t recon_report_malformed(const recon_report *r)
{
    return r->malformed;
}

pw_status recon_report_upload(pw_channel *ch, const recon_report_header *h,
                              P(PartnerReportRow) *const *rows, size_t n, size_t chunk,
                              P(UploadPartnerReportResponse) * *run_out, char *msg, size_t msg_len)
{
    *run_out = NULL;
    msg[0] = '\0';
    if (chunk == 0 || chunk > 1000) {
        chunk = 1000;
    }
    pw_call_options o = {.timeout_ms = 600000, .wait_for_ready = 1};
    pw_stream *s = NULL;
    pw_status rv =
        paywire_finance_v1_reconciliation_service_upload_partner_report_start_blocking(ch, &o, &s);
    if (rv != PW_OK) {
        snprintf(msg, msg_len, "cannot start the upload: %s", pw_status_str(rv));
        return rv;
    }
    size_t sent = 0;
    do {
        P(UploadPartnerReportRequest)
        req = PAYWIRE__FINANCE__V1__UPLOAD_PARTNER_REPORT_REQUEST__INIT;
        if (sent == 0) {
            req.mode = h->mode;
            req.partner = (char *)h->partner;
            req.report_id = (char *)h->report_id;
            req.report_date = (char *)h->report_date;
        }
        size_t k = n - sent < chunk ? n - sent : chunk;
        req.rows = (P(PartnerReportRow) **)rows + sent;
        req.n_rows = k;
        rv = paywire_finance_v1_reconciliation_service_upload_partner_report_stream_send(s, &req);
        sent += k;
    } while (rv == PW_OK && sent < n);
    if (rv == PW_OK) {
        rv = pw_stream_close_send(s);
    }
    ProtobufCMessage *resp = NULL;
    if (rv == PW_OK) {
        rv = pw_stream_recv(s, &paywire__finance__v1__upload_partner_report_response__descriptor,
                            &resp);
    }
    const char *m = NULL;
    pw_status st = pw_stream_finish(s, &m, NULL);
    if (st != PW_OK) {
        rv = st;
    }
    snprintf(msg, msg_len, "%s", m ? m : "");
    pw_stream_free(s);
    if (rv != PW_OK) {
        pw_protobuf_free(resp);
        return rv;
    }
    *run_out = (P(UploadPartnerReportResponse) *)resp;
    return resp != NULL ? PW_OK : PW_INTERNAL;
}
