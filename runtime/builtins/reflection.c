/*
 * reflection.c: gRPC server reflection (grpc.reflection.v1 and v1alpha) from
 * the file descriptors generated code registers with pw_server_add_file.
 * The two versions are identical on the wire, so one handler serves both,
 * decoding and encoding with the v1 types. Files are returned with their
 * imports (transitively), so a client can build every type it needs.
 */
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/builtins.h>
#include "google/protobuf/descriptor.pb-c.h"
#include "src/proto/grpc/reflection/v1/reflection.pw.h"
#include "src/proto/grpc/reflection/v1alpha/reflection.pw.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

/* ---- files ---- */

typedef struct file_set {
    const pw_file_descriptor *files[256];
    size_t count;
} file_set;

static void file_set_add(file_set *fs, const pw_file_descriptor *f)
{
    for (size_t i = 0; i < fs->count; i++) {
        if (fs->files[i] == f) {
            return;
        }
    }
    if (fs->count < sizeof(fs->files) / sizeof(fs->files[0])) {
        fs->files[fs->count++] = f;
    }
    for (size_t i = 0; i < f->dep_count; i++) {
        file_set_add(fs, f->deps[i]);
    }
}

static int name_is(const char *prefix, const char *name, const char *symbol)
{
    size_t p = strlen(prefix);
    return strncmp(symbol, prefix, p) == 0 && strcmp(symbol + p, name) == 0;
}

static int message_defines(const char *prefix, const Google__Protobuf__DescriptorProto *m,
                           const char *symbol)
{
    if (name_is(prefix, m->name, symbol)) {
        return 1;
    }
    char nested[512];
    snprintf(nested, sizeof(nested), "%s%s.", prefix, m->name);
    for (size_t i = 0; i < m->n_nested_type; i++) {
        if (message_defines(nested, m->nested_type[i], symbol)) {
            return 1;
        }
    }
    for (size_t i = 0; i < m->n_enum_type; i++) {
        if (name_is(nested, m->enum_type[i]->name, symbol)) {
            return 1;
        }
    }
    return 0;
}

/* 1 when the file defines symbol (message, enum, service or service.method). */
static int file_defines(const pw_file_descriptor *f, const char *symbol)
{
    Google__Protobuf__FileDescriptorProto *fd =
        google__protobuf__file_descriptor_proto__unpack(pw_protobuf_allocator(), f->len, f->data);
    if (fd == NULL) {
        return 0;
    }
    char prefix[256] = "";
    if (fd->package != NULL && fd->package[0] != '\0') {
        snprintf(prefix, sizeof(prefix), "%s.", fd->package);
    }
    int found = 0;
    for (size_t i = 0; i < fd->n_message_type && !found; i++) {
        found = message_defines(prefix, fd->message_type[i], symbol);
    }
    for (size_t i = 0; i < fd->n_enum_type && !found; i++) {
        found = name_is(prefix, fd->enum_type[i]->name, symbol);
    }
    for (size_t i = 0; i < fd->n_service && !found; i++) {
        const Google__Protobuf__ServiceDescriptorProto *s = fd->service[i];
        found = name_is(prefix, s->name, symbol);
        char svc[512];
        snprintf(svc, sizeof(svc), "%s%s.", prefix, s->name);
        for (size_t j = 0; j < s->n_method && !found; j++) {
            found = name_is(svc, s->method[j]->name, symbol);
        }
    }
    google__protobuf__file_descriptor_proto__free_unpacked(fd, pw_protobuf_allocator());
    return found;
}

/* ---- answers ---- */

typedef struct answer {
    Grpc__Reflection__V1__FileDescriptorResponse files;
    ProtobufCBinaryData blobs[256];
    Grpc__Reflection__V1__ListServiceResponse list;
    Grpc__Reflection__V1__ServiceResponse services[128];
    Grpc__Reflection__V1__ServiceResponse *service_ptrs[128];
    char names[128][256];
    Grpc__Reflection__V1__ErrorResponse error;
    char error_text[300];
} answer;

static void answer_files(refl_resp *r, answer *a, const file_set *fs)
{
    grpc__reflection__v1__file_descriptor_response__init(&a->files);
    for (size_t i = 0; i < fs->count; i++) {
        a->blobs[i].data = (uint8_t *)(uintptr_t)fs->files[i]->data;
        a->blobs[i].len = fs->files[i]->len;
    }
    a->files.n_file_descriptor_proto = fs->count;
    a->files.file_descriptor_proto = a->blobs;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    r->file_descriptor_response = &a->files;
}

static void answer_error(refl_resp *r, answer *a, pw_status code, const char *msg)
{
    grpc__reflection__v1__error_response__init(&a->error);
    a->error.error_code = code;
    a->error.error_message = (char *)(uintptr_t)msg;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    r->error_response = &a->error;
}

