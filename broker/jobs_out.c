/*  jobs_out.c: what the jobs endpoint sends: the task events of jobs
 *  (through the same path as a worker's event: state.c, persist.c,
 *  commit.c), answers to submitters, and job and cancel messages to pool
 *  workers. */
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
#include "jobs_wire.h"
#include "wire.h"
#include "zmtp.h"

/* ---------------------------------------------------------------- task events */

/*  Records and publishes a task event for j through the normal event path
 *  (validated as a worker's event would be), and queues answer (if any) to
 *  peer behind it in commit.c. data holds kind, attempt and extra_pairs
 *  more from extra(). 0, or -1 with why. */
int
bk_job_emit(broker_t *bk, const bk_job_t *j, const char *status, const char *message, size_t mlen,
            const jobs_progress_t *progress, uint32_t extra_pairs, bk_jpack_fn extra,
            const void *arg, bk_zpeer_t *peer, const buf_t *answer, bk_jwhy_t *why)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 4 + (message ? 1 : 0) + (progress ? 1 : 0));
    wire_pack_kv_str(&pk, "task_id", bk_job_tid(j), j->tid_len);
    wire_pack_kv_str(&pk, "user_id", bk_job_uid(j), j->uid_len);
    wire_pack_kv_str(&pk, "status", status, strlen(status));
    if (message)
        wire_pack_kv_str(&pk, "message", message, mlen);
    if (progress)
        jobs_pack_kv_progress(&pk, progress);
    wire_pack_str(&pk, "data");
    msgpack_pack_map(&pk, 2 + extra_pairs);
    wire_pack_kv_str(&pk, "kind", j->kind->name, strlen(j->kind->name));
    wire_pack_kv_u64(&pk, "attempt", j->attempt);
    if (extra)
        extra(&pk, arg);
    int rc = -1;
    event_t ev;
    event_error_t err;
    bk_user_t *u = NULL;
    bk_blob_t *blob = NULL;
    why->code = "internal";
    snprintf(why->detail, sizeof why->detail, "the broker ran out of memory");
    if (!buf_ok(&b))
        goto done;
    if (event_decode(&ev, b.data, b.len, EVENT_FROM_WORKER, &err) != 0) {
        why->code = err.code;
        snprintf(why->detail, sizeof why->detail, "%s", err.detail);
        goto done;
    }
    switch (bk_state_record(&bk->state, &ev, bk->now_ms, bk->wall_ms, &u, &blob)) {
    case BK_RECORD_OK:
        break;
    case BK_RECORD_TOO_MANY_TASKS:
        why->code = "too_many_tasks";
        snprintf(why->detail, sizeof why->detail,
                 "this user has too many live tasks; finish some first");
        goto done;
    case BK_RECORD_OVERLOADED:
        why->code = "overloaded";
        snprintf(why->detail, sizeof why->detail, "the broker is at its memory limit; retry later");
        goto done;
    case BK_RECORD_NOMEM:
        goto done;
    }
    rc = 0;
    if (bk->journal)
        bk_persist_event(bk, blob, NULL, bk->wall_ms);
    bk->stats.accepted++;
    bk_out_t *o = bk_commit_hold(bk);
    if (!o) {
        log_error(&bk->log, "out of memory for a job's event");
        goto done; /* recorded: a gateway repairs the gap with a replay */
    }
    o->user = u;
    o->blob = blob;
    blob->refs++;
    bk_state_pin(u);
    if (peer && answer && buf_ok(answer) && (o->big = malloc(answer->len)) != NULL) {
        o->peer = bk_zpeer_ref(peer);
        memcpy(o->big, answer->data, answer->len);
        o->big_len = answer->len;
    }
done:
    buf_free(&b);
    return rc;
}

void
bk_job_pack_worker(msgpack_packer *pk, const void *arg)
{
    const bk_jworker_t *w = arg;
    wire_pack_kv_str(pk, "worker", w->name, strlen(w->name));
}

void
bk_job_pack_reason(msgpack_packer *pk, const void *arg)
{
    wire_pack_kv_str(pk, "reason", arg, strlen(arg));
}

/*  "result": the worker's msgpack value as it came (validated with the
 *  event, as data). */
void
bk_job_pack_result(msgpack_packer *pk, const void *arg)
{
    const bk_jraw_t *r = arg;
    wire_pack_str(pk, "result");
    pk->callback(pk->data, (const char *)r->p, r->len);
}

/* ---------------------------------------------------------------- answers */

void
bk_job_send(bk_zpeer_t *peer, const buf_t *msg)
{
    buf_t *out = bk_zpeer_out(peer);
    if (out && buf_ok(msg))
        zmtp_put_frame(out, msg->data, msg->len, 0);
}

/*  {"ok":false,"error":code,"detail":detail[,"pseq":N]} to peer, now. */
void
bk_job_refuse(broker_t *bk, bk_zpeer_t *peer, const char *code, const char *detail, int has_pseq,
              uint64_t pseq)
{
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 3 + (has_pseq ? 1 : 0));
    wire_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    wire_pack_kv_str(&pk, "error", code, strlen(code));
    wire_pack_kv_str(&pk, "detail", detail, strlen(detail));
    if (has_pseq)
        wire_pack_kv_u64(&pk, "pseq", pseq);
    bk_job_send(peer, &b);
    buf_free(&b);
    bk->jobs->stats.refused++;
    log_info(&bk->log, "job refused for %s: %s: %s", bk_zpeer_addr(peer), code, detail);
}

/*  {"type":"job",...} to its worker. */
void
bk_job_send_job(const bk_job_t *j, bk_jworker_t *w)
{
    buf_t b;
    buf_init(&b);
    jobs_pack_job(&b, bk_job_tid(j), bk_job_uid(j), j->kind->name, j->args_len ? j->args : NULL,
                  j->args_len, j->attempt, j->timeout_s);
    bk_job_send(w->peer, &b);
    buf_free(&b);
}

/*  {"type":"cancel","task_id":..,"attempt":N} to a running job's worker. */
void
bk_job_send_cancel(const bk_job_t *j)
{
    if (!j->worker)
        return;
    buf_t b;
    buf_init(&b);
    jobs_pack_task(&b, JOBS_CANCEL, bk_job_tid(j), j->attempt);
    bk_job_send(j->worker->peer, &b);
    buf_free(&b);
}
