#ifndef PAYWIRE_CONTEXT_H
#define PAYWIRE_CONTEXT_H

/* Small (key, value) slots carried by a call, keys compared by address. */
#include <stddef.h>
#include <paywire/status.h>

typedef struct pw__ctx {
    const void *key;
    void *value;
} pw__ctx;

/** Sets key's value in the first free or matching slot; PW_RESOURCE_EXHAUSTED when full. */
static inline pw_status pw__ctx_set(pw__ctx *slots, size_t n, const void *key, void *value)
{
    for (size_t i = 0; i < n; i++) {
        if (slots[i].key == key || slots[i].key == NULL) {
            slots[i].key = key;
            slots[i].value = value;
            return PW_OK;
        }
    }
    return PW_RESOURCE_EXHAUSTED;
}

static inline void *pw__ctx_get(const pw__ctx *slots, size_t n, const void *key)
{
    for (size_t i = 0; i < n && slots[i].key != NULL; i++) {
        if (slots[i].key == key) {
            return slots[i].value;
        }
    }
    return NULL;
}

#endif
