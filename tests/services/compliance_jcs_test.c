/*
 * The audit log's canonical bytes (services/compliance/jcs.c): the test
 * vector of docs/design/compliance.md, RFC 8785 member order and escapes, and
 * the refusals (non-integers, duplicates, invalid UTF-8) that keep a float or
 * an ambiguous object from ever being hashed.
 */
#include <string.h>
#include "pw_test.h"
#include "jcs.h"

static const char vector_bytes[] =
    "{\"action\":\"merchant.activated\",\"actor\":\"spiffe://paywire/"
    "merchant\",\"detail\":{\"from\":"
    "\"PENDING_REVIEW\",\"to\":\"ACTIVE\"},\"sequence\":\"1\",\"source\":\"merchant\","
    "\"subjectId\":"
    "\"mer_01HZX5B0AVQ6Z3F3T0M5N7V8QK\",\"time\":\"2025-01-02T03:04:05.000006Z\"}";

/* The vector's event with detail written as json; its canonical bytes and hash. */
static void vector_event(const char *json, pw_buf *out, char hex[65])
{
    pw_buf d = {0};
    assert_int_equal(jcs_canonicalize(json, strlen(json), 1, &d, NULL, 0), PW_OK);
    jcs_event e = {1,
                   "spiffe://paywire/merchant",
                   "merchant.activated",
                   "mer_01HZX5B0AVQ6Z3F3T0M5N7V8QK",
                   "merchant",
                   1735787045000006LL, /* 2025-01-02T03:04:05.000006Z */
                   (const char *)d.data,
                   d.len};
    assert_int_equal(jcs_event_bytes(&e, out), PW_OK);
    uint8_t zero[32] = {0}, h[32];
    jcs_chain_hash(zero, out->data, out->len, h);
    jcs_hex(h, hex);
    pw_buf_reset(&d);
}

static void test_audit_canonical_vector(void **state)
{
    (void)state;
    const char *forms[] = {
        "{\"to\":\"ACTIVE\",\"from\":\"PENDING_REVIEW\"}",
        "{\"from\":\"PENDING_REVIEW\",\"to\":\"ACTIVE\"}",
        " {\n\t\"to\" : \"ACTIVE\" ,\r\n \"from\":\"PENDING\\u005fREVIEW\" } ",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        pw_buf b = {0};
        char hex[65];
        vector_event(forms[i], &b, hex);
        assert_int_equal(b.len, strlen(vector_bytes));
        assert_memory_equal(b.data, vector_bytes, b.len);
        assert_string_equal(hex,
                            "061ba453a85cf87e76c89dc67ac40bd1c6252a9656c495514035533685b5099b");
        pw_buf_reset(&b);
    }
}

static void expect_canonical(const char *json, const char *want)
{
    pw_buf b = {0};
    char err[160] = "";
    pw_status rv = jcs_canonicalize(json, strlen(json), 0, &b, err, sizeof(err));
    if (rv != PW_OK) {
        fail_msg("%s: %s", json, err);
    }
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0) {
        fail_msg("%s: got %.*s, wanted %s", json, (int)b.len, (const char *)b.data, want);
    }
    pw_buf_reset(&b);
}

static void expect_refused(const char *json, const char *why)
{
    pw_buf b = {0};
    char err[160] = "";
    assert_int_equal(jcs_canonicalize(json, strlen(json), 1, &b, err, sizeof(err)),
                     PW_INVALID_ARGUMENT);
    if (strstr(err, why) == NULL) {
        fail_msg("%s: \"%s\" does not say \"%s\"", json, err, why);
    }
    pw_buf_reset(&b);
}

static void test_audit_canonical_rfc8785(void **state)
{
    (void)state;
    /* Members sorted by UTF-16 code units: U+1F600 (D83D DE00) before U+FB01, although its
     * code point is larger; U+20AC after ASCII. */
    expect_canonical(
        "{\"\\ufb01\":1,\"\\ud83d\\ude00\":2,\"\\u20ac\":3,\"b\":4,\"a\":5}",
        "{\"a\":5,\"b\":4,\"\xe2\x82\xac\":3,\"\xf0\x9f\x98\x80\":2,\"\xef\xac\x81\":1}");
    /* Minimal escapes: \" \\ \b \f \n \r \t, other controls as \u00xx, "/" and non-ASCII as is. */
    expect_canonical("[\"\\/\\u00e9\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\"]",
                     "[\"/\xc3\xa9\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\\"]");
    expect_canonical("{\"n\":[-0,0,-9007199254740991,9007199254740991,true,false,null,{}]}",
                     "{\"n\":[0,0,-9007199254740991,9007199254740991,true,false,null,{}]}");
    expect_canonical("{\"z\":{\"b\":[],\"a\":{\"d\":1,\"c\":2}}}",
                     "{\"z\":{\"a\":{\"c\":2,\"d\":1},\"b\":[]}}");
}

static void test_audit_canonical_refusals(void **state)
{
    (void)state;
    expect_refused("{\"amount\":1.5}", "integers");
    expect_refused("{\"amount\":1e3}", "integers");
    expect_refused("{\"amount\":1E3}", "integers");
    expect_refused("{\"n\":9007199254740992}", "2^53");
    expect_refused("{\"n\":-12345678901234567890}", "2^53");
    expect_refused("{\"n\":01}", "leading zero");
    expect_refused("{\"a\":1,\"a\":2}", "duplicate");
    expect_refused("{\"\\u0061\":1,\"a\":2}", "duplicate");
    expect_refused("[1]", "object");
    expect_refused("\"text\"", "object");
    expect_refused("{\"a\":\"\\ud800\"}", "surrogate");
    expect_refused("{\"a\":\"\\u0000\"}", "u0000");
    expect_refused("{\"a\":\"\xc3\x28\"}", "UTF-8");
    expect_refused("{\"a\":\"\xc0\xaf\"}", "UTF-8");
    expect_refused("{\"a\":1,}", "member name");
    expect_refused("{\"a\":1} x", "trailing");
    expect_refused("{\"a\":tru}", "unexpected");
    expect_refused("{\"a\":\"x", "unterminated");
    char deep[200] = "{\"a\":";
    for (int i = 0; i < 70; i++) {
        strcat(deep, "[");
    }
    expect_refused(deep, "deeper");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audit_canonical_vector),
        cmocka_unit_test(test_audit_canonical_rfc8785),
        cmocka_unit_test(test_audit_canonical_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
