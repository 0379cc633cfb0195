#ifndef PAYWIRE_GRPC_WIRE_H
#define PAYWIRE_GRPC_WIRE_H

/* Encodings gRPC's PROTOCOL-HTTP2 puts on the wire: grpc-message, -bin, grpc-timeout. */
#include <stddef.h>
#include <stdint.h>
#include <paywire/buf.h>
#include <paywire/status.h>

/** Appends s percent-encoded (bytes outside 0x20..0x7e and '%' become %XX). */
pw_status pw__percent_encode(pw_buf *out, const char *s, size_t len);
/**
 * Decodes a grpc-message value into a new NUL-terminated string (pw_free it).
 * Invalid sequences are kept as they are, as the spec asks. NULL on ENOMEM.
 */
char *pw__percent_decode(const char *s, size_t len);

/**
 * Parses grpc-timeout ("1-8 digits" + one of H M S m u n) into milliseconds,
 * rounding sub-millisecond values up. Returns 0, or -1 when invalid.
 */
int pw__timeout_parse(const char *s, size_t len, int64_t *ms_out);
/** Formats ms as a grpc-timeout value (at most 8 digits); out holds >= 16 bytes. */
void pw__timeout_format(int64_t ms, char *out, size_t out_size);

/** The gRPC status for a non-200 HTTP response without grpc-status (spec table). */
pw_status pw__http_to_grpc_status(int http_status);

/** Writes the 5-byte message prefix. */
void pw__frame_prefix(uint8_t out[5], int compressed, uint32_t len);

#endif
