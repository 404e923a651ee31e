/*  sync.c: gateways ask for a user's state (ROUTER).
 *
 *  Request, one frame: {"req":N,"user_id":U[,"since":S,"epoch":E]}
 *  Answer: [header][event]...[event], header
 *      {"req":N,"user_id":U,"epoch":E,"seq":S,"mode":"replay"|"snapshot"}
 *  "replay" when since/epoch were given, epoch is the user's current one and
 *  the history still holds every event after since: the events are exactly
 *  those, in order. Otherwise "snapshot": the latest event of every task the
 *  user has (live, or terminal within the retention time), lowest seq first.
 *  seq is the user's last seq at the time of the answer; a gateway that was
 *  subscribed before asking receives every later event live.
 *  A request that cannot be read gets {"req":N?,"error":"<sentence>"}.
 *
 *  {"req":N,"op":"stats"} (taskcast-cli stats) gets one frame
 *      {"req":N,"stats":{"epoch":E,"accepted":...,"users":...,...}}.
 *
 *  With --fsync batch the state may hold events that are not on disk yet
 *  (their answers and publishes wait in commit.c). An answer showing such
 *  state would let a gateway see what a restarted broker might not know, so
 *  it is held too: built now (the header and references to the events), it
 *  leaves through commit.c once the journal is on disk up to here.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"
#include "zmsg.h"

typedef struct {
    uint64_t req;
    int has_req;
    mp_value_t user_id;
    int has_since;
    uint64_t since;
    mp_value_t epoch;
    int has_epoch;
    int stats;
} s_request_t;

static int
s_parse(const void *bytes, size_t len, s_request_t *rq)
{
    memset(rq, 0, sizeof *rq);
    mp_reader_t r;
    mp_value_t map, key, val;
    mp_reader_init(&r, bytes, len);
    if (mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        if (mp_read_pair(&r, &key, &val, 4) != 0)
            return -1;
        if (mp_str_eq(&key, "req") && val.type == MP_UINT) {
            rq->req = val.v.u;
            rq->has_req = 1;
        }
        else if (mp_str_eq(&key, "user_id") && val.type == MP_STR)
            rq->user_id = val;
        else if (mp_str_eq(&key, "since") && val.type == MP_UINT) {
            rq->since = val.v.u;
            rq->has_since = 1;
        }
        else if (mp_str_eq(&key, "epoch") && val.type == MP_STR) {
            rq->epoch = val;
            rq->has_epoch = 1;
        }
        else if (mp_str_eq(&key, "op") && mp_str_eq(&val, "stats"))
            rq->stats = 1;
    }
    if (rq->stats)
        return mp_reader_left(&r) == 0 && rq->has_req ? 0 : -1;
    if (mp_reader_left(&r) != 0 || !rq->has_req || rq->user_id.type != MP_STR ||
        !event_user_id_valid(rq->user_id.v.s.p, rq->user_id.v.s.len))
        return -1;
    return 0;
}

static void
s_pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str(pk, strlen(k));
    msgpack_pack_str_body(pk, k, strlen(k));
}

/*  An answer being sent. Every frame but the last needs SNDMORE and the
 *  last is known only when the walk ends, so each frame is sent one step
 *  late: first the header (in scratch), then each event straight from the
 *  state (nothing is copied; the state does not change during the walk). */
typedef struct {
    broker_t *bk;
    const bk_blob_t *held; /* the event not sent yet; NULL: the header is */
    int failed;
} s_reply_t;

