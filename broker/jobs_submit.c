/*  jobs_submit.c: submits (validated, with their (producer, pseq) window)
 *  and cancels from any client of the jobs endpoint. */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "jobs.h"
#include "mpread.h"
#include "wire.h"
#include "zmtp.h"

/* ---------------------------------------------------------------- submit and cancel */

/*  A submit's fields, pointing into the message. */
typedef struct {
    mp_value_t kind, user_id, task_id, producer;
    const uint8_t *args;
    size_t args_len;
    int has_kind, has_user, has_task, has_producer, has_pseq, has_timeout, has_retries;
    uint64_t pseq, timeout_s, max_retries;
} s_submit_t;

/*  Past the header of a message's map (the caller found it well-formed):
 *  its pair count. */
static uint32_t
s_open(mp_reader_t *r, const uint8_t *data, size_t len)
{
    mp_value_t map;
    mp_reader_init(r, data, len);
    return mp_read(r, &map) == 0 && map.type == MP_MAP ? map.v.n : 0;
}

/*  Reads a submit; 0, or -1 with why (code, detail). */
static int
s_read_submit(mp_reader_t *r, uint32_t pairs, s_submit_t *s, bk_jwhy_t *why)
{
    for (uint32_t i = 0; i < pairs; i++) {
        mp_value_t k, v;
        const uint8_t *at = r->p;
        if (mp_read_pair(r, &k, &v, EVENT_DEPTH_MAX + 1) != 0) {
            why->code = EVENT_E_MALFORMED;
            snprintf(why->detail, sizeof why->detail, "the message is not valid msgpack");
            return -1;
        }
        (void)at;
#define S_IS(name) mp_str_eq(&k, name)
        if (S_IS("type"))
            continue;
        if (S_IS("args")) {
            /* the value's bytes: everything after the key */
            const uint8_t *end = r->p;
            mp_reader_t kr;
            mp_reader_init(&kr, at, (size_t)(end - at));
            mp_value_t kk;
            (void)mp_read(&kr, &kk); /* past the key */
            s->args = kr.p;
            s->args_len = (size_t)(end - kr.p);
            if (v.type == MP_NIL)
                s->args = NULL, s->args_len = 0;
            continue;
        }
        int is_str = v.type == MP_STR, is_uint = v.type == MP_UINT;
        if (v.type == MP_NIL)
            continue; /* nil: absent */
        if ((S_IS("kind") || S_IS("user_id") || S_IS("task_id") || S_IS("producer")) && !is_str) {
            why->code = EVENT_E_WRONG_TYPE;
            snprintf(why->detail, sizeof why->detail, "field '%.*s' must be a string",
                     (int)k.v.s.len, k.v.s.p);
            return -1;
        }
        if ((S_IS("pseq") || S_IS("timeout_s") || S_IS("max_retries")) && !is_uint) {
            why->code = EVENT_E_WRONG_TYPE;
            snprintf(why->detail, sizeof why->detail, "field '%.*s' must be a non-negative integer",
                     (int)k.v.s.len, k.v.s.p);
            return -1;
        }
        if (S_IS("kind"))
            s->kind = v, s->has_kind = 1;
        else if (S_IS("user_id"))
            s->user_id = v, s->has_user = 1;
        else if (S_IS("task_id"))
            s->task_id = v, s->has_task = 1;
        else if (S_IS("producer"))
            s->producer = v, s->has_producer = 1;
        else if (S_IS("pseq"))
            s->pseq = v.v.u, s->has_pseq = 1;
        else if (S_IS("timeout_s"))
            s->timeout_s = v.v.u, s->has_timeout = 1;
        else if (S_IS("max_retries"))
            s->max_retries = v.v.u, s->has_retries = 1;
        else {
            why->code = EVENT_E_UNKNOWN_FIELD;
            snprintf(why->detail, sizeof why->detail, "unknown field '%.*s'",
                     k.v.s.len > 64 ? 64 : (int)k.v.s.len, k.v.s.p);
            return -1;
        }
#undef S_IS
    }
    why->code = EVENT_E_MISSING_FIELD;
    if (!s->has_kind || !s->has_user) {
        snprintf(why->detail, sizeof why->detail, "field '%s' is required",
                 s->has_kind ? "user_id" : "kind");
        return -1;
    }
    why->code = EVENT_E_INVALID_VALUE;
    if (!jobs_kind_valid(s->kind.v.s.p, s->kind.v.s.len)) {
        snprintf(why->detail, sizeof why->detail,
                 "field 'kind' must be 1..%d bytes of [A-Za-z0-9_.-]", BK_JOBS_KIND_MAX);
        return -1;
    }
    if (s->has_producer && !s->has_pseq) {
        why->code = EVENT_E_MISSING_FIELD;
        snprintf(why->detail, sizeof why->detail, "field 'pseq' is required with 'producer'");
        return -1;
    }
    if (s->has_producer && (s->producer.v.s.len < 1 || s->producer.v.s.len > EVENT_PRODUCER_MAX)) {
        snprintf(why->detail, sizeof why->detail, "field 'producer' must be 1..%d bytes",
                 EVENT_PRODUCER_MAX);
        return -1;
    }
    if (s->has_timeout && (s->timeout_s < 1 || s->timeout_s > BK_JOBS_TIMEOUT_MAX)) {
        snprintf(why->detail, sizeof why->detail, "field 'timeout_s' must be 1..%d",
                 BK_JOBS_TIMEOUT_MAX);
        return -1;
    }
    if (s->has_retries && s->max_retries > BK_JOBS_RETRIES_MAX) {
        snprintf(why->detail, sizeof why->detail, "field 'max_retries' must be 0..%d",
                 BK_JOBS_RETRIES_MAX);
        return -1;
    }
    if (s->args_len > EVENT_DATA_MAX) {
        why->code = EVENT_E_TOO_LARGE;
        snprintf(why->detail, sizeof why->detail, "field 'args' is %zu bytes; the limit is %d",
                 s->args_len, EVENT_DATA_MAX);
        return -1;
    }
    return 0;
}

