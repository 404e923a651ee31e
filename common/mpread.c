/*  mpread.c: bounds-checked msgpack reader; walks the bytes in place. */
#include "mpread.h"

#include <string.h>

/*  Containers mp_skip() tracks in one stack frame; deeper nesting (allowed
 *  only when max_depth is larger) continues in a nested call, so the stack
 *  grows by one frame per S_SKIP_LEVELS levels actually present. */
#define S_SKIP_LEVELS 64

static uint16_t
s_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t
s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
s_be64(const uint8_t *p)
{
    return (uint64_t)s_be32(p) << 32 | s_be32(p + 4);
}

void
mp_reader_init(mp_reader_t *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = buf ? r->p + len : r->p; /* NULL + 0 is undefined */
}

/*  Signed integer of n bytes: negative values are MP_INT, the others MP_UINT
 *  so that every value has one representation. */
static void
s_signed(mp_value_t *out, int64_t i)
{
    if (i < 0) {
        out->type = MP_INT;
        out->v.i = i;
    }
    else {
        out->type = MP_UINT;
        out->v.u = (uint64_t)i;
    }
}

int
mp_read(mp_reader_t *r, mp_value_t *out)
{
    const uint8_t *p = r->p;
    size_t left = mp_reader_left(r);
    if (left == 0)
        return -1;
    uint8_t tag = *p++;
    left--;
    size_t need = 0;     /* bytes of the length/value field after the tag */
    uint32_t len = 0;    /* payload bytes (STR/BIN/EXT) */
    uint64_t count = 0;  /* ARRAY/MAP elements */
    mp_value_t *v = out; /* written in place: out is unspecified after a failure */

    if (tag <= 0x7f) {
        v->type = MP_UINT;
        v->v.u = tag;
        goto done;
    }
    if (tag >= 0xe0) {
        v->type = MP_INT;
        v->v.i = (int8_t)tag;
        goto done;
    }
    if (tag <= 0x8f) {
        v->type = MP_MAP;
        count = tag & 0x0f;
        goto container;
    }
    if (tag <= 0x9f) {
        v->type = MP_ARRAY;
        count = tag & 0x0f;
        goto container;
    }
    if (tag <= 0xbf) {
        v->type = MP_STR;
        len = tag & 0x1f;
        goto payload;
    }

    switch (tag) {
    case 0xc0:
        v->type = MP_NIL;
        goto done;
    case 0xc2:
    case 0xc3:
        v->type = MP_BOOL;
        v->v.b = tag == 0xc3;
        goto done;
    case 0xc4: /* bin 8/16/32 */
    case 0xc5:
    case 0xc6:
    case 0xd9: /* str 8/16/32 */
    case 0xda:
    case 0xdb: {
        int bin = tag <= 0xc6;
        v->type = bin ? MP_BIN : MP_STR;
        need = (size_t)1 << (tag - (bin ? 0xc4 : 0xd9));
        if (left < need)
            return -1;
        len = need == 1 ? p[0] : need == 2 ? s_be16(p) : s_be32(p);
        p += need;
        left -= need;
        goto payload;
    }
    case 0xc7: /* ext 8/16/32: length, type, data */
    case 0xc8:
    case 0xc9:
        need = (size_t)1 << (tag - 0xc7);
        if (left < need + 1)
            return -1;
        len = need == 1 ? p[0] : need == 2 ? s_be16(p) : s_be32(p);
        v->type = MP_EXT;
        v->v.ext.type = (int8_t)p[need];
        p += need + 1;
        left -= need + 1;
        goto payload;
    case 0xd4: /* fixext 1/2/4/8/16: type, data */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        if (left < 1)
            return -1;
        len = (uint32_t)1 << (tag - 0xd4);
        v->type = MP_EXT;
        v->v.ext.type = (int8_t)p[0];
        p++;
        left--;
        goto payload;
    case 0xca: {
        if (left < 4)
            return -1;
        uint32_t bits = s_be32(p);
        float f;
        memcpy(&f, &bits, sizeof f);
        v->type = MP_FLOAT;
        v->v.f = f;
        p += 4;
        goto done;
    }
    case 0xcb: {
        if (left < 8)
            return -1;
        uint64_t bits = s_be64(p);
        memcpy(&v->v.f, &bits, sizeof v->v.f);
        v->type = MP_FLOAT;
        p += 8;
        goto done;
    }
    case 0xcc: /* uint 8/16/32/64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        need = (size_t)1 << (tag - 0xcc);
        if (left < need)
            return -1;
        v->type = MP_UINT;
        v->v.u = need == 1 ? p[0] : need == 2 ? s_be16(p) : need == 4 ? s_be32(p) : s_be64(p);
        p += need;
        goto done;
    case 0xd0: /* int 8/16/32/64 */
    case 0xd1:
    case 0xd2:
    case 0xd3:
        need = (size_t)1 << (tag - 0xd0);
        if (left < need)
            return -1;
        s_signed(v, need == 1   ? (int8_t)p[0]
                    : need == 2 ? (int16_t)s_be16(p)
                    : need == 4 ? (int32_t)s_be32(p)
                                : (int64_t)s_be64(p));
        p += need;
        goto done;
    case 0xdc: /* array 16/32 */
    case 0xdd:
    case 0xde: /* map 16/32 */
    case 0xdf:
        need = (tag & 1) ? 4 : 2;
        if (left < need)
            return -1;
        v->type = tag <= 0xdd ? MP_ARRAY : MP_MAP;
        count = need == 2 ? s_be16(p) : s_be32(p);
        p += need;
        left -= need;
        goto container;
    default: /* 0xc1: never used */
        return -1;
    }

container:
    /* Every element takes at least one byte: a larger count is a lie. */
    if ((v->type == MP_MAP ? count * 2 : count) > left)
        return -1;
    v->v.n = (uint32_t)count;
    goto done;

payload:
    if (len > left)
        return -1;
    if (v->type == MP_EXT) {
        v->v.ext.p = p;
        v->v.ext.len = len;
    }
    else {
        v->v.s.p = (const char *)p;
        v->v.s.len = len;
    }
    p += len;

done:
    r->p = p;
    return 0;
}

