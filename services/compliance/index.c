/* index.c: the in-memory index of a sanctions list version (index.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/paywire.h>
#include "index.h"
#include "names.h"

#define P(x)            Paywire__Compliance__V1__##x
#define OUTCOME(x)      PAYWIRE__COMPLIANCE__V1__SCREENING_OUTCOME__SCREENING_OUTCOME_##x
#define MAX_QUERY_NAMES 8
/* Listed tokens similar to some query token, per query name. */
#define MAX_SIMILAR 4096
/* Names scored per query name at most (more only for extremely common tokens). */
#define MAX_CANDIDATES 65536

typedef struct sx_name {
    size_t entry;
    const char *raw;
    uint32_t first_tok, ntok; /* into name_toks */
} sx_name;

typedef struct addr {
    char norm[136];
    size_t entry;
    const char *raw;
} addr;

struct sx_index {
    P(UploadSanctionsListRequest) * list;
    unsigned char *entry_kind; /* 0 individual, 1 entity, 2 vessel or aircraft */
    sx_name *names;
    size_t nnames;
    uint32_t *name_toks;
    /* Distinct tokens: their text (NUL-terminated, in pool), length. */
    char *pool;
    uint32_t *tok_off, *tok_len;
    size_t ntok;
    /* token → names (CSR). */
    uint32_t *tn_off, *tn;
    /* trigram → tokens (CSR over sorted keys). */
    uint32_t *tri_key, *tri_off, *tri_tok;
    size_t ntri;
    addr *addrs;
    size_t naddrs;
};

/* ---- building ---- */

typedef struct dict {
    uint32_t *slot; /* token id + 1 */
    size_t cap;
} dict;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return h;
}

typedef struct builder {
    sx_index *x;
    dict d;
    size_t pool_len, pool_cap, tok_cap, tok_len_cap;
    size_t name_cap, nt_len, nt_cap;
    int oom;
} builder;

static void *grow(builder *b, void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return p;
    }
    size_t c = *cap ? *cap : 1024;
    while (c < need) {
        c *= 2;
    }
    void *g = pw_realloc(p, c * size);
    if (g == NULL) {
        b->oom = 1;
        return p;
    }
    *cap = c;
    return g;
}

static uint32_t token_id(builder *b, const char *s, size_t n)
{
    sx_index *x = b->x;
    uint64_t h = hash(s, n);
    for (size_t i = h & (b->d.cap - 1);; i = (i + 1) & (b->d.cap - 1)) {
        uint32_t v = b->d.slot[i];
        if (v == 0) {
            x->tok_off = grow(b, x->tok_off, &b->tok_cap, x->ntok + 1, sizeof(uint32_t));
            x->tok_len = grow(b, x->tok_len, &b->tok_len_cap, x->ntok + 1, sizeof(uint32_t));
            x->pool = grow(b, x->pool, &b->pool_cap, b->pool_len + n + 1, 1);
            if (b->oom) {
                return 0;
            }
            memcpy(x->pool + b->pool_len, s, n);
            x->pool[b->pool_len + n] = '\0';
            x->tok_off[x->ntok] = (uint32_t)b->pool_len;
            x->tok_len[x->ntok] = (uint32_t)n;
            b->pool_len += n + 1;
            b->d.slot[i] = (uint32_t)++x->ntok;
            return (uint32_t)x->ntok - 1;
        }
        if (x->tok_len[v - 1] == n && memcmp(x->pool + x->tok_off[v - 1], s, n) == 0) {
            return v - 1;
        }
    }
}

