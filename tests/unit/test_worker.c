/*  test_worker.c: the worker API: argument checks, the request encoding, the
 *  answer parser, and the resend timing against an endpoint nobody serves.
 *  (Exchanges with a real broker are end-to-end tests.) */
#include "check.h"
#include "clock.h"
#include "taskcast.h"
#include "taskcast_pack.h"

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Nothing listens on port 1 of loopback: every attempt times out. */
#define DEAD_ENDPOINT "tcp://127.0.0.1:1"

static tc_event_t
valid_event(void)
{
    tc_event_t ev = {.task_id = "render-7", .user_id = "2", .status = "running"};
    return ev;
}

static void
test_client_options(void)
{
    tc_client_t *c = NULL;
    CHECK(tc_client_new(NULL, NULL) == TC_EINVAL);

    tc_options_t o = {.endpoint = DEAD_ENDPOINT, .timeout_ms = -1};
    CHECK(tc_client_new(&c, &o) == TC_EINVAL && c == NULL);
    o.timeout_ms = 0;
    o.retries = -2;
    CHECK(tc_client_new(&c, &o) == TC_EINVAL && c == NULL);
    o.retries = 0;
    o.producer = "";
    CHECK(tc_client_new(&c, &o) == TC_EINVAL);
    o.producer = "bad\nid";
    CHECK(tc_client_new(&c, &o) == TC_EINVAL);
    char longid[TC_PRODUCER_MAX + 2];
    memset(longid, 'p', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    o.producer = longid;
    CHECK(tc_client_new(&c, &o) == TC_EINVAL);
    longid[TC_PRODUCER_MAX] = '\0'; /* exactly the maximum is fine */
    CHECK(tc_client_new(&c, &o) == TC_OK && c != NULL);
    CHECK_STR(tc_client_producer(c), longid);
    tc_client_destroy(&c);
    CHECK(c == NULL);
    tc_client_destroy(&c); /* twice is harmless */

    o.producer = NULL;
    o.endpoint = "not an endpoint";
    CHECK(tc_client_new(&c, &o) == TC_EINVAL && c == NULL);

    /* Default producer: "w-" and 16 hex digits, different per client. */
    o.endpoint = DEAD_ENDPOINT;
    tc_client_t *d = NULL;
    CHECK(tc_client_new(&c, &o) == TC_OK);
    CHECK(tc_client_new(&d, NULL) == TC_OK); /* all defaults */
    const char *p = tc_client_producer(c);
    CHECK(p && strlen(p) == 18 && strncmp(p, "w-", 2) == 0 &&
          strspn(p + 2, "0123456789abcdef") == 16);
    CHECK(strcmp(p, tc_client_producer(d)) != 0);
    tc_client_destroy(&c);
    tc_client_destroy(&d);
}

static void
test_publish_einval(void)
{
    tc_options_t o = {.endpoint = DEAD_ENDPOINT, .timeout_ms = 50, .retries = -1};
    tc_client_t *c = NULL;
    CHECK(tc_client_new(&c, &o) == TC_OK);
    tc_reply_t r;
    tc_event_t ev = valid_event();

    CHECK(tc_publish(NULL, &ev, &r) == TC_EINVAL);
    CHECK(tc_publish(c, NULL, &r) == TC_EINVAL);

    const char *bad_status[] = {"", "done", "RUNNING", "running ", "succeed"};
    for (size_t i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
        ev = valid_event();
        ev.status = bad_status[i];
        CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);
    }
    ev = valid_event();
    ev.status = NULL;
    CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);
    ev = valid_event();
    ev.task_id = NULL;
    CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);
    ev.task_id = "";
    CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);
    ev = valid_event();
    ev.user_id = NULL;
    CHECK(tc_publish(c, &ev, NULL) == TC_EINVAL);
    ev.user_id = "";
    CHECK(tc_publish(c, &ev, NULL) == TC_EINVAL);

    const double bad_progress[] = {NAN, INFINITY, -INFINITY, -1, -0.001, 100.001, 1e300};
    for (size_t i = 0; i < sizeof bad_progress / sizeof bad_progress[0]; i++) {
        ev = valid_event();
        ev.has_progress = 1;
        ev.progress = bad_progress[i];
        CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);
    }
    ev = valid_event();
    ev.progress = NAN; /* not sent: not checked */
    ev.ts = -1;
    CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);

    /* data must be exactly one well-formed msgpack item */
    const unsigned char reserved[] = {0xc1};
    const unsigned char truncated[] = {0x92, 0x01};
    const unsigned char trailing[] = {0x01, 0x02};
    const unsigned char huge_count[] = {0xdd, 0x7f, 0xff, 0xff, 0xff};
    struct {
        const void *p;
        size_t len;
    } bad_data[] = {{reserved, 1},   {truncated, 2}, {trailing, 2},
                    {huge_count, 5}, {reserved, 0},  {NULL, 3}};
    for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
        ev = valid_event();
        ev.data = bad_data[i].p;
        ev.data_len = bad_data[i].len;
        CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);
    }
    unsigned char deep[TC_DATA_DEPTH_MAX + 2];
    memset(deep, 0x91, sizeof deep - 1); /* [[[[...1...]]]] too deep */
    deep[sizeof deep - 1] = 0x01;
    ev = valid_event();
    ev.data = deep;
    ev.data_len = sizeof deep;
    CHECK(tc_publish(c, &ev, &r) == TC_EINVAL);

    /* The valid edge values pass the checks (and then time out: no broker);
     * rejected calls did not use a pseq. */
    const double good_progress[] = {0, -0.0, 100, 42.5};
    for (size_t i = 0; i < sizeof good_progress / sizeof good_progress[0]; i++) {
        ev = valid_event();
        ev.has_progress = 1;
        ev.progress = good_progress[i];
        ev.data = deep + 2; /* nested to the limit */
        ev.data_len = sizeof deep - 2;
        CHECK(tc_publish(c, &ev, &r) == TC_ETIMEOUT);
        CHECK(r.pseq == i + 1 && r.ok == 0);
    }
    tc_client_destroy(&c);
}

