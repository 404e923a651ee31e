/*  fuzz_mpread.c: the msgpack reader (common/mpread.c) on arbitrary bytes.
 *
 *  - mp_read(): on success it moved forward within the input, a string,
 *    binary or extension payload lies inside the input, and a container
 *    count fits in the bytes left; on failure the reader did not move.
 *  - mp_skip() agrees with a plain recursive walk (written here over
 *    mp_read) at every depth limit tried, including those past the 64
 *    levels one stack frame of mp_skip() tracks: same verdict, same end.
 *  - mp_check() is "mp_skip() succeeds and nothing is left".
 *  - mp_read_pair() takes a string key and a value ending where mp_skip()
 *    would end it.
 */
#include <string.h>

#include "fuzz.h"
#include "mpread.h"

static const int s_depths[] = {0, 1, 2, 4, 32, 63, 64, 65, 66, 130, 200};

/*  The reference: skips one item, containers at most depth deep. */
static int
s_ref_skip(mp_reader_t *r, int depth)
{
    mp_value_t v;
    if (mp_read(r, &v) != 0)
        return -1;
    if (v.type != MP_ARRAY && v.type != MP_MAP)
        return 0;
    if (depth < 1)
        return -1;
    uint64_t items = v.type == MP_MAP ? (uint64_t)v.v.n * 2 : v.v.n;
    for (uint64_t i = 0; i < items; i++)
        if (s_ref_skip(r, depth - 1) != 0)
            return -1;
    return 0;
}

static void
s_check_read(const uint8_t *data, size_t size)
{
    mp_reader_t r;
    mp_reader_init(&r, data, size);
    /* Read the items one header after another, as a flat stream. */
    for (;;) {
        mp_reader_t before = r;
        mp_value_t v;
        if (mp_read(&r, &v) != 0) {
            FUZZ_CHECK(r.p == before.p && r.end == before.end);
            break;
        }
        FUZZ_CHECK(r.p > before.p && r.p <= r.end && r.end == data + size);
        switch (v.type) {
        case MP_STR:
        case MP_BIN:
            FUZZ_CHECK(fuzz_within(v.v.s.p, v.v.s.len, before.p, (size_t)(r.p - before.p)));
            FUZZ_CHECK((const uint8_t *)v.v.s.p + v.v.s.len == r.p);
            break;
        case MP_EXT:
            FUZZ_CHECK(fuzz_within(v.v.ext.p, v.v.ext.len, before.p, (size_t)(r.p - before.p)));
            FUZZ_CHECK(v.v.ext.p + v.v.ext.len == r.p);
            break;
        case MP_ARRAY:
            FUZZ_CHECK(v.v.n <= mp_reader_left(&r));
            break;
        case MP_MAP:
            FUZZ_CHECK((uint64_t)v.v.n * 2 <= mp_reader_left(&r));
            break;
        case MP_INT:
            FUZZ_CHECK(v.v.i < 0); /* one representation per value */
            break;
        default:
            break;
        }
    }
}

static void
s_check_skip(const uint8_t *data, size_t size)
{
    int ok_before = 0;
    const uint8_t *end_before = NULL;
    for (size_t i = 0; i < sizeof s_depths / sizeof s_depths[0]; i++) {
        int depth = s_depths[i];
        mp_reader_t r, ref;
        mp_reader_init(&r, data, size);
        mp_reader_init(&ref, data, size);
        int ok = mp_skip(&r, depth) == 0;
        int ref_ok = s_ref_skip(&ref, depth) == 0;
        if (ok != ref_ok)
            fprintf(stderr, "depth %d: mp_skip %d, reference %d\n", depth, ok, ref_ok);
        FUZZ_CHECK(ok == ref_ok);
        if (ok)
            FUZZ_CHECK(r.p == ref.p && r.p > data);
        else
            FUZZ_CHECK(r.p == data); /* unchanged */
        /* A larger limit never turns success into failure. */
        if (ok_before)
            FUZZ_CHECK(ok && r.p == end_before);
        ok_before = ok;
        end_before = r.p;
        FUZZ_CHECK(mp_check(data, size, depth) == (ok && r.p == data + size));
    }
}

static void
s_check_pair(const uint8_t *data, size_t size)
{
    mp_reader_t r;
    mp_reader_init(&r, data, size);
    for (int i = 0; i < 8; i++) {
        mp_reader_t before = r, ref = r;
        mp_value_t key, val;
        if (mp_read_pair(&r, &key, &val, 8) != 0) {
            FUZZ_CHECK(r.p == before.p);
            return;
        }
        FUZZ_CHECK(key.type == MP_STR && r.p > before.p);
        /* key, then the value skipped whole */
        FUZZ_CHECK(s_ref_skip(&ref, 0) == 0 && s_ref_skip(&ref, 8) == 0 && ref.p == r.p);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_reader_t r;
    mp_value_t v;
    mp_reader_init(&r, NULL, 0);
    FUZZ_CHECK(mp_reader_left(&r) == 0 && mp_read(&r, &v) != 0);
    s_check_read(data, size);
    s_check_skip(data, size);
    s_check_pair(data, size);
    return 0;
}
