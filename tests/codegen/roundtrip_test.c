/*
 * Round trip through generated code: pwtest.v1.Kinds served with the typed
 * handler table and called through the typed async and blocking clients,
 * every RPC kind, over loopback on one loop.
 */
#include <stdlib.h>
#include <string.h>
#include "kinds_service.h"
#include "pw_test.h"

/* HTTPStatus is mounted with no handlers: GetURL answers UNIMPLEMENTED. */
static const pwtest_v1_http_status_handlers http_status = {0};

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
    assert_int_equal(pw_server_new(&f->server, &f->loop, NULL), PW_OK);
    assert_int_equal(pwtest_v1_kinds_register(f->server, &pw_test_kinds_handlers, NULL), PW_OK);
    assert_int_equal(pwtest_v1_http_status_register(f->server, &http_status, NULL), PW_OK);
    int port;
    assert_int_equal(pw_server_listen(f->server, "127.0.0.1:0", NULL, &port), PW_OK);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
    assert_int_equal(pw_channel_new(&f->ch, &f->loop, target, NULL), PW_OK);
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

static Pwtest__V1__Ledger__Entry entry(Pwtest__Common__V1__Money *m, int64_t units)
{
    pwtest__common__v1__money__init(m);
    m->currency = (char *)"EUR";
    m->minor_units = units;
    Pwtest__V1__Ledger__Entry e = PWTEST__V1__LEDGER__ENTRY__INIT;
    e.amount = m;
    return e;
}

/* ---- unary ---- */

typedef struct unary_out {
    int done;
    pw_status code;
    int64_t units;
} unary_out;

static void on_append(const Pwtest__V1__Ledger *resp, const pw_result *r, void *ud)
{
    unary_out *o = ud;
    o->done = 1;
    o->code = r->code;
    if (resp != NULL && resp->n_entries == 1 && resp->entries[0]->amount != NULL) {
        o->units = resp->entries[0]->amount->minor_units;
    }
}

static void test_codegen_unary_async_and_blocking(void **state)
{
    fx *f = *state;
    Pwtest__Common__V1__Money m;
    Pwtest__V1__Ledger__Entry e = entry(&m, 1234);
    unary_out o = {0};
    assert_int_equal(pwtest_v1_kinds_append(f->ch, &e, NULL, on_append, &o), PW_OK);
    pw_test_run_until(&f->loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);
    assert_int_equal(o.units, 1234);

    Pwtest__V1__Ledger *ledger = NULL;
    char *msg = NULL;
    assert_int_equal(pwtest_v1_kinds_append_blocking(f->ch, &e, NULL, &ledger, &msg), PW_OK);
    assert_int_equal(ledger->state, PWTEST__V1__LEDGER__STATE__STATE_OPEN);
    assert_string_equal(ledger->entries[0]->amount->currency, "EUR");
    pw_protobuf_free(&ledger->base);
    pw_free(msg);
}

/* ---- server streaming ---- */

typedef struct stream_out {
    int done;
    pw_status code;
    int messages;
    int64_t last_units;
} stream_out;

static void on_entry(pw_client_call *c, const Pwtest__V1__Ledger__Entry *e, void *ud)
{
    (void)c;
    stream_out *o = ud;
    o->messages++;
    o->last_units = e->amount ? e->amount->minor_units : -1;
}

static void on_stream_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    stream_out *o = ud;
    o->done = 1;
    o->code = r->code;
}

static const pwtest_v1_kinds_replay_client_ops replay_client = {
    .on_message = on_entry,
    .on_done = on_stream_done,
};

static void test_codegen_server_streaming(void **state)
{
    fx *f = *state;
    Pwtest__V1__Count n = PWTEST__V1__COUNT__INIT;
    n.n = 5;
    stream_out o = {0};
    assert_int_equal(pwtest_v1_kinds_replay_start(f->ch, &n, NULL, &replay_client, &o, NULL),
                     PW_OK);
    pw_test_run_until(&f->loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);
    assert_int_equal(o.messages, 5);
    assert_int_equal(o.last_units, 500);

    pw_stream *s;
    n.n = 3;
    assert_int_equal(pwtest_v1_kinds_replay_start_blocking(f->ch, &n, NULL, &s), PW_OK);
    Pwtest__V1__Ledger__Entry *got;
    int count = 0;
    while (pwtest_v1_kinds_replay_stream_recv(s, &got) == PW_OK && got != NULL) {
        count++;
        pw_protobuf_free(&got->base);
    }
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    assert_int_equal(count, 3);
    pw_stream_free(s);
}

