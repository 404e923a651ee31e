/*  persist.c: what the broker's journal records mean.
 *
 *  Records (after the kind byte; integers little-endian):
 *    'M' meta   [16 bytes: broker epoch][BK_DEDUP_KEYS bytes: dedup keys]
 *    'E' event  [u64 recorded at, wall ms][u8 flags][u64 dedup key][u64 dedup content]
 *               [the published event]: state and history
 *    'S' state  same layout: the latest state of a task, not history
 *    'D' dedup  [u64 key][u64 content][u64 seq]: one idempotency pair
 *  flags bit 0: the event had (producer, pseq), the dedup fields are set.
 *
 *  A journal starts with 'M'. Every accepted event appends an 'E'. A
 *  compaction rewrites the file as 'M', the idempotency window ('D'), and per
 *  user the task states older than its history ('S') followed by its history
 *  ('E'), so replaying the compact file rebuilds the same state.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"

#define S_META_LEN  (16 + BK_DEDUP_KEYS)
#define S_EVENT_LEN 25 /* at, flags, key, content */

enum { S_REC_META = 'M', S_REC_EVENT = 'E', S_REC_STATE = 'S', S_REC_DEDUP = 'D' };

static void
s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
s_append_meta(broker_t *bk, bk_journal_t *j)
{
    unsigned char m[S_META_LEN];
    memcpy(m, bk->state.epoch, 16);
    bk_dedup_keys(bk->dedup, m + 16);
    bk_journal_append(j, S_REC_META, m, sizeof m, NULL, 0);
}

static void
s_append_event(bk_journal_t *j, int kind, const bk_blob_t *blob, const bk_dedup_id_t *id,
               int64_t wall_ms)
{
    unsigned char h[S_EVENT_LEN];
    s_put64(h, (uint64_t)wall_ms);
    h[8] = id ? 1 : 0;
    s_put64(h + 9, id ? id->key : 0);
    s_put64(h + 17, id ? id->content : 0);
    bk_journal_append(j, kind, h, sizeof h, blob->data, blob->len);
}

void
bk_persist_event(broker_t *bk, const bk_blob_t *blob, const bk_dedup_id_t *id, int64_t wall_ms)
{
    s_append_event(bk->journal, S_REC_EVENT, blob, id, wall_ms);
}

/* ---------------------------------------------------------------- replay */

typedef struct {
    broker_t *bk;
    uint32_t window;
    uint64_t events, states;
    int64_t now, wall;
} s_replay_t;