static void answer_services(refl_resp *r, answer *a, const pw_server *server)
{
    grpc__reflection__v1__list_service_response__init(&a->list);
    size_t n = 0, iter = 0;
    const pw_method *m;
    while ((m = pw_server_next_method(server, &iter)) != NULL && n < 128) {
        const char *slash = strrchr(m->path, '/');
        size_t len = (size_t)(slash - m->path - 1);
        if (slash == NULL || len == 0 || len >= sizeof(a->names[0])) {
            continue;
        }
        int seen = 0;
        for (size_t i = 0; i < n && !seen; i++) {
            seen = strlen(a->names[i]) == len && strncmp(a->names[i], m->path + 1, len) == 0;
        }
        if (seen) {
            continue;
        }
        memcpy(a->names[n], m->path + 1, len);
        a->names[n][len] = '\0';
        grpc__reflection__v1__service_response__init(&a->services[n]);
        a->services[n].name = a->names[n];
        a->service_ptrs[n] = &a->services[n];
        n++;
    }
    a->list.n_service = n;
    a->list.service = a->service_ptrs;
    r->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    r->list_services_response = &a->list;
}

static void answer_request(const pw_server *server, const refl_req *req, refl_resp *r, answer *a)
{
    size_t count;
    const pw_file_descriptor *const *files = pw_server_files(server, &count);
    file_set fs = {.count = 0};
    char *msg = a->error_text;
    size_t msg_size = sizeof(a->error_text);
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        answer_services(r, a, server);
        return;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        for (size_t i = 0; i < count; i++) {
            if (strcmp(files[i]->name, req->file_by_filename) == 0) {
                file_set_add(&fs, files[i]);
                answer_files(r, a, &fs);
                return;
            }
        }
        snprintf(msg, msg_size, "file \"%s\" not found", req->file_by_filename);
        answer_error(r, a, PW_NOT_FOUND, msg);
        return;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        for (size_t i = 0; i < count; i++) {
            if (file_defines(files[i], req->file_containing_symbol)) {
                file_set_add(&fs, files[i]);
                answer_files(r, a, &fs);
                return;
            }
        }
        snprintf(msg, msg_size, "symbol \"%s\" not found", req->file_containing_symbol);
        answer_error(r, a, PW_NOT_FOUND, msg);
        return;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        answer_error(r, a, PW_NOT_FOUND, "extensions are not supported by paywire reflection");
        return;
    default:
        answer_error(r, a, PW_INVALID_ARGUMENT, "empty reflection request");
        return;
    }
}

/* ---- the stream ---- */

static void refl_on_message(pw_call *call, pw_slice msg, void *ud)
{
    const pw_server *server = ud;
    refl_req *req = (refl_req *)(void *)protobuf_c_message_unpack(
        &grpc__reflection__v1__server_reflection_request__descriptor, pw_protobuf_allocator(),
        msg.len, msg.base);
    if (req == NULL) {
        pw_call_abort(call, PW_INTERNAL, "cannot decode ServerReflectionRequest");
        return;
    }
    answer *a = pw_malloc(sizeof(*a));
    if (a == NULL) {
        pw_protobuf_free(&req->base);
        pw_call_abort(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    refl_resp r = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    r.valid_host = req->host;
    r.original_request = req;
    answer_request(server, req, &r, a);
    pw_call_send(call, &r.base);
    pw_free(a);
    pw_protobuf_free(&req->base);
}

static void refl_on_half_close(pw_call *call, void *ud)
{
    (void)ud;
    pw_call_finish(call, PW_OK, NULL);
}

static void refl_on_cancel(pw_call *call, pw_status why, void *ud)
{
    (void)ud;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops refl_ops = {
    .on_message = refl_on_message,
    .on_half_close = refl_on_half_close,
    .on_cancel = refl_on_cancel,
};

static void refl_handler(pw_call *call, void *ud)
{
    pw_call_set_ops(call, &refl_ops, ud);
}

pw_status pw_reflection_enable(pw_server *server)
{
    const pw_method *templates[2] = {&grpc_reflection_v1_server_reflection_methods[0],
                                     &grpc_reflection_v1alpha_server_reflection_methods[0]};
    const pw_file_descriptor *files[2] = {&src_proto_grpc_reflection_v1_reflection__pw_file,
                                          &src_proto_grpc_reflection_v1alpha_reflection__pw_file};
    for (int i = 0; i < 2; i++) {
        pw_status rv = pw_server_add_file(server, files[i]);
        pw_method m = *templates[i];
        m.handler = refl_handler;
        m.user_data = server;
        if (rv == PW_OK) {
            rv = pw_server_add_method(server, &m);
        }
        if (rv != PW_OK) {
            return rv;
        }
    }
    return PW_OK;
}
