/*  test_event.c: event decoding and validation, the published form. */
#include "check.h"
#include "event.h"
#include "mbuild.h"

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*  The three required fields of a worker event (3 map entries). */
static void
mb_required(mb_t *m)
{
    mb_str(m, "task_id");
    mb_str(m, "t-1");
    mb_str(m, "user_id");
    mb_str(m, "42");
    mb_str(m, "status");
    mb_str(m, "running");
}

/*  The required fields of the published form (6 map entries). */
static void
mb_required_broker(mb_t *m)
{
    mb_required(m);
    mb_str(m, "ts");
    msgpack_pack_uint64(&m->pk, 1700000000000ull);
    mb_str(m, "seq");
    msgpack_pack_uint64(&m->pk, 9);
    mb_str(m, "epoch");
    mb_str(m, "e1");
}

static int
printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/*  1 if the bytes are rejected with code and a detail containing needle. */
static int
rejects_(const mb_t *m, event_origin_t origin, const char *code, const char *needle, int line)
{
    event_t ev;
    event_error_t err;
    int rc = event_decode(&ev, m->sb.data, m->sb.size, origin, &err);
    int ok = rc == -1 && err.code && strcmp(err.code, code) == 0 &&
             strstr(err.detail, needle) != NULL && printable(err.detail) && err.detail[0];
    if (!ok)
        fprintf(stderr, "line %d: want %s (%s), got rc %d %s: %s\n", line, code, needle, rc,
                err.code ? err.code : "(none)", err.detail);
    return ok;
}

static int
accepts_(const mb_t *m, event_origin_t origin, event_t *ev, int line)
{
    event_error_t err;
    int rc = event_decode(ev, m->sb.data, m->sb.size, origin, &err);
    if (rc != 0)
        fprintf(stderr, "line %d: rejected: %s: %s\n", line, err.code, err.detail);
    return rc == 0 && err.code == NULL;
}

#define REJECTS(m, origin, code, needle) CHECK(rejects_(&(m), origin, code, needle, __LINE__))
#define ACCEPTS(m, origin, ev)           CHECK(accepts_(&(m), origin, ev, __LINE__))
#define W                                EVENT_FROM_WORKER
#define B                                EVENT_FROM_BROKER

static int
text_eq(event_text_t t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.p, s, t.len) == 0;
}

static void
test_minimal_and_full(void)
{
    mb_t m;
    event_t ev;
    mb_init(&m);
    mb_map(&m, 3);
    mb_required(&m);
    ACCEPTS(m, W, &ev);
    CHECK(text_eq(ev.task_id, "t-1") && text_eq(ev.user_id, "42"));
    CHECK(ev.task_id.p > m.sb.data && ev.task_id.p < m.sb.data + m.sb.size); /* in place */
    CHECK(ev.status == EVENT_RUNNING);
    CHECK(!ev.has_progress && !ev.has_message && !ev.data && !ev.has_ts && !ev.has_producer);
    CHECK(ev.seq == 0 && ev.epoch.len == 0);

    /* Every field, in an unusual order. */
    mb_reset(&m);
    mb_map(&m, 9);
    mb_str(&m, "pseq");
    msgpack_pack_uint64(&m.pk, 77);
    mb_str(&m, "data");
    mb_map(&m, 1);
    mb_str(&m, "k");
    mb_array(&m, 2);
    msgpack_pack_int(&m.pk, -1);
    msgpack_pack_true(&m.pk);
    mb_str(&m, "status");
    mb_str(&m, "succeeded");
    mb_str(&m, "message");
    mb_str(&m, "line 1\nline 2\t\x01");
    mb_str(&m, "progress");
    msgpack_pack_uint8(&m.pk, 100);
    mb_str(&m, "task_id");
    mb_str(&m, "t\xc3\xa2"
               "che \xe2\x9c\x93 \xf0\x9f\x98\x80");
    mb_str(&m, "ts");
    msgpack_pack_int64(&m.pk, 1700000000123ll);
    mb_str(&m, "producer");
    mb_str(&m, "w-7!~");
    mb_str(&m, "user_id");
    mb_str(&m, "Az09_.-");
    ACCEPTS(m, W, &ev);
    CHECK(ev.status == EVENT_SUCCEEDED);
    CHECK(ev.has_progress && ev.progress.type == MP_UINT && ev.progress.v.u == 100);
    CHECK(ev.has_message && text_eq(ev.message, "line 1\nline 2\t\x01"));
    CHECK(ev.data && ev.data_len == 6 && (uint8_t)ev.data[0] == 0x81);
    CHECK(ev.has_ts && ev.ts == 1700000000123ll);
    CHECK(ev.has_producer && text_eq(ev.producer, "w-7!~") && ev.pseq == 77);
    CHECK(text_eq(ev.user_id, "Az09_.-"));

    /* Each status. */
    static const char *const names[] = {"queued", "running", "succeeded", "failed", "cancelled"};
    for (int i = 0; i < 5; i++) {
        mb_reset(&m);
        mb_map(&m, 3);
        mb_str(&m, "task_id");
        mb_str(&m, "t");
        mb_str(&m, "user_id");
        mb_str(&m, "u");
        mb_str(&m, "status");
        mb_str(&m, names[i]);
        ACCEPTS(m, W, &ev);
        CHECK((int)ev.status == i);
        CHECK_STR(event_status_name((event_status_t)i), names[i]);
        CHECK(event_status_is_terminal((event_status_t)i) == (i >= 2));
    }
    CHECK_STR(event_status_name((event_status_t)99), "unknown");

    /* err may be NULL; ev is cleared on every call. */
    CHECK(event_decode(&ev, "\x90", 1, W, NULL) == -1);
    mb_free(&m);
}

