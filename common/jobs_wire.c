/*  jobs_wire.c: the pool messages (jobs_wire.h). */
#include "jobs_wire.h"

#include <stdio.h>
#include <string.h>

#include "mpread.h"
#include "wire.h"

#define S_DEPTH (EVENT_DEPTH_MAX + 1) /* args/result nest like event data */

static const char *const s_names[] = {
    [JOBS_UNKNOWN] = "?",       [JOBS_HELLO] = "hello",       [JOBS_HEARTBEAT] = "heartbeat",
    [JOBS_STARTED] = "started", [JOBS_PROGRESS] = "progress", [JOBS_DONE] = "done",
    [JOBS_RELEASE] = "release", [JOBS_BYE] = "bye",           [JOBS_WELCOME] = "welcome",
    [JOBS_JOB] = "job",         [JOBS_CANCEL] = "cancel",
};

const char *
jobs_type_name(jobs_type_t t)
{
    return (unsigned)t < sizeof s_names / sizeof s_names[0] ? s_names[t] : "?";
}

int
jobs_kind_valid(const char *s, size_t len)
{
    return len >= 1 && len <= JOBS_KIND_MAX && event_user_id_valid(s, len);
}

/* ---------------------------------------------------------------- reading */

static int
s_text(const mp_value_t *v, event_text_t *t, size_t max)
{
    if (v->type != MP_STR || v->v.s.len > max || !event_utf8_valid(v->v.s.p, v->v.s.len))
        return -1;
    *t = (event_text_t){v->v.s.p, v->v.s.len};
    return 0;
}

static int
s_uint(const mp_value_t *v, uint64_t *out, int *has)
{
    if (v->type != MP_UINT)
        return -1;
    *out = v->v.u;
    *has = 1;
    return 0;
}

/*  One known field; 0 (also for an unknown key), or -1 on a wrong type. */
static int
s_field(jobs_msg_t *m, const mp_value_t *key, const mp_value_t *v, const uint8_t *span,
        size_t span_len)
{
    if (mp_str_eq(key, "task_id"))
        return s_text(v, &m->task_id, EVENT_TASK_ID_MAX);
    if (mp_str_eq(key, "user_id"))
        return s_text(v, &m->user_id, EVENT_USER_ID_MAX);
    if (mp_str_eq(key, "kind"))
        return s_text(v, &m->kind, JOBS_KIND_MAX);
    if (mp_str_eq(key, "name"))
        return s_text(v, &m->name, 256);
    if (mp_str_eq(key, "status"))
        return s_text(v, &m->status, 32);
    if (mp_str_eq(key, "reason"))
        return s_text(v, &m->reason, 64);
    if (mp_str_eq(key, "message"))
        return s_text(v, &m->message, EVENT_MESSAGE_MAX);
    if (mp_str_eq(key, "attempt"))
        return s_uint(v, &m->attempt, &m->has_attempt);
    if (mp_str_eq(key, "timeout_s"))
        return s_uint(v, &m->timeout_s, &m->has_timeout_s);
    if (mp_str_eq(key, "heartbeat_ms"))
        return s_uint(v, &m->heartbeat_ms, &m->has_heartbeat_ms);
    if (mp_str_eq(key, "liveness"))
        return s_uint(v, &m->liveness, &m->has_liveness);
    if (mp_str_eq(key, "concurrency"))
        return s_uint(v, &m->concurrency, &m->has_concurrency);
    if (mp_str_eq(key, "progress")) {
        if (v->type == MP_UINT && v->v.u <= 100)
            m->progress = (jobs_progress_t){0, v->v.u, 0};
        else if (v->type == MP_FLOAT && v->v.f >= 0.0 && v->v.f <= 100.0)
            m->progress = (jobs_progress_t){1, 0, v->v.f};
        else
            return -1;
        m->has_progress = 1;
        return 0;
    }
    if (mp_str_eq(key, "args") || mp_str_eq(key, "result")) {
        if (mp_str_eq(key, "args")) {
            m->args = span;
            m->args_len = span_len;
        }
        else {
            m->result = span;
            m->result_len = span_len;
        }
        return 0;
    }
    if (mp_str_eq(key, "kinds")) {
        if (v->type != MP_ARRAY)
            return -1;
        mp_reader_t r;
        mp_reader_init(&r, span, span_len);
        mp_value_t hdr, k;
        mp_read(&r, &hdr);
        m->kinds = r.p;
        m->kinds_len = mp_reader_left(&r);
        m->kinds_n = hdr.v.n;
        for (uint32_t i = 0; i < hdr.v.n; i++)
            if (mp_read(&r, &k) != 0 || k.type != MP_STR || !jobs_kind_valid(k.v.s.p, k.v.s.len))
                return -1;
        return 0;
    }
    return 0;
}

static jobs_type_t
s_type(event_text_t t)
{
    for (size_t i = 1; i < sizeof s_names / sizeof s_names[0]; i++)
        if (strlen(s_names[i]) == t.len && memcmp(s_names[i], t.p, t.len) == 0)
            return (jobs_type_t)i;
    return JOBS_UNKNOWN;
}

