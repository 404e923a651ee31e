/*  test_mpread.c: the bounds-checked msgpack reader. */
#include "check.h"
#include "mpread.h"

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*  Reads exactly one item from bytes; 0 if mp_read fails or bytes remain. */
static int
read_one(const void *p, size_t len, mp_value_t *v)
{
    mp_reader_t r;
    mp_reader_init(&r, p, len);
    return mp_read(&r, v) == 0 && mp_reader_left(&r) == 0;
}

/*  Every strict prefix of an item fails to read and leaves the reader where
 *  it was. */
static int
prefixes_fail(const void *p, size_t len)
{
    for (size_t n = 0; n < len; n++) {
        mp_reader_t r;
        mp_value_t v;
        mp_reader_init(&r, p, n);
        if (mp_read(&r, &v) == 0 || r.p != (const uint8_t *)p)
            return 0;
    }
    return 1;
}

static void
test_ints(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    mp_value_t v;
    struct {
        uint64_t u;
        int kind; /* 0 minimal, 8/16/32/64 fixed width */
    } us[] = {{0, 0},  {127, 0},          {5, 8},           {255, 8}, {65535, 16},
              {7, 32}, {4294967295u, 32}, {UINT64_MAX, 64}, {0, 64},  {1u << 31, 0}};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        switch (us[i].kind) {
        case 0:
            msgpack_pack_uint64(&pk, us[i].u);
            break;
        case 8:
            msgpack_pack_fix_uint8(&pk, (uint8_t)us[i].u);
            break;
        case 16:
            msgpack_pack_fix_uint16(&pk, (uint16_t)us[i].u);
            break;
        case 32:
            msgpack_pack_fix_uint32(&pk, (uint32_t)us[i].u);
            break;
        default:
            msgpack_pack_fix_uint64(&pk, us[i].u);
            break;
        }
        CHECK(read_one(sb.data, sb.size, &v));
        CHECK(v.type == MP_UINT && v.v.u == us[i].u);
        CHECK(prefixes_fail(sb.data, sb.size));
        msgpack_sbuffer_destroy(&sb);
    }

    struct {
        int64_t i;
        int kind;
    } is[] = {{-1, 0},        {-32, 0},   {-33, 0},        {-128, 8},       {5, 8},
              {127, 8},       {-129, 16}, {-32768, 16},    {300, 16},       {-2147483648LL, 32},
              {123456, 32},   {0, 32},    {INT64_MIN, 64}, {INT64_MAX, 64}, {-1, 64},
              {INT64_MIN, 0}, {-5, 0}};
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        switch (is[i].kind) {
        case 0:
            msgpack_pack_int64(&pk, is[i].i);
            break;
        case 8:
            msgpack_pack_fix_int8(&pk, (int8_t)is[i].i);
            break;
        case 16:
            msgpack_pack_fix_int16(&pk, (int16_t)is[i].i);
            break;
        case 32:
            msgpack_pack_fix_int32(&pk, (int32_t)is[i].i);
            break;
        default:
            msgpack_pack_fix_int64(&pk, is[i].i);
            break;
        }
        CHECK(read_one(sb.data, sb.size, &v));
        if (is[i].i < 0)
            CHECK(v.type == MP_INT && v.v.i == is[i].i);
        else /* one representation per value: non-negative is MP_UINT */
            CHECK(v.type == MP_UINT && v.v.u == (uint64_t)is[i].i);
        CHECK(prefixes_fail(sb.data, sb.size));
        msgpack_sbuffer_destroy(&sb);
    }

    /* Hand-made bytes, to pin the formats. */
    static const uint8_t negfix[] = {0xe0}, posfix[] = {0x7f}, i8[] = {0xd0, 0x80},
                         u16[] = {0xcd, 0x12, 0x34},
                         i64[] = {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    CHECK(read_one(negfix, 1, &v) && v.type == MP_INT && v.v.i == -32);
    CHECK(read_one(posfix, 1, &v) && v.type == MP_UINT && v.v.u == 127);
    CHECK(read_one(i8, 2, &v) && v.type == MP_INT && v.v.i == -128);
    CHECK(read_one(u16, 3, &v) && v.type == MP_UINT && v.v.u == 0x1234);
    CHECK(read_one(i64, 9, &v) && v.type == MP_INT && v.v.i == -2);
}

