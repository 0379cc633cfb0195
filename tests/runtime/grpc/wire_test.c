#include <string.h>
#include <paywire/alloc.h>
#include "grpc/wire.h"
#include "pw_test.h"

static void test_wire_percent_roundtrip(void **state)
{
    (void)state;
    const char *msg = "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and 100%";
    pw_buf b = {0};
    assert_int_equal(pw__percent_encode(&b, msg, strlen(msg)), PW_OK);
    assert_memory_equal(b.data, "%09%0Atest", 10);
    assert_null(memchr(b.data, '\n', b.len));
    char *back = pw__percent_decode((const char *)b.data, b.len);
    assert_string_equal(back, msg);
    pw_free(back);
    pw_buf_reset(&b);
}

static void test_wire_percent_decode_keeps_invalid_sequences(void **state)
{
    (void)state;
    char *s = pw__percent_decode("50%zz and %4", 12);
    assert_string_equal(s, "50%zz and %4");
    pw_free(s);
    s = pw__percent_decode("%41%", 4);
    assert_string_equal(s, "A%");
    pw_free(s);
}

static void test_wire_base64(void **state)
{
    (void)state;
    pw_buf b = {0};
    assert_int_equal(pw_base64_encode(&b, "\xab\xab\xab", 3, 0), PW_OK);
    assert_int_equal(pw_base64_encode(&b, "ab", 2, 0), PW_OK);
    assert_memory_equal(b.data, "q6urYWI", 7);
    uint8_t out[16];
    size_t n;
    assert_int_equal(pw_base64_decode("q6ur", 4, out, &n), PW_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xab\xab\xab", 3);
    assert_int_equal(pw_base64_decode("YWI=", 4, out, &n), PW_OK);
    assert_int_equal(n, 2);
    assert_int_equal(pw_base64_decode("YWI", 3, out, &n), PW_OK);
    assert_int_equal(n, 2);
    assert_int_equal(pw_base64_decode("Y", 1, out, &n), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_base64_decode("YW*=", 4, out, &n), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_base64_decode("YW=", 3, out, &n), PW_INVALID_ARGUMENT);
    assert_int_equal(n, 0); /* *out_len is 0 on failure */
    /* Padded, as proto3 JSON writes bytes; URL-safe input decodes too. */
    b.len = b.off = 0;
    assert_int_equal(pw_base64_encode(&b, "ab", 2, 1), PW_OK);
    assert_memory_equal(b.data, "YWI=", 4);
    assert_int_equal(pw_base64_decode("_-8", 3, out, &n), PW_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\xff\xef", 2);
    pw_buf_reset(&b);
}

static void test_wire_timeout_parse(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(pw__timeout_parse("100m", 4, &ms), 0);
    assert_int_equal(ms, 100);
    assert_int_equal(pw__timeout_parse("2S", 2, &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(pw__timeout_parse("1H", 2, &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(pw__timeout_parse("3M", 2, &ms), 0);
    assert_int_equal(ms, 180000);
    assert_int_equal(pw__timeout_parse("1500u", 5, &ms), 0);
    assert_int_equal(ms, 2);
    assert_int_equal(pw__timeout_parse("1n", 2, &ms), 0);
    assert_int_equal(ms, 1);
    assert_int_equal(pw__timeout_parse("99999999S", 9, &ms), 0);
    assert_int_equal(pw__timeout_parse("123456789S", 10, &ms), -1);
    assert_int_equal(pw__timeout_parse("S", 1, &ms), -1);
    assert_int_equal(pw__timeout_parse("10x", 3, &ms), -1);
    assert_int_equal(pw__timeout_parse("-1S", 3, &ms), -1);
    assert_int_equal(pw__timeout_parse("1 S", 3, &ms), -1);
}

static void test_wire_timeout_format(void **state)
{
    (void)state;
    char out[16];
    int64_t ms;
    pw__timeout_format(1500, out, sizeof(out));
    assert_string_equal(out, "1500m");
    pw__timeout_format(200000000, out, sizeof(out));
    assert_string_equal(out, "200000S");
    assert_int_equal(pw__timeout_parse(out, strlen(out), &ms), 0);
    assert_int_equal(ms, 200000000);
    pw__timeout_format(-5, out, sizeof(out));
    assert_string_equal(out, "0m");
}

static void test_wire_http_status_map(void **state)
{
    (void)state;
    assert_int_equal(pw__http_to_grpc_status(400), PW_INTERNAL);
    assert_int_equal(pw__http_to_grpc_status(401), PW_UNAUTHENTICATED);
    assert_int_equal(pw__http_to_grpc_status(403), PW_PERMISSION_DENIED);
    assert_int_equal(pw__http_to_grpc_status(404), PW_UNIMPLEMENTED);
    assert_int_equal(pw__http_to_grpc_status(503), PW_UNAVAILABLE);
    assert_int_equal(pw__http_to_grpc_status(500), PW_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_percent_roundtrip),
        cmocka_unit_test(test_wire_percent_decode_keeps_invalid_sequences),
        cmocka_unit_test(test_wire_base64),
        cmocka_unit_test(test_wire_timeout_parse),
        cmocka_unit_test(test_wire_timeout_format),
        cmocka_unit_test(test_wire_http_status_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
