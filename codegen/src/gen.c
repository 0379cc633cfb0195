/*
 * gen.c: emits the typed server and client code for one .proto file (see
 * docs/design/codegen.md). Output depends only on the descriptor, in
 * declaration order, so the same input always gives byte-identical files.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include "gen.h"
#include "names.h"

#define P(b, ...) pw_buf_printf((b), __VA_ARGS__)

typedef struct meth {
    const Google__Protobuf__MethodDescriptorProto *m;
    char *snake;
    char *member;
    char *fn;
    char *req_type;
    char *resp_type;
    char *req_desc;
    char *resp_desc;
    int client_streaming;
    int server_streaming;
    const char *comment;
} meth;

typedef struct svc {
    const Google__Protobuf__ServiceDescriptorProto *s;
    char *prefix;
    char *upper;
    char *full;
    const char *comment;
    meth *methods;
    size_t n;
} svc;

/* ---- comments ---- */

static const char *find_comment(const Google__Protobuf__FileDescriptorProto *f, const int32_t *path,
                                size_t n)
{
    const Google__Protobuf__SourceCodeInfo *info = f->source_code_info;
    for (size_t i = 0; info != NULL && i < info->n_location; i++) {
        const Google__Protobuf__SourceCodeInfo__Location *l = info->location[i];
        if (l->n_path == n && memcmp(l->path, path, n * sizeof(int32_t)) == 0) {
            return l->leading_comments;
        }
    }
    return NULL;
}

/* Writes comment as doc-comment lines (indent, " * text"), one per source line. */
static void emit_comment_lines(pw_buf *b, const char *indent, const char *comment)
{
    if (comment == NULL) {
        return;
    }
    const char *p = comment;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *line = p;
        if (len > 0 && line[0] == ' ') {
            line++;
            len--;
        }
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r')) {
            len--;
        }
        if (!(e == NULL && len == 0)) {
            P(b, "%s *%s", indent, len ? " " : "");
            for (size_t i = 0; i < len; i++) {
                /* Never close the comment early. */
                if (line[i] == '*' && i + 1 < len && line[i + 1] == '/') {
                    P(b, "* ");
                } else {
                    P(b, "%c", line[i]);
                }
            }
            P(b, "\n");
        }
        p = e ? e + 1 : p + strlen(p);
    }
}

static void emit_doc(pw_buf *b, const char *indent, const char *comment, const char *extra)
{
    P(b, "%s/**\n", indent);
    emit_comment_lines(b, indent, comment);
    if (comment != NULL && extra != NULL) {
        P(b, "%s *\n", indent);
    }
    emit_comment_lines(b, indent, extra);
    P(b, "%s */\n", indent);
}

/* ---- model ---- */

static void meth_free(meth *m)
{
    pw_free(m->snake);
    pw_free(m->member);
    pw_free(m->fn);
    pw_free(m->req_type);
    pw_free(m->resp_type);
    pw_free(m->req_desc);
    pw_free(m->resp_desc);
}

static void svc_free(svc *s)
{
    for (size_t i = 0; i < s->n; i++) {
        meth_free(&s->methods[i]);
    }
    pw_free(s->methods);
    pw_free(s->prefix);
    pw_free(s->upper);
    pw_free(s->full);
}

static char *descriptor_symbol(const char *type)
{
    char *lower = pwg_pbc_lower(type);
    pw_buf b = {0};
    P(&b, "%s__descriptor", lower ? lower : "");
    pw_buf_append(&b, "", 1);
    pw_free(lower);
    return (char *)b.data;
}

static char *fmt(const char *f, ...) PW_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *out = pw_malloc((size_t)(n < 0 ? 0 : n) + 1);
    if (out != NULL) {
        va_start(ap, f);
        vsnprintf(out, (size_t)(n < 0 ? 0 : n) + 1, f, ap);
        va_end(ap);
    }
    return out;
}