static void
test_scalars(void)
{
    mp_value_t v;
    static const uint8_t nil[] = {0xc0}, t[] = {0xc3}, f[] = {0xc2}, never[] = {0xc1, 0x00};
    CHECK(read_one(nil, 1, &v) && v.type == MP_NIL);
    CHECK(read_one(t, 1, &v) && v.type == MP_BOOL && v.v.b == 1);
    CHECK(read_one(f, 1, &v) && v.type == MP_BOOL && v.v.b == 0);
    mp_reader_t r;
    mp_reader_init(&r, never, sizeof never);
    CHECK(mp_read(&r, &v) == -1 && r.p == never);
    CHECK(mp_skip(&r, 8) == -1 && r.p == never);
    mp_reader_init(&r, NULL, 0);
    CHECK(mp_read(&r, &v) == -1);
    CHECK(mp_reader_left(&r) == 0);
    CHECK(mp_check(NULL, 0, 8) == 0);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_float(&pk, 1.5f);
    CHECK(sb.size == 5 && (uint8_t)sb.data[0] == 0xca);
    CHECK(read_one(sb.data, sb.size, &v) && v.type == MP_FLOAT && v.v.f == 1.5);
    CHECK(prefixes_fail(sb.data, sb.size));
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_float(&pk, 1.1f);
    CHECK(read_one(sb.data, sb.size, &v) && v.type == MP_FLOAT && v.v.f == (double)1.1f);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_double(&pk, -0.1);
    CHECK(sb.size == 9 && (uint8_t)sb.data[0] == 0xcb);
    CHECK(read_one(sb.data, sb.size, &v) && v.type == MP_FLOAT && v.v.f == -0.1);
    CHECK(prefixes_fail(sb.data, sb.size));
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_double(&pk, INFINITY);
    CHECK(read_one(sb.data, sb.size, &v) && v.type == MP_FLOAT && isinf(v.v.f));
    msgpack_sbuffer_destroy(&sb);
}

/*  Strings and binaries of every header size. */
static void
test_str_bin(void)
{
    static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
    char *text = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        text[i] = (char)('a' + i % 26);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int bin = 0; bin < 2; bin++) {
            msgpack_sbuffer_clear(&sb);
            if (bin)
                msgpack_pack_bin_with_body(&pk, text, lens[i]);
            else
                msgpack_pack_str_with_body(&pk, text, lens[i]);
            mp_value_t v;
            CHECK(read_one(sb.data, sb.size, &v));
            CHECK(v.type == (bin ? MP_BIN : MP_STR));
            CHECK(v.v.s.len == lens[i]);
            CHECK(v.v.s.p == sb.data + (sb.size - lens[i])); /* points into the input */
            if (lens[i] <= 300)
                CHECK(prefixes_fail(sb.data, sb.size));
            else { /* header intact, payload one byte short */
                mp_reader_t r;
                mp_reader_init(&r, sb.data, sb.size - 1);
                CHECK(mp_read(&r, &v) == -1);
            }
        }
    }
    /* Formats by hand: str8 with 3 bytes, str16, str32, bin8/16/32. */
    static const uint8_t s8[] = {0xd9, 3, 'a', 'b', 'c'}, s16[] = {0xda, 0, 2, 'h', 'i'},
                         s32[] = {0xdb, 0, 0, 0, 1, 'x'}, b8[] = {0xc4, 1, 0xff},
                         b16[] = {0xc5, 0, 0}, b32[] = {0xc6, 0, 0, 0, 2, 1, 2},
                         s32long[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'};
    mp_value_t v;
    CHECK(read_one(s8, sizeof s8, &v) && v.type == MP_STR && v.v.s.len == 3 &&
          memcmp(v.v.s.p, "abc", 3) == 0);
    CHECK(read_one(s16, sizeof s16, &v) && v.type == MP_STR && v.v.s.len == 2);
    CHECK(read_one(s32, sizeof s32, &v) && v.type == MP_STR && v.v.s.len == 1);
    CHECK(read_one(b8, sizeof b8, &v) && v.type == MP_BIN && v.v.s.len == 1);
    CHECK(read_one(b16, sizeof b16, &v) && v.type == MP_BIN && v.v.s.len == 0);
    CHECK(read_one(b32, sizeof b32, &v) && v.type == MP_BIN && v.v.s.len == 2);
    CHECK(!read_one(s32long, sizeof s32long, &v));
    CHECK(prefixes_fail(s8, sizeof s8) && prefixes_fail(s32, sizeof s32));
    CHECK(prefixes_fail(b32, sizeof b32));
    msgpack_sbuffer_destroy(&sb);
    free(text);
}

