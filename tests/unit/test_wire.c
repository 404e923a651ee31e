/*  test_wire.c: the broker <-> gateway messages (common/wire.c): every
 *  message packed and read back, the strict reading of sync requests (what
 *  the broker takes from a gateway), the lenient reading of answers and
 *  control messages (unknown keys skipped), and refusals of bad input. */
#include <string.h>

#include "check.h"
#include "mbuild.h"
#include "wire.h"

static int
eq(event_text_t t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.p, s, t.len) == 0;
}

static void
test_control(void)
{
    buf_t b;
    buf_init(&b);
    wire_control_t c;
    wire_pack_control(&b, "e1", "boot7", 1700000000000);
    CHECK(buf_ok(&b) && wire_read_control(b.data, b.len, &c) == 0);
    CHECK(eq(c.epoch, "e1") && eq(c.boot, "boot7") && c.ts == 1700000000000);
    buf_reset(&b);
    wire_pack_control(&b, "e2", NULL, 0); /* a confirmation */
    CHECK(wire_read_control(b.data, b.len, &c) == 0 && eq(c.epoch, "e2") && c.boot.len == 0);
    CHECK(wire_read_control(b.data, b.len - 1, &c) != 0); /* truncated */
    buf_free(&b);

    mb_t m;
    mb_init(&m);
    mb_map(&m, 2); /* unknown keys are skipped, even containers */
    mb_str(&m, "future");
    mb_array(&m, 1);
    msgpack_pack_int(&m.pk, 1);
    mb_str(&m, "epoch");
    mb_str(&m, "e3");
    CHECK(wire_read_control(m.sb.data, m.sb.size, &c) == 0 && eq(c.epoch, "e3"));
    mb_reset(&m);
    mb_map(&m, 1); /* no epoch */
    mb_str(&m, "boot");
    mb_str(&m, "b");
    CHECK(wire_read_control(m.sb.data, m.sb.size, &c) != 0);
    mb_reset(&m);
    mb_map(&m, 1); /* an epoch longer than any epoch */
    mb_str(&m, "epoch");
    char big[EVENT_EPOCH_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mb_str(&m, big);
    CHECK(wire_read_control(m.sb.data, m.sb.size, &c) != 0);
    mb_free(&m);
}

static void
test_sync_request(void)
{
    buf_t b;
    buf_init(&b);
    wire_sync_req_t in = {.req = 9, .user_id = {"u-1", 3}}, out;
    int has_req;
    wire_pack_sync_req(&b, &in);
    CHECK(wire_read_sync_req(b.data, b.len, &out, &has_req) == 0 && has_req);
    CHECK(out.req == 9 && eq(out.user_id, "u-1") && !out.has_since && !out.stats);
    buf_reset(&b);
    in.has_since = 1;
    in.since = 41;
    in.epoch = (event_text_t){"ep.2", 4};
    wire_pack_sync_req(&b, &in);
    CHECK(wire_read_sync_req(b.data, b.len, &out, &has_req) == 0);
    CHECK(out.has_since && out.since == 41 && eq(out.epoch, "ep.2"));
    buf_reset(&b);
    wire_pack_sync_req(&b, &(wire_sync_req_t){.req = 3, .stats = 1});
    CHECK(wire_read_sync_req(b.data, b.len, &out, &has_req) == 0 && out.stats && out.req == 3);
    /* trailing bytes, a bad user id, no req */
    buf_append_char(&b, 0);
    CHECK(wire_read_sync_req(b.data, b.len, &out, &has_req) != 0 && has_req);
    buf_reset(&b);
    wire_pack_sync_req(&b, &(wire_sync_req_t){.req = 4, .user_id = {"a b", 3}});
    CHECK(wire_read_sync_req(b.data, b.len, &out, &has_req) != 0 && has_req && out.req == 4);
    mb_t m;
    mb_init(&m);
    mb_map(&m, 1);
    mb_str(&m, "user_id");
    mb_str(&m, "u");
    CHECK(wire_read_sync_req(m.sb.data, m.sb.size, &out, &has_req) != 0 && !has_req);
    mb_free(&m);
    buf_free(&b);
}

static void
test_sync_answer(void)
{
    buf_t b;
    buf_init(&b);
    wire_sync_head_t in = {.req = 5, .user_id = {"u", 1}, .epoch = {"e.1", 3}, .seq = 77,
                           .replay = 1},
                     out;
    wire_pack_sync_head(&b, &in);
    CHECK(wire_read_sync_head(b.data, b.len, &out) == 0);
    CHECK(out.req == 5 && eq(out.user_id, "u") && eq(out.epoch, "e.1") && out.seq == 77);
    CHECK(out.replay && !out.error);
    buf_reset(&b);
    wire_pack_sync_error(&b, 1, 6, "no");
    CHECK(wire_read_sync_head(b.data, b.len, &out) == 0 && out.error && out.req == 6);
    buf_reset(&b);
    wire_pack_sync_error(&b, 0, 0, "unreadable");
    CHECK(wire_read_sync_head(b.data, b.len, &out) != 0); /* no req: for nobody */

    msgpack_packer pk;
    buf_reset(&b);
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    wire_pack_stats_begin(&pk, 1, 2);
    wire_pack_kv_u64(&pk, "accepted", 12);
    wire_pack_kv_str(&pk, "epoch", "e", 1);
    mp_reader_t r;
    uint32_t n;
    mp_value_t k, v;
    CHECK(wire_read_stats(b.data, b.len, &r, &n) == 0 && n == 2);
    CHECK(mp_read_pair(&r, &k, &v, 4) == 0 && mp_str_eq(&k, "accepted") && v.v.u == 12);
    CHECK(mp_read_pair(&r, &k, &v, 4) == 0 && mp_str_eq(&k, "epoch") && mp_str_eq(&v, "e"));
    buf_free(&b);
}

int
main(void)
{
    test_control();
    test_sync_request();
    test_sync_answer();
    return check_report();
}