static char *upper_of(const char *s)
{
    char *u = pw_strdup(s);
    for (char *p = u; p && *p; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    return u;
}

static int build_svc(const Google__Protobuf__FileDescriptorProto *f, size_t si, svc *out,
                     char **err)
{
    const Google__Protobuf__ServiceDescriptorProto *s = f->service[si];
    memset(out, 0, sizeof(*out));
    out->s = s;
    out->prefix = pwg_prefix(f->package, s->name);
    out->upper = upper_of(out->prefix);
    out->full =
        f->package && f->package[0] ? fmt("%s.%s", f->package, s->name) : pw_strdup(s->name);
    int32_t spath[2] = {6, (int32_t)si};
    out->comment = find_comment(f, spath, 2);
    out->methods = pw_calloc(s->n_method ? s->n_method : 1, sizeof(meth));
    out->n = s->n_method;
    for (size_t j = 0; j < s->n_method; j++) {
        const Google__Protobuf__MethodDescriptorProto *m = s->method[j];
        meth *x = &out->methods[j];
        x->m = m;
        x->snake = pwg_snake(m->name);
        x->member = pwg_is_keyword(x->snake) ? fmt("%s_", x->snake) : pw_strdup(x->snake);
        x->fn = fmt("%s_%s", out->prefix, x->snake);
        x->req_type = pwg_pbc_type(m->input_type);
        x->resp_type = pwg_pbc_type(m->output_type);
        x->req_desc = descriptor_symbol(m->input_type);
        x->resp_desc = descriptor_symbol(m->output_type);
        x->client_streaming = m->has_client_streaming && m->client_streaming;
        x->server_streaming = m->has_server_streaming && m->server_streaming;
        int32_t mpath[4] = {6, (int32_t)si, 2, (int32_t)j};
        x->comment = find_comment(f, mpath, 4);
        char *pbc_member = pwg_pbc_lower(m->name);
        int pbc_keyword = pbc_member != NULL && pwg_is_c_keyword(pbc_member);
        pw_free(pbc_member);
        if (pbc_keyword) {
            *err = fmt("%s: service %s: method %s: protoc-c names its service member after the "
                       "method, and '%s' is a C keyword that its generated code cannot compile; "
                       "rename the method",
                       f->name, s->name, m->name, x->snake);
            return -1;
        }
        if (x->snake == NULL || x->snake[0] == '\0') {
            *err =
                fmt("%s: service %s: method name cannot be turned into a C name", f->name, s->name);
            return -1;
        }
        for (size_t k = 0; k < j; k++) {
            if (strcmp(out->methods[k].snake, x->snake) == 0) {
                pw_buf b = {0};
                P(&b, "%s: service %s: methods %s and %s both map to the C name '%s'; rename one",
                  f->name, s->name, out->methods[k].m->name, m->name, x->snake);
                pw_buf_append(&b, "", 1);
                *err = (char *)b.data;
                return -1;
            }
        }
    }
    return 0;
}

static const char *kind_enum(const meth *m)
{
    if (m->client_streaming) {
        return m->server_streaming ? "PW_METHOD_BIDI_STREAMING" : "PW_METHOD_CLIENT_STREAMING";
    }
    return m->server_streaming ? "PW_METHOD_SERVER_STREAMING" : "PW_METHOD_UNARY";
}

static const char *kind_text(const meth *m)
{
    if (m->client_streaming) {
        return m->server_streaming ? "Bidirectional streaming" : "Client streaming";
    }
    return m->server_streaming ? "Server streaming" : "Unary";
}

static const char *idempotency(const meth *m)
{
    const Google__Protobuf__MethodOptions *o = m->m->options;
    if (o != NULL && o->has_idempotency_level) {
        switch (o->idempotency_level) {
        case GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__NO_SIDE_EFFECTS:
            return "PW_IDEMPOTENCY_NO_SIDE_EFFECTS";
        case GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__IDEMPOTENT:
            return "PW_IDEMPOTENCY_IDEMPOTENT";
        default:
            break;
        }
    }
    return "PW_IDEMPOTENCY_UNKNOWN";
}

/* ---- header ---- */

static void emit_header_server(pw_buf *h, const svc *s)
{
    P(h, "/* ==== %s: server ==== */\n\n", s->full);
    emit_doc(h, "", s->comment, "Handlers of this service; a NULL entry answers UNIMPLEMENTED.");
    P(h, "typedef struct %s_handlers {\n", s->prefix);
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        char extra[512];
        if (!m->client_streaming) {
            snprintf(extra, sizeof(extra),
                     "%s. request is valid until the call ends. Answer with %s_%s() or "
                     "pw_call_finish().",
                     kind_text(m), m->fn, m->server_streaming ? "send" : "reply");
            emit_doc(h, "    ", m->comment, extra);
            P(h, "    void (*%s)(pw_call *call, const %s *request, void *user_data);\n", m->member,
              m->req_type);
        } else {
            snprintf(extra, sizeof(extra),
                     "%s. Install receive callbacks with %s_recv(), answer with %s_%s(), end "
                     "with pw_call_finish().",
                     kind_text(m), m->fn, m->fn, m->server_streaming ? "send" : "reply");
            emit_doc(h, "    ", m->comment, extra);
            P(h, "    void (*%s)(pw_call *call, void *user_data);\n", m->member);
        }
    }
    P(h, "} %s_handlers;\n\n", s->prefix);
    P(h, "/** Method descriptors of %s, in declaration order. */\n", s->full);
    P(h, "#define %s_METHOD_COUNT %zu\n", s->upper, s->n);
    P(h, "extern const pw_method %s_methods[%zu];\n\n", s->prefix, s->n ? s->n : 1);
    P(h,
      "/**\n * Mounts %s on server: every method, with handlers (borrowed: keep it\n"
      " * alive as long as the server) and user_data passed to each handler. Also\n"
      " * records this file's descriptor for reflection. Returns PW_OK, or the\n"
      " * error of pw_server_add_method (PW_ALREADY_EXISTS when mounted twice).\n */\n",
      s->full);
    P(h,
      "pw_status %s_register(pw_server *server, const %s_handlers *handlers, void *user_data);\n\n",
      s->prefix, s->prefix);
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        if (m->server_streaming) {
            P(h,
              "/** Queues one %s response (copied). Returns as pw_call_send(): PW_OK,\n"
              " * PW_RESOURCE_EXHAUSTED, PW_CANCELLED or PW_FAILED_PRECONDITION. */\n",
              m->m->name);
            P(h,
              "static inline pw_status %s_send(pw_call *call, const %s *response)\n{\n"
              "    return pw_call_send(call, &response->base);\n}\n\n",
              m->fn, m->resp_type);
            P(h, "/** The same with pw_write_flags (PW_WRITE_NO_COMPRESS: this one uncompressed);\n"
                 " * returns as pw_call_send_flags() (PW_OK, PW_CANCELLED, ...). */\n");
            P(h,
              "static inline pw_status %s_send_flags(pw_call *call, const %s *response,\n"
              "    uint32_t flags)\n{\n"
              "    return pw_call_send_flags(call, &response->base, flags);\n}\n\n",
              m->fn, m->resp_type);
        } else {
            P(h, "/** Sends the %s response and finishes with OK. See pw_call_reply(). */\n",
              m->m->name);
            P(h,
              "static inline void %s_reply(pw_call *call, const %s *response)\n{\n"
              "    pw_call_reply(call, &response->base);\n}\n\n",
              m->fn, m->resp_type);
        }
        if (m->client_streaming) {
            P(h,
              "/** Receive callbacks of %s; request is valid during on_message, and\n"
              " * pw_call_request_compressed(call) tells whether it arrived compressed. */\n",
              m->m->name);
            P(h, "typedef struct %s_ops {\n", m->fn);
            P(h, "    void (*on_message)(pw_call *call, const %s *request, void *user_data);\n",
              m->req_type);
            P(h, "    void (*on_half_close)(pw_call *call, void *user_data);\n"
                 "    void (*on_write_ready)(pw_call *call, void *user_data);\n"
                 "    void (*on_cancel)(pw_call *call, pw_status why, void *user_data);\n");
            P(h, "} %s_ops;\n\n", m->fn);
            P(h, "/**\n * Installs ops (borrowed; keep it static) for this call. A request that\n"
                 " * cannot be decoded ends the call with INTERNAL (on_cancel is told).\n"
                 " * Returns PW_OK or PW_ERRNO(ENOMEM).\n */\n");
            P(h, "pw_status %s_recv(pw_call *call, const %s_ops *ops, void *user_data);\n\n", m->fn,
              m->fn);
        }
    }
}

