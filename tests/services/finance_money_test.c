/*
 * services/finance/money.c: half-even rounding tables for fees and FX at the
 * ties, at one minor unit and near INT64_MAX (exact via 128 bits, or refused
 * when the result does not fit), and exact-sum allocation on random inputs
 * (PW_TEST_SEED, printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "pw_test.h"
#include "money.h"

typedef struct fee_case {
    int64_t amount;
    uint32_t bps;
    int64_t fixed, min, max;
    pw_status rv;
    int64_t fee;
} fee_case;

static void test_money_fee_table(void **state)
{
    (void)state;
    static const fee_case cases[] = {
        /* 50 × 1% = 0.5 → 0 (even), 150 → 1.5 → 2, 250 → 2.5 → 2, 251 → 2.51 → 3. */
        {50, 100, 0, 0, 0, PW_OK, 0},
        {150, 100, 0, 0, 0, PW_OK, 2},
        {250, 100, 0, 0, 0, PW_OK, 2},
        {251, 100, 0, 0, 0, PW_OK, 3},
        {350, 100, 0, 0, 0, PW_OK, 4},
        /* 2.9% + 30 of 1 000 = 29 + 30; of 1 minor unit: 0.029 → 0, + 30. */
        {1000, 290, 30, 0, 0, PW_OK, 59},
        {1, 290, 30, 0, 0, PW_OK, 30},
        {1, 5000, 0, 0, 0, PW_OK, 0}, /* 0.5 → 0 */
        {3, 5000, 0, 0, 0, PW_OK, 2}, /* 1.5 → 2 */
        /* min and max clamp. */
        {1000, 100, 0, 25, 0, PW_OK, 25},
        {1000000, 100, 0, 0, 500, PW_OK, 500},
        /* amount × bps overflows int64 but not 128 bits: exact. */
        {INT64_MAX, 10000, 0, 0, 0, PW_OK, INT64_MAX},
        {INT64_MAX, 5000, 0, 0, 0, PW_OK, INT64_MAX / 2 + 1}, /* 4.6e18 - 0.5 → even */
        {INT64_MAX, 10000, 1, 0, 0, PW_OUT_OF_RANGE, 0},
        {INT64_MAX, 20000, 0, 0, 0, PW_OUT_OF_RANGE, 0},
        {INT64_MAX, 20000, 0, 0, 100, PW_OK, 100},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const fee_case *c = &cases[i];
        int64_t fee = -1;
        pw_status rv = money_fee(c->amount, c->bps, c->fixed, c->min, c->max, &fee);
        if (rv != c->rv || (rv == PW_OK && fee != c->fee)) {
            fail_msg("case %zu: %lld × %u bps: got %s %lld, want %s %lld", i, (long long)c->amount,
                     c->bps, pw_status_str(rv), (long long)fee, pw_status_str(c->rv),
                     (long long)c->fee);
        }
    }
}

typedef struct fx_case {
    int64_t amount, mantissa;
    uint32_t scale, from_exp, to_exp;
    pw_status rv;
    int64_t out;
} fx_case;

