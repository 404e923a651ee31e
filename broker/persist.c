/*  persist.c: what the broker's journal records mean.
 *
 *  Records (after the kind byte; integers little-endian):
 *    'M' meta     [16 bytes: broker epoch][BK_DEDUP_KEYS bytes: dedup keys]
 *                 [u64: the last user ordinal given]
 *    'E' event    [u64 recorded at, wall ms][u8 flags][u64 dedup key]
 *                 [u64 dedup content][the published event]: state + history
 *    'S' state    same layout: a task's latest state (it ended at "recorded at")
 *    'H' history  same layout: a history entry (its task may be gone)
 *    'U' user     [u64 last seq][u8 epoch length][epoch][user id]
 *    'D' dedup    [u64 key][u64 content][u64 seq]: one idempotency pair
 *  flags bit 0: the event had (producer, pseq), the dedup fields are set.
 *
 *  A journal starts with 'M'; every accepted event appends an 'E'. A
 *  compaction rewrites the file as the current state, in an order that
 *  rebuilds it exactly: 'M', the idempotency window ('D', oldest first),
 *  every user ('U': its epoch and last seq, even if no event of it is left),
 *  the live tasks ('S'), the terminal tasks by the time they ended ('S', so
 *  the retention FIFO comes back in order), then the history in arrival
 *  order across users ('H', so the global history FIFO does too).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "clock.h"

#define S_META_LEN  (16 + BK_DEDUP_KEYS + 8)
#define S_EVENT_LEN 25 /* at, flags, key, content */

