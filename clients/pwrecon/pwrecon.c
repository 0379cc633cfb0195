/*
 * pwrecon: partner settlement reports into finance's reconciliation.
 *   pwrecon check FILE
 *       reads the report's CSV (report.h: columns by header name,
 *       partner_reference, kind, amount_minor, currency, booked_time and an
 *       optional settles, a net line's members separated by ';') and prints
 *       what it holds; each malformed line on stderr as FILE:LINE: why
 *   pwrecon upload FILE --partner NAME --report-id ID --date YYYY-MM-DD
 *                  [--mode test|live] --addr HOST:PORT [--cacert F --cert F --key F]
 *       uploads it with UploadPartnerReport and prints the run. A report
 *       with a malformed line is not uploaded at all: a row left out would
 *       show as a break that is not one. Uploading the same report again
 *       answers the first run.
 * Exit 0 on success, 1 on failure (the reason on stderr), 2 on bad usage.
 */
#include <stdio.h>
#include <string.h>
#include "report.h"

static const char *flag(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 3; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return argv[i + 1];
        }
    }
    return def;
}

static void bad_line(const char *file, int line, const char *why, void *ud)
{
    (void)ud;
    fprintf(stderr, "pwrecon: %s:%d: %s\n", file, line, why);
}

static int usage(void)
{
    fprintf(stderr, "usage: pwrecon check FILE\n"
                    "       pwrecon upload FILE --partner NAME --report-id ID --date YYYY-MM-DD\n"
                    "                      [--mode test|live] --addr HOST:PORT"
                    " [--cacert F --cert F --key F]\n"
                    "FILE is CSV with a header: partner_reference,kind,amount_minor,currency,"
                    "booked_time\n"
                    "in any order, and optionally settles (a net settlement line: the partner\n"
                    "references it settles, separated by ';'); other columns are ignored.\n");
    return 2;
}

static void closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

static int upload(int argc, char **argv, recon_report *r)
{
    recon_report_header h = {
        .partner = flag(argc, argv, "--partner", NULL),
        .report_id = flag(argc, argv, "--report-id", NULL),
        .report_date = flag(argc, argv, "--date", NULL),
    };
    const char *mode = flag(argc, argv, "--mode", "test");
    const char *addr = flag(argc, argv, "--addr", NULL);
    if (h.partner == NULL || h.report_id == NULL || h.report_date == NULL || addr == NULL ||
        (strcmp(mode, "test") != 0 && strcmp(mode, "live") != 0)) {
        return usage();
    }
    h.mode = strcmp(mode, "live") == 0 ? PAYWIRE__COMMON__V1__MODE__MODE_LIVE
                                       : PAYWIRE__COMMON__V1__MODE__MODE_TEST;
    pw_tls_config tls = {.cert_file = flag(argc, argv, "--cert", NULL),
                         .key_file = flag(argc, argv, "--key", NULL),
                         .ca_file = flag(argc, argv, "--cacert", NULL)};
    pw_channel_options co = {.tls = tls.ca_file ? &tls : NULL, .connect_timeout_ms = 5000};
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_channel *ch = NULL;
    int code = 0;
    if (pw_channel_new(&ch, &loop, addr, &co) != PW_OK) {
        fprintf(stderr, "pwrecon: cannot create a channel to %s\n", addr);
        code = 1;
    } else {
        size_t n;
        Paywire__Finance__V1__PartnerReportRow *const *rows = recon_report_rows(r, &n);
        Paywire__Finance__V1__UploadPartnerReportResponse *resp = NULL;
        char msg[1024];
        pw_status rv = recon_report_upload(ch, &h, rows, n, 1000, &resp, msg, sizeof(msg));
        if (rv != PW_OK) {
            fprintf(stderr, "pwrecon: upload of %s %s: %s: %s\n", h.partner, h.report_id,
                    pw_status_str(rv), msg);
            code = 1;
        } else {
            const Paywire__Finance__V1__ReconciliationRun *run = resp->run;
            printf("pwrecon: run %s: %lld rows, %lld matched or booked, %lld breaks,"
                   " %zu transfers booked\n",
                   run->id, (long long)run->rows, (long long)run->matched, (long long)run->breaks,
                   run->n_transfer_ids);
            pw_protobuf_free(&resp->base);
        }
        pw_channel_close(ch, closed, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "upload") != 0)) {
        return usage();
    }
    recon_report *r = NULL;
    char err[512];
    pw_status rv = recon_report_read(&r, argv[2], bad_line, NULL, err, sizeof(err));
    if (rv != PW_OK) {
        fprintf(stderr, "pwrecon: %s\n", rv == PW_ERRNO(ENOMEM) ? "out of memory" : err);
        return 1;
    }
    size_t n;
    recon_report_rows(r, &n);
    size_t bad = recon_report_malformed(r);
    printf("pwrecon: %s: %zu rows, %zu malformed lines\n", argv[2], n, bad);
    int code = 0;
    if (bad > 0) {
        fprintf(stderr, "pwrecon: %s has %zu malformed line%s: nothing was uploaded\n", argv[2],
                bad, bad == 1 ? "" : "s");
        code = 1;
    } else if (strcmp(argv[1], "upload") == 0) {
        code = upload(argc, argv, r);
    }
    recon_report_free(r);
    return code;
}
