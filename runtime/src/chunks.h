#ifndef PAYWIRE_CHUNKS_H
#define PAYWIRE_CHUNKS_H

/* Memory owned by a call: a list of zeroed blocks freed together when the call ends. */
#include <stddef.h>
#include <paywire/alloc.h>

typedef union pw__chunk {
    union pw__chunk *next;
    max_align_t align;
} pw__chunk;

/** A zeroed, max-aligned block of size bytes linked into *head; NULL on ENOMEM. */
static inline void *pw__chunk_alloc(pw__chunk **head, size_t size)
{
    pw__chunk *c = pw_calloc(1, sizeof(pw__chunk) + size);
    if (c == NULL) {
        return NULL;
    }
    c->next = *head;
    *head = c;
    return c + 1;
}

static inline void pw__chunk_free_all(pw__chunk **head)
{
    while (*head != NULL) {
        pw__chunk *c = *head;
        *head = c->next;
        pw_free(c);
    }
}

#endif