/*  decode -> pack_published -> decode(FROM_BROKER): the same fields. */
static void
round_trip(const mb_t *m, int line)
{
    event_t a, b;
    event_error_t err;
    buf_t out;
    buf_init(&out);
    int ok = event_decode(&a, m->sb.data, m->sb.size, W, &err) == 0;
    buf_append(&out, "junk", 4); /* pack appends */
    ok = ok && event_pack_published(&a, 555, 12345678901234ull, "ep-1", 4, &out) == 0;
    ok = ok && memcmp(out.data, "junk", 4) == 0;
    ok = ok && event_decode(&b, out.data + 4, out.len - 4, B, &err) == 0;
    if (!ok) {
        fprintf(stderr, "line %d: round trip failed: %s\n", line, err.detail);
        CHECK(0);
        buf_free(&out);
        return;
    }
    CHECK(b.task_id.len == a.task_id.len && memcmp(b.task_id.p, a.task_id.p, a.task_id.len) == 0);
    CHECK(b.user_id.len == a.user_id.len && memcmp(b.user_id.p, a.user_id.p, a.user_id.len) == 0);
    CHECK(b.status == a.status);
    CHECK(b.has_progress == a.has_progress);
    if (a.has_progress) {
        CHECK(b.progress.type == a.progress.type);
        if (a.progress.type == MP_FLOAT)
            CHECK(b.progress.v.f == a.progress.v.f);
        else
            CHECK(b.progress.v.u == a.progress.v.u);
    }
    CHECK(b.has_message == a.has_message);
    CHECK(b.message.len == a.message.len &&
          (a.message.len == 0 || memcmp(b.message.p, a.message.p, a.message.len) == 0));
    CHECK((b.data == NULL) == (a.data == NULL));
    CHECK(b.data_len == a.data_len && (!a.data || memcmp(b.data, a.data, a.data_len) == 0));
    CHECK(b.has_ts && b.ts == (a.has_ts ? a.ts : 555));
    CHECK(b.seq == 12345678901234ull && text_eq(b.epoch, "ep-1"));
    CHECK(!b.has_producer && b.pseq == 0);
    buf_free(&out);
}

static void
test_round_trip(void)
{
    mb_t m;
    mb_init(&m);
    mb_map(&m, 3);
    mb_required(&m);
    round_trip(&m, __LINE__);

    mb_reset(&m);
    mb_map(&m, 9);
    mb_required(&m);
    mb_str(&m, "progress");
    msgpack_pack_double(&m.pk, 42.5);
    mb_str(&m, "message");
    mb_str(&m, "");
    mb_str(&m, "data");
    mb_array(&m, 3);
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    msgpack_pack_int64(&m.pk, INT64_MIN);
    msgpack_pack_bin_with_body(&m.pk, "\0\1", 2);
    mb_str(&m, "ts");
    msgpack_pack_uint64(&m.pk, 0);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    mb_str(&m, "pseq");
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    round_trip(&m, __LINE__);

    /* Progress keeps its kind: float 32, float 64, integer. */
    for (int kind = 0; kind < 4; kind++) {
        mb_reset(&m);
        mb_map(&m, 4);
        mb_required(&m);
        mb_str(&m, "progress");
        if (kind == 0)
            msgpack_pack_float(&m.pk, 1.1f);
        else if (kind == 1)
            msgpack_pack_double(&m.pk, 1.1);
        else if (kind == 2)
            msgpack_pack_double(&m.pk, 0.0);
        else
            msgpack_pack_fix_uint64(&m.pk, 7);
        round_trip(&m, __LINE__);
    }
    /* data of every kind, and a data value of exactly the size limit. */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "data");
    char *big = calloc(1, EVENT_DATA_MAX);
    msgpack_pack_bin_with_body(&m.pk, big, EVENT_DATA_MAX - 3); /* bin16 header: 3 bytes */
    round_trip(&m, __LINE__);
    free(big);

    /* pack_published fails cleanly on out of memory. */
    event_t ev;
    mb_reset(&m);
    mb_map(&m, 3);
    mb_required(&m);
    CHECK(event_decode(&ev, m.sb.data, m.sb.size, W, NULL) == 0);
    buf_t out;
    buf_init(&out);
    out.oom = 1;
    CHECK(event_pack_published(&ev, 1, 1, "e", 1, &out) == -1);
    buf_free(&out);
    mb_free(&m);
}

static void
test_structure(void)
{
    mb_t m;
    event_t ev;
    mb_init(&m);

    /* malformed: empty, reserved byte, truncated, trailing bytes */
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");
    mb_raw(&m, "\xc1", 1);
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");
    mb_reset(&m);
    mb_map(&m, 3);
    mb_required(&m);
    msgpack_pack_nil(&m.pk);
    REJECTS(m, W, EVENT_E_MALFORMED, "1 bytes after");
    /* a reserved byte as a value in the middle */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "data");
    mb_raw(&m, "\xc1", 1);
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");

    /* Every strict prefix of a full event is malformed; none crashes. */
    mb_reset(&m);
    mb_map(&m, 9);
    mb_required(&m);
    mb_str(&m, "progress");
    msgpack_pack_double(&m.pk, 50.5);
    mb_str(&m, "message");
    mb_str(&m, "hello");
    mb_str(&m, "data");
    mb_map(&m, 2);
    mb_str(&m, "a");
    mb_array(&m, 2);
    msgpack_pack_float(&m.pk, 2.5f);
    msgpack_pack_bin_with_body(&m.pk, "xyz", 3);
    msgpack_pack_int(&m.pk, -3);
    msgpack_pack_nil(&m.pk);
    mb_str(&m, "ts");
    msgpack_pack_uint64(&m.pk, 1);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    mb_str(&m, "pseq");
    msgpack_pack_uint64(&m.pk, 1);
    ACCEPTS(m, W, &ev);
    int all = 1;
    for (size_t n = 0; n < m.sb.size; n++) {
        event_error_t err;
        /* a copy of exactly n bytes, so ASan sees any overread */
        char *p = malloc(n ? n : 1);
        memcpy(p, m.sb.data, n);
        if (event_decode(&ev, p, n, W, &err) != -1 || strcmp(err.code, EVENT_E_MALFORMED) != 0)
            all = 0;
        free(p);
    }
    CHECK(all);

    /* not_a_map: whatever the first item is */
    mb_reset(&m);
    mb_array(&m, 0);
    REJECTS(m, W, EVENT_E_NOT_A_MAP, "an array");
    mb_reset(&m);
    mb_str(&m, "task_id");
    REJECTS(m, W, EVENT_E_NOT_A_MAP, "a string");
    mb_reset(&m);
    mb_raw(&m, "\x01\x02", 2);
    REJECTS(m, W, EVENT_E_NOT_A_MAP, "an integer");
    mb_reset(&m);
    msgpack_pack_nil(&m.pk);
    REJECTS(m, B, EVENT_E_NOT_A_MAP, "nil");

    /* The NOTES trap: a map32 header declaring 100 million pairs. */
    mb_reset(&m);
    mb_raw(&m, "\xdf\x05\xf5\xe1\x00", 5);
    mb_required(&m);
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");
    /* ... and an array32 of 100 million inside data */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "data");
    mb_raw(&m, "\xdd\x05\xf5\xe1\x00\xc0\xc0", 7);
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");
    /* ... and inside an unknown field's value, after an error */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "zzz");
    mb_raw(&m, "\xdd\x05\xf5\xe1\x00\xc0\xc0", 7);
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");

    /* Precedence: a damaged message is malformed whatever else is wrong. */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_str(&m, "status");
    mb_str(&m, "bogus"); /* a field error first ... */
    mb_str(&m, "task_id");
    mb_str(&m, "t");
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack"); /* ... but two pairs are missing */
    mb_reset(&m);
    mb_map(&m, 3);
    mb_required(&m);
    mb_raw(&m, "\x92", 1); /* trailing, incomplete */
    REJECTS(m, W, EVENT_E_MALFORMED, "after the map");
    /* The first field error in map order wins. */
    mb_reset(&m);
    mb_map(&m, 5);
    mb_required(&m);
    mb_str(&m, "progress");
    mb_str(&m, "x");
    mb_str(&m, "nope");
    msgpack_pack_nil(&m.pk);
    REJECTS(m, W, EVENT_E_WRONG_TYPE, "'progress'");

    /* Too large as a whole. */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "message");
    mb_fill(&m, 'x', EVENT_WIRE_MAX);
    REJECTS(m, W, EVENT_E_TOO_LARGE, "event must be at most");
    mb_free(&m);
}

