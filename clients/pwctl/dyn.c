/*
 * dyn.c: protobuf-c descriptors from FileDescriptorProtos. Each message gets a
 * C-like layout computed here (ProtobufCMessage base, then each field at its
 * natural alignment: counts and arrays for repeated fields, has_ flags for
 * proto2 optional scalars, one case word and a shared union per oneof), which
 * is all protobuf-c needs to pack, unpack and free messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include "dyn.h"
#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;

typedef struct dyn_msg {
    char *full_name;
    const MsgProto *proto;
    const FileProto *file;
    ProtobufCMessageDescriptor desc;
} dyn_msg;

typedef struct dyn_enum_t {
    char *full_name;
    const EnumProto *proto;
    ProtobufCEnumDescriptor desc;
} dyn_enum_t;

struct dyn_pool {
    FileProto **files;
    size_t nfiles;
    dyn_msg *msgs;
    size_t nmsgs;
    dyn_enum_t *enums;
    size_t nenums;
    dyn_method *methods;
    size_t nmethods;
    char **services;
    size_t nservices;
    /* Everything else allocated for descriptors, freed with the pool. */
    void **allocs;
    size_t nallocs;
};

static void *keep(dyn_pool *p, void *ptr)
{
    void **a = realloc(p->allocs, (p->nallocs + 1) * sizeof(*a));
    if (a == NULL) {
        abort(); /* a CLI tool: out of memory ends it */
    }
    p->allocs = a;
    p->allocs[p->nallocs++] = ptr;
    return ptr;
}

static void *zalloc(dyn_pool *p, size_t n)
{
    void *ptr = calloc(1, n ? n : 1);
    if (ptr == NULL) {
        abort();
    }
    return keep(p, ptr);
}

static char *join(dyn_pool *p, const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = zalloc(p, n);
    snprintf(s, n, "%s%s%s", a, a[0] ? "." : "", b);
    return s;
}

dyn_pool *dyn_new(void)
{
    return calloc(1, sizeof(dyn_pool));
}

void dyn_free(dyn_pool *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->nfiles; i++) {
        google__protobuf__file_descriptor_proto__free_unpacked(p->files[i],
                                                               pw_protobuf_allocator());
    }
    for (size_t i = 0; i < p->nallocs; i++) {
        free(p->allocs[i]);
    }
    free(p->allocs);
    free(p->files);
    free(p->msgs);
    free(p->enums);
    free(p->methods);
    free(p->services);
    free(p);
}

