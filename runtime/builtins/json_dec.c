/*
 * json_dec.c: proto3 JSON text → protobuf-c message. jansson parses the text
 * (duplicate keys rejected); this file walks the tree against the message
 * descriptor and builds the message in place, allocating with pw_malloc, so
 * that pw_protobuf_free(m) frees it, also half-built
 * after an error.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <paywire/alloc.h>
#include "json_common.h"

typedef struct dec {
    const pw_json_options *o;
    char *err;
    size_t err_len;
    pw_status rv;
    int depth;
    /* The JSON path of the value being decoded ("payload.body", "items[3].id"). */
    char path[256];
    size_t path_len;
} dec;

static int dec_into(dec *d, ProtobufCMessage *m, json_t *v);

static int fail(dec *d, pw_status rv, const char *fmt, ...) PW_PRINTF(3, 4);
static int fail(dec *d, pw_status rv, const char *fmt, ...)
{
    if (d->rv != PW_OK) {
        return -1;
    }
    d->rv = rv;
    if (d->err != NULL && d->err_len > 0) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (d->path_len > 120) {
            /* Keep the end of a long path: it names the offending field. */
            snprintf(d->err, d->err_len, "...%s: %s", d->path + d->path_len - 117, msg);
        } else if (d->path_len > 0) {
            snprintf(d->err, d->err_len, "%s: %s", d->path, msg);
        } else {
            snprintf(d->err, d->err_len, "%s", msg);
        }
    }
    return -1;
}

static int oom(dec *d)
{
    return fail(d, PW_ERRNO(ENOMEM), "out of memory");
}

static size_t path_push(dec *d, const char *fmt, ...) PW_PRINTF(2, 3);
static size_t path_push(dec *d, const char *fmt, ...)
{
    size_t mark = d->path_len;
    if (mark < sizeof(d->path)) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(d->path + mark, sizeof(d->path) - mark, fmt, ap);
        va_end(ap);
        d->path_len = n < 0 ? mark : mark + (size_t)n;
        if (d->path_len >= sizeof(d->path)) {
            d->path_len = sizeof(d->path) - 1;
        }
    }
    return mark;
}

static void path_pop(dec *d, size_t mark)
{
    d->path_len = mark;
    if (mark < sizeof(d->path)) {
        d->path[mark] = '\0';
    }
}

static const char *kind_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "a value";
}

static ProtobufCMessage *new_message(dec *d, const ProtobufCMessageDescriptor *type)
{
    ProtobufCMessage *m = pw_malloc(type->sizeof_message);
    if (m == NULL) {
        oom(d);
        return NULL;
    }
    if (type->message_init != NULL) {
        protobuf_c_message_init(type, m);
    } else {
        pw__json_message_init(type, m);
    }
    return m;
}

/* ---- scalars ---- */

/* An integer from a JSON number (integral) or a decimal string. */
static int get_integer(dec *d, json_t *v, int is_unsigned, int64_t *s, uint64_t *u)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (is_unsigned && i < 0) {
            return fail(d, PW_INVALID_ARGUMENT, "expected an unsigned integer, got %lld",
                        (long long)i);
        }
        *s = (int64_t)i;
        *u = (uint64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double r = json_real_value(v);
        if (r != floor(r) || r < -9223372036854775808.0 || r >= 18446744073709551616.0 ||
            (is_unsigned && r < 0)) {
            return fail(d, PW_INVALID_ARGUMENT, "expected an integer, got %g", r);
        }
        if (is_unsigned) {
            *u = (uint64_t)r;
            *s = (int64_t)*u;
        } else {
            if (r >= 9223372036854775808.0) {
                return fail(d, PW_INVALID_ARGUMENT, "integer %g out of range", r);
            }
            *s = (int64_t)r;
            *u = (uint64_t)*s;
        }
        return 0;
    }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end;
        errno = 0;
        if (t[0] == '\0' || t[0] == ' ' || (is_unsigned && t[0] == '-')) {
            return fail(d, PW_INVALID_ARGUMENT, "expected an integer, got \"%.40s\"", t);
        }
        if (is_unsigned) {
            *u = strtoull(t, &end, 10);
            *s = (int64_t)*u;
        } else {
            *s = strtoll(t, &end, 10);
            *u = (uint64_t)*s;
        }
        if (*end != '\0' || (size_t)(end - t) != json_string_length(v)) {
            return fail(d, PW_INVALID_ARGUMENT, "expected an integer, got \"%.40s\"", t);
        }
        if (errno == ERANGE) {
            return fail(d, PW_INVALID_ARGUMENT, "integer \"%.40s\" out of range", t);
        }
        return 0;
    }
    return fail(d, PW_INVALID_ARGUMENT, "expected an integer, got %s", kind_name(v));
}

