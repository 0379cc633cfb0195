#ifndef PAYWIRE_H2_OUTQ_H
#define PAYWIRE_H2_OUTQ_H

/*
 * A stream's send queue of framed gRPC messages, drained by an nghttp2 data
 * provider as flow control allows, with a high-water mark for back-pressure.
 */
#include <stdint.h>
#include <sys/types.h>
#include <paywire/buf.h>

struct ProtobufCMessage;

typedef struct pw__outq {
    pw_buf buf;
    size_t high_water;
    size_t hard_limit;
    /** The data provider found the queue empty and returned DEFERRED. */
    unsigned deferred : 1;
    /** The writer saw the queue above high water; notify when it drains to half. */
    unsigned blocked : 1;
    /** Drained below half after blocked: the owner should fire on_write_ready. */
    unsigned ready : 1;
} pw__outq;

void pw__outq_init(pw__outq *q, size_t high_water, size_t hard_limit);
/**
 * Appends a framed message: a packed protobuf (msg) or raw bytes (when msg is
 * NULL). Returns PW_OK, PW_RESOURCE_EXHAUSTED (over hard_limit), PW_ERRNO(ENOMEM).
 */
pw_status pw__outq_push(pw__outq *q, const struct ProtobufCMessage *msg, pw_slice bytes);
/**
 * pw__outq_push, gzip-compressed (Compressed-Flag 1). The limits apply to the
 * compressed size. Returns as pw__outq_push, or PW_INTERNAL if zlib fails.
 */
pw_status pw__outq_push_gzip(pw__outq *q, const struct ProtobufCMessage *msg, pw_slice bytes);

/**
 * One nghttp2 data-provider step for both sides, without copying: returns how
 * many queued bytes (up to len) the next DATA frame carries; nghttp2 then
 * hands them to the send_data callback (pw__h2_send_data), which consumes
 * them. When that empties the queue and last is set (nothing more will be
 * queued), *eof is set; when nothing is queued and more may come, the queue
 * remembers it deferred and NGHTTP2_ERR_DEFERRED is returned.
 */
ssize_t pw__outq_provide(pw__outq *q, size_t len, int last, int *eof);
/** The pending bytes, first. */
static inline const uint8_t *pw__outq_data(const pw__outq *q)
{
    return pw_buf_head(&q->buf);
}
/** Marks n bytes sent; updates blocked/ready (the write-ready protocol). */
void pw__outq_consume(pw__outq *q, size_t n);
static inline int pw__outq_writable(const pw__outq *q)
{
    return !q->blocked;
}
void pw__outq_free(pw__outq *q);

#endif
