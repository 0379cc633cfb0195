/*
 * json_common.c: pieces of the proto3 JSON mapping used in both directions:
 * names, well-known type detection, field presence, map detection, the Any
 * type registry, calendar arithmetic and base64.
 */
#include <stdio.h>
#include <string.h>
#include "json_common.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

void pw_json_name(const char *proto_name, char *out, size_t cap)
{
    size_t n = 0;
    int upper = 0;
    if (cap == 0) {
        return;
    }
    for (const char *p = proto_name; *p && n + 1 < cap; p++) {
        if (*p == '_') {
            upper = 1;
            continue;
        }
        char c = *p;
        if (upper && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        upper = 0;
        out[n++] = c;
    }
    out[n] = '\0';
}

pw__wkt pw__json_wkt(const ProtobufCMessageDescriptor *d)
{
    static const struct {
        const char *name;
        pw__wkt kind;
    } table[] = {
        {"google.protobuf.Timestamp", PW_WKT_TIMESTAMP},
        {"google.protobuf.Duration", PW_WKT_DURATION},
        {"google.protobuf.FieldMask", PW_WKT_FIELD_MASK},
        {"google.protobuf.Struct", PW_WKT_STRUCT},
        {"google.protobuf.Value", PW_WKT_VALUE},
        {"google.protobuf.ListValue", PW_WKT_LIST_VALUE},
        {"google.protobuf.Any", PW_WKT_ANY},
        {"google.protobuf.DoubleValue", PW_WKT_WRAPPER},
        {"google.protobuf.FloatValue", PW_WKT_WRAPPER},
        {"google.protobuf.Int64Value", PW_WKT_WRAPPER},
        {"google.protobuf.UInt64Value", PW_WKT_WRAPPER},
        {"google.protobuf.Int32Value", PW_WKT_WRAPPER},
        {"google.protobuf.UInt32Value", PW_WKT_WRAPPER},
        {"google.protobuf.BoolValue", PW_WKT_WRAPPER},
        {"google.protobuf.StringValue", PW_WKT_WRAPPER},
        {"google.protobuf.BytesValue", PW_WKT_WRAPPER},
    };
    if (strncmp(d->name, "google.protobuf.", 16) != 0) {
        return PW_WKT_NONE;
    }
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(d->name, table[i].name) == 0) {
            return table[i].kind;
        }
    }
    return PW_WKT_NONE;
}

pw__wkt pw__json_wkt_of_field(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE ? pw__json_wkt(f->descriptor) : PW_WKT_NONE;
}

size_t pw__json_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* protoc names a map's entry type after the field: "fields" → "FieldsEntry", key = 1, value = 2. */
int pw__json_is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) {
        return 0;
    }
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0) {
        return 0;
    }
    char want[256];
    pw_json_name(f->name, want, sizeof(want) - 6);
    if (want[0] >= 'a' && want[0] <= 'z') {
        want[0] = (char)(want[0] - 'a' + 'A');
    }
    strcat(want, "Entry");
    return strcmp(e->short_name, want) == 0;
}

static int is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

int pw__json_has(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const void *v = pw__json_member(m, f);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return *(const uint32_t *)((const uint8_t *)m + f->quantifier_offset) == f->id;
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_REPEATED:
        return *(const size_t *)((const uint8_t *)m + f->quantifier_offset) > 0;
    case PROTOBUF_C_LABEL_REQUIRED:
        return 1;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
            const void *p = *(const void *const *)v;
            return p != NULL && p != f->default_value;
        }
        return *(const protobuf_c_boolean *)((const uint8_t *)m + f->quantifier_offset);
    case PROTOBUF_C_LABEL_NONE:
        break;
    }
    /* proto3 without presence: set when not the default. */
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)v;
        return s != NULL && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)v)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(const void *const *)v != NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)v != 0.0f || is_zero(v, sizeof(float)) == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)v != 0.0 || is_zero(v, sizeof(double)) == 0;
    default:
        return !is_zero(v, pw__json_elem_size(f->type));
    }
}

