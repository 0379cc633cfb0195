#include <string.h>
#include <paywire/status.h>
#include "pw_test.h"

static void test_status_names_match_wire_codes(void **state)
{
    (void)state;
    assert_string_equal(pw_status_str(PW_OK), "OK");
    assert_string_equal(pw_status_str(3), "INVALID_ARGUMENT");
    assert_string_equal(pw_status_str(16), "UNAUTHENTICATED");
    assert_int_equal(PW_UNAVAILABLE, 14);
    assert_int_equal(PW_DATA_LOSS, 15);
    assert_non_null(pw_status_str(PW_ERRNO(ENOMEM)));
    assert_string_equal(pw_status_str(999), "UNKNOWN");
}

static void test_status_to_wire_maps_system_errors(void **state)
{
    (void)state;
    assert_int_equal(pw_status_to_wire(PW_NOT_FOUND), PW_NOT_FOUND);
    assert_int_equal(pw_status_to_wire(PW_ERRNO(ECONNREFUSED)), PW_UNAVAILABLE);
    assert_int_equal(pw_status_to_wire(PW_ERRNO(ETIMEDOUT)), PW_DEADLINE_EXCEEDED);
    assert_int_equal(pw_status_to_wire(PW_ERRNO(ENOMEM)), PW_RESOURCE_EXHAUSTED);
    assert_int_equal(pw_status_to_wire(PW_ERRNO(EINVAL)), PW_INTERNAL);
    assert_int_equal(pw_status_to_wire(UV_EOF), PW_UNAVAILABLE);
    assert_int_equal(pw_status_to_wire(17), PW_UNKNOWN);
}

static void test_status_parse(void **state)
{
    (void)state;
    pw_status st = -1;
    assert_int_equal(pw_status_parse("0", 1, &st), PW_OK);
    assert_int_equal(st, 0);
    assert_int_equal(pw_status_parse("14", 2, &st), PW_OK);
    assert_int_equal(st, 14);
    assert_int_equal(pw_status_parse("", 0, &st), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_status_parse("1a", 2, &st), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_status_parse("-1", 2, &st), PW_INVALID_ARGUMENT);
    assert_int_equal(pw_status_parse("99999999999", 11, &st), PW_INVALID_ARGUMENT);
    assert_int_equal(st, 14); /* left as it was on failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names_match_wire_codes),
        cmocka_unit_test(test_status_to_wire_maps_system_errors),
        cmocka_unit_test(test_status_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
