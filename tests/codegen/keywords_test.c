/*
 * C keywords as field and oneof names (issue 14): pwtest.v1.Reserved served
 * and called through generated code, which reaches the fields by protoc-c's
 * escaped members (register_, default_, switch_case); the JSON mapping,
 * reflection and pwctl's run-time descriptors, which use the proto names.
 */
#include <stdlib.h>
#include <string.h>
#include <paywire/builtins.h>
#include <paywire/json.h>
#include "dyn.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "pwtest/v1/keywords.pw.h"
#include "src/proto/grpc/reflection/v1/reflection.pb-c.h"
#include "pw_test.h"

typedef Pwtest__V1__Keywords Keywords;
typedef Pwtest__V1__Branch Branch;

/* ---- server ---- */

static void echo(pw_call *call, const Keywords *req, void *ud)
{
    (void)ud;
    Keywords resp = *req;
    char reg[64];
    snprintf(reg, sizeof(reg), "%s", req->register_);
    for (char *p = reg; *p; p++) {
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    }
    resp.register_ = reg;
    resp.default_ = 2 * req->default_;
    pwtest_v1_reserved_echo_reply(call, &resp);
}

/* One Branch per case of oneof switch, each with break set from the request's case. */
static void branches(pw_call *call, const Branch *req, void *ud)
{
    (void)ud;
    const char *brk = req->switch_case == PWTEST__V1__BRANCH__SWITCH_CASE ? req->case_ : "";
    Keywords inner = PWTEST__V1__KEYWORDS__INIT;
    inner.goto_ = (char *)"inner";
    Branch b[3] = {PWTEST__V1__BRANCH__INIT, PWTEST__V1__BRANCH__INIT, PWTEST__V1__BRANCH__INIT};
    b[0].switch_case = PWTEST__V1__BRANCH__SWITCH_CASE;
    b[0].case_ = (char *)"c";
    b[1].switch_case = PWTEST__V1__BRANCH__SWITCH_DEFAULT;
    b[1].default_ = -5;
    b[2].switch_case = PWTEST__V1__BRANCH__SWITCH_STRUCT;
    b[2].struct_ = &inner;
    for (int i = 0; i < 3; i++) {
        b[i].break_ = (char *)brk;
        pwtest_v1_reserved_branches_send(call, &b[i]);
    }
    pw_call_finish(call, PW_OK, NULL);
}

static const pwtest_v1_reserved_handlers reserved = {.echo = echo, .branches = branches};

/* ---- fixture ---- */

