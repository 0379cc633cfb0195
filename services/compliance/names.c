/*
 * names.c: normalisation, Jaro–Winkler and the token-aligned name score
 * (names.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "names.h"

/* U+00C0..U+024F folded: an ASCII string, "" (a separator) or NULL (kept as it is). Made from
 * Unicode's NFKD decompositions with the marks dropped, plus the letters NFKD leaves whole
 * (ß, æ, œ, ø, đ, ł, þ, ð, ı, ħ, ŧ, ŋ, ĳ). */
static const char *const latin_fold[0x250 - 0xc0] = {
    "a",  "a",  "a",  "a",  "a",  "a",  "ae", "c",  "e",  "e",  "e",  "e",  "i",  "i",  "i",  "i",
    "d",  "n",  "o",  "o",  "o",  "o",  "o",  "",   "o",  "u",  "u",  "u",  "u",  "y",  "th", "ss",
    "a",  "a",  "a",  "a",  "a",  "a",  "ae", "c",  "e",  "e",  "e",  "e",  "i",  "i",  "i",  "i",
    "d",  "n",  "o",  "o",  "o",  "o",  "o",  "",   "o",  "u",  "u",  "u",  "u",  "y",  "th", "y",
    "a",  "a",  "a",  "a",  "a",  "a",  "c",  "c",  "c",  "c",  "c",  "c",  "c",  "c",  "d",  "d",
    "d",  "d",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "g",  "g",  "g",  "g",
    "g",  "g",  "g",  "g",  "h",  "h",  "h",  "h",  "i",  "i",  "i",  "i",  "i",  "i",  "i",  "i",
    "i",  "i",  "ij", "ij", "j",  "j",  "k",  "k",  "k",  "l",  "l",  "l",  "l",  "l",  "l",  "l",
    "l",  "l",  "l",  "n",  "n",  "n",  "n",  "n",  "n",  "n",  "n",  "n",  "o",  "o",  "o",  "o",
    "o",  "o",  "oe", "oe", "r",  "r",  "r",  "r",  "r",  "r",  "s",  "s",  "s",  "s",  "s",  "s",
    "s",  "s",  "t",  "t",  "t",  "t",  "t",  "t",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",
    "u",  "u",  "u",  "u",  "w",  "w",  "y",  "y",  "y",  "z",  "z",  "z",  "z",  "z",  "z",  "s",
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    "o",  "o",  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "u",
    "u",  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, "dz", "dz", "dz", "lj", "lj", "lj", "nj", "nj", "nj", "a",  "a",  "i",
    "i",  "o",  "o",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  NULL, "a",  "a",
    "a",  "a",  NULL, NULL, NULL, NULL, "g",  "g",  "k",  "k",  "o",  "o",  "o",  "o",  NULL, NULL,
    "j",  "dz", "dz", "dz", "g",  "g",  NULL, NULL, "n",  "n",  "a",  "a",  NULL, NULL, NULL, NULL,
    "a",  "a",  "a",  "a",  "e",  "e",  "e",  "e",  "i",  "i",  "i",  "i",  "o",  "o",  "o",  "o",
    "r",  "r",  "r",  "r",  "u",  "u",  "u",  "u",  "s",  "s",  "t",  "t",  NULL, NULL, "h",  "h",
    NULL, NULL, NULL, NULL, NULL, NULL, "a",  "a",  "e",  "e",  "o",  "o",  "o",  "o",  "o",  "o",
    "o",  "o",  "y",  "y",  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
};

static const char *const dropped[] = {
    /* company forms */
    "ltd",
    "limited",
    "llc",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "bv",
    "nv",
    "plc",
    "lp",
    "llp",
    "pte",
    "pty",
    "oy",
    "ab",
    "kg",
    "kk",
    "sl",
    "sae",
    "jsc",
    "ojsc",
    "pjsc",
    "cjsc",
    "ooo",
    "zao",
    "oao",
    "fze",
    "fzco",
    "fzc",
    "lda",
    "ltda",
    "sac",
    "cia",
    "cv",
    "fzllc",
    "est",
    "wll",
    /* stopwords */
    "the",
    "of",
    "and",
    "for",
};

double names_jaro_winkler(const char *a, size_t alen, const char *b, size_t blen);

static int is_dropped(const char *t, size_t n)
{
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
        size_t dn = strlen(dropped[i]);
        if (dn == n && memcmp(dropped[i], t, n) == 0) {
            return 1;
        }
        /* Long forms misspelt ("Compnay", "Limitd") are still forms. */
        if (dn >= 7 && n >= 6 && names_jaro_winkler(dropped[i], dn, t, n) >= 0.93) {
            return 1;
        }
    }
    return 0;
}

