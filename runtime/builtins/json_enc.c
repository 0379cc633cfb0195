/*
 * json_enc.c: protobuf-c message → proto3 JSON text. Writes straight into a
 * pw_buf; on failure the buffer is cut back to where it started.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include "json_common.h"

typedef struct enc {
    pw_buf *out;
    const pw_json_options *o;
    char *err;
    size_t err_len;
    pw_status rv;
    int depth;
} enc;

static int enc_message(enc *e, const ProtobufCMessage *m);
static int enc_fields(enc *e, const ProtobufCMessage *m, int *first);

static int fail(enc *e, pw_status rv, const char *fmt, ...) PW_PRINTF(3, 4);
static int fail(enc *e, pw_status rv, const char *fmt, ...)
{
    if (e->rv == PW_OK) {
        e->rv = rv;
        if (e->err != NULL && e->err_len > 0) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->err, e->err_len, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int put(enc *e, const char *s, size_t n)
{
    if (pw_buf_append(e->out, s, n) != PW_OK) {
        return fail(e, PW_ERRNO(ENOMEM), "out of memory");
    }
    return 0;
}

static int puts_(enc *e, const char *s)
{
    return put(e, s, strlen(s));
}

static int put_string(enc *e, const char *s, size_t n)
{
    if (pw__json_append_string(e->out, s, n) != PW_OK) {
        return fail(e, PW_ERRNO(ENOMEM), "out of memory");
    }
    return 0;
}

/* The shortest decimal that reads back as the same double (or float). */
static int put_double(enc *e, double v, int is_float)
{
    if (isnan(v)) {
        return puts_(e, "\"NaN\"");
    }
    if (isinf(v)) {
        return puts_(e, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    }
    if (v == 0 && signbit(v)) {
        return puts_(e, "-0.0"); /* "-0" would read back as the integer 0 */
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (is_float ? strtof(tmp, NULL) == (float)v : strtod(tmp, NULL) == v) {
            break;
        }
    }
    return puts_(e, tmp);
}

static int put_fmt(enc *e, const char *fmt, ...) PW_PRINTF(2, 3);
static int put_fmt(enc *e, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return puts_(e, tmp);
}

static int put_bytes(enc *e, const ProtobufCBinaryData *b)
{
    if (put(e, "\"", 1) != 0) {
        return -1;
    }
    if (pw_base64_encode(e->out, b->data, b->len, 1) != PW_OK) {
        return fail(e, PW_ERRNO(ENOMEM), "out of memory");
    }
    return put(e, "\"", 1);
}

static int put_enum(enc *e, const ProtobufCEnumDescriptor *d, int v)
{
    if (strcmp(d->name, "google.protobuf.NullValue") == 0) {
        return puts_(e, "null");
    }
    const ProtobufCEnumValue *ev =
        e->o->enums_as_ints ? NULL : protobuf_c_enum_descriptor_get_value(d, v);
    return ev ? put_string(e, ev->name, strlen(ev->name)) : put_fmt(e, "%d", v);
}

/* One value of field f stored at p (an element, for repeated fields). */
static int enc_value(enc *e, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return put_fmt(e, "%" PRId32, *(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return put_fmt(e, "%" PRIu32, *(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return put_fmt(e, "\"%" PRId64 "\"", *(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return put_fmt(e, "\"%" PRIu64 "\"", *(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return put_double(e, *(const float *)p, 1);
    case PROTOBUF_C_TYPE_DOUBLE:
        return put_double(e, *(const double *)p, 0);
    case PROTOBUF_C_TYPE_BOOL:
        return puts_(e, *(const protobuf_c_boolean *)p ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM:
        return put_enum(e, f->descriptor, *(const int *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return s ? put_string(e, s, strlen(s)) : puts_(e, "\"\"");
    }
    case PROTOBUF_C_TYPE_BYTES:
        return put_bytes(e, p);
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        return sub ? enc_message(e, sub) : puts_(e, "null");
    }
    }
    return fail(e, PW_INTERNAL, "field %s has an unknown type", f->name);
}

/* A map key is always a JSON string. */
static int enc_map_key(enc *e, const ProtobufCFieldDescriptor *kf, const void *p)
{
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
        return enc_value(e, kf, p);
    }
    if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        return puts_(e, *(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\"");
    }
    int quoted = kf->type == PROTOBUF_C_TYPE_INT64 || kf->type == PROTOBUF_C_TYPE_SINT64 ||
                 kf->type == PROTOBUF_C_TYPE_SFIXED64 || kf->type == PROTOBUF_C_TYPE_UINT64 ||
                 kf->type == PROTOBUF_C_TYPE_FIXED64;
    return (quoted ? 0 : put(e, "\"", 1)) || enc_value(e, kf, p) || (quoted ? 0 : put(e, "\"", 1))
               ? -1
               : 0;
}

static int enc_repeated(enc *e, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    size_t n = *(const size_t *)((const uint8_t *)m + f->quantifier_offset);
    const uint8_t *arr = *(const uint8_t *const *)pw__json_member(m, f);
    size_t sz = pw__json_elem_size(f->type);
    int map = pw__json_is_map(f);
    if (put(e, map ? "{" : "[", 1) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && put(e, ",", 1) != 0) {
            return -1;
        }
        if (!map) {
            if (enc_value(e, f, arr + i * sz) != 0) {
                return -1;
            }
            continue;
        }
        const ProtobufCMessage *entry = *(const ProtobufCMessage *const *)(arr + i * sz);
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        if (enc_map_key(e, &ed->fields[0], pw__json_member(entry, &ed->fields[0])) != 0 ||
            put(e, ":", 1) != 0 ||
            enc_value(e, &ed->fields[1], pw__json_member(entry, &ed->fields[1])) != 0) {
            return -1;
        }
    }
    return put(e, map ? "}" : "]", 1);
}

static int enc_key(enc *e, const ProtobufCFieldDescriptor *f, int *first)
{
    char name[256];
    if (e->o->proto_names) {
        snprintf(name, sizeof(name), "%s", f->name);
    } else {
        pw_json_name(f->name, name, sizeof(name));
    }
    if (!*first && put(e, ",", 1) != 0) {
        return -1;
    }
    *first = 0;
    return put_string(e, name, strlen(name)) || put(e, ":", 1) ? -1 : 0;
}

/* Every field of m as "name":value pairs, in field-number order. */
static int enc_fields(enc *e, const ProtobufCMessage *m, int *first)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int has = pw__json_has(m, f);
        if (!has &&
            !(e->o->emit_defaults && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
              !(f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED))) {
            continue;
        }
        if (enc_key(e, f, first) != 0) {
            return -1;
        }
        int rv = f->label == PROTOBUF_C_LABEL_REPEATED ? enc_repeated(e, m, f)
                                                       : enc_value(e, f, pw__json_member(m, f));
        if (rv != 0) {
            return -1;
        }
    }
    return 0;
}

static const void *field_by_name(const ProtobufCMessage *m, const char *name,
                                 const ProtobufCFieldDescriptor **f)
{
    *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    return *f ? pw__json_member(m, *f) : NULL;
}

static int64_t get_i64(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f;
    const void *p = field_by_name(m, name, &f);
    if (p == NULL) {
        return 0;
    }
    return f->type == PROTOBUF_C_TYPE_INT64 ? *(const int64_t *)p : *(const int32_t *)p;
}

static int put_nanos(char *out, size_t cap, int32_t nanos)
{
    if (nanos == 0) {
        out[0] = '\0';
        return 0;
    }
    if (nanos % 1000000 == 0) {
        return snprintf(out, cap, ".%03d", nanos / 1000000);
    }
    if (nanos % 1000 == 0) {
        return snprintf(out, cap, ".%06d", nanos / 1000);
    }
    return snprintf(out, cap, ".%09d", nanos);
}

static int enc_timestamp(enc *e, const ProtobufCMessage *m)
{
    int64_t s = get_i64(m, "seconds");
    int64_t n = get_i64(m, "nanos");
    if (s < PW_TS_MIN_SECONDS || s > PW_TS_MAX_SECONDS || n < 0 || n > 999999999) {
        return fail(e, PW_INVALID_ARGUMENT,
                    "Timestamp out of range (seconds %" PRId64 ", nanos %" PRId64 ")", s, n);
    }
    int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
    int64_t rem = s - days * 86400;
    int64_t y;
    unsigned mo, d;
    pw__civil_from_days(days, &y, &mo, &d);
    char frac[16];
    put_nanos(frac, sizeof(frac), (int32_t)n);
    return put_fmt(e, "\"%04" PRId64 "-%02u-%02uT%02d:%02d:%02d%sZ\"", y, mo, d, (int)(rem / 3600),
                   (int)(rem / 60 % 60), (int)(rem % 60), frac);
}

static int enc_duration(enc *e, const ProtobufCMessage *m)
{
    int64_t s = get_i64(m, "seconds");
    int64_t n = get_i64(m, "nanos");
    if (s < -PW_DUR_MAX_SECONDS || s > PW_DUR_MAX_SECONDS || n <= -1000000000 || n >= 1000000000 ||
        (s > 0 && n < 0) || (s < 0 && n > 0)) {
        return fail(e, PW_INVALID_ARGUMENT,
                    "Duration out of range (seconds %" PRId64 ", nanos %" PRId64 ")", s, n);
    }
    char frac[16];
    put_nanos(frac, sizeof(frac), (int32_t)(n < 0 ? -n : n));
    const char *sign = (s < 0 || n < 0) ? "-" : "";
    return put_fmt(e, "\"%s%" PRId64 "%ss\"", sign, s < 0 ? -s : s, frac);
}

/* A path JSON can carry and give back unchanged: non-empty lower_snake
 * segments where every '_' comes before a lowercase letter. */
static int mask_path_ok(const char *path)
{
    if (*path == '\0') {
        return 0;
    }
    for (const char *c = path; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || *c == ',' || (*c == '_' && !(c[1] >= 'a' && c[1] <= 'z'))) {
            return 0;
        }
    }
    return 1;
}

static int enc_field_mask(enc *e, const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f;
    const void *p = field_by_name(m, "paths", &f);
    size_t n = *(const size_t *)((const uint8_t *)m + f->quantifier_offset);
    char *const *paths = *(char *const *const *)p;
    pw_buf joined = {0};
    pw_status rv = PW_OK;
    for (size_t i = 0; i < n; i++) {
        if (!mask_path_ok(paths[i])) {
            return fail(e, PW_INVALID_ARGUMENT,
                        "field mask path \"%.64s\" has no JSON form (lower_snake_case, "
                        "non-empty)",
                        paths[i]);
        }
    }
    for (size_t i = 0; i < n && rv == PW_OK; i++) {
        char camel[512];
        pw_json_name(paths[i], camel, sizeof(camel));
        rv = pw_buf_printf(&joined, "%s%s", i ? "," : "", camel);
    }
    int out = rv != PW_OK ? fail(e, rv, "out of memory")
                          : put_string(e, (const char *)joined.data, joined.len);
    pw_buf_reset(&joined);
    return out;
}

/* A wrapper, Struct, Value or ListValue is its one field's JSON. */
static int enc_single_field(enc *e, const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f;
    const void *p = field_by_name(m, name, &f);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return enc_repeated(e, m, f);
    }
    return enc_value(e, f, p);
}

static int enc_value_wkt(enc *e, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (pw__json_has(m, &d->fields[i])) {
            return enc_value(e, &d->fields[i], pw__json_member(m, &d->fields[i]));
        }
    }
    /* A Value with no kind set is a null (the default of the oneof is null_value). */
    return puts_(e, "null");
}

static int enc_any(enc *e, const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f;
    const char *url = *(const char *const *)field_by_name(m, "type_url", &f);
    const ProtobufCBinaryData *value = field_by_name(m, "value", &f);
    if (url == NULL || url[0] == '\0') {
        return puts_(e, "{}");
    }
    const ProtobufCMessageDescriptor *d = pw__json_resolve(e->o, url);
    if (d == NULL) {
        return fail(e, PW_INVALID_ARGUMENT,
                    "Any holds type \"%s\", which this process does not know", url);
    }
    ProtobufCMessage *inner =
        protobuf_c_message_unpack(d, pw_protobuf_allocator(), value->len, value->data);
    if (inner == NULL) {
        return fail(e, PW_INVALID_ARGUMENT, "Any holds bytes that do not decode as %s", d->name);
    }
    int first = 0;
    int rv = puts_(e, "{\"@type\":") || put_string(e, url, strlen(url));
    if (rv == 0 && pw__json_wkt(d) != PW_WKT_NONE) {
        rv = puts_(e, ",\"value\":") || enc_message(e, inner);
    } else if (rv == 0) {
        rv = enc_fields(e, inner, &first);
    }
    pw_protobuf_free(inner);
    return rv == 0 ? put(e, "}", 1) : -1;
}

static int enc_message(enc *e, const ProtobufCMessage *m)
{
    if (++e->depth > PW_JSON_MAX_DEPTH) {
        return fail(e, PW_INVALID_ARGUMENT, "messages nested deeper than %d", PW_JSON_MAX_DEPTH);
    }
    int rv;
    switch (pw__json_wkt(m->descriptor)) {
    case PW_WKT_TIMESTAMP:
        rv = enc_timestamp(e, m);
        break;
    case PW_WKT_DURATION:
        rv = enc_duration(e, m);
        break;
    case PW_WKT_WRAPPER:
        rv = enc_single_field(e, m, "value");
        break;
    case PW_WKT_FIELD_MASK:
        rv = enc_field_mask(e, m);
        break;
    case PW_WKT_STRUCT:
        rv = enc_single_field(e, m, "fields");
        break;
    case PW_WKT_LIST_VALUE:
        rv = enc_single_field(e, m, "values");
        break;
    case PW_WKT_VALUE:
        rv = enc_value_wkt(e, m);
        break;
    case PW_WKT_ANY:
        rv = enc_any(e, m);
        break;
    default: {
        int first = 1;
        rv = put(e, "{", 1) || enc_fields(e, m, &first) || put(e, "}", 1) ? -1 : 0;
        break;
    }
    }
    e->depth--;
    return rv;
}

pw_status pw_json_encode(const ProtobufCMessage *msg, const pw_json_options *opts, pw_buf *out,
                         char *err, size_t err_len)
{
    static const pw_json_options defaults = {0};
    enc e = {.out = out, .o = opts ? opts : &defaults, .err = err, .err_len = err_len};
    size_t mark = out->len;
    if (enc_message(&e, msg) != 0) {
        out->len = mark;
        return e.rv;
    }
    return PW_OK;
}