static void emit_header_client(pw_buf *h, const svc *s)
{
    P(h, "/* ==== %s: client ==== */\n\n", s->full);
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        if (!m->client_streaming && !m->server_streaming) {
            P(h,
              "/** Result of %s: response is NULL unless result->code is PW_OK; both are\n"
              " * valid during the callback. */\n",
              m->m->name);
            P(h,
              "typedef void (*%s_done_cb)(const %s *response, const pw_result *result, "
              "void *user_data);\n",
              m->fn, m->resp_type);
            emit_doc(h, "", m->comment,
                     "Calls it asynchronously on the channel's loop. Returns PW_OK, and done\n"
                     "runs exactly once on a later loop turn; or, as pw_client_unary(),\n"
                     "PW_CANCELLED (the channel is closing), PW_INVALID_ARGUMENT or\n"
                     "PW_ERRNO(ENOMEM), and done never runs.");
            P(h,
              "pw_status %s(pw_channel *channel, const %s *request, const pw_call_options "
              "*opts,\n    %s_done_cb done, void *user_data);\n",
              m->fn, m->req_type, m->fn);
            P(h,
              "/**\n * Blocking form (tools, tests): runs the channel's loop until the call ends,\n"
              " * as pw_client_unary_blocking(). Returns PW_OK with *response set (free it\n"
              " * with pw_protobuf_free(&(*response)->base)), or the status the call ended\n"
              " * with (PW_CANCELLED ... PW_UNAUTHENTICATED; PW_INTERNAL for a missing or\n"
              " * undecodable response) with *response NULL. status_message (may be NULL)\n"
              " * receives a copy of grpc-message on every outcome (pw_free it).\n */\n");
            P(h,
              "pw_status %s_blocking(pw_channel *channel, const %s *request,\n"
              "    const pw_call_options *opts, %s **response, char **status_message);\n\n",
              m->fn, m->req_type, m->resp_type);
            continue;
        }
        P(h,
          "/** Client callbacks of %s; response is valid during on_message, and\n"
          " * pw_client_call_message_compressed(call) tells whether it arrived compressed. */\n",
          m->m->name);
        P(h, "typedef struct %s_client_ops {\n", m->fn);
        P(h, "    void (*on_message)(pw_client_call *call, const %s *response, void *user_data);\n",
          m->resp_type);
        P(h,
          "    void (*on_write_ready)(pw_client_call *call, void *user_data);\n"
          "    void (*on_done)(pw_client_call *call, const pw_result *result, void *user_data);\n");
        P(h, "} %s_client_ops;\n\n", m->fn);
        emit_doc(h, "", m->comment,
                 m->client_streaming
                     ? "Starts the call; send requests with the _call_send function, then\n"
                       "pw_client_call_close_send(). Returns PW_OK, and on_done runs exactly\n"
                       "once; or, as pw_client_call_start(), PW_CANCELLED, PW_INVALID_ARGUMENT\n"
                       "or PW_ERRNO(ENOMEM), and no callback runs. *out (may be NULL)\n"
                       "receives the call (NULL on failure)."
                     : "Starts the call with its one request; responses arrive in on_message.\n"
                       "Returns PW_OK, and on_done runs exactly once; or, as\n"
                       "pw_client_call_start(), PW_CANCELLED, PW_INVALID_ARGUMENT or\n"
                       "PW_ERRNO(ENOMEM), and no callback runs. *out (may be NULL) receives\n"
                       "the call (NULL on failure).");
        if (m->client_streaming) {
            P(h,
              "pw_status %s_start(pw_channel *channel, const pw_call_options *opts,\n"
              "    const %s_client_ops *ops, void *user_data, pw_client_call **out);\n",
              m->fn, m->fn);
            P(h, "/** Queues one request (copied); returns as pw_client_call_send() (PW_OK,\n"
                 " * PW_FAILED_PRECONDITION after close_send, ...). */\n");
            P(h,
              "static inline pw_status %s_call_send(pw_client_call *call, const %s *request)\n"
              "{\n    return pw_client_call_send(call, &request->base);\n}\n",
              m->fn, m->req_type);
            P(h, "/** The same with pw_write_flags (PW_WRITE_NO_COMPRESS); returns as\n"
                 " * pw_client_call_send_flags() (PW_OK, PW_FAILED_PRECONDITION, ...). */\n");
            P(h,
              "static inline pw_status %s_call_send_flags(pw_client_call *call, const %s "
              "*request,\n"
              "    uint32_t flags)\n{\n"
              "    return pw_client_call_send_flags(call, &request->base, flags);\n}\n",
              m->fn, m->req_type);
        } else {
            P(h,
              "pw_status %s_start(pw_channel *channel, const %s *request,\n"
              "    const pw_call_options *opts, const %s_client_ops *ops, void *user_data,\n"
              "    pw_client_call **out);\n",
              m->fn, m->req_type, m->fn);
        }
        P(h, "/**\n * Blocking form (tools, tests): a pw_stream, whose functions run the\n"
             " * channel's loop. Returns PW_OK with *out set, or as\n"
             " * pw_client_call_start_blocking() (PW_CANCELLED, PW_INVALID_ARGUMENT,\n"
             " * PW_ERRNO(ENOMEM)) with *out NULL.\n */\n");
        if (m->client_streaming) {
            P(h,
              "pw_status %s_start_blocking(pw_channel *channel, const pw_call_options *opts,\n"
              "    pw_stream **out);\n",
              m->fn);
            P(h, "/** Sends one request, waiting while the queue is full; returns as\n"
                 " * pw_stream_send() (PW_OK, PW_FAILED_PRECONDITION, ...). */\n");
            P(h,
              "static inline pw_status %s_stream_send(pw_stream *s, const %s *request)\n{\n"
              "    return pw_stream_send(s, &request->base);\n}\n",
              m->fn, m->req_type);
            P(h, "/** The same with pw_write_flags (PW_WRITE_NO_COMPRESS); returns as\n"
                 " * pw_stream_send_flags() (PW_OK, PW_FAILED_PRECONDITION, ...). */\n");
            P(h,
              "static inline pw_status %s_stream_send_flags(pw_stream *s, const %s *request,\n"
              "    uint32_t flags)\n{\n"
              "    return pw_stream_send_flags(s, &request->base, flags);\n}\n",
              m->fn, m->req_type);
        } else {
            P(h,
              "pw_status %s_start_blocking(pw_channel *channel, const %s *request,\n"
              "    const pw_call_options *opts, pw_stream **out);\n",
              m->fn, m->req_type);
        }
        P(h, "/**\n * Waits for the next response: PW_OK with *out set (free it with\n"
             " * pw_protobuf_free(&(*out)->base)), or with *out NULL at the end of the\n"
             " * stream; PW_INTERNAL (*out NULL) when it cannot be decoded.\n"
             " * pw_stream_message_compressed(s) then tells whether it arrived compressed.\n */\n");
        P(h,
          "static inline pw_status %s_stream_recv(pw_stream *s, %s **out)\n{\n"
          "    return pw_stream_recv(s, &%s, (ProtobufCMessage **)(void *)out);\n}\n\n",
          m->fn, m->resp_type, m->resp_desc);
    }
}

