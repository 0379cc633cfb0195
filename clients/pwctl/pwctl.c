/*
 * pwctl: call any RPC of a gRPC server with JSON, on paywire's runtime.
 *
 *   pwctl [options] list                      services (server reflection)
 *   pwctl [options] describe NAME             a service, method or message
 *   pwctl [options] call pkg.Svc/Method [JSON | @FILE | -]
 *
 * Options: --addr HOST:PORT (default $PWCTL_ADDR or 127.0.0.1:15061),
 * --cacert FILE (TLS; without it h2c), --cert FILE --key FILE (mTLS),
 * -H 'name: value' (repeatable), --timeout MS, --emit-defaults,
 * --proto-names, --embedded (use the descriptors compiled into pwctl
 * instead of reflection).
 *
 * Types come from the server's reflection (grpc.reflection.v1, then v1alpha)
 * or from the paywire protos compiled in; requests and responses go through
 * paywire's proto3 JSON mapping. Responses print one JSON object per line
 * (server streaming: one line per message). Client streaming takes a JSON
 * array of requests. Errors print code, message and the google.rpc details
 * to stderr. Exit: 0 OK, 1 the RPC failed, 2 usage, 3 cannot reach or
 * describe the server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include <paywire/stream.h>
#include "dyn.h"
#include "embedded.h"
#include "google/rpc/status.pb-c.h"
#include "src/proto/grpc/reflection/v1/reflection.pb-c.h"

#define MAX_HEADERS 32

typedef struct opts {
    const char *addr;
    const char *cacert;
    const char *cert;
    const char *key;
    const char *headers[MAX_HEADERS];
    int nheaders;
    int64_t timeout_ms;
    int emit_defaults;
    int proto_names;
    int embedded;
    const char *cmd;
    const char *arg;
    const char *data;
} opts;

static int usage(void)
{
    fprintf(
        stderr,
        "usage: pwctl [--addr HOST:PORT] [--cacert FILE [--cert FILE --key FILE]]\n"
        "             [-H 'name: value']... [--timeout MS] [--emit-defaults] [--proto-names]\n"
        "             [--embedded] list | describe NAME | call pkg.Svc/Method [JSON|@FILE|-]\n");
    return 2;
}

static int parse_args(int argc, char **argv, opts *o)
{
    o->addr = getenv("PWCTL_ADDR") ? getenv("PWCTL_ADDR") : "127.0.0.1:15061";
    o->cacert = getenv("PWCTL_CACERT");
    o->cert = getenv("PWCTL_CERT");
    o->key = getenv("PWCTL_KEY");
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_next = i + 1 < argc;
        if (strcmp(a, "--addr") == 0 && has_next) {
            o->addr = argv[++i];
        } else if (strcmp(a, "--cacert") == 0 && has_next) {
            o->cacert = argv[++i];
        } else if (strcmp(a, "--cert") == 0 && has_next) {
            o->cert = argv[++i];
        } else if (strcmp(a, "--key") == 0 && has_next) {
            o->key = argv[++i];
        } else if ((strcmp(a, "-H") == 0 || strcmp(a, "--header") == 0) && has_next) {
            if (o->nheaders == MAX_HEADERS) {
                return usage();
            }
            o->headers[o->nheaders++] = argv[++i];
        } else if (strcmp(a, "--timeout") == 0 && has_next) {
            o->timeout_ms = strtoll(argv[++i], NULL, 10);
        } else if (strcmp(a, "--emit-defaults") == 0) {
            o->emit_defaults = 1;
        } else if (strcmp(a, "--proto-names") == 0) {
            o->proto_names = 1;
        } else if (strcmp(a, "--embedded") == 0) {
            o->embedded = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "pwctl: unknown option %s\n", a);
            return usage();
        } else if (pos == 0) {
            o->cmd = a, pos++;
        } else if (pos == 1) {
            o->arg = a, pos++;
        } else if (pos == 2) {
            o->data = a, pos++;
        } else {
            return usage();
        }
    }
    if (o->cmd == NULL || (strcmp(o->cmd, "list") != 0 && o->arg == NULL)) {
        return usage();
    }
    return 0;
}

/* ---- reflection ---- */

