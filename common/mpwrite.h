/*  mpwrite.h: writing msgpack straight into memory of known size.
 *
 *  For the hot path (the broker packs every published event and every
 *  answer): no callback per token as with msgpack-c's packer, no growing
 *  buffer. The caller reserves the room first (mp_size_* tell how much) and
 *  each writer returns the position after what it wrote. Every writer uses
 *  the smallest encoding, as msgpack-c does, so both produce the same bytes.
 */
#ifndef TC_MPWRITE_H
#define TC_MPWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MP_UINT_MAX_SIZE 9 /* the largest encoded unsigned or signed integer */

static inline uint8_t *
mp_put_be(uint8_t *p, uint8_t tag, uint64_t v, int bytes)
{
    *p++ = tag;
    for (int i = bytes - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static inline uint8_t *
mp_put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p = (uint8_t)v;
        return p + 1;
    }
    if (v <= 0xff)
        return mp_put_be(p, 0xcc, v, 1);
    if (v <= 0xffff)
        return mp_put_be(p, 0xcd, v, 2);
    if (v <= 0xffffffffu)
        return mp_put_be(p, 0xce, v, 4);
    return mp_put_be(p, 0xcf, v, 8);
}

/*  A signed integer: non-negative ones as unsigned, as msgpack-c does. */
static inline uint8_t *
mp_put_int(uint8_t *p, int64_t v)
{
    if (v >= 0)
        return mp_put_uint(p, (uint64_t)v);
    if (v >= -32) {
        *p = (uint8_t)(int8_t)v;
        return p + 1;
    }
    if (v >= INT8_MIN)
        return mp_put_be(p, 0xd0, (uint64_t)v, 1);
    if (v >= INT16_MIN)
        return mp_put_be(p, 0xd1, (uint64_t)v, 2);
    if (v >= INT32_MIN)
        return mp_put_be(p, 0xd2, (uint64_t)v, 4);
    return mp_put_be(p, 0xd3, (uint64_t)v, 8);
}

static inline size_t
mp_size_str(size_t len)
{
    return (len < 32 ? 1 : len <= 0xff ? 2 : len <= 0xffff ? 3 : 5) + len;
}

static inline uint8_t *
mp_put_str(uint8_t *p, const void *s, size_t len)
{
    if (len < 32)
        *p++ = (uint8_t)(0xa0 | len);
    else if (len <= 0xff)
        p = mp_put_be(p, 0xd9, len, 1);
    else if (len <= 0xffff)
        p = mp_put_be(p, 0xda, len, 2);
    else
        p = mp_put_be(p, 0xdb, len, 4);
    memcpy(p, s, len);
    return p + len;
}

/*  A string literal: mp_put_lit(p, "seq"). */
#define mp_put_lit(p, lit) mp_put_str((p), (lit), sizeof(lit) - 1)

/*  A map header of n (< 16) pairs, and true/false. */
static inline uint8_t *
mp_put_fixmap(uint8_t *p, unsigned n)
{
    *p = (uint8_t)(0x80 | n);
    return p + 1;
}

static inline uint8_t *
mp_put_bool(uint8_t *p, int v)
{
    *p = v ? 0xc3 : 0xc2;
    return p + 1;
}

#endif