/* ---- source ---- */

static void emit_source_server(pw_buf *c, const svc *s, const char *file_sym)
{
    P(c, "/* ==== %s: server ==== */\n\n", s->full);
    P(c, "const pw_method %s_methods[%zu] = {\n", s->prefix, s->n ? s->n : 1);
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        P(c,
          "    {.path = \"/%s/%s\",\n     .kind = %s,\n     .request_type = &%s,\n"
          "     .response_type = &%s,\n     .handler = pw_handler_unimplemented,\n"
          "     .user_data = NULL,\n     .impl = NULL,\n     .idempotency_level = %s},\n",
          s->full, m->m->name, kind_enum(m), m->req_desc, m->resp_desc, idempotency(m));
    }
    if (s->n == 0) {
        P(c, "    {0},\n");
    }
    P(c, "};\n\n");
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        P(c, "static void %s__dispatch(pw_call *call, void *user_data)\n{\n", m->fn);
        P(c, "    const %s_handlers *h = pw_call_get_method(call)->impl;\n", s->prefix);
        if (!m->client_streaming) {
            P(c, "    h->%s(call, (const %s *)(const void *)pw_call_request(call), user_data);\n",
              m->member, m->req_type);
        } else {
            P(c, "    h->%s(call, user_data);\n", m->member);
        }
        P(c, "}\n\n");
        if (!m->client_streaming) {
            continue;
        }
        P(c,
          "typedef struct %s__binding {\n    const %s_ops *ops;\n    void *user_data;\n} "
          "%s__binding;\n\n",
          m->fn, m->fn, m->fn);
        P(c, "static void %s__on_message(pw_call *call, pw_slice msg, void *ud)\n{\n", m->fn);
        P(c, "    const %s__binding *b = ud;\n", m->fn);
        P(c,
          "    ProtobufCMessage *req = protobuf_c_message_unpack(&%s, pw_protobuf_allocator(), "
          "msg.len, msg.base);\n",
          m->req_desc);
        P(c,
          "    if (req == NULL) {\n        pw_call_abort(call, PW_INTERNAL, \"cannot decode "
          "request as %s\");\n        return;\n    }\n",
          m->m->input_type + 1);
        P(c,
          "    if (b->ops->on_message != NULL) {\n        b->ops->on_message(call, (const %s "
          "*)(const void *)req, b->user_data);\n    }\n",
          m->req_type);
        P(c, "    pw_protobuf_free(req);\n}\n\n");
        P(c,
          "static void %s__on_half_close(pw_call *call, void *ud)\n{\n    const %s__binding *b = "
          "ud;\n    if (b->ops->on_half_close != NULL) {\n        b->ops->on_half_close(call, "
          "b->user_data);\n    }\n}\n\n",
          m->fn, m->fn);
        P(c,
          "static void %s__on_write_ready(pw_call *call, void *ud)\n{\n    const %s__binding *b "
          "= ud;\n    if (b->ops->on_write_ready != NULL) {\n        b->ops->on_write_ready(call, "
          "b->user_data);\n    }\n}\n\n",
          m->fn, m->fn);
        P(c,
          "static void %s__on_cancel(pw_call *call, pw_status why, void *ud)\n{\n    const "
          "%s__binding *b = ud;\n    if (b->ops->on_cancel != NULL) {\n        "
          "b->ops->on_cancel(call, why, b->user_data);\n    }\n}\n\n",
          m->fn, m->fn);
        P(c,
          "static const pw_call_ops %s__raw_ops = {\n    .on_message = %s__on_message,\n"
          "    .on_half_close = %s__on_half_close,\n    .on_write_ready = %s__on_write_ready,\n"
          "    .on_cancel = %s__on_cancel,\n};\n\n",
          m->fn, m->fn, m->fn, m->fn, m->fn);
        P(c, "pw_status %s_recv(pw_call *call, const %s_ops *ops, void *user_data)\n{\n", m->fn,
          m->fn);
        P(c,
          "    %s__binding *b = pw_call_alloc(call, sizeof(*b));\n    if (b == NULL) {\n"
          "        return PW_ERRNO(ENOMEM);\n    }\n    b->ops = ops;\n    b->user_data = "
          "user_data;\n    pw_call_set_ops(call, &%s__raw_ops, b);\n    return PW_OK;\n}\n\n",
          m->fn, m->fn);
    }
    P(c,
      "pw_status %s_register(pw_server *server, const %s_handlers *handlers, void *user_data)\n{\n",
      s->prefix, s->prefix);
    P(c, "    pw_status rv = pw_server_add_file(server, &%s);\n", file_sym);
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        P(c, "    if (rv == PW_OK) {\n        pw_method m = %s_methods[%zu];\n", s->prefix, i);
        P(c,
          "        if (handlers->%s != NULL) {\n            m.handler = %s__dispatch;\n"
          "            m.impl = handlers;\n            m.user_data = user_data;\n        }\n",
          m->member, m->fn);
        P(c, "        rv = pw_server_add_method(server, &m);\n    }\n");
    }
    P(c, "    return rv;\n}\n\n");
}

