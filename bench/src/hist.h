/*  hist.h: a log-linear latency histogram, HdrHistogram-like.
 *
 *  Values are unsigned 64-bit integers (nanoseconds here). Values below 256
 *  have a bucket each; above, every power of two is cut into 128 equal
 *  buckets, so a bucket is at most 1/128 of its values wide and a reported
 *  percentile (the bucket's midpoint) is within 0.4 % of the true value.
 *  Values up to 2^43 (about 2.4 hours in ns) are kept; larger ones count in
 *  the last bucket (and max stays exact). The struct is flat, with no
 *  pointer, so it can live in memory shared by forked processes and be
 *  merged by adding counts.
 */
#ifndef TC_BENCH_HIST_H
#define TC_BENCH_HIST_H

#include <stdint.h>

#include "buf.h"

#define HIST_SUB_BITS 7                                  /* 128 buckets per power of two */
#define HIST_MAX_BITS 43                                 /* values < 2^43 are exact-ish */
#define HIST_NBUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS) * 128 + 256)

typedef struct hist {
    uint64_t count;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;        /* for the mean */
    uint64_t buckets[HIST_NBUCKETS];
} hist_t;

void hist_init(hist_t *h);
void hist_record(hist_t *h, uint64_t value);
/*  Adds every count of src to dst. */
void hist_merge(hist_t *dst, const hist_t *src);
/*  The value at percentile pct (0..100]: the smallest bucket whose
 *  cumulative count reaches ceil(pct/100 * count), reported as the
 *  bucket's midpoint (clamped to [min, max]). 0 when empty. */
uint64_t hist_percentile(const hist_t *h, double pct);

/*  The bucket index of a value, and a bucket's lowest and highest value
 *  (for tests). */
unsigned hist_index(uint64_t value);
uint64_t hist_bucket_low(unsigned index);
uint64_t hist_bucket_high(unsigned index);

/*  Appends {"count":N,"mean":..,"p50":..,"p90":..,"p99":..,"p999":..,
 *  "max":..,"min":..} with the values divided by div (1e6: ns -> ms). */
void hist_json(const hist_t *h, double div, buf_t *out);

#endif