static void add_name(builder *b, size_t entry, const char *raw, int person)
{
    char norm[512];
    int nt = names_normalize(raw, person, norm, sizeof(norm));
    if (nt == 0) {
        return;
    }
    sx_index *x = b->x;
    x->names = grow(b, x->names, &b->name_cap, x->nnames + 1, sizeof(sx_name));
    x->name_toks = grow(b, x->name_toks, &b->nt_cap, b->nt_len + (size_t)nt, sizeof(uint32_t));
    if (b->oom) {
        return;
    }
    sx_name *nm = &x->names[x->nnames++];
    nm->entry = entry;
    nm->raw = raw;
    nm->first_tok = (uint32_t)b->nt_len;
    nm->ntok = 0;
    for (const char *s = norm; *s;) {
        const char *e = strchr(s, ' ');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        uint32_t id = token_id(b, s, n);
        if (b->oom) {
            return;
        }
        x->name_toks[b->nt_len++] = id;
        nm->ntok++;
        s += n;
        while (*s == ' ') {
            s++;
        }
    }
}

/* The trigrams of a token padded with a space on each side; returns how many (<= cap). */
static int trigrams(const char *s, size_t n, uint32_t *out, int cap)
{
    char buf[80];
    if (n > sizeof(buf) - 3) {
        n = sizeof(buf) - 3;
    }
    buf[0] = ' ';
    memcpy(buf + 1, s, n);
    buf[n + 1] = ' ';
    int k = 0;
    for (size_t i = 0; i + 3 <= n + 2 && k < cap; i++) {
        out[k++] = ((uint32_t)(unsigned char)buf[i] << 16) |
                   ((uint32_t)(unsigned char)buf[i + 1] << 8) | (unsigned char)buf[i + 2];
    }
    return k;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_addr(const void *a, const void *b)
{
    return strcmp(((const addr *)a)->norm, ((const addr *)b)->norm);
}

void sx_address_normalize(const char *a, char *out, size_t cap)
{
    size_t n = strlen(a);
    /* EVM hex is case-insensitive (EIP-55 case is only a checksum); the list has a 41-digit
     * one too, so any length. */
    int evm = n > 2 && a[0] == '0' && (a[1] == 'x' || a[1] == 'X');
    for (size_t i = 2; evm && i < n; i++) {
        char c = a[i];
        evm = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
    size_t i = 0;
    for (; i + 1 < cap && a[i]; i++) {
        char c = a[i];
        out[i] = evm && c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    if (cap > 0) {
        out[i] = '\0';
    }
}

static pw_status build(builder *b)
{
    sx_index *x = b->x;
    P(UploadSanctionsListRequest) *l = x->list;
    x->entry_kind = pw_calloc(l->n_entries ? l->n_entries : 1, 1);
    b->d.cap = 1 << 17;
    b->d.slot = pw_calloc(b->d.cap, sizeof(uint32_t));
    if (x->entry_kind == NULL || b->d.slot == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    size_t naddr = 0;
    for (size_t i = 0; i < l->n_entries; i++) {
        const P(SanctionsEntry) *e = l->entries[i];
        int person = strcmp(e->type, "individual") == 0;
        x->entry_kind[i] = person                                                               ? 0
                           : strcmp(e->type, "vessel") == 0 || strcmp(e->type, "aircraft") == 0 ? 2
                                                                                                : 1;
        for (size_t k = 0; k < e->n_names && !b->oom; k++) {
            add_name(b, i, e->names[k], person);
        }
        naddr += e->n_digital_currency_addresses;
    }
    if (b->oom || x->ntok >= b->d.cap / 2) {
        return PW_ERRNO(ENOMEM);
    }
    /* token → names */
    x->tn_off = pw_calloc(x->ntok + 1, sizeof(uint32_t));
    x->tn = pw_malloc((b->nt_len ? b->nt_len : 1) * sizeof(uint32_t));
    if (x->tn_off == NULL || x->tn == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    for (size_t i = 0; i < b->nt_len; i++) {
        x->tn_off[x->name_toks[i] + 1]++;
    }
    for (size_t t = 0; t < x->ntok; t++) {
        x->tn_off[t + 1] += x->tn_off[t];
    }
    uint32_t *fill = pw_calloc(x->ntok + 1, sizeof(uint32_t));
    if (fill == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    for (size_t n = 0; n < x->nnames; n++) {
        for (uint32_t k = 0; k < x->names[n].ntok; k++) {
            uint32_t t = x->name_toks[x->names[n].first_tok + k];
            x->tn[x->tn_off[t] + fill[t]++] = (uint32_t)n;
        }
    }
    pw_free(fill);
    /* trigram → tokens */
    size_t cap = 0, n = 0;
    uint64_t *pairs = NULL;
    for (size_t t = 0; t < x->ntok; t++) {
        uint32_t tri[64];
        int k = trigrams(x->pool + x->tok_off[t], x->tok_len[t], tri, 64);
        pairs = grow(b, pairs, &cap, n + (size_t)k, sizeof(uint64_t));
        if (b->oom) {
            pw_free(pairs);
            return PW_ERRNO(ENOMEM);
        }
        for (int i = 0; i < k; i++) {
            pairs[n++] = ((uint64_t)tri[i] << 32) | t;
        }
    }
    qsort(pairs, n, sizeof(uint64_t), cmp_u64);
    x->tri_key = pw_malloc((n ? n : 1) * sizeof(uint32_t));
    x->tri_off = pw_malloc((n + 1) * sizeof(uint32_t));
    x->tri_tok = pw_malloc((n ? n : 1) * sizeof(uint32_t));
    if (x->tri_key == NULL || x->tri_off == NULL || x->tri_tok == NULL) {
        pw_free(pairs);
        return PW_ERRNO(ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)(pairs[i] >> 32);
        uint32_t tok = (uint32_t)pairs[i];
        if (x->ntri == 0 || x->tri_key[x->ntri - 1] != key) {
            x->tri_key[x->ntri] = key;
            x->tri_off[x->ntri] = (uint32_t)i;
            x->ntri++;
        }
        x->tri_tok[i] = tok;
    }
    x->tri_off[x->ntri] = (uint32_t)n;
    pw_free(pairs);
    /* addresses */
    x->addrs = pw_calloc(naddr ? naddr : 1, sizeof(addr));
    if (x->addrs == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    for (size_t i = 0; i < l->n_entries; i++) {
        const P(SanctionsEntry) *e = l->entries[i];
        for (size_t k = 0; k < e->n_digital_currency_addresses; k++) {
            addr *a = &x->addrs[x->naddrs++];
            sx_address_normalize(e->digital_currency_addresses[k]->address, a->norm,
                                 sizeof(a->norm));
            a->entry = i;
            a->raw = e->digital_currency_addresses[k]->address;
        }
    }
    qsort(x->addrs, x->naddrs, sizeof(addr), cmp_addr);
    return PW_OK;
}

pw_status sx_index_new(sx_index **out, P(UploadSanctionsListRequest) * list)
{
    *out = NULL;
    sx_index *x = pw_calloc(1, sizeof(*x));
    if (x == NULL) {
        pw_protobuf_free(&list->base);
        return PW_ERRNO(ENOMEM);
    }
    x->list = list;
    builder b = {.x = x};
    pw_status rv = build(&b);
    pw_free(b.d.slot);
    if (rv != PW_OK) {
        sx_index_free(x);
        return rv;
    }
    *out = x;
    return PW_OK;
}

void sx_index_free(sx_index *x)
{
    if (x == NULL) {
        return;
    }
    pw_protobuf_free(&x->list->base);
    pw_free(x->entry_kind);
    pw_free(x->names);
    pw_free(x->name_toks);
    pw_free(x->pool);
    pw_free(x->tok_off);
    pw_free(x->tok_len);
    pw_free(x->tn_off);
    pw_free(x->tn);
    pw_free(x->tri_key);
    pw_free(x->tri_off);
    pw_free(x->tri_tok);
    pw_free(x->addrs);
    pw_free(x);
}

const P(UploadSanctionsListRequest) * sx_index_list(const sx_index *x)
{
    return x->list;
}

size_t sx_index_name_count(const sx_index *x)
{
    return x->nnames;
}

/* ---- screening ---- */

typedef struct query {
    const sx_index *x;
    int nq;
    const char *qt[NAMES_MAX_TOKENS];
    size_t ql[NAMES_MAX_TOKENS];
    double qw[NAMES_MAX_TOKENS];
    /* Listed token → its row in sim (valid when slot_stamp[tok] is this name's stamp). */
    uint32_t *slot, *slot_stamp;
    float (*sim)[NAMES_MAX_TOKENS];
    int nsim;
    uint32_t stamp;
    uint32_t *cands;
    const sx_name *name; /* the name being scored */
    int naive;
} query;

static double sim_lookup(int i, int j, void *ud)
{
    query *q = ud;
    uint32_t tok = q->x->name_toks[q->name->first_tok + (uint32_t)j];
    if (q->naive) {
        return names_jaro_winkler(q->qt[i], q->ql[i], q->x->pool + q->x->tok_off[tok],
                                  q->x->tok_len[tok]);
    }
    return q->slot_stamp[tok] == q->stamp ? q->sim[q->slot[tok]][i] : 0.0;
}

static unsigned score_name(query *q, const sx_name *nm)
{
    double ew[NAMES_MAX_TOKENS];
    int ne = nm->ntok > NAMES_MAX_TOKENS ? NAMES_MAX_TOKENS : (int)nm->ntok;
    for (int j = 0; j < ne; j++) {
        ew[j] = q->x->tok_len[q->x->name_toks[nm->first_tok + (uint32_t)j]];
    }
    q->name = nm;
    return names_score(q->nq, q->qw, ne, ew, sim_lookup, q);
}

/* 1 when the party's YYYY-MM-DD is consistent with a listed date ("1948-12-10", "1967-03",
 * "1960", "1960/1962"). */
static int dob_consistent(const char *party, const char *listed)
{
    const char *slash = strchr(listed, '/');
    if (slash != NULL) {
        int y = atoi(party), lo = atoi(listed), hi = atoi(slash + 1);
        return y >= lo && y <= hi;
    }
    size_t n = strlen(listed);
    return strlen(party) >= n && strncmp(party, listed, n) == 0;
}

static void judge(const sx_index *x, const P(Party) * party, const sx_config *cfg, sx_hit *h)
{
    const P(SanctionsEntry) *e = x->list->entries[h->entry];
    int corroborated = 0, conflict = 0;
    if (party->date_of_birth[0] && e->n_dates_of_birth > 0) {
        conflict = 1;
        for (size_t i = 0; i < e->n_dates_of_birth; i++) {
            if (dob_consistent(party->date_of_birth, e->dates_of_birth[i])) {
                corroborated = 1, conflict = 0;
            }
        }
    }
    for (size_t i = 0; i < party->n_countries; i++) {
        for (size_t k = 0; k < e->n_countries; k++) {
            if (strcmp(party->countries[i], e->countries[k]) == 0) {
                corroborated = 1;
            }
        }
    }
    unsigned eff = conflict && h->score >= 50 ? h->score - 50 : h->score;
    if (h->score >= cfg->match && corroborated) {
        h->outcome = OUTCOME(MATCH);
    } else if (eff >= cfg->potential) {
        h->outcome = OUTCOME(POTENTIAL_MATCH);
    } else {
        h->outcome = OUTCOME(CLEAR);
    }
}

/* Keeps the best hit per entry, at most max, best first. */
static int keep(sx_hit *hits, int n, int max, const sx_hit *h)
{
    for (int i = 0; i < n; i++) {
        if (hits[i].entry == h->entry) {
            if (h->outcome > hits[i].outcome ||
                (h->outcome == hits[i].outcome && h->score > hits[i].score)) {
                hits[i] = *h;
            }
            return n;
        }
    }
    if (n < max) {
        hits[n++] = *h;
        return n;
    }
    int worst = 0;
    for (int i = 1; i < n; i++) {
        if (hits[i].score < hits[worst].score) {
            worst = i;
        }
    }
    if (h->score > hits[worst].score) {
        hits[worst] = *h;
    }
    return n;
}

static int kind_excluded(int party_kind, unsigned char entry_kind)
{
    if (party_kind == PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_PERSON) {
        return entry_kind != 0;
    }
    if (party_kind == PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_ORGANIZATION) {
        return entry_kind == 0;
    }
    return 0;
}

static int screen_name(const sx_index *x, const P(Party) * party, const char *name,
                       const sx_config *cfg, int naive, sx_hit *hits, int n, int max,
                       uint32_t *tok_count, uint32_t *name_seen, uint32_t stamp, query *q)
{
    char norm[512];
    int person = party->kind != PAYWIRE__COMPLIANCE__V1__PARTY_KIND__PARTY_KIND_ORGANIZATION;
    q->nq = names_normalize(name, person, norm, sizeof(norm));
    if (q->nq == 0) {
        return n;
    }
    const char *s = norm;
    for (int i = 0; i < q->nq; i++) {
        const char *e = strchr(s, ' ');
        q->qt[i] = s;
        q->ql[i] = e ? (size_t)(e - s) : strlen(s);
        q->qw[i] = (double)q->ql[i];
        s += q->ql[i] + (e ? 1 : 0);
    }
    q->naive = naive;
    q->stamp = stamp;
    if (naive) {
        for (size_t k = 0; k < x->nnames; k++) {
            if (kind_excluded(party->kind, x->entry_kind[x->names[k].entry])) {
                continue;
            }
            sx_hit h = {x->names[k].entry, x->names[k].raw, "name", score_name(q, &x->names[k]), 0};
            if (h.score >= cfg->potential - 50) {
                judge(x, party, cfg, &h);
                if (h.outcome != OUTCOME(CLEAR)) {
                    n = keep(hits, n, max, &h);
                }
            }
        }
        return n;
    }
    /* Candidate tokens: those sharing enough trigrams with a query token, then compared. */
    q->nsim = 0;
    int ncand = 0;
    for (int i = 0; i < q->nq; i++) {
        uint32_t tri[64];
        int k = trigrams(q->qt[i], q->ql[i], tri, 64);
        /* A changed character removes up to three trigrams: short tokens need one in common. */
        int need = k <= 5 ? 1 : (k + 2) / 3 - 1;
        uint32_t tstamp = (stamp + 1 + (uint32_t)i) & 0xffffff;
        uint32_t touched[8192];
        int nt = 0;
        for (int t = 0; t < k; t++) {
            size_t lo = 0, hi = x->ntri;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (x->tri_key[mid] < tri[t]) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if (lo == x->ntri || x->tri_key[lo] != tri[t]) {
                continue;
            }
            for (uint32_t p = x->tri_off[lo]; p < x->tri_off[lo + 1]; p++) {
                uint32_t tok = x->tri_tok[p];
                if ((tok_count[tok] >> 8) != tstamp) {
                    tok_count[tok] = tstamp << 8;
                    if (nt < (int)(sizeof(touched) / sizeof(touched[0]))) {
                        touched[nt++] = tok;
                    }
                }
                if ((tok_count[tok] & 0xff) < 0xff) {
                    tok_count[tok]++;
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            uint32_t tok = touched[t];
            if ((int)(tok_count[tok] & 0xff) < need) {
                continue;
            }
            double v =
                names_jaro_winkler(q->qt[i], q->ql[i], x->pool + x->tok_off[tok], x->tok_len[tok]);
            if (v < NAMES_TOKEN_FLOOR) {
                continue;
            }
            if (q->slot_stamp[tok] != q->stamp) {
                if (q->nsim == MAX_SIMILAR) {
                    continue;
                }
                q->slot_stamp[tok] = q->stamp;
                q->slot[tok] = (uint32_t)q->nsim;
                memset(q->sim[q->nsim], 0, sizeof(q->sim[0]));
                q->nsim++;
                for (uint32_t p = x->tn_off[tok]; p < x->tn_off[tok + 1]; p++) {
                    uint32_t nm = x->tn[p];
                    if (name_seen[nm] != q->stamp && ncand < MAX_CANDIDATES) {
                        name_seen[nm] = q->stamp;
                        q->cands[ncand++] = nm;
                    }
                }
            }
            q->sim[q->slot[tok]][i] = (float)v;
        }
    }
    for (int c = 0; c < ncand; c++) {
        const sx_name *nm = &x->names[q->cands[c]];
        if (kind_excluded(party->kind, x->entry_kind[nm->entry])) {
            continue;
        }
        sx_hit h = {nm->entry, nm->raw, "name", score_name(q, nm), 0};
        if (h.score + 50 >= cfg->potential) {
            judge(x, party, cfg, &h);
            if (h.outcome != OUTCOME(CLEAR)) {
                n = keep(hits, n, max, &h);
            }
        }
    }
    return n;
}

static int screen_address(const sx_index *x, const char *address, sx_hit *hits, int n, int max)
{
    char norm[136];
    sx_address_normalize(address, norm, sizeof(norm));
    size_t lo = 0, hi = x->naddrs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(x->addrs[mid].norm, norm) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (; lo < x->naddrs && strcmp(x->addrs[lo].norm, norm) == 0; lo++) {
        sx_hit h = {x->addrs[lo].entry, x->addrs[lo].raw, "wallet", 1000, OUTCOME(MATCH)};
        n = keep(hits, n, max, &h);
    }
    return n;
}

static int cmp_hit(const void *a, const void *b)
{
    const sx_hit *x = a, *y = b;
    if (x->outcome != y->outcome) {
        return y->outcome - x->outcome;
    }
    return (int)y->score - (int)x->score;
}

int sx_index_screen(const sx_index *x, const P(Party) * party, const sx_config *cfg, int naive,
                    sx_hit *hits, int max, int *outcome)
{
    int n = 0;
    for (size_t i = 0; i < party->n_wallets; i++) {
        n = screen_address(x, party->wallets[i]->address, hits, n, max);
    }
    for (size_t i = 0; i < party->n_digital_currency_addresses; i++) {
        n = screen_address(x, party->digital_currency_addresses[i]->address, hits, n, max);
    }
    if (party->n_names > 0) {
        /* Per-query scratch, marked with stamps instead of cleared. */
        uint32_t *tok_count = pw_calloc(x->ntok + 1, sizeof(uint32_t));
        uint32_t *name_seen = pw_calloc(x->nnames + 1, sizeof(uint32_t));
        query *q = pw_calloc(1, sizeof(*q));
        PW_ASSERT(tok_count != NULL && name_seen != NULL && q != NULL);
        q->x = x;
        q->slot = pw_malloc((x->ntok + 1) * sizeof(uint32_t));
        q->slot_stamp = pw_calloc(x->ntok + 1, sizeof(uint32_t));
        q->sim = pw_malloc(MAX_SIMILAR * sizeof(*q->sim));
        q->cands = pw_malloc(MAX_CANDIDATES * sizeof(uint32_t));
        PW_ASSERT(q->slot != NULL && q->slot_stamp != NULL && q->sim != NULL && q->cands != NULL);
        uint32_t stamp = 1;
        for (size_t i = 0; i < party->n_names && i < MAX_QUERY_NAMES; i++) {
            n = screen_name(x, party, party->names[i], cfg, naive, hits, n, max, tok_count,
                            name_seen, stamp, q);
            stamp += 64;
        }
        pw_free(q->slot);
        pw_free(q->slot_stamp);
        pw_free(q->sim);
        pw_free(q->cands);
        pw_free(q);
        pw_free(tok_count);
        pw_free(name_seen);
    }
    qsort(hits, (size_t)n, sizeof(*hits), cmp_hit);
    *outcome = n > 0 ? hits[0].outcome : OUTCOME(CLEAR);
    return n;
}
