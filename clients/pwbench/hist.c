/* hist.c: log-linear histogram; bucket = (exponent, top 6 bits of the mantissa). */
#include "hist.h"

static size_t bucket_of(uint64_t v)
{
    if (v < PWB_HIST_SUB) {
        return (size_t)v;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6;
    size_t b = (size_t)(msb - 5) * PWB_HIST_SUB + (size_t)((v >> shift) & (PWB_HIST_SUB - 1));
    return b < PWB_HIST_BUCKETS ? b : PWB_HIST_BUCKETS - 1;
}

static uint64_t bucket_top(size_t b)
{
    if (b < PWB_HIST_SUB) {
        return b;
    }
    unsigned msb = (unsigned)(b / PWB_HIST_SUB) + 5;
    uint64_t sub = b % PWB_HIST_SUB;
    unsigned shift = msb - 6;
    return ((uint64_t)(PWB_HIST_SUB + sub) << shift) + (1ull << shift) - 1;
}

void pwb_hist_record(pwb_hist *h, uint64_t us)
{
    h->counts[bucket_of(us)]++;
    h->total++;
    if (us > h->max) {
        h->max = us;
    }
}

uint64_t pwb_hist_quantile(const pwb_hist *h, double q)
{
    if (h->total == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)(q * (double)h->total);
    if (want >= h->total) {
        want = h->total - 1;
    }
    uint64_t seen = 0;
    for (size_t b = 0; b < PWB_HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen > want) {
            uint64_t top = bucket_top(b);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
