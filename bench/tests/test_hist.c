/*  test_hist.c: the histogram's buckets and percentiles on known data. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "hist.h"

/*  |got - want| <= 1 % of want (the documented bound) */
static int
s_close1(uint64_t got, uint64_t want)
{
    double d = (double)got - (double)want;
    return (d < 0 ? -d : d) <= (double)want / 100.0 + 0.5;
}

static void
test_buckets(void)
{
    /* Contiguous, increasing, and no bucket wider than 1/128 of its values. */
    CHECK(hist_index(0) == 0 && hist_index(255) == 255 && hist_index(256) == 256);
    for (unsigned i = 1; i + 1 < HIST_NBUCKETS - 128; i++) {
        CHECK(hist_bucket_low(i) == hist_bucket_high(i - 1) + 1);
        if (hist_bucket_low(i) != hist_bucket_high(i - 1) + 1)
            break;
    }
    for (uint64_t v = 1; v < (UINT64_C(1) << 42); v = v * 3 + 1) {
        unsigned i = hist_index(v);
        CHECK(hist_bucket_low(i) <= v && v <= hist_bucket_high(i));
        CHECK((double)(hist_bucket_high(i) - hist_bucket_low(i)) <= (double)v / 128.0);
    }
    CHECK(hist_index(UINT64_MAX) == HIST_NBUCKETS - 1);
}

static void
test_percentiles(void)
{
    hist_t *h = malloc(sizeof *h);
    hist_init(h);
    CHECK(hist_percentile(h, 50) == 0);
    /* 1..1,000,000 ns: the k-th percentile is k * 10,000. */
    for (uint64_t v = 1; v <= 1000000; v++)
        hist_record(h, v);
    CHECK(h->count == 1000000 && h->min == 1 && h->max == 1000000);
    CHECK(s_close1(hist_percentile(h, 50), 500000));
    CHECK(s_close1(hist_percentile(h, 90), 900000));
    CHECK(s_close1(hist_percentile(h, 99), 990000));
    CHECK(s_close1(hist_percentile(h, 99.9), 999000));
    CHECK(hist_percentile(h, 100) == 1000000);
    CHECK(s_close1((uint64_t)(h->sum / (double)h->count), 500000));

    /* 990 fast values and 10 slow ones: p99 is fast, p99.9 is slow. */
    hist_t *g = malloc(sizeof *g);
    hist_init(g);
    for (int i = 0; i < 990; i++)
        hist_record(g, 200000); /* 0.2 ms */
    for (int i = 0; i < 10; i++)
        hist_record(g, 50000000); /* 50 ms */
    CHECK(s_close1(hist_percentile(g, 99), 200000));
    CHECK(s_close1(hist_percentile(g, 99.9), 50000000));
    CHECK(s_close1(hist_percentile(g, 50), 200000));

    /* Merging two halves gives the whole. */
    hist_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    hist_init(a);
    hist_init(b);
    for (uint64_t v = 1; v <= 1000000; v++)
        hist_record(v % 2 ? a : b, v);
    hist_merge(a, b);
    CHECK(a->count == h->count && a->min == 1 && a->max == 1000000);
    CHECK(hist_percentile(a, 99) == hist_percentile(h, 99));
    CHECK(hist_percentile(a, 50) == hist_percentile(h, 50));

    buf_t out;
    buf_init(&out);
    hist_json(g, 1e6, &out);
    buf_append_char(&out, '\0');
    CHECK(buf_ok(&out) && strstr(out.data, "\"count\":1000") && strstr(out.data, "\"max\":50.0000"));
    buf_free(&out);
    free(a);
    free(b);
    free(g);
    free(h);
}

int
main(void)
{
    test_buckets();
    test_percentiles();
    return check_report();
}
