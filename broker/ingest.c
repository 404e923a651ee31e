/*  ingest.c: worker events in (ROUTER), their answers queued.
 *
 *  A worker message is [identity][optional empty delimiter frames][event]:
 *  DEALER workers send the event alone, REQ workers add the delimiter, and
 *  the answer goes back with the same envelope. Every message gets exactly
 *  one answer:
 *      {"ok":true,"pseq":N,"seq":S}            (pseq only if the event had one)
 *      {"ok":true,"pseq":N,"seq":S,"duplicate":true}
 *      {"ok":false,"error":"<code>","detail":"<sentence>"[,"pseq":N]}
 *
 *  Messages are handled in batches (up to BK_BATCH): each is validated and
 *  recorded in the state (and the journal's buffer), and its answer (with
 *  the event to publish) is queued in commit.c. Then the batch is written to
 *  the journal with one write(), and commit.c lets the answers and events
 *  leave once the journal holds them as the fsync policy requires.
 *
 *  Messages are read and decoded a few ahead of the one being recorded:
 *  decoding and hashing need no state, and the cache line of a message's
 *  idempotency slot (in an index of many megabytes) is then fetched while
 *  the earlier ones are recorded, not when its turn comes.
 */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "mpwrite.h"
#include "wire.h"
#include "zmtp.h"

#define S_WARN_PER_SECOND 10
#define S_AHEAD           8 /* messages decoded ahead of the one recorded */

/*  A message read ahead of its turn. */
typedef struct {
    bk_zmsg_t msg;
    size_t payload; /* the frame holding the event */
    enum { S_FRAMES, S_TOO_LARGE, S_INVALID, S_DECODED } stage;
    event_t ev;          /* S_DECODED */
    event_error_t err;   /* S_INVALID */
    bk_dedup_id_t id;    /* S_DECODED with a producer */
} s_ahead_t;

/*  The outcome of one message, before it is queued. */
typedef struct {
    bk_user_t *user; /* accepted: the event to publish */
    bk_blob_t *blob;
    char answer[sizeof((bk_out_t *)0)->answer];
    size_t answer_len; /* 0: the answer is in bk->scratch (an error) */
} s_result_t;

static void
s_answer_ok(s_result_t *r, const event_t *ev, uint64_t seq, int dup)
{
    uint8_t *p = (uint8_t *)r->answer;
    p = mp_put_fixmap(p, 2 + (ev->has_pseq ? 1 : 0) + (dup ? 1 : 0));
    p = mp_put_lit(p, "ok");
    p = mp_put_bool(p, 1);
    if (ev->has_pseq) {
        p = mp_put_lit(p, "pseq");
        p = mp_put_uint(p, ev->pseq);
    }
    p = mp_put_lit(p, "seq");
    p = mp_put_uint(p, seq);
    if (dup) {
        p = mp_put_lit(p, "duplicate");
        p = mp_put_bool(p, 1);
    }
    r->answer_len = (size_t)(p - (uint8_t *)r->answer);
}

/*  Logs a rejection, at most S_WARN_PER_SECOND lines a second (bad input
 *  must not flood the log either). */
static void
s_warn_rejected(broker_t *bk, bk_zmsg_t *m, const char *code, const char *detail)
{
    int64_t now = bk->now_ms;
    if (now - bk->warn_window_ms >= 1000) {
        if (bk->warn_count > S_WARN_PER_SECOND)
            log_warn(&bk->log, "%u more rejected events not logged",
                     bk->warn_count - S_WARN_PER_SECOND);
        bk->warn_window_ms = now;
        bk->warn_count = 0;
    }
    if (++bk->warn_count > S_WARN_PER_SECOND)
        return;
    log_warn(&bk->log, "rejected event from %s: %s: %s", bk_zpeer_addr(m->peer), code, detail);
}