static int get_double(dec *d, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        if (strcmp(t, "NaN") == 0) {
            *out = NAN;
        } else if (strcmp(t, "Infinity") == 0) {
            *out = INFINITY;
        } else if (strcmp(t, "-Infinity") == 0) {
            *out = -INFINITY;
        } else {
            char *end;
            errno = 0;
            *out = strtod(t, &end);
            if (t[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(*out)) {
                return fail(d, PW_INVALID_ARGUMENT, "expected a number, got \"%.40s\"", t);
            }
        }
        return 0;
    }
    return fail(d, PW_INVALID_ARGUMENT, "expected a number, got %s", kind_name(v));
}

static int get_enum(dec *d, const ProtobufCEnumDescriptor *ed, json_t *v, int *out, int *skip)
{
    if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
        if (ev == NULL) {
            if (d->o->ignore_unknown) {
                *skip = 1;
                return 0;
            }
            return fail(d, PW_INVALID_ARGUMENT, "\"%.60s\" is not a value of enum %s",
                        json_string_value(v), ed->name);
        }
        *out = ev->value;
        return 0;
    }
    if (json_is_null(v) && strcmp(ed->name, "google.protobuf.NullValue") == 0) {
        *out = 0;
        return 0;
    }
    int64_t s;
    uint64_t u;
    if (!json_is_number(v)) {
        return fail(d, PW_INVALID_ARGUMENT, "expected an enum name or number, got %s",
                    kind_name(v));
    }
    if (get_integer(d, v, 0, &s, &u) != 0) {
        return -1;
    }
    if (s < INT32_MIN || s > INT32_MAX) {
        return fail(d, PW_INVALID_ARGUMENT, "enum number %" PRId64 " out of range", s);
    }
    *out = (int)s;
    return 0;
}

static int get_bytes(dec *d, json_t *v, ProtobufCBinaryData *out)
{
    if (!json_is_string(v)) {
        return fail(d, PW_INVALID_ARGUMENT, "expected base64 text, got %s", kind_name(v));
    }
    size_t len = json_string_length(v);
    uint8_t *buf = pw_malloc(len / 4 * 3 + 3);
    if (buf == NULL) {
        return oom(d);
    }
    size_t n;
    if (pw_base64_decode(json_string_value(v), len, buf, &n) != PW_OK) {
        pw_free(buf);
        return fail(d, PW_INVALID_ARGUMENT, "invalid base64");
    }
    out->data = buf;
    out->len = n;
    return 0;
}

static int dec_message_new(dec *d, const ProtobufCMessageDescriptor *type, json_t *v,
                           ProtobufCMessage **out)
{
    ProtobufCMessage *m = new_message(d, type);
    if (m == NULL) {
        return -1;
    }
    *out = m; /* owned by the parent from now on: freed with it on failure */
    return dec_into(d, m, v);
}

/*
 * One value of field f into storage p (an element, for repeated fields).
 * *skip is set when ignore_unknown dropped an unknown enum name.
 */