static void
test_ext(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    static const size_t lens[] = {1, 2, 4, 8, 16, 0, 3, 17, 255, 256, 65536};
    static uint8_t body[65536];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_ext_with_body(&pk, body, lens[i], -7);
        mp_value_t v;
        CHECK(read_one(sb.data, sb.size, &v));
        CHECK(v.type == MP_EXT && v.v.ext.type == -7 && v.v.ext.len == lens[i]);
        CHECK(v.v.ext.len == 0 || memcmp(v.v.ext.p, body, lens[i]) == 0);
        if (lens[i] <= 256)
            CHECK(prefixes_fail(sb.data, sb.size));
    }
    /* fixext 1..16 and ext 8/16/32 by hand. */
    static const uint8_t fe1[] = {0xd4, 1, 9},
                         fe16[] = {0xd8, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
                         e8[] = {0xc7, 2, 5, 1, 2}, e16[] = {0xc8, 0, 1, 5, 1},
                         e32[] = {0xc9, 0, 0, 0, 0, 127};
    mp_value_t v;
    CHECK(read_one(fe1, sizeof fe1, &v) && v.type == MP_EXT && v.v.ext.type == 1 &&
          v.v.ext.len == 1 && v.v.ext.p[0] == 9);
    CHECK(read_one(fe16, sizeof fe16, &v) && v.type == MP_EXT && v.v.ext.len == 16);
    CHECK(read_one(e8, sizeof e8, &v) && v.v.ext.type == 5 && v.v.ext.len == 2);
    CHECK(read_one(e16, sizeof e16, &v) && v.v.ext.len == 1);
    CHECK(read_one(e32, sizeof e32, &v) && v.v.ext.type == 127 && v.v.ext.len == 0);
    CHECK(prefixes_fail(fe16, sizeof fe16) && prefixes_fail(e8, sizeof e8));
    CHECK(prefixes_fail(e32, sizeof e32));
    msgpack_sbuffer_destroy(&sb);
}

