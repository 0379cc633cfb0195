/*
 * jcs.c: RFC 8785 canonical JSON for the audit chain (docs/design/compliance.md).
 * A recursive-descent parser that writes the canonical form as it reads:
 * strings are decoded and re-escaped minimally, integers are checked and
 * written in their shortest form, and each object's members are collected,
 * sorted by the UTF-16 code units of their names and checked for duplicates.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "jcs.h"

#define MAX_DEPTH 64

/* ---- UTF-8 ---- */

/* Decodes one code point at p (< end); returns its length, 0 when invalid (overlong,
 * surrogate, above U+10FFFF, truncated). */
static size_t utf8_next(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return n;
}

int jcs_utf8_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        uint32_t cp = 0;
        size_t n = utf8_next(p, end, &cp);
        if (n == 0 || cp == 0) {
            return 0;
        }
        p += n;
    }
    return 1;
}

static pw_status utf8_put(pw_buf *b, uint32_t cp)
{
    unsigned char s[4];
    size_t n;
    if (cp < 0x80) {
        s[0] = (unsigned char)cp, n = 1;
    } else if (cp < 0x800) {
        s[0] = (unsigned char)(0xc0 | (cp >> 6)), s[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        s[0] = (unsigned char)(0xe0 | (cp >> 12));
        s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        s[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        s[0] = (unsigned char)(0xf0 | (cp >> 18));
        s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        s[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return pw_buf_append(b, s, n);
}

/* The UTF-16 code units of a UTF-8 string, one at a time (member order of RFC 8785 §3.2.3). */
typedef struct utf16_iter {
    const unsigned char *p, *end;
    uint16_t low;
} utf16_iter;

/* The next unit, or -1 at the end. Input was validated when it was parsed. */
static int utf16_next(utf16_iter *it)
{
    if (it->low) {
        int u = it->low;
        it->low = 0;
        return u;
    }
    if (it->p >= it->end) {
        return -1;
    }
    uint32_t cp = 0;
    size_t n = utf8_next(it->p, it->end, &cp);
    it->p += n ? n : 1;
    if (cp < 0x10000) {
        return (int)cp;
    }
    cp -= 0x10000;
    it->low = (uint16_t)(0xdc00 + (cp & 0x3ff));
    return (int)(0xd800 + (cp >> 10));
}

static int utf16_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    a = a ? a : ""; /* an empty pw_buf has no storage */
    b = b ? b : "";
    utf16_iter x = {(const unsigned char *)a, (const unsigned char *)a + alen, 0};
    utf16_iter y = {(const unsigned char *)b, (const unsigned char *)b + blen, 0};
    for (;;) {
        int u = utf16_next(&x), v = utf16_next(&y);
        if (u != v) {
            return u < v ? -1 : 1;
        }
        if (u < 0) {
            return 0;
        }
    }
}

/* ---- output ---- */

pw_status jcs_string(pw_buf *out, const char *s, size_t len)
{
    pw_status rv = pw_buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed before an escape */
    for (size_t i = 0; rv == PW_OK && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof(u), "\\u%04x", c);
                esc = u;
            }
        }
        if (esc == NULL) {
            run++;
            continue;
        }
        if (run > 0) {
            rv = pw_buf_append(out, s + i - run, run);
        }
        run = 0;
        if (rv == PW_OK) {
            rv = pw_buf_append(out, esc, strlen(esc));
        }
    }
    if (rv == PW_OK && run > 0) {
        rv = pw_buf_append(out, s + len - run, run);
    }
    return rv == PW_OK ? pw_buf_append(out, "\"", 1) : rv;
}

/* ---- the parser ---- */

typedef struct parser {
    const char *start;
    const char *p;
    const char *end;
    char *err;
    size_t err_len;
    int depth;
} parser;

static pw_status bad(parser *ps, const char *what)
{
    snprintf(ps->err, ps->err_len, "%s at byte %zu", what, (size_t)(ps->p - ps->start));
    return PW_INVALID_ARGUMENT;
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) {
        ps->p++;
    }
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return 0;
        }
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 1;
}

