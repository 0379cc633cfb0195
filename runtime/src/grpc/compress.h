#ifndef PAYWIRE_GRPC_COMPRESS_H
#define PAYWIRE_GRPC_COMPRESS_H

/* Message compression (grpc-encoding: gzip), with zlib. */
#include <stdint.h>
#include <paywire/buf.h>
#include <paywire/call.h>

/** Header value for grpc-accept-encoding: what we can decode. */
#define PW_ACCEPT_ENCODING "gzip,identity"

/** Parses a grpc-encoding value: PW_COMPRESSION_NONE ("identity"), _GZIP, or -1 (unknown). */
int pw__encoding_parse(const char *name);
/** 1 when a grpc-accept-encoding list (len bytes) names gzip. */
int pw__accept_has_gzip(const char *list, size_t len);

/**
 * Inflates a gzip message, appending to out at most max_out bytes. Returns
 * PW_OK; PW_RESOURCE_EXHAUSTED when the result would exceed max_out (a small
 * message cannot expand past the receive limit); PW_INTERNAL for corrupt data.
 * err receives a human-readable reason.
 */
pw_status pw__gzip_inflate(pw_slice in, uint32_t max_out, pw_buf *out, char *err, size_t err_size);
/** Deflates in as gzip, appending to out. PW_OK, PW_ERRNO(ENOMEM) or PW_INTERNAL. */
pw_status pw__gzip_deflate(pw_slice in, pw_buf *out);

#endif
