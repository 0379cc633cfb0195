/*
 * json_server.c: the JSON codec a server installs (pw_json_enable) for
 * Connect-style JSON calls (runtime/src/connect.c): request and response
 * bodies through the proto3 JSON mapping, errors as Connect error bodies with
 * the google.rpc details from grpc-status-details-bin.
 */
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/json.h>
#include <protobuf-c/protobuf-c.h>
#include "json_common.h"
#include "google/protobuf/any.pb-c.h"
#include "google/rpc/status.pb-c.h"

const char *pw_json_code_name(pw_status code)
{
    static const char *const names[] = {
        "ok",
        "canceled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    };
    pw_status wire = pw_status_to_wire(code);
    return wire >= 0 && wire <= 16 ? names[wire] : "unknown";
}

/* Types already searched, so that recursive types (Struct ↔ Value) are walked once. */
typedef struct type_walk {
    const ProtobufCMessageDescriptor *seen[512];
    size_t count;
} type_walk;

/* Depth-first search for a message type by full name, from root through its message fields. */
static const ProtobufCMessageDescriptor *
find_type(type_walk *w, const ProtobufCMessageDescriptor *root, const char *name)
{
    if (root == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < w->count; i++) {
        if (w->seen[i] == root) {
            return NULL;
        }
    }
    if (w->count == sizeof(w->seen) / sizeof(w->seen[0])) {
        return NULL;
    }
    w->seen[w->count++] = root;
    if (strcmp(root->name, name) == 0) {
        return root;
    }
    for (unsigned i = 0; i < root->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &root->fields[i];
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessageDescriptor *hit = find_type(w, f->descriptor, name);
            if (hit != NULL) {
                return hit;
            }
        }
    }
    return NULL;
}

/* Every message type reachable from the server's methods can travel in an Any. */
static const ProtobufCMessageDescriptor *server_resolve(const char *name, void *user_data)
{
    const pw_server *s = user_data;
    type_walk w;
    w.count = 0;
    size_t iter = 0;
    for (const pw_method *m = pw_server_next_method(s, &iter); m != NULL;
         m = pw_server_next_method(s, &iter)) {
        const ProtobufCMessageDescriptor *hit = find_type(&w, m->request_type, name);
        if (hit == NULL) {
            hit = find_type(&w, m->response_type, name);
        }
        if (hit != NULL) {
            return hit;
        }
    }
    return NULL;
}

static pw_status codec_decode(const ProtobufCMessageDescriptor *type, pw_slice json,
                              ProtobufCMessage **out, char *err, size_t err_len, void *user_data)
{
    pw_json_options o = {.resolve = server_resolve, .resolve_user_data = user_data};
    return pw_json_decode(type, (const char *)json.base, json.len, &o, out, err, err_len);
}

static pw_status codec_encode(const ProtobufCMessage *msg, pw_buf *out, char *err, size_t err_len,
                              void *user_data)
{
    pw_json_options o = {.resolve = server_resolve, .resolve_user_data = user_data};
    return pw_json_encode(msg, &o, out, err, err_len);
}

/* {"type":"google.rpc.ErrorInfo","value":"<base64, unpadded>","debug":{...}} */
static pw_status encode_detail(pw_buf *out, const Google__Protobuf__Any *any, void *user_data)
{
    const char *slash = strrchr(any->type_url, '/');
    const char *type = slash ? slash + 1 : any->type_url;
    pw_status rv = pw_buf_printf(out, "{\"type\":\"%s\",\"value\":\"", type);
    if (rv == PW_OK) {
        rv = pw_base64_encode(out, any->value.data, any->value.len, 0);
    }
    if (rv == PW_OK) {
        rv = pw_buf_printf(out, "\"");
    }
    pw_json_options o = {.resolve = server_resolve, .resolve_user_data = user_data};
    const ProtobufCMessageDescriptor *d = pw__json_resolve(&o, type);
    ProtobufCMessage *m =
        d ? protobuf_c_message_unpack(d, pw_protobuf_allocator(), any->value.len, any->value.data)
          : NULL;
    if (rv == PW_OK && m != NULL) {
        /* The decoded detail too, for people reading curl output. */
        rv = pw_buf_printf(out, ",\"debug\":");
        if (rv == PW_OK && pw_json_encode(m, &o, out, NULL, 0) != PW_OK) {
            rv = pw_buf_printf(out, "null");
        }
    }
    pw_protobuf_free(m);
    return rv == PW_OK ? pw_buf_printf(out, "}") : rv;
}

static pw_status codec_encode_error(pw_status code, const char *message,
                                    const pw_metadata *trailing, pw_buf *out, void *user_data)
{
    pw_status rv = pw_buf_printf(out, "{\"code\":\"%s\",\"message\":", pw_json_code_name(code));
    if (rv == PW_OK) {
        rv = pw__json_append_string(out, message, strlen(message));
    }
    const pw_metadata_entry *e = pw_metadata_get(trailing, "grpc-status-details-bin");
    Google__Rpc__Status *details =
        e ? google__rpc__status__unpack(pw_protobuf_allocator(), e->value_len, e->value) : NULL;
    if (rv == PW_OK && details != NULL && details->n_details > 0) {
        rv = pw_buf_printf(out, ",\"details\":[");
        for (size_t i = 0; rv == PW_OK && i < details->n_details; i++) {
            rv = i ? pw_buf_printf(out, ",") : PW_OK;
            if (rv == PW_OK) {
                rv = encode_detail(out, details->details[i], user_data);
            }
        }
        if (rv == PW_OK) {
            rv = pw_buf_printf(out, "]");
        }
    }
    google__rpc__status__free_unpacked(details, pw_protobuf_allocator());
    return rv == PW_OK ? pw_buf_printf(out, "}") : rv;
}

pw_status pw_json_enable(pw_server *server)
{
    pw_json_codec codec = {
        .decode = codec_decode,
        .encode = codec_encode,
        .encode_error = codec_encode_error,
        .user_data = server,
    };
    pw_server_set_json_codec(server, &codec);
    return PW_OK;
}
