/*
 * fingerprint.c: the request fingerprint of the idempotent transaction
 * (api-conventions.md): SHA-256 of the request packed without its
 * idempotency key, with the entries of every map field in a canonical order.
 *
 * protobuf-c packs fields in number order, but a map's entries in the order
 * they were received, and a client may send the same map in another order
 * on a retry; and it packs the unknown fields it kept, which a newer client
 * may send and which this build does not act on. So unless the request is
 * flat and has none, it is copied (pack, unpack), unknown fields are dropped
 * at every level, every map's entries are sorted by their packed bytes
 * (keys are unique and come first, so this is a total order that does not
 * depend on the order received), and the copy is packed again.
 */
#include <stdlib.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/alloc.h>
#include "svc.h"

#define MAX_DEPTH 16

/* A map field's element type: protoc's synthesized "<Name>Entry" with key = 1 and value = 2. */
static int is_map_entry(const ProtobufCMessageDescriptor *d)
{
    size_t n = strlen(d->name);
    return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0 &&
           d->fields[0].id == 1 && strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
           strcmp(d->fields[1].name, "value") == 0;
}

/* 1 when d has a message-typed field: its values may carry unknown fields of their own. */
static int has_messages(const ProtobufCMessageDescriptor *d)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE) {
            return 1;
        }
    }
    return 0;
}

static int has_maps(const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > MAX_DEPTH) {
        return 0; /* a recursive type: its maps, if any, are found nearer the top */
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        const ProtobufCMessageDescriptor *sub = f->descriptor;
        if ((f->label == PROTOBUF_C_LABEL_REPEATED && is_map_entry(sub)) ||
            has_maps(sub, depth + 1)) {
            return 1;
        }
    }
    return 0;
}

typedef struct packed_entry {
    ProtobufCMessage *entry;
    uint8_t *bytes;
    size_t len;
} packed_entry;

static int entry_cmp(const void *a, const void *b)
{
    const packed_entry *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->bytes, y->bytes, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static void sort_entries(ProtobufCMessage **entries, size_t n)
{
    packed_entry *p = pw_calloc(n ? n : 1, sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        p[i].entry = entries[i];
        p[i].len = protobuf_c_message_get_packed_size(entries[i]);
        p[i].bytes = pw_malloc(p[i].len ? p[i].len : 1);
        protobuf_c_message_pack(entries[i], p[i].bytes);
    }
    qsort(p, n, sizeof(*p), entry_cmp);
    for (size_t i = 0; i < n; i++) {
        entries[i] = p[i].entry;
        pw_free(p[i].bytes);
    }
    pw_free(p);
}

static void canonicalize(ProtobufCMessage *m, int depth);

/* The message values of field f of m (one, or a repeated field's array). */
static void canonicalize_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, int depth)
{
    uint8_t *base = (uint8_t *)m;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(size_t *)(base + f->quantifier_offset);
        ProtobufCMessage **items = *(ProtobufCMessage ***)(base + f->offset);
        for (size_t k = 0; k < n; k++) {
            canonicalize(items[k], depth + 1);
        }
        if (is_map_entry(f->descriptor) && n > 1) {
            sort_entries(items, n);
        }
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t chosen = *(uint32_t *)(base + f->quantifier_offset);
        if (chosen != f->id) {
            return; /* another member of the oneof: this pointer is not ours */
        }
    }
    ProtobufCMessage *sub = *(ProtobufCMessage **)(base + f->offset);
    if (sub != NULL) {
        canonicalize(sub, depth + 1);
    }
}

static void canonicalize(ProtobufCMessage *m, int depth)
{
    if (depth > MAX_DEPTH) {
        return;
    }
    /* Fields this build does not know are not part of the request it acts on. */
    ProtobufCAllocator *a = pw_protobuf_allocator();
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        a->free(a->allocator_data, m->unknown_fields[i].data);
    }
    a->free(a->allocator_data, m->unknown_fields);
    m->unknown_fields = NULL;
    m->n_unknown_fields = 0;
    for (unsigned i = 0; i < m->descriptor->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &m->descriptor->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            canonicalize_field(m, f, depth);
        }
    }
}

static void pack_hash(const ProtobufCMessage *m, uint8_t out[32])
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *bytes = pw_malloc(len ? len : 1);
    protobuf_c_message_pack(m, bytes);
    svc_sha256(bytes, len, out);
    pw_free(bytes);
}

pw_status svc_fingerprint(const ProtobufCMessage *request, const char *skip_field, uint8_t out[32])
{
    const ProtobufCMessageDescriptor *d = request->descriptor;
    /* A shallow copy with the skipped string field emptied: what is packed first. */
    ProtobufCMessage *copy = pw_malloc(d->sizeof_message);
    memcpy(copy, request, d->sizeof_message);
    const ProtobufCFieldDescriptor *f =
        skip_field ? protobuf_c_message_descriptor_get_field_by_name(d, skip_field) : NULL;
    if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
        *(const char **)((uint8_t *)copy + f->offset) = protobuf_c_empty_string;
    }
    if (!has_maps(d, 0) && copy->n_unknown_fields == 0 && !has_messages(d)) {
        pack_hash(copy, out);
        pw_free(copy);
        return PW_OK;
    }
    size_t len = protobuf_c_message_get_packed_size(copy);
    uint8_t *bytes = pw_malloc(len ? len : 1);
    protobuf_c_message_pack(copy, bytes);
    pw_free(copy);
    ProtobufCMessage *deep = protobuf_c_message_unpack(d, pw_protobuf_allocator(), len, bytes);
    pw_free(bytes);
    if (deep == NULL) {
        return PW_INTERNAL;
    }
    canonicalize(deep, 0);
    pack_hash(deep, out);
    pw_protobuf_free(deep);
    return PW_OK;
}