typedef struct session {
    uv_loop_t loop;
    pw_channel *ch;
    opts *o;
    dyn_pool *pool;
    const char *reflection_path;
} session;

static const char *const reflection_paths[] = {
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
};

/* One reflection request and its response (v1 and v1alpha are the same on the wire). */
static pw_status reflect(session *s, Grpc__Reflection__V1__ServerReflectionRequest *req,
                         Grpc__Reflection__V1__ServerReflectionResponse **out, char *err,
                         size_t cap)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        const char *path = s->reflection_path ? s->reflection_path : reflection_paths[attempt];
        pw_call_options co = {.timeout_ms = s->o->timeout_ms ? s->o->timeout_ms : 10000};
        pw_stream *st;
        if (pw_client_call_start_blocking(&st, s->ch, path, &co) != PW_OK) {
            snprintf(err, cap, "cannot open a call to %s", s->o->addr);
            return PW_UNAVAILABLE;
        }
        pw_stream_send(st, &req->base);
        pw_stream_close_send(st);
        ProtobufCMessage *m = NULL;
        pw_stream_recv(st, &grpc__reflection__v1__server_reflection_response__descriptor, &m);
        const char *msg = NULL;
        pw_status rv = pw_stream_finish(st, &msg, NULL);
        snprintf(err, cap, "%s", msg ? msg : "");
        pw_stream_free(st);
        if (m != NULL && rv == PW_OK) {
            s->reflection_path = path;
            *out = (Grpc__Reflection__V1__ServerReflectionResponse *)m;
            return PW_OK;
        }
        pw_protobuf_free(m);
        if (rv != PW_UNIMPLEMENTED || s->reflection_path != NULL) {
            return rv != PW_OK ? rv : PW_INTERNAL;
        }
    }
    snprintf(err, cap, "the server offers no reflection (try --embedded)");
    return PW_UNIMPLEMENTED;
}

/* Adds the files defining symbol (and their imports) to the pool. */
static pw_status load_symbol(session *s, const char *symbol, char *err, size_t cap)
{
    Grpc__Reflection__V1__ServerReflectionRequest req =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    req.file_containing_symbol = (char *)symbol;
    Grpc__Reflection__V1__ServerReflectionResponse *resp = NULL;
    pw_status rv = reflect(s, &req, &resp, err, cap);
    if (rv != PW_OK) {
        return rv;
    }
    if (resp->message_response_case ==
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE) {
        snprintf(err, cap, "%s", resp->error_response->error_message);
        rv = PW_NOT_FOUND;
    } else if (
        resp->message_response_case ==
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE) {
        Grpc__Reflection__V1__FileDescriptorResponse *f = resp->file_descriptor_response;
        for (size_t i = 0; i < f->n_file_descriptor_proto && rv == PW_OK; i++) {
            rv = dyn_add_file(s->pool, f->file_descriptor_proto[i].data,
                              f->file_descriptor_proto[i].len);
        }
    }
    pw_protobuf_free(&resp->base);
    return rv;
}

static pw_status list_services(session *s, char ***names, size_t *n, char *err, size_t cap)
{
    Grpc__Reflection__V1__ServerReflectionRequest req =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = (char *)"";
    Grpc__Reflection__V1__ServerReflectionResponse *resp = NULL;
    pw_status rv = reflect(s, &req, &resp, err, cap);
    if (rv != PW_OK) {
        return rv;
    }
    *n = 0;
    *names = NULL;
    if (resp->message_response_case ==
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE) {
        Grpc__Reflection__V1__ListServiceResponse *l = resp->list_services_response;
        *names = calloc(l->n_service + 1, sizeof(char *));
        for (size_t i = 0; i < l->n_service; i++) {
            (*names)[(*n)++] = strdup(l->service[i]->name);
        }
    }
    pw_protobuf_free(&resp->base);
    return PW_OK;
}

static void add_with_imports(dyn_pool *pool, const pw_file_descriptor *f)
{
    if (dyn_has_file(pool, f->name)) {
        return;
    }
    for (size_t i = 0; i < f->dep_count; i++) {
        add_with_imports(pool, f->deps[i]);
    }
    dyn_add_file(pool, f->data, f->len);
}

