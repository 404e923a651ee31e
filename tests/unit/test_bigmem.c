/*  test_bigmem.c: large zeroed tables (common/bigmem.c): zeroed, aligned to
 *  2 MiB, writable to the last byte, faulted in at once when asked, and
 *  sizes that are not a multiple of a huge page (or 0) work. */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bigmem.h"
#include "check.h"

/*  Resident 4 KiB pages of [p, p + len), from mincore(). */
static size_t
s_resident(void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (len + page - 1) / page, count = 0;
    unsigned char vec[4096];
    CHECK(n <= sizeof vec);
    if (n > sizeof vec || mincore(p, len, vec) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    return count;
}

static void
test_sizes(void)
{
    size_t sizes[] = {0, 1, 4095, 4096, (2u << 20) - 1, 2u << 20, (2u << 20) + 1, 5u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i] ? sizes[i] : 1;
        unsigned char *p = bigmem_alloc(sizes[i], (int)(i & 1));
        CHECK(p != NULL);
        if (!p)
            continue;
        CHECK(((uintptr_t)p & ((2u << 20) - 1)) == 0);
        int zero = 1;
        for (size_t j = 0; j < n; j++)
            zero &= p[j] == 0;
        CHECK(zero);
        memset(p, 0xab, n);
        CHECK(p[0] == 0xab && p[n - 1] == 0xab);
        bigmem_free(p, sizes[i]);
    }
    bigmem_free(NULL, 10); /* ignored */
}

static void
test_now(void)
{
    size_t len = 4u << 20, page = (size_t)sysconf(_SC_PAGESIZE);
    void *lazy = bigmem_alloc(len, 0), *now = bigmem_alloc(len, 1);
    CHECK(lazy && now);
    if (!lazy || !now)
        return;
    CHECK(s_resident(lazy, len) == 0);          /* nothing touched, nothing taken */
    CHECK(s_resident(now, len) == len / page); /* every page in */
    bigmem_free(lazy, len);
    bigmem_free(now, len);
}

int
main(void)
{
    test_sizes();
    test_now();
    return check_report();
}