/* A string at ps->p (at its opening quote), decoded into out as UTF-8. */
static pw_status parse_string(parser *ps, pw_buf *out)
{
    ps->p++;
    for (;;) {
        if (ps->p >= ps->end) {
            return bad(ps, "unterminated string");
        }
        unsigned char c = (unsigned char)*ps->p;
        pw_status rv = PW_OK;
        if (c == '"') {
            ps->p++;
            return PW_OK;
        } else if (c < 0x20) {
            return bad(ps, "control character in a string");
        } else if (c == '\\') {
            if (ps->end - ps->p < 2) {
                return bad(ps, "unterminated escape");
            }
            char e = ps->p[1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e != '\0' && simple != NULL) {
                static const char map[] = "\"\\/\b\f\n\r\t";
                rv = pw_buf_append(out, &map[simple - "\"\\/bfnrt"], 1);
                ps->p += 2;
            } else if (e == 'u') {
                uint32_t cp;
                if (ps->end - ps->p < 6 || !hex4(ps->p + 2, &cp)) {
                    return bad(ps, "malformed \\u escape");
                }
                ps->p += 6;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
                        !hex4(ps->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                        return bad(ps, "lone surrogate in a \\u escape (not I-JSON)");
                    }
                    ps->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return bad(ps, "lone surrogate in a \\u escape (not I-JSON)");
                } else if (cp == 0) {
                    return bad(ps, "\\u0000 in a string (not storable)");
                }
                rv = utf8_put(out, cp);
            } else {
                return bad(ps, "unknown escape");
            }
        } else {
            uint32_t cp;
            size_t n = utf8_next((const unsigned char *)ps->p, (const unsigned char *)ps->end, &cp);
            if (n == 0) {
                return bad(ps, "invalid UTF-8");
            }
            rv = pw_buf_append(out, ps->p, n);
            ps->p += n;
        }
        if (rv != PW_OK) {
            return rv;
        }
    }
}

/* An integer within ±(2^53 − 1); anything with a fraction or exponent is refused. */
static pw_status parse_number(parser *ps, pw_buf *out)
{
    int neg = 0;
    if (*ps->p == '-') {
        neg = 1;
        ps->p++;
    }
    const char *digits = ps->p;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        return bad(ps, "malformed number");
    }
    if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9') {
        return bad(ps, "leading zero in a number");
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E')) {
        return bad(ps, "numbers must be integers (amounts in minor units, or strings)");
    }
    size_t n = (size_t)(ps->p - digits);
    uint64_t v = 0;
    for (size_t i = 0; i < n && v <= 9007199254740991ULL; i++) {
        v = v * 10 + (uint64_t)(digits[i] - '0');
    }
    if (n > 16 || v > 9007199254740991ULL) {
        return bad(ps, "integer outside +-(2^53 - 1)");
    }
    char s[24];
    int len = snprintf(s, sizeof(s), "%s%llu", neg && v != 0 ? "-" : "", (unsigned long long)v);
    return pw_buf_append(out, s, (size_t)len);
}

static pw_status parse_value(parser *ps, pw_buf *out);

typedef struct member {
    pw_buf name;
    pw_buf value;
} member;

static int member_cmp(const void *a, const void *b)
{
    const member *x = a, *y = b;
    return utf16_cmp((const char *)x->name.data, x->name.len, (const char *)y->name.data,
                     y->name.len);
}

static pw_status parse_object(parser *ps, pw_buf *out)
{
    member *m = NULL;
    size_t n = 0, cap = 0;
    pw_status rv = PW_OK;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
    } else {
        for (;;) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"') {
                rv = bad(ps, "expected a member name");
                break;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                member *g = pw_realloc(m, ncap * sizeof(*m));
                if (g == NULL) {
                    rv = PW_ERRNO(ENOMEM);
                    break;
                }
                m = g;
                cap = ncap;
            }
            memset(&m[n], 0, sizeof(m[n]));
            n++;
            if ((rv = parse_string(ps, &m[n - 1].name)) != PW_OK) {
                break;
            }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                rv = bad(ps, "expected ':'");
                break;
            }
            ps->p++;
            if ((rv = parse_value(ps, &m[n - 1].value)) != PW_OK) {
                break;
            }
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == '}') {
                ps->p++;
                break;
            }
            rv = bad(ps, "expected ',' or '}'");
            break;
        }
    }
    if (rv == PW_OK && n > 1) {
        qsort(m, n, sizeof(*m), member_cmp);
        for (size_t i = 1; i < n; i++) {
            if (member_cmp(&m[i - 1], &m[i]) == 0) {
                snprintf(ps->err, ps->err_len, "duplicate member \"%.*s\" (not I-JSON)",
                         (int)(m[i].name.len > 64 ? 64 : m[i].name.len),
                         (const char *)m[i].name.data);
                rv = PW_INVALID_ARGUMENT;
                break;
            }
        }
    }
    if (rv == PW_OK) {
        rv = pw_buf_append(out, "{", 1);
    }
    for (size_t i = 0; i < n; i++) {
        if (rv == PW_OK && i > 0) {
            rv = pw_buf_append(out, ",", 1);
        }
        if (rv == PW_OK) {
            rv = jcs_string(out, (const char *)m[i].name.data, m[i].name.len);
        }
        if (rv == PW_OK) {
            rv = pw_buf_append(out, ":", 1);
        }
        if (rv == PW_OK) {
            rv = pw_buf_append(out, m[i].value.data, m[i].value.len);
        }
        pw_buf_reset(&m[i].name);
        pw_buf_reset(&m[i].value);
    }
    pw_free(m);
    return rv == PW_OK ? pw_buf_append(out, "}", 1) : rv;
}

