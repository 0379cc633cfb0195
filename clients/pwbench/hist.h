#ifndef PAYWIRE_PWBENCH_HIST_H
#define PAYWIRE_PWBENCH_HIST_H

/*
 * A log-linear latency histogram in the HDR style: values in microseconds,
 * 64 linear sub-buckets per power of two (under 1.6% relative error), fixed
 * memory, O(1) record.
 */
#include <stddef.h>
#include <stdint.h>

#define PWB_HIST_SUB     64
#define PWB_HIST_BUCKETS (40 * PWB_HIST_SUB)

typedef struct pwb_hist {
    uint64_t counts[PWB_HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
} pwb_hist;

void pwb_hist_record(pwb_hist *h, uint64_t us);
/** The value at quantile q (0..1), as the upper edge of its bucket. */
uint64_t pwb_hist_quantile(const pwb_hist *h, double q);

#endif