static void
test_keys(void)
{
    mb_t m;
    mb_init(&m);
    /* Non-string keys: wrong_type (documented in event.h). */
    mb_map(&m, 4);
    mb_required(&m);
    msgpack_pack_int(&m.pk, 1);
    msgpack_pack_int(&m.pk, 2);
    REJECTS(m, W, EVENT_E_WRONG_TYPE, "keys must be strings, not an integer");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_array(&m, 2); /* a container as key is walked, not misread */
    mb_str(&m, "task_id");
    mb_str(&m, "status");
    mb_str(&m, "x");
    mb_required(&m);
    REJECTS(m, W, EVENT_E_WRONG_TYPE, "keys must be strings, not an array");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    msgpack_pack_bin_with_body(&m.pk, "ts", 2);
    msgpack_pack_int(&m.pk, 2);
    REJECTS(m, W, EVENT_E_WRONG_TYPE, "not binary");

    /* Duplicates, also when the first was nil. */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "status");
    mb_str(&m, "running");
    REJECTS(m, W, EVENT_E_DUPLICATE_FIELD, "field 'status' is given more than once");
    mb_reset(&m);
    mb_map(&m, 5);
    mb_str(&m, "message");
    msgpack_pack_nil(&m.pk);
    mb_required(&m);
    mb_str(&m, "message");
    mb_str(&m, "x");
    REJECTS(m, W, EVENT_E_DUPLICATE_FIELD, "'message'");

    /* Unknown fields: named, escaped, truncated. */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "colour");
    mb_str(&m, "red");
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "unknown field 'colour'");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "a\x01'\\\xc3\xa9\n\x7f");
    msgpack_pack_nil(&m.pk);
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "'a\\x01\\x27\\x5c\\xc3\\xa9\\x0a\\x7f'");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_fill(&m, '\xff', 1000);
    msgpack_pack_nil(&m.pk);
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "\\xff\\xff...'");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "");
    msgpack_pack_nil(&m.pk);
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "unknown field ''");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "Status"); /* keys are case-sensitive */
    mb_str(&m, "running");
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "'Status'");
    /* seq / epoch are the broker's; producer / pseq the worker's. */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "seq");
    msgpack_pack_uint64(&m.pk, 1);
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "'seq'");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "epoch");
    mb_str(&m, "e");
    REJECTS(m, W, EVENT_E_UNKNOWN_FIELD, "'epoch'");
    mb_reset(&m);
    mb_map(&m, 7);
    mb_required_broker(&m);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    REJECTS(m, B, EVENT_E_UNKNOWN_FIELD, "'producer'");
    mb_reset(&m);
    mb_map(&m, 7);
    mb_required_broker(&m);
    mb_str(&m, "pseq");
    msgpack_pack_uint64(&m.pk, 1);
    REJECTS(m, B, EVENT_E_UNKNOWN_FIELD, "'pseq'");
    mb_free(&m);
}

/*  An event with the required fields minus skip (a field name or NULL) plus
 *  one more field whose value packs via the callback. */
typedef void (*val_fn)(mb_t *);

static void
build(mb_t *m, const char *skip, const char *key, val_fn val, event_origin_t origin)
{
    static const char *const req[] = {"task_id", "user_id", "status", "ts", "seq", "epoch"};
    static const char *const vals[] = {"t-1", "42", "running", NULL, NULL, "e1"};
    size_t nreq = origin == B ? 6 : 3, n = 0;
    for (size_t i = 0; i < nreq; i++)
        n += !(skip && strcmp(skip, req[i]) == 0) && !(key && strcmp(key, req[i]) == 0);
    mb_reset(m);
    mb_map(m, n + (key != NULL));
    for (size_t i = 0; i < nreq; i++) {
        if ((skip && strcmp(skip, req[i]) == 0) || (key && strcmp(key, req[i]) == 0))
            continue;
        mb_str(m, req[i]);
        if (vals[i])
            mb_str(m, vals[i]);
        else
            msgpack_pack_uint64(&m->pk, 5);
    }
    if (key) {
        mb_str(m, key);
        val(m);
    }
}