int dyn_has_file(const dyn_pool *p, const char *name)
{
    for (size_t i = 0; i < p->nfiles; i++) {
        if (strcmp(p->files[i]->name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- checking what a server sent ---- */

#define PW_MAX_FIELD_NUMBER 536870911 /* 2^29 - 1 */

static int enum_ok(const EnumProto *e)
{
    if (e->name == NULL) {
        return 0;
    }
    for (size_t i = 0; i < e->n_value; i++) {
        if (e->value[i]->name == NULL) {
            return 0;
        }
    }
    return 1;
}

/* Every name the builder reads is present and every field number is one the wire can carry. */
static int msg_ok(const MsgProto *m, int depth)
{
    if (m->name == NULL || depth > 64) {
        return 0;
    }
    for (size_t i = 0; i < m->n_field; i++) {
        const FieldProto *f = m->field[i];
        if (f->name == NULL || f->number < 1 || f->number > PW_MAX_FIELD_NUMBER) {
            return 0;
        }
    }
    for (size_t i = 0; i < m->n_nested_type; i++) {
        if (!msg_ok(m->nested_type[i], depth + 1)) {
            return 0;
        }
    }
    for (size_t i = 0; i < m->n_enum_type; i++) {
        if (!enum_ok(m->enum_type[i])) {
            return 0;
        }
    }
    return 1;
}

static int file_ok(const FileProto *f)
{
    if (f->name == NULL) {
        return 0;
    }
    for (size_t i = 0; i < f->n_message_type; i++) {
        if (!msg_ok(f->message_type[i], 0)) {
            return 0;
        }
    }
    for (size_t i = 0; i < f->n_enum_type; i++) {
        if (!enum_ok(f->enum_type[i])) {
            return 0;
        }
    }
    for (size_t i = 0; i < f->n_service; i++) {
        const Google__Protobuf__ServiceDescriptorProto *s = f->service[i];
        if (s->name == NULL) {
            return 0;
        }
        for (size_t k = 0; k < s->n_method; k++) {
            const Google__Protobuf__MethodDescriptorProto *m = s->method[k];
            if (m->name == NULL || m->input_type == NULL || m->output_type == NULL) {
                return 0;
            }
        }
    }
    return 1;
}

pw_status dyn_add_file(dyn_pool *p, const uint8_t *data, size_t len)
{
    FileProto *f =
        google__protobuf__file_descriptor_proto__unpack(pw_protobuf_allocator(), len, data);
    if (f == NULL || !file_ok(f)) {
        google__protobuf__file_descriptor_proto__free_unpacked(f, pw_protobuf_allocator());
        return PW_INVALID_ARGUMENT;
    }
    if (dyn_has_file(p, f->name)) {
        google__protobuf__file_descriptor_proto__free_unpacked(f, pw_protobuf_allocator());
        return PW_OK;
    }
    FileProto **files = realloc(p->files, (p->nfiles + 1) * sizeof(*files));
    if (files == NULL) {
        abort();
    }
    p->files = files;
    p->files[p->nfiles++] = f;
    return PW_OK;
}

/* ---- collecting types ---- */

static void collect_enum(dyn_pool *p, const char *scope, const EnumProto *e)
{
    p->enums = realloc(p->enums, (p->nenums + 1) * sizeof(*p->enums));
    if (p->enums == NULL) {
        abort();
    }
    p->enums[p->nenums++] = (dyn_enum_t){.full_name = join(p, scope, e->name), .proto = e};
}

static void collect_msg(dyn_pool *p, const FileProto *f, const char *scope, const MsgProto *m)
{
    char *name = join(p, scope, m->name);
    p->msgs = realloc(p->msgs, (p->nmsgs + 1) * sizeof(*p->msgs));
    if (p->msgs == NULL) {
        abort();
    }
    p->msgs[p->nmsgs++] = (dyn_msg){.full_name = name, .proto = m, .file = f};
    for (size_t i = 0; i < m->n_nested_type; i++) {
        collect_msg(p, f, name, m->nested_type[i]);
    }
    for (size_t i = 0; i < m->n_enum_type; i++) {
        collect_enum(p, name, m->enum_type[i]);
    }
}

static dyn_msg *find_msg(const dyn_pool *p, const char *name)
{
    if (name[0] == '.') {
        name++;
    }
    for (size_t i = 0; i < p->nmsgs; i++) {
        if (strcmp(p->msgs[i].full_name, name) == 0) {
            return &p->msgs[i];
        }
    }
    return NULL;
}

static dyn_enum_t *find_enum(const dyn_pool *p, const char *name)
{
    if (name[0] == '.') {
        name++;
    }
    for (size_t i = 0; i < p->nenums; i++) {
        if (strcmp(p->enums[i].full_name, name) == 0) {
            return &p->enums[i];
        }
    }
    return NULL;
}

/* ---- enums ---- */

static int value_cmp(const void *a, const void *b)
{
    int x = ((const ProtobufCEnumValue *)a)->value, y = ((const ProtobufCEnumValue *)b)->value;
    return (x > y) - (x < y);
}

static int index_cmp(const void *a, const void *b)
{
    return strcmp(((const ProtobufCEnumValueIndex *)a)->name,
                  ((const ProtobufCEnumValueIndex *)b)->name);
}

static void build_enum(dyn_pool *p, dyn_enum_t *e)
{
    const EnumProto *ep = e->proto;
    size_t n = ep->n_value;
    ProtobufCEnumValue *values = zalloc(p, n * sizeof(*values));
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        /* Aliases (allow_alias) keep the first name per number. */
        int dup = 0;
        for (size_t k = 0; k < kept; k++) {
            dup |= values[k].value == ep->value[i]->number;
        }
        if (!dup) {
            values[kept++] =
                (ProtobufCEnumValue){ep->value[i]->name, ep->value[i]->name, ep->value[i]->number};
        }
    }
    qsort(values, kept, sizeof(*values), value_cmp);
    ProtobufCEnumValueIndex *by_name = zalloc(p, kept * sizeof(*by_name));
    for (size_t i = 0; i < kept; i++) {
        by_name[i] = (ProtobufCEnumValueIndex){values[i].name, (unsigned)i};
    }
    qsort(by_name, kept, sizeof(*by_name), index_cmp);
    ProtobufCIntRange *ranges = zalloc(p, (kept + 1) * sizeof(*ranges));
    unsigned nr = 0;
    for (size_t i = 0; i < kept; i++) {
        if (i == 0 || values[i].value != values[i - 1].value + 1) {
            ranges[nr++] = (ProtobufCIntRange){values[i].value, (unsigned)i};
        }
    }
    ranges[nr] = (ProtobufCIntRange){0, (unsigned)kept};
    const char *dot = strrchr(e->full_name, '.');
    e->desc = (ProtobufCEnumDescriptor){
        .magic = PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC,
        .name = e->full_name,
        .short_name = dot ? dot + 1 : e->full_name,
        .c_name = e->full_name,
        .package_name = "",
        .n_values = (unsigned)kept,
        .values = values,
        .n_value_names = (unsigned)kept,
        .values_by_name = by_name,
        .n_value_ranges = nr,
        .value_ranges = ranges,
    };
}

/* ---- messages ---- */

static ProtobufCType field_type(Google__Protobuf__FieldDescriptorProto__Type t)
{
    switch (t) {
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_DOUBLE:
        return PROTOBUF_C_TYPE_DOUBLE;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FLOAT:
        return PROTOBUF_C_TYPE_FLOAT;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64:
        return PROTOBUF_C_TYPE_INT64;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT64:
        return PROTOBUF_C_TYPE_UINT64;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32:
        return PROTOBUF_C_TYPE_INT32;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED64:
        return PROTOBUF_C_TYPE_FIXED64;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED32:
        return PROTOBUF_C_TYPE_FIXED32;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BOOL:
        return PROTOBUF_C_TYPE_BOOL;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING:
        return PROTOBUF_C_TYPE_STRING;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES:
        return PROTOBUF_C_TYPE_BYTES;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT32:
        return PROTOBUF_C_TYPE_UINT32;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM:
        return PROTOBUF_C_TYPE_ENUM;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED32:
        return PROTOBUF_C_TYPE_SFIXED32;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED64:
        return PROTOBUF_C_TYPE_SFIXED64;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT32:
        return PROTOBUF_C_TYPE_SINT32;
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT64:
        return PROTOBUF_C_TYPE_SINT64;
    default:
        return PROTOBUF_C_TYPE_MESSAGE; /* MESSAGE; GROUP is not supported by protobuf-c either */
    }
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BOOL:
        return 4;
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 8;
    }
}

static size_t align_to(size_t off, size_t a)
{
    return (off + a - 1) / a * a;
}

static int field_id_cmp(const void *a, const void *b)
{
    uint32_t x = ((const ProtobufCFieldDescriptor *)a)->id,
             y = ((const ProtobufCFieldDescriptor *)b)->id;
    return (x > y) - (x < y);
}

static int field_name_cmp(const void *a, const void *b, void *fields)
{
    const ProtobufCFieldDescriptor *f = fields;
    return strcmp(f[*(const unsigned *)a].name, f[*(const unsigned *)b].name);
}

static int is_proto3(const FileProto *f)
{
    return f->syntax != NULL && strcmp(f->syntax, "proto3") == 0;
}

static pw_status build_msg(dyn_pool *p, dyn_msg *m, char *err, size_t err_len)
{
    const MsgProto *mp = m->proto;
    size_t n = mp->n_field;
    ProtobufCFieldDescriptor *fields = zalloc(p, n * sizeof(*fields));
    size_t off = sizeof(ProtobufCMessage);
    /* Oneofs: case word, then a union as large as its largest member. */
    size_t noneof = mp->n_oneof_decl;
    size_t *oneof_case = zalloc(p, (noneof + 1) * sizeof(size_t));
    size_t *oneof_union = zalloc(p, (noneof + 1) * sizeof(size_t));
    size_t *oneof_size = zalloc(p, (noneof + 1) * sizeof(size_t));
    int *oneof_real = zalloc(p, (noneof + 1) * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        const FieldProto *fp = mp->field[i];
        if (fp->has_oneof_index && !(fp->has_proto3_optional && fp->proto3_optional) &&
            (size_t)fp->oneof_index < noneof) {
            size_t sz = type_size(field_type(fp->type));
            oneof_real[fp->oneof_index] = 1;
            if (sz > oneof_size[fp->oneof_index]) {
                oneof_size[fp->oneof_index] = sz;
            }
        }
    }
    for (size_t o = 0; o < noneof; o++) {
        if (oneof_real[o]) {
            off = align_to(off, 4);
            oneof_case[o] = off;
            off += 4;
            off = align_to(off, 8);
            oneof_union[o] = off;
            off += oneof_size[o];
        }
    }
    for (size_t i = 0; i < n; i++) {
        const FieldProto *fp = mp->field[i];
        ProtobufCFieldDescriptor *f = &fields[i];
        f->name = fp->name;
        f->id = (uint32_t)fp->number;
        f->type = field_type(fp->type);
        int repeated = fp->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED;
        int in_oneof =
            fp->has_oneof_index && (size_t)fp->oneof_index < noneof && oneof_real[fp->oneof_index];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            dyn_msg *t = find_msg(p, fp->type_name ? fp->type_name : "");
            if (t == NULL) {
                snprintf(err, err_len, "type %s (field %s.%s) is in no file we have", fp->type_name,
                         m->full_name, fp->name);
                return PW_NOT_FOUND;
            }
            f->descriptor = &t->desc;
        } else if (f->type == PROTOBUF_C_TYPE_ENUM) {
            dyn_enum_t *t = find_enum(p, fp->type_name ? fp->type_name : "");
            if (t == NULL) {
                snprintf(err, err_len, "enum %s (field %s.%s) is in no file we have", fp->type_name,
                         m->full_name, fp->name);
                return PW_NOT_FOUND;
            }
            f->descriptor = &t->desc;
        }
        if (repeated) {
            f->label = PROTOBUF_C_LABEL_REPEATED;
            off = align_to(off, 8);
            f->quantifier_offset = (unsigned)off;
            off += sizeof(size_t);
            f->offset = (unsigned)off;
            off += sizeof(void *);
            if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_BYTES &&
                f->type != PROTOBUF_C_TYPE_MESSAGE) {
                f->flags |= PROTOBUF_C_FIELD_FLAG_PACKED * (unsigned)is_proto3(m->file);
            }
            continue;
        }
        if (in_oneof) {
            f->label = PROTOBUF_C_LABEL_OPTIONAL;
            f->flags |= PROTOBUF_C_FIELD_FLAG_ONEOF;
            f->quantifier_offset = (unsigned)oneof_case[fp->oneof_index];
            f->offset = (unsigned)oneof_union[fp->oneof_index];
            continue;
        }
        int presence = !is_proto3(m->file) || (fp->has_proto3_optional && fp->proto3_optional);
        int pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
        if (fp->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED) {
            f->label = PROTOBUF_C_LABEL_REQUIRED;
        } else if (presence) {
            f->label = PROTOBUF_C_LABEL_OPTIONAL;
            if (!pointer) {
                off = align_to(off, 4);
                f->quantifier_offset = (unsigned)off;
                off += sizeof(protobuf_c_boolean);
            }
        } else {
            f->label = PROTOBUF_C_LABEL_NONE;
        }
        size_t sz = type_size(f->type);
        off = align_to(off, sz >= 8 ? 8 : 4);
        f->offset = (unsigned)off;
        off += sz;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            f->default_value = protobuf_c_empty_string;
        }
    }
    qsort(fields, n, sizeof(*fields), field_id_cmp);
    unsigned *by_name = zalloc(p, n * sizeof(*by_name));
    for (size_t i = 0; i < n; i++) {
        by_name[i] = (unsigned)i;
    }
    qsort_r(by_name, n, sizeof(*by_name), field_name_cmp, fields);
    ProtobufCIntRange *ranges = zalloc(p, (n + 1) * sizeof(*ranges));
    unsigned nr = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || fields[i].id != fields[i - 1].id + 1) {
            ranges[nr++] = (ProtobufCIntRange){(int)fields[i].id, (unsigned)i};
        }
    }
    ranges[nr] = (ProtobufCIntRange){0, (unsigned)n};
    const char *dot = strrchr(m->full_name, '.');
    m->desc = (ProtobufCMessageDescriptor){
        .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
        .name = m->full_name,
        .short_name = dot ? dot + 1 : m->full_name,
        .c_name = m->full_name,
        .package_name = m->file->package ? m->file->package : "",
        .sizeof_message = align_to(off, 8),
        .n_fields = (unsigned)n,
        .fields = fields,
        .fields_sorted_by_name = by_name,
        .n_field_ranges = nr,
        .field_ranges = ranges,
        .message_init = NULL, /* protobuf-c's generic initialisation */
    };
    return PW_OK;
}

