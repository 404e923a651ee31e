/*  ingest.c: worker events in, answers out (ROUTER).
 *
 *  A worker message is [identity][optional empty delimiter frames][event]:
 *  DEALER workers send the event alone, REQ workers add the delimiter, and
 *  the answer goes back with the same envelope. Every message gets exactly
 *  one answer, after the event is recorded and published:
 *      {"ok":true,"pseq":N,"seq":S}            (pseq only if the event had one)
 *      {"ok":true,"pseq":N,"seq":S,"duplicate":true}
 *      {"ok":false,"error":"<code>","detail":"<sentence>"[,"pseq":N]}
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
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

/*  Sends the envelope (frames before the payload) and then the answer. */
static void
s_send(broker_t *bk, zmsg_t *m, size_t payload)
{
    for (size_t i = 0; i < payload; i++)
        if (zmq_send(bk->ingest, zmsg_data(m, i), zmsg_size(m, i), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return; /* the worker is gone: nothing to answer */
    (void)zmq_send(bk->ingest, bk->scratch.data, bk->scratch.len, ZMQ_DONTWAIT);
}

static void
s_answer_ok(broker_t *bk, zmsg_t *m, size_t payload, const event_t *ev, uint64_t seq, int dup)
{
    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, 2 + (ev->has_producer ? 1 : 0) + (dup ? 1 : 0));
    s_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    if (ev->has_producer) {
        s_pack_str(&pk, "pseq");
        msgpack_pack_uint64(&pk, ev->pseq);
    }
    s_pack_str(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    if (dup) {
        s_pack_str(&pk, "duplicate");
        msgpack_pack_true(&pk);
    }
    s_send(bk, m, payload);
}

/*  Logs a rejection, at most S_WARN_PER_SECOND lines a second (bad input
 *  must not flood the log either). */
static void
s_warn_rejected(broker_t *bk, zmsg_t *m, size_t payload, const char *code, const char *detail)
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
    const char *peer =
        payload < m->count ? zmq_msg_gets(&m->frames[payload], "Peer-Address") : NULL;
    log_warn(&bk->log, "rejected event from %s: %s: %s", peer ? peer : "?", code, detail);
}

static void
s_answer_error(broker_t *bk, zmsg_t *m, size_t payload, const event_t *ev, const char *code,
               const char *detail)
{
    bk->stats.rejected++;
    s_warn_rejected(bk, m, payload, code, detail);
    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, 3 + (ev && ev->has_producer ? 1 : 0));
    s_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    s_pack_str(&pk, "error");
    s_pack_str(&pk, code);
    s_pack_str(&pk, "detail");
    s_pack_str(&pk, detail);
    if (ev && ev->has_producer) {
        s_pack_str(&pk, "pseq");
        msgpack_pack_uint64(&pk, ev->pseq);
    }
    s_send(bk, m, payload);
}

static void
s_handle(broker_t *bk, zmsg_t *m)
{
    /* [identity][""...][event]: the payload is the first non-empty frame
     * after the identity (or the last frame, if all are empty: an empty
     * event from a DEALER), and must be the last. */
    size_t payload = 1;
    while (payload + 1 < m->count && zmsg_size(m, payload) == 0)
        payload++;
    if (m->truncated || payload + 1 != m->count) {
        s_answer_error(bk, m, payload < m->count ? payload : m->count, NULL, EVENT_E_MALFORMED,
                       "a message must carry exactly one event in one frame");
        return;
    }
    const void *bytes = zmsg_data(m, payload);
    size_t len = zmsg_size(m, payload);
    if (len > EVENT_WIRE_MAX) {
        char detail[120];
        snprintf(detail, sizeof detail, "event is %zu bytes; the limit is %d bytes", len,
                 EVENT_WIRE_MAX);
        s_answer_error(bk, m, payload, NULL, EVENT_E_TOO_LARGE, detail);
        return;
    }
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, bytes, len, EVENT_FROM_WORKER, &err) != 0) {
        s_answer_error(bk, m, payload, NULL, err.code, err.detail);
        return;
    }
    uint64_t seq = 0;
    if (ev.has_producer) {
        bk_dedup_result_t d = bk_dedup_find(bk->dedup, &ev, bytes, len, &seq);
        if (d == BK_DEDUP_RESEND) {
            bk->stats.duplicates++;
            s_answer_ok(bk, m, payload, &ev, seq, 1);
            return;
        }
        if (d == BK_DEDUP_CONFLICT) {
            char detail[200];
            snprintf(detail, sizeof detail,
                     "pseq %" PRIu64 " was already used by this producer for a different "
                     "event; give every event a new pseq",
                     ev.pseq);
            s_answer_error(bk, m, payload, &ev, "pseq_reused", detail);
            return;
        }
    }
    bk_user_t *u = NULL;
    bk_blob_t *blob = NULL;
    switch (bk_state_record(&bk->state, &ev, clock_mono_ms(), clock_wall_ms(), &bk->scratch, &u,
                            &blob)) {
    case BK_RECORD_OK:
        break;
    case BK_RECORD_TOO_MANY_TASKS:
        s_answer_error(bk, m, payload, &ev, "too_many_tasks",
                       "this user has too many live tasks; finish some first");
        return;
    case BK_RECORD_OVERLOADED:
        s_answer_error(bk, m, payload, &ev, "overloaded",
                       "the broker is at its memory limit; retry later");
        return;
    case BK_RECORD_NOMEM:
        s_answer_error(bk, m, payload, &ev, "internal", "the broker ran out of memory");
        return;
    }
    seq = u->seq;
    if (bk_fanout_publish(bk, u, blob) != 0)
        log_error(&bk->log, "publish failed for user %.*s seq %" PRIu64 ": %s", (int)u->id_len,
                  u->id, seq, zmq_strerror(errno));
    if (ev.has_producer)
        bk_dedup_insert(bk->dedup, &ev, bytes, len, seq);
    bk->stats.accepted++;
    log_debug(&bk->log, "event user=%.*s task=%.*s status=%s seq=%" PRIu64, (int)u->id_len, u->id,
              (int)ev.task_id.len, ev.task_id.p, event_status_name(ev.status), seq);
    s_answer_ok(bk, m, payload, &ev, seq, 0);
}

int
bk_ingest_drain(broker_t *bk, int max)
{
    int n = 0;
    zmsg_t m;
    while (n < max && zmsg_recv(&m, bk->ingest, ZMQ_DONTWAIT) == 0) {
        if (m.count >= 1)
            s_handle(bk, &m);
        zmsg_close(&m);
        n++;
    }
    return n;
}