typedef struct fx {
    uv_loop_t loop;
    pw_server *server;
    pw_channel *ch;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    pw_test_serve(&f->loop, NULL, NULL, 0, NULL, &f->server, &f->ch, NULL);
    assert_int_equal(pwtest_v1_reserved_register(f->server, &reserved, NULL), PW_OK);
    assert_int_equal(pw_reflection_enable(f->server), PW_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    pw_test_shutdown(&f->loop, f->server, f->ch);
    free(f);
    return 0;
}

/* ---- typed round trip ---- */

/* Sets every member of k (the branch b goes in struct_ and union_). */
static void fill(Keywords *k, Branch *b, char **fors, int32_t *whiles)
{
    pwtest__v1__keywords__init(k);
    pwtest__v1__branch__init(b);
    b->switch_case = PWTEST__V1__BRANCH__SWITCH_DEFAULT;
    b->default_ = 77;
    b->break_ = (char *)"brk";
    k->auto_ = (char *)"auto";
    k->break_ = (char *)"break";
    k->case_ = (char *)"case";
    k->char_ = (char *)"char";
    k->const_ = (char *)"const";
    k->continue_ = (char *)"continue";
    k->default_ = 5;
    k->do_ = (char *)"do";
    k->double_ = 2.5;
    k->else_ = (char *)"else";
    k->enum_ = PWTEST__V1__KEYWORDS__KIND__KIND_DEFAULT;
    k->extern_ = (char *)"extern";
    k->float_ = 1.5f;
    k->n_for_ = 2;
    k->for_ = fors;
    k->goto_ = (char *)"goto";
    k->if_ = 1;
    k->inline_ = (char *)"inline";
    k->int_ = -18;
    k->long_ = -19000000000;
    k->register_ = (char *)"x";
    k->return_ = (char *)"return";
    k->short_ = -22;
    k->signed_ = -23;
    k->sizeof_ = 24;
    k->static_ = (char *)"static";
    k->struct_ = b;
    k->switch_ = (char *)"switch";
    k->typedef_ = (char *)"typedef";
    k->union_ = b;
    k->unsigned_ = 30;
    k->void_ = (ProtobufCBinaryData){.len = 3, .data = (uint8_t *)"\x00\x01\x02"};
    k->volatile_ = 32;
    k->n_while_ = 2;
    k->while_ = whiles;
    k->_alignas = (char *)"_Alignas";
    k->_alignof = (char *)"_Alignof";
    k->_atomic = (char *)"_Atomic";
    k->_bool = 1;
    k->_complex = (char *)"_Complex";
    k->_generic = (char *)"_Generic";
    k->_imaginary = (char *)"_Imaginary";
    k->_noreturn = (char *)"_Noreturn";
    k->_static_assert = (char *)"_Static_assert";
    k->_thread_local = (char *)"_Thread_local";
}

static void check_branch(const Branch *b)
{
    assert_non_null(b);
    assert_int_equal(b->switch_case, PWTEST__V1__BRANCH__SWITCH_DEFAULT);
    assert_int_equal(b->default_, 77);
    assert_string_equal(b->break_, "brk");
}

/* Every member as fill() set it, but register_ and default_, which echo() changes. */
static void check_filled(const Keywords *k)
{
    assert_string_equal(k->auto_, "auto");
    assert_string_equal(k->break_, "break");
    assert_string_equal(k->case_, "case");
    assert_string_equal(k->char_, "char");
    assert_string_equal(k->const_, "const");
    assert_string_equal(k->continue_, "continue");
    assert_string_equal(k->do_, "do");
    assert_true(k->double_ == 2.5);
    assert_string_equal(k->else_, "else");
    assert_int_equal(k->enum_, PWTEST__V1__KEYWORDS__KIND__KIND_DEFAULT);
    assert_string_equal(k->extern_, "extern");
    assert_true(k->float_ == 1.5f);
    assert_int_equal(k->n_for_, 2);
    assert_string_equal(k->for_[1], "for1");
    assert_string_equal(k->goto_, "goto");
    assert_int_equal(k->if_, 1);
    assert_string_equal(k->inline_, "inline");
    assert_int_equal(k->int_, -18);
    assert_true(k->long_ == -19000000000);
    assert_string_equal(k->return_, "return");
    assert_int_equal(k->short_, -22);
    assert_int_equal(k->signed_, -23);
    assert_int_equal(k->sizeof_, 24);
    assert_string_equal(k->static_, "static");
    check_branch(k->struct_);
    assert_string_equal(k->switch_, "switch");
    assert_string_equal(k->typedef_, "typedef");
    check_branch(k->union_);
    assert_int_equal(k->unsigned_, 30);
    assert_int_equal(k->void_.len, 3);
    assert_memory_equal(k->void_.data, "\x00\x01\x02", 3);
    assert_int_equal(k->volatile_, 32);
    assert_int_equal(k->n_while_, 2);
    assert_int_equal(k->while_[1], -33);
    assert_string_equal(k->_alignas, "_Alignas");
    assert_string_equal(k->_alignof, "_Alignof");
    assert_string_equal(k->_atomic, "_Atomic");
    assert_int_equal(k->_bool, 1);
    assert_string_equal(k->_complex, "_Complex");
    assert_string_equal(k->_generic, "_Generic");
    assert_string_equal(k->_imaginary, "_Imaginary");
    assert_string_equal(k->_noreturn, "_Noreturn");
    assert_string_equal(k->_static_assert, "_Static_assert");
    assert_string_equal(k->_thread_local, "_Thread_local");
}

static void test_codegen_keywords_every_member_over_the_wire(void **state)
{
    fx *f = *state;
    Keywords k;
    Branch b;
    char *fors[2] = {(char *)"for0", (char *)"for1"};
    int32_t whiles[2] = {33, -33};
    fill(&k, &b, fors, whiles);
    Keywords *out = NULL;
    char *msg = NULL;
    assert_int_equal(pwtest_v1_reserved_echo_blocking(f->ch, &k, NULL, &out, &msg), PW_OK);
    check_filled(out);
    assert_string_equal(out->register_, "X");
    assert_int_equal(out->default_, 10);
    pw_protobuf_free(&out->base);
    pw_free(msg);
}

static void test_codegen_keywords_oneof_switch_over_the_wire(void **state)
{
    fx *f = *state;
    Branch req = PWTEST__V1__BRANCH__INIT;
    req.switch_case = PWTEST__V1__BRANCH__SWITCH_CASE;
    req.case_ = (char *)"from-case";
    pw_stream *s;
    assert_int_equal(pwtest_v1_reserved_branches_start_blocking(f->ch, &req, NULL, &s), PW_OK);
    Branch *got[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pwtest_v1_reserved_branches_stream_recv(s, &got[i]), PW_OK);
        assert_non_null(got[i]);
        assert_string_equal(got[i]->break_, "from-case");
    }
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
    assert_int_equal(got[0]->switch_case, PWTEST__V1__BRANCH__SWITCH_CASE);
    assert_string_equal(got[0]->case_, "c");
    assert_int_equal(got[1]->switch_case, PWTEST__V1__BRANCH__SWITCH_DEFAULT);
    assert_int_equal(got[1]->default_, -5);
    assert_int_equal(got[2]->switch_case, PWTEST__V1__BRANCH__SWITCH_STRUCT);
    assert_string_equal(got[2]->struct_->goto_, "inner");
    for (int i = 0; i < 3; i++) {
        pw_protobuf_free(&got[i]->base);
    }
}