static int dec_value(dec *d, const ProtobufCFieldDescriptor *f, json_t *v, void *p, int *skip)
{
    int64_t s;
    uint64_t u;
    double r;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (get_integer(d, v, 0, &s, &u) != 0) {
            return -1;
        }
        if (s < INT32_MIN || s > INT32_MAX) {
            return fail(d, PW_INVALID_ARGUMENT, "%" PRId64 " does not fit in int32", s);
        }
        *(int32_t *)p = (int32_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (get_integer(d, v, 1, &s, &u) != 0) {
            return -1;
        }
        if (u > UINT32_MAX) {
            return fail(d, PW_INVALID_ARGUMENT, "%" PRIu64 " does not fit in uint32", u);
        }
        *(uint32_t *)p = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (get_integer(d, v, 0, &s, &u) != 0) {
            return -1;
        }
        *(int64_t *)p = s;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (get_integer(d, v, 1, &s, &u) != 0) {
            return -1;
        }
        *(uint64_t *)p = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (get_double(d, v, &r) != 0) {
            return -1;
        }
        if (isfinite(r) && (r > 3.4028234663852886e38 || r < -3.4028234663852886e38)) {
            return fail(d, PW_INVALID_ARGUMENT, "%g does not fit in a float", r);
        }
        *(float *)p = (float)r;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return get_double(d, v, (double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) {
            return fail(d, PW_INVALID_ARGUMENT, "expected true or false, got %s", kind_name(v));
        }
        *(protobuf_c_boolean *)p = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return get_enum(d, f->descriptor, v, (int *)p, skip);
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v)) {
            return fail(d, PW_INVALID_ARGUMENT, "expected a string, got %s", kind_name(v));
        }
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            return fail(d, PW_INVALID_ARGUMENT, "string contains a NUL character");
        }
        char *copy = pw_strdup(json_string_value(v));
        if (copy == NULL) {
            return oom(d);
        }
        *(char **)p = copy;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return get_bytes(d, v, p);
    case PROTOBUF_C_TYPE_MESSAGE:
        return dec_message_new(d, f->descriptor, v, (ProtobufCMessage **)p);
    }
    return fail(d, PW_INTERNAL, "field %s has an unknown type", f->name);
}

/* ---- fields ---- */

/* Grows a repeated field by one zeroed element; returns it. */
static void *repeated_push(dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    size_t *n = (size_t *)((uint8_t *)m + f->quantifier_offset);
    void **arr = pw__json_member(m, f);
    size_t sz = pw__json_elem_size(f->type);
    uint8_t *grown = pw_realloc(*arr, (*n + 1) * sz);
    if (grown == NULL) {
        oom(d);
        return NULL;
    }
    *arr = grown;
    memset(grown + *n * sz, 0, sz);
    return grown + (*n)++ * sz;
}

/* A map entry's key, from its JSON object key. */
static int dec_map_key(dec *d, const ProtobufCFieldDescriptor *kf, const char *key, void *p)
{
    json_t *tmp;
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
        tmp = json_string(key);
    } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0) {
            return fail(d, PW_INVALID_ARGUMENT, "map key \"%.40s\" is not true or false", key);
        }
        tmp = json_boolean(key[0] == 't');
    } else {
        tmp = json_string(key);
    }
    if (tmp == NULL) {
        return fail(d, PW_INVALID_ARGUMENT, "map key is not valid UTF-8");
    }
    int skip = 0;
    int rv = dec_value(d, kf, tmp, p, &skip);
    json_decref(tmp);
    return rv;
}

