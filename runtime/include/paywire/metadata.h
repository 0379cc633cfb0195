#ifndef PAYWIRE_METADATA_H
#define PAYWIRE_METADATA_H

#include <stddef.h>
#include <stdint.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * One metadata entry. Keys are lower-case ASCII. Values of keys ending in "-bin"
 * hold raw bytes (base64 is a wire detail the runtime handles); other values are
 * printable ASCII. Both key and value are NUL-terminated for convenience.
 */
typedef struct pw_metadata_entry {
    char *key;
    uint8_t *value;
    size_t value_len;
} pw_metadata_entry;

/**
 * An ordered multimap of metadata. Zero-initialise ({0}) to get an empty list;
 * release with pw_metadata_clear. Owns copies of every key and value.
 */
typedef struct pw_metadata {
    pw_metadata_entry *entries;
    size_t count;
    size_t cap;
} pw_metadata;

/**
 * Appends a copy of key/value. Returns PW_OK; PW_INVALID_ARGUMENT when the key
 * is not a legal gRPC metadata key (lower-case [0-9a-z_.-], not starting with
 * ':') or when a non-binary value has bytes outside 0x20..0x7e;
 * PW_ERRNO(ENOMEM). md is unchanged on failure.
 */
PW_EXTERN pw_status pw_metadata_add(pw_metadata *md, const char *key, const void *value,
                                    size_t value_len);
/** pw_metadata_add with a NUL-terminated value; the same codes (PW_OK, PW_INVALID_ARGUMENT, ...).
 */
PW_EXTERN pw_status pw_metadata_add_str(pw_metadata *md, const char *key, const char *value);
/** The first entry with this key, or NULL. Borrowed from md. */
PW_EXTERN const pw_metadata_entry *pw_metadata_get(const pw_metadata *md, const char *key);
/**
 * Appends copies of every entry of src (NULL: none). Returns PW_OK, or
 * PW_ERRNO(ENOMEM) with the entries copied so far left in dst.
 */
PW_EXTERN pw_status pw_metadata_copy(pw_metadata *dst, const pw_metadata *src);
/** Frees every entry; md is empty afterwards and may be reused. */
PW_EXTERN void pw_metadata_clear(pw_metadata *md);
/** 1 when key ends in "-bin". */
PW_EXTERN int pw_metadata_key_is_binary(const char *key, size_t key_len);

#ifdef __cplusplus
}
#endif
#endif
