#ifndef PAYWIRE_FINANCE_MONEY_H
#define PAYWIRE_FINANCE_MONEY_H

/*
 * Integer money arithmetic (docs/design/finance.md, Fees and FX): half-even
 * rounding of exact quotients, fees in basis points, conversions at exact
 * decimal rates, and allocations that sum to the whole. Products are taken
 * in 128 bits, so nothing overflows before the result is known; a result
 * that does not fit int64 is refused, never wrapped. No floating point.
 */
#include <stddef.h>
#include <stdint.h>
#include <paywire/status.h>
#include "ledger_names.h"

/** num / den rounded half to even; den > 0 (asserted). */
ledger_i128 money_div_half_even(ledger_i128 num, ledger_i128 den);

/**
 * The fee of amount (> 0) under a rule: fixed + round_half_even(amount × bps / 10 000),
 * then at least min (when min > 0) and at most max (when max > 0). Returns PW_OK with *out,
 * or PW_OUT_OF_RANGE when the fee does not fit int64.
 */
pw_status money_fee(int64_t amount, uint32_t bps, int64_t fixed, int64_t min, int64_t max,
                    int64_t *out);

/**
 * amount minor units of a currency of exponent from_exp, converted at the rate mantissa ×
 * 10^-scale to a currency of exponent to_exp: amount × mantissa × 10^(to_exp − from_exp −
 * scale), rounded half to even. Returns PW_OK with *out, PW_INVALID_ARGUMENT (amount or
 * mantissa not positive, exponents above 18, scale above 18) or PW_OUT_OF_RANGE (the result
 * does not fit int64).
 */
pw_status money_convert(int64_t amount, int64_t mantissa, uint32_t scale, uint32_t from_exp,
                        uint32_t to_exp, int64_t *out);

/**
 * Splits total (>= 0) into n parts in proportion to weights (each >= 0, not all 0) so that
 * the parts sum to total exactly: each part is the floor of its exact share, and the units
 * left go one each to the largest remainders (ties: the earlier part). Returns PW_OK, or
 * PW_INVALID_ARGUMENT (n 0, a negative total or weight, all weights 0, or weights summing
 * beyond int64).
 */
pw_status money_allocate(int64_t total, const int64_t *weights, size_t n, int64_t *out);

#endif