static void load_embedded(dyn_pool *pool)
{
    for (const pw_file_descriptor *const *f = pwctl_embedded_files; *f != NULL; f++) {
        add_with_imports(pool, *f);
    }
}

/* ---- output ---- */

static pw_json_options json_opts(const opts *o)
{
    pw_json_options j = {.emit_defaults = o->emit_defaults, .proto_names = o->proto_names};
    return j;
}

static void print_json(const opts *o, const ProtobufCMessage *m)
{
    pw_buf out = {0};
    char err[256];
    pw_json_options j = json_opts(o);
    if (pw_json_encode(m, &j, &out, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "pwctl: cannot print the response as JSON: %s\n", err);
    } else {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    pw_buf_reset(&out);
}

static const char *code_name(pw_status code)
{
    static const char *const names[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    return code >= 0 && code <= 16 ? names[code] : "UNKNOWN";
}

static void print_error(const opts *o, pw_status code, const char *message,
                        const pw_metadata *trailers)
{
    fprintf(stderr, "ERROR:\n  Code: %s\n  Message: %s\n", code_name(code), message ? message : "");
    const pw_metadata_entry *e =
        trailers ? pw_metadata_get(trailers, "grpc-status-details-bin") : NULL;
    Google__Rpc__Status *st =
        e ? google__rpc__status__unpack(pw_protobuf_allocator(), e->value_len, e->value) : NULL;
    if (st != NULL && st->n_details > 0) {
        pw_buf out = {0};
        pw_json_options j = json_opts(o);
        fprintf(stderr, "  Details:\n");
        for (size_t i = 0; i < st->n_details; i++) {
            /* Each detail as its Any JSON ({"@type": ..., fields}). */
            out.len = out.off = 0;
            if (pw_json_encode(&st->details[i]->base, &j, &out, NULL, 0) == PW_OK) {
                fprintf(stderr, "    %.*s\n", (int)out.len, (const char *)out.data);
            }
        }
        pw_buf_reset(&out);
    }
    google__rpc__status__free_unpacked(st, pw_protobuf_allocator());
}

/* ---- commands ---- */

static char *read_all(FILE *f)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    if (buf != NULL) {
        buf[n] = '\0';
    }
    return buf;
}

static char *request_text(const opts *o)
{
    if (o->data == NULL) {
        return strdup("{}");
    }
    if (strcmp(o->data, "-") == 0) {
        return read_all(stdin);
    }
    if (o->data[0] == '@') {
        FILE *f = fopen(o->data + 1, "r");
        if (f == NULL) {
            return NULL;
        }
        char *text = read_all(f);
        fclose(f);
        return text;
    }
    return strdup(o->data);
}

/* Splits a JSON array of objects into its elements' texts (client streaming input). */
static int split_array(const char *text, char ***items, size_t *n)
{
    *n = 0;
    *items = NULL;
    const char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
        p++;
    }
    if (*p != '[') {
        *items = calloc(1, sizeof(char *));
        (*items)[(*n)++] = strdup(text);
        return 0;
    }
    p++;
    int depth = 0, in_str = 0;
    const char *start = NULL;
    for (; *p; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\' && p[1]) {
                p++;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{') {
            if (depth++ == 0) {
                start = p;
            }
        } else if (c == '}' && --depth == 0 && start != NULL) {
            *items = realloc(*items, (*n + 1) * sizeof(char *));
            (*items)[*n] = strndup(start, (size_t)(p - start + 1));
            (*n)++;
        }
    }
    return depth == 0 ? 0 : -1;
}

