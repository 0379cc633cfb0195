#ifndef PAYWIRE_COMPLIANCE_NAMES_H
#define PAYWIRE_COMPLIANCE_NAMES_H

/*
 * Name matching for sanctions screening (docs/design/compliance.md, Names):
 * normalisation to comparable tokens, Jaro–Winkler between tokens, and the
 * token-aligned score on a 0–1000 scale.
 */
#include <stddef.h>

/** At most this many tokens of a name are compared (the rest are ignored). */
#define NAMES_MAX_TOKENS 16

/**
 * Normalises a name: Latin letters folded to ASCII as NFKD would and their
 * diacritics dropped (other scripts kept as they are), lower case,
 * apostrophes and periods removed, other punctuation a separator; with
 * person, "LAST, First Middle" becomes "First Middle LAST"; company
 * suffixes (ltd, llc, gmbh, corp...) and stopwords (the, of, and) dropped;
 * the Arabic articles al, el and ul joined to the word after them. Writes the
 * tokens, separated by single spaces, into out (NUL-terminated, cut at cap)
 * and returns the number of tokens (0: nothing to compare, e.g. "CORP").
 */
int names_normalize(const char *name, int person, char *out, size_t cap);

/** Jaro–Winkler similarity of two byte strings, 0 to 1 (prefix scale 0.1, up to 4). */
double names_jaro_winkler(const char *a, size_t alen, const char *b, size_t blen);

/** Token similarity below this counts as no match at all (so "bush" never half-matches). */
#define NAMES_TOKEN_FLOOR 0.84

/**
 * The similarity of two names given their token similarities: sim(i, j) for
 * query token i (of nq, weights qw: their lengths) and entry token j (of ne,
 * weights ew). Tokens are paired one to one, best pairs first; each side's
 * coverage is the weighted share of its tokens paired, times their
 * similarity; the score is 0.8 × the query's coverage + 0.2 × the entry's,
 * on 0–1000. A listed name with an extra middle name still scores high; a
 * shared first name alone does not.
 */
unsigned names_score(int nq, const double *qw, int ne, const double *ew,
                     double (*sim)(int i, int j, void *ud), void *ud);

/** names_score of two normalised names (tokens compared with Jaro–Winkler). */
unsigned names_compare(const char *query_norm, const char *entry_norm);

#endif
