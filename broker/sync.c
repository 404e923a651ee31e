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
#include "wire.h"
#include "zmtp.h"

/*  An answer being sent. Every frame but the last needs SNDMORE and the
 *  last is known only when the walk ends, so each frame is sent one step
 *  late: first the header (in scratch), then each event straight from the
 *  state (nothing is copied; the state does not change during the walk). */
typedef struct {
    broker_t *bk;
    buf_t *out;            /* the gateway's output */
    const bk_blob_t *held; /* the event not sent yet; NULL: the header is */
} s_reply_t;

static int
s_send_held(s_reply_t *rp, int more)
{
    const void *data = rp->held ? (const void *)rp->held->data : rp->bk->scratch.data;
    size_t len = rp->held ? rp->held->len : rp->bk->scratch.len;
    zmtp_put_frame(rp->out, data, len, more);
    return 0;
}

/*  The gateway's output after empties empty frames (a REQ peer's
 *  delimiter), or NULL if it is gone or not reading. */
static buf_t *
s_out(bk_zpeer_t *peer, size_t empties)
{
    buf_t *out = bk_zpeer_out(peer);
    for (size_t i = 0; out && i < empties; i++)
        zmtp_put_frame(out, "", 0, 1);
    return out;
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
s_answer_error(broker_t *bk, bk_zmsg_t *m, size_t envelope, int has_req, uint64_t req)
{
    buf_reset(&bk->scratch);
    wire_pack_sync_error(&bk->scratch, has_req, req,
                         "request must be a map with req and a valid user_id");
    buf_t *out = s_out(m->peer, envelope);
    if (out)
        zmtp_put_frame(out, bk->scratch.data, bk->scratch.len, 0);
}

static void
s_answer_stats(broker_t *bk, bk_zmsg_t *m, size_t envelope, uint64_t req)
{
    const bk_state_t *st = &bk->state;
    msgpack_packer pk;
    buf_reset(&bk->scratch);
    msgpack_packer_init(&pk, &bk->scratch, buf_msgpack_write);
    wire_pack_stats_begin(&pk, req, (bk->journal ? 16 : 14) +
                                        (bk->jobs ? bk_jobs_stats_pairs(bk->jobs) : 0));
    wire_pack_kv_str(&pk, "epoch", st->epoch, strlen(st->epoch));
    wire_pack_kv_str(&pk, "boot", bk->boot, strlen(bk->boot));
    wire_pack_kv_u64(&pk, "uptime_s", (uint64_t)(clock_mono_ms() - bk->started_ms) / 1000);
    wire_pack_kv_u64(&pk, "accepted", bk->stats.accepted);
    wire_pack_kv_u64(&pk, "rejected", bk->stats.rejected);
    wire_pack_kv_u64(&pk, "duplicates", bk->stats.duplicates);
    wire_pack_kv_u64(&pk, "published", bk->stats.published);
    wire_pack_kv_u64(&pk, "syncs", bk->stats.syncs);
    wire_pack_kv_u64(&pk, "subscribes", bk->stats.subscribes);
    wire_pack_kv_u64(&pk, "users", strmap_size(st->users));
    wire_pack_kv_u64(&pk, "tasks", st->ntasks);
    wire_pack_kv_u64(&pk, "state_bytes", st->state_bytes);
    wire_pack_kv_u64(&pk, "history_bytes", st->hist_bytes);
    wire_pack_kv_u64(&pk, "heartbeat_ms", TOPIC_HEARTBEAT_MS);
    if (bk->journal) {
        wire_pack_kv_u64(&pk, "journal_bytes", bk_journal_size(bk->journal));
        wire_pack_kv_u64(&pk, "journal_fsyncs", bk->stats.fsyncs);
    }
    if (bk->jobs)
        bk_jobs_pack_stats(bk->jobs, &pk);
    buf_t *out = s_out(m->peer, envelope);
    if (out)
        zmtp_put_frame(out, bk->scratch.data, bk->scratch.len, 0);
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
s_hold(broker_t *bk, bk_zmsg_t *m, size_t payload, const bk_user_t *u, int replay, uint64_t since)
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
    o->peer = bk_zpeer_ref(m->peer);
    o->empties = (uint8_t)payload;
    o->held = h;
}

void
bk_sync_release(broker_t *bk, bk_out_t *o)
{
    bk_held_t *h = o->held;
    buf_t *out = s_out(o->peer, o->empties);
    if (out) {
        zmtp_put_frame(out, h->header, h->header_len, h->n > 0);
        for (size_t i = 0; i < h->n; i++)
            zmtp_put_frame(out, h->blobs[i]->data, h->blobs[i]->len, i + 1 < h->n);
    }
    bk_sync_free_held(&o->held);
}

static void
s_handle(broker_t *bk, bk_zmsg_t *m)
{
    /* [""...][request]: the request is the first non-empty frame (or the
     * last), and must be the last. */
    size_t env = 0;
    while (env + 1 < m->count && m->frames[env].len == 0)
        env++;
    wire_sync_req_t rq = {0};
    int has_req = 0;
    if (m->truncated || env + 1 != m->count ||
        wire_read_sync_req(m->frames[env].p, m->frames[env].len, &rq, &has_req) != 0) {
        log_warn(&bk->log, "unreadable sync request");
        s_answer_error(bk, m, env, has_req && env + 1 == m->count, rq.req);
        return;
    }
    if (rq.stats) {
        s_answer_stats(bk, m, env, rq.req);
        return;
    }
    bk_user_t *u = bk_state_user(&bk->state, rq.user_id.p, rq.user_id.len, clock_mono_ms());
    if (!u) {
        log_warn(&bk->log, "sync for user %.*s refused: at the user limit", (int)rq.user_id.len,
                 rq.user_id.p);
        s_answer_error(bk, m, env, 1, rq.req);
        return;
    }
    /* A replay is possible only if the history holds everything after since:
     * check first (a dry run) so the header can say which mode follows. */
    int replay = rq.has_since && rq.epoch.len == u->epoch_len &&
                 memcmp(rq.epoch.p, u->epoch, u->epoch_len) == 0 &&
                 bk_state_replay(u, rq.since, NULL, NULL);
    wire_sync_head_t h = {.req = rq.req,
                          .user_id = {u->id, u->id_len},
                          .epoch = {u->epoch, u->epoch_len},
                          .seq = u->seq,
                          .replay = replay};
    buf_reset(&bk->scratch);
    wire_pack_sync_head(&bk->scratch, &h);
    bk->stats.syncs++;
    log_debug(&bk->log, "sync user=%.*s mode=%s seq=%llu", (int)u->id_len, u->id,
              replay ? "replay" : "snapshot", (unsigned long long)u->seq);
    if (!bk_commit_ready(bk, bk->journal ? bk_journal_appended(bk->journal) : 0)) {
        s_hold(bk, m, env, u, replay, rq.since);
        return;
    }
    s_reply_t rp = {.bk = bk, .out = s_out(m->peer, env)};
    if (!rp.out)
        return; /* the gateway is gone, or not reading */
    if (replay)
        bk_state_replay(u, rq.since, s_send_frame, &rp);
    else if (bk_state_snapshot(u, s_send_frame, &rp) != 0)
        log_error(&bk->log, "snapshot for user %.*s: out of memory", (int)u->id_len, u->id);
    (void)s_send_held(&rp, 0); /* the last frame: the header if there was no event */
}

int
bk_sync_drain(broker_t *bk, int max)
{
    int n = 0;
    bk_zmsg_t m;
    bk_zsock_fill(bk->sync);
    while (n < max && bk_zsock_next(bk->sync, &m)) {
        s_handle(bk, &m);
        n++;
    }
    return n;
}
