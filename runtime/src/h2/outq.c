/*
 * outq.c: per-stream send queue. Messages are packed straight into the queue,
 * and DATA frames are written from it without nghttp2 copying them
 * (NGHTTP2_DATA_FLAG_NO_COPY + pw__h2_send_data). blocked/ready implement the write-ready
 * protocol: above high water the writer is told to wait; when the data
 * provider drains the queue to half of it, ready is set for the owner to fire
 * on_write_ready outside nghttp2's callbacks.
 */
#include <string.h>
#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include "grpc/wire.h"
#include "grpc/compress.h"
#include "h2/outq.h"

void pw__outq_init(pw__outq *q, size_t high_water, size_t hard_limit)
{
    *q = (pw__outq){.high_water = high_water, .hard_limit = hard_limit};
}

pw_status pw__outq_push(pw__outq *q, const ProtobufCMessage *msg, pw_slice bytes)
{
    size_t len = msg != NULL ? protobuf_c_message_get_packed_size(msg) : bytes.len;
    if (len > UINT32_MAX || pw_buf_pending(&q->buf) + len + 5 > q->hard_limit) {
        return PW_RESOURCE_EXHAUSTED;
    }
    pw_status rv = pw_buf_reserve(&q->buf, len + 5);
    if (rv != PW_OK) {
        return rv;
    }
    uint8_t *p = q->buf.data + q->buf.len;
    pw__frame_prefix(p, 0, (uint32_t)len);
    if (msg != NULL) {
        protobuf_c_message_pack(msg, p + 5);
    } else if (len > 0) {
        memcpy(p + 5, bytes.base, len);
    }
    q->buf.len += len + 5;
    if (pw_buf_pending(&q->buf) >= q->high_water) {
        q->blocked = 1;
    }
    return PW_OK;
}

pw_status pw__outq_push_gzip(pw__outq *q, const ProtobufCMessage *msg, pw_slice bytes)
{
    pw_buf raw = {0};
    if (msg != NULL) {
        size_t len = protobuf_c_message_get_packed_size(msg);
        if (pw_buf_reserve(&raw, len) != PW_OK) {
            return PW_ERRNO(ENOMEM);
        }
        raw.len = protobuf_c_message_pack(msg, raw.data);
        bytes = pw_slice_make(raw.data, raw.len);
    }
    size_t start = q->buf.len;
    pw_status rv = pw_buf_reserve(&q->buf, 5);
    if (rv == PW_OK) {
        q->buf.len += 5;
        rv = pw__gzip_deflate(bytes, &q->buf);
    }
    pw_buf_reset(&raw);
    size_t clen = q->buf.len - start - 5;
    if (rv == PW_OK && (clen > UINT32_MAX || pw_buf_pending(&q->buf) > q->hard_limit)) {
        rv = PW_RESOURCE_EXHAUSTED;
    }
    if (rv != PW_OK) {
        q->buf.len = start;
        return rv;
    }
    pw__frame_prefix(q->buf.data + start, 1, (uint32_t)clen);
    if (pw_buf_pending(&q->buf) >= q->high_water) {
        q->blocked = 1;
    }
    return PW_OK;
}

void pw__outq_consume(pw__outq *q, size_t n)
{
    pw_buf_consume(&q->buf, n);
    if (q->blocked && pw_buf_pending(&q->buf) <= q->high_water / 2) {
        q->blocked = 0;
        q->ready = 1;
    }
}

ssize_t pw__outq_provide(pw__outq *q, size_t len, int last, int *eof)
{
    size_t pending = pw_buf_pending(&q->buf);
    size_t n = pending < len ? pending : len;
    *eof = 0;
    if (n == pending) {
        if (last) {
            *eof = 1;
        } else if (n == 0) {
            q->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

void pw__outq_free(pw__outq *q)
{
    pw_buf_reset(&q->buf);
}