/*  The fields each type requires. */
static const char *
s_missing(const jobs_msg_t *m)
{
    int task = m->type == JOBS_STARTED || m->type == JOBS_PROGRESS || m->type == JOBS_DONE ||
               m->type == JOBS_RELEASE || m->type == JOBS_JOB || m->type == JOBS_CANCEL;
    if (task && m->task_id.len == 0)
        return "task_id";
    if (task && m->type != JOBS_CANCEL && !m->has_attempt)
        return "attempt";
    switch (m->type) {
    case JOBS_HELLO:
        return !m->kinds ? "kinds" : !m->has_concurrency ? "concurrency" : NULL;
    case JOBS_DONE:
        return m->status.len == 0 ? "status" : NULL;
    case JOBS_JOB:
        return m->user_id.len == 0 ? "user_id"
               : m->kind.len == 0  ? "kind"
               : !m->has_timeout_s ? "timeout_s"
                                   : NULL;
    default:
        return NULL;
    }
}

/*  Opens the map: 0 with its pair count, or -1 with a sentence. */
static int
s_open(mp_reader_t *r, const void *data, size_t len, uint32_t *pairs, char *err, size_t errlen)
{
    mp_value_t map;
    mp_reader_init(r, data, len);
    if (mp_read(r, &map) != 0 || map.type != MP_MAP) {
        snprintf(err, errlen, "message is not a msgpack map");
        return -1;
    }
    *pairs = map.v.n;
    return 0;
}

/*  The next pair: the key, the value's header in val and its bytes in
 *  *span (span_len). 0, or -1 with a sentence. */
static int
s_pair(mp_reader_t *r, mp_value_t *key, mp_value_t *val, const uint8_t **span, size_t *span_len,
       char *err, size_t errlen)
{
    if (mp_read(r, key) != 0 || key->type != MP_STR) {
        snprintf(err, errlen, "malformed map or a key that is not a string");
        return -1;
    }
    *span = r->p;
    mp_reader_t peek = *r;
    if (mp_read(&peek, val) != 0 || mp_skip(r, S_DEPTH) != 0) {
        char quoted[EVENT_QUOTE_MAX * 4 + 4];
        event_quote(quoted, sizeof quoted, key->v.s.p, key->v.s.len);
        snprintf(err, errlen, "malformed value for key '%s'", quoted);
        return -1;
    }
    *span_len = (size_t)(r->p - *span);
    return 0;
}

int
jobs_wire_type(const void *data, size_t len, event_text_t *type, int *is_map, char *err,
               size_t errlen)
{
    mp_reader_t r;
    mp_value_t key, val;
    const uint8_t *span;
    size_t span_len;
    uint32_t pairs;
    int has_type = 0, bad_type = 0;
    *is_map = 0;
    if (s_open(&r, data, len, &pairs, err, errlen) != 0)
        return -1;
    for (uint32_t i = 0; i < pairs; i++) {
        if (s_pair(&r, &key, &val, &span, &span_len, err, errlen) != 0)
            return -1;
        if (mp_str_eq(&key, "type") && val.type != MP_STR)
            bad_type = 1;
        else if (mp_str_eq(&key, "type")) {
            *type = (event_text_t){val.v.s.p, val.v.s.len};
            has_type = 1;
        }
    }
    if (mp_reader_left(&r) != 0) {
        snprintf(err, errlen, "bytes after the message");
        return -1;
    }
    *is_map = 1;
    if (bad_type || !has_type) {
        snprintf(err, errlen,
                 bad_type ? "field 'type' must be a string" : "field 'type' is missing");
        return -1;
    }
    return 0;
}

int
jobs_wire_read(const void *data, size_t len, jobs_msg_t *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    event_text_t type;
    int is_map;
    if (jobs_wire_type(data, len, &type, &is_map, err, errlen) != 0)
        return -1;
    m->type = s_type(type);
    if (m->type == JOBS_UNKNOWN) {
        snprintf(err, errlen, "unknown type");
        return -1;
    }
    mp_reader_t r;
    mp_value_t key, val;
    const uint8_t *span;
    size_t span_len;
    uint32_t pairs;
    if (s_open(&r, data, len, &pairs, err, errlen) != 0) /* jobs_wire_type() read it whole */
        return -1;
    for (uint32_t i = 0; i < pairs; i++) {
        if (s_pair(&r, &key, &val, &span, &span_len, err, errlen) != 0)
            return -1;
        if (!mp_str_eq(&key, "type") && s_field(m, &key, &val, span, span_len) != 0) {
            /* a known key: printable */
            snprintf(err, errlen, "field '%.*s' has a wrong type or value", (int)key.v.s.len,
                     key.v.s.p);
            return -1;
        }
    }
    const char *missing = s_missing(m);
    if (missing) {
        snprintf(err, errlen, "%s without '%s'", jobs_type_name(m->type), missing);
        return -1;
    }
    return 0;
}

