/*  bigmem.c: large zeroed tables on transparent huge pages (see bigmem.h). */
#define _DEFAULT_SOURCE
#include "bigmem.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define S_HUGE ((size_t)2 << 20)

static size_t
s_round(size_t size)
{
    return (size + S_HUGE - 1) & ~(S_HUGE - 1);
}

void *
bigmem_alloc(size_t size, int flags)
{
    if (size == 0)
        size = 1;
    size_t len = s_round(size);
    if (len < size)
        return NULL;
    /* Map one huge page more and trim, so the region starts on 2 MiB. */
    uint8_t *raw =
        mmap(NULL, len + S_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)(((uintptr_t)raw + S_HUGE - 1) & ~(uintptr_t)(S_HUGE - 1));
    if (p > raw)
        (void)munmap(raw, (size_t)(p - raw));
    size_t tail = (size_t)(raw + len + S_HUGE - (p + len));
    if (tail)
        (void)munmap(p + len, tail);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* advice only: without THP, 4 KiB pages */
#endif
    if ((flags & BIGMEM_NOFORK) && madvise(p, len, MADV_DONTFORK) != 0) {
        (void)munmap(p, len);
        return NULL;
    }
    if (flags & BIGMEM_NOW)
        memset(p, 0, len); /* zero already: the writes only fault it in */
    return p;
}

void
bigmem_free(void *p, size_t size)
{
    if (p)
        (void)munmap(p, s_round(size ? size : 1));
}