/*  Skips count items at the current position, each nested at most budget
 *  containers deep. */
static int
s_skip_items(mp_reader_t *r, uint64_t count, int budget)
{
    uint64_t left[S_SKIP_LEVELS]; /* items still to read in each open container */
    int depth = 0;
    while (count > 0 || depth > 0) {
        mp_value_t v;
        if (mp_read(r, &v) != 0)
            return -1;
        if (depth > 0)
            left[depth - 1]--;
        else
            count--;
        if (v.type == MP_ARRAY || v.type == MP_MAP) {
            if (depth + 1 > budget)
                return -1;
            uint64_t items = v.type == MP_MAP ? (uint64_t)v.v.n * 2 : v.v.n;
            if (items > 0) {
                if (depth < S_SKIP_LEVELS)
                    left[depth++] = items;
                else if (s_skip_items(r, items, budget - depth - 1) != 0)
                    return -1;
            }
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
    }
    return 0;
}

int
mp_skip(mp_reader_t *r, int max_depth)
{
    mp_reader_t copy = *r;
    if (s_skip_items(&copy, 1, max_depth < 0 ? 0 : max_depth) != 0)
        return -1;
    *r = copy;
    return 0;
}

int
mp_check(const void *buf, size_t len, int max_depth)
{
    mp_reader_t r;
    mp_reader_init(&r, buf, len);
    return mp_skip(&r, max_depth) == 0 && mp_reader_left(&r) == 0;
}

int
mp_read_pair(mp_reader_t *r, mp_value_t *key, mp_value_t *val, int max_depth)
{
    mp_reader_t at = *r;
    if (mp_read(&at, key) != 0 || key->type != MP_STR)
        return -1;
    mp_reader_t value = at;
    if (mp_read(&at, val) != 0)
        return -1;
    if (val->type == MP_ARRAY || val->type == MP_MAP) {
        at = value;
        if (mp_skip(&at, max_depth) != 0)
            return -1;
    }
    *r = at;
    return 0;
}

int
mp_str_eq(const mp_value_t *v, const char *lit)
{
    size_t n = strlen(lit);
    return v->type == MP_STR && v->v.s.len == n && (n == 0 || memcmp(v->v.s.p, lit, n) == 0);
}
