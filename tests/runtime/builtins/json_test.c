/* The proto3 JSON mapping: every field shape, the well-known types, and precise errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/json.h>
#include <protobuf-c/protobuf-c.h>
#include "pw_test.h"
#include "pwtest/json/v1/all.pb-c.h"
#include "google/rpc/error_details.pb-c.h"

typedef Pwtest__Json__V1__All All;

/* Decodes text as All; fails the test unless it decodes. */
static All *decode_ok(const char *text, const pw_json_options *o)
{
    ProtobufCMessage *m = NULL;
    char err[256] = "";
    pw_status rv = pw_json_decode(&pwtest__json__v1__all__descriptor, text, strlen(text), o, &m,
                                  err, sizeof(err));
    if (rv != PW_OK) {
        fail_msg("decode of %s failed: %s", text, err);
    }
    return (All *)m;
}

/* Decodes text as All; expects PW_INVALID_ARGUMENT with err containing want. */
static void decode_fails(const char *text, const char *want)
{
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    char err[256] = "";
    pw_status rv = pw_json_decode(&pwtest__json__v1__all__descriptor, text, strlen(text), NULL, &m,
                                  err, sizeof(err));
    if (rv != PW_INVALID_ARGUMENT || m != NULL || strstr(err, want) == NULL) {
        fail_msg("decode of %s: rv %d, error \"%s\" (wanted \"%s\")", text, rv, err, want);
    }
}

/* Encodes m and compares with want. */
static void encode_is(const ProtobufCMessage *m, const pw_json_options *o, const char *want)
{
    pw_buf out = {0};
    char err[256] = "";
    assert_int_equal(pw_json_encode(m, o, &out, err, sizeof(err)), PW_OK);
    pw_buf_append(&out, "", 1);
    assert_string_equal((const char *)out.data, want);
    pw_buf_reset(&out);
}

/* JSON → message → JSON must give back canonical text unchanged. */
static void round_trip(const char *canonical)
{
    All *m = decode_ok(canonical, NULL);
    encode_is(&m->base, NULL, canonical);
    pw_protobuf_free(&m->base);
}

static void test_json_scalars(void **state)
{
    (void)state;
    round_trip("{\"i32\":-5,\"i64\":\"-9223372036854775808\",\"u32\":4294967295,"
               "\"u64\":\"18446744073709551615\",\"s32\":-2147483648,\"s64\":\"42\","
               "\"f32\":7,\"f64\":\"8\",\"sf32\":-9,\"sf64\":\"-10\",\"flt\":1.5,"
               "\"dbl\":0.1,\"flag\":true,\"text\":\"h\xc3\xa9llo \\\"q\\\"\\n\","
               "\"blob\":\"AAEC/w==\",\"color\":\"COLOR_GREEN\"}");
    /* Defaults are left out; an empty message is {}. Negative zero is not a default. */
    round_trip("{}");
    round_trip("{\"flt\":-0.0,\"dbl\":-0.0}");
    /* Inputs in their other accepted forms. */
    All *m = decode_ok(
        "{\"i64\":123,\"u64\":1e3,\"i32\":\"-7\",\"dbl\":\"NaN\",\"flt\":\"-Infinity\","
        "\"color\":2,\"text\":\"\\u00e9\",\"blob\":\"AAEC_w\",\"amount\":null,\"maybeText\":null}",
        &(pw_json_options){.ignore_unknown = 1});
    assert_int_equal(m->i64, 123);
    assert_int_equal(m->u64, 1000);
    assert_int_equal(m->i32, -7);
    assert_true(isnan(m->dbl));
    assert_true(isinf(m->flt) && m->flt < 0);
    assert_int_equal(m->color, PWTEST__JSON__V1__COLOR__COLOR_GREEN);
    assert_int_equal(m->blob.len, 4);
    assert_int_equal(m->blob.data[3], 0xff);
    assert_string_equal(m->text, "\xc3\xa9");
    encode_is(&m->base, NULL,
              "{\"i32\":-7,\"i64\":\"123\",\"u64\":\"1000\",\"flt\":\"-Infinity\",\"dbl\":\"NaN\","
              "\"text\":\"\xc3\xa9\",\"blob\":\"AAEC/w==\",\"color\":\"COLOR_GREEN\"}");
    /* Proto names are accepted too, and emitted when asked. */
    pw_protobuf_free(&m->base);
    m = decode_ok("{\"many_i64\":[\"1\",2]}", NULL);
    encode_is(&m->base, &(pw_json_options){.proto_names = 1}, "{\"many_i64\":[\"1\",\"2\"]}");
    pw_protobuf_free(&m->base);
}

