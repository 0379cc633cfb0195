#ifndef PAYWIRE_CLIENTS_OFAC_H
#define PAYWIRE_CLIENTS_OFAC_H

/*
 * The U.S. Treasury's OFAC SDN list in its legacy CSV files (sdn.csv,
 * alt.csv, add.csv, sdn_comments.csv; the format's quirks are in the README
 * beside the files) read into SanctionsEntry messages: the listed name then
 * every alias as names, countries from addresses, nationalities and
 * citizenships (ISO 3166-1 alpha-2), dates of birth from the remarks, and
 * every "Digital Currency Address - <CUR> <address>" as an address. A
 * malformed row is reported with its file and line and skipped; it does not
 * stop the read.
 */
#include <stddef.h>
#include <paywire/status.h>
#include <paywire/paywire.h>
#include "paywire/compliance/v1/screening.pb-c.h"

/** Where the local copy lives, relative to the repository root. */
#define OFAC_DEFAULT_DIR "../shared/data/ofac-sdn"

typedef struct ofac_list ofac_list;

/** Told of each malformed row: the file's name ("add.csv"), its 1-based line, and why. */
typedef void (*ofac_report_cb)(const char *file, int line, const char *why, void *user_data);

/** What a read found. */
typedef struct ofac_stats {
    size_t entries;
    size_t aliases;
    size_t addresses;
    size_t comments;
    size_t digital_currency_addresses;
    size_t dates_of_birth;
    /** Rows skipped as malformed (each reported). */
    size_t malformed;
    /** Country names with no ISO code ("undetermined", a disputed region): not reported. */
    size_t unmapped_countries;
} ofac_stats;

/**
 * Reads the four files of dir. report (may be NULL) is told of every
 * malformed row. Returns PW_OK with *out set (free with ofac_list_free);
 * PW_NOT_FOUND when dir or one of its files cannot be read (err names the
 * path); PW_ERRNO(ENOMEM). *out is NULL on failure.
 */
pw_status ofac_list_read(ofac_list **out, const char *dir, ofac_report_cb report, void *user_data,
                         char *err, size_t err_len);
/** The entries in sdn.csv order, borrowed from l. */
Paywire__Compliance__V1__SanctionsEntry *const *ofac_list_entries(const ofac_list *l, size_t *n);
/** What the read found, borrowed from l. */
const ofac_stats *ofac_list_stats(const ofac_list *l);
/** NULL is a no-op. */
void ofac_list_free(ofac_list *l);

/** The ISO 3166-1 alpha-2 code of a country as OFAC writes it ("Korea, North" → "KP"), or NULL. */
const char *ofac_country_code(const char *name);

/**
 * Uploads n entries as (list, version) with the client-streamed
 * ScreeningService.UploadSanctionsList on ch: the first message names them
 * and the count, then chunks of up to chunk entries (1 to 1000). With
 * stop_after > 0 the stream is cancelled after that many entries (a test of
 * interrupted uploads). On success *active (may be NULL) is set to whether
 * the version is the active one. Returns PW_OK or the call's status, with the
 * server's message in msg.
 */
pw_status ofac_upload(pw_channel *ch, const char *list, const char *version,
                      Paywire__Compliance__V1__SanctionsEntry *const *entries, size_t n,
                      size_t chunk, size_t stop_after, int *active, char *msg, size_t msg_len);

#endif
