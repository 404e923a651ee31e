/*  opt.c: numeric options with one sentence per mistake. */
#include "opt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int
opt_u64(const cfg_opt_t *opts, size_t n, const char *prog, const char *flag, uint64_t min,
        uint64_t max, uint64_t *out)
{
    const char *text = cfg_value(opts, n, flag);
    if (!text) {
        *out = 0;
        return 0;
    }
    if (cfg_parse_u64(text, min, max, out) != 0) {
        fprintf(stderr, "%s: --%s must be an integer in %llu..%llu, not '%s'\n", prog, flag,
                (unsigned long long)min, (unsigned long long)max, text);
        return -1;
    }
    return 0;
}

int
opt_double(const cfg_opt_t *opts, size_t n, const char *prog, const char *flag, double *out)
{
    const char *text = cfg_value(opts, n, flag);
    *out = 0;
    if (!text)
        return 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !isfinite(v) || v < 0) {
        fprintf(stderr, "%s: --%s must be a number >= 0, not '%s'\n", prog, flag, text);
        return -1;
    }
    *out = v;
    return 0;
}
