#ifndef PAYWIRE_BUF_H
#define PAYWIRE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A view of bytes owned by someone else. Never freed. */
typedef struct pw_slice {
    const uint8_t *base;
    size_t len;
} pw_slice;

static inline pw_slice pw_slice_make(const void *base, size_t len)
{
    pw_slice s = {(const uint8_t *)base, len};
    return s;
}

/**
 * A growable byte buffer with a read offset: bytes [off, len) are pending.
 * Zero-initialise ({0}) to get an empty buffer; release with pw_buf_reset.
 */
typedef struct pw_buf {
    uint8_t *data;
    size_t len;
    size_t off;
    size_t cap;
} pw_buf;

/**
 * Makes room for at least extra more bytes. Returns PW_OK, or PW_ERRNO(ENOMEM)
 * with b unchanged.
 */
PW_EXTERN pw_status pw_buf_reserve(pw_buf *b, size_t extra);
/** Appends a copy of len bytes. Returns PW_OK, or PW_ERRNO(ENOMEM) with b unchanged. */
PW_EXTERN pw_status pw_buf_append(pw_buf *b, const void *data, size_t len);
/**
 * Appends printf-formatted text (no NUL). Returns PW_OK; PW_ERRNO(ENOMEM) or
 * PW_INTERNAL (vsnprintf failed) with b's bytes unchanged.
 */
PW_EXTERN pw_status pw_buf_printf(pw_buf *b, const char *fmt, ...) PW_PRINTF(2, 3);
/** Pending bytes. */
static inline size_t pw_buf_pending(const pw_buf *b)
{
    return b->len - b->off;
}
/** The first pending byte; NULL when the buffer never held any (so NULL + 0 is never formed). */
static inline uint8_t *pw_buf_head(const pw_buf *b)
{
    return b->data != NULL ? b->data + b->off : NULL;
}
/** Marks n pending bytes as consumed; compacts when everything was consumed. */
PW_EXTERN void pw_buf_consume(pw_buf *b, size_t n);
/** Frees the storage and empties the buffer. */
PW_EXTERN void pw_buf_reset(pw_buf *b);

/**
 * Appends the base64 of len bytes (RFC 4648 standard alphabet), with '='
 * padding when pad is set (gRPC's -bin metadata uses none, proto3 JSON
 * pads). Returns PW_OK, or PW_ERRNO(ENOMEM) with out unchanged.
 */
PW_EXTERN pw_status pw_base64_encode(pw_buf *out, const void *data, size_t len, int pad);
/**
 * Decodes base64 in the standard or the URL-safe alphabet, padded or not.
 * out must hold (len / 4 + 1) * 3 bytes. Returns PW_OK and sets *out_len to
 * the decoded length; PW_INVALID_ARGUMENT on invalid input, with *out_len set
 * to 0 (out may hold part of the bytes).
 */
PW_EXTERN pw_status pw_base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