static int dec_map(dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v)
{
    if (!json_is_object(v)) {
        return fail(d, PW_INVALID_ARGUMENT, "expected an object (a map), got %s", kind_name(v));
    }
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        size_t mark = path_push(d, "[\"%.40s\"]", key);
        ProtobufCMessage **slot = repeated_push(d, m, f);
        ProtobufCMessage *entry = slot ? new_message(d, ed) : NULL;
        if (entry == NULL) {
            if (slot) {
                *slot = NULL;
                (*(size_t *)((uint8_t *)m + f->quantifier_offset))--;
            }
            return -1;
        }
        *slot = entry;
        const ProtobufCFieldDescriptor *vf = &ed->fields[1];
        if (json_is_null(val) && pw__json_wkt_of_field(vf) != PW_WKT_VALUE) {
            return fail(d, PW_INVALID_ARGUMENT, "null is not allowed as a map value");
        }
        int skip = 0;
        if (dec_map_key(d, &ed->fields[0], key, pw__json_member(entry, &ed->fields[0])) != 0 ||
            dec_value(d, vf, val, pw__json_member(entry, vf), &skip) != 0) {
            return -1;
        }
        path_pop(d, mark);
    }
    return 0;
}

static int dec_repeated(dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v)
{
    if (pw__json_is_map(f)) {
        return dec_map(d, m, f, v);
    }
    if (!json_is_array(v)) {
        return fail(d, PW_INVALID_ARGUMENT, "expected an array, got %s", kind_name(v));
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        size_t mark = path_push(d, "[%zu]", i);
        if (json_is_null(item) && pw__json_wkt_of_field(f) != PW_WKT_VALUE) {
            return fail(d, PW_INVALID_ARGUMENT, "null is not allowed in a repeated field");
        }
        void *slot = repeated_push(d, m, f);
        if (slot == NULL) {
            return -1;
        }
        int skip = 0;
        if (dec_value(d, f, item, slot, &skip) != 0) {
            return -1;
        }
        if (skip) {
            (*(size_t *)((uint8_t *)m + f->quantifier_offset))--;
        }
        path_pop(d, mark);
    }
    return 0;
}

/* Frees what a singular field holds before it is set (a key given twice under both names). */
static void clear_singular(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *p = pw__json_member(m, f);
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char **s = p;
        if (*s != NULL && *s != f->default_value) {
            pw_free(*s);
        }
        *s = NULL;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data != NULL && (def == NULL || b->data != def->data)) {
            pw_free(b->data);
        }
        b->data = NULL;
        b->len = 0;
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **sub = p;
        pw_protobuf_free(*sub);
        *sub = NULL;
    }
}

static int dec_field(dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, json_t *v)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        return json_is_null(v) ? 0 : dec_repeated(d, m, f, v);
    }
    int is_value = pw__json_wkt_of_field(f) == PW_WKT_VALUE;
    if (json_is_null(v) && !is_value &&
        !(f->type == PROTOBUF_C_TYPE_ENUM &&
          strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                 "google.protobuf.NullValue") == 0)) {
        return 0; /* null means "the default" */
    }
    uint8_t *q = (uint8_t *)m + f->quantifier_offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = (uint32_t *)q;
        if (*which != 0 && *which != f->id) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(m->descriptor, (unsigned)*which);
            return fail(d, PW_INVALID_ARGUMENT, "\"%s\" and \"%s\" are in one oneof; set only one",
                        other ? other->name : "?", f->name);
        }
    }
    clear_singular(m, f);
    int skip = 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        /* Set first, so a half-decoded member is freed with m on failure. */
        *(uint32_t *)q = f->id;
    }
    if (dec_value(d, f, v, pw__json_member(m, f), &skip) != 0 || skip) {
        if (skip && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            *(uint32_t *)q = 0;
        }
        return skip ? 0 : -1;
    }
    if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
        *(protobuf_c_boolean *)q = 1;
    }
    return 0;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *md,
                                                  const char *key)
{
    for (unsigned i = 0; i < md->n_fields; i++) {
        char json_name[256];
        pw_json_name(md->fields[i].name, json_name, sizeof(json_name));
        if (strcmp(json_name, key) == 0 || strcmp(md->fields[i].name, key) == 0) {
            return &md->fields[i];
        }
    }
    return NULL;
}