/* ---- JSON: proto names, JSON names ---- */

static char *encode(const ProtobufCMessage *m, int proto_names)
{
    pw_json_options o = {.proto_names = proto_names};
    pw_buf out = {0};
    char err[256];
    assert_int_equal(pw_json_encode(m, &o, &out, err, sizeof(err)), PW_OK);
    pw_buf_append(&out, "", 1);
    return (char *)out.data;
}

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[256] = "";
    pw_status rv = pw_json_decode(d, json, strlen(json), NULL, &m, err, sizeof(err));
    if (rv != PW_OK) {
        fail_msg("decoding %s: %s", json, err);
    }
    return m;
}

static void expect_json(const ProtobufCMessage *m, int proto_names, const char *want)
{
    char *got = encode(m, proto_names);
    assert_string_equal(got, want);
    pw_free(got);
}

static void test_codegen_keywords_json_names(void **state)
{
    (void)state;
    Keywords *k = (Keywords *)decode(&pwtest__v1__keywords__descriptor,
                                     "{\"register\": \"x\", \"default\": \"5\"}");
    assert_string_equal(k->register_, "x");
    assert_int_equal(k->default_, 5);
    expect_json(&k->base, 0, "{\"default\":\"5\",\"register\":\"x\"}");
    expect_json(&k->base, 1, "{\"default\":\"5\",\"register\":\"x\"}");
    pw_protobuf_free(&k->base);

    /* _Bool's JSON name is Bool (protoc's json_name); both spellings decode. */
    k = (Keywords *)decode(&pwtest__v1__keywords__descriptor,
                           "{\"Bool\": true, \"for\": [\"a\"], \"struct\": {\"case\": \"c\"}}");
    assert_int_equal(k->_bool, 1);
    assert_int_equal(k->n_for_, 1);
    assert_int_equal(k->struct_->switch_case, PWTEST__V1__BRANCH__SWITCH_CASE);
    expect_json(&k->base, 0, "{\"for\":[\"a\"],\"struct\":{\"case\":\"c\"},\"Bool\":true}");
    expect_json(&k->base, 1, "{\"for\":[\"a\"],\"struct\":{\"case\":\"c\"},\"_Bool\":true}");
    pw_protobuf_free(&k->base);
    k = (Keywords *)decode(&pwtest__v1__keywords__descriptor, "{\"_Bool\": true}");
    assert_int_equal(k->_bool, 1);
    pw_protobuf_free(&k->base);

    /* The oneof's name is no JSON key; two of its members are refused. */
    ProtobufCMessage *m = NULL;
    char err[256] = "";
    const char *two = "{\"case\": \"c\", \"default\": \"1\"}";
    assert_int_equal(pw_json_decode(&pwtest__v1__branch__descriptor, two, strlen(two), NULL, &m,
                                    err, sizeof(err)),
                     PW_INVALID_ARGUMENT);
    assert_null(m);
}

