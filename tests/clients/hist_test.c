#include <string.h>
#include "hist.h"
#include "pw_test.h"

static pwb_hist h;

static void test_hist_quantiles_within_bucket_error(void **state)
{
    (void)state;
    memset(&h, 0, sizeof(h));
    for (uint64_t v = 1; v <= 100000; v++) {
        pwb_hist_record(&h, v);
    }
    assert_int_equal(h.total, 100000);
    assert_int_equal(h.max, 100000);
    uint64_t p50 = pwb_hist_quantile(&h, 0.50);
    uint64_t p99 = pwb_hist_quantile(&h, 0.99);
    /* Within the 1/64 relative error of a bucket. */
    assert_true(p50 >= 50000 && p50 <= 50000 + 50000 / 64 + 1);
    assert_true(p99 >= 99000 && p99 <= 99000 + 99000 / 64 + 1);
    assert_int_equal(pwb_hist_quantile(&h, 1.0), 100000);
}

static void test_hist_small_values_are_exact(void **state)
{
    (void)state;
    memset(&h, 0, sizeof(h));
    pwb_hist_record(&h, 3);
    pwb_hist_record(&h, 3);
    pwb_hist_record(&h, 40);
    assert_int_equal(pwb_hist_quantile(&h, 0.5), 3);
    assert_int_equal(pwb_hist_quantile(&h, 0.99), 40);
    memset(&h, 0, sizeof(h));
    assert_int_equal(pwb_hist_quantile(&h, 0.5), 0);
}

static void test_hist_huge_values_saturate(void **state)
{
    (void)state;
    memset(&h, 0, sizeof(h));
    pwb_hist_record(&h, UINT64_MAX / 2);
    assert_int_equal(h.total, 1);
    assert_true(pwb_hist_quantile(&h, 0.5) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_quantiles_within_bucket_error),
        cmocka_unit_test(test_hist_small_values_are_exact),
        cmocka_unit_test(test_hist_huge_values_saturate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