static void test_json_nested_repeated_maps_oneof(void **state)
{
    (void)state;
    round_trip("{\"inner\":{\"name\":\"a\",\"amountMinor\":\"1999\"},\"manyI64\":[\"1\",\"-2\"],"
               "\"manyText\":[\"x\",\"\"],\"manyInner\":[{\"name\":\"b\"},{}],"
               "\"manyColor\":[\"COLOR_RED\",\"COLOR_GREEN\"],"
               "\"byName\":{\"usd\":\"100\",\"jpy\":\"0\"},"
               "\"byNumber\":{\"7\":{\"name\":\"seven\"}},\"byFlag\":{\"true\":\"yes\"},"
               "\"choiceInner\":{\"amountMinor\":\"5\"},\"child\":{\"child\":{\"i32\":1}}}");
    /* A oneof member is emitted even at its default value. */
    round_trip("{\"choiceNumber\":0}");
}

static void test_json_well_known_types(void **state)
{
    (void)state;
    round_trip("{\"createdAt\":\"2026-11-24T18:30:00Z\",\"ttl\":\"1.500s\","
               "\"maybeI64\":\"0\",\"maybeText\":\"\",\"maybeFlag\":false,"
               "\"mask\":\"displayName,address.postalCode\","
               "\"attrs\":{\"a\":1,\"b\":[true,null,\"s\"],\"c\":{\"d\":-2.5}},"
               "\"anything\":\"text\",\"list\":[1,{}],"
               "\"times\":[\"0001-01-01T00:00:00Z\",\"9999-12-31T23:59:59.999999999Z\","
               "\"1969-12-31T23:59:59.000001Z\"]}");
    round_trip("{\"ttl\":\"-0.000000001s\"}");
    round_trip("{\"anything\":null}");
    /* An empty field mask is present and empty: "" both ways (found by fuzz_json). */
    round_trip("{\"mask\":\"\"}");
    /* Offsets are accepted and normalised to UTC; field masks come back snake_case. */
    All *m = decode_ok("{\"createdAt\":\"2026-11-24T19:30:00.5+01:00\",\"mask\":\"a.bC,d\"}", NULL);
    assert_int_equal(m->created_at->seconds, 1795545000);
    assert_int_equal(m->created_at->nanos, 500000000);
    assert_int_equal(m->mask->n_paths, 2);
    assert_string_equal(m->mask->paths[0], "a.b_c");
    encode_is(&m->base, NULL, "{\"createdAt\":\"2026-11-24T18:30:00.500Z\",\"mask\":\"a.bC,d\"}");
    pw_protobuf_free(&m->base);
    /* Empty paths are skipped; a path with no JSON form is refused, not mangled. */
    m = decode_ok("{\"mask\":\",a,,bC,\"}", NULL);
    assert_int_equal(m->mask->n_paths, 2);
    encode_is(&m->base, NULL, "{\"mask\":\"a,bC\"}");
    pw_protobuf_free(&m->base);
    char *paths[] = {"a_1"};
    Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    mask.n_paths = 1;
    mask.paths = paths;
    All bad = PWTEST__JSON__V1__ALL__INIT;
    bad.mask = &mask;
    pw_buf out = {0};
    char err[256] = "";
    assert_int_equal(pw_json_encode(&bad.base, NULL, &out, err, sizeof(err)), PW_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "\"a_1\" has no JSON form"));
    assert_int_equal(out.len, 0);
    pw_buf_reset(&out);
}

static void test_json_any(void **state)
{
    (void)state;
    round_trip("{\"detail\":{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
               "\"reason\":\"MERCHANT_SUSPENDED\",\"domain\":\"merchant.paywire\","
               "\"metadata\":{\"merchant\":\"mer_1\"}}}");
    round_trip("{\"detail\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\","
               "\"value\":\"3s\"}}");
    /* The bytes inside are the packed message. */
    All *m = decode_ok("{\"detail\":{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
                       "\"reason\":\"R\"}}",
                       NULL);
    Google__Rpc__ErrorInfo *info = google__rpc__error_info__unpack(
        pw_protobuf_allocator(), m->detail->value.len, m->detail->value.data);
    assert_non_null(info);
    assert_string_equal(info->reason, "R");
    google__rpc__error_info__free_unpacked(info, pw_protobuf_allocator());
    pw_protobuf_free(&m->base);
    decode_fails("{\"detail\":{\"@type\":\"type.googleapis.com/x.Unknown\"}}",
                 "detail: unknown type \"type.googleapis.com/x.Unknown\" in Any");
}