/* Every field's JSON name as the JSON mapping computes it is protoc's json_name. */
static void test_codegen_keywords_json_names_match_protoc(void **state)
{
    (void)state;
    const pw_file_descriptor *fd = &pwtest_v1_keywords__pw_file;
    Google__Protobuf__FileDescriptorProto *file =
        google__protobuf__file_descriptor_proto__unpack(pw_protobuf_allocator(), fd->len, fd->data);
    assert_non_null(file);
    size_t checked = 0;
    for (size_t i = 0; i < file->n_message_type; i++) {
        const Google__Protobuf__DescriptorProto *m = file->message_type[i];
        for (size_t j = 0; j < m->n_field; j++) {
            char name[64];
            pw_json_name(m->field[j]->name, name, sizeof(name));
            assert_non_null(m->field[j]->json_name);
            assert_string_equal(name, m->field[j]->json_name);
            checked++;
        }
    }
    assert_int_equal(checked, 43 + 4);
    pw_protobuf_free(&file->base);
}

/* ---- reflection and pwctl's run-time descriptors ---- */

/* What pwctl does: the file defining symbol, by reflection, into a dyn pool. */
static dyn_pool *pool_by_reflection(fx *f, const char *symbol)
{
    Grpc__Reflection__V1__ServerReflectionRequest req =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    req.file_containing_symbol = (char *)symbol;
    pw_stream *st;
    assert_int_equal(
        pw_client_call_start_blocking(
            &st, f->ch, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", NULL),
        PW_OK);
    pw_stream_send(st, &req.base);
    pw_stream_close_send(st);
    ProtobufCMessage *m = NULL;
    assert_int_equal(
        pw_stream_recv(st, &grpc__reflection__v1__server_reflection_response__descriptor, &m),
        PW_OK);
    assert_non_null(m);
    assert_int_equal(pw_stream_finish(st, NULL, NULL), PW_OK);
    pw_stream_free(st);
    Grpc__Reflection__V1__ServerReflectionResponse *resp = (void *)m;
    assert_int_equal(
        resp->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    dyn_pool *p = dyn_new();
    const Grpc__Reflection__V1__FileDescriptorResponse *files = resp->file_descriptor_response;
    for (size_t i = 0; i < files->n_file_descriptor_proto; i++) {
        assert_int_equal(dyn_add_file(p, files->file_descriptor_proto[i].data,
                                      files->file_descriptor_proto[i].len),
                         PW_OK);
    }
    pw_protobuf_free(m);
    char err[256] = "";
    assert_int_equal(dyn_build(p, err, sizeof(err)), PW_OK);
    return p;
}

static void test_codegen_keywords_reflection_and_dynamic_messages(void **state)
{
    fx *f = *state;
    dyn_pool *p = pool_by_reflection(f, "pwtest.v1.Reserved");
    const dyn_method *echo_m = dyn_find_method(p, "pwtest.v1.Reserved/Echo");
    assert_non_null(echo_m);
    const ProtobufCMessageDescriptor *d = echo_m->input;
    assert_string_equal(d->name, "pwtest.v1.Keywords");
    assert_non_null(protobuf_c_message_descriptor_get_field_by_name(d, "register"));
    assert_non_null(protobuf_c_message_descriptor_get_field_by_name(d, "_Bool"));
    assert_null(protobuf_c_message_descriptor_get_field_by_name(d, "register_"));

    /* pwctl call pwtest.v1.Reserved/Echo '{"register": "x", "default": "5"}' */
    ProtobufCMessage *req = decode(d, "{\"register\": \"x\", \"default\": \"5\"}");
    ProtobufCMessage *resp = NULL;
    char *msg = NULL;
    assert_int_equal(pw_client_unary_blocking(f->ch, "/pwtest.v1.Reserved/Echo", NULL, req,
                                              echo_m->output, &resp, &msg, NULL),
                     PW_OK);
    expect_json(resp, 0, "{\"default\":\"10\",\"register\":\"X\"}");

    /* The dynamic message's bytes are the generated type's. */
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t buf[64];
    assert_true(len <= sizeof(buf));
    protobuf_c_message_pack(req, buf);
    Keywords *k = pwtest__v1__keywords__unpack(pw_protobuf_allocator(), len, buf);
    assert_non_null(k);
    assert_string_equal(k->register_, "x");
    assert_int_equal(k->default_, 5);
    pw_protobuf_free(&k->base);
    pw_protobuf_free(req);
    pw_protobuf_free(resp);
    pw_free(msg);
    dyn_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codegen_keywords_every_member_over_the_wire),
        cmocka_unit_test(test_codegen_keywords_oneof_switch_over_the_wire),
        cmocka_unit_test(test_codegen_keywords_json_names),
        cmocka_unit_test(test_codegen_keywords_json_names_match_protoc),
        cmocka_unit_test(test_codegen_keywords_reflection_and_dynamic_messages),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
