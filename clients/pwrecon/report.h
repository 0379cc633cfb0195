#ifndef PAYWIRE_PWRECON_REPORT_H
#define PAYWIRE_PWRECON_REPORT_H

/*
 * A partner's settlement report as CSV, read into UploadPartnerReport rows
 * and uploaded (pwrecon; finance.md, Reconciliation). The file starts with a
 * header naming its columns, in any order: partner_reference, kind,
 * amount_minor, currency, booked_time (RFC 3339 with Z, or YYYY-MM-DD for
 * midnight UTC); optionally settles; more columns are ignored. Fields may
 * be quoted ("a, b", "" for a quote). Amounts are integers in minor units,
 * never decimals. A row whose settles field is not empty is a net
 * settlement line (PartnerReportRow.settles): partner_reference is the
 * line's id, settles the partner references of the operations it settles,
 * separated by ';' (each 1 to 100 characters, each once, at most 1000), and
 * amount_minor their sum; an empty or repeated member is a malformed line.
 */
#include <stddef.h>
#include <paywire/paywire.h>
#include "paywire/finance/v1/reconciliation.pw.h"

typedef struct recon_report recon_report;

/** Told about each malformed line (the file's 1-based line number) and why. */
typedef void (*recon_report_bad_cb)(const char *file, int line, const char *why, void *user_data);

/**
 * Reads path. Every malformed line is reported through bad (may be NULL) and
 * counted; the rows of the others are kept. Returns PW_OK with *out (free it
 * with recon_report_free), PW_NOT_FOUND (cannot open: err says so),
 * PW_INVALID_ARGUMENT (no header, or a required column missing: err names it),
 * PW_ERRNO(ENOMEM).
 */
pw_status recon_report_read(recon_report **out, const char *path, recon_report_bad_cb bad,
                            void *user_data, char *err, size_t err_len);
void recon_report_free(recon_report *r);
/** The rows read, and how many lines were malformed. */
Paywire__Finance__V1__PartnerReportRow *const *recon_report_rows(const recon_report *r, size_t *n);
size_t recon_report_malformed(const recon_report *r);

/** What the first message of an upload names. */
typedef struct recon_report_header {
    Paywire__Common__V1__Mode mode;
    const char *partner;
    const char *report_id;
    const char *report_date;
} recon_report_header;

/**
 * Uploads the rows in messages of chunk rows (at most 1000) on ch and waits
 * for the run. Returns PW_OK with *run_out (free with pw_protobuf_free), or
 * the call's status with msg (msg_len bytes) the server's message.
 */
pw_status recon_report_upload(pw_channel *ch, const recon_report_header *h,
                              Paywire__Finance__V1__PartnerReportRow *const *rows, size_t n,
                              size_t chunk,
                              Paywire__Finance__V1__UploadPartnerReportResponse **run_out,
                              char *msg, size_t msg_len);

#endif