/*  An error answer, packed in bk->scratch. */
static void
s_answer_error(broker_t *bk, bk_zmsg_t *m, s_result_t *r, const event_t *ev, const char *code,
               const char *detail)
{
    bk->stats.rejected++;
    s_warn_rejected(bk, m, code, detail);
    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, 3 + (ev && ev->has_pseq ? 1 : 0));
    wire_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    wire_pack_str(&pk, "error");
    wire_pack_str(&pk, code);
    wire_pack_str(&pk, "detail");
    wire_pack_str(&pk, detail);
    if (ev && ev->has_pseq) {
        wire_pack_str(&pk, "pseq");
        msgpack_pack_uint64(&pk, ev->pseq);
    }
    r->answer_len = 0;
}

/*  Everything that needs no state: the frames, the event, its hashes. */
static void
s_prepare(broker_t *bk, s_ahead_t *a)
{
    bk_zmsg_t *m = &a->msg;
    /* [""...][event]: the payload is the first non-empty frame (or the
     * last frame, if all are empty: an empty event from a DEALER), and must
     * be the last; REQ peers put one empty delimiter frame before it. */
    size_t payload = 0;
    while (payload + 1 < m->count && m->frames[payload].len == 0)
        payload++;
    a->payload = payload;
    if (m->truncated || payload + 1 != m->count) {
        a->stage = S_FRAMES;
        return;
    }
    const void *bytes = m->frames[payload].p;
    size_t len = m->frames[payload].len;
    if (len > EVENT_WIRE_MAX) {
        a->stage = S_TOO_LARGE;
        return;
    }
    if (event_decode(&a->ev, bytes, len, EVENT_FROM_WORKER, &a->err) != 0) {
        a->stage = S_INVALID;
        return;
    }
    a->stage = S_DECODED;
    if (a->ev.has_producer) {
        bk_dedup_hash(bk->dedup, &a->ev, bytes, len, &a->id);
        bk_dedup_prefetch(bk->dedup, &a->id);
    }
}

/*  Validates and records one message. */
static void
s_record(broker_t *bk, s_ahead_t *a, s_result_t *r)
{
    bk_zmsg_t *m = &a->msg;
    if (a->stage == S_FRAMES) {
        s_answer_error(bk, m, r, NULL, EVENT_E_MALFORMED,
                       "a message must carry exactly one event in one frame");
        return;
    }
    if (a->stage == S_TOO_LARGE) {
        char detail[120];
        snprintf(detail, sizeof detail, "event is %zu bytes; the limit is %d bytes",
                 (size_t)m->frames[a->payload].len, EVENT_WIRE_MAX);
        s_answer_error(bk, m, r, NULL, EVENT_E_TOO_LARGE, detail);
        return;
    }
    if (a->stage == S_INVALID) {
        s_answer_error(bk, m, r, NULL, a->err.code, a->err.detail);
        return;
    }
    event_t ev = a->ev;
    uint64_t seq = 0;
    if (ev.has_producer) {
        bk_dedup_result_t d = bk_dedup_find(bk->dedup, &a->id, &seq);
        if (d == BK_DEDUP_RESEND) {
            /* Queued behind the original: if that is not on disk yet, this
             * answer waits for it too. */
            bk->stats.duplicates++;
            s_answer_ok(r, &ev, seq, 1);
            return;
        }
        if (d == BK_DEDUP_CONFLICT) {
            char detail[200];
            snprintf(detail, sizeof detail,
                     "pseq %" PRIu64 " was already used by this producer for a different "
                     "event; give every event a new pseq",
                     ev.pseq);
            s_answer_error(bk, m, r, &ev, "pseq_reused", detail);
            return;
        }
    }
    bk_user_t *u = NULL;
    bk_blob_t *blob = NULL;
    switch (bk_state_record(&bk->state, &ev, bk->now_ms, bk->wall_ms, &u, &blob)) {
    case BK_RECORD_OK:
        break;
    case BK_RECORD_TOO_MANY_TASKS:
        s_answer_error(bk, m, r, &ev, "too_many_tasks",
                       "this user has too many live tasks; finish some first");
        return;
    case BK_RECORD_OVERLOADED:
        s_answer_error(bk, m, r, &ev, "overloaded",
                       "the broker is at its memory limit; retry later");
        return;
    case BK_RECORD_NOMEM:
        s_answer_error(bk, m, r, &ev, "internal", "the broker ran out of memory");
        return;
    }
    seq = u->seq;
    if (ev.has_producer)
        bk_dedup_insert(bk->dedup, &a->id, seq);
    if (bk->journal)
        bk_persist_event(bk, blob, ev.has_producer ? &a->id : NULL, bk->wall_ms);
    r->user = u;
    r->blob = blob;
    bk->stats.accepted++;
    log_debug(&bk->log, "event user=%.*s task=%.*s status=%s seq=%" PRIu64, (int)u->id_len, u->id,
              (int)ev.task_id.len, ev.task_id.p, event_status_name(ev.status), seq);
    s_answer_ok(r, &ev, seq, 0);
}