static void
v_nil(mb_t *m)
{
    msgpack_pack_nil(&m->pk);
}
static void
v_int(mb_t *m)
{
    msgpack_pack_int(&m->pk, 3);
}
static void
v_neg(mb_t *m)
{
    msgpack_pack_int(&m->pk, -1);
}
static void
v_float(mb_t *m)
{
    msgpack_pack_double(&m->pk, 3.0);
}
static void
v_str(mb_t *m)
{
    mb_str(m, "3");
}
static void
v_bool(mb_t *m)
{
    msgpack_pack_true(&m->pk);
}
static void
v_bin(mb_t *m)
{
    msgpack_pack_bin_with_body(&m->pk, "x", 1);
}
static void
v_map(mb_t *m)
{
    mb_map(m, 1);
    mb_str(m, "status");
    mb_str(m, "running");
}
static void
v_array(mb_t *m)
{
    mb_array(m, 2);
    mb_array(m, 0);
    mb_str(m, "x");
}

static void
test_required_and_types(void)
{
    mb_t m;
    event_t ev;
    mb_init(&m);
    /* missing_field, each required field in turn */
    static const char *const wreq[] = {"task_id", "user_id", "status"};
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "field '%s' is required", wreq[i]);
        build(&m, wreq[i], NULL, NULL, W);
        REJECTS(m, W, EVENT_E_MISSING_FIELD, want);
    }
    static const char *const breq[] = {"task_id", "user_id", "status", "ts", "seq", "epoch"};
    for (int i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "field '%s' is required", breq[i]);
        build(&m, breq[i], NULL, NULL, B);
        REJECTS(m, B, EVENT_E_MISSING_FIELD, want);
    }
    build(&m, NULL, NULL, NULL, B);
    ACCEPTS(m, B, &ev);
    CHECK(ev.seq == 5 && ev.ts == 5 && text_eq(ev.epoch, "e1"));

    /* nil: wrong_type for a required field, absent for an optional one */
    for (int i = 0; i < 3; i++) {
        build(&m, NULL, wreq[i], v_nil, W);
        REJECTS(m, W, EVENT_E_WRONG_TYPE, "must not be nil");
    }
    for (int i = 3; i < 6; i++) {
        build(&m, NULL, breq[i], v_nil, B);
        REJECTS(m, B, EVENT_E_WRONG_TYPE, "must not be nil");
    }
    static const char *const opt[] = {"progress", "message", "data", "ts", "producer", "pseq"};
    for (int i = 0; i < 6; i++) {
        build(&m, NULL, opt[i], v_nil, W);
        ACCEPTS(m, W, &ev);
        CHECK(!ev.has_progress && !ev.has_message && !ev.data && !ev.has_ts && !ev.has_producer);
    }

    /* producer needs pseq; pseq alone is a correlation id */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    REJECTS(m, W, EVENT_E_MISSING_FIELD, "field 'pseq' is required when 'producer' is given");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "pseq");
    msgpack_pack_uint64(&m.pk, 1);
    {
        event_t alone;
        ACCEPTS(m, W, &alone);
        CHECK(alone.has_pseq && alone.pseq == 1 && !alone.has_producer);
    }
    mb_reset(&m);
    mb_map(&m, 5);
    mb_required(&m);
    mb_str(&m, "pseq");
    msgpack_pack_nil(&m.pk);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    REJECTS(m, W, EVENT_E_MISSING_FIELD, "'pseq' is required");

    /* wrong_type, field by field */
    struct {
        const char *key;
        val_fn val;
        event_origin_t origin;
        const char *want;
    } wrong[] = {
        {"task_id", v_int, W, "field 'task_id' must be a string, not an integer"},
        {"task_id", v_bin, W, "field 'task_id' must be a string, not binary"},
        {"user_id", v_int, W, "field 'user_id' must be a string"},
        {"status", v_int, W, "field 'status' must be a string"},
        {"status", v_map, W, "field 'status' must be a string, not a map"},
        {"progress", v_str, W, "field 'progress' must be a number, not a string"},
        {"progress", v_bool, W, "field 'progress' must be a number, not a boolean"},
        {"message", v_int, W, "field 'message' must be a string"},
        {"message", v_array, W, "field 'message' must be a string, not an array"},
        {"ts", v_float, W, "field 'ts' must be an integer, not a float"},
        {"ts", v_str, W, "field 'ts' must be an integer"},
        {"ts", v_float, B, "field 'ts' must be an integer"},
        {"producer", v_int, W, "field 'producer' must be a string"},
        {"pseq", v_str, W, "field 'pseq' must be an integer"},
        {"pseq", v_float, W, "field 'pseq' must be an integer"},
        {"seq", v_float, B, "field 'seq' must be an integer"},
        {"seq", v_bool, B, "field 'seq' must be an integer"},
        {"epoch", v_int, B, "field 'epoch' must be a string"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        build(&m, NULL, wrong[i].key, wrong[i].val, wrong[i].origin);
        REJECTS(m, wrong[i].origin, EVENT_E_WRONG_TYPE, wrong[i].want);
    }

    /* integer fields: negative or out of range is invalid_value */
    build(&m, NULL, "ts", v_neg, W);
    REJECTS(m, W, EVENT_E_INVALID_VALUE, "field 'ts' must be an integer from 0 to");
    build(&m, NULL, "pseq", v_neg, W);
    REJECTS(m, W, EVENT_E_INVALID_VALUE, "'pseq'");
    build(&m, NULL, "seq", v_neg, B);
    REJECTS(m, B, EVENT_E_INVALID_VALUE, "'seq'");
    build(&m, NULL, "ts", v_int, W);
    ACCEPTS(m, W, &ev);
    CHECK(ev.has_ts && ev.ts == 3);
    mb_free(&m);
}

/*  The required fields with task_id / user_id replaced by the given bytes. */
static void
with_text(mb_t *m, const char *key, const char *s, size_t len)
{
    mb_reset(m);
    mb_map(m, 3);
    static const char *const keys[] = {"task_id", "user_id", "status"};
    static const char *const vals[] = {"t", "u", "queued"};
    for (int i = 0; i < 3; i++) {
        mb_str(m, keys[i]);
        if (strcmp(keys[i], key) == 0)
            mb_strn(m, s, len);
        else
            mb_str(m, vals[i]);
    }
}