int
jobs_kind_next(const jobs_msg_t *m, size_t *at, event_text_t *kind)
{
    mp_reader_t r;
    mp_value_t v;
    if (!m->kinds || *at >= m->kinds_len)
        return 0;
    mp_reader_init(&r, m->kinds + *at, m->kinds_len - *at);
    if (mp_read(&r, &v) != 0 || v.type != MP_STR) /* read by jobs_wire_read(): cannot be */
        return 0;
    *kind = (event_text_t){v.v.s.p, v.v.s.len};
    *at = (size_t)(r.p - m->kinds);
    return 1;
}

/* ---------------------------------------------------------------- packing */

static void
s_begin(msgpack_packer *pk, buf_t *out, jobs_type_t type, size_t pairs)
{
    msgpack_packer_init(pk, out, buf_msgpack_write);
    msgpack_pack_map(pk, pairs + 1);
    const char *t = jobs_type_name(type);
    wire_pack_kv_str(pk, "type", t, strlen(t));
}

static void
s_task(msgpack_packer *pk, const char *task_id, uint64_t attempt)
{
    wire_pack_kv_str(pk, "task_id", task_id, strlen(task_id));
    wire_pack_kv_u64(pk, "attempt", attempt);
}

void
jobs_pack_hello(buf_t *out, const char *name, const char *const *kinds, size_t nkinds,
                uint64_t concurrency)
{
    msgpack_packer pk;
    s_begin(&pk, out, JOBS_HELLO, 3);
    wire_pack_kv_str(&pk, "name", name, strlen(name));
    wire_pack_str(&pk, "kinds");
    msgpack_pack_array(&pk, nkinds);
    for (size_t i = 0; i < nkinds; i++)
        wire_pack_str(&pk, kinds[i]);
    wire_pack_kv_u64(&pk, "concurrency", concurrency);
}

void
jobs_pack_simple(buf_t *out, jobs_type_t type)
{
    msgpack_packer pk;
    s_begin(&pk, out, type, 0);
}

void
jobs_pack_task(buf_t *out, jobs_type_t type, const char *task_id, uint64_t attempt)
{
    msgpack_packer pk;
    s_begin(&pk, out, type, 2);
    s_task(&pk, task_id, attempt);
}

void
jobs_pack_progress(buf_t *out, const char *task_id, uint64_t attempt,
                   const jobs_progress_t *progress, const char *message)
{
    msgpack_packer pk;
    s_begin(&pk, out, JOBS_PROGRESS, 2 + (progress != NULL) + (message != NULL));
    s_task(&pk, task_id, attempt);
    if (progress)
        jobs_pack_kv_progress(&pk, progress);
    if (message)
        wire_pack_kv_str(&pk, "message", message, strlen(message));
}

void
jobs_pack_done(buf_t *out, const char *task_id, uint64_t attempt, const char *status,
               const char *reason, const char *message, const void *result, size_t result_len)
{
    msgpack_packer pk;
    s_begin(&pk, out, JOBS_DONE, 3 + (reason != NULL) + (message != NULL) + (result != NULL));
    s_task(&pk, task_id, attempt);
    wire_pack_kv_str(&pk, "status", status, strlen(status));
    if (reason)
        wire_pack_kv_str(&pk, "reason", reason, strlen(reason));
    if (message)
        wire_pack_kv_str(&pk, "message", message, strlen(message));
    if (result) {
        wire_pack_str(&pk, "result");
        buf_append(out, result, result_len);
    }
}

void
jobs_pack_kv_progress(msgpack_packer *pk, const jobs_progress_t *progress)
{
    wire_pack_str(pk, "progress");
    if (progress->is_float)
        msgpack_pack_double(pk, progress->f);
    else
        msgpack_pack_uint64(pk, progress->u);
}

void
jobs_pack_welcome(buf_t *out, uint64_t heartbeat_ms, uint64_t liveness)
{
    msgpack_packer pk;
    s_begin(&pk, out, JOBS_WELCOME, 2);
    wire_pack_kv_u64(&pk, "heartbeat_ms", heartbeat_ms);
    wire_pack_kv_u64(&pk, "liveness", liveness);
}

void
jobs_pack_job(buf_t *out, const char *task_id, const char *user_id, const char *kind,
              const void *args, size_t args_len, uint64_t attempt, uint64_t timeout_s)
{
    msgpack_packer pk;
    s_begin(&pk, out, JOBS_JOB, 6);
    s_task(&pk, task_id, attempt);
    wire_pack_kv_str(&pk, "user_id", user_id, strlen(user_id));
    wire_pack_kv_str(&pk, "kind", kind, strlen(kind));
    wire_pack_str(&pk, "args");
    if (args)
        buf_append(out, args, args_len);
    else
        msgpack_pack_nil(&pk);
    wire_pack_kv_u64(&pk, "timeout_s", timeout_s);
}
