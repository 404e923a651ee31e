/*  test_bigmem.c: large zeroed tables (common/bigmem.c): zeroed, aligned to
 *  2 MiB, writable to the last byte, faulted in at once when asked, not
 *  mapped in a fork()ed child when asked, and sizes that are not a multiple
 *  of a huge page (or 0) work. */
#define _DEFAULT_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
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
        unsigned char *p = bigmem_alloc(sizes[i], (i & 1) ? BIGMEM_NOW : 0);
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
    void *lazy = bigmem_alloc(len, 0), *now = bigmem_alloc(len, BIGMEM_NOW);
    CHECK(lazy && now);
    if (!lazy || !now)
        return;
    CHECK(s_resident(lazy, len) == 0);          /* nothing touched, nothing taken */
    CHECK(s_resident(now, len) == len / page); /* every page in */
    bigmem_free(lazy, len);
    bigmem_free(now, len);
}

/*  In a child, the NOFORK region is not mapped (mincore fails with ENOMEM)
 *  and the other one is, with what the parent wrote. */
static void
test_nofork(void)
{
    size_t len = 2u << 20;
    unsigned char *kept = bigmem_alloc(len, BIGMEM_NOW), *gone = bigmem_alloc(len, BIGMEM_NOFORK);
    CHECK(kept && gone);
    if (!kept || !gone)
        return;
    kept[7] = 42;
    gone[7] = 43;
    pid_t pid = fork();
    if (pid == 0) {
        unsigned char vec[1];
        int unmapped = mincore(gone, 4096, vec) != 0;
        _exit(kept[7] == 42 && unmapped ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(gone[7] == 43); /* still the parent's */
    bigmem_free(kept, len);
    bigmem_free(gone, len);
}

int
main(void)
{
    test_sizes();
    test_now();
    test_nofork();
    return check_report();
}