enum {
    S_REC_META = 'M',
    S_REC_EVENT = 'E',
    S_REC_STATE = 'S',
    S_REC_HISTORY = 'H',
    S_REC_USER = 'U',
    S_REC_DEDUP = 'D'
};

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
    s_put64(m + 16 + BK_DEDUP_KEYS, bk->state.user_ordinal);
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
s_replay_meta(s_replay_t *r, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    broker_t *bk = r->bk;
    if (len != S_META_LEN || bk->dedup) {
        snprintf(err, errlen, "unexpected meta record");
        return -1;
    }
    memcpy(bk->state.epoch, body, 16);
    bk->state.epoch[16] = '\0';
    bk->state.user_ordinal = s_get64(body + 16 + BK_DEDUP_KEYS);
    bk->dedup = bk_dedup_new(r->window, body + 16);
    if (!bk->dedup) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int
s_replay_event(s_replay_t *r, int kind, const uint8_t *body, size_t len)
{
    broker_t *bk = r->bk;
    bk_restore_t mode = kind == S_REC_EVENT   ? BK_RESTORE_EVENT
                        : kind == S_REC_STATE ? BK_RESTORE_STATE
                                              : BK_RESTORE_HISTORY;
    uint64_t seq = 0;
    if (bk_state_restore(&bk->state, body + S_EVENT_LEN, len - S_EVENT_LEN, mode,
                         (int64_t)s_get64(body), r->now, r->wall, &seq) != 0)
        return -1;
    if (body[8] & 1) {
        bk_dedup_id_t id = {s_get64(body + 9), s_get64(body + 17)};
        bk_dedup_insert(bk->dedup, &id, seq);
    }
    if (kind == S_REC_STATE)
        r->states++;
    else
        r->events++;
    return 0;
}

static int
s_replay(void *arg, int kind, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    s_replay_t *r = arg;
    broker_t *bk = r->bk;
    if (kind == S_REC_META)
        return s_replay_meta(r, body, len, err, errlen);
    if (!bk->dedup) {
        snprintf(err, errlen, "the first record is not the meta record");
        return -1;
    }
    if (kind == S_REC_DEDUP && len == 24) {
        bk_dedup_id_t id = {s_get64(body), s_get64(body + 8)};
        bk_dedup_insert(bk->dedup, &id, s_get64(body + 16));
        return 0;
    }
    if (kind == S_REC_USER && len > 9 && len > 9 + (size_t)body[8]) {
        size_t elen = body[8];
        if (bk_state_restore_user(&bk->state, (const char *)body + 9 + elen, len - 9 - elen,
                                  (const char *)body + 9, elen, s_get64(body), r->now) == 0)
            return 0;
        snprintf(err, errlen, "a user record cannot be read");
        return -1;
    }
    if ((kind == S_REC_EVENT || kind == S_REC_STATE || kind == S_REC_HISTORY) &&
        len > S_EVENT_LEN) {
        if (s_replay_event(r, kind, body, len) == 0)
            return 0;
        snprintf(err, errlen, "a record does not hold a readable event");
        return -1;
    }
    int jrc = bk->jobs ? bk_jobs_replay(bk, kind, body, len) : 1;
    if (jrc == 0)
        return 0;
    if (jrc < 0) {
        snprintf(err, errlen, "a job record cannot be read");
        return -1;
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
    if (bk->jobs)
        bk_jobs_restored(bk, r.now);
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
    const bk_task_t **ended; /* terminal tasks, to sort by the time they ended */
    size_t nended, capended;
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

/*  'U' for the user, 'S' for its live tasks; terminal tasks are collected. */
static int
s_write_user(void *arg, const bk_user_t *u)
{
    s_compact_t *c = arg;
    unsigned char h[9 + sizeof u->epoch];
    s_put64(h, u->seq);
    h[8] = u->epoch_len;
    memcpy(h + 9, u->epoch, u->epoch_len);
    bk_journal_append(c->out, S_REC_USER, h, 9 + (size_t)u->epoch_len, u->id, u->id_len);
    size_t pos = 0;
    const bk_task_t *t;
    while ((t = strmap_next(u->tasks, &pos)) != NULL) {
        if (!t->ended_ms) {
            s_append_event(c->out, S_REC_STATE, t->blob, NULL, c->wall);
            continue;
        }
        if (c->nended == c->capended) {
            size_t cap = c->capended ? c->capended * 2 : 256;
            const bk_task_t **more = realloc(c->ended, cap * sizeof *more);
            if (!more)
                return -1;
            c->ended = more;
            c->capended = cap;
        }
        c->ended[c->nended++] = t;
    }
    return 0;
}

static int
s_by_end(const void *a, const void *b)
{
    int64_t x = (*(const bk_task_t *const *)a)->ended_ms;
    int64_t y = (*(const bk_task_t *const *)b)->ended_ms;
    return x < y ? -1 : x > y;
}

static int
s_write_history(void *arg, const bk_hist_t *h)
{
    s_compact_t *c = arg;
    s_append_event(c->out, S_REC_HISTORY, h->blob, NULL, c->wall);
    return 0;
}

static int
s_write_all(void *arg, bk_journal_t *out)
{
    s_compact_t *c = arg;
    c->out = out;
    s_append_meta(c->bk, out);
    bk_dedup_each(c->bk->dedup, s_write_dedup, c);
    if (bk_state_each_user(&c->bk->state, s_write_user, c) != 0)
        return -1;
    if (c->nended)
        qsort(c->ended, c->nended, sizeof *c->ended, s_by_end);
    for (size_t i = 0; i < c->nended; i++) /* recorded at = when it ended, wall clock */
        s_append_event(out, S_REC_STATE, c->ended[i]->blob, NULL,
                       c->wall - (c->now - c->ended[i]->ended_ms));
    if (bk_state_each_history(&c->bk->state, s_write_history, c) != 0)
        return -1;
    return c->bk->jobs ? bk_jobs_write_all(c->bk, out) : 0;
}

uint64_t
bk_persist_estimate(const broker_t *bk)
{
    const bk_state_t *st = &bk->state;
    const uint64_t rec = 8 + 1; /* length, checksum, kind */
    return 8 + rec + S_META_LEN + (uint64_t)bk_dedup_count(bk->dedup) * (rec + 24) +
           strmap_size(st->users) * (rec + 9 + 40 + 16) + (st->ntasks + st->nhist) *
           (rec + S_EVENT_LEN) + st->state_bytes + st->hist_bytes;
}

int
bk_persist_write_state(broker_t *bk, bk_journal_t *out)
{
    s_compact_t c = {.bk = bk, .now = clock_mono_ms(), .wall = clock_wall_ms()};
    int rc = s_write_all(&c, out);
    free(c.ended);
    return rc;
}

static int
s_write_state(void *arg, bk_journal_t *out)
{
    return bk_persist_write_state(arg, out);
}

int
bk_persist_compact(broker_t *bk, char *err, size_t errlen)
{
    uint64_t before = bk_journal_size(bk->journal);
    int64_t t0 = clock_mono_ms();
    int rc = bk_journal_rewrite(bk->journal, s_write_state, bk, err, errlen);
    if (rc < 0)
        return -1;
    if (rc > 0)
        log_warn(&bk->log, "journal compacted, but its directory could not be synced: a machine "
                           "crash could bring back the old file");
    log_info(&bk->log, "journal compacted: %" PRIu64 " -> %" PRIu64 " bytes in %lld ms", before,
             bk_journal_size(bk->journal), (long long)(clock_mono_ms() - t0));
    return 0;
}