static int
s_replay(void *arg, int kind, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    s_replay_t *r = arg;
    broker_t *bk = r->bk;
    if (kind == S_REC_META) {
        if (len != S_META_LEN || bk->dedup) {
            snprintf(err, errlen, "unexpected meta record");
            return -1;
        }
        memcpy(bk->state.epoch, body, 16);
        bk->state.epoch[16] = '\0';
        bk->dedup = bk_dedup_new(r->window, body + 16);
        if (!bk->dedup) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (!bk->dedup) {
        snprintf(err, errlen, "the first record is not the meta record");
        return -1;
    }
    if (kind == S_REC_DEDUP && len == 24) {
        bk_dedup_id_t id = {s_get64(body), s_get64(body + 8)};
        bk_dedup_insert(bk->dedup, &id, s_get64(body + 16));
        return 0;
    }
    if ((kind == S_REC_EVENT || kind == S_REC_STATE) && len > S_EVENT_LEN) {
        int64_t at = (int64_t)s_get64(body);
        uint64_t seq = 0;
        if (bk_state_restore(&bk->state, body + S_EVENT_LEN, len - S_EVENT_LEN, kind == S_REC_EVENT,
                             at, r->now, r->wall, &seq) != 0) {
            snprintf(err, errlen, "a record does not hold a readable event");
            return -1;
        }
        if (body[8] & 1) {
            bk_dedup_id_t id = {s_get64(body + 9), s_get64(body + 17)};
            bk_dedup_insert(bk->dedup, &id, seq);
        }
        if (kind == S_REC_EVENT)
            r->events++;
        else
            r->states++;
        return 0;
    }
    snprintf(err, errlen, "unknown record kind %d (a journal from a newer taskcast?)", kind);
    return -1;
}

int
bk_persist_open(broker_t *bk, const char *path, uint32_t dedup_window, char *err, size_t errlen)
{
    s_replay_t r = {
        .bk = bk, .window = dedup_window, .now = clock_mono_ms(), .wall = clock_wall_ms()};
    uint64_t dropped = 0;
    int64_t t0 = clock_mono_ms();
    if (bk_journal_open(&bk->journal, path, s_replay, &r, &dropped, err, errlen) != 0)
        return -1;
    if (!bk->dedup) {
        /* A new journal: this broker's epoch and keys start it. */
        bk->dedup = bk_dedup_new(dedup_window, NULL);
        if (!bk->dedup) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        s_append_meta(bk, bk->journal);
        if (bk_journal_flush(bk->journal) != 0 || bk_journal_sync(bk->journal) != 0) {
            snprintf(err, errlen, "cannot write the journal %s", path);
            return -1;
        }
        log_info(&bk->log, "journal %s created", path);
        return 0;
    }
    if (dropped)
        log_warn(&bk->log,
                 "journal %s: cut off %" PRIu64 " bytes of a torn or damaged last record "
                 "(a crash during a write; it was never acknowledged)",
                 path, dropped);
    log_info(&bk->log,
             "journal %s: restored %" PRIu64 " events and %" PRIu64 " task states of %zu users "
             "in %lld ms (epoch %s)",
             path, r.events, r.states, strmap_size(bk->state.users),
             (long long)(clock_mono_ms() - t0), bk->state.epoch);
    return 0;
}

/* ---------------------------------------------------------------- compaction */

typedef struct {
    broker_t *bk;
    bk_journal_t *out;
    int64_t now, wall;
} s_compact_t;

static int
s_write_dedup(void *arg, const bk_dedup_id_t *id, uint64_t seq)
{
    s_compact_t *c = arg;
    unsigned char d[24];
    s_put64(d, id->key);
    s_put64(d + 8, id->content);
    s_put64(d + 16, seq);
    bk_journal_append(c->out, S_REC_DEDUP, d, sizeof d, NULL, 0);
    return 0;
}

/*  When a task ended, on the wall clock (or now if it is live). */
static int64_t
s_ended_wall(const s_compact_t *c, const bk_task_t *t)
{
    return t && t->ended_ms ? c->wall - (c->now - t->ended_ms) : c->wall;
}

static int
s_write_user(void *arg, const bk_user_t *u)
{
    s_compact_t *c = arg;
    /* Task states the history does not cover, oldest first, as 'S'. Their
     * recorded time is when they ended (retention goes on from there). */
    uint64_t below = u->hhead ? u->hhead->seq : UINT64_MAX;
    size_t pos = 0;
    const bk_task_t *t;
    while ((t = strmap_next(u->tasks, &pos)) != NULL)
        if (t->seq < below)
            s_append_event(c->out, S_REC_STATE, t->blob, NULL, s_ended_wall(c, t));
    /* Then the history, as 'E'. */
    for (const bk_hist_t *h = u->hhead; h; h = h->unext) {
        event_t ev;
        event_error_t e;
        const bk_task_t *owner = NULL;
        if (event_decode(&ev, h->blob->data, h->blob->len, EVENT_FROM_BROKER, &e) == 0)
            owner = bk_state_task(u, ev.task_id.p, ev.task_id.len);
        int latest = owner && owner->seq == h->seq;
        s_append_event(c->out, S_REC_EVENT, h->blob, NULL,
                       latest ? s_ended_wall(c, owner) : c->wall);
    }
    return 0;
}

static int
s_write_all(void *arg, bk_journal_t *out)
{
    s_compact_t *c = arg;
    c->out = out;
    s_append_meta(c->bk, out);
    bk_dedup_each(c->bk->dedup, s_write_dedup, c);
    return bk_state_each_user(&c->bk->state, s_write_user, c);
}

int
bk_persist_compact(broker_t *bk, char *err, size_t errlen)
{
    s_compact_t c = {.bk = bk, .now = clock_mono_ms(), .wall = clock_wall_ms()};
    uint64_t before = bk_journal_size(bk->journal);
    int64_t t0 = clock_mono_ms();
    if (bk_journal_rewrite(bk->journal, s_write_all, &c, err, errlen) != 0)
        return -1;
    log_info(&bk->log, "journal compacted: %" PRIu64 " -> %" PRIu64 " bytes in %lld ms", before,
             bk_journal_size(bk->journal), (long long)(clock_mono_ms() - t0));
    return 0;
}
