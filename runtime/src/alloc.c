/*
 * alloc.c: the one allocator hook. Every runtime allocation goes through
 * pw_malloc & co., so tests can fail the Nth allocation and services can swap
 * the allocator. The hook is start-up configuration, set before any object exists.
 * protobuf-c messages go through the same hook via one ProtobufCAllocator
 * adapter, for unpacking and freeing alike.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/alloc.h>

static void *libc_malloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void *libc_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    return realloc(ptr, size);
}

static void libc_free(void *ptr, void *ud)
{
    (void)ud;
    free(ptr);
}

static pw_allocator current = {libc_malloc, libc_realloc, libc_free, NULL};

void pw_set_allocator(const pw_allocator *alloc)
{
    if (alloc == NULL) {
        current = (pw_allocator){libc_malloc, libc_realloc, libc_free, NULL};
    } else {
        current = *alloc;
    }
}

void *pw_malloc(size_t size)
{
    return current.malloc(size ? size : 1, current.user_data);
}

void *pw_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = pw_malloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

void *pw_realloc(void *ptr, size_t size)
{
    return current.realloc(ptr, size ? size : 1, current.user_data);
}

void pw_free(void *ptr)
{
    if (ptr != NULL) {
        current.free(ptr, current.user_data);
    }
}

char *pw_strndup(const char *s, size_t len)
{
    if (s == NULL) {
        return NULL;
    }
    char *p = pw_malloc(len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *pw_strdup(const char *s)
{
    return s == NULL ? NULL : pw_strndup(s, strlen(s));
}

static void *pb_alloc(void *ud, size_t size)
{
    (void)ud;
    return pw_malloc(size);
}

static void pb_free(void *ud, void *ptr)
{
    (void)ud;
    pw_free(ptr);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

ProtobufCAllocator *pw_protobuf_allocator(void)
{
    return &pb_allocator;
}

void pw_protobuf_free(ProtobufCMessage *msg)
{
    if (msg != NULL) {
        protobuf_c_message_free_unpacked(msg, &pb_allocator);
    }
}