/*  Handles one message: records it, and queues its answer (and event). */
static void
s_handle(broker_t *bk, s_ahead_t *a)
{
    bk_zmsg_t *m = &a->msg;
    size_t payload = a->payload;
    s_result_t r = {0};
    s_record(bk, a, &r);

    char *big = NULL;
    bk_out_t *o = NULL;
    if (r.answer_len || (buf_ok(&bk->scratch) && (big = malloc(bk->scratch.len))))
        o = bk_commit_hold(bk);
    if (!o) {
        /* The event (if accepted) is recorded and journaled but neither
         * answered nor published: the worker resends (a duplicate then), a
         * gateway sees a gap in the seqs and repairs it with a replay. */
        log_error(&bk->log, "out of memory for an answer");
        free(big);
        return;
    }
    /* The answer goes back to the peer that asked, after as many empty
     * frames as came before the event. */
    o->peer = bk_zpeer_ref(m->peer);
    o->empties = (uint8_t)(payload < m->count ? payload : m->count);
    if (r.blob) {
        o->user = r.user;
        o->blob = r.blob;
        r.blob->refs++; /* kept until published, whatever the state does meanwhile */
        bk_state_pin(r.user);
    }
    if (r.answer_len) {
        memcpy(o->answer, r.answer, r.answer_len);
        o->answer_len = (uint8_t)r.answer_len;
    }
    else {
        memcpy(big, bk->scratch.data, bk->scratch.len);
        o->big = big;
        o->big_len = bk->scratch.len;
    }
}

int
bk_ingest_drain(broker_t *bk, int max)
{
    s_ahead_t ahead[S_AHEAD];
    int n = 0, read = 0, more = 1;
    bk->now_ms = clock_mono_ms();
    bk->wall_ms = clock_wall_ms();
    bk_zsock_fill(bk->ingest); /* no system call below: messages are read */
    while (n < read || more) {
        /* prepare up to S_AHEAD ahead of the next to record */
        while (more && read < max && read - n < S_AHEAD) {
            s_ahead_t *a = &ahead[read % S_AHEAD];
            if (!bk_zsock_next(bk->ingest, &a->msg)) {
                more = 0;
                break;
            }
            s_prepare(bk, a);
            read++;
        }
        if (read >= max)
            more = 0;
        if (n == read)
            break;
        s_handle(bk, &ahead[n % S_AHEAD]);
        n++;
    }
    if (n == 0)
        return 0;
    if (bk_commit_flush(bk) != 0) {
        /* Nothing of this batch may be published or acknowledged: it is in
         * memory but not on disk. Stop; workers resend to the next broker,
         * which knows exactly what the journal holds. */
        log_error(&bk->log, "journal write failed: %s; stopping so that no unrecorded event is "
                  "acknowledged", strerror(errno));
        bk->stop = 1;
        bk->exit_code = 1;
    }
    return n;
}
