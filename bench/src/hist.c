/*  hist.c: the log-linear histogram of hist.h. */
#include "hist.h"

#include <math.h>
#include <string.h>

void
hist_init(hist_t *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned
hist_index(uint64_t value)
{
    if (value < 256)
        return (unsigned)value;
    unsigned top = 63u - (unsigned)__builtin_clzll(value); /* >= 8 */
    unsigned shift = top - HIST_SUB_BITS;                  /* >= 1 */
    if (top >= HIST_MAX_BITS)
        return HIST_NBUCKETS - 1;
    /* (value >> shift) is in [128, 255]: continues the linear part. */
    return shift * 128u + (unsigned)(value >> shift);
}

uint64_t
hist_bucket_low(unsigned index)
{
    if (index < 256)
        return index;
    unsigned shift = index / 128u - 1u;
    uint64_t mant = 128u + index % 128u;
    return mant << shift;
}

uint64_t
hist_bucket_high(unsigned index)
{
    if (index < 256)
        return index;
    unsigned shift = index / 128u - 1u;
    uint64_t mant = 128u + index % 128u;
    return ((mant + 1u) << shift) - 1u;
}

void
hist_record(hist_t *h, uint64_t value)
{
    h->buckets[hist_index(value)]++;
    h->count++;
    h->sum += (double)value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void
hist_merge(hist_t *dst, const hist_t *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < HIST_NBUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t
hist_percentile(const hist_t *h, double pct)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->count);
    if (rank < 1)
        rank = 1;
    if (rank >= h->count)
        return h->max;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t lo = hist_bucket_low(i), hi = hist_bucket_high(i);
            uint64_t v = lo + (hi - lo) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

void
hist_json(const hist_t *h, double div, buf_t *out)
{
    static const struct {
        const char *key;
        double pct;
    } s_points[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p999", 99.9}};
    buf_printf(out, "{\"count\":%llu", (unsigned long long)h->count);
    if (h->count == 0) {
        buf_append_str(out, "}");
        return;
    }
    buf_printf(out, ",\"mean\":%.4f", h->sum / (double)h->count / div);
    for (unsigned i = 0; i < sizeof s_points / sizeof s_points[0]; i++)
        buf_printf(out, ",\"%s\":%.4f", s_points[i].key,
                   (double)hist_percentile(h, s_points[i].pct) / div);
    buf_printf(out, ",\"max\":%.4f,\"min\":%.4f}", (double)h->max / div, (double)h->min / div);
}
