/*
 * stream.c: blocking client calls for tools and tests, built on the async API.
 * Each function runs the channel's loop (UV_RUN_ONCE) until its condition
 * holds; received messages are queued as copies until pw_stream_recv takes them.
 */
#include <string.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/alloc.h>
#include "client.h"

typedef struct stream_msg {
    pw__list link;
    int compressed;
    size_t len;
    uint8_t data[];
} stream_msg;

struct pw_stream {
    pw_channel *ch;
    pw_client_call *call;
    pw__list msgs;
    pw_metadata headers;
    pw_metadata trailers;
    char *message;
    pw_status status;
    int last_compressed;
    int got_headers;
    int done;
};

static void stream_on_headers(pw_client_call *c, const pw_metadata *md, void *ud)
{
    (void)c;
    pw_stream *s = ud;
    pw_metadata_copy(&s->headers, md);
    s->got_headers = 1;
}

static void stream_on_message(pw_client_call *c, pw_slice msg, void *ud)
{
    pw_stream *s = ud;
    stream_msg *m = pw_malloc(sizeof(*m) + msg.len);
    if (m == NULL) {
        pw_client_call_cancel(c);
        return;
    }
    m->len = msg.len;
    m->compressed = pw_client_call_message_compressed(c);
    memcpy(m->data, msg.base, msg.len);
    pw__list_init(&m->link);
    pw__list_push(&s->msgs, &m->link);
}

static void stream_on_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    pw_stream *s = ud;
    s->status = r->code;
    s->message = pw_strdup(r->message);
    if (!s->got_headers) {
        pw_metadata_copy(&s->headers, r->initial_metadata);
    }
    pw_metadata_copy(&s->trailers, r->trailing_metadata);
    s->done = 1;
    s->call = NULL;
}

static const pw_client_ops stream_ops = {
    .on_headers = stream_on_headers,
    .on_message = stream_on_message,
    .on_write_ready = NULL,
    .on_done = stream_on_done,
};

pw_status pw_client_call_start_blocking(pw_stream **out, pw_channel *ch, const char *path,
                                        const pw_call_options *opts)
{
    *out = NULL;
    pw_stream *s = pw_calloc(1, sizeof(*s));
    if (s == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    s->ch = ch;
    pw__list_init(&s->msgs);
    pw_status rv = pw_client_call_start(&s->call, ch, path, opts, &stream_ops, s);
    if (rv != PW_OK) {
        pw_free(s);
        return rv;
    }
    *out = s;
    return PW_OK;
}

static void stream_run_once(pw_stream *s)
{
    uv_run(s->ch->loop, UV_RUN_ONCE);
}

pw_status pw_stream_send_flags(pw_stream *s, const ProtobufCMessage *msg, uint32_t flags)
{
    while (!s->done && !pw_client_call_writable(s->call)) {
        stream_run_once(s);
    }
    if (s->done) {
        return s->status == PW_OK ? PW_FAILED_PRECONDITION : s->status;
    }
    return pw_client_call_send_flags(s->call, msg, flags);
}

pw_status pw_stream_send(pw_stream *s, const ProtobufCMessage *msg)
{
    return pw_stream_send_flags(s, msg, 0);
}

pw_status pw_stream_close_send(pw_stream *s)
{
    return s->done ? PW_OK : pw_client_call_close_send(s->call);
}

pw_status pw_stream_recv(pw_stream *s, const ProtobufCMessageDescriptor *desc,
                         ProtobufCMessage **out)
{
    *out = NULL;
    while (pw__list_empty(&s->msgs) && !s->done) {
        stream_run_once(s);
    }
    if (pw__list_empty(&s->msgs)) {
        return PW_OK; /* the end: *out stays NULL */
    }
    stream_msg *m = PW_CONTAINER_OF(s->msgs.next, stream_msg, link);
    pw__list_remove(&m->link);
    s->last_compressed = m->compressed;
    *out = protobuf_c_message_unpack(desc, pw_protobuf_allocator(), m->len, m->data);
    pw_free(m);
    return *out != NULL ? PW_OK : PW_INTERNAL;
}

int pw_stream_message_compressed(const pw_stream *s)
{
    return s->last_compressed;
}

const pw_metadata *pw_stream_headers(pw_stream *s)
{
    while (!s->got_headers && !s->done) {
        stream_run_once(s);
    }
    return s->got_headers || s->done ? &s->headers : NULL;
}

void pw_stream_cancel(pw_stream *s)
{
    if (!s->done && s->call != NULL) {
        pw_client_call_cancel(s->call);
    }
}

pw_status pw_stream_finish(pw_stream *s, const char **message, const pw_metadata **trailers)
{
    while (!s->done) {
        stream_run_once(s);
    }
    if (message != NULL) {
        *message = s->message ? s->message : "";
    }
    if (trailers != NULL) {
        *trailers = &s->trailers;
    }
    return s->status;
}

void pw_stream_free(pw_stream *s)
{
    if (s == NULL) {
        return;
    }
    pw_stream_cancel(s);
    while (!s->done) {
        stream_run_once(s);
    }
    while (!pw__list_empty(&s->msgs)) {
        stream_msg *m = PW_CONTAINER_OF(s->msgs.next, stream_msg, link);
        pw__list_remove(&m->link);
        pw_free(m);
    }
    pw_metadata_clear(&s->headers);
    pw_metadata_clear(&s->trailers);
    pw_free(s->message);
    pw_free(s);
}

pw_status pw_client_unary_blocking(pw_channel *ch, const char *path, const pw_call_options *opts,
                                   const ProtobufCMessage *request,
                                   const ProtobufCMessageDescriptor *response_type,
                                   ProtobufCMessage **response_out, char **status_message,
                                   pw_metadata *trailers)
{
    pw_stream *s;
    *response_out = NULL;
    if (status_message != NULL) {
        *status_message = NULL;
    }
    pw_status rv = pw_client_call_start_blocking(&s, ch, path, opts);
    if (rv != PW_OK) {
        return rv;
    }
    pw_stream_send(s, request);
    pw_stream_close_send(s);
    ProtobufCMessage *resp = NULL;
    pw_status got = pw_stream_recv(s, response_type, &resp);
    const char *msg;
    const pw_metadata *md;
    rv = pw_stream_finish(s, &msg, &md);
    if (rv == PW_OK && resp == NULL) {
        rv = PW_INTERNAL;
        msg = got == PW_OK ? "response had no message" : "cannot decode the response";
    }
    if (rv == PW_OK) {
        *response_out = resp;
    } else {
        pw_protobuf_free(resp);
    }
    if (status_message != NULL) {
        *status_message = pw_strdup(msg);
    }
    if (trailers != NULL) {
        pw_metadata_copy(trailers, md);
    }
    pw_stream_free(s);
    return rv;
}
