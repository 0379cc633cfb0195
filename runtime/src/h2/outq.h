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
/** Copies up to len bytes out; returns the count (0 when empty). Updates ready. */
size_t pw__outq_read(pw__outq *q, uint8_t *buf, size_t len);
/**
 * One nghttp2 data-provider step for both sides: copies queued bytes into buf.
 * When the queue is drained and last is set (nothing more will be queued),
 * *eof is set; when it is drained, nothing was copied and more may come, the
 * queue remembers it deferred and NGHTTP2_ERR_DEFERRED is returned.
 */
ssize_t pw__outq_provide(pw__outq *q, uint8_t *buf, size_t len, int last, int *eof);
static inline int pw__outq_writable(const pw__outq *q)
{
    return !q->blocked;
}
void pw__outq_free(pw__outq *q);

#endif
