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

/*  A zeroed region of size bytes, or NULL (errno set). With now set, every
 *  page is faulted in before it returns: the cost is paid once, at start,
 *  not by the first requests (a table that fills within seconds under load
 *  anyway, like the broker's idempotency window). */
void *bigmem_alloc(size_t size, int now);

/*  Frees what bigmem_alloc(size) returned (NULL is ignored). */
void bigmem_free(void *p, size_t size);

#endif
