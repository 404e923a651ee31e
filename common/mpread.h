/*  mpread.h: a bounds-checked msgpack reader for untrusted input.
 *
 *  Why not msgpack-c's unpacker: it reserves memory for the element count a
 *  header declares before reading the elements (a 5-byte header reserved
 *  4 GB), and signals truncation with MSGPACK_UNPACK_CONTINUE == 0. This
 *  reader walks the bytes in place: nothing is allocated, a declared count
 *  larger than the bytes left is rejected at once, depth is limited, and
 *  strings point into the input. msgpack-c is used to write msgpack.
 */
#ifndef TC_MPREAD_H
#define TC_MPREAD_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MP_NIL,
    MP_BOOL,
    MP_UINT,  /* non-negative integer: v.u */
    MP_INT,   /* negative integer: v.i */
    MP_FLOAT, /* float 32 or 64, widened: v.f */
    MP_STR,   /* v.s (not NUL-terminated, points into the input) */
    MP_BIN,   /* v.s */
    MP_ARRAY, /* v.n elements follow */
    MP_MAP,   /* v.n key/value pairs follow */
    MP_EXT    /* v.ext */
} mp_type_t;

typedef struct mp_value {
    mp_type_t type;
    union {
        int b;
        uint64_t u;
        int64_t i;
        double f;
        struct {
            const char *p;
            uint32_t len;
        } s;
        uint32_t n;
        struct {
            int8_t type;
            const uint8_t *p;
            uint32_t len;
        } ext;
    } v;
} mp_value_t;

typedef struct mp_reader {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
} mp_reader_t;

void mp_reader_init(mp_reader_t *r, const void *buf, size_t len);

static inline size_t
mp_reader_left(const mp_reader_t *r)
{
    return (size_t)(r->end - r->p);
}

/*  Reads one item's header into out and advances past it; for STR/BIN/EXT
 *  also past the payload, for ARRAY/MAP only past the header (the elements
 *  follow). Rejects truncated input, the reserved byte 0xc1, and an
 *  ARRAY/MAP count larger than the bytes left (every element takes at least
 *  one byte). Returns 0, or -1 (reader unchanged). */
int mp_read(mp_reader_t *r, mp_value_t *out);

/*  Skips one whole item with all its children, nested at most max_depth
 *  containers deep. Returns 0, or -1 on malformed or too deep input. */
int mp_skip(mp_reader_t *r, int max_depth);

/*  1 if buf holds exactly one well-formed item (max_depth as above) and
 *  nothing after it, else 0. */
int mp_check(const void *buf, size_t len, int max_depth);

/*  Reads the next pair of a map whose header was read: the key, which must
 *  be a string, and the value. A container value is skipped whole (max_depth
 *  as above); its header is what *val holds. Returns 0, or -1 (malformed or
 *  a key that is not a string). */
int mp_read_pair(mp_reader_t *r, mp_value_t *key, mp_value_t *val, int max_depth);

/*  1 if the string equals the NUL-terminated literal. */
int mp_str_eq(const mp_value_t *v, const char *lit);

#endif
