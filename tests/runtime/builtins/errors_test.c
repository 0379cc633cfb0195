/* Rich errors: google.rpc.Status details written by a handler, read by a client. */
#include <stdlib.h>
#include <string.h>
#include <paywire/errors.h>
#include "pw_test.h"

static void reject(pw_call *call, void *ud)
{
    (void)ud;
    pw_error_details d = {0};
    pw_error_set_info(&d, "MERCHANT_SUSPENDED", "merchant.paywire");
    pw_error_add_violation(&d, "merchant.country", "must be an ISO 3166-1 alpha-2 code");
    pw_error_add_violation(&d, "merchant.currencies[1]", "unknown currency XYZ");
    d.retry_delay_ms = 1500;
    pw_error_set_resource(&d, "paywire.merchant.v1.Merchant", "mer_123", NULL, "suspended");
    pw_call_finish_details(call, PW_FAILED_PRECONDITION, &d, "merchant %s is suspended", "mer_123");
    pw_error_details_clear(&d);
}

static void test_errors_details_round_trip(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    pw_method m = {.path = "/test.Svc/Reject", .kind = PW_METHOD_UNARY, .handler = reject};
    pw_server *s;
    pw_channel *ch;
    pw_test_serve(&loop, NULL, &m, 1, NULL, &s, &ch, NULL);
    pw_test_call r = {0};
    assert_int_equal(pw_test_call_run(&loop, ch, "/test.Svc/Reject", NULL, "", 0, &r),
                     PW_FAILED_PRECONDITION);
    assert_string_equal(r.message, "merchant mer_123 is suspended");

    pw_error_details d = {0};
    assert_int_equal(pw_error_details_read(&r.trailing, &d), PW_OK);
    assert_int_equal(d.code, PW_FAILED_PRECONDITION);
    assert_string_equal(d.message, "merchant mer_123 is suspended");
    assert_string_equal(d.reason, "MERCHANT_SUSPENDED");
    assert_string_equal(d.domain, "merchant.paywire");
    assert_int_equal(d.violation_count, 2);
    assert_string_equal(d.violations[1].field, "merchant.currencies[1]");
    assert_string_equal(d.violations[0].description, "must be an ISO 3166-1 alpha-2 code");
    assert_int_equal(d.retry_delay_ms, 1500);
    assert_string_equal(d.resource_type, "paywire.merchant.v1.Merchant");
    assert_string_equal(d.resource_name, "mer_123");
    assert_string_equal(d.resource_description, "suspended");
    pw_error_details_clear(&d);

    /* No details: NOT_FOUND; garbage: INTERNAL. */
    pw_metadata none = {0};
    assert_int_equal(pw_error_details_read(&none, &d), PW_NOT_FOUND);
    pw_metadata_add(&none, "grpc-status-details-bin", "\xff\xff\xff", 3);
    assert_int_equal(pw_error_details_read(&none, &d), PW_INTERNAL);
    pw_metadata_clear(&none);
    pw_error_details_clear(&d);
    pw_test_call_reset(&r);
    pw_test_shutdown(&loop, s, ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_details_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