static void
test_text_fields(void)
{
    mb_t m;
    event_t ev;
    mb_init(&m);
    char big[200];
    memset(big, 'a', sizeof big);

    /* task_id: 1..128 bytes of UTF-8 without control characters */
    with_text(&m, "task_id", big, 128);
    ACCEPTS(m, W, &ev);
    CHECK(ev.task_id.len == 128);
    with_text(&m, "task_id", big, 129);
    REJECTS(m, W, EVENT_E_TOO_LARGE, "field 'task_id' must be at most 128 bytes, not 129");
    with_text(&m, "task_id", "", 0);
    REJECTS(m, W, EVENT_E_INVALID_VALUE, "field 'task_id' must not be empty");
    static const char *const bad_utf8[] = {
        "\xff",         "a\x80",        "\xc0\xaf",         "\xc3",
        "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
        "\xe2\x82",     "\xf0\x9f\x98"};
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        with_text(&m, "task_id", bad_utf8[i], strlen(bad_utf8[i]));
        REJECTS(m, W, EVENT_E_INVALID_UTF8, "field 'task_id' must be valid UTF-8");
    }
    static const char *const controls[] = {"a\x01", "\t", "a\nb", "\x7f", "x\x1f"};
    for (size_t i = 0; i < sizeof controls / sizeof controls[0]; i++) {
        with_text(&m, "task_id", controls[i], strlen(controls[i]));
        REJECTS(m, W, EVENT_E_INVALID_VALUE, "'task_id' must not contain control characters");
    }
    with_text(&m, "task_id", "a\0b", 3);
    REJECTS(m, W, EVENT_E_INVALID_VALUE, "control");
    const char *fine = "render 7 / \xc3\xa9t\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80";
    with_text(&m, "task_id", fine, strlen(fine));
    ACCEPTS(m, W, &ev);
    with_text(&m, "task_id", "\"quoted\" \\ back", strlen("\"quoted\" \\ back"));
    ACCEPTS(m, W, &ev);

    /* user_id: 1..64 of [A-Za-z0-9_.-] */
    with_text(&m, "user_id", big, 64);
    ACCEPTS(m, W, &ev);
    with_text(&m, "user_id", big, 65);
    REJECTS(m, W, EVENT_E_TOO_LARGE, "field 'user_id' must be at most 64 bytes");
    with_text(&m, "user_id", "", 0);
    REJECTS(m, W, EVENT_E_INVALID_VALUE, "'user_id' must not be empty");
    static const char *const bad_users[] = {"a b", "a/b", "\xc3\xa9", "a\0", "a:b", "a+b", "@"};
    for (size_t i = 0; i < sizeof bad_users / sizeof bad_users[0]; i++) {
        with_text(&m, "user_id", bad_users[i], strlen(bad_users[i]) + (i == 3));
        REJECTS(m, W, EVENT_E_INVALID_VALUE, "field 'user_id' must contain only");
    }
    with_text(&m, "user_id", "Az09_.-", 7);
    ACCEPTS(m, W, &ev);
    CHECK(event_user_id_valid("2", 1) && event_user_id_valid("a.B-c_9", 7));
    CHECK(!event_user_id_valid("", 0) && !event_user_id_valid(big, 65));
    CHECK(!event_user_id_valid("2\0", 2) && !event_user_id_valid("x y", 3));

    /* status: exactly one of the five */
    static const char *const bad_status[] = {"Running",  "",     "runnin",
                                             "runningg", "done", "cancelled\0"};
    for (size_t i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
        with_text(&m, "status", bad_status[i], strlen(bad_status[i]) + (i == 5));
        REJECTS(m, W, EVENT_E_INVALID_VALUE,
                "field 'status' must be one of queued, running, succeeded, failed, cancelled");
    }

    /* message: <= 4096 bytes of UTF-8; control characters allowed */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "message");
    mb_fill(&m, 'm', EVENT_MESSAGE_MAX);
    ACCEPTS(m, W, &ev);
    CHECK(ev.has_message && ev.message.len == EVENT_MESSAGE_MAX);
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "message");
    mb_fill(&m, 'm', EVENT_MESSAGE_MAX + 1);
    REJECTS(m, W, EVENT_E_TOO_LARGE, "field 'message' must be at most 4096 bytes, not 4097");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "message");
    mb_strn(&m, "ok so far \xe2\x28\xa1", 13);
    REJECTS(m, W, EVENT_E_INVALID_UTF8, "field 'message' must be valid UTF-8");
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "message");
    mb_strn(&m, "\0\x01\x1f\x7f\n", 5);
    ACCEPTS(m, W, &ev);
    CHECK(ev.has_message && ev.message.len == 5);
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "message");
    mb_str(&m, "");
    ACCEPTS(m, W, &ev);
    CHECK(ev.has_message && ev.message.len == 0);

    /* producer: 1..128 printable ASCII; epoch: 1..64 printable ASCII */
    static const struct {
        const char *key;
        size_t max;
        event_origin_t origin;
    } pr[] = {{"producer", EVENT_PRODUCER_MAX, W}, {"epoch", EVENT_EPOCH_MAX, B}};
    for (int i = 0; i < 2; i++) {
        for (int c = 0; c < 6; c++) {
            mb_reset(&m);
            if (pr[i].origin == W) {
                mb_map(&m, 5);
                mb_required(&m);
                mb_str(&m, "pseq");
                msgpack_pack_uint64(&m.pk, 1);
            }
            else {
                mb_map(&m, 6);
                mb_required(&m);
                mb_str(&m, "ts");
                msgpack_pack_uint64(&m.pk, 1);
                mb_str(&m, "seq");
                msgpack_pack_uint64(&m.pk, 1);
            }
            mb_str(&m, pr[i].key);
            char want[100];
            switch (c) {
            case 0:
                mb_fill(&m, '~', pr[i].max);
                ACCEPTS(m, pr[i].origin, &ev);
                break;
            case 1:
                mb_fill(&m, '!', pr[i].max + 1);
                snprintf(want, sizeof want, "field '%s' must be at most %zu bytes", pr[i].key,
                         pr[i].max);
                REJECTS(m, pr[i].origin, EVENT_E_TOO_LARGE, want);
                break;
            case 2:
                mb_str(&m, "");
                REJECTS(m, pr[i].origin, EVENT_E_INVALID_VALUE, "must not be empty");
                break;
            case 3:
                mb_str(&m, "a b");
                REJECTS(m, pr[i].origin, EVENT_E_INVALID_VALUE, "printable ASCII");
                break;
            case 4:
                mb_str(&m, "\xc3\xa9");
                REJECTS(m, pr[i].origin, EVENT_E_INVALID_VALUE, "printable ASCII");
                break;
            default:
                mb_strn(&m, "a\0", 2);
                REJECTS(m, pr[i].origin, EVENT_E_INVALID_VALUE, "printable ASCII");
                break;
            }
        }
    }
    mb_free(&m);
}