static void emit_client_trampolines(pw_buf *c, const meth *m)
{
    P(c,
      "typedef struct %s__cbinding {\n    const %s_client_ops *ops;\n    void *user_data;\n} "
      "%s__cbinding;\n\n",
      m->fn, m->fn, m->fn);
    P(c, "static void %s__c_on_message(pw_client_call *call, pw_slice msg, void *ud)\n{\n", m->fn);
    P(c, "    const %s__cbinding *b = ud;\n", m->fn);
    P(c,
      "    ProtobufCMessage *resp = protobuf_c_message_unpack(&%s, pw_protobuf_allocator(), "
      "msg.len, msg.base);\n",
      m->resp_desc);
    P(c,
      "    if (resp == NULL) {\n        pw_client_call_fail(call, PW_INTERNAL, \"cannot decode "
      "response as %s\");\n        return;\n    }\n",
      m->m->output_type + 1);
    P(c,
      "    if (b->ops->on_message != NULL) {\n        b->ops->on_message(call, (const %s *)(const "
      "void *)resp, b->user_data);\n    }\n    pw_protobuf_free(resp);\n}\n\n",
      m->resp_type);
    P(c,
      "static void %s__c_on_write_ready(pw_client_call *call, void *ud)\n{\n    const "
      "%s__cbinding *b = ud;\n    if (b->ops->on_write_ready != NULL) {\n        "
      "b->ops->on_write_ready(call, b->user_data);\n    }\n}\n\n",
      m->fn, m->fn);
    P(c,
      "static void %s__c_on_done(pw_client_call *call, const pw_result *result, void *ud)\n{\n"
      "    %s__cbinding *b = ud;\n    if (b->ops->on_done != NULL) {\n        "
      "b->ops->on_done(call, result, b->user_data);\n    }\n    pw_free(b);\n}\n\n",
      m->fn, m->fn);
    P(c,
      "static const pw_client_ops %s__c_ops = {\n    .on_headers = NULL,\n    .on_message = "
      "%s__c_on_message,\n    .on_write_ready = %s__c_on_write_ready,\n    .on_done = "
      "%s__c_on_done,\n};\n\n",
      m->fn, m->fn, m->fn, m->fn);
}