/* ---- client streaming ---- */

typedef struct tally_out {
    int done;
    pw_status code;
    int64_t n;
} tally_out;

static void on_count(pw_client_call *c, const Pwtest__V1__Count *count, void *ud)
{
    (void)c;
    ((tally_out *)ud)->n = count->n;
}

static void on_tally_done(pw_client_call *c, const pw_result *r, void *ud)
{
    (void)c;
    tally_out *o = ud;
    o->done = 1;
    o->code = r->code;
}

static const pwtest_v1_kinds_tally_client_ops tally_client = {
    .on_message = on_count,
    .on_done = on_tally_done,
};

static void test_codegen_client_streaming(void **state)
{
    fx *f = *state;
    tally_out o = {0};
    pw_client_call *call;
    assert_int_equal(pwtest_v1_kinds_tally_start(f->ch, NULL, &tally_client, &o, &call), PW_OK);
    for (int i = 1; i <= 4; i++) {
        Pwtest__Common__V1__Money m;
        Pwtest__V1__Ledger__Entry e = entry(&m, i);
        assert_int_equal(pwtest_v1_kinds_tally_call_send(call, &e), PW_OK);
    }
    pw_client_call_close_send(call);
    pw_test_run_until(&f->loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);
    assert_int_equal(o.n, 4 * 1000000 + 10);

    pw_stream *s;
    assert_int_equal(pwtest_v1_kinds_tally_start_blocking(f->ch, NULL, &s), PW_OK);
    Pwtest__Common__V1__Money m;
    Pwtest__V1__Ledger__Entry e = entry(&m, 7);
    assert_int_equal(pwtest_v1_kinds_tally_stream_send(s, &e), PW_OK);
    pw_stream_close_send(s);
    Pwtest__V1__Count *count;
    assert_int_equal(pwtest_v1_kinds_tally_stream_recv(s, &count), PW_OK);
    assert_non_null(count);
    assert_int_equal(count->n, 1000000 + 7);
    pw_protobuf_free(&count->base);
    assert_int_equal(pwtest_v1_kinds_tally_stream_recv(s, &count), PW_OK);
    assert_null(count); /* the end of the stream */
    assert_int_equal(pw_stream_finish(s, NULL, NULL), PW_OK);
    pw_stream_free(s);
}

/* ---- bidirectional ---- */

static const pwtest_v1_kinds_mirror_client_ops mirror_client = {
    .on_message = on_entry,
    .on_done = on_stream_done,
};

static void test_codegen_bidi_streaming(void **state)
{
    fx *f = *state;
    stream_out o = {0};
    pw_client_call *call;
    assert_int_equal(pwtest_v1_kinds_mirror_start(f->ch, NULL, &mirror_client, &o, &call), PW_OK);
    for (int i = 1; i <= 3; i++) {
        Pwtest__Common__V1__Money m;
        Pwtest__V1__Ledger__Entry e = entry(&m, 10 * i);
        assert_int_equal(pwtest_v1_kinds_mirror_call_send(call, &e), PW_OK);
    }
    pw_client_call_close_send(call);
    pw_test_run_until(&f->loop, &o.done, 5000);
    assert_int_equal(o.code, PW_OK);
    assert_int_equal(o.messages, 3);
    assert_int_equal(o.last_units, 30);
}

static void test_codegen_streamed_garbage_is_internal(void **state)
{
    fx *f = *state;
    pw_test_call r = {0};
    int before = pw_test_kinds_mirror_cancels;
    const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(pw_test_call_run(&f->loop, f->ch, "/pwtest.v1.Kinds/Mirror", NULL, garbage,
                                      sizeof(garbage), &r),
                     PW_INTERNAL);
    assert_non_null(strstr(r.message, "cannot decode request as pwtest.v1.Ledger.Entry"));
    assert_int_equal(pw_test_kinds_mirror_cancels, before + 1);
    pw_test_call_reset(&r);
}

