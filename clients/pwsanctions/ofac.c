/*
 * ofac.c: the OFAC SDN legacy CSV files into SanctionsEntry messages (see
 * ofac.h). Everything a read makes lives in one arena freed with the list.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <paywire/alloc.h>
#include "ofac.h"

#define P(x) Paywire__Compliance__V1__##x

/* ---- the arena ---- */

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[];
} block;

typedef struct entry_caps {
    size_t names, countries, dobs, dcas, programs;
} entry_caps;

struct ofac_list {
    block *blocks;
    int oom;
    P(SanctionsEntry) * *entries;
    entry_caps *caps;
    size_t n, cap;
    /* ent_num → index + 1 (0: none). */
    int *by_num;
    size_t by_num_len;
    ofac_stats stats;
    ofac_report_cb report;
    void *report_ud;
    /* Remarks per entry (sdn.csv's, then the continuation from sdn_comments.csv), parsed last. */
    char **remarks_of;
};

static void *arena_alloc(ofac_list *l, size_t size)
{
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    block *b = l->blocks;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        b = pw_malloc(sizeof(block) + cap);
        if (b == NULL) {
            l->oom = 1;
            return NULL;
        }
        b->next = l->blocks;
        b->used = 0;
        b->cap = cap;
        l->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

static char *arena_strndup(ofac_list *l, const char *s, size_t n)
{
    char *p = arena_alloc(l, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Appends item to *arr (n items, room for *cap), growing it in the arena. 0 on out-of-memory. */
static int push(ofac_list *l, void ***arr, size_t *n, size_t *cap, void *item)
{
    if (item == NULL) {
        return 0;
    }
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        void **g = arena_alloc(l, sizeof(void *) * ncap);
        if (g == NULL) {
            return 0;
        }
        if (*n > 0) {
            memcpy(g, *arr, sizeof(void *) * *n);
        }
        *arr = g;
        *cap = ncap;
    }
    (*arr)[(*n)++] = item;
    return 1;
}

#define PUSH(l, msg, field, capfield, item) \
    push((l), (void ***)&(msg)->field, &(msg)->n_##field, &(capfield), (item))

/* ---- countries as OFAC writes them ---- */

static const char *const country_table[][2] = {
    {"Afghanistan", "AF"},
    {"Albania", "AL"},
    {"Algeria", "DZ"},
    {"Angola", "AO"},
    {"Argentina", "AR"},
    {"Armenia", "AM"},
    {"Aruba", "AW"},
    {"Australia", "AU"},
    {"Austria", "AT"},
    {"Azerbaijan", "AZ"},
    {"Bahamas, The", "BS"},
    {"Bahrain", "BH"},
    {"Bangladesh", "BD"},
    {"Barbados", "BB"},
    {"Belarus", "BY"},
    {"Belgium", "BE"},
    {"Belize", "BZ"},
    {"Benin", "BJ"},
    {"Bolivia", "BO"},
    {"Bosnia and Herzegovina", "BA"},
    {"Brazil", "BR"},
    {"Brunei", "BN"},
    {"Bulgaria", "BG"},
    {"Burkina Faso", "BF"},
    {"Burma", "MM"},
    {"Burundi", "BI"},
    {"Cabo Verde", "CV"},
    {"Cambodia", "KH"},
    {"Cameroon", "CM"},
    {"Canada", "CA"},
    {"Cayman Islands", "KY"},
    {"Central African Republic", "CF"},
    {"Chad", "TD"},
    {"Chile", "CL"},
    {"China", "CN"},
    {"Colombia", "CO"},
    {"Comoros", "KM"},
    {"Congo, Democratic Republic of the", "CD"},
    {"Congo, Republic of the", "CG"},
    {"Costa Rica", "CR"},
    {"Cote d Ivoire", "CI"},
    {"Croatia", "HR"},
    {"Cuba", "CU"},
    {"Cyprus", "CY"},
    {"Czech Republic", "CZ"},
    {"Denmark", "DK"},
    {"Dominica", "DM"},
    {"Dominican Republic", "DO"},
    {"Ecuador", "EC"},
    {"Egypt", "EG"},
    {"El Salvador", "SV"},
    {"Equatorial Guinea", "GQ"},
    {"Eritrea", "ER"},
    {"Ethiopia", "ET"},
    {"Finland", "FI"},
    {"France", "FR"},
    {"Georgia", "GE"},
    {"Germany", "DE"},
    {"Ghana", "GH"},
    {"Gibraltar", "GI"},
    {"Greece", "GR"},
    {"Guatemala", "GT"},
    {"Guinea", "GN"},
    {"Guinea-Bissau", "GW"},
    {"Guyana", "GY"},
    {"Haiti", "HT"},
    {"Honduras", "HN"},
    {"Hong Kong", "HK"},
    {"India", "IN"},
    {"Indonesia", "ID"},
    {"Iran", "IR"},
    {"Iraq", "IQ"},
    {"Ireland", "IE"},
    {"Israel", "IL"},
    {"Italy", "IT"},
    {"Jamaica", "JM"},
    {"Japan", "JP"},
    {"Jersey", "JE"},
    {"Jordan", "JO"},
    {"Kazakhstan", "KZ"},
    {"Kenya", "KE"},
    {"Korea, North", "KP"},
    {"Korea, South", "KR"},
    {"Kuwait", "KW"},
    {"Kyrgyzstan", "KG"},
    {"Laos", "LA"},
    {"Latvia", "LV"},
    {"Lebanon", "LB"},
    {"Liberia", "LR"},
    {"Libya", "LY"},
    {"Liechtenstein", "LI"},
    {"Luxembourg", "LU"},
    {"Macau", "MO"},
    {"Macedonia, The Former Yugoslav Republic of", "MK"},
    {"Malaysia", "MY"},
    {"Maldives", "MV"},
    {"Mali", "ML"},
    {"Malta", "MT"},
    {"Marshall Islands", "MH"},
    {"Mauritania", "MR"},
    {"Mexico", "MX"},
    {"Moldova", "MD"},
    {"Mongolia", "MN"},
    {"Montenegro", "ME"},
    {"Morocco", "MA"},
    {"Mozambique", "MZ"},
    {"Namibia", "NA"},
    {"Netherlands", "NL"},
    {"Netherlands Antilles", "CW"},
    {"New Zealand", "NZ"},
    {"Nicaragua", "NI"},
    {"Niger", "NE"},
    {"Nigeria", "NG"},
    {"Norway", "NO"},
    {"Oman", "OM"},
    {"Pakistan", "PK"},
    {"Palau", "PW"},
    {"Palestinian", "PS"},
    {"Panama", "PA"},
    {"Paraguay", "PY"},
    {"Peru", "PE"},
    {"Philippines", "PH"},
    {"Poland", "PL"},
    {"Qatar", "QA"},
    {"Region: Crimea", "UA"},
    {"Region: Gaza", "PS"},
    {"Region: Northern Mali", "ML"},
    {"Romania", "RO"},
    {"Russia", "RU"},
    {"Rwanda", "RW"},
    {"Saint Kitts and Nevis", "KN"},
    {"Saint Vincent and the Grenadines", "VC"},
    {"Samoa", "WS"},
    {"Saudi Arabia", "SA"},
    {"Senegal", "SN"},
    {"Serbia", "RS"},
    {"Seychelles", "SC"},
    {"Sierra Leone", "SL"},
    {"Singapore", "SG"},
    {"Slovakia", "SK"},
    {"Slovenia", "SI"},
    {"Somalia", "SO"},
    {"South Africa", "ZA"},
    {"South Sudan", "SS"},
    {"Spain", "ES"},
    {"Sri Lanka", "LK"},
    {"Sudan", "SD"},
    {"Sweden", "SE"},
    {"Switzerland", "CH"},
    {"Syria", "SY"},
    {"Taiwan", "TW"},
    {"Tajikistan", "TJ"},
    {"Tanzania", "TZ"},
    {"Thailand", "TH"},
    {"The Gambia", "GM"},
    {"Trinidad and Tobago", "TT"},
    {"Tunisia", "TN"},
    {"Turkey", "TR"},
    {"Turkmenistan", "TM"},
    {"Uganda", "UG"},
    {"Ukraine", "UA"},
    {"United Arab Emirates", "AE"},
    {"United Kingdom", "GB"},
    {"United States", "US"},
    {"Uruguay", "UY"},
    {"Uzbekistan", "UZ"},
    {"Vanuatu", "VU"},
    {"Venezuela", "VE"},
    {"Vietnam", "VN"},
    {"Virgin Islands, British", "VG"},
    {"West Bank", "PS"},
    {"Yemen", "YE"},
    {"Zimbabwe", "ZW"},
};

const char *ofac_country_code(const char *name)
{
    for (size_t i = 0; i < sizeof(country_table) / sizeof(country_table[0]); i++) {
        if (strcmp(country_table[i][0], name) == 0) {
            return country_table[i][1];
        }
    }
    return NULL;
}

static void add_country(ofac_list *l, size_t idx, const char *name)
{
    const char *code = ofac_country_code(name);
    if (code == NULL) {
        l->stats.unmapped_countries++;
        return;
    }
    P(SanctionsEntry) *e = l->entries[idx];
    for (size_t i = 0; i < e->n_countries; i++) {
        if (strcmp(e->countries[i], code) == 0) {
            return;
        }
    }
    PUSH(l, e, countries, l->caps[idx].countries, (void *)code);
}

/* ---- CSV ---- */

#define MAX_FIELDS 16

typedef struct row {
    int n;
    char *f[MAX_FIELDS];
} row;

/* Splits one line (NUL-terminated, modified in place) into fields: quoted text, or bare
 * values; "-0-" (OFAC's empty) becomes "". NULL when well formed, else why not. */
static const char *split_row(char *line, row *out)
{
    out->n = 0;
    char *p = line;
    for (;;) {
        if (out->n == MAX_FIELDS) {
            return "too many fields";
        }
        char *start;
        if (*p == '"') {
            start = ++p;
            char *w = p;
            for (;;) {
                if (*p == '\0') {
                    return "unterminated quoted field";
                }
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
            *w = '\0';
            while (*p == ' ') {
                p++;
            }
            if (*p != ',' && *p != '\0') {
                return "text after a closing quote";
            }
        } else {
            start = p;
            while (*p != ',' && *p != '\0') {
                p++;
            }
            char *end = p;
            while (end > start && end[-1] == ' ') {
                end--;
            }
            char c = *p;
            *end = '\0';
            if (strcmp(start, "-0-") == 0) {
                *start = '\0';
            }
            *p = c == ',' ? ',' : '\0';
        }
        out->f[out->n++] = start;
        if (*p == '\0') {
            return NULL;
        }
        *p++ = '\0';
    }
}

static char *read_file(const char *dir, const char *name, size_t *len, char *err, size_t err_len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? pw_malloc((size_t)n + 1) : NULL;
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, err_len, "%s: cannot read", path);
        pw_free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

typedef void (*row_fn)(ofac_list *l, const char *file, int line, row *r);

/* Calls fn for each line of the file (CRLF, a final Ctrl-Z line). */
static void each_row(ofac_list *l, const char *file, char *text, int fields, row_fn fn)
{
    int line = 0;
    for (char *p = text; *p != '\0' && !l->oom;) {
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl) {
            *nl = '\0';
        }
        line++;
        size_t n = strlen(p);
        if (n > 0 && p[n - 1] == '\r') {
            p[--n] = '\0';
        }
        if (n == 0 || (n == 1 && p[0] == 0x1a)) {
            p = next;
            continue;
        }
        row r;
        const char *why = split_row(p, &r);
        char msg[96];
        if (why == NULL && r.n != fields) {
            snprintf(msg, sizeof(msg), "%d fields, %d expected", r.n, fields);
            why = msg;
        }
        if (why != NULL) {
            l->stats.malformed++;
            if (l->report) {
                l->report(file, line, why, l->report_ud);
            }
        } else {
            fn(l, file, line, &r);
        }
        p = next;
    }
}

static void malformed(ofac_list *l, const char *file, int line, const char *why)
{
    l->stats.malformed++;
    if (l->report) {
        l->report(file, line, why, l->report_ud);
    }
}

/* The entry of an ent_num field, or -1 (reported) when it is not a number or not listed. */
static long entry_of(ofac_list *l, const char *file, int line, const char *num, int must_exist)
{
    char *end;
    long v = strtol(num, &end, 10);
    if (*num == '\0' || *end != '\0' || v <= 0 || v > 10000000) {
        malformed(l, file, line, "ent_num is not a positive number");
        return -1;
    }
    if (!must_exist) {
        return v;
    }
    if ((size_t)v >= l->by_num_len || l->by_num[v] == 0) {
        malformed(l, file, line, "ent_num is not an entry of sdn.csv");
        return -1;
    }
    return l->by_num[v] - 1;
}

/* ---- remarks ---- */

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* One date at *s ("10 Dec 1948", "Mar 1967", "1960", "circa 1955") as "1948-12-10", "1967-03",
 * "1960"; advances *s. 0 when there is none. */
static int parse_date(const char **s, char out[16])
{
    const char *p = *s;
    if (strncmp(p, "circa ", 6) == 0) {
        p += 6;
    }
    int day = 0, month = 0, year = 0;
    if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) && p[2] == ' ') {
        day = (p[0] - '0') * 10 + (p[1] - '0');
        p += 3;
    }
    for (int m = 0; m < 12; m++) {
        if (strncmp(p, months[m], 3) == 0 && p[3] == ' ') {
            month = m + 1;
            p += 4;
            break;
        }
    }
    if (!(isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
          isdigit((unsigned char)p[2]) && isdigit((unsigned char)p[3])) ||
        isdigit((unsigned char)p[4]) || (day && !month)) {
        return 0;
    }
    year = atoi(p);
    p += 4;
    if (day) {
        snprintf(out, 16, "%04d-%02d-%02d", year % 10000, month % 100, day % 100);
    } else if (month) {
        snprintf(out, 16, "%04d-%02d", year % 10000, month % 100);
    } else {
        snprintf(out, 16, "%04d", year % 10000);
    }
    *s = p;
    return 1;
}

static void add_dob(ofac_list *l, size_t idx, const char *text)
{
    char a[16], b[16], v[40];
    const char *p = text;
    if (!parse_date(&p, a)) {
        return;
    }
    if (strncmp(p, " to ", 4) == 0) {
        p += 4;
        if (parse_date(&p, b)) {
            snprintf(v, sizeof(v), "%s/%s", a, b);
        } else {
            snprintf(v, sizeof(v), "%s", a);
        }
    } else {
        snprintf(v, sizeof(v), "%s", a);
    }
    P(SanctionsEntry) *e = l->entries[idx];
    if (PUSH(l, e, dates_of_birth, l->caps[idx].dobs, arena_strndup(l, v, strlen(v)))) {
        l->stats.dates_of_birth++;
    }
}

static void add_dca(ofac_list *l, size_t idx, const char *text)
{
    /* "XBT 12QtD5BFwRsdNsAZY76UVE1xyCGNTojH9h" */
    const char *sp = strchr(text, ' ');
    if (sp == NULL || sp == text) {
        return;
    }
    const char *a = sp + 1, *end = a;
    while (*end != '\0' && *end != ' ' && *end != '.' && *end != ';') {
        end++;
    }
    if (end == a) {
        return;
    }
    P(DigitalCurrencyAddress) *d = arena_alloc(l, sizeof(*d));
    if (d == NULL) {
        return;
    }
    paywire__compliance__v1__digital_currency_address__init(d);
    d->currency = arena_strndup(l, text, (size_t)(sp - text));
    d->address = arena_strndup(l, a, (size_t)(end - a));
    P(SanctionsEntry) *e = l->entries[idx];
    if (d->currency && d->address && PUSH(l, e, digital_currency_addresses, l->caps[idx].dcas, d)) {
        l->stats.digital_currency_addresses++;
    }
}

/* The ;-separated clauses of the remarks: dates of birth, nationalities, citizenships and
 * digital currency addresses. */
static void parse_remarks(ofac_list *l, size_t idx, const char *remarks)
{
    char *copy = arena_strndup(l, remarks, strlen(remarks));
    if (copy == NULL) {
        return;
    }
    for (char *save = NULL, *c = strtok_r(copy, ";", &save); c; c = strtok_r(NULL, ";", &save)) {
        while (*c == ' ') {
            c++;
        }
        size_t n = strlen(c);
        while (n > 0 && (c[n - 1] == '.' || c[n - 1] == ' ')) {
            c[--n] = '\0';
        }
        if (strncmp(c, "alt. ", 5) == 0) {
            c += 5;
        }
        if (strncmp(c, "DOB ", 4) == 0) {
            add_dob(l, idx, c + 4);
        } else if (strncmp(c, "nationality ", 12) == 0) {
            add_country(l, idx, c + 12);
        } else if (strncmp(c, "citizen ", 8) == 0) {
            add_country(l, idx, c + 8);
        } else if (strncmp(c, "Digital Currency Address - ", 27) == 0) {
            add_dca(l, idx, c + 27);
        }
    }
}

/* ---- the files ---- */

static void sdn_row(ofac_list *l, const char *file, int line, row *r)
{
    long num = entry_of(l, file, line, r->f[0], 0);
    if (num < 0) {
        return;
    }
    if (r->f[1][0] == '\0') {
        malformed(l, file, line, "no name");
        return;
    }
    if ((size_t)num >= l->by_num_len) {
        size_t len = l->by_num_len ? l->by_num_len : 1024;
        while (len <= (size_t)num) {
            len *= 2;
        }
        int *g = pw_realloc(l->by_num, len * sizeof(int));
        if (g == NULL) {
            l->oom = 1;
            return;
        }
        memset(g + l->by_num_len, 0, (len - l->by_num_len) * sizeof(int));
        l->by_num = g;
        l->by_num_len = len;
    }
    if (l->by_num[num] != 0) {
        malformed(l, file, line, "ent_num repeats an earlier entry");
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        P(SanctionsEntry) **g = pw_realloc(l->entries, cap * sizeof(*g));
        entry_caps *c = g ? pw_realloc(l->caps, cap * sizeof(*c)) : NULL;
        if (g != NULL) {
            l->entries = g;
        }
        if (c == NULL) {
            l->oom = 1;
            return;
        }
        l->caps = c;
        l->cap = cap;
    }
    P(SanctionsEntry) *e = arena_alloc(l, sizeof(*e));
    if (e == NULL) {
        return;
    }
    paywire__compliance__v1__sanctions_entry__init(e);
    size_t idx = l->n++;
    l->entries[idx] = e;
    memset(&l->caps[idx], 0, sizeof(l->caps[idx]));
    l->by_num[num] = (int)idx + 1;
    e->entry_id = arena_strndup(l, r->f[0], strlen(r->f[0]));
    e->type = r->f[2][0] ? arena_strndup(l, r->f[2], strlen(r->f[2])) : "entity";
    PUSH(l, e, names, l->caps[idx].names, arena_strndup(l, r->f[1], strlen(r->f[1])));
    char *prog = arena_strndup(l, r->f[3], strlen(r->f[3]));
    for (char *p = prog; p && *p;) {
        char *sep = strstr(p, "] [");
        if (sep) {
            *sep = '\0';
        }
        PUSH(l, e, programs, l->caps[idx].programs, p);
        p = sep ? sep + 3 : NULL;
    }
    l->stats.entries++;
}

static void alt_row(ofac_list *l, const char *file, int line, row *r)
{
    long idx = entry_of(l, file, line, r->f[0], 1);
    if (idx < 0) {
        return;
    }
    if (r->f[3][0] == '\0') {
        malformed(l, file, line, "alias without a name");
        return;
    }
    P(SanctionsEntry) *e = l->entries[idx];
    if (PUSH(l, e, names, l->caps[idx].names, arena_strndup(l, r->f[3], strlen(r->f[3])))) {
        l->stats.aliases++;
    }
}

static void add_row(ofac_list *l, const char *file, int line, row *r)
{
    long idx = entry_of(l, file, line, r->f[0], 1);
    if (idx < 0) {
        return;
    }
    l->stats.addresses++;
    if (r->f[4][0] != '\0') {
        add_country(l, (size_t)idx, r->f[4]);
    }
}

static void sdn_remarks_row(ofac_list *l, const char *file, int line, row *r)
{
    (void)file;
    (void)line;
    char *end;
    long num = strtol(r->f[0], &end, 10);
    if (*end != '\0' || num <= 0 || (size_t)num >= l->by_num_len || l->by_num[num] == 0) {
        return; /* reported by sdn_row */
    }
    size_t idx = (size_t)l->by_num[num] - 1;
    if (l->remarks_of[idx] == NULL) {
        l->remarks_of[idx] = arena_strndup(l, r->f[11], strlen(r->f[11]));
    }
}

static void comment_row(ofac_list *l, const char *file, int line, row *r)
{
    long idx = entry_of(l, file, line, r->f[0], 1);
    if (idx < 0) {
        return;
    }
    const char *before = l->remarks_of[idx] ? l->remarks_of[idx] : "";
    size_t a = strlen(before), b = strlen(r->f[1]);
    char *joined = arena_alloc(l, a + b + 1);
    if (joined == NULL) {
        return;
    }
    /* The continuation goes on mid-word ("Digital Currency Addres" + "s - ETH ..."). */
    memcpy(joined, before, a);
    memcpy(joined + a, r->f[1], b);
    l->remarks_of[idx] = joined;
    l->stats.comments++;
}

pw_status ofac_list_read(ofac_list **out, const char *dir, ofac_report_cb report, void *user_data,
                         char *err, size_t err_len)
{
    *out = NULL;
    static const char *const names[] = {"sdn.csv", "alt.csv", "add.csv", "sdn_comments.csv"};
    char *text[4] = {0}, *again = NULL;
    size_t len[4];
    for (int i = 0; i < 4; i++) {
        text[i] = read_file(dir, names[i], &len[i], err, err_len);
        if (text[i] == NULL) {
            for (int k = 0; k < i; k++) {
                pw_free(text[k]);
            }
            return PW_NOT_FOUND;
        }
    }
    ofac_list *l = pw_calloc(1, sizeof(*l));
    if (l == NULL || (again = pw_malloc(len[0] + 1)) == NULL) {
        pw_free(l);
        for (int k = 0; k < 4; k++) {
            pw_free(text[k]);
        }
        return PW_ERRNO(ENOMEM);
    }
    memcpy(again, text[0], len[0] + 1); /* split_row writes into the text: a second copy */
    l->report = report;
    l->report_ud = user_data;
    each_row(l, "sdn.csv", text[0], 12, sdn_row);
    each_row(l, "alt.csv", text[1], 5, alt_row);
    each_row(l, "add.csv", text[2], 6, add_row);
    l->remarks_of = l->n ? pw_calloc(l->n, sizeof(char *)) : NULL;
    if (l->n && l->remarks_of == NULL) {
        l->oom = 1;
    } else {
        /* Rows already reported once are not reported again. */
        ofac_report_cb saved = l->report;
        size_t bad = l->stats.malformed;
        l->report = NULL;
        each_row(l, "sdn.csv", again, 12, sdn_remarks_row);
        l->report = saved;
        l->stats.malformed = bad;
        each_row(l, "sdn_comments.csv", text[3], 2, comment_row);
        for (size_t i = 0; i < l->n && !l->oom; i++) {
            if (l->remarks_of[i] != NULL) {
                parse_remarks(l, i, l->remarks_of[i]);
            }
        }
    }
    pw_free(l->remarks_of);
    l->remarks_of = NULL;
    pw_free(again);
    for (int k = 0; k < 4; k++) {
        pw_free(text[k]);
    }
    if (l->oom) {
        ofac_list_free(l);
        return PW_ERRNO(ENOMEM);
    }
    *out = l;
    return PW_OK;
}

P(SanctionsEntry) *const *ofac_list_entries(const ofac_list *l, size_t *n)
{
    *n = l->n;
    return l->entries;
}

const ofac_stats *ofac_list_stats(const ofac_list *l)
{
    return &l->stats;
}

void ofac_list_free(ofac_list *l)
{
    if (l == NULL) {
        return;
    }
    for (block *b = l->blocks, *next; b != NULL; b = next) {
        next = b->next;
        pw_free(b);
    }
    pw_free(l->entries);
    pw_free(l->caps);
    pw_free(l->by_num);
    pw_free(l);
}