static void
test_containers(void)
{
    mp_value_t v;
    mp_reader_t r;
    /* fixarray / fixmap / 16 / 32 headers, with their elements after them. */
    static const uint8_t fa[] = {0x92, 1, 2}, fm[] = {0x81, 0xa1, 'k', 0xc0},
                         a16[] = {0xdc, 0, 2, 1, 2}, a32[] = {0xdd, 0, 0, 0, 1, 0xc0},
                         m16[] = {0xde, 0, 1, 1, 2}, m32[] = {0xdf, 0, 0, 0, 1, 1, 2},
                         empty[] = {0x90};
    mp_reader_init(&r, fa, sizeof fa);
    CHECK(mp_read(&r, &v) == 0 && v.type == MP_ARRAY && v.v.n == 2 && mp_reader_left(&r) == 2);
    mp_reader_init(&r, fm, sizeof fm);
    CHECK(mp_read(&r, &v) == 0 && v.type == MP_MAP && v.v.n == 1 && mp_reader_left(&r) == 3);
    CHECK(mp_read(&r, &v) == 0 && mp_str_eq(&v, "k") && !mp_str_eq(&v, "kk") && !mp_str_eq(&v, ""));
    mp_reader_init(&r, a16, sizeof a16);
    CHECK(mp_read(&r, &v) == 0 && v.type == MP_ARRAY && v.v.n == 2);
    mp_reader_init(&r, a32, sizeof a32);
    CHECK(mp_read(&r, &v) == 0 && v.type == MP_ARRAY && v.v.n == 1);
    mp_reader_init(&r, m16, sizeof m16);
    CHECK(mp_read(&r, &v) == 0 && v.type == MP_MAP && v.v.n == 1);
    mp_reader_init(&r, m32, sizeof m32);
    CHECK(mp_read(&r, &v) == 0 && v.type == MP_MAP && v.v.n == 1);
    CHECK(read_one(empty, 1, &v) && v.type == MP_ARRAY && v.v.n == 0);
    for (size_t n = 0; n < 5; n++) { /* truncated 16/32 headers */
        mp_reader_init(&r, a32, n);
        CHECK(mp_read(&r, &v) == -1 && r.p == a32);
        mp_reader_init(&r, m32, n);
        CHECK(mp_read(&r, &v) == -1 && r.p == m32);
    }
    CHECK(mp_check(fa, sizeof fa, 1) && mp_check(fm, sizeof fm, 1));
    CHECK(mp_check(a16, sizeof a16, 1) && mp_check(m32, sizeof m32, 1));
    CHECK(!mp_check(fa, sizeof fa - 1, 1));
    CHECK(!mp_check(fa, sizeof fa, 0)); /* an array is one container deep */

    /* The NOTES trap: a 5-byte header declaring 100 million elements. */
    static const uint8_t huge_map[] = {0xdf, 0x05, 0xf5, 0xe1, 0x00, 1, 2, 3, 4},
                         huge_arr[] = {0xdd, 0x05, 0xf5, 0xe1, 0x00, 1, 2, 3, 4},
                         max_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0};
    mp_reader_init(&r, huge_map, sizeof huge_map);
    CHECK(mp_read(&r, &v) == -1 && r.p == huge_map);
    CHECK(mp_skip(&r, 100) == -1);
    mp_reader_init(&r, huge_arr, sizeof huge_arr);
    CHECK(mp_read(&r, &v) == -1);
    CHECK(!mp_check(max_map, sizeof max_map, 100));
    /* Exactly as many bytes as the count needs is fine; one less is not. */
    static const uint8_t m2[] = {0x82, 1, 2, 3, 4}, m2short[] = {0x82, 1, 2, 3};
    mp_reader_init(&r, m2, sizeof m2);
    CHECK(mp_read(&r, &v) == 0 && v.v.n == 2);
    mp_reader_init(&r, m2short, sizeof m2short);
    CHECK(mp_read(&r, &v) == -1);
    /* The trap nested inside a valid-looking outer array. */
    static const uint8_t nested[] = {0x92, 0xc0, 0xdd, 0x05, 0xf5, 0xe1, 0x00, 1};
    CHECK(!mp_check(nested, sizeof nested, 100));
}