static void
test_publish_timeout(void)
{
    /* Lazy pirate: first attempt plus `retries` resends, each timeout_ms. */
    tc_options_t o = {.endpoint = DEAD_ENDPOINT, .timeout_ms = 60, .retries = 2};
    tc_client_t *c = NULL;
    CHECK(tc_client_new(&c, &o) == TC_OK);
    tc_event_t ev = valid_event();
    tc_reply_t r;
    int64_t t0 = clock_mono_ms();
    CHECK(tc_publish(c, &ev, &r) == TC_ETIMEOUT);
    int64_t took = clock_mono_ms() - t0;
    CHECK(took >= 3 * 60 - 5 && took < 3 * 60 + 1000);
    CHECK(r.pseq == 1);
    CHECK(tc_publish(c, &ev, &r) == TC_ETIMEOUT); /* a fresh socket again */
    CHECK(r.pseq == 2);
    tc_client_destroy(&c);

    o.retries = -1; /* no resend */
    CHECK(tc_client_new(&c, &o) == TC_OK);
    t0 = clock_mono_ms();
    CHECK(tc_publish(c, &ev, NULL) == TC_ETIMEOUT);
    took = clock_mono_ms() - t0;
    CHECK(took >= 60 - 5 && took < 60 + 1000);
    tc_client_destroy(&c);

    CHECK_STR(tc_strerror(TC_ETIMEOUT), "the broker did not answer in time, after every retry");
    CHECK(tc_strerror(12345) != NULL);
}

/*  Unpacks one item with msgpack-c (a second, independent decoder). */
static int
unpack(msgpack_unpacked *u, const buf_t *b)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    return msgpack_unpack_next(u, b->data, b->len, &off) == MSGPACK_UNPACK_SUCCESS && off == b->len;
}

static int
key_is(const msgpack_object_kv *kv, const char *key)
{
    return kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
           memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0;
}

static int
str_is(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, strlen(s)) == 0;
}

static void
test_pack_minimal(void)
{
    /* Byte for byte: fixmap 5, fixstr keys and values, positive fixint. */
    static const unsigned char want[] = {
        0x85, 0xa7, 't',  'a', 's', 'k',  '_',  'i',  'd',  0xa1, 't', 0xa7, 'u',
        's',  'e',  'r',  '_', 'i', 'd',  0xa1, '2',  0xa6, 's',  't', 'a',  't',
        'u',  's',  0xa6, 'q', 'u', 'e',  'u',  'e',  'd',  0xa8, 'p', 'r',  'o',
        'd',  'u',  'c',  'e', 'r', 0xa1, 'p',  0xa4, 'p',  's',  'e', 'q',  0x01};
    tc_event_t ev = {.task_id = "t", .user_id = "2", .status = "queued"};
    CHECK(tc_event_check(&ev) == 0);
    buf_t b;
    buf_init(&b);
    CHECK(tc_pack_event(&ev, "p", 1, &b) == 0);
    CHECK(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0);
    buf_free(&b);
}

