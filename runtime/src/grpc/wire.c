/*
 * wire.c: the text encodings of gRPC's PROTOCOL-HTTP2 document: percent-encoded
 * grpc-message, base64 "-bin" metadata, grpc-timeout, and the HTTP status map for
 * responses that carry no grpc-status.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include "grpc/wire.h"

static const char hex_digits[] = "0123456789ABCDEF";

pw_status pw__percent_encode(pw_buf *out, const char *s, size_t len)
{
    if (len == 0) {
        return PW_OK; /* out->data may still be NULL: no pointer arithmetic on it */
    }
    pw_status rv = pw_buf_reserve(out, len * 3);
    if (rv != PW_OK) {
        return rv;
    }
    uint8_t *p = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            *p++ = c;
        } else {
            *p++ = '%';
            *p++ = (uint8_t)hex_digits[c >> 4];
            *p++ = (uint8_t)hex_digits[c & 15];
        }
    }
    out->len = (size_t)(p - out->data);
    return PW_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *pw__percent_decode(const char *s, size_t len)
{
    char *out = pw_malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len) {
            int hi = hex_value(s[i + 1]);
            int lo = hex_value(s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[n++] = (char)((hi << 4) | lo);
                i += 2;
                continue;
            }
        }
        out[n++] = s[i];
    }
    out[n] = '\0';
    return out;
}

int pw__timeout_parse(const char *s, size_t len, int64_t *ms_out)
{
    if (len < 2 || len > 9) {
        return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    int64_t ms;
    switch (s[len - 1]) {
    case 'H':
        ms = v * 3600000;
        break;
    case 'M':
        ms = v * 60000;
        break;
    case 'S':
        ms = v * 1000;
        break;
    case 'm':
        ms = v;
        break;
    case 'u':
        ms = (v + 999) / 1000;
        break;
    case 'n':
        ms = (v + 999999) / 1000000;
        break;
    default:
        return -1;
    }
    *ms_out = ms;
    return 0;
}

void pw__timeout_format(int64_t ms, char *out, size_t out_size)
{
    if (ms < 0) {
        ms = 0;
    }
    if (ms < 100000000) {
        snprintf(out, out_size, "%lldm", (long long)ms);
    } else if (ms / 1000 < 100000000) {
        snprintf(out, out_size, "%lldS", (long long)((ms + 999) / 1000));
    } else if (ms / 60000 < 100000000) {
        snprintf(out, out_size, "%lldM", (long long)((ms + 59999) / 60000));
    } else {
        int64_t h = (ms + 3599999) / 3600000;
        snprintf(out, out_size, "%lldH", (long long)(h < 100000000 ? h : 99999999));
    }
}

pw_status pw__http_to_grpc_status(int http_status)
{
    switch (http_status) {
    case 400:
        return PW_INTERNAL;
    case 401:
        return PW_UNAUTHENTICATED;
    case 403:
        return PW_PERMISSION_DENIED;
    case 404:
        return PW_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return PW_UNAVAILABLE;
    default:
        return PW_UNKNOWN;
    }
}

void pw__frame_prefix(uint8_t out[5], int compressed, uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}