static void emit_source_client(pw_buf *c, const svc *s)
{
    P(c, "/* ==== %s: client ==== */\n\n", s->full);
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        char path[512];
        snprintf(path, sizeof(path), "\"/%s/%s\"", s->full, m->m->name);
        const char *level = idempotency(m);
        if (!m->client_streaming && !m->server_streaming) {
            P(c,
              "pw_status %s(pw_channel *channel, const %s *request, const pw_call_options "
              "*opts,\n    %s_done_cb done, void *user_data)\n{\n",
              m->fn, m->req_type, m->fn);
            P(c,
              "    pw_call_options o = pw__gen_options(opts, %s);\n"
              "    return pw_client_unary(channel, %s, &o, &request->base, &%s,\n"
              "                           %s__done, (void (*)(void))done, user_data);\n}\n\n",
              level, path, m->resp_desc, m->fn);
            P(c,
              "pw_status %s_blocking(pw_channel *channel, const %s *request,\n"
              "    const pw_call_options *opts, %s **response, char **status_message)\n{\n",
              m->fn, m->req_type, m->resp_type);
            P(c,
              "    pw_call_options o = pw__gen_options(opts, %s);\n"
              "    return pw_client_unary_blocking(channel, %s, &o, &request->base, &%s,\n"
              "                                    (ProtobufCMessage **)(void *)response, "
              "status_message, NULL);\n}\n\n",
              level, path, m->resp_desc);
            continue;
        }
        emit_client_trampolines(c, m);
        if (m->client_streaming) {
            P(c,
              "pw_status %s_start(pw_channel *channel, const pw_call_options *opts,\n"
              "    const %s_client_ops *ops, void *user_data, pw_client_call **out)\n{\n",
              m->fn, m->fn);
        } else {
            P(c,
              "pw_status %s_start(pw_channel *channel, const %s *request,\n"
              "    const pw_call_options *opts, const %s_client_ops *ops, void *user_data,\n"
              "    pw_client_call **out)\n{\n",
              m->fn, m->req_type, m->fn);
        }
        P(c,
          "    if (out != NULL) {\n        *out = NULL;\n    }\n"
          "    %s__cbinding *b = pw_malloc(sizeof(*b));\n    if (b == NULL) {\n        return "
          "PW_ERRNO(ENOMEM);\n    }\n    b->ops = ops;\n    b->user_data = user_data;\n",
          m->fn);
        P(c, "    pw_call_options o = pw__gen_options(opts, %s);\n", level);
        P(c,
          "    pw_client_call *call;\n    pw_status rv = pw_client_call_start(&call, channel, %s, "
          "&o, &%s__c_ops, b);\n    if (rv != PW_OK) {\n        pw_free(b);\n        return "
          "rv;\n    }\n",
          path, m->fn);
        if (!m->client_streaming) {
            P(c, "    rv = pw_client_call_send(call, &request->base);\n    if (rv != PW_OK) {\n"
                 "        pw_client_call_fail(call, rv, \"cannot send the request\");\n    }\n"
                 "    pw_client_call_close_send(call);\n");
        }
        P(c, "    if (out != NULL) {\n        *out = call;\n    }\n    return PW_OK;\n}\n\n");
        if (m->client_streaming) {
            P(c,
              "pw_status %s_start_blocking(pw_channel *channel, const pw_call_options *opts,\n"
              "    pw_stream **out)\n{\n    pw_call_options o = pw__gen_options(opts, %s);\n"
              "    return pw_client_call_start_blocking(out, channel, %s, &o);\n}\n\n",
              m->fn, level, path);
        } else {
            P(c,
              "pw_status %s_start_blocking(pw_channel *channel, const %s *request,\n"
              "    const pw_call_options *opts, pw_stream **out)\n{\n",
              m->fn, m->req_type);
            P(c,
              "    pw_call_options o = pw__gen_options(opts, %s);\n"
              "    pw_status rv = pw_client_call_start_blocking(out, channel, %s, &o);\n"
              "    if (rv == PW_OK) {\n        pw_stream_send(*out, &request->base);\n"
              "        pw_stream_close_send(*out);\n    }\n    return rv;\n}\n\n",
              level, path);
        }
    }
}

static void emit_unary_done_trampolines(pw_buf *c, const svc *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const meth *m = &s->methods[i];
        if (m->client_streaming || m->server_streaming) {
            continue;
        }
        P(c,
          "static void %s__done(const ProtobufCMessage *response, const pw_result *result,\n"
          "                      void (*typed)(void), void *user_data)\n{\n",
          m->fn);
        P(c,
          "    ((%s_done_cb)typed)((const %s *)(const void *)response, result, user_data);\n}\n\n",
          m->fn, m->resp_type);
    }
}

/* ---- file ---- */

static void emit_bytes(pw_buf *c, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        P(c, "%s0x%02x,", i % 12 == 0 ? "\n    " : " ", data[i]);
    }
    P(c, "\n");
}

static void emit_file_descriptor(pw_buf *c, const Google__Protobuf__FileDescriptorProto *f,
                                 const char *ident)
{
    /* Reflection serves the descriptor without source info, as gRPC servers do. */
    Google__Protobuf__FileDescriptorProto copy = *f;
    copy.source_code_info = NULL;
    size_t len = protobuf_c_message_get_packed_size(&copy.base);
    uint8_t *bytes = pw_malloc(len ? len : 1);
    protobuf_c_message_pack(&copy.base, bytes);
    for (size_t i = 0; i < f->n_dependency; i++) {
        char *dep = pwg_file_ident(f->dependency[i]);
        P(c, "extern const pw_file_descriptor %s__pw_file;\n", dep);
        pw_free(dep);
    }
    P(c, "\nstatic const uint8_t %s__descriptor_bytes[%zu] = {", ident, len ? len : 1);
    emit_bytes(c, bytes, len);
    P(c, "};\n\n");
    if (f->n_dependency > 0) {
        P(c, "static const pw_file_descriptor *const %s__deps[%zu] = {\n", ident, f->n_dependency);
        for (size_t i = 0; i < f->n_dependency; i++) {
            char *dep = pwg_file_ident(f->dependency[i]);
            P(c, "    &%s__pw_file,\n", dep);
            pw_free(dep);
        }
        P(c, "};\n\n");
    }
    P(c,
      "const pw_file_descriptor %s__pw_file = {\n    .name = \"%s\",\n    .data = "
      "%s__descriptor_bytes,\n    .len = %zu,\n    .deps = %s%s,\n    .dep_count = %zu,\n};\n\n",
      ident, f->name, ident, len, f->n_dependency ? ident : "NULL", f->n_dependency ? "__deps" : "",
      f->n_dependency);
    pw_free(bytes);
}