static int dec_object(dec *d, ProtobufCMessage *m, json_t *v, int skip_type)
{
    const ProtobufCMessageDescriptor *md = m->descriptor;
    if (!json_is_object(v)) {
        return fail(d, PW_INVALID_ARGUMENT, "expected an object (%s), got %s", md->name,
                    kind_name(v));
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        if (skip_type && strcmp(key, "@type") == 0) {
            continue;
        }
        const ProtobufCFieldDescriptor *f = find_field(md, key);
        if (f == NULL) {
            if (d->o->ignore_unknown) {
                continue;
            }
            return fail(d, PW_INVALID_ARGUMENT, "unknown field \"%.60s\" in %s", key, md->name);
        }
        size_t mark = path_push(d, "%s%.60s", d->path_len ? "." : "", key);
        if (dec_field(d, m, f, val) != 0) {
            return -1;
        }
        path_pop(d, mark);
    }
    return 0;
}

/* ---- well-known types ---- */

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessage *m, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
}

static void set_i64(ProtobufCMessage *m, const char *name, int64_t v)
{
    const ProtobufCFieldDescriptor *f = field_named(m, name);
    if (f->type == PROTOBUF_C_TYPE_INT64) {
        *(int64_t *)pw__json_member(m, f) = v;
    } else {
        *(int32_t *)pw__json_member(m, f) = (int32_t)v;
    }
}

/* Up to 9 fractional digits after '.', as nanoseconds; *pp moves past them. */
static int parse_nanos(const char **pp, int32_t *nanos)
{
    const char *p = *pp;
    *nanos = 0;
    if (*p != '.') {
        return 0;
    }
    p++;
    int digits = 0;
    int32_t n = 0;
    while (*p >= '0' && *p <= '9') {
        if (++digits > 9) {
            return -1;
        }
        n = n * 10 + (*p++ - '0');
    }
    if (digits == 0) {
        return -1;
    }
    for (int i = digits; i < 9; i++) {
        n *= 10;
    }
    *nanos = n;
    *pp = p;
    return 0;
}

static int parse_digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*pp)[i];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *pp += n;
    *out = v;
    return 0;
}

static int expect(const char **pp, char c)
{
    if (**pp != c) {
        return -1;
    }
    (*pp)++;
    return 0;
}

/* RFC 3339: 1972-01-01T10:00:20.021Z or with an offset (+01:00). */
static int parse_timestamp(const char *p, int64_t *seconds, int32_t *nanos)
{
    int y, mo, da, h, mi, s;
    if (parse_digits(&p, 4, &y) || expect(&p, '-') || parse_digits(&p, 2, &mo) || expect(&p, '-') ||
        parse_digits(&p, 2, &da) || (*p != 'T' && *p != 't') || (p++, parse_digits(&p, 2, &h)) ||
        expect(&p, ':') || parse_digits(&p, 2, &mi) || expect(&p, ':') || parse_digits(&p, 2, &s) ||
        parse_nanos(&p, nanos)) {
        return -1;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || da < 1 || da > mdays[mo - 1] || h > 23 || mi > 59 || s > 59) {
        return -1;
    }
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && da == 29 && !leap) {
        return -1;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (parse_digits(&p, 2, &oh) || expect(&p, ':') || parse_digits(&p, 2, &om) || oh > 23 ||
            om > 59) {
            return -1;
        }
        offset = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p != '\0') {
        return -1;
    }
    *seconds = pw__days_from_civil(y, (unsigned)mo, (unsigned)da) * 86400 + h * 3600 + mi * 60 + s -
               offset;
    return *seconds < PW_TS_MIN_SECONDS || *seconds > PW_TS_MAX_SECONDS ? -1 : 0;
}

