/* svc_collect.c: a client stream gathered into one request (see svc_collect.h). */
#include <stdio.h>
#include <string.h>
#include <paywire/log.h>
#include "svc_collect.h"

typedef struct collect {
    svc_app *app;
    const svc_collect_spec *spec;
    svc_handler_fn handler;
    const ProtobufCFieldDescriptor *field;
    ProtobufCMessage **chunks;
    size_t n, cap;
    size_t items;
    int ended;   /* the call was answered (or is being, by the fiber) */
    int serving; /* the fiber owns the call */
} collect;

/* The items of chunk m: their count and array (protobuf-c's layout of a repeated field). */
static size_t items_of(const collect *c, const ProtobufCMessage *m, ProtobufCMessage ***arr)
{
    const char *base = (const char *)m;
    size_t n;
    memcpy(&n, base + c->field->quantifier_offset, sizeof(n));
    memcpy(arr, base + c->field->offset, sizeof(*arr));
    return n;
}

/* Too many items: refused naming the field and the limit. */
static void refuse(pw_call *call, collect *c, size_t limit, const char *per)
{
    c->ended = 1;
    char msg[200];
    snprintf(msg, sizeof(msg), "invalid %s: at most %zu per %s", c->spec->items, limit, per);
    pw_call_abort(call, PW_INVALID_ARGUMENT, msg); /* on_cancel follows, and finishes */
}

static int grow(pw_call *call, collect *c)
{
    if (c->n < c->cap) {
        return 1;
    }
    size_t cap = c->cap ? c->cap * 2 : 16;
    ProtobufCMessage **g = pw_call_alloc(call, sizeof(*g) * cap);
    if (g == NULL) {
        return 0;
    }
    if (c->n > 0) {
        memcpy(g, c->chunks, sizeof(*g) * c->n);
    }
    c->chunks = g;
    c->cap = cap;
    return 1;
}

static void on_message(pw_call *call, pw_slice msg, void *ud)
{
    collect *c = ud;
    if (c->ended) {
        return;
    }
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(call, msg, c->spec->type, &m) != PW_OK) {
        c->ended = 1;
        pw_call_abort(call, PW_INTERNAL, "an upload message cannot be decoded");
        return;
    }
    ProtobufCMessage **arr;
    size_t n = items_of(c, m, &arr);
    if (n > c->spec->max_per_message) {
        refuse(call, c, c->spec->max_per_message, "message");
        return;
    }
    if (c->items + n > c->spec->max_total) {
        refuse(call, c, c->spec->max_total, "upload");
        return;
    }
    if (!grow(call, c)) {
        c->ended = 1;
        pw_call_abort(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    c->chunks[c->n++] = m;
    c->items += n;
}

static void on_half_close(pw_call *call, void *ud)
{
    collect *c = ud;
    if (c->ended) {
        return;
    }
    if (c->n == 0) {
        c->ended = 1;
        pw_call_finish(call, PW_INVALID_ARGUMENT, "an upload starts with a message naming %s",
                       c->spec->first_message);
        return;
    }
    ProtobufCMessage **all = pw_call_alloc(call, sizeof(*all) * (c->items ? c->items : 1));
    if (all == NULL) {
        c->ended = 1;
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        ProtobufCMessage **arr;
        size_t n = items_of(c, c->chunks[i], &arr);
        memcpy(all + k, arr, sizeof(*all) * n);
        k += n;
    }
    /* The first message becomes the whole request; the chunks keep owning the items. */
    ProtobufCMessage *whole = pw_call_alloc(call, c->spec->type->sizeof_message);
    if (whole == NULL) {
        c->ended = 1;
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memcpy(whole, c->chunks[0], c->spec->type->sizeof_message);
    memcpy((char *)whole + c->field->quantifier_offset, &k, sizeof(k));
    memcpy((char *)whole + c->field->offset, &all, sizeof(all));
    c->ended = c->serving = 1;
    svc_serve(call, c->app, whole, c->handler);
}

static void on_cancel(pw_call *call, pw_status why, void *ud)
{
    collect *c = ud;
    if (c->serving) {
        return; /* the fiber's wait fails, and the fiber finishes the call */
    }
    c->ended = c->serving = 1; /* finished once */
    pw_call_finish(call, why, "the upload was interrupted: nothing was applied");
}

static const pw_call_ops collect_ops = {
    .on_message = on_message,
    .on_half_close = on_half_close,
    .on_cancel = on_cancel,
};

void svc_serve_collected(pw_call *call, svc_app *app, const svc_collect_spec *spec,
                         svc_handler_fn handler)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(spec->type, spec->items);
    PW_ASSERT(f != NULL && f->label == PROTOBUF_C_LABEL_REPEATED &&
              f->type == PROTOBUF_C_TYPE_MESSAGE);
    collect *c = pw_call_alloc(call, sizeof(*c));
    if (c == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memset(c, 0, sizeof(*c));
    c->app = app;
    c->spec = spec;
    c->handler = handler;
    c->field = f;
    pw_call_set_ops(call, &collect_ops, c);
}