/*  The idempotency key of a submit, in key (NUL-free bytes + decimal). */
static size_t
s_idem_key(const s_submit_t *s, char *key, size_t cap)
{
    int n = snprintf(key, cap, "%.*s%c%" PRIu64, (int)s->producer.v.s.len, s->producer.v.s.p, 0,
                     s->pseq);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

void
bk_job_remember(bk_jobs_t *self, const char *key, size_t klen, const char *tid, size_t tlen)
{
    bk_jidem_t *e = self->ring[self->ring_next];
    if (e)
        strmap_remove(self->idem, e->key, e->key_len);
    else if (!(e = malloc(sizeof *e)))
        return;
    memcpy(e->key, key, klen);
    e->key_len = klen;
    memcpy(e->task_id, tid, tlen);
    e->task_id[tlen] = '\0';
    if (strmap_put(self->idem, e->key, e->key_len, e) != 0) {
        free(e);
        e = NULL;
    }
    self->ring[self->ring_next] = e;
    self->ring_next = (self->ring_next + 1) % BK_JOBS_IDEM_MAX;
}

/*  {"ok":true,"task_id":..[,"pseq":N][,"duplicate":true]} into b. */
static void
s_pack_accepted(buf_t *b, const char *tid, size_t tlen, const s_submit_t *s, int duplicate)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, buf_msgpack_write);
    msgpack_pack_map(&pk, 2 + (s->has_pseq ? 1 : 0) + (duplicate ? 1 : 0));
    wire_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    wire_pack_kv_str(&pk, "task_id", tid, tlen);
    if (s->has_pseq)
        wire_pack_kv_u64(&pk, "pseq", s->pseq);
    if (duplicate) {
        wire_pack_str(&pk, "duplicate");
        msgpack_pack_true(&pk);
    }
}