static void
test_skip(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    /* {"a": [1, {"b": []}, "x"], "c": nil} then a trailing 7 */
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "c", 1);
    msgpack_pack_nil(&pk);
    size_t item = sb.size;
    msgpack_pack_int(&pk, 7);

    mp_reader_t r;
    mp_reader_init(&r, sb.data, sb.size);
    CHECK(mp_skip(&r, 4) == 0 && mp_reader_left(&r) == 1);
    mp_reader_init(&r, sb.data, sb.size);
    CHECK(mp_skip(&r, 3) == -1 && r.p == (const uint8_t *)sb.data); /* 4 deep */
    CHECK(mp_check(sb.data, item, 4) == 1);
    CHECK(mp_check(sb.data, item, 3) == 0);
    CHECK(mp_check(sb.data, sb.size, 4) == 0); /* trailing byte */
    for (size_t n = 0; n < item; n++)
        CHECK(mp_check(sb.data, n, 4) == 0);
    static const uint8_t scalar[] = {0x05};
    CHECK(mp_check(scalar, 1, 0) == 1);
    CHECK(mp_check(scalar, 1, -1) == 1);
    msgpack_sbuffer_destroy(&sb);

    /* Deep nesting: 100,000 one-element arrays around a nil. mp_skip uses one
     * small stack frame per 64 levels, so this is fine with any max_depth. */
    size_t deep = 100000;
    uint8_t *buf = malloc(deep + 1);
    memset(buf, 0x91, deep);
    buf[deep] = 0xc0;
    CHECK(mp_check(buf, deep + 1, 32) == 0);
    CHECK(mp_check(buf, deep + 1, (int)deep - 1) == 0);
    CHECK(mp_check(buf, deep + 1, (int)deep) == 1);
    CHECK(mp_check(buf, deep + 1, 1 << 30) == 1);
    CHECK(mp_check(buf, deep, 1 << 30) == 0); /* missing the innermost nil */
    /* The same with maps: {nil: {nil: ... }} */
    uint8_t *mbuf = malloc(2 * deep + 1);
    for (size_t i = 0; i < deep; i++) {
        mbuf[2 * i] = 0x81;
        mbuf[2 * i + 1] = 0xc0;
    }
    mbuf[2 * deep] = 0xc0;
    CHECK(mp_check(mbuf, 2 * deep + 1, (int)deep) == 1);
    CHECK(mp_check(mbuf, 2 * deep + 1, 64) == 0);
    CHECK(mp_check(mbuf, 2 * deep + 1, 65) == 0);
    /* Exactly at the depth of one stack frame and around it. */
    for (int d = 60; d < 200; d++) {
        CHECK(mp_check(buf + deep - d, (size_t)d + 1, d) == 1);
        CHECK(mp_check(buf + deep - d, (size_t)d + 1, d - 1) == 0);
    }
    free(mbuf);

    free(buf);

    /* Wide: an array of 100,000 empty maps (each counts one level). */
    size_t n = 5 + 100000;
    buf = malloc(n);
    buf[0] = 0xdd;
    buf[1] = 0x00;
    buf[2] = 0x01;
    buf[3] = 0x86;
    buf[4] = 0xa0;
    memset(buf + 5, 0x80, 100000);
    CHECK(mp_check(buf, n, 2) == 1);
    CHECK(mp_check(buf, n, 1) == 0);
    free(buf);
}

/*  Random bytes: never crash; whatever mp_skip accepts, a manual walk with
 *  mp_read accepts to the same end. */
static void
test_random(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint8_t buf[64];
    int accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = 1 + iter % 64;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint8_t b = (uint8_t)(seed >> 56);
            /* Bias towards small items so that some inputs are complete. */
            buf[i] = (seed >> 40) % 3 == 0 ? (uint8_t)(b & 0x9f) : b;
        }
        mp_reader_t r;
        mp_reader_init(&r, buf, len);
        if (mp_skip(&r, 8) != 0) {
            CHECK(r.p == buf);
            continue;
        }
        accepted++;
        const uint8_t *end = r.p;
        mp_reader_init(&r, buf, len);
        uint64_t pending = 1;
        int ok = 1;
        while (pending > 0 && ok) {
            mp_value_t v;
            ok = mp_read(&r, &v) == 0;
            pending--;
            if (ok && v.type == MP_ARRAY)
                pending += v.v.n;
            if (ok && v.type == MP_MAP)
                pending += 2 * (uint64_t)v.v.n;
        }
        CHECK(ok && r.p == end);
    }
    CHECK(accepted > 1000);
}

int
main(void)
{
    test_ints();
    test_scalars();
    test_str_bin();
    test_ext();
    test_containers();
    test_skip();
    test_random();
    return check_report();
}
