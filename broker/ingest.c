/*  ingest.c: worker events in, answers out (ROUTER).
 *
 *  A worker message is [identity][optional empty delimiter frames][event]:
 *  DEALER workers send the event alone, REQ workers add the delimiter, and
 *  the answer goes back with the same envelope. Every message gets exactly
 *  one answer:
 *      {"ok":true,"pseq":N,"seq":S}            (pseq only if the event had one)
 *      {"ok":true,"pseq":N,"seq":S,"duplicate":true}
 *      {"ok":false,"error":"<code>","detail":"<sentence>"[,"pseq":N]}
 *
 *  Messages are handled in batches: each is validated and recorded in the
 *  state (and the journal's buffer), then the journal is written once, and
 *  only then are the batch's events published and its answers sent. So an
 *  "ok" always means recorded (and journaled, with a journal), and no gateway
 *  ever sees an event a restarted broker would not know.
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "zmsg.h"

#define S_WARN_PER_SECOND 10

static void
s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/*  Starts the answer of pending message p in the batch's answer buffer. */
static void
s_answer_begin(broker_t *bk, bk_pending_t *p, msgpack_packer *pk)
{
    p->answer_off = bk->answers.len;
    msgpack_packer_init(pk, &bk->answers, buf_msgpack_write);
}

static void
s_answer_end(broker_t *bk, bk_pending_t *p)
{
    p->answer_len = bk->answers.len - p->answer_off;
}

static void
s_answer_ok(broker_t *bk, bk_pending_t *p, const event_t *ev, uint64_t seq, int dup)
{
    msgpack_packer pk;
    s_answer_begin(bk, p, &pk);
    msgpack_pack_map(&pk, 2 + (ev->has_pseq ? 1 : 0) + (dup ? 1 : 0));
    s_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    if (ev->has_pseq) {
        s_pack_str(&pk, "pseq");
        msgpack_pack_uint64(&pk, ev->pseq);
    }
    s_pack_str(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    if (dup) {
        s_pack_str(&pk, "duplicate");
        msgpack_pack_true(&pk);
    }
    s_answer_end(bk, p);
}

/*  Logs a rejection, at most S_WARN_PER_SECOND lines a second (bad input
 *  must not flood the log either). */
static void
s_warn_rejected(broker_t *bk, bk_pending_t *p, const char *code, const char *detail)
{
    int64_t now = clock_mono_ms();
    if (now - bk->warn_window_ms >= 1000) {
        if (bk->warn_count > S_WARN_PER_SECOND)
            log_warn(&bk->log, "%u more rejected events not logged",
                     bk->warn_count - S_WARN_PER_SECOND);
        bk->warn_window_ms = now;
        bk->warn_count = 0;
    }
    if (++bk->warn_count > S_WARN_PER_SECOND)
        return;
    zmsg_t *m = &p->msg;
    size_t last = m->count - 1;
    const char *peer = zmq_msg_gets(&m->frames[last], "Peer-Address");
    log_warn(&bk->log, "rejected event from %s: %s: %s", peer ? peer : "?", code, detail);
}

static void
s_answer_error(broker_t *bk, bk_pending_t *p, const event_t *ev, const char *code,
               const char *detail)
{
    bk->stats.rejected++;
    s_warn_rejected(bk, p, code, detail);
    msgpack_packer pk;
    s_answer_begin(bk, p, &pk);
    msgpack_pack_map(&pk, 3 + (ev && ev->has_pseq ? 1 : 0));
    s_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    s_pack_str(&pk, "error");
    s_pack_str(&pk, code);
    s_pack_str(&pk, "detail");
    s_pack_str(&pk, detail);
    if (ev && ev->has_pseq) {
        s_pack_str(&pk, "pseq");
        msgpack_pack_uint64(&pk, ev->pseq);
    }
    s_answer_end(bk, p);
}

/*  Validates and records one message; the answer (and the event to
 *  publish) wait in p until the batch is journaled. */
static void
s_handle(broker_t *bk, bk_pending_t *p)
{
    zmsg_t *m = &p->msg;
    /* [identity][""...][event]: the payload is the first non-empty frame
     * after the identity (or the last frame, if all are empty: an empty
     * event from a DEALER), and must be the last. */
    size_t payload = 1;
    while (payload + 1 < m->count && zmsg_size(m, payload) == 0)
        payload++;
    p->envelope = payload < m->count ? payload : m->count;
    if (m->truncated || payload + 1 != m->count) {
        s_answer_error(bk, p, NULL, EVENT_E_MALFORMED,
                       "a message must carry exactly one event in one frame");
        return;
    }
    const void *bytes = zmsg_data(m, payload);
    size_t len = zmsg_size(m, payload);
    if (len > EVENT_WIRE_MAX) {
        char detail[120];
        snprintf(detail, sizeof detail, "event is %zu bytes; the limit is %d bytes", len,
                 EVENT_WIRE_MAX);
        s_answer_error(bk, p, NULL, EVENT_E_TOO_LARGE, detail);
        return;
    }
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, bytes, len, EVENT_FROM_WORKER, &err) != 0) {
        s_answer_error(bk, p, NULL, err.code, err.detail);
        return;
    }
    uint64_t seq = 0;
    bk_dedup_id_t id;
    if (ev.has_producer) {
        bk_dedup_hash(bk->dedup, &ev, bytes, len, &id);
        bk_dedup_result_t d = bk_dedup_find(bk->dedup, &id, &seq);
        if (d == BK_DEDUP_RESEND) {
            bk->stats.duplicates++;
            s_answer_ok(bk, p, &ev, seq, 1);
            return;
        }
        if (d == BK_DEDUP_CONFLICT) {
            char detail[200];
            snprintf(detail, sizeof detail,
                     "pseq %" PRIu64 " was already used by this producer for a different "
                     "event; give every event a new pseq",
                     ev.pseq);
            s_answer_error(bk, p, &ev, "pseq_reused", detail);
            return;
        }
    }
    bk_user_t *u = NULL;
    bk_blob_t *blob = NULL;
    int64_t wall = clock_wall_ms();
    switch (bk_state_record(&bk->state, &ev, clock_mono_ms(), wall, &bk->scratch, &u, &blob)) {
    case BK_RECORD_OK:
        break;
    case BK_RECORD_TOO_MANY_TASKS:
        s_answer_error(bk, p, &ev, "too_many_tasks",
                       "this user has too many live tasks; finish some first");
        return;
    case BK_RECORD_OVERLOADED:
        s_answer_error(bk, p, &ev, "overloaded", "the broker is at its memory limit; retry later");
        return;
    case BK_RECORD_NOMEM:
        s_answer_error(bk, p, &ev, "internal", "the broker ran out of memory");
        return;
    }
    seq = u->seq;
    if (ev.has_producer)
        bk_dedup_insert(bk->dedup, &id, seq);
    if (bk->journal)
        bk_persist_event(bk, blob, ev.has_producer ? &id : NULL, wall);
    p->user = u;
    p->blob = blob;
    blob->refs++; /* kept until published, whatever the state does meanwhile */
    bk->stats.accepted++;
    log_debug(&bk->log, "event user=%.*s task=%.*s status=%s seq=%" PRIu64, (int)u->id_len, u->id,
              (int)ev.task_id.len, ev.task_id.p, event_status_name(ev.status), seq);
    s_answer_ok(bk, p, &ev, seq, 0);
}

