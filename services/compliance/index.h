#ifndef PAYWIRE_COMPLIANCE_INDEX_H
#define PAYWIRE_COMPLIANCE_INDEX_H

/*
 * The in-memory index of one sanctions list version (docs/design/compliance.md,
 * Sanctions screening): every listed name and alias normalised (names.h),
 * its distinct tokens with a trigram index over them, the names each token
 * occurs in, and the digital currency addresses sorted for exact lookup.
 * Screening a name looks up the trigrams of its tokens, compares the tokens
 * that share enough of them (Jaro–Winkler), and scores only the names that
 * contain a similar token: tens of names, not the whole list. Immutable once
 * built; any number of threads may screen with it at once.
 */
#include <stddef.h>
#include <paywire/status.h>
#include "paywire/compliance/v1/screening.pb-c.h"

typedef struct sx_index sx_index;

/** Thresholds (0–1000), from configuration. */
typedef struct sx_config {
    /** A name at or above this, with a matching date of birth or country: MATCH (950). */
    unsigned match;
    /** At or above this: POTENTIAL_MATCH (880). */
    unsigned potential;
} sx_config;

/** One entry that matched. */
typedef struct sx_hit {
    size_t entry;
    /** The listed name or address that matched (borrowed from the index). */
    const char *matched;
    /** "name" or "wallet". */
    const char *field;
    unsigned score;
    /** PAYWIRE__COMPLIANCE__V1__SCREENING_OUTCOME__... POTENTIAL_MATCH or MATCH. */
    int outcome;
} sx_hit;

/**
 * Builds the index of list, taking ownership of it (freed with the index by
 * pw_protobuf_free). Returns PW_OK with *out set, or PW_ERRNO(ENOMEM) (list
 * freed, *out NULL).
 */
pw_status sx_index_new(sx_index **out, Paywire__Compliance__V1__UploadSanctionsListRequest *list);
/** NULL is a no-op. */
void sx_index_free(sx_index *x);
/** The list it was built from (borrowed). */
const Paywire__Compliance__V1__UploadSanctionsListRequest *sx_index_list(const sx_index *x);
/** Names (listed and aliases) indexed. */
size_t sx_index_name_count(const sx_index *x);

/**
 * Screens party's names and addresses: at most max hits into hits (the best
 * per entry, best first), their count returned; *outcome (a
 * ScreeningOutcome) is the strongest. With naive, every name of the list is
 * scored (Jaro–Winkler on every token pair): the baseline of bench/compliance.
 */
int sx_index_screen(const sx_index *x, const Paywire__Compliance__V1__Party *party,
                    const sx_config *cfg, int naive, sx_hit *hits, int max, int *outcome);

/** Lower-case hex for EVM addresses ("0x" and 40 hex digits), else as given, into out. */
void sx_address_normalize(const char *address, char *out, size_t cap);

#endif