static int dec_timestamp(dec *d, ProtobufCMessage *m, json_t *v)
{
    int64_t seconds;
    int32_t nanos;
    if (!json_is_string(v) || parse_timestamp(json_string_value(v), &seconds, &nanos) != 0) {
        return fail(d, PW_INVALID_ARGUMENT,
                    "expected an RFC 3339 timestamp between 0001-01-01 and 9999-12-31 such as "
                    "\"2026-11-24T18:30:00Z\", got %s%.40s%s",
                    json_is_string(v) ? "\"" : kind_name(v),
                    json_is_string(v) ? json_string_value(v) : "", json_is_string(v) ? "\"" : "");
    }
    set_i64(m, "seconds", seconds);
    set_i64(m, "nanos", nanos);
    return 0;
}

static int parse_duration(const char *p, int64_t *seconds, int32_t *nanos)
{
    int neg = *p == '-';
    p += neg;
    if (*p < '0' || *p > '9') {
        return -1;
    }
    int64_t s = 0;
    while (*p >= '0' && *p <= '9') {
        s = s * 10 + (*p++ - '0');
        if (s > PW_DUR_MAX_SECONDS) {
            return -1;
        }
    }
    if (parse_nanos(&p, nanos) != 0 || *p++ != 's' || *p != '\0') {
        return -1;
    }
    *seconds = neg ? -s : s;
    *nanos = neg ? -*nanos : *nanos;
    return 0;
}

static int dec_duration(dec *d, ProtobufCMessage *m, json_t *v)
{
    int64_t seconds;
    int32_t nanos;
    if (!json_is_string(v) || parse_duration(json_string_value(v), &seconds, &nanos) != 0) {
        return fail(d, PW_INVALID_ARGUMENT,
                    "expected a duration in seconds such as \"1.5s\" (at most 10000 years)");
    }
    set_i64(m, "seconds", seconds);
    set_i64(m, "nanos", nanos);
    return 0;
}

/* "fooBar,baz.qux" → paths ["foo_bar", "baz.qux"]; empty paths are skipped. */
static int dec_field_mask(dec *d, ProtobufCMessage *m, json_t *v)
{
    if (!json_is_string(v)) {
        return fail(d, PW_INVALID_ARGUMENT,
                    "expected a field mask string such as \"displayName,address.city\"");
    }
    const ProtobufCFieldDescriptor *f = field_named(m, "paths");
    const char *p = json_string_value(v);
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0) {
            p += end != NULL;
            continue;
        }
        char *snake = pw_malloc(n * 2 + 1);
        char **slot = snake ? repeated_push(d, m, f) : NULL;
        if (slot == NULL) {
            pw_free(snake);
            return snake ? -1 : oom(d);
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] >= 'A' && p[i] <= 'Z') {
                snake[k++] = '_';
                snake[k++] = (char)(p[i] - 'A' + 'a');
            } else {
                snake[k++] = p[i];
            }
        }
        snake[k] = '\0';
        *slot = snake;
        p += n + (end != NULL);
    }
    return 0;
}

/* google.protobuf.Value: whichever member the JSON kind selects. */
static int dec_value_wkt(dec *d, ProtobufCMessage *m, json_t *v)
{
    const char *member;
    switch (json_typeof(v)) {
    case JSON_NULL:
        member = "null_value";
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        member = "number_value";
        break;
    case JSON_STRING:
        member = "string_value";
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        member = "bool_value";
        break;
    case JSON_OBJECT:
        member = "struct_value";
        break;
    default:
        member = "list_value";
        break;
    }
    return dec_field(d, m, field_named(m, member), v);
}

