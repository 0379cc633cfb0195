#ifndef PAYWIRE_LIST_H
#define PAYWIRE_LIST_H

/* Intrusive circular doubly-linked list. An unlinked node points at itself. */
#include <stddef.h>

typedef struct pw__list {
    struct pw__list *prev;
    struct pw__list *next;
} pw__list;

#define PW_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define PW_LIST_FOREACH(node, head) \
    for (pw__list *node = (head)->next; node != (head); node = node->next)

static inline void pw__list_init(pw__list *l)
{
    l->prev = l;
    l->next = l;
}

static inline int pw__list_empty(const pw__list *l)
{
    return l->next == l;
}

/** Appends item at the tail of head. item must be unlinked. */
static inline void pw__list_push(pw__list *head, pw__list *item)
{
    item->prev = head->prev;
    item->next = head;
    head->prev->next = item;
    head->prev = item;
}

/** Unlinks item (harmless when it is not linked). */
static inline void pw__list_remove(pw__list *item)
{
    item->prev->next = item->next;
    item->next->prev = item->prev;
    item->prev = item;
    item->next = item;
}

#endif