static void test_money_convert_table(void **state)
{
    (void)state;
    static const fx_case cases[] = {
        /* 100.00 USD at 151.25 JPY/USD = 15 125 JPY. */
        {10000, 15125, 2, 2, 0, PW_OK, 15125},
        /* 0.01 USD at 151.50 → 1.515 JPY → 2; at 150.50 → 1.505 → 2; at 152.50 → 1.525 → 2. */
        {1, 15150, 2, 2, 0, PW_OK, 2},
        {1, 15050, 2, 2, 0, PW_OK, 2},
        {1, 15250, 2, 2, 0, PW_OK, 2},
        /* Ties exactly: 0.01 USD at 150 → 1.5 JPY → 2; at 250 → 2.5 → 2. */
        {1, 150, 0, 2, 0, PW_OK, 2},
        {1, 250, 0, 2, 0, PW_OK, 2},
        /* EUR (2) → BHD (3) at 0.4105: 10.00 EUR = 4.105 BHD = 4 105 fils. */
        {1000, 4105, 4, 2, 3, PW_OK, 4105},
        /* USDC (6) → EUR (2) at 0.9234: 1.000001 USDC = 0.923400923 → 0.92 EUR. */
        {1000001, 9234, 4, 6, 2, PW_OK, 92},
        /* 0.005 USDC at 1.0000 → 0.5 cent → 0 (half-even); 0.015 → 1.5 cents → 2; 0.025 → 2. */
        {5000, 10000, 4, 6, 2, PW_OK, 0},
        {15000, 10000, 4, 6, 2, PW_OK, 2},
        {25000, 10000, 4, 6, 2, PW_OK, 2},
        {25001, 10000, 4, 6, 2, PW_OK, 3},
        /* Near INT64_MAX: exact when it fits, refused when it does not. */
        {INT64_MAX, 1, 0, 2, 2, PW_OK, INT64_MAX},
        {INT64_MAX, 10000, 4, 2, 2, PW_OK, INT64_MAX},
        {INT64_MAX, 2, 0, 2, 2, PW_OUT_OF_RANGE, 0},
        {INT64_MAX / 10 + 1, 1, 0, 0, 1, PW_OUT_OF_RANGE, 0},
        {0, 1, 0, 2, 2, PW_INVALID_ARGUMENT, 0},
        {1, -1, 0, 2, 2, PW_INVALID_ARGUMENT, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const fx_case *c = &cases[i];
        int64_t out = -1;
        pw_status rv =
            money_convert(c->amount, c->mantissa, c->scale, c->from_exp, c->to_exp, &out);
        if (rv != c->rv || (rv == PW_OK && out != c->out)) {
            fail_msg("case %zu: got %s %lld, want %s %lld", i, pw_status_str(rv), (long long)out,
                     pw_status_str(c->rv), (long long)c->out);
        }
    }
}

static void test_money_half_even_negative(void **state)
{
    (void)state;
    assert_true(money_div_half_even(-5, 10) == 0);
    assert_true(money_div_half_even(-15, 10) == -2);
    assert_true(money_div_half_even(-25, 10) == -2);
    assert_true(money_div_half_even(-26, 10) == -3);
    assert_true(money_div_half_even(7, 7) == 1);
}

static uint64_t rng;

static uint64_t next(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 11;
}

/* Random totals and weights: the parts sum to the total, each within one unit of its exact share
 * (floor or floor + 1), and the extra units go to the largest remainders. */
static void test_money_allocate_random(void **state)
{
    (void)state;
    const char *env = getenv("PW_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    print_message("test_money_allocate_random: PW_TEST_SEED=%llu\n", (unsigned long long)seed);
    rng = seed;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + next() % 12;
        int64_t w[12], out[12];
        int64_t total = (int64_t)(round % 4 == 0 ? next() % 10 : next() % 1000000000000ull);
        int any = 0;
        for (size_t i = 0; i < n; i++) {
            w[i] = round % 3 == 0 ? (int64_t)(next() % 3) : (int64_t)(next() % 100000);
            any |= w[i] != 0;
        }
        if (!any) {
            w[0] = 1;
        }
        assert_int_equal(money_allocate(total, w, n, out), PW_OK);
        ledger_i128 sum = 0, wsum = 0;
        for (size_t i = 0; i < n; i++) {
            sum += out[i];
            wsum += w[i];
        }
        if (sum != total) {
            fail_msg("seed %llu round %d: parts sum to %lld, not %lld", (unsigned long long)seed,
                     round, (long long)sum, (long long)total);
        }
        for (size_t i = 0; i < n; i++) {
            ledger_i128 floor_share = (ledger_i128)total * w[i] / wsum;
            assert_true(out[i] == floor_share || out[i] == floor_share + 1);
            /* A part rounded up never has a smaller remainder than one rounded down. */
            for (size_t k = 0; k < n; k++) {
                ledger_i128 fk = (ledger_i128)total * w[k] / wsum;
                if (out[i] == floor_share + 1 && out[k] == fk) {
                    assert_true((ledger_i128)total * w[i] % wsum >=
                                (ledger_i128)total * w[k] % wsum);
                }
            }
        }
    }
    int64_t w0[2] = {0, 0}, o[2];
    assert_int_equal(money_allocate(10, w0, 2, o), PW_INVALID_ARGUMENT);
    int64_t wn[2] = {1, -1};
    assert_int_equal(money_allocate(10, wn, 2, o), PW_INVALID_ARGUMENT);
    assert_int_equal(money_allocate(-1, w0, 2, o), PW_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money_fee_table),
        cmocka_unit_test(test_money_convert_table),
        cmocka_unit_test(test_money_half_even_negative),
        cmocka_unit_test(test_money_allocate_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