static const ProtobufCMessageDescriptor *const known_types[] = {
    &google__protobuf__any__descriptor,
    &google__protobuf__duration__descriptor,
    &google__protobuf__empty__descriptor,
    &google__protobuf__field_mask__descriptor,
    &google__protobuf__struct__descriptor,
    &google__protobuf__value__descriptor,
    &google__protobuf__list_value__descriptor,
    &google__protobuf__timestamp__descriptor,
    &google__protobuf__double_value__descriptor,
    &google__protobuf__float_value__descriptor,
    &google__protobuf__int64_value__descriptor,
    &google__protobuf__uint64_value__descriptor,
    &google__protobuf__int32_value__descriptor,
    &google__protobuf__uint32_value__descriptor,
    &google__protobuf__bool_value__descriptor,
    &google__protobuf__string_value__descriptor,
    &google__protobuf__bytes_value__descriptor,
    &google__rpc__status__descriptor,
    &google__rpc__error_info__descriptor,
    &google__rpc__retry_info__descriptor,
    &google__rpc__debug_info__descriptor,
    &google__rpc__quota_failure__descriptor,
    &google__rpc__precondition_failure__descriptor,
    &google__rpc__bad_request__descriptor,
    &google__rpc__request_info__descriptor,
    &google__rpc__resource_info__descriptor,
    &google__rpc__help__descriptor,
    &google__rpc__localized_message__descriptor,
};

const ProtobufCMessageDescriptor *pw__json_resolve(const pw_json_options *o, const char *url)
{
    const char *slash = strrchr(url, '/');
    const char *name = slash ? slash + 1 : url;
    if (o != NULL && o->resolve != NULL) {
        const ProtobufCMessageDescriptor *d = o->resolve(name, o->resolve_user_data);
        if (d != NULL) {
            return d;
        }
    }
    for (size_t i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++) {
        if (strcmp(known_types[i]->name, name) == 0) {
            return known_types[i];
        }
    }
    return NULL;
}

/* Days since 1970-01-01 of a civil date; the era arithmetic keeps it exact for negative years. */
int64_t pw__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void pw__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    size_t len;
    uint32_t min;
    if (s[0] < 0x80) {
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        len = 2, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    uint32_t cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

pw_status pw__json_append_string(pw_buf *out, const char *s, size_t n)
{
    pw_status rv = pw_buf_reserve(out, n + 2);
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, run = 0;
    if (rv == PW_OK) {
        rv = pw_buf_append(out, "\"", 1);
    }
    while (rv == PW_OK && i < n) {
        uint8_t c = p[i];
        const char *esc = NULL;
        char tmp[8];
        size_t ulen = utf8_len(p + i, n - i);
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
            esc = tmp;
        } else if (ulen == 0) {
            esc = "\\ufffd";
            ulen = 1;
        }
        if (esc == NULL) {
            run += ulen;
            i += ulen;
            continue;
        }
        rv = pw_buf_append(out, p + i - run, run);
        run = 0;
        if (rv == PW_OK) {
            rv = pw_buf_append(out, esc, strlen(esc));
        }
        i += ulen ? ulen : 1;
    }
    if (rv == PW_OK && run > 0) { /* s may be NULL when n == 0 */
        rv = pw_buf_append(out, p + i - run, run);
    }
    return rv == PW_OK ? pw_buf_append(out, "\"", 1) : rv;
}

void pw__json_message_init(const ProtobufCMessageDescriptor *d, void *mem)
{
    memset(mem, 0, d->sizeof_message);
    ((ProtobufCMessage *)mem)->descriptor = d;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->default_value == NULL || f->label == PROTOBUF_C_LABEL_REPEATED ||
            (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            continue;
        }
        void *member = pw__json_member(mem, f);
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            *(const void **)member = f->default_value;
        } else if (f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_BYTES) {
            memcpy(member, f->default_value, pw__json_elem_size(f->type));
        }
    }
}
