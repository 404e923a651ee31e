/*  test_jobs_wire.c: the pool messages (common/jobs_wire.c): every message
 *  packed and read back, unknown keys skipped, and refusals (not a map, no
 *  or unknown type, a known key of the wrong type, a required field
 *  missing); the type found wherever it stands (the broker dispatches on
 *  it), and a hello's kinds one by one. */
#include <string.h>

#include "check.h"
#include "jobs_wire.h"
#include "mbuild.h"

static int
eq(event_text_t t, const char *s)
{
    return t.len == strlen(s) && memcmp(t.p, s, t.len) == 0;
}

static int
s_read(const buf_t *b, jobs_msg_t *m)
{
    char err[160];
    return buf_ok(b) ? jobs_wire_read(b->data, b->len, m, err, sizeof err) : -1;
}

static void
test_round_trips(void)
{
    buf_t b;
    buf_init(&b);
    jobs_msg_t m;
    const char *kinds[] = {"render", "thumb"};
    jobs_pack_hello(&b, "host-1", kinds, 2, 4);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_HELLO && eq(m.name, "host-1"));
    CHECK(m.has_concurrency && m.concurrency == 4 && m.kinds_n == 2);
    size_t at = 0;
    event_text_t kind;
    CHECK(jobs_kind_next(&m, &at, &kind) == 1 && eq(kind, "render"));
    CHECK(jobs_kind_next(&m, &at, &kind) == 1 && eq(kind, "thumb"));
    CHECK(jobs_kind_next(&m, &at, &kind) == 0 && jobs_kind_next(&m, &at, &kind) == 0);
    buf_reset(&b);
    jobs_pack_hello(&b, "host-1", kinds, 0, 1);
    at = 0;
    CHECK(s_read(&b, &m) == 0 && m.kinds_n == 0 && jobs_kind_next(&m, &at, &kind) == 0);

    buf_reset(&b);
    jobs_pack_simple(&b, JOBS_HEARTBEAT);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_HEARTBEAT);
    buf_reset(&b);
    jobs_pack_simple(&b, JOBS_BYE);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_BYE);

    buf_reset(&b);
    jobs_pack_task(&b, JOBS_STARTED, "j-1", 3);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_STARTED && eq(m.task_id, "j-1"));
    CHECK(m.has_attempt && m.attempt == 3);
    buf_reset(&b);
    jobs_pack_task(&b, JOBS_RELEASE, "j-1", 3);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_RELEASE);
    buf_reset(&b);
    jobs_pack_task(&b, JOBS_CANCEL, "j-1", 3);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_CANCEL);

    buf_reset(&b);
    jobs_progress_t pr = {1, 0, 12.5};
    jobs_pack_progress(&b, "j-1", 1, &pr, "half");
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_PROGRESS && m.has_progress);
    CHECK(m.progress.is_float && m.progress.f == 12.5 && eq(m.message, "half"));
    buf_reset(&b);
    pr = (jobs_progress_t){0, 42, 0};
    jobs_pack_progress(&b, "j-1", 1, &pr, NULL);
    CHECK(s_read(&b, &m) == 0 && m.has_progress && !m.progress.is_float && m.progress.u == 42);
    CHECK(m.message.p == NULL);
    buf_reset(&b);
    jobs_pack_progress(&b, "j-1", 1, NULL, NULL);
    CHECK(s_read(&b, &m) == 0 && !m.has_progress && m.message.len == 0);

    buf_reset(&b);
    static const uint8_t result[] = {0x92, 0x01, 0xa1, 'x'}; /* [1,"x"] */
    jobs_pack_done(&b, "j-1", 2, "succeeded", NULL, NULL, result, sizeof result);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_DONE && eq(m.status, "succeeded"));
    CHECK(m.result_len == sizeof result && memcmp(m.result, result, sizeof result) == 0);
    CHECK(m.reason.len == 0);
    buf_reset(&b);
    jobs_pack_done(&b, "j-1", 2, "failed", "exit_status", "exit status 3", NULL, 0);
    CHECK(s_read(&b, &m) == 0 && eq(m.reason, "exit_status") && eq(m.message, "exit status 3"));
    CHECK(m.result == NULL);

    buf_reset(&b);
    jobs_pack_welcome(&b, 1000, 3);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_WELCOME && m.heartbeat_ms == 1000 &&
          m.liveness == 3);

    buf_reset(&b);
    jobs_pack_job(&b, "j-2", "7", "render", result, sizeof result, 1, 60);
    CHECK(s_read(&b, &m) == 0 && m.type == JOBS_JOB && eq(m.user_id, "7") && eq(m.kind, "render"));
    CHECK(m.args_len == sizeof result && memcmp(m.args, result, sizeof result) == 0);
    CHECK(m.timeout_s == 60 && m.attempt == 1);
    buf_free(&b);
}

