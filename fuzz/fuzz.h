/*  fuzz.h: what every libFuzzer target here shares.
 *
 *  A target is one LLVMFuzzerTestOneInput() over one parser of untrusted
 *  input. Besides "no crash, no sanitizer report" (ASan + UBSan are always
 *  on), it checks what the parser promises with FUZZ_CHECK: a broken
 *  promise aborts, and libFuzzer keeps the input as a crash like any other.
 *  scripts/fuzz.sh builds and runs them; fuzz/README.md says how.
 */
#ifndef TC_FUZZ_H
#define TC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/*  1 if [p, p + len) lies inside [base, base + size). */
static inline int
fuzz_within(const void *p, size_t len, const void *base, size_t size)
{
    const uint8_t *q = p, *b = base;
    return q >= b && q <= b + size && len <= (size_t)(b + size - q);
}

/*  1 if the NUL-terminated text is printable ASCII (a sentence meant for a
 *  log line or an error frame must not carry raw input bytes). */
static inline int
fuzz_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