static void
test_pack_full(void)
{
    /* data = {"a": [1, -2, 18446744073709551615]} packed by msgpack-c */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "a", 1);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, -2);
    msgpack_pack_uint64(&pk, UINT64_MAX);

    tc_event_t ev = {.task_id = "import-3",
                     .user_id = "user.name_9-x",
                     .status = "failed",
                     .has_progress = 1,
                     .progress = 42,
                     .message = "disk full",
                     .data = sb.data,
                     .data_len = sb.size,
                     .ts = 1790000000123};
    buf_t b;
    buf_init(&b);
    CHECK(tc_event_check(&ev) == 0);
    CHECK(tc_pack_event(&ev, "w-0123456789abcdef", UINT64_MAX, &b) == 0);
    /* data is appended as is */
    CHECK(b.len > sb.size && memmem(b.data, b.len, sb.data, sb.size) != NULL);

    msgpack_unpacked u;
    CHECK(unpack(&u, &b));
    msgpack_object *o = &u.data;
    static const char *const keys[] = {"task_id", "user_id", "status",   "progress", "message",
                                       "data",    "ts",      "producer", "pseq"};
    CHECK(o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 9);
    if (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 9) {
        msgpack_object_kv *kv = o->via.map.ptr;
        for (size_t i = 0; i < 9; i++)
            CHECK(key_is(&kv[i], keys[i]));
        CHECK(str_is(&kv[0].val, "import-3"));
        CHECK(str_is(&kv[1].val, "user.name_9-x"));
        CHECK(str_is(&kv[2].val, "failed"));
        CHECK(kv[3].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv[3].val.via.u64 == 42);
        CHECK(str_is(&kv[4].val, "disk full"));
        CHECK(kv[5].val.type == MSGPACK_OBJECT_MAP && kv[5].val.via.map.size == 1);
        CHECK(kv[6].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              kv[6].val.via.u64 == 1790000000123ULL);
        CHECK(str_is(&kv[7].val, "w-0123456789abcdef"));
        CHECK(kv[8].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv[8].val.via.u64 == UINT64_MAX);
    }
    msgpack_unpacked_destroy(&u);

    /* A fraction is a float64; whole numbers (also -0.0 and 100) integers. */
    const struct {
        double in;
        int is_int;
    } cases[] = {{42.5, 0}, {0.1, 0}, {99.99, 0}, {0, 1}, {-0.0, 1}, {100, 1}, {7.0, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tc_event_t e = {.task_id = "t",
                        .user_id = "u",
                        .status = "running",
                        .has_progress = 1,
                        .progress = cases[i].in};
        buf_reset(&b);
        CHECK(tc_pack_event(&e, "p", 1, &b) == 0);
        CHECK(unpack(&u, &b));
        msgpack_object_kv *kv = u.data.via.map.ptr;
        CHECK(u.data.via.map.size == 6 && key_is(&kv[3], "progress"));
        if (cases[i].is_int)
            CHECK(kv[3].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                  kv[3].val.via.u64 == (uint64_t)cases[i].in);
        else
            CHECK(kv[3].val.type == MSGPACK_OBJECT_FLOAT64 && kv[3].val.via.f64 == cases[i].in);
        msgpack_unpacked_destroy(&u);
    }
    buf_free(&b);
    msgpack_sbuffer_destroy(&sb);
}

/*  Answer builder: a map of n pairs, written by the caller into sb. */
static void
pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

static int
parse(const msgpack_sbuffer *sb, tc_reply_t *r, int *has_pseq)
{
    return tc_reply_parse(sb->data, sb->size, r, has_pseq);
}

