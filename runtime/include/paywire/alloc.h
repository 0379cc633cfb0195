#ifndef PAYWIRE_ALLOC_H
#define PAYWIRE_ALLOC_H

#include <stddef.h>
#include <paywire/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The allocator every runtime allocation goes through. */
typedef struct pw_allocator {
    void *(*malloc)(size_t size, void *user_data);
    void *(*realloc)(void *ptr, size_t size, void *user_data);
    void (*free)(void *ptr, void *user_data);
    void *user_data;
} pw_allocator;

/**
 * Replaces the allocator. Call it before any other paywire call, from one thread;
 * the struct is copied. NULL restores libc's malloc. This is process-wide
 * configuration, set once at start-up, not mutable state: it is not thread-safe
 * to change it while paywire objects exist.
 */
PW_EXTERN void pw_set_allocator(const pw_allocator *alloc);

/** Allocation helpers; return NULL on failure (the runtime never aborts on OOM). */
PW_EXTERN void *pw_malloc(size_t size);
PW_EXTERN void *pw_calloc(size_t n, size_t size);
PW_EXTERN void *pw_realloc(void *ptr, size_t size);
/** Accepts NULL. */
PW_EXTERN void pw_free(void *ptr);
/** Copies a NUL-terminated string (NULL in, NULL out). Free with pw_free. */
PW_EXTERN char *pw_strdup(const char *s);
/** Copies len bytes and adds a NUL. Free with pw_free. */
PW_EXTERN char *pw_strndup(const char *s, size_t len);

struct ProtobufCAllocator;
struct ProtobufCMessage;

/**
 * The one ProtobufCAllocator of paywire: protobuf-c's alloc and free over
 * pw_malloc and pw_free, so decoded messages follow pw_set_allocator like
 * every other allocation. Every message the runtime decodes (requests,
 * responses, JSON, pw_client_unary_blocking, pw_stream_recv) is allocated
 * with it; unpack your own messages with it too and free them with
 * pw_protobuf_free() (or protobuf_c_message_free_unpacked(m, this)), never
 * with protobuf-c's default (NULL) allocator. Static storage, never NULL;
 * protobuf-c takes it non-const but does not write it.
 */
PW_EXTERN struct ProtobufCAllocator *pw_protobuf_allocator(void);

/**
 * Frees a message unpacked with pw_protobuf_allocator(), and everything it
 * owns. Accepts NULL.
 */
PW_EXTERN void pw_protobuf_free(struct ProtobufCMessage *msg);

#ifdef __cplusplus
}
#endif
#endif
