/*
 * deframer.c: gRPC length-prefixed message parsing. Invariant: d->buf holds at
 * most one unfinished message (prefix plus the payload bytes seen so far); a
 * message arriving whole in one chunk is delivered straight from the caller's
 * bytes. The length is checked against max_len before anything is buffered, so
 * a peer cannot make us allocate more than max_len + 5 bytes per stream.
 */
#include <stdio.h>
#include <string.h>
#include "grpc/deframer.h"

void pw__deframer_init(pw__deframer *d, uint32_t max_len)
{
    *d = (pw__deframer){.max_len = max_len};
}

static uint32_t prefix_len(const uint8_t *p)
{
    return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

static pw_status check_prefix(pw__deframer *d, const uint8_t *p)
{
    if (p[0] > 1) {
        snprintf(d->err_text, sizeof(d->err_text), "invalid message flag byte 0x%02x (want 0 or 1)",
                 p[0]);
        return PW_INTERNAL;
    }
    uint32_t len = prefix_len(p);
    if (len > d->max_len) {
        snprintf(d->err_text, sizeof(d->err_text),
                 "message of %u bytes exceeds the limit of %u bytes", len, d->max_len);
        return PW_RESOURCE_EXHAUSTED;
    }
    return PW_OK;
}

/* Completes the buffered message from data; returns bytes used or a negative status. */
static pw_status fill_buffered(pw__deframer *d, const uint8_t **data, size_t *len,
                               pw__deframer_msg_cb cb, void *ud)
{
    pw_buf *b = &d->buf;
    size_t have = pw_buf_pending(b);
    if (have < 5) {
        size_t take = 5 - have < *len ? 5 - have : *len;
        pw_status rv = pw_buf_append(b, *data, take);
        if (rv != PW_OK) {
            return rv;
        }
        *data += take;
        *len -= take;
        if (pw_buf_pending(b) < 5) {
            return PW_OK;
        }
        rv = check_prefix(d, b->data + b->off);
        if (rv != PW_OK) {
            return rv;
        }
    }
    const uint8_t *prefix = b->data + b->off;
    size_t want = 5 + (size_t)prefix_len(prefix) - pw_buf_pending(b);
    /* One allocation for the whole message (its length is already checked). */
    pw_status rv = pw_buf_reserve(b, want);
    if (rv != PW_OK) {
        return rv;
    }
    size_t take = want < *len ? want : *len;
    rv = pw_buf_append(b, *data, take);
    if (rv != PW_OK) {
        return rv;
    }
    *data += take;
    *len -= take;
    if (take < want) {
        return PW_OK;
    }
    prefix = b->data + b->off;
    rv = cb(ud, prefix[0] & 1, pw_slice_make(prefix + 5, prefix_len(prefix)));
    pw_buf_consume(b, pw_buf_pending(b));
    return rv;
}

pw_status pw__deframer_feed(pw__deframer *d, const uint8_t *data, size_t len,
                            pw__deframer_msg_cb cb, void *ud)
{
    while (len > 0) {
        if (pw_buf_pending(&d->buf) > 0) {
            pw_status rv = fill_buffered(d, &data, &len, cb, ud);
            if (rv != PW_OK) {
                return rv;
            }
            continue;
        }
        if (len >= 5) {
            pw_status rv = check_prefix(d, data);
            if (rv != PW_OK) {
                return rv;
            }
            size_t mlen = prefix_len(data);
            if (len - 5 >= mlen) {
                rv = cb(ud, data[0] & 1, pw_slice_make(data + 5, mlen));
                if (rv != PW_OK) {
                    return rv;
                }
                data += 5 + mlen;
                len -= 5 + mlen;
                continue;
            }
        }
        pw_status rv = fill_buffered(d, &data, &len, cb, ud);
        if (rv != PW_OK) {
            return rv;
        }
    }
    return PW_OK;
}

size_t pw__deframer_pending(const pw__deframer *d)
{
    return pw_buf_pending(&d->buf);
}

void pw__deframer_free(pw__deframer *d)
{
    pw_buf_reset(&d->buf);
}
