/*  bigmem.h: large zeroed tables that are filled at random.
 *
 *  A table of many megabytes touched at random positions (a hash index) is
 *  faulted in one 4 KiB page at a time, each fault a trip into the kernel;
 *  a fresh process taking its first hundred thousand inserts pays thousands
 *  of them within a second, and on a virtual machine where a fault is dear
 *  that stalled the broker's loop for 50-200 ms (issue 5, docs/BENCHMARKS.md).
 *  bigmem maps such a table aligned to 2 MiB and asks for transparent huge
 *  pages (madvise), so it is faulted in 2 MiB at a time: a few hundred times
 *  fewer faults, and memory is still taken only where the table is used.
 *  On a virtual machine whose host backs guest memory lazily, a first touch
 *  costs far more again (27 us per 4 KiB page measured there), hence `now`. */
#ifndef TC_BIGMEM_H
#define TC_BIGMEM_H

#include <stddef.h>

enum {
    /*  Every page is faulted in before bigmem_alloc returns: the cost is
     *  paid once, at start, not by the first requests (for a table that
     *  fills within seconds under load anyway, like the broker's
     *  idempotency window). */
    BIGMEM_NOW = 1,
    /*  Not in a fork()ed child (MADV_DONTFORK): after a fork, each first
     *  write to a page the child shares is a copy-on-write fault, and a
     *  table written at random takes them all at once (the broker's index
     *  cost its loop up to 380 ms after a compaction's fork). Only for what
     *  a child never reads: there it is not mapped at all. */
    BIGMEM_NOFORK = 2,
};

/*  A zeroed region of size bytes (flags: BIGMEM_*), or NULL (errno set). */
void *bigmem_alloc(size_t size, int flags);

/*  Frees what bigmem_alloc(size) returned (NULL is ignored). */
void bigmem_free(void *p, size_t size);

#endif