static int
s_send_held(s_reply_t *rp, int more)
{
    const void *data = rp->held ? (const void *)rp->held->data : rp->bk->scratch.data;
    size_t len = rp->held ? rp->held->len : rp->bk->scratch.len;
    if (zmq_send(rp->bk->sync, data, len, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
        rp->failed = 1;
        return -1;
    }
    return 0;
}

static int
s_send_frame(void *arg, const bk_blob_t *blob)
{
    s_reply_t *rp = arg;
    if (s_send_held(rp, 1) != 0)
        return -1;
    rp->held = blob;
    return 0;
}

static void
s_answer_error(broker_t *bk, zmsg_t *m, size_t payload, const s_request_t *rq)
{
    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, rq->has_req ? 2 : 1);
    if (rq->has_req) {
        s_pack_key(&pk, "req");
        msgpack_pack_uint64(&pk, rq->req);
    }
    s_pack_key(&pk, "error");
    s_pack_key(&pk, "request must be a map with req and a valid user_id");
    for (size_t i = 0; i < payload; i++)
        if (zmq_send(bk->sync, zmsg_data(m, i), zmsg_size(m, i), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return;
    (void)zmq_send(bk->sync, bk->scratch.data, bk->scratch.len, ZMQ_DONTWAIT);
}

static void
s_pack_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    s_pack_key(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void
s_answer_stats(broker_t *bk, zmsg_t *m, size_t payload, const s_request_t *rq)
{
    const bk_state_t *st = &bk->state;
    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, 2);
    s_pack_u64(&pk, "req", rq->req);
    s_pack_key(&pk, "stats");
    msgpack_pack_map(&pk, bk->journal ? 15 : 14);
    s_pack_key(&pk, "epoch");
    s_pack_key(&pk, st->epoch);
    s_pack_key(&pk, "boot");
    s_pack_key(&pk, bk->boot);
    s_pack_u64(&pk, "uptime_s", (uint64_t)(clock_mono_ms() - bk->started_ms) / 1000);
    s_pack_u64(&pk, "accepted", bk->stats.accepted);
    s_pack_u64(&pk, "rejected", bk->stats.rejected);
    s_pack_u64(&pk, "duplicates", bk->stats.duplicates);
    s_pack_u64(&pk, "published", bk->stats.published);
    s_pack_u64(&pk, "syncs", bk->stats.syncs);
    s_pack_u64(&pk, "subscribes", bk->stats.subscribes);
    s_pack_u64(&pk, "users", strmap_size(st->users));
    s_pack_u64(&pk, "tasks", st->ntasks);
    s_pack_u64(&pk, "state_bytes", st->state_bytes);
    s_pack_u64(&pk, "history_bytes", st->hist_bytes);
    s_pack_u64(&pk, "heartbeat_ms", TOPIC_HEARTBEAT_MS);
    if (bk->journal)
        s_pack_u64(&pk, "journal_bytes", bk_journal_size(bk->journal));
    for (size_t i = 0; i < payload; i++)
        if (zmq_send(bk->sync, zmsg_data(m, i), zmsg_size(m, i), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return;
    (void)zmq_send(bk->sync, bk->scratch.data, bk->scratch.len, ZMQ_DONTWAIT);
}

/*  An answer waiting for the journal: the header and the events. */
struct bk_held {
    char *header;
    size_t header_len;
    bk_blob_t **blobs;
    size_t n, cap;
    int oom;
};

static int
s_collect(void *arg, const bk_blob_t *blob)
{
    bk_held_t *h = arg;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        bk_blob_t **more = realloc(h->blobs, cap * sizeof *more);
        if (!more) {
            h->oom = 1;
            return -1;
        }
        h->blobs = more;
        h->cap = cap;
    }
    /* A reference of our own: the state may drop the event meanwhile. */
    h->blobs[h->n] = (bk_blob_t *)blob;
    h->blobs[h->n++]->refs++;
    return 0;
}

void
bk_sync_free_held(bk_held_t **h_p)
{
    bk_held_t *h = *h_p;
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        bk_blob_unref(&h->blobs[i]);
    free(h->blobs);
    free(h->header);
    free(h);
    *h_p = NULL;
}

/*  Builds the answer (its header is in bk->scratch) and queues it. */
static void
s_hold(broker_t *bk, zmsg_t *m, size_t payload, const bk_user_t *u, int replay, uint64_t since)
{
    bk_held_t *h = calloc(1, sizeof *h);
    if (h && (h->header = malloc(bk->scratch.len)) != NULL) {
        memcpy(h->header, bk->scratch.data, bk->scratch.len);
        h->header_len = bk->scratch.len;
        if (replay)
            bk_state_replay(u, since, s_collect, h);
        else if (bk_state_snapshot(u, s_collect, h) != 0)
            h->oom = 1;
    }
    bk_out_t *o = h && h->header && !h->oom ? bk_commit_hold(bk) : NULL;
    if (!o) {
        /* The gateway asks again after its timeout. */
        log_error(&bk->log, "sync for user %.*s: out of memory", (int)u->id_len, u->id);
        bk_sync_free_held(&h);
        return;
    }
    zmq_msg_move(&o->identity, &m->frames[0]);
    o->empties = (uint8_t)(payload - 1);
    o->held = h;
}

void
bk_sync_release(broker_t *bk, bk_out_t *o)
{
    bk_held_t *h = o->held;
    int ok = zmq_msg_send(&o->identity, bk->sync, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    for (unsigned i = 0; ok && i < o->empties; i++)
        ok = zmq_send(bk->sync, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
    if (ok)
        ok = zmq_send(bk->sync, h->header, h->header_len, (h->n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) >=
             0;
    for (size_t i = 0; ok && i < h->n; i++)
        ok = zmq_send(bk->sync, h->blobs[i]->data, h->blobs[i]->len,
                      (i + 1 < h->n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) >= 0;
    bk_sync_free_held(&o->held);
}

static void
s_handle(broker_t *bk, zmsg_t *m)
{
    /* As for ingest: the payload is the first non-empty frame after the
     * identity, or the last frame. */
    size_t payload = 1;
    while (payload + 1 < m->count && zmsg_size(m, payload) == 0)
        payload++;
    s_request_t rq;
    if (m->truncated || payload + 1 != m->count ||
        s_parse(zmsg_data(m, payload), zmsg_size(m, payload), &rq) != 0) {
        memset(&rq, 0, sizeof rq);
        log_warn(&bk->log, "unreadable sync request");
        s_answer_error(bk, m, payload < m->count ? payload : m->count, &rq);
        return;
    }
    if (rq.stats) {
        s_answer_stats(bk, m, payload, &rq);
        return;
    }
    bk_user_t *u = bk_state_user(&bk->state, rq.user_id.v.s.p, rq.user_id.v.s.len, clock_mono_ms());
    if (!u) {
        log_warn(&bk->log, "sync for user %.*s refused: at the user limit", (int)rq.user_id.v.s.len,
                 rq.user_id.v.s.p);
        s_answer_error(bk, m, payload, &rq);
        return;
    }
    int replay = rq.has_since && rq.has_epoch && rq.epoch.v.s.len == u->epoch_len &&
                 memcmp(rq.epoch.v.s.p, u->epoch, u->epoch_len) == 0;
    /* A replay is possible only if the history holds everything after since:
     * check first (a dry run) so the header can say which mode follows. */
    if (replay) {
        replay = bk_state_replay(u, rq.since, NULL, NULL);
    }

    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    msgpack_pack_map(&pk, 5);
    s_pack_key(&pk, "req");
    msgpack_pack_uint64(&pk, rq.req);
    s_pack_key(&pk, "user_id");
    msgpack_pack_str(&pk, u->id_len);
    msgpack_pack_str_body(&pk, u->id, u->id_len);
    s_pack_key(&pk, "epoch");
    msgpack_pack_str(&pk, u->epoch_len);
    msgpack_pack_str_body(&pk, u->epoch, u->epoch_len);
    s_pack_key(&pk, "seq");
    msgpack_pack_uint64(&pk, u->seq);
    s_pack_key(&pk, "mode");
    s_pack_key(&pk, replay ? "replay" : "snapshot");

    bk->stats.syncs++;
    log_debug(&bk->log, "sync user=%.*s mode=%s seq=%llu", (int)u->id_len, u->id,
              replay ? "replay" : "snapshot", (unsigned long long)u->seq);
    if (!bk_commit_ready(bk, bk->journal ? bk_journal_appended(bk->journal) : 0)) {
        s_hold(bk, m, payload, u, replay, rq.since);
        return;
    }
    for (size_t i = 0; i < payload; i++)
        if (zmq_send(bk->sync, zmsg_data(m, i), zmsg_size(m, i), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return;
    s_reply_t rp = {.bk = bk};
    if (replay)
        bk_state_replay(u, rq.since, s_send_frame, &rp);
    else if (bk_state_snapshot(u, s_send_frame, &rp) != 0)
        log_error(&bk->log, "snapshot for user %.*s: out of memory", (int)u->id_len, u->id);
    if (!rp.failed)
        (void)s_send_held(&rp, 0);
}

int
bk_sync_drain(broker_t *bk, int max)
{
    int n = 0;
    zmsg_t m;
    while (n < max && zmsg_recv(&m, bk->sync, ZMQ_DONTWAIT) == 0) {
        if (m.count >= 1) {
            s_handle(bk, &m);
            bk->sent |= BK_SOCK_SYNC;
        }
        zmsg_close(&m);
        n++;
    }
    return n;
}
