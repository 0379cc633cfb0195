/*
 * metadata.c: an ordered multimap of gRPC metadata. Entries own one allocation
 * each (key and value side by side, both NUL-terminated). Key and value rules
 * follow gRPC's PROTOCOL-HTTP2: keys are lower-case [0-9a-z_.-]; ASCII values are
 * printable 0x20..0x7e; "-bin" values are arbitrary bytes.
 */
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/metadata.h>

int pw_metadata_key_is_binary(const char *key, size_t key_len)
{
    return key_len >= 4 && memcmp(key + key_len - 4, "-bin", 4) == 0;
}

static int key_valid(const char *key, size_t len)
{
    if (len == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = key[i];
        int ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int ascii_value_valid(const uint8_t *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x20 || v[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

pw_status pw_metadata_add(pw_metadata *md, const char *key, const void *value, size_t value_len)
{
    size_t key_len = strlen(key);
    if (!key_valid(key, key_len)) {
        return PW_INVALID_ARGUMENT;
    }
    if (!pw_metadata_key_is_binary(key, key_len) && !ascii_value_valid(value, value_len)) {
        return PW_INVALID_ARGUMENT;
    }
    if (md->count == md->cap) {
        size_t cap = md->cap ? md->cap * 2 : 8;
        pw_metadata_entry *e = pw_realloc(md->entries, cap * sizeof(*e));
        if (e == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        md->entries = e;
        md->cap = cap;
    }
    char *mem = pw_malloc(key_len + 1 + value_len + 1);
    if (mem == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    memcpy(mem, key, key_len + 1);
    uint8_t *v = (uint8_t *)mem + key_len + 1;
    if (value_len > 0) {
        memcpy(v, value, value_len);
    }
    v[value_len] = '\0';
    md->entries[md->count++] = (pw_metadata_entry){mem, v, value_len};
    return PW_OK;
}

pw_status pw_metadata_add_str(pw_metadata *md, const char *key, const char *value)
{
    return pw_metadata_add(md, key, value, strlen(value));
}

const pw_metadata_entry *pw_metadata_get(const pw_metadata *md, const char *key)
{
    for (size_t i = 0; i < md->count; i++) {
        if (strcmp(md->entries[i].key, key) == 0) {
            return &md->entries[i];
        }
    }
    return NULL;
}

pw_status pw_metadata_copy(pw_metadata *dst, const pw_metadata *src)
{
    for (size_t i = 0; src != NULL && i < src->count; i++) {
        const pw_metadata_entry *e = &src->entries[i];
        pw_status rv = pw_metadata_add(dst, e->key, e->value, e->value_len);
        if (rv != PW_OK) {
            return rv;
        }
    }
    return PW_OK;
}

void pw_metadata_clear(pw_metadata *md)
{
    for (size_t i = 0; i < md->count; i++) {
        pw_free(md->entries[i].key);
    }
    pw_free(md->entries);
    *md = (pw_metadata){0};
}
