/*  fuzz_wire.c: the broker <-> gateway message readers (common/wire.c) on
 *  arbitrary bytes: what a gateway reads from the broker (control messages,
 *  sync answers), what the broker reads from a gateway (sync requests), and
 *  the stats answer taskcast-cli reads.
 *
 *  Every reader is given the same bytes. What a reader accepts is within
 *  its bounds (strings inside the message, epochs of 1..64 bytes, a valid
 *  user id in a request) and packs again, with the matching wire_pack_*(),
 *  into bytes that read back to the same fields.
 */
#include <string.h>

#include "fuzz.h"
#include "wire.h"

static int
s_text_eq(event_text_t a, event_text_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void
s_control(const uint8_t *data, size_t size)
{
    wire_control_t c, back;
    if (wire_read_control(data, size, &c) != 0)
        return;
    FUZZ_CHECK(c.epoch.len >= 1 && c.epoch.len <= EVENT_EPOCH_MAX);
    FUZZ_CHECK(fuzz_within(c.epoch.p, c.epoch.len, data, size));
    FUZZ_CHECK(c.boot.len <= EVENT_EPOCH_MAX);
    if (c.boot.len)
        FUZZ_CHECK(fuzz_within(c.boot.p, c.boot.len, data, size));
    /* wire_pack_control() takes C strings */
    if (memchr(c.epoch.p, '\0', c.epoch.len) || (c.boot.len && memchr(c.boot.p, '\0', c.boot.len)))
        return;
    char epoch[EVENT_EPOCH_MAX + 1], boot[EVENT_EPOCH_MAX + 1];
    memcpy(epoch, c.epoch.p, c.epoch.len);
    epoch[c.epoch.len] = '\0';
    if (c.boot.len)
        memcpy(boot, c.boot.p, c.boot.len);
    boot[c.boot.len] = '\0';
    buf_t b;
    buf_init(&b);
    wire_pack_control(&b, epoch, c.boot.len ? boot : NULL, c.ts);
    FUZZ_CHECK(buf_ok(&b) && wire_read_control(b.data, b.len, &back) == 0);
    FUZZ_CHECK(s_text_eq(back.epoch, c.epoch) && s_text_eq(back.boot, c.boot));
    FUZZ_CHECK(back.ts == (c.boot.len ? c.ts : 0));
    buf_free(&b);
}

static void
s_sync_req(const uint8_t *data, size_t size)
{
    wire_sync_req_t r, back;
    int has_req = -1;
    int rc = wire_read_sync_req(data, size, &r, &has_req);
    FUZZ_CHECK(has_req == 0 || has_req == 1);
    if (rc != 0)
        return;
    FUZZ_CHECK(has_req == 1);
    if (!r.stats)
        FUZZ_CHECK(event_user_id_valid(r.user_id.p, r.user_id.len) &&
                   fuzz_within(r.user_id.p, r.user_id.len, data, size));
    if (r.epoch.len)
        FUZZ_CHECK(fuzz_within(r.epoch.p, r.epoch.len, data, size));
    buf_t b;
    buf_init(&b);
    wire_pack_sync_req(&b, &r);
    FUZZ_CHECK(buf_ok(&b) && wire_read_sync_req(b.data, b.len, &back, &has_req) == 0);
    FUZZ_CHECK(back.req == r.req && back.stats == r.stats);
    if (!r.stats) {
        FUZZ_CHECK(s_text_eq(back.user_id, r.user_id));
        int resume = r.has_since && r.epoch.len;
        FUZZ_CHECK(back.has_since == resume);
        if (resume)
            FUZZ_CHECK(back.since == r.since && s_text_eq(back.epoch, r.epoch));
    }
    buf_free(&b);
}

static void
s_sync_head(const uint8_t *data, size_t size)
{
    wire_sync_head_t h, back;
    if (wire_read_sync_head(data, size, &h) != 0)
        return;
    if (h.error)
        return;
    FUZZ_CHECK(h.epoch.len >= 1 && h.epoch.len <= EVENT_EPOCH_MAX && h.user_id.len >= 1);
    FUZZ_CHECK(fuzz_within(h.epoch.p, h.epoch.len, data, size));
    FUZZ_CHECK(fuzz_within(h.user_id.p, h.user_id.len, data, size));
    buf_t b;
    buf_init(&b);
    wire_pack_sync_head(&b, &h);
    FUZZ_CHECK(buf_ok(&b) && wire_read_sync_head(b.data, b.len, &back) == 0);
    FUZZ_CHECK(back.req == h.req && back.seq == h.seq && back.replay == h.replay && !back.error);
    FUZZ_CHECK(s_text_eq(back.user_id, h.user_id) && s_text_eq(back.epoch, h.epoch));
    buf_free(&b);
}

/*  As taskcast-cli stats reads the answer: every pair of the stats map. */
static void
s_stats(const uint8_t *data, size_t size)
{
    mp_reader_t pairs;
    uint32_t n = 0;
    if (wire_read_stats(data, size, &pairs, &n) != 0)
        return;
    FUZZ_CHECK(pairs.p >= data && pairs.end == data + size);
    FUZZ_CHECK((uint64_t)n * 2 <= mp_reader_left(&pairs));
    for (uint32_t i = 0; i < n; i++) {
        mp_value_t key, val;
        if (mp_read_pair(&pairs, &key, &val, 4) != 0)
            break;
        FUZZ_CHECK(key.type == MP_STR && fuzz_within(key.v.s.p, key.v.s.len, data, size));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_control(data, size);
    s_sync_req(data, size);
    s_sync_head(data, size);
    s_stats(data, size);
    return 0;
}