static int cmd_call(session *s)
{
    opts *o = s->o;
    char err[512];
    char service[256];
    snprintf(service, sizeof(service), "%s", o->arg[0] == '/' ? o->arg + 1 : o->arg);
    char *slash = strrchr(service, '/');
    if (slash == NULL) {
        slash = strrchr(service, '.');
    }
    if (slash == NULL) {
        fprintf(stderr, "pwctl: name the method as package.Service/Method\n");
        return 2;
    }
    *slash = '\0';
    if (!o->embedded && load_symbol(s, service, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "pwctl: cannot describe %s: %s\n", service, err);
        return 3;
    }
    if (o->embedded) {
        load_embedded(s->pool);
    }
    if (dyn_build(s->pool, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "pwctl: %s\n", err);
        return 3;
    }
    const dyn_method *m = dyn_find_method(s->pool, o->arg);
    if (m == NULL) {
        fprintf(stderr, "pwctl: %s has no method %s\n", service, slash + 1);
        return 3;
    }
    char *text = request_text(o);
    char **items = NULL;
    size_t nitems = 0;
    ProtobufCMessage **reqs = NULL;
    pw_metadata md = {0};
    int rc = 0;
    if (text == NULL || split_array(text, &items, &nitems) != 0 ||
        (!m->client_streaming && nitems != 1)) {
        fprintf(stderr, "pwctl: cannot read the request (one JSON object%s)\n",
                m->client_streaming ? ", or an array of them" : "");
        rc = 2;
        goto done;
    }
    reqs = calloc(nitems + 1, sizeof(*reqs));
    pw_json_options j = json_opts(o);
    for (size_t i = 0; i < nitems; i++) {
        if (pw_json_decode(m->input, items[i], strlen(items[i]), &j, &reqs[i], err, sizeof(err)) !=
            PW_OK) {
            fprintf(stderr, "pwctl: bad request for %s: %s\n", m->input->name, err);
            rc = 2;
            goto done;
        }
    }
    for (int i = 0; i < o->nheaders; i++) {
        const char *colon = strchr(o->headers[i], ':');
        if (colon == NULL) {
            fprintf(stderr, "pwctl: header \"%s\" is not name: value\n", o->headers[i]);
            rc = 2;
            goto done;
        }
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(colon - o->headers[i]), o->headers[i]);
        const char *value = colon + 1;
        while (*value == ' ') {
            value++;
        }
        pw_metadata_add_str(&md, name, value);
    }
    char path[512];
    snprintf(path, sizeof(path), "/%s/%s", m->service, m->name);
    pw_call_options co = {.timeout_ms = o->timeout_ms, .metadata = &md};
    pw_stream *st;
    if (pw_client_call_start_blocking(&st, s->ch, path, &co) != PW_OK) {
        fprintf(stderr, "pwctl: cannot start the call\n");
        rc = 3;
    } else {
        for (size_t i = 0; i < nitems; i++) {
            pw_stream_send(st, reqs[i]);
        }
        pw_stream_close_send(st);
        ProtobufCMessage *resp;
        while (pw_stream_recv(st, m->output, &resp) == PW_OK && resp != NULL) {
            print_json(o, resp);
            pw_protobuf_free(resp);
        }
        const char *msg = NULL;
        const pw_metadata *trailers = NULL;
        pw_status code = pw_stream_finish(st, &msg, &trailers);
        if (code != PW_OK) {
            print_error(o, code, msg, trailers);
            rc = 1;
        }
        pw_stream_free(st);
    }
done:
    for (size_t i = 0; i < nitems; i++) {
        if (reqs != NULL) {
            pw_protobuf_free(reqs[i]);
        }
        free(items[i]);
    }
    free(reqs);
    free(items);
    free(text);
    pw_metadata_clear(&md);
    return rc;
}

static const char *type_label(const ProtobufCFieldDescriptor *f)
{
    static const char *const names[] = {"int32",    "sint32", "sfixed32", "int64",  "sint64",
                                        "sfixed64", "uint32", "fixed32",  "uint64", "fixed64",
                                        "float",    "double", "bool",     "enum",   "string",
                                        "bytes",    "message"};
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        return ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
    }
    if (f->type == PROTOBUF_C_TYPE_ENUM) {
        return ((const ProtobufCEnumDescriptor *)f->descriptor)->name;
    }
    return (unsigned)f->type < sizeof(names) / sizeof(names[0]) ? names[f->type] : "?";
}

static void describe_method(const dyn_method *m)
{
    printf("rpc %s(%s%s) returns (%s%s)\n", m->name, m->client_streaming ? "stream " : "",
           m->input->name, m->server_streaming ? "stream " : "", m->output->name);
}