pw_status dyn_build(dyn_pool *p, char *err, size_t err_len)
{
    for (size_t i = 0; i < p->nfiles; i++) {
        const FileProto *f = p->files[i];
        const char *pkg = f->package ? f->package : "";
        for (size_t k = 0; k < f->n_message_type; k++) {
            collect_msg(p, f, pkg, f->message_type[k]);
        }
        for (size_t k = 0; k < f->n_enum_type; k++) {
            collect_enum(p, pkg, f->enum_type[k]);
        }
    }
    for (size_t i = 0; i < p->nenums; i++) {
        build_enum(p, &p->enums[i]);
    }
    for (size_t i = 0; i < p->nmsgs; i++) {
        pw_status rv = build_msg(p, &p->msgs[i], err, err_len);
        if (rv != PW_OK) {
            return rv;
        }
    }
    for (size_t i = 0; i < p->nfiles; i++) {
        const FileProto *f = p->files[i];
        const char *pkg = f->package ? f->package : "";
        for (size_t s = 0; s < f->n_service; s++) {
            const Google__Protobuf__ServiceDescriptorProto *sp = f->service[s];
            char *svc = join(p, pkg, sp->name);
            p->services = realloc(p->services, (p->nservices + 1) * sizeof(*p->services));
            if (p->services == NULL) {
                abort();
            }
            p->services[p->nservices++] = svc;
            for (size_t k = 0; k < sp->n_method; k++) {
                const Google__Protobuf__MethodDescriptorProto *mp = sp->method[k];
                dyn_msg *in = find_msg(p, mp->input_type), *out = find_msg(p, mp->output_type);
                if (in == NULL || out == NULL) {
                    snprintf(err, err_len, "method %s/%s uses a type in no file we have", svc,
                             mp->name);
                    return PW_NOT_FOUND;
                }
                p->methods = realloc(p->methods, (p->nmethods + 1) * sizeof(*p->methods));
                if (p->methods == NULL) {
                    abort();
                }
                p->methods[p->nmethods++] = (dyn_method){svc,
                                                         mp->name,
                                                         &in->desc,
                                                         &out->desc,
                                                         mp->client_streaming,
                                                         mp->server_streaming};
            }
        }
    }
    return PW_OK;
}

const ProtobufCMessageDescriptor *dyn_message(const dyn_pool *p, const char *name)
{
    dyn_msg *m = find_msg(p, name);
    return m ? &m->desc : NULL;
}

const ProtobufCEnumDescriptor *dyn_enum(const dyn_pool *p, const char *name)
{
    dyn_enum_t *e = find_enum(p, name);
    return e ? &e->desc : NULL;
}

const dyn_method *dyn_find_method(const dyn_pool *p, const char *name)
{
    if (name[0] == '/') {
        name++;
    }
    for (size_t i = 0; i < p->nmethods; i++) {
        const dyn_method *m = &p->methods[i];
        size_t sn = strlen(m->service);
        if (strncmp(name, m->service, sn) == 0 && (name[sn] == '/' || name[sn] == '.') &&
            strcmp(name + sn + 1, m->name) == 0) {
            return m;
        }
    }
    return NULL;
}

const char *dyn_service(const dyn_pool *p, size_t i)
{
    return i < p->nservices ? p->services[i] : NULL;
}

const dyn_method *dyn_method_at(const dyn_pool *p, size_t i)
{
    return i < p->nmethods ? &p->methods[i] : NULL;
}