static void
test_lenient_and_strict(void)
{
    mb_t mb;
    mb_init(&mb);
    jobs_msg_t m;
    char err[160];
    mb_map(&mb, 3); /* unknown keys (even containers) are skipped */
    mb_str(&mb, "future");
    mb_map(&mb, 1);
    mb_str(&mb, "k");
    mb_array(&mb, 0);
    mb_str(&mb, "type");
    mb_str(&mb, "heartbeat");
    mb_str(&mb, "x");
    msgpack_pack_nil(&mb.pk);
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == 0);
    CHECK(m.type == JOBS_HEARTBEAT);
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size - 1, &m, err, sizeof err) == -1); /* truncated */

    mb_reset(&mb);
    mb_array(&mb, 0);
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK_STR(err, "message is not a msgpack map");

    mb_reset(&mb);
    mb_map(&mb, 1);
    mb_str(&mb, "type");
    mb_str(&mb, "dance");
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK_STR(err, "unknown type");

    mb_reset(&mb);
    mb_map(&mb, 1);
    mb_str(&mb, "task_id");
    mb_str(&mb, "j");
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK_STR(err, "field 'type' is missing");

    mb_reset(&mb); /* a job without its kind */
    mb_map(&mb, 5);
    mb_str(&mb, "type");
    mb_str(&mb, "job");
    mb_str(&mb, "task_id");
    mb_str(&mb, "j");
    mb_str(&mb, "attempt");
    msgpack_pack_uint64(&mb.pk, 1);
    mb_str(&mb, "user_id");
    mb_str(&mb, "2");
    mb_str(&mb, "timeout_s");
    msgpack_pack_uint64(&mb.pk, 5);
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK_STR(err, "job without 'kind'");

    mb_reset(&mb); /* attempt as a string */
    mb_map(&mb, 3);
    mb_str(&mb, "type");
    mb_str(&mb, "started");
    mb_str(&mb, "task_id");
    mb_str(&mb, "j");
    mb_str(&mb, "attempt");
    mb_str(&mb, "1");
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK_STR(err, "field 'attempt' has a wrong type or value");

    mb_reset(&mb); /* progress out of range */
    mb_map(&mb, 4);
    mb_str(&mb, "type");
    mb_str(&mb, "progress");
    mb_str(&mb, "task_id");
    mb_str(&mb, "j");
    mb_str(&mb, "attempt");
    msgpack_pack_uint64(&mb.pk, 1);
    mb_str(&mb, "progress");
    msgpack_pack_uint64(&mb.pk, 101);
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    mb_free(&mb);

    CHECK(jobs_kind_valid("render.v2-x_1", 13) && !jobs_kind_valid("a b", 3) &&
          !jobs_kind_valid("", 0));
    CHECK(strcmp(jobs_type_name(JOBS_RELEASE), "release") == 0);
}

static void
test_type_first(void)
{
    mb_t mb;
    mb_init(&mb);
    jobs_msg_t m;
    event_text_t type;
    int is_map = -1;
    char err[160];
    mb_map(&mb, 3); /* "type" last, after a field of the wrong type */
    mb_str(&mb, "task_id");
    mb_str(&mb, "j");
    mb_str(&mb, "attempt");
    mb_str(&mb, "1");
    mb_str(&mb, "type");
    mb_str(&mb, "started");
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == 0);
    CHECK(is_map == 1 && eq(type, "started"));
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK(m.type == JOBS_STARTED); /* known although a field was refused */
    CHECK_STR(err, "field 'attempt' has a wrong type or value");

    mb_reset(&mb); /* a type of the other family: found, not read */
    mb_map(&mb, 2);
    mb_str(&mb, "kind");
    msgpack_pack_uint64(&mb.pk, 5);
    mb_str(&mb, "type");
    mb_str(&mb, "submit");
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == 0);
    CHECK(is_map == 1 && eq(type, "submit"));
    CHECK(jobs_wire_read(mb.sb.data, mb.sb.size, &m, err, sizeof err) == -1);
    CHECK(m.type == JOBS_UNKNOWN);
    CHECK_STR(err, "unknown type");

    mb_reset(&mb); /* a map without a string type */
    mb_map(&mb, 1);
    mb_str(&mb, "type");
    msgpack_pack_uint64(&mb.pk, 1);
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == -1);
    CHECK(is_map == 1);
    CHECK_STR(err, "field 'type' must be a string");
    mb_reset(&mb);
    mb_map(&mb, 0);
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == -1);
    CHECK(is_map == 1);
    CHECK_STR(err, "field 'type' is missing");

    mb_reset(&mb); /* not a map of string keys */
    mb_map(&mb, 2);
    mb_str(&mb, "type");
    mb_str(&mb, "heartbeat");
    msgpack_pack_uint64(&mb.pk, 1);
    mb_str(&mb, "x");
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == -1);
    CHECK(is_map == 0);
    CHECK_STR(err, "malformed map or a key that is not a string");
    mb_reset(&mb);
    mb_str(&mb, "type");
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == -1);
    CHECK(is_map == 0);
    mb_reset(&mb); /* bytes after the map */
    mb_map(&mb, 1);
    mb_str(&mb, "type");
    mb_str(&mb, "bye");
    mb_str(&mb, "more");
    CHECK(jobs_wire_type(mb.sb.data, mb.sb.size, &type, &is_map, err, sizeof err) == -1);
    CHECK(is_map == 0);
    CHECK_STR(err, "bytes after the message");
    mb_free(&mb);
}

int
main(void)
{
    test_round_trips();
    test_lenient_and_strict();
    test_type_first();
    return check_report();
}