static int cmd_describe(session *s)
{
    opts *o = s->o;
    char err[512];
    char symbol[256];
    snprintf(symbol, sizeof(symbol), "%s", o->arg);
    char *slash = strchr(symbol, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    if (o->embedded) {
        load_embedded(s->pool);
    } else if (load_symbol(s, symbol, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "pwctl: cannot describe %s: %s\n", symbol, err);
        return 3;
    }
    if (dyn_build(s->pool, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "pwctl: %s\n", err);
        return 3;
    }
    const dyn_method *m = dyn_find_method(s->pool, o->arg);
    if (m != NULL) {
        describe_method(m);
        return 0;
    }
    int found = 0;
    for (size_t i = 0; (m = dyn_method_at(s->pool, i)) != NULL; i++) {
        if (strcmp(m->service, symbol) == 0) {
            if (!found) {
                printf("service %s {\n", symbol);
            }
            found = 1;
            printf("  ");
            describe_method(m);
        }
    }
    if (found) {
        printf("}\n");
        return 0;
    }
    const ProtobufCMessageDescriptor *d = dyn_message(s->pool, symbol);
    if (d != NULL) {
        printf("message %s {\n", d->name);
        for (unsigned i = 0; i < d->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            printf("  %s%s %s = %u;\n", f->label == PROTOBUF_C_LABEL_REPEATED ? "repeated " : "",
                   type_label(f), f->name, f->id);
        }
        printf("}\n");
        return 0;
    }
    const ProtobufCEnumDescriptor *e = dyn_enum(s->pool, symbol);
    if (e != NULL) {
        printf("enum %s {\n", e->name);
        for (unsigned i = 0; i < e->n_values; i++) {
            printf("  %s = %d;\n", e->values[i].name, e->values[i].value);
        }
        printf("}\n");
        return 0;
    }
    fprintf(stderr, "pwctl: %s is not a service, method, message or enum the server knows\n",
            symbol);
    return 3;
}

static int cmd_list(session *s)
{
    char err[512];
    if (s->o->embedded) {
        load_embedded(s->pool);
        if (dyn_build(s->pool, err, sizeof(err)) != PW_OK) {
            fprintf(stderr, "pwctl: %s\n", err);
            return 3;
        }
        for (size_t i = 0; dyn_service(s->pool, i) != NULL; i++) {
            printf("%s\n", dyn_service(s->pool, i));
        }
        return 0;
    }
    char **names = NULL;
    size_t n = 0;
    if (list_services(s, &names, &n, err, sizeof(err)) != PW_OK) {
        fprintf(stderr, "pwctl: cannot list services at %s: %s\n", s->o->addr, err);
        return 3;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
    }
    free(names);
    return 0;
}

static void channel_closed(pw_channel *ch, void *ud)
{
    (void)ch;
    (void)ud;
}

int main(int argc, char **argv)
{
    opts o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    session s = {.o = &o, .pool = dyn_new()};
    uv_loop_init(&s.loop);
    pw_tls_config tls = {.cert_file = o.cert, .key_file = o.key, .ca_file = o.cacert};
    pw_channel_options co = {.tls = o.cacert ? &tls : NULL, .connect_timeout_ms = 5000};
    if (strcmp(o.cmd, "list") != 0 && strcmp(o.cmd, "describe") != 0 &&
        strcmp(o.cmd, "call") != 0) {
        return usage();
    }
    if (pw_channel_new(&s.ch, &s.loop, o.addr, &co) != PW_OK) {
        fprintf(stderr, "pwctl: cannot create a channel to %s (TLS files readable?)\n", o.addr);
        return 3;
    }
    if (strcmp(o.cmd, "list") == 0) {
        rc = cmd_list(&s);
    } else if (strcmp(o.cmd, "describe") == 0) {
        rc = cmd_describe(&s);
    } else {
        rc = cmd_call(&s);
    }
    pw_channel_close(s.ch, channel_closed, NULL);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    uv_loop_close(&s.loop);
    dyn_free(s.pool);
    return rc;
}
