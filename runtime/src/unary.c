/*
 * unary.c: asynchronous unary calls with a decoded response, on top of
 * pw_client_call. The binding lives from start to on_done.
 */
#include <protobuf-c/protobuf-c.h>
#include <paywire/alloc.h>
#include <paywire/channel.h>

typedef struct unary {
    pw_unary_done_cb done;
    void (*typed)(void);
    void *user_data;
    const ProtobufCMessageDescriptor *type;
    ProtobufCMessage *response;
} unary;

static void unary_on_message(pw_client_call *call, pw_slice msg, void *ud)
{
    unary *u = ud;
    if (u->response != NULL) {
        pw_client_call_fail(call, PW_INTERNAL, "unary call received more than one response");
        return;
    }
    u->response = protobuf_c_message_unpack(u->type, pw_protobuf_allocator(), msg.len, msg.base);
    if (u->response == NULL) {
        pw_client_call_fail(call, PW_INTERNAL, "cannot decode the response");
    }
}

static void unary_on_done(pw_client_call *call, const pw_result *result, void *ud)
{
    (void)call;
    unary *u = ud;
    pw_result r = *result;
    if (r.code == PW_OK && u->response == NULL) {
        r.code = PW_INTERNAL;
        r.message = "the server sent no response message";
    }
    u->done(r.code == PW_OK ? u->response : NULL, &r, u->typed, u->user_data);
    pw_protobuf_free(u->response);
    pw_free(u);
}

static const pw_client_ops unary_ops = {
    .on_headers = NULL,
    .on_message = unary_on_message,
    .on_write_ready = NULL,
    .on_done = unary_on_done,
};

pw_status pw_client_unary(pw_channel *ch, const char *path, const pw_call_options *opts,
                          const ProtobufCMessage *request,
                          const ProtobufCMessageDescriptor *response_type, pw_unary_done_cb done,
                          void (*typed)(void), void *user_data)
{
    unary *u = pw_calloc(1, sizeof(*u));
    if (u == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    *u = (unary){done, typed, user_data, response_type, NULL};
    pw_client_call *call;
    pw_status rv = pw_client_call_start(&call, ch, path, opts, &unary_ops, u);
    if (rv != PW_OK) {
        pw_free(u);
        return rv;
    }
    rv = pw_client_call_send(call, request);
    if (rv != PW_OK) {
        pw_client_call_fail(call, rv, "cannot send the request");
    }
    pw_client_call_close_send(call);
    return PW_OK;
}