static pw_status parse_array(parser *ps, pw_buf *out)
{
    ps->p++;
    pw_status rv = pw_buf_append(out, "[", 1);
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return rv == PW_OK ? pw_buf_append(out, "]", 1) : rv;
    }
    for (int first = 1; rv == PW_OK; first = 0) {
        if (!first) {
            rv = pw_buf_append(out, ",", 1);
        }
        if (rv == PW_OK) {
            rv = parse_value(ps, out);
        }
        if (rv != PW_OK) {
            break;
        }
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return pw_buf_append(out, "]", 1);
        }
        rv = bad(ps, "expected ',' or ']'");
    }
    return rv;
}

static pw_status literal(parser *ps, const char *word, pw_buf *out)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        return bad(ps, "unexpected character");
    }
    ps->p += n;
    return pw_buf_append(out, word, n);
}

static pw_status parse_value(parser *ps, pw_buf *out)
{
    skip_ws(ps);
    if (ps->p >= ps->end) {
        return bad(ps, "unexpected end of input");
    }
    if (++ps->depth > MAX_DEPTH) {
        return bad(ps, "nested deeper than 64");
    }
    pw_status rv;
    switch (*ps->p) {
    case '{':
        rv = parse_object(ps, out);
        break;
    case '[':
        rv = parse_array(ps, out);
        break;
    case '"': {
        pw_buf s = {0};
        rv = parse_string(ps, &s);
        if (rv == PW_OK) {
            rv = jcs_string(out, (const char *)s.data, s.len);
        }
        pw_buf_reset(&s);
        break;
    }
    case 't':
        rv = literal(ps, "true", out);
        break;
    case 'f':
        rv = literal(ps, "false", out);
        break;
    case 'n':
        rv = literal(ps, "null", out);
        break;
    default:
        rv = parse_number(ps, out);
        break;
    }
    ps->depth--;
    return rv;
}

pw_status jcs_canonicalize(const char *json, size_t len, int object_only, pw_buf *out, char *err,
                           size_t err_len)
{
    char scratch[8];
    parser ps = {json, json, json + len, err ? err : scratch, err ? err_len : sizeof(scratch), 0};
    skip_ws(&ps);
    if (object_only && (ps.p >= ps.end || *ps.p != '{')) {
        snprintf(ps.err, ps.err_len, "must be a JSON object");
        return PW_INVALID_ARGUMENT;
    }
    pw_status rv = parse_value(&ps, out);
    if (rv == PW_OK) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            rv = bad(&ps, "trailing characters");
        }
    }
    return rv;
}

/* ---- events ---- */

void jcs_rfc3339(int64_t us, char out[32])
{
    time_t s = (time_t)(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
    long frac = (long)(us - (int64_t)s * 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06uZ", (unsigned)(frac % 1000000));
}

static pw_status member_str(pw_buf *out, const char *name, const char *value)
{
    pw_status rv = pw_buf_append(out, name, strlen(name));
    return rv == PW_OK ? jcs_string(out, value, strlen(value)) : rv;
}

pw_status jcs_event_bytes(const jcs_event *e, pw_buf *out)
{
    char seq[24], t[32];
    snprintf(seq, sizeof(seq), "%lld", (long long)e->sequence);
    jcs_rfc3339(e->time_us, t);
    /* The members in RFC 8785 order (their names are ASCII). */
    pw_status rv = member_str(out, "{\"action\":", e->action);
    if (rv == PW_OK) {
        rv = member_str(out, ",\"actor\":", e->actor);
    }
    if (rv == PW_OK) {
        rv = pw_buf_append(out, ",\"detail\":", 10);
    }
    if (rv == PW_OK) {
        rv = pw_buf_append(out, e->detail, e->detail_len);
    }
    if (rv == PW_OK) {
        rv = member_str(out, ",\"sequence\":", seq);
    }
    if (rv == PW_OK) {
        rv = member_str(out, ",\"source\":", e->source);
    }
    if (rv == PW_OK) {
        rv = member_str(out, ",\"subjectId\":", e->subject_id);
    }
    if (rv == PW_OK) {
        rv = member_str(out, ",\"time\":", t);
    }
    return rv == PW_OK ? pw_buf_append(out, "}", 1) : rv;
}

void jcs_chain_hash(const uint8_t previous[32], const void *canonical, size_t len, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 32;
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, previous, 32) && EVP_DigestUpdate(ctx, canonical, len) &&
             EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    PW_ASSERT(ok); /* only out-of-memory, which aborts service binaries first */
}

void jcs_hex(const uint8_t hash[32], char out[65])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hx[hash[i] >> 4];
        out[2 * i + 1] = hx[hash[i] & 15];
    }
    out[64] = '\0';
}