static char *base_name(const char *proto_name)
{
    size_t n = strlen(proto_name);
    if (n > 6 && strcmp(proto_name + n - 6, ".proto") == 0) {
        n -= 6;
    }
    return pw_strndup(proto_name, n);
}

/* ---- protoc-c's message structs ---- */

typedef struct member {
    char *name;  /* the C name in protoc-c's struct */
    char *owner; /* what it comes from: "field 'x'", "oneof 'k'" */
} member;

/* Field types whose proto2 optional members get a has_ flag (strings and messages are
 * pointers, NULL when absent). */
static int has_flag_type(Google__Protobuf__FieldDescriptorProto__Type t)
{
    return t != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING &&
           t != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE &&
           t != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_GROUP;
}

/*
 * The members of protoc-c 1.4.1's struct for m (protoc-c/c_message.cc and the
 * c_*_field.cc generators): the ProtobufCMessage header "base"; per field its
 * member (pwg_pbc_member), with "n_" before it when repeated and "has_" for a
 * proto2 optional scalar outside a oneof; per oneof its case member. A
 * oneof's fields sit in an anonymous union, so they share the struct's names.
 * Fills out (1 + 2 * n_field + n_oneof_decl entries) and returns the count.
 */
static size_t pbc_members(const Google__Protobuf__FileDescriptorProto *f,
                          const Google__Protobuf__DescriptorProto *m, member *out)
{
    int proto2 = f->syntax == NULL || strcmp(f->syntax, "proto3") != 0;
    size_t n = 0;
    out[n++] = (member){pw_strdup("base"), pw_strdup("the ProtobufCMessage header")};
    for (size_t i = 0; i < m->n_field; i++) {
        const Google__Protobuf__FieldDescriptorProto *fd = m->field[i];
        char *c = pwg_pbc_member(fd->name);
        char *owner = fmt("field '%s'", fd->name);
        if (fd->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED) {
            out[n++] = (member){fmt("n_%s", c ? c : ""), pw_strdup(owner)};
        } else if (proto2 &&
                   fd->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_OPTIONAL &&
                   !fd->has_oneof_index && has_flag_type(fd->type)) {
            out[n++] = (member){fmt("has_%s", c ? c : ""), pw_strdup(owner)};
        }
        out[n++] = (member){c, owner};
    }
    for (size_t i = 0; i < m->n_oneof_decl; i++) {
        const char *name = m->oneof_decl[i]->name;
        out[n++] = (member){pwg_pbc_oneof_case(name), fmt("oneof '%s'", name)};
    }
    return n;
}

/*
 * protoc-c escapes field names that are C++ keywords ("register" becomes the
 * member register_), so those compile. What it leaves broken is refused here,
 * naming the message and field, instead of as a compiler error far from the
 * .proto: a member that is still a C keyword or a macro, or two members with
 * one name.
 */
static int check_member(const Google__Protobuf__FileDescriptorProto *f, const char *msg,
                        const member *v, size_t i, char **err)
{
    if (v[i].name == NULL || v[i].owner == NULL) {
        *err = fmt("%s: out of memory", f->name);
        return -1;
    }
    const char *why = pwg_member_unusable(v[i].name);
    if (why != NULL) {
        *err = fmt("%s: message %s: %s becomes the struct member '%s' in protoc-c's output, %s, "
                   "so that code cannot compile; rename it",
                   f->name, msg, v[i].owner, v[i].name, why);
        return -1;
    }
    for (size_t j = 0; j < i; j++) {
        if (strcmp(v[j].name, v[i].name) == 0) {
            *err = fmt("%s: message %s: %s and %s both become the struct member '%s' in "
                       "protoc-c's output, so that code cannot compile; rename %s",
                       f->name, msg, v[j].owner, v[i].owner, v[i].name, v[i].owner);
            return -1;
        }
    }
    return 0;
}

static int check_members(const Google__Protobuf__FileDescriptorProto *f,
                         const Google__Protobuf__DescriptorProto *m, const char *scope, char **err)
{
    char *name = scope[0] ? fmt("%s.%s", scope, m->name) : pw_strdup(m->name);
    member *v = pw_calloc(1 + 2 * m->n_field + m->n_oneof_decl, sizeof(*v));
    if (name == NULL || v == NULL) {
        pw_free(name);
        pw_free(v);
        *err = fmt("%s: out of memory", f->name);
        return -1;
    }
    size_t n = pbc_members(f, m, v);
    int rv = 0;
    for (size_t i = 0; i < n && rv == 0; i++) {
        rv = check_member(f, name, v, i, err);
    }
    for (size_t i = 0; i < n; i++) {
        pw_free(v[i].name);
        pw_free(v[i].owner);
    }
    pw_free(v);
    for (size_t i = 0; i < m->n_nested_type && rv == 0; i++) {
        rv = check_members(f, m->nested_type[i], name, err);
    }
    pw_free(name);
    return rv;
}