void
bk_job_submit(broker_t *bk, bk_zpeer_t *peer, const uint8_t *data, size_t len)
{
    bk_jobs_t *self = bk->jobs;
    s_submit_t s = {0};
    bk_jwhy_t why;
    mp_reader_t r;
    uint32_t pairs = s_open(&r, data, len);
    if (s_read_submit(&r, pairs, &s, &why) != 0) {
        bk_job_refuse(bk, peer, why.code, why.detail, s.has_pseq, s.pseq);
        return;
    }
    char key[EVENT_PRODUCER_MAX + 24];
    size_t klen = s.has_producer ? s_idem_key(&s, key, sizeof key) : 0;
    bk_jidem_t *seen = klen ? strmap_get(self->idem, key, klen) : NULL;
    if (seen) {
        buf_t b;
        buf_init(&b);
        s_pack_accepted(&b, seen->task_id, strlen(seen->task_id), &s, 1);
        bk_job_send(peer, &b);
        buf_free(&b);
        self->stats.duplicates++;
        return;
    }
    char made[24];
    const char *tid = made;
    size_t tlen;
    if (s.has_task) {
        tid = s.task_id.v.s.p;
        tlen = s.task_id.v.s.len;
    }
    else
        tlen = (size_t)snprintf(made, sizeof made, "j-%016" PRIx64, self->next_id++);
    if (tlen == 0 || tlen > EVENT_TASK_ID_MAX || s.user_id.v.s.len == 0 ||
        s.user_id.v.s.len > EVENT_USER_ID_MAX) {
        bk_job_refuse(bk, peer, EVENT_E_INVALID_VALUE,
                      tlen == 0 || tlen > EVENT_TASK_ID_MAX ? "field 'task_id' must be 1..128 bytes"
                                                            : "field 'user_id' must be 1..64 bytes",
                      s.has_pseq, s.pseq);
        return;
    }
    if (strmap_get(self->jobs, tid, tlen)) {
        bk_job_refuse(bk, peer, "task_exists", "a job with this task_id is queued or running",
                      s.has_pseq, s.pseq);
        return;
    }
    if (self->queued >= self->max_queued) {
        char d[120];
        snprintf(d, sizeof d, "%u jobs are queued, the broker's limit (--max-queued)",
                 self->queued);
        bk_job_refuse(bk, peer, "queue_full", d, s.has_pseq, s.pseq);
        return;
    }
    bk_jkind_t *kind = bk_job_kind(self, s.kind.v.s.p, s.kind.v.s.len);
    bk_job_t *j = calloc(1, sizeof *j + tlen + 1 + s.user_id.v.s.len + 1);
    if (!kind || !j || (s.args_len && !(j->args = malloc(s.args_len)))) {
        if (j)
            bk_job_free(j);
        bk_job_refuse(bk, peer, "internal", "the broker ran out of memory", s.has_pseq, s.pseq);
        return;
    }
    memcpy(j->ids, tid, tlen);
    memcpy(j->ids + tlen + 1, s.user_id.v.s.p, s.user_id.v.s.len);
    j->tid_len = (uint16_t)tlen;
    j->uid_len = (uint8_t)s.user_id.v.s.len;
    j->kind = kind;
    if (s.args_len)
        memcpy(j->args, s.args, s.args_len);
    j->args_len = (uint32_t)s.args_len;
    j->timeout_s = s.has_timeout ? (uint32_t)s.timeout_s : BK_JOBS_TIMEOUT_DEFAULT;
    j->max_retries = s.has_retries ? (uint32_t)s.max_retries : BK_JOBS_RETRIES_DEFAULT;
    /* The args must be what an event's data may be: checked by the event
     * path itself (an event carrying them is decoded, never recorded). */
    if (j->args_len) {
        buf_t probe;
        buf_init(&probe);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &probe, buf_msgpack_write);
        msgpack_pack_map(&pk, 4);
        wire_pack_kv_str(&pk, "task_id", bk_job_tid(j), j->tid_len);
        wire_pack_kv_str(&pk, "user_id", bk_job_uid(j), j->uid_len);
        wire_pack_kv_str(&pk, "status", "queued", 6);
        wire_pack_str(&pk, "data");
        pk.callback(pk.data, (const char *)j->args, j->args_len);
        event_t ev;
        event_error_t err;
        int oom = !buf_ok(&probe);
        int bad = oom || event_decode(&ev, probe.data, probe.len, EVENT_FROM_WORKER, &err) != 0;
        buf_free(&probe);
        if (bad) {
            char d[240];
            snprintf(d, sizeof d, "args: %s", oom ? "out of memory" : err.detail);
            bk_job_refuse(bk, peer, oom ? "internal" : err.code, d, s.has_pseq, s.pseq);
            bk_job_free(j);
            return;
        }
    }
    if (klen && klen <= sizeof j->idem) {
        memcpy(j->idem, key, klen);
        j->idem_len = (uint8_t)klen;
    }
    j->state = BK_JOB_QUEUED;
    bk_job_persist(bk, j); /* before its queued event: the answer waits for both */
    buf_t answer;
    buf_init(&answer);
    s_pack_accepted(&answer, bk_job_tid(j), j->tid_len, &s, 0);
    if (bk_job_emit(bk, j, "queued", NULL, 0, NULL, 0, NULL, NULL, peer, &answer, &why) != 0) {
        buf_free(&answer);
        bk_job_persist_gone(bk, j); /* its 'J' is in the journal: undone */
        bk_job_refuse(bk, peer, why.code, why.detail, s.has_pseq, s.pseq);
        bk_job_free(j);
        return;
    }
    buf_free(&answer);
    if (strmap_put(self->jobs, j->ids, j->tid_len, j) != 0) {
        log_error(&bk->log, "out of memory for job %s", bk_job_tid(j)); /* its task stays queued */
        bk_job_persist_gone(bk, j);
        bk_job_free(j);
        return;
    }
    if (klen)
        bk_job_remember(self, key, klen, bk_job_tid(j), j->tid_len);
    bk_job_enqueue(self, j);
    self->stats.submitted++;
    log_info(&bk->log, "job %s submitted: kind %s, user %s", bk_job_tid(j), kind->name,
             bk_job_uid(j));
    bk_job_dispatch_kind(bk, kind);
}