/*  Publishes p's event and sends its answer with the worker's envelope. */
static void
s_finish(broker_t *bk, bk_pending_t *p)
{
    if (p->blob) {
        if (bk_fanout_publish(bk, p->user, p->blob) != 0)
            log_error(&bk->log, "publish failed for user %.*s: %s", (int)p->user->id_len,
                      p->user->id, zmq_strerror(errno));
        bk_blob_unref(&p->blob);
    }
    zmsg_t *m = &p->msg;
    for (size_t i = 0; i < p->envelope; i++)
        if (zmq_send(bk->ingest, zmsg_data(m, i), zmsg_size(m, i), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return; /* the worker is gone: nothing to answer */
    (void)zmq_send(bk->ingest, bk->answers.data + p->answer_off, p->answer_len, ZMQ_DONTWAIT);
}

int
bk_ingest_drain(broker_t *bk, int max)
{
    int n = 0;
    if (max > BK_BATCH)
        max = BK_BATCH;
    buf_reset(&bk->answers);
    while (n < max) {
        bk_pending_t *p = &bk->pending[n];
        memset(p, 0, offsetof(bk_pending_t, msg));
        if (zmsg_recv(&p->msg, bk->ingest, ZMQ_DONTWAIT) != 0)
            break;
        n++;
        if (p->msg.count >= 1)
            s_handle(bk, p);
    }
    if (n == 0)
        return 0;
    int journaled = !bk->journal || bk_journal_flush(bk->journal) == 0;
    if (!journaled || !buf_ok(&bk->answers)) {
        /* Nothing of this batch may be published or acknowledged: it is in
         * memory but not on disk. Stop; workers resend to the next broker,
         * which knows exactly what the journal holds. */
        log_error(&bk->log, "%s%s; stopping so that no unrecorded event is acknowledged",
                  journaled ? "out of memory for answers" : "journal write failed: ",
                  journaled ? "" : strerror(errno));
        bk->stop = 1;
        bk->exit_code = 1;
    }
    for (int i = 0; i < n; i++) {
        bk_pending_t *p = &bk->pending[i];
        if (!bk->stop && p->msg.count >= 1)
            s_finish(bk, p);
        bk_blob_unref(&p->blob);
        zmsg_close(&p->msg);
    }
    return n;
}
