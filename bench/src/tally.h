/*  tally.h: counts by name (failure reasons, close codes, error codes) in a
 *  flat struct that lives in shared memory and merges by adding.
 */
#ifndef TC_BENCH_TALLY_H
#define TC_BENCH_TALLY_H

#include <stdint.h>

#include "buf.h"

#define TALLY_KEYS   32
#define TALLY_KEYLEN 32

typedef struct tally {
    unsigned n;
    struct {
        char key[TALLY_KEYLEN];
        uint64_t count;
    } e[TALLY_KEYS];
} tally_t;

/*  Adds count under key (truncated to 31 bytes). Past 32 distinct keys the
 *  rest go under "other". */
void tally_add(tally_t *t, const char *key, uint64_t count);
void tally_merge(tally_t *dst, const tally_t *src);
uint64_t tally_total(const tally_t *t);
uint64_t tally_get(const tally_t *t, const char *key);
/*  Appends {"key":count,...}; keys are plain words (no escaping needed). */
void tally_json(const tally_t *t, buf_t *out);

#endif