static void
test_numbers(void)
{
    mb_t m;
    event_t ev;
    mb_init(&m);
    /* progress: 0..100 inclusive, finite */
    for (int i = 0; i < 16; i++) {
        mb_reset(&m);
        mb_map(&m, 4);
        mb_required(&m);
        mb_str(&m, "progress");
        int ok = 1;
        switch (i) {
        case 0:
            msgpack_pack_uint64(&m.pk, 0);
            break;
        case 1:
            msgpack_pack_fix_uint64(&m.pk, 100);
            break;
        case 2:
            msgpack_pack_double(&m.pk, 100.0);
            break;
        case 3:
            msgpack_pack_double(&m.pk, 0.0);
            break;
        case 4:
            msgpack_pack_float(&m.pk, 55.5f);
            break;
        case 5:
            msgpack_pack_fix_int8(&m.pk, 5); /* signed encoding, non-negative */
            break;
        case 6:
            msgpack_pack_uint64(&m.pk, 101);
            ok = 0;
            break;
        case 7:
            msgpack_pack_int(&m.pk, -1);
            ok = 0;
            break;
        case 8:
            msgpack_pack_double(&m.pk, -0.5);
            ok = 0;
            break;
        case 9:
            msgpack_pack_double(&m.pk, 100.0001);
            ok = 0;
            break;
        case 10:
            msgpack_pack_double(&m.pk, NAN);
            ok = 0;
            break;
        case 11:
            msgpack_pack_double(&m.pk, INFINITY);
            ok = 0;
            break;
        case 12:
            msgpack_pack_float(&m.pk, -INFINITY);
            ok = 0;
            break;
        case 13:
            msgpack_pack_uint64(&m.pk, UINT64_MAX);
            ok = 0;
            break;
        case 14:
            msgpack_pack_int64(&m.pk, INT64_MIN);
            ok = 0;
            break;
        default:
            msgpack_pack_double(&m.pk, 1e300);
            ok = 0;
            break;
        }
        if (ok) {
            ACCEPTS(m, W, &ev);
            CHECK(ev.has_progress);
            CHECK(ev.progress.type == MP_UINT || ev.progress.type == MP_FLOAT);
        }
        else
            REJECTS(m, W, EVENT_E_INVALID_VALUE, "field 'progress' must be a number from 0 to 100");
    }
    /* ts: an integer from 0 to INT64_MAX */
    for (int i = 0; i < 4; i++) {
        mb_reset(&m);
        mb_map(&m, 4);
        mb_required(&m);
        mb_str(&m, "ts");
        if (i == 0)
            msgpack_pack_uint64(&m.pk, 0);
        else if (i == 1)
            msgpack_pack_int64(&m.pk, INT64_MAX);
        else if (i == 2)
            msgpack_pack_uint64(&m.pk, (uint64_t)INT64_MAX + 1);
        else
            msgpack_pack_int64(&m.pk, INT64_MIN);
        if (i < 2) {
            ACCEPTS(m, W, &ev);
            CHECK(ev.has_ts && ev.ts == (i == 0 ? 0 : INT64_MAX));
        }
        else
            REJECTS(m, W, EVENT_E_INVALID_VALUE, "'ts' must be an integer from 0 to");
    }
    /* pseq: any uint; seq: >= 1 */
    mb_reset(&m);
    mb_map(&m, 5);
    mb_required(&m);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    mb_str(&m, "pseq");
    msgpack_pack_uint64(&m.pk, 0);
    ACCEPTS(m, W, &ev);
    CHECK(ev.has_producer && ev.pseq == 0);
    for (int i = 0; i < 3; i++) {
        mb_reset(&m);
        mb_map(&m, 6);
        mb_required(&m);
        mb_str(&m, "ts");
        msgpack_pack_uint64(&m.pk, 1);
        mb_str(&m, "epoch");
        mb_str(&m, "e");
        mb_str(&m, "seq");
        msgpack_pack_uint64(&m.pk, i == 0 ? 0 : i == 1 ? 1 : UINT64_MAX);
        if (i == 0)
            REJECTS(m, B, EVENT_E_INVALID_VALUE, "field 'seq' must be an integer from 1 to");
        else {
            ACCEPTS(m, B, &ev);
            CHECK(ev.seq == (i == 1 ? 1 : UINT64_MAX));
        }
    }
    mb_free(&m);
}

/*  The required fields plus data packed by the callback. */
static void
with_data(mb_t *m, void (*fill)(mb_t *, int), int arg)
{
    mb_reset(m);
    mb_map(m, 4);
    mb_required(m);
    mb_str(m, "data");
    fill(m, arg);
}

static void
d_nested(mb_t *m, int depth)
{
    for (int i = 0; i < depth; i++) {
        if (i % 2) {
            mb_map(m, 1);
            msgpack_pack_int(&m->pk, i);
        }
        else
            mb_array(m, 1);
    }
    msgpack_pack_nil(&m->pk);
}