/* ---- keywords, unimplemented, descriptors ---- */

static void test_codegen_keyword_methods_and_unimplemented(void **state)
{
    fx *f = *state;
    Google__Protobuf__Empty e = GOOGLE__PROTOBUF__EMPTY__INIT;
    Google__Protobuf__Empty *out = NULL;
    assert_int_equal(pwtest_v1_kinds_new_blocking(f->ch, &e, NULL, &out, NULL), PW_OK);
    pw_protobuf_free(&out->base);
    assert_int_equal(pwtest_v1_kinds_delete_blocking(f->ch, &e, NULL, &out, NULL), PW_OK);
    pw_protobuf_free(&out->base);
    Pwtest__V1__Count *count = NULL;
    char *msg = NULL;
    assert_int_equal(pwtest_v1_http_status_get_url_blocking(f->ch, &e, NULL, &count, &msg),
                     PW_UNIMPLEMENTED);
    assert_string_equal(msg,
                        "method /pwtest.v1.HTTPStatus/GetURL is not implemented by this server");
    pw_free(msg);
}

static void test_codegen_method_descriptors(void **state)
{
    (void)state;
    assert_int_equal(PWTEST_V1_KINDS_METHOD_COUNT, 6);
    const pw_method *m = pwtest_v1_kinds_methods;
    assert_string_equal(m[0].path, "/pwtest.v1.Kinds/Append");
    assert_int_equal(m[0].kind, PW_METHOD_UNARY);
    assert_int_equal(m[0].idempotency_level, PW_IDEMPOTENCY_IDEMPOTENT);
    assert_ptr_equal(m[0].request_type, &pwtest__v1__ledger__entry__descriptor);
    assert_ptr_equal(m[0].response_type, &pwtest__v1__ledger__descriptor);
    assert_int_equal(m[1].kind, PW_METHOD_SERVER_STREAMING);
    assert_int_equal(m[1].idempotency_level, PW_IDEMPOTENCY_NO_SIDE_EFFECTS);
    assert_int_equal(m[2].kind, PW_METHOD_CLIENT_STREAMING);
    assert_int_equal(m[2].idempotency_level, PW_IDEMPOTENCY_UNKNOWN);
    assert_int_equal(m[3].kind, PW_METHOD_BIDI_STREAMING);
    assert_string_equal(m[4].path, "/pwtest.v1.Kinds/New");
}

static void test_codegen_file_descriptors_registered(void **state)
{
    fx *f = *state;
    size_t n;
    const pw_file_descriptor *const *files = pw_server_files(f->server, &n);
    const char *want[] = {"pwtest/v1/kinds.proto", "pwtest/common/v1/types.proto",
                          "google/protobuf/empty.proto", "google/protobuf/timestamp.proto"};
    for (size_t w = 0; w < 4; w++) {
        int found = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(files[i]->name, want[w]) == 0) {
                found = files[i]->len > 0;
            }
        }
        if (!found) {
            fail_msg("%s not registered", want[w]);
        }
    }
    /* The embedded bytes are a real FileDescriptorProto naming the file. */
    const pw_file_descriptor *k = &pwtest_v1_kinds__pw_file;
    assert_non_null(memmem(k->data, k->len, "pwtest/v1/kinds.proto", 21));
    assert_int_equal(k->dep_count, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codegen_unary_async_and_blocking),
        cmocka_unit_test(test_codegen_server_streaming),
        cmocka_unit_test(test_codegen_client_streaming),
        cmocka_unit_test(test_codegen_bidi_streaming),
        cmocka_unit_test(test_codegen_streamed_garbage_is_internal),
        cmocka_unit_test(test_codegen_keyword_methods_and_unimplemented),
        cmocka_unit_test(test_codegen_method_descriptors),
        cmocka_unit_test(test_codegen_file_descriptors_registered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
