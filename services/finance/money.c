/*
 * money.c: integer money arithmetic (see money.h). Every product is taken in
 * 128 bits and checked before it is narrowed; rounding is half to even, the
 * rule of the API contract (finance.md).
 */
#include <stdlib.h>
#include <paywire/log.h>
#include "money.h"

ledger_i128 money_div_half_even(ledger_i128 num, ledger_i128 den)
{
    PW_ASSERT(den > 0);
    ledger_i128 q = num / den, r = num % den;
    /* C truncates toward zero: bring the remainder to [0, den) first. */
    if (r < 0) {
        q -= 1;
        r += den;
    }
    ledger_i128 twice = 2 * r;
    if (twice > den || (twice == den && (q % 2) != 0)) {
        q += 1;
    }
    return q;
}

static int fits(ledger_i128 v)
{
    return v >= INT64_MIN && v <= INT64_MAX;
}

pw_status money_fee(int64_t amount, uint32_t bps, int64_t fixed, int64_t min, int64_t max,
                    int64_t *out)
{
    ledger_i128 fee = (ledger_i128)fixed + money_div_half_even((ledger_i128)amount * bps, 10000);
    if (min > 0 && fee < min) {
        fee = min;
    }
    if (max > 0 && fee > max) {
        fee = max;
    }
    if (!fits(fee)) {
        return PW_OUT_OF_RANGE;
    }
    *out = (int64_t)fee;
    return PW_OK;
}

pw_status money_convert(int64_t amount, int64_t mantissa, uint32_t scale, uint32_t from_exp,
                        uint32_t to_exp, int64_t *out)
{
    if (amount <= 0 || mantissa <= 0 || scale > 18 || from_exp > 18 || to_exp > 18) {
        return PW_INVALID_ARGUMENT;
    }
    /* amount × mantissa < 2^126; the power of ten is at most 10^18 up or 10^36 down. */
    ledger_i128 v = (ledger_i128)amount * mantissa;
    int k = (int)to_exp - (int)from_exp - (int)scale;
    ledger_i128 p = 1;
    for (int i = 0; i < abs(k); i++) {
        p *= 10;
    }
    if (k >= 0) {
        if (v > ((ledger_i128)INT64_MAX) / p) {
            return PW_OUT_OF_RANGE;
        }
        v *= p;
    } else {
        v = money_div_half_even(v, p);
    }
    if (!fits(v)) {
        return PW_OUT_OF_RANGE;
    }
    *out = (int64_t)v;
    return PW_OK;
}

pw_status money_allocate(int64_t total, const int64_t *weights, size_t n, int64_t *out)
{
    ledger_i128 sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (weights[i] < 0) {
            return PW_INVALID_ARGUMENT;
        }
        sum += weights[i];
    }
    if (n == 0 || total < 0 || sum == 0 || sum > INT64_MAX) {
        return PW_INVALID_ARGUMENT;
    }
    /* Floors first; then the units left, one each, to the largest remainders (n passes at
     * most: fewer than n units are left). */
    ledger_i128 given = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (int64_t)((ledger_i128)total * weights[i] / sum);
        given += out[i];
    }
    for (int64_t left = (int64_t)(total - given); left > 0; left--) {
        size_t best = n;
        ledger_i128 best_rem = -1;
        for (size_t i = 0; i < n; i++) {
            ledger_i128 rem = (ledger_i128)total * weights[i] % sum;
            /* A part that already got its unit is out of the running: compare its remainder
             * as if spent (its floor moved). */
            if ((ledger_i128)out[i] * sum > (ledger_i128)total * weights[i]) {
                continue;
            }
            if (rem > best_rem) {
                best_rem = rem;
                best = i;
            }
        }
        PW_ASSERT(best < n);
        out[best]++;
    }
    return PW_OK;
}