/*  {"type":"cancel","task_id":..,"user_id":..}: only the job's own user. */
void
bk_job_cancel(broker_t *bk, bk_zpeer_t *peer, const uint8_t *data, size_t len)
{
    mp_value_t tid = {0}, uid = {0};
    int has_pseq = 0;
    uint64_t pseq = 0;
    mp_reader_t r;
    uint32_t pairs = s_open(&r, data, len);
    for (uint32_t i = 0; i < pairs; i++) {
        mp_value_t k, v;
        if (mp_read_pair(&r, &k, &v, 4) != 0) {
            bk_job_refuse(bk, peer, EVENT_E_MALFORMED, "the message is not valid msgpack", 0, 0);
            return;
        }
        if (mp_str_eq(&k, "task_id") && v.type == MP_STR)
            tid = v;
        else if (mp_str_eq(&k, "user_id") && v.type == MP_STR)
            uid = v;
        else if (mp_str_eq(&k, "pseq") && v.type == MP_UINT)
            pseq = v.v.u, has_pseq = 1;
        else if (!mp_str_eq(&k, "type")) {
            bk_job_refuse(bk, peer, EVENT_E_UNKNOWN_FIELD,
                          "a cancel carries type, task_id and user_id (strings), and pseq",
                          has_pseq, pseq);
            return;
        }
    }
    if (tid.type != MP_STR || uid.type != MP_STR) {
        bk_job_refuse(bk, peer, EVENT_E_MISSING_FIELD, "a cancel needs task_id and user_id",
                      has_pseq, pseq);
        return;
    }
    bk_job_t *j = strmap_get(bk->jobs->jobs, tid.v.s.p, tid.v.s.len);
    if (!j) {
        bk_job_refuse(bk, peer, "not_found", "no queued or running job has this task_id", has_pseq,
                      pseq);
        return;
    }
    if (j->uid_len != uid.v.s.len || memcmp(bk_job_uid(j), uid.v.s.p, uid.v.s.len) != 0) {
        /* not this user's: the same answer as for no job, so ids do not leak */
        bk_job_refuse(bk, peer, "not_found", "no queued or running job has this task_id", has_pseq,
                      pseq);
        return;
    }
    const char *was =
        j->state == BK_JOB_RUNNING || j->state == BK_JOB_CANCELLING ? "running" : "queued";
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 2 + (has_pseq ? 1 : 0));
    wire_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    wire_pack_kv_str(&pk, "was", was, strlen(was));
    if (has_pseq)
        wire_pack_kv_u64(&pk, "pseq", pseq);
    bk_job_send(peer, &b);
    buf_reset(&b);
    log_info(&bk->log, "job %s: cancel asked (%s)", bk_job_tid(j), was);
    if (j->state == BK_JOB_RUNNING) {
        bk_job_send_cancel(j);
        j->state = BK_JOB_CANCELLING;
        j->due_ms = bk->now_ms + BK_JOBS_CANCEL_WAIT_MS;
    }
    else if (j->state != BK_JOB_CANCELLING)
        bk_job_finish(bk, j, "cancelled", NULL, NULL, 0, NULL);
    buf_free(&b);
}