/* Decodes one UTF-8 code point; returns its length (1 for an invalid byte, taken as is). */
static size_t next_cp(const unsigned char *p, uint32_t *cp)
{
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    size_t n = (p[0] & 0xe0) == 0xc0   ? 2
               : (p[0] & 0xf0) == 0xe0 ? 3
               : (p[0] & 0xf8) == 0xf0 ? 4
                                       : 1;
    uint32_t v = n == 2 ? p[0] & 0x1f : n == 3 ? p[0] & 0x0f : p[0] & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *cp = p[0];
            return 1;
        }
        v = (v << 6) | (p[i] & 0x3f);
    }
    *cp = n == 1 ? p[0] : v;
    return n;
}

typedef struct tok {
    char s[64];
    size_t n;
} tok;

int names_normalize(const char *name, int person, char *out, size_t cap)
{
    tok t[NAMES_MAX_TOKENS * 2];
    int nt = 0, comma_at = -1, commas = 0;
    tok cur = {{0}, 0};
    const unsigned char *p = (const unsigned char *)(name ? name : "");
#define FLUSH()                                       \
    do {                                              \
        if (cur.n > 0 && nt < NAMES_MAX_TOKENS * 2) { \
            cur.s[cur.n] = '\0';                      \
            t[nt++] = cur;                            \
        }                                             \
        cur.n = 0;                                    \
    } while (0)
    while (*p) {
        uint32_t cp;
        size_t len = next_cp(p, &cp);
        const char *add = NULL;
        char one[2] = {0, 0};
        if (cp < 0x80) {
            if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
                one[0] = (char)cp;
                add = one;
            } else if (cp >= 'A' && cp <= 'Z') {
                one[0] = (char)(cp - 'A' + 'a');
                add = one;
            } else if (cp == '\'' || cp == '.' || cp == '`') {
                add = ""; /* O'Brien, S.A. */
            } else {
                FLUSH();
                if (cp == ',') {
                    commas++;
                    comma_at = nt;
                }
            }
        } else if (cp >= 0x300 && cp <= 0x36f) {
            add = ""; /* a combining mark */
        } else if (cp == 0x2019 || cp == 0x2018 || cp == 0x2bc) {
            add = ""; /* typographic apostrophes */
        } else if (cp >= 0xc0 && cp < 0x250 && latin_fold[cp - 0xc0] != NULL) {
            add = latin_fold[cp - 0xc0];
            if (add[0] == '\0') {
                FLUSH();
                add = NULL;
            }
        } else if (cp == 0xa0 || (cp >= 0x2000 && cp <= 0x206f) || cp == 0x3000) {
            FLUSH(); /* spaces and general punctuation */
        } else {
            /* Another script: kept byte for byte. */
            if (cur.n + len < sizeof(cur.s)) {
                memcpy(cur.s + cur.n, p, len);
                cur.n += len;
            }
        }
        if (add != NULL) {
            size_t n = strlen(add);
            if (cur.n + n < sizeof(cur.s)) {
                memcpy(cur.s + cur.n, add, n);
                cur.n += n;
            }
        }
        p += len;
    }
    FLUSH();
#undef FLUSH
    /* "LAST, First Middle" → "First Middle LAST". */
    tok ordered[NAMES_MAX_TOKENS * 2];
    int no = 0;
    if (person && commas == 1 && comma_at > 0 && comma_at < nt) {
        for (int i = comma_at; i < nt; i++) {
            ordered[no++] = t[i];
        }
        for (int i = 0; i < comma_at; i++) {
            ordered[no++] = t[i];
        }
    } else {
        memcpy(ordered, t, sizeof(tok) * (size_t)nt);
        no = nt;
    }
    size_t w = 0;
    int count = 0;
    if (cap > 0) {
        out[0] = '\0';
    }
    for (int i = 0; i < no && count < NAMES_MAX_TOKENS; i++) {
        tok x = ordered[i];
        if (is_dropped(x.s, x.n)) {
            continue;
        }
        if ((strcmp(x.s, "al") == 0 || strcmp(x.s, "el") == 0 || strcmp(x.s, "ul") == 0) &&
            i + 1 < no && !is_dropped(ordered[i + 1].s, ordered[i + 1].n)) {
            /* al-Zawahiri, Al Zawahiri, Alzawahiri: one token */
            tok j = ordered[i + 1];
            char merged[128];
            int n = snprintf(merged, sizeof(merged), "%s%s", x.s, j.s);
            x.n = (size_t)n < sizeof(x.s) - 1 ? (size_t)n : sizeof(x.s) - 1;
            memcpy(x.s, merged, x.n);
            x.s[x.n] = '\0';
            i++;
        }
        if (w + x.n + 2 > cap) {
            break;
        }
        if (count > 0) {
            out[w++] = ' ';
        }
        memcpy(out + w, x.s, x.n);
        w += x.n;
        out[w] = '\0';
        count++;
    }
    return count;
}

