/*
 * buf.c: growable byte buffer with a read offset. Writers append at len, readers
 * consume from off; storage is compacted lazily so appends stay amortised O(1).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/buf.h>

pw_status pw_buf_reserve(pw_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return PW_OK;
    }
    /* Reclaim consumed space first when it is enough. */
    if (b->off > 0 && b->cap - (b->len - b->off) >= extra) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        return PW_OK;
    }
    size_t need = b->len + extra;
    if (need < extra) {
        return PW_ERRNO(ENOMEM);
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = pw_realloc(b->data, cap);
    if (p == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    b->data = p;
    b->cap = cap;
    return PW_OK;
}

pw_status pw_buf_append(pw_buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return PW_OK;
    }
    pw_status rv = pw_buf_reserve(b, len);
    if (rv != PW_OK) {
        return rv;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return PW_OK;
}

void pw_buf_consume(pw_buf *b, size_t n)
{
    size_t pending = b->len - b->off;
    b->off += n < pending ? n : pending;
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
    }
}

void pw_buf_reset(pw_buf *b)
{
    pw_free(b->data);
    *b = (pw_buf){0};
}

pw_status pw_buf_printf(pw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return PW_INTERNAL;
    }
    pw_status rv = pw_buf_reserve(b, (size_t)n + 1);
    if (rv != PW_OK) {
        return rv;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return PW_OK;
}

/* ---- base64 (RFC 4648) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pw_status pw_base64_encode(pw_buf *out, const void *bytes, size_t len, int pad)
{
    const uint8_t *data = bytes;
    if (len == 0) {
        return PW_OK; /* out->data may still be NULL: no pointer arithmetic on it */
    }
    pw_status rv = pw_buf_reserve(out, (len + 2) / 3 * 4);
    if (rv != PW_OK) {
        return rv;
    }
    uint8_t *p = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *p++ = (uint8_t)b64_alphabet[v >> 18];
        *p++ = (uint8_t)b64_alphabet[(v >> 12) & 63];
        *p++ = (uint8_t)b64_alphabet[(v >> 6) & 63];
        *p++ = (uint8_t)b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)data[i] << 16;
        *p++ = (uint8_t)b64_alphabet[v >> 18];
        *p++ = (uint8_t)b64_alphabet[(v >> 12) & 63];
        if (pad) {
            *p++ = '=';
            *p++ = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
        *p++ = (uint8_t)b64_alphabet[v >> 18];
        *p++ = (uint8_t)b64_alphabet[(v >> 12) & 63];
        *p++ = (uint8_t)b64_alphabet[(v >> 6) & 63];
        if (pad) {
            *p++ = '=';
        }
    }
    out->len = (size_t)(p - out->data);
    return PW_OK;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

pw_status pw_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    *out_len = 0;
    /* Strip up to two '=' of padding; then the length mod 4 must not be 1. */
    size_t pad = 0;
    while (len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0)) {
        return PW_INVALID_ARGUMENT;
    }
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);
        if (v < 0) {
            return PW_INVALID_ARGUMENT;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = n;
    return PW_OK;
}
