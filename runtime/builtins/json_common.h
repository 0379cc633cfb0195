#ifndef PAYWIRE_BUILTINS_JSON_COMMON_H
#define PAYWIRE_BUILTINS_JSON_COMMON_H

/* What the JSON encoder (json_enc.c) and decoder (json_dec.c) share. */
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/json.h>

#define PW_JSON_MAX_DEPTH 100

/* Well-known types with their own JSON form. */
typedef enum pw__wkt {
    PW_WKT_NONE = 0,
    PW_WKT_TIMESTAMP,
    PW_WKT_DURATION,
    PW_WKT_WRAPPER,
    PW_WKT_FIELD_MASK,
    PW_WKT_STRUCT,
    PW_WKT_VALUE,
    PW_WKT_LIST_VALUE,
    PW_WKT_ANY,
} pw__wkt;

pw__wkt pw__json_wkt(const ProtobufCMessageDescriptor *d);
/* The well-known type of a message field's type (PW_WKT_NONE for other fields). */
pw__wkt pw__json_wkt_of_field(const ProtobufCFieldDescriptor *f);

/*
 * Initialises a message of a descriptor built at run time (message_init NULL),
 * as protobuf-c does for such descriptors: zeroes, descriptor, string defaults.
 */
void pw__json_message_init(const ProtobufCMessageDescriptor *d, void *mem);

/* The C storage of one element of a field of this type. */
size_t pw__json_elem_size(ProtobufCType type);

/* 1 when the (repeated message) field is a protobuf map<K, V>. */
int pw__json_is_map(const ProtobufCFieldDescriptor *f);

/* 1 when field f is set in m (presence rules of its label; oneof case). */
int pw__json_has(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

static inline void *pw__json_member(const void *m, const ProtobufCFieldDescriptor *f)
{
    return (uint8_t *)m + f->offset;
}

/* The message type named by an Any type URL (text after the last '/'). */
const ProtobufCMessageDescriptor *pw__json_resolve(const pw_json_options *o, const char *url);

/* Seconds since the epoch ↔ civil date (proleptic Gregorian, UTC). */
int64_t pw__days_from_civil(int64_t y, unsigned m, unsigned d);
void pw__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#define PW_TS_MIN_SECONDS  (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define PW_TS_MAX_SECONDS  253402300799LL   /* 9999-12-31T23:59:59Z */
#define PW_DUR_MAX_SECONDS 315576000000LL   /* 10000 years */

/* Appends s as a JSON string literal; invalid UTF-8 becomes U+FFFD. PW_OK or ENOMEM. */
pw_status pw__json_append_string(pw_buf *out, const char *s, size_t n);

#endif
