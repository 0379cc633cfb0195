/*
 * nva.c: header lists for nghttp2. Names and values are appended to one
 * buffer and the nghttp2_nv entries hold offsets until finish() turns them
 * into pointers, so growing the buffer never leaves a dangling pointer.
 * nghttp2 copies header strings on submit, so the list may be freed right after.
 */
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include "grpc/wire.h"
#include "h2/nva.h"

static int nva_grow(pw__nva *b)
{
    if (b->n < b->cap) {
        return 1;
    }
    size_t cap = b->cap ? b->cap * 2 : 16;
    nghttp2_nv *nv = pw_realloc(b->nv, cap * sizeof(*nv));
    if (nv == NULL) {
        b->failed = 1;
        return 0;
    }
    b->nv = nv;
    b->cap = cap;
    return 1;
}

static void nva_push(pw__nva *b, size_t name_off, size_t name_len, size_t value_off,
                     size_t value_len)
{
    if (!nva_grow(b)) {
        return;
    }
    b->nv[b->n++] = (nghttp2_nv){(uint8_t *)(uintptr_t)name_off, (uint8_t *)(uintptr_t)value_off,
                                 name_len, value_len, NGHTTP2_NV_FLAG_NONE};
}

void pw__nva_add(pw__nva *b, const char *name, const char *value, size_t value_len)
{
    size_t name_len = strlen(name);
    size_t name_off = b->strings.len;
    if (pw_buf_append(&b->strings, name, name_len) != PW_OK) {
        b->failed = 1;
        return;
    }
    size_t value_off = b->strings.len;
    if (pw_buf_append(&b->strings, value, value_len) != PW_OK) {
        b->failed = 1;
        return;
    }
    nva_push(b, name_off, name_len, value_off, value_len);
}

void pw__nva_add_str(pw__nva *b, const char *name, const char *value)
{
    pw__nva_add(b, name, value, strlen(value));
}

void pw__nva_add_metadata_as(pw__nva *b, const pw_metadata *md, const char *prefix,
                             const char *skip)
{
    size_t prefix_len = strlen(prefix);
    for (size_t i = 0; md != NULL && i < md->count; i++) {
        const pw_metadata_entry *e = &md->entries[i];
        size_t key_len = strlen(e->key);
        if (skip != NULL && strcmp(e->key, skip) == 0) {
            continue;
        }
        size_t name_off = b->strings.len;
        if (pw_buf_append(&b->strings, prefix, prefix_len) != PW_OK ||
            pw_buf_append(&b->strings, e->key, key_len) != PW_OK) {
            b->failed = 1;
            return;
        }
        size_t value_off = b->strings.len;
        pw_status rv = pw_metadata_key_is_binary(e->key, key_len)
                           ? pw_base64_encode(&b->strings, e->value, e->value_len, 0)
                           : pw_buf_append(&b->strings, e->value, e->value_len);
        if (rv != PW_OK) {
            b->failed = 1;
            return;
        }
        nva_push(b, name_off, prefix_len + key_len, value_off, b->strings.len - value_off);
    }
}

void pw__nva_add_metadata(pw__nva *b, const pw_metadata *md)
{
    pw__nva_add_metadata_as(b, md, "", NULL);
}

void pw__nva_add_status(pw__nva *b, pw_status code, const char *message)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", code);
    pw__nva_add_str(b, "grpc-status", num);
    if (message == NULL || message[0] == '\0') {
        return;
    }
    size_t name_off = b->strings.len;
    if (pw_buf_append(&b->strings, "grpc-message", 12) != PW_OK) {
        b->failed = 1;
        return;
    }
    size_t value_off = b->strings.len;
    if (pw__percent_encode(&b->strings, message, strlen(message)) != PW_OK) {
        b->failed = 1;
        return;
    }
    nva_push(b, name_off, 12, value_off, b->strings.len - value_off);
}

nghttp2_nv *pw__nva_finish(pw__nva *b)
{
    if (b->failed) {
        return NULL;
    }
    for (size_t i = 0; i < b->n; i++) {
        b->nv[i].name = b->strings.data + (uintptr_t)b->nv[i].name;
        b->nv[i].value = b->strings.data + (uintptr_t)b->nv[i].value;
    }
    return b->nv;
}

void pw__nva_free(pw__nva *b)
{
    pw_free(b->nv);
    pw_buf_reset(&b->strings);
    *b = (pw__nva){0};
}
