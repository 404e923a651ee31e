/*  opt.h: reading the tools' numeric options from a parsed cfg_opt_t table,
 *  with one error sentence on stderr naming the flag.
 */
#ifndef TC_BENCH_OPT_H
#define TC_BENCH_OPT_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/*  The value of --flag as an integer in [min, max] (0 if unset and no
 *  default). 0, or -1 after printing "prog: --flag must be ...". */
int opt_u64(const cfg_opt_t *opts, size_t n, const char *prog, const char *flag, uint64_t min,
            uint64_t max, uint64_t *out);
/*  The value of --flag as a number >= 0 (fractions allowed). 0 or -1. */
int opt_double(const cfg_opt_t *opts, size_t n, const char *prog, const char *flag, double *out);

#endif