static void test_json_errors_name_the_path(void **state)
{
    (void)state;
    decode_fails("{\"i32\":", "invalid JSON at line 1");
    decode_fails("[1]", "expected an object (pwtest.json.v1.All), got an array");
    decode_fails("{\"nope\":1}", "unknown field \"nope\" in pwtest.json.v1.All");
    decode_fails("{\"i32\":2147483648}", "i32: 2147483648 does not fit in int32");
    decode_fails("{\"u32\":-1}", "u32: expected an unsigned integer, got -1");
    decode_fails("{\"i64\":\"12x\"}", "i64: expected an integer, got \"12x\"");
    decode_fails("{\"i64\":1.5}", "i64: expected an integer, got 1.5");
    decode_fails("{\"u64\":\"99999999999999999999\"}", "out of range");
    decode_fails("{\"flag\":\"true\"}", "flag: expected true or false, got a string");
    decode_fails("{\"text\":5}", "text: expected a string, got a number");
    decode_fails("{\"blob\":\"!!\"}", "blob: invalid base64");
    decode_fails("{\"color\":\"PURPLE\"}",
                 "color: \"PURPLE\" is not a value of enum pwtest.json.v1.Color");
    decode_fails("{\"inner\":{\"amountMinor\":true}}", "inner.amountMinor: expected an integer");
    decode_fails("{\"manyInner\":[{},{\"x\":1}]}", "manyInner[1]: unknown field \"x\"");
    decode_fails("{\"byNumber\":{\"seven\":{}}}", "byNumber[\"seven\"]: expected an integer");
    decode_fails("{\"choiceText\":\"a\",\"choiceNumber\":1}", "are in one oneof; set only one");
    /* A oneof message member that fails half-way is freed, not leaked (found by fuzz_json). */
    decode_fails("{\"choiceInner\":1}", "choiceInner: expected an object");
    decode_fails("{\"choiceInner\":{\"name\":3}}", "choiceInner.name: expected a string");
    decode_fails("{\"createdAt\":\"2026-02-30T00:00:00Z\"}", "createdAt: expected an RFC 3339");
    decode_fails("{\"ttl\":\"5\"}", "ttl: expected a duration");
    decode_fails("{\"i32\":1,\"i32\":2}", "duplicate object key");
    decode_fails("{\"manyI64\":[null]}", "manyI64[0]: null is not allowed");
    /* Deep nesting is refused, not a stack overflow. */
    char deep[4096] = "";
    for (int i = 0; i < 150; i++) {
        strcat(deep, "{\"child\":");
    }
    strcat(deep, "{}");
    for (int i = 0; i < 150; i++) {
        strcat(deep, "}");
    }
    decode_fails(deep, "nested deeper than 100 levels");
}

static void test_json_output_escaping_and_defaults(void **state)
{
    (void)state;
    All m = PWTEST__JSON__V1__ALL__INIT;
    char text[] = {'a', 0x01, '"', '\\', (char)0xff, 'z', 0};
    m.text = text;
    encode_is(&m.base, NULL, "{\"text\":\"a\\u0001\\\"\\\\\\ufffdz\"}");
    m.text = (char *)protobuf_c_empty_string;
    m.dbl = 1e300;
    m.flt = 0.1f;
    encode_is(&m.base, NULL, "{\"flt\":0.1,\"dbl\":1e+300}");
    m.dbl = 0;
    m.flt = 0;
    encode_is(&m.base, &(pw_json_options){.emit_defaults = 1, .enums_as_ints = 1},
              "{\"i32\":0,\"i64\":\"0\",\"u32\":0,\"u64\":\"0\",\"s32\":0,\"s64\":\"0\",\"f32\":0,"
              "\"f64\":\"0\",\"sf32\":0,\"sf64\":\"0\",\"flt\":0,\"dbl\":0,\"flag\":false,"
              "\"text\":\"\",\"blob\":\"\",\"color\":0,\"manyI64\":[],\"manyText\":[],"
              "\"manyInner\":[],\"manyColor\":[],\"byName\":{},\"byNumber\":{},\"byFlag\":{},"
              "\"times\":[]}");
    /* An out-of-range Timestamp cannot be written. */
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 253402300800LL; /* 10000-01-01 */
    m.created_at = &ts;
    pw_buf out = {0};
    char err[128];
    assert_int_equal(pw_json_encode(&m.base, NULL, &out, err, sizeof(err)), PW_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "Timestamp out of range"));
    assert_int_equal(out.len, 0);
    pw_buf_reset(&out);
}

static void test_json_name(void **state)
{
    (void)state;
    char out[32];
    pw_json_name("response_size", out, sizeof(out));
    assert_string_equal(out, "responseSize");
    pw_json_name("a_b_c_1", out, sizeof(out));
    assert_string_equal(out, "aBC1");
    pw_json_name("long_name_here", out, 5);
    assert_string_equal(out, "long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_scalars),
        cmocka_unit_test(test_json_nested_repeated_maps_oneof),
        cmocka_unit_test(test_json_well_known_types),
        cmocka_unit_test(test_json_any),
        cmocka_unit_test(test_json_errors_name_the_path),
        cmocka_unit_test(test_json_output_escaping_and_defaults),
        cmocka_unit_test(test_json_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