double names_jaro_winkler(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen == 0 || blen == 0) {
        return 0.0;
    }
    if (alen == blen && memcmp(a, b, alen) == 0) {
        return 1.0;
    }
    if (alen > 64 || blen > 64) {
        alen = alen > 64 ? 64 : alen;
        blen = blen > 64 ? 64 : blen;
    }
    size_t window = (alen > blen ? alen : blen) / 2;
    window = window > 0 ? window - 1 : 0;
    char am[64] = {0}, bm[64] = {0};
    size_t m = 0;
    for (size_t i = 0; i < alen; i++) {
        size_t lo = i > window ? i - window : 0, hi = i + window + 1 < blen ? i + window + 1 : blen;
        for (size_t j = lo; j < hi; j++) {
            if (!bm[j] && a[i] == b[j]) {
                am[i] = bm[j] = 1;
                m++;
                break;
            }
        }
    }
    if (m == 0) {
        return 0.0;
    }
    size_t k = 0, trans = 0;
    for (size_t i = 0; i < alen; i++) {
        if (am[i]) {
            while (!bm[k]) {
                k++;
            }
            if (a[i] != b[k]) {
                trans++;
            }
            k++;
        }
    }
    double md = (double)m;
    double jaro = (md / (double)alen + md / (double)blen + (md - (double)trans / 2.0) / md) / 3.0;
    size_t prefix = 0;
    while (prefix < 4 && prefix < alen && prefix < blen && a[prefix] == b[prefix]) {
        prefix++;
    }
    return jaro + (double)prefix * 0.1 * (1.0 - jaro);
}

unsigned names_score(int nq, const double *qw, int ne, const double *ew,
                     double (*sim)(int i, int j, void *ud), void *ud)
{
    if (nq == 0 || ne == 0) {
        return 0;
    }
    double s[NAMES_MAX_TOKENS][NAMES_MAX_TOKENS];
    for (int i = 0; i < nq; i++) {
        for (int j = 0; j < ne; j++) {
            double v = sim(i, j, ud);
            s[i][j] = v >= NAMES_TOKEN_FLOOR ? v : 0.0;
        }
    }
    /* Pairs one to one, the most similar first. */
    double qgot[NAMES_MAX_TOKENS] = {0}, egot[NAMES_MAX_TOKENS] = {0};
    int qused[NAMES_MAX_TOKENS] = {0}, eused[NAMES_MAX_TOKENS] = {0};
    for (int round = 0; round < nq && round < ne; round++) {
        double best = 0.0;
        int bi = -1, bj = -1;
        for (int i = 0; i < nq; i++) {
            for (int j = 0; j < ne; j++) {
                if (!qused[i] && !eused[j] && s[i][j] > best) {
                    best = s[i][j], bi = i, bj = j;
                }
            }
        }
        if (bi < 0) {
            break;
        }
        qused[bi] = eused[bj] = 1;
        qgot[bi] = egot[bj] = best;
    }
    double qs = 0, qt = 0, es = 0, et = 0;
    for (int i = 0; i < nq; i++) {
        qs += qw[i] * qgot[i];
        qt += qw[i];
    }
    for (int j = 0; j < ne; j++) {
        es += ew[j] * egot[j];
        et += ew[j];
    }
    double score = 0.8 * (qs / qt) + 0.2 * (es / et);
    return (unsigned)(score * 1000.0 + 0.5);
}

typedef struct split {
    int n;
    const char *t[NAMES_MAX_TOKENS];
    size_t len[NAMES_MAX_TOKENS];
    double w[NAMES_MAX_TOKENS];
} split;

static void split_tokens(const char *s, split *out)
{
    out->n = 0;
    while (*s && out->n < NAMES_MAX_TOKENS) {
        const char *e = strchr(s, ' ');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        out->t[out->n] = s;
        out->len[out->n] = n;
        out->w[out->n] = (double)n;
        out->n++;
        s += n;
        while (*s == ' ') {
            s++;
        }
    }
}

typedef struct pair {
    split *q, *e;
} pair;

static double jw_tokens(int i, int j, void *ud)
{
    pair *p = ud;
    return names_jaro_winkler(p->q->t[i], p->q->len[i], p->e->t[j], p->e->len[j]);
}

unsigned names_compare(const char *query_norm, const char *entry_norm)
{
    split q, e;
    split_tokens(query_norm, &q);
    split_tokens(entry_norm, &e);
    pair p = {&q, &e};
    return names_score(q.n, q.w, e.n, e.w, jw_tokens, &p);
}