static int dec_any(dec *d, ProtobufCMessage *m, json_t *v)
{
    if (!json_is_object(v)) {
        return fail(d, PW_INVALID_ARGUMENT, "expected an object with \"@type\", got %s",
                    kind_name(v));
    }
    if (json_object_size(v) == 0) {
        return 0;
    }
    json_t *t = json_object_get(v, "@type");
    if (!json_is_string(t)) {
        return fail(d, PW_INVALID_ARGUMENT,
                    "an Any needs \"@type\" (e.g. \"type.googleapis.com/google.rpc.ErrorInfo\")");
    }
    const char *url = json_string_value(t);
    const ProtobufCMessageDescriptor *type = pw__json_resolve(d->o, url);
    if (type == NULL) {
        return fail(d, PW_INVALID_ARGUMENT, "unknown type \"%.80s\" in Any", url);
    }
    ProtobufCMessage *inner = new_message(d, type);
    if (inner == NULL) {
        return -1;
    }
    int rv;
    if (pw__json_wkt(type) != PW_WKT_NONE) {
        json_t *value = json_object_get(v, "value");
        rv = value ? dec_into(d, inner, value) : 0;
    } else {
        rv = dec_object(d, inner, v, 1);
    }
    ProtobufCBinaryData packed = {0, NULL};
    if (rv == 0) {
        packed.len = protobuf_c_message_get_packed_size(inner);
        packed.data = pw_malloc(packed.len ? packed.len : 1);
        if (packed.data == NULL) {
            rv = oom(d);
        } else {
            protobuf_c_message_pack(inner, packed.data);
        }
    }
    pw_protobuf_free(inner);
    if (rv != 0) {
        return -1;
    }
    const ProtobufCFieldDescriptor *uf = field_named(m, "type_url");
    clear_singular(m, uf);
    char *copy = pw_strdup(url);
    if (copy == NULL) {
        pw_free(packed.data);
        return oom(d);
    }
    *(char **)pw__json_member(m, uf) = copy;
    const ProtobufCFieldDescriptor *vf = field_named(m, "value");
    clear_singular(m, vf);
    *(ProtobufCBinaryData *)pw__json_member(m, vf) = packed;
    return 0;
}

/* Fills m (already initialised) from v. */
static int dec_into(dec *d, ProtobufCMessage *m, json_t *v)
{
    if (++d->depth > PW_JSON_MAX_DEPTH) {
        return fail(d, PW_INVALID_ARGUMENT, "nested deeper than %d levels", PW_JSON_MAX_DEPTH);
    }
    int rv;
    switch (pw__json_wkt(m->descriptor)) {
    case PW_WKT_TIMESTAMP:
        rv = dec_timestamp(d, m, v);
        break;
    case PW_WKT_DURATION:
        rv = dec_duration(d, m, v);
        break;
    case PW_WKT_WRAPPER:
        rv = json_is_null(v) ? 0 : dec_field(d, m, field_named(m, "value"), v);
        break;
    case PW_WKT_FIELD_MASK:
        rv = dec_field_mask(d, m, v);
        break;
    case PW_WKT_STRUCT:
        rv = dec_field(d, m, field_named(m, "fields"), v);
        break;
    case PW_WKT_LIST_VALUE:
        rv = dec_field(d, m, field_named(m, "values"), v);
        break;
    case PW_WKT_VALUE:
        rv = dec_value_wkt(d, m, v);
        break;
    case PW_WKT_ANY:
        rv = dec_any(d, m, v);
        break;
    default:
        rv = dec_object(d, m, v, 0);
        break;
    }
    d->depth--;
    return rv;
}

pw_status pw_json_decode(const ProtobufCMessageDescriptor *type, const char *json, size_t len,
                         const pw_json_options *opts, ProtobufCMessage **out, char *err,
                         size_t err_len)
{
    static const pw_json_options defaults = {0};
    dec d = {.o = opts ? opts : &defaults, .err = err, .err_len = err_len};
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fail(&d, PW_INVALID_ARGUMENT, "invalid JSON at line %d, column %d: %s", jerr.line,
             jerr.column, jerr.text);
        return d.rv;
    }
    ProtobufCMessage *m = new_message(&d, type);
    if (m != NULL && dec_into(&d, m, root) != 0) {
        pw_protobuf_free(m);
        m = NULL;
    }
    json_decref(root);
    *out = m;
    return m != NULL ? PW_OK : d.rv;
}