static void
test_reply(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    tc_reply_t r;
    int has_pseq;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    /* {"ok": true, "pseq": 7, "seq": 17} */
    msgpack_pack_map(&pk, 3);
    pack_key(&pk, "ok");
    msgpack_pack_true(&pk);
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, 7);
    pack_key(&pk, "seq");
    msgpack_pack_uint64(&pk, 17);
    CHECK(parse(&sb, &r, &has_pseq) == 0);
    CHECK(r.ok == 1 && r.pseq == 7 && r.seq == 17 && has_pseq && !r.duplicate);
    /* trailing bytes and every truncation are refused */
    msgpack_pack_nil(&pk);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    for (size_t n = 0; n < sb.size - 1; n++)
        CHECK(tc_reply_parse(sb.data, n, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);

    /* duplicate, keys in another order, an unknown nested key skipped */
    msgpack_pack_map(&pk, 5);
    pack_key(&pk, "seq");
    msgpack_pack_uint64(&pk, 4);
    pack_key(&pk, "later");
    msgpack_pack_map(&pk, 1);
    pack_key(&pk, "x");
    msgpack_pack_array(&pk, 2);
    msgpack_pack_nil(&pk);
    msgpack_pack_double(&pk, 1.5);
    pack_key(&pk, "duplicate");
    msgpack_pack_true(&pk);
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    pack_key(&pk, "ok");
    msgpack_pack_true(&pk);
    CHECK(parse(&sb, &r, &has_pseq) == 0);
    CHECK(r.ok && r.duplicate && r.seq == 4 && r.pseq == UINT64_MAX && has_pseq);
    msgpack_sbuffer_clear(&sb);

    /* rejection with pseq; a long detail with a newline is cut and cleaned */
    char detail[400];
    memset(detail, 'd', sizeof detail);
    detail[3] = '\n';
    msgpack_pack_map(&pk, 4);
    pack_key(&pk, "ok");
    msgpack_pack_false(&pk);
    pack_key(&pk, "error");
    pack_key(&pk, "invalid_value");
    pack_key(&pk, "detail");
    msgpack_pack_str(&pk, sizeof detail);
    msgpack_pack_str_body(&pk, detail, sizeof detail);
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, 3);
    CHECK(parse(&sb, &r, &has_pseq) == 0);
    CHECK(!r.ok && has_pseq && r.pseq == 3);
    CHECK_STR(r.error, "invalid_value");
    CHECK(strlen(r.detail) == sizeof r.detail - 1 && r.detail[3] == '?' && r.detail[4] == 'd');
    msgpack_sbuffer_clear(&sb);

    /* rejection without pseq (the broker could not read the event) */
    msgpack_pack_map(&pk, 2);
    pack_key(&pk, "ok");
    msgpack_pack_false(&pk);
    pack_key(&pk, "error");
    pack_key(&pk, "malformed");
    CHECK(parse(&sb, &r, &has_pseq) == 0);
    CHECK(!r.ok && !has_pseq && r.detail[0] == '\0');
    CHECK_STR(r.error, "malformed");
    msgpack_sbuffer_clear(&sb);

    /* shapes that are not understood */
    msgpack_pack_array(&pk, 0); /* not a map */
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2); /* ok:true without seq */
    pack_key(&pk, "ok");
    msgpack_pack_true(&pk);
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, 1);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2); /* no ok */
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, 1);
    pack_key(&pk, "seq");
    msgpack_pack_uint64(&pk, 1);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1); /* ok:false without error */
    pack_key(&pk, "ok");
    msgpack_pack_false(&pk);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 3); /* ok is not a boolean */
    pack_key(&pk, "ok");
    msgpack_pack_int(&pk, 1);
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, 1);
    pack_key(&pk, "seq");
    msgpack_pack_uint64(&pk, 1);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 3); /* a negative seq */
    pack_key(&pk, "ok");
    msgpack_pack_true(&pk);
    pack_key(&pk, "pseq");
    msgpack_pack_uint64(&pk, 1);
    pack_key(&pk, "seq");
    msgpack_pack_int(&pk, -1);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1); /* a key that is not a string */
    msgpack_pack_int(&pk, 1);
    msgpack_pack_true(&pk);
    CHECK(parse(&sb, &r, &has_pseq) == -1);
    CHECK(tc_reply_parse("", 0, &r, &has_pseq) == -1);
    msgpack_sbuffer_destroy(&sb);
}

int
main(void)
{
    test_client_options();
    test_publish_einval();
    test_publish_timeout();
    test_pack_minimal();
    test_pack_full();
    test_reply();
    return check_report();
}
