#include <string.h>
#include <paywire/metadata.h>
#include "pw_test.h"

static void test_metadata_add_get(void **state)
{
    (void)state;
    pw_metadata md = {0};
    assert_int_equal(pw_metadata_add_str(&md, "x-request-id", "abc"), PW_OK);
    const uint8_t bin[] = {0, 1, 0xff};
    assert_int_equal(pw_metadata_add(&md, "trace-bin", bin, sizeof(bin)), PW_OK);
    assert_int_equal(md.count, 2);
    const pw_metadata_entry *e = pw_metadata_get(&md, "trace-bin");
    assert_non_null(e);
    assert_int_equal(e->value_len, 3);
    assert_memory_equal(e->value, bin, 3);
    assert_string_equal((const char *)pw_metadata_get(&md, "x-request-id")->value, "abc");
    assert_null(pw_metadata_get(&md, "missing"));
    pw_metadata_clear(&md);
    assert_int_equal(md.count, 0);
}

static void test_metadata_rejects_bad_keys_and_values(void **state)
{
    (void)state;
    pw_metadata md = {0};
    assert_int_equal(pw_metadata_add_str(&md, "Upper", "v"), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_metadata_add_str(&md, ":path", "v"), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_metadata_add_str(&md, "", "v"), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_metadata_add_str(&md, "ok", "line\nbreak"), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_metadata_add(&md, "ok-bin", "\n\0", 2), PW_OK);
    assert_int_equal(md.count, 1);
    pw_metadata_clear(&md);
}

static void test_metadata_copy(void **state)
{
    (void)state;
    pw_metadata a = {0}, b = {0};
    for (int i = 0; i < 20; i++) {
        assert_int_equal(pw_metadata_add_str(&a, "k", "v"), PW_OK);
    }
    assert_int_equal(pw_metadata_copy(&b, &a), PW_OK);
    assert_int_equal(b.count, 20);
    pw_metadata_clear(&a);
    pw_metadata_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_add_get),
        cmocka_unit_test(test_metadata_rejects_bad_keys_and_values),
        cmocka_unit_test(test_metadata_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