static void
d_case(mb_t *m, int which)
{
    switch (which) {
    case 0: /* ext */
        mb_array(m, 2);
        msgpack_pack_int(&m->pk, 1);
        msgpack_pack_ext_with_body(&m->pk, "abcd", 4, 1);
        break;
    case 1: /* NaN */
        mb_map(m, 1);
        mb_str(m, "x");
        msgpack_pack_double(&m->pk, NAN);
        break;
    case 2: /* float32 infinity */
        msgpack_pack_float(&m->pk, INFINITY);
        break;
    case 3: /* invalid UTF-8 string value */
        mb_array(m, 1);
        mb_strn(m, "\xc0\x80", 2);
        break;
    case 4: /* invalid UTF-8 key */
        mb_map(m, 1);
        mb_strn(m, "k\xff", 2);
        msgpack_pack_int(&m->pk, 1);
        break;
    case 5: /* bool key */
        mb_map(m, 1);
        msgpack_pack_true(&m->pk);
        msgpack_pack_int(&m->pk, 1);
        break;
    case 6: /* nil key */
        mb_map(m, 1);
        msgpack_pack_nil(&m->pk);
        msgpack_pack_int(&m->pk, 1);
        break;
    case 7: /* float key */
        mb_map(m, 1);
        msgpack_pack_double(&m->pk, 1.5);
        msgpack_pack_int(&m->pk, 1);
        break;
    case 8: /* array key */
        mb_map(m, 1);
        mb_array(m, 1);
        msgpack_pack_int(&m->pk, 1);
        msgpack_pack_int(&m->pk, 1);
        break;
    case 9: /* bin key */
        mb_map(m, 1);
        msgpack_pack_bin_with_body(&m->pk, "k", 1);
        msgpack_pack_int(&m->pk, 1);
        break;
    case 10: /* ext deep inside, after good items */
        mb_map(m, 2);
        mb_str(m, "a");
        mb_array(m, 3);
        msgpack_pack_int(&m->pk, 1);
        mb_map(m, 0);
        mb_array(m, 1);
        msgpack_pack_ext_with_body(&m->pk, "z", 1, -1);
        mb_str(m, "b");
        msgpack_pack_nil(&m->pk);
        break;
    case 11: /* everything allowed */
        mb_map(m, 9);
        mb_str(m, "s");
        mb_str(m, "\xe2\x9c\x93\n\x01");
        msgpack_pack_int(&m->pk, -7);
        msgpack_pack_bin_with_body(&m->pk, "\xff\x00", 2);
        msgpack_pack_uint64(&m->pk, UINT64_MAX);
        msgpack_pack_int64(&m->pk, INT64_MIN);
        mb_str(m, "f");
        msgpack_pack_float(&m->pk, 1.1f);
        mb_str(m, "d");
        msgpack_pack_double(&m->pk, -1e300);
        mb_str(m, "e");
        mb_array(m, 0);
        mb_str(m, "m");
        mb_map(m, 0);
        mb_str(m, "n");
        msgpack_pack_nil(&m->pk);
        mb_str(m, "");
        msgpack_pack_false(&m->pk);
        break;
    default: /* a scalar */
        msgpack_pack_int(&m->pk, 5);
        break;
    }
}

static void
test_data(void)
{
    mb_t m;
    event_t ev;
    mb_init(&m);
    static const struct {
        const char *code;
        const char *want;
    } cases[] = {
        {EVENT_E_INVALID_VALUE, "field 'data' contains an extension type"},
        {EVENT_E_INVALID_VALUE, "field 'data' contains a float that is not finite"},
        {EVENT_E_INVALID_VALUE, "not finite"},
        {EVENT_E_INVALID_UTF8, "field 'data' contains a string that is not UTF-8"},
        {EVENT_E_INVALID_UTF8, "field 'data' contains a map key that is not UTF-8"},
        {EVENT_E_INVALID_VALUE, "map key that is a boolean: keys must be strings or integers"},
        {EVENT_E_INVALID_VALUE, "map key that is nil"},
        {EVENT_E_INVALID_VALUE, "map key that is a float"},
        {EVENT_E_INVALID_VALUE, "map key that is an array"},
        {EVENT_E_INVALID_VALUE, "map key that is binary"},
        {EVENT_E_INVALID_VALUE, "extension type"},
        {NULL, NULL},
        {NULL, NULL},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        with_data(&m, d_case, i);
        if (cases[i].code)
            REJECTS(m, W, cases[i].code, cases[i].want);
        else {
            ACCEPTS(m, W, &ev);
            /* the span is the value's bytes, exactly */
            CHECK(ev.data && ev.data + ev.data_len == (const uint8_t *)m.sb.data + m.sb.size);
            CHECK(mp_check(ev.data, ev.data_len, EVENT_DEPTH_MAX));
        }
    }
    /* A data error, then a damaged remainder: malformed. */
    with_data(&m, d_case, 0);
    m.sb.size--;
    REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");

    /* Depth: EVENT_DEPTH_MAX nested containers pass, one more is too_large. */
    with_data(&m, d_nested, EVENT_DEPTH_MAX);
    ACCEPTS(m, W, &ev);
    with_data(&m, d_nested, EVENT_DEPTH_MAX + 1);
    REJECTS(m, W, EVENT_E_TOO_LARGE, "field 'data' must not nest more than 32 arrays or maps");
    /* ... an empty container counts as one level */
    mb_reset(&m);
    mb_map(&m, 4);
    mb_required(&m);
    mb_str(&m, "data");
    for (int i = 0; i < EVENT_DEPTH_MAX; i++)
        mb_array(&m, 1);
    mb_map(&m, 0);
    REJECTS(m, W, EVENT_E_TOO_LARGE, "must not nest");
    /* ... very deep (60,000 levels), well-formed: too_large; cut short:
     * malformed; deeper than the size limit allows: too_large for the size */
    for (int levels = 60000; levels <= 70000; levels += 10000) {
        mb_reset(&m);
        mb_map(&m, 4);
        mb_required(&m);
        mb_str(&m, "data");
        for (int i = 0; i < levels; i++)
            mb_raw(&m, "\x91", 1);
        msgpack_pack_nil(&m.pk);
        REJECTS(m, W, EVENT_E_TOO_LARGE, levels < 65536 ? "must not nest" : "bytes of msgpack");
        m.sb.size--;
        REJECTS(m, W, EVENT_E_MALFORMED, "msgpack");
    }
    /* ... deep after siblings: the rest of every open level is still walked */
    mb_reset(&m);
    mb_map(&m, 5);
    mb_required(&m);
    mb_str(&m, "data");
    mb_array(&m, 3);
    d_nested(&m, EVENT_DEPTH_MAX + 3);
    mb_str(&m, "after");
    mb_array(&m, 2);
    mb_str(&m, "tail");
    mb_array(&m, 0);
    mb_str(&m, "message");
    mb_str(&m, "m");
    REJECTS(m, W, EVENT_E_TOO_LARGE, "must not nest");

    /* Size: exactly EVENT_DATA_MAX encoded bytes pass, one more does not. */
    char *big = calloc(1, EVENT_DATA_MAX);
    for (int extra = 0; extra < 2; extra++) {
        mb_reset(&m);
        mb_map(&m, 4);
        mb_required(&m);
        mb_str(&m, "data");
        msgpack_pack_bin_with_body(&m.pk, big, (size_t)EVENT_DATA_MAX - 3 + (size_t)extra);
        if (extra)
            REJECTS(m, W, EVENT_E_TOO_LARGE,
                    "field 'data' must be at most 65536 bytes of msgpack, not 65537");
        else {
            ACCEPTS(m, W, &ev);
            CHECK(ev.data_len == EVENT_DATA_MAX);
        }
    }
    free(big);
    mb_free(&m);
}