int pwg_generate(const Google__Protobuf__FileDescriptorProto *f, pw_buf *h, pw_buf *c, char **err)
{
    svc *svcs = pw_calloc(f->n_service ? f->n_service : 1, sizeof(svc));
    size_t built = 0;
    int rv = 0;
    for (size_t i = 0; i < f->n_message_type && rv == 0; i++) {
        rv = check_members(f, f->message_type[i], "", err);
    }
    for (; built < f->n_service && rv == 0; built++) {
        rv = build_svc(f, built, &svcs[built], err);
    }
    char *ident = pwg_file_ident(f->name);
    char *base = base_name(f->name);
    char *guard = upper_of(ident);
    if (rv == 0) {
        P(h, "/* Generated by protoc-gen-paywire %s from %s. DO NOT EDIT. */\n", PWG_VERSION,
          f->name);
        P(h, "#ifndef PW_GEN_%s_PW_H\n#define PW_GEN_%s_PW_H\n\n", guard, guard);
        P(h, "#include <paywire/paywire.h>\n#include \"%s.pb-c.h\"\n\n", base);
        P(h,
          "#if PW_VERSION_NUMBER != 0x%06x\n#error \"%s.pw.h was generated for paywire %s; "
          "regenerate it\"\n#endif\n\n",
          0x000100, base, PWG_VERSION);
        P(h, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
        P(h, "/** The compiled %s (descriptor and imports), for reflection. */\n", f->name);
        P(h, "extern const pw_file_descriptor %s__pw_file;\n\n", ident);
        P(c, "/* Generated by protoc-gen-paywire %s from %s. DO NOT EDIT. */\n", PWG_VERSION,
          f->name);
        P(c, "#include \"%s.pw.h\"\n\n", base);
        emit_file_descriptor(c, f, ident);
        char *file_sym = fmt("%s%s", ident, "__pw_file");
        size_t method_count = 0;
        for (size_t i = 0; i < f->n_service; i++) {
            method_count += svcs[i].n;
        }
        if (method_count > 0) {
            P(c,
              "/* Call options with the method's idempotency level, unless the caller set one. */\n"
              "static pw_call_options pw__gen_options(const pw_call_options *opts,\n"
              "                                       pw_idempotency level)\n{\n"
              "    pw_call_options o = {0};\n    if (opts != NULL) {\n        o = *opts;\n"
              "    }\n    if (o.idempotency == PW_IDEMPOTENCY_UNKNOWN) {\n"
              "        o.idempotency = level;\n    }\n    return o;\n}\n\n");
        }
        for (size_t i = 0; i < f->n_service; i++) {
            emit_header_server(h, &svcs[i]);
            emit_header_client(h, &svcs[i]);
            emit_source_server(c, &svcs[i], file_sym);
            emit_unary_done_trampolines(c, &svcs[i]);
            emit_source_client(c, &svcs[i]);
        }
        pw_free(file_sym);
        P(h, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
    }
    for (size_t i = 0; i < built; i++) {
        svc_free(&svcs[i]);
    }
    pw_free(svcs);
    pw_free(ident);
    pw_free(base);
    pw_free(guard);
    return rv;
}

/* ---- request ---- */

static Google__Protobuf__Compiler__CodeGeneratorResponse *response_new(void)
{
    Google__Protobuf__Compiler__CodeGeneratorResponse *r = pw_calloc(1, sizeof(*r));
    google__protobuf__compiler__code_generator_response__init(r);
    return r;
}

static const Google__Protobuf__FileDescriptorProto *
find_file(const Google__Protobuf__Compiler__CodeGeneratorRequest *req, const char *name)
{
    for (size_t i = 0; i < req->n_proto_file; i++) {
        if (strcmp(req->proto_file[i]->name, name) == 0) {
            return req->proto_file[i];
        }
    }
    return NULL;
}

static void add_output(Google__Protobuf__Compiler__CodeGeneratorResponse *r, const char *name,
                       pw_buf *content)
{
    Google__Protobuf__Compiler__CodeGeneratorResponse__File *f = pw_calloc(1, sizeof(*f));
    google__protobuf__compiler__code_generator_response__file__init(f);
    f->name = pw_strdup(name);
    pw_buf_append(content, "", 1);
    f->content = (char *)content->data;
    r->file = pw_realloc(r->file, (r->n_file + 1) * sizeof(*r->file));
    r->file[r->n_file++] = f;
}

Google__Protobuf__Compiler__CodeGeneratorResponse *
pwg_run(const Google__Protobuf__Compiler__CodeGeneratorRequest *req)
{
    Google__Protobuf__Compiler__CodeGeneratorResponse *r = response_new();
    for (size_t i = 0; i < req->n_file_to_generate; i++) {
        const Google__Protobuf__FileDescriptorProto *f = find_file(req, req->file_to_generate[i]);
        if (f == NULL) {
            r->error =
                fmt("%s: not among the request's proto files%s", req->file_to_generate[i], "");
            return r;
        }
        pw_buf h = {0}, c = {0};
        char *err = NULL;
        if (pwg_generate(f, &h, &c, &err) != 0) {
            pw_buf_reset(&h);
            pw_buf_reset(&c);
            r->error = err;
            return r;
        }
        char *base = base_name(f->name);
        char *hn = fmt("%s%s", base, ".pw.h");
        char *cn = fmt("%s%s", base, ".pw.c");
        add_output(r, hn, &h);
        add_output(r, cn, &c);
        pw_free(base);
        pw_free(hn);
        pw_free(cn);
    }
    return r;
}

void pwg_response_free(Google__Protobuf__Compiler__CodeGeneratorResponse *r)
{
    for (size_t i = 0; i < r->n_file; i++) {
        pw_free(r->file[i]->name);
        pw_free(r->file[i]->content);
        pw_free(r->file[i]);
    }
    pw_free(r->file);
    pw_free(r->error);
    pw_free(r);
}
