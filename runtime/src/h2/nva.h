#ifndef PAYWIRE_H2_NVA_H
#define PAYWIRE_H2_NVA_H

/* Builds an nghttp2 header list whose strings live in one buffer. */
#include <nghttp2/nghttp2.h>
#include <paywire/buf.h>
#include <paywire/metadata.h>

typedef struct pw__nva {
    nghttp2_nv *nv;
    size_t n;
    size_t cap;
    pw_buf strings;
    int failed;
} pw__nva;

void pw__nva_add(pw__nva *b, const char *name, const char *value, size_t value_len);
void pw__nva_add_str(pw__nva *b, const char *name, const char *value);
/** Adds each entry, base64-encoding "-bin" values. */
void pw__nva_add_metadata(pw__nva *b, const pw_metadata *md);
/** Like pw__nva_add_metadata, each name prefixed (e.g. "trailer-"), leaving out key skip (may be
 * NULL). */
void pw__nva_add_metadata_as(pw__nva *b, const pw_metadata *md, const char *prefix,
                             const char *skip);
/** Adds grpc-status and (percent-encoded, when non-empty) grpc-message. */
void pw__nva_add_status(pw__nva *b, pw_status code, const char *message);
/** Resolves the strings; NULL when any add ran out of memory. Valid until the next add. */
nghttp2_nv *pw__nva_finish(pw__nva *b);
void pw__nva_free(pw__nva *b);

#endif
