/*
 * libFuzzer target: everything that parses request and response header
 * values: grpc-timeout, grpc-status, grpc-message (percent-decoding),
 * "-bin" base64 values, and metadata keys/values. The first byte picks the
 * parser; the rest is the header value (the key, for metadata, is split off
 * at the first 0 byte). Round trips must reproduce their input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/metadata.h>
#include "grpc/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_base64(const uint8_t *v, size_t n)
{
    uint8_t *out = malloc(n / 4 * 3 + 3);
    size_t len;
    if (pw_base64_decode((const char *)v, n, out, &len) == PW_OK) {
        /* Re-encoding decoded bytes and decoding again gives the same bytes. */
        pw_buf b = {0};
        pw_base64_encode(&b, out, len, 0);
        uint8_t *again = malloc(b.len / 4 * 3 + 3);
        size_t len2;
        if (pw_base64_decode((const char *)b.data, b.len, again, &len2) != PW_OK || len2 != len ||
            memcmp(again, out, len) != 0) {
            abort();
        }
        free(again);
        pw_buf_reset(&b);
    }
    free(out);
}

static void fuzz_percent(const uint8_t *v, size_t n)
{
    char *s = pw__percent_decode((const char *)v, n);
    pw_buf b = {0};
    pw__percent_encode(&b, (const char *)v, n);
    char *back = pw__percent_decode((const char *)b.data, b.len);
    if (s == NULL || back == NULL || memcmp(back, v, n) != 0) {
        abort();
    }
    pw_free(s);
    pw_free(back);
    pw_buf_reset(&b);
}

static void fuzz_metadata(const uint8_t *v, size_t n)
{
    const uint8_t *zero = memchr(v, 0, n);
    if (zero == NULL) {
        return;
    }
    size_t klen = (size_t)(zero - v);
    char *key = pw_strndup((const char *)v, klen);
    pw_metadata md = {0};
    if (pw_metadata_add(&md, key, zero + 1, n - klen - 1) == PW_OK) {
        const pw_metadata_entry *e = pw_metadata_get(&md, key);
        if (e == NULL || e->value_len != n - klen - 1) {
            abort();
        }
    }
    pw_metadata_clear(&md);
    pw_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const uint8_t *v = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: {
        int64_t ms;
        if (pw__timeout_parse((const char *)v, n, &ms) == 0 && ms < 0) {
            abort();
        }
        break;
    }
    case 1: {
        pw_status st;
        (void)pw_status_parse((const char *)v, n, &st);
        break;
    }
    case 2:
        fuzz_percent(v, n);
        break;
    case 3:
        fuzz_base64(v, n);
        break;
    default:
        fuzz_metadata(v, n);
        break;
    }
    return 0;
}