static void
test_utf8(void)
{
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"plain ascii text, long enough for the fast path", 48, 1},
        {"\x00", 1, 1},
        {"\x7f", 1, 1},
        {"\xc2\x80", 2, 1},
        {"\xdf\xbf", 2, 1},
        {"\xe0\xa0\x80", 3, 1},
        {"\xed\x9f\xbf", 3, 1}, /* U+D7FF */
        {"\xee\x80\x80", 3, 1}, /* U+E000 */
        {"\xef\xbf\xbf", 3, 1},
        {"\xf0\x90\x80\x80", 4, 1},
        {"\xf4\x8f\xbf\xbf", 4, 1}, /* U+10FFFF */
        {"\x80", 1, 0},
        {"\xbf", 1, 0},
        {"\xc0\x80", 2, 0}, /* overlong NUL */
        {"\xc1\xbf", 2, 0},
        {"\xc2", 1, 0},
        {"\xc2\x41", 2, 0},
        {"\xe0\x9f\xbf", 3, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0}, /* U+D800 */
        {"\xed\xbf\xbf", 3, 0}, /* U+DFFF */
        {"\xe1\x80", 2, 0},
        {"\xe1\x80\x41", 3, 0},
        {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong */
        {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0},
        {"\xff", 1, 0},
        {"\xf0\x90\x80", 3, 0},
        {"\xf0\x90\x80\x41", 4, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (event_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fprintf(stderr, "utf8 case %zu\n", i);
        CHECK(event_utf8_valid(cases[i].s, cases[i].len) == cases[i].ok);
    }
    /* A bad byte at every offset around the 8-byte fast path. */
    char buf[40];
    for (size_t at = 0; at < 32; at++) {
        memset(buf, 'a', sizeof buf);
        buf[at] = '\x80';
        CHECK(!event_utf8_valid(buf, sizeof buf));
        buf[at] = '\xc3';
        buf[at + 1] = '\xa9';
        CHECK(event_utf8_valid(buf, sizeof buf));
        CHECK(!event_utf8_valid(buf, at + 1)); /* cut inside the sequence */
    }
}

/*  Every byte value at every position of a 19-byte text (the checks go 8
 *  bytes at a time, then byte by byte): producer and epoch take exactly
 *  0x21..0x7e, task_id refuses exactly the control characters (UTF-8 aside),
 *  user_id takes exactly [A-Za-z0-9_.-]. */
static void
test_byte_classes(void)
{
    mb_t m;
    mb_init(&m);
    int bad = 0;
    for (int pos = 0; pos < 19; pos++) {
        for (int c = 0; c < 256; c++) {
            char text[20];
            memset(text, 'a', 19);
            text[pos] = (char)c;
            text[19] = '\0';
            event_t ev;
            /* producer */
            mb_reset(&m);
            mb_map(&m, 5);
            mb_required(&m);
            mb_str(&m, "producer");
            mb_strn(&m, text, 19);
            mb_str(&m, "pseq");
            msgpack_pack_uint64(&m.pk, 1);
            int want = c >= 0x21 && c <= 0x7e;
            if ((event_decode(&ev, m.sb.data, m.sb.size, W, NULL) == 0) != want)
                bad++;
            /* task_id: a lone byte >= 0x80 is bad UTF-8, so only ASCII here */
            if (c < 0x80) {
                mb_reset(&m);
                mb_map(&m, 3);
                mb_str(&m, "task_id");
                mb_strn(&m, text, 19);
                mb_str(&m, "user_id");
                mb_str(&m, "u");
                mb_str(&m, "status");
                mb_str(&m, "queued");
                want = c >= 0x20 && c != 0x7f;
                if ((event_decode(&ev, m.sb.data, m.sb.size, W, NULL) == 0) != want)
                    bad++;
            }
            /* user_id */
            want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '_' || c == '.' || c == '-';
            if (event_user_id_valid(text, 19) != want)
                bad++;
        }
    }
    CHECK(bad == 0);
    /* multi-byte UTF-8 in a task id is no control character */
    mb_reset(&m);
    mb_map(&m, 3);
    mb_str(&m, "task_id");
    mb_str(&m, "t\xc3\xa9" "l\xc3\xa9" "chargement-0001");
    mb_str(&m, "user_id");
    mb_str(&m, "u");
    mb_str(&m, "status");
    mb_str(&m, "queued");
    event_t ev;
    ACCEPTS(m, W, &ev);
    mb_free(&m);
}

int
main(void)
{
    test_byte_classes();
    test_minimal_and_full();
    test_round_trip();
    test_structure();
    test_keys();
    test_required_and_types();
    test_text_fields();
    test_numbers();
    test_data();
    test_utf8();
    return check_report();
}
