/*  test_state.c: the broker's state (broker/state.c): per-user seqs, the
 *  latest state of every task, the bounded history, retention of terminal
 *  tasks and idle users, the limits, and the restore from journaled events.
 *
 *  Events are built with msgpack-c's packer and decoded with
 *  event_decode(EVENT_FROM_WORKER), as ingest.c does. Times are synthetic:
 *  now_ms is whatever the test says, wall_ms = WALL + now_ms.
 */
#include "broker.h"
#include "check.h"
#include "mbuild.h"

#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALL 1700000000000LL

static const bk_limits_t s_big = {
    .retention_ms = 1000,
    .history_per_user = 1000,
    .history_bytes = 1u << 30,
    .tasks_per_user = 10000,
    .state_bytes = 1u << 30,
    .max_users = 1000000,
};


/* ---------------------------------------------------------------- events */

/*  A worker event: ts < 0 leaves ts out, pad > 0 adds a message of pad
 *  bytes (to vary the size). */
typedef struct {
    msgpack_sbuffer sb;
    event_t ev;
} wev_t;

static int
wev_make(wev_t *w, const char *user, const char *task, const char *status, int64_t ts, size_t pad)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (ts >= 0) + (pad > 0));
    pk_str(&pk, "task_id");
    pk_str(&pk, task);
    pk_str(&pk, "user_id");
    pk_str(&pk, user);
    pk_str(&pk, "status");
    pk_str(&pk, status);
    if (ts >= 0) {
        pk_str(&pk, "ts");
        msgpack_pack_int64(&pk, ts);
    }
    if (pad > 0) {
        char *m = malloc(pad);
        memset(m, 'm', pad);
        pk_str(&pk, "message");
        msgpack_pack_str_with_body(&pk, m, pad);
        free(m);
    }
    event_error_t err;
    if (event_decode(&w->ev, w->sb.data, w->sb.size, EVENT_FROM_WORKER, &err) != 0) {
        fprintf(stderr, "test event refused: %s: %s\n", err.code, err.detail);
        msgpack_sbuffer_destroy(&w->sb);
        return -1;
    }
    return 0;
}

static void
wev_free(wev_t *w)
{
    msgpack_sbuffer_destroy(&w->sb);
}

/*  One bk_state_record() call. */
typedef struct {
    int rc; /* bk_record_t, or -1 if the test event was refused */
    uint64_t seq;
    bk_user_t *u;
    bk_blob_t *blob;
} rec_t;

static rec_t
rec_ts(bk_state_t *st, const char *user, const char *task, const char *status, int64_t now,
       size_t pad, int64_t ts)
{
    rec_t r = {.rc = -1};
    wev_t w;
    if (wev_make(&w, user, task, status, ts, pad) != 0)
        return r;
    bk_record_t rc = bk_state_record(st, &w.ev, now, WALL + now, &r.u, &r.blob);
    r.rc = (int)rc;
    if (rc == BK_RECORD_OK)
        r.seq = r.u->seq;
    wev_free(&w);
    return r;
}

static rec_t
rec(bk_state_t *st, const char *user, const char *task, const char *status, int64_t now)
{
    return rec_ts(st, user, task, status, now, 0, -1);
}

/*  The decoded published form of a blob. */
typedef struct {
    char task[EVENT_TASK_ID_MAX + 1];
    char user[EVENT_USER_ID_MAX + 1];
    char epoch[EVENT_EPOCH_MAX + 1];
    event_status_t status;
    uint64_t seq;
    int64_t ts;
} pub_t;

static int
pub(const void *data, size_t len, pub_t *p)
{
    event_t ev;
    event_error_t err;
    memset(p, 0, sizeof *p);
    if (event_decode(&ev, data, len, EVENT_FROM_BROKER, &err) != 0)
        return -1;
    memcpy(p->task, ev.task_id.p, ev.task_id.len);
    memcpy(p->user, ev.user_id.p, ev.user_id.len);
    memcpy(p->epoch, ev.epoch.p, ev.epoch.len);
    p->status = ev.status;
    p->seq = ev.seq;
    p->ts = ev.ts;
    return 0;
}

static bk_user_t *
user(const bk_state_t *st, const char *id)
{
    return strmap_get(st->users, id, strlen(id));
}

static const bk_task_t *
task(const bk_state_t *st, const char *uid, const char *tid)
{
    bk_user_t *u = user(st, uid);
    return u ? bk_state_task(u, tid, strlen(tid)) : NULL;
}

/*  The user's history seqs, oldest first; returns how many. */
static size_t
hist_seqs(const bk_user_t *u, uint64_t *out, size_t max)
{
    size_t n = 0;
    for (const bk_hist_t *h = u->hhead; h; h = h->unext) {
        if (n < max)
            out[n] = h->seq;
        n++;
    }
    return n;
}

/*  The ordinal after the last '.' of an epoch (hex), or -1. */
static long long
ordinal(const char *epoch)
{
    const char *dot = strrchr(epoch, '.');
    if (!dot || !dot[1])
        return -1;
    char *end;
    long long n = strtoll(dot + 1, &end, 16);
    return *end ? -1 : n;
}

/*  Checks the global history FIFO: links both ways, each entry in its
 *  user's history, bytes add up. */
static int
global_fifo_ok(const bk_state_t *st)
{
    uint64_t bytes = 0;
    const bk_hist_t *prev = NULL;
    for (const bk_hist_t *h = st->ghead; h; h = h->gnext) {
        if (h->gprev != prev)
            return 0;
        int found = 0;
        for (const bk_hist_t *x = h->user->hhead; x; x = x->unext)
            found |= x == h;
        if (!found)
            return 0;
        bytes += h->blob->len;
        prev = h;
    }
    return prev == st->gtail && bytes == st->hist_bytes;
}

/* ---------------------------------------------------------------- seq */

static void
test_seq_per_user(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0);
    CHECK(strlen(st.epoch) == 16);

    for (uint64_t i = 1; i <= 5; i++) {
        rec_t r = rec(&st, "alice", i % 2 ? "t1" : "t2", "running", 1000 + (int64_t)i);
        CHECK(r.rc == BK_RECORD_OK);
        CHECK(r.seq == i);
        pub_t p;
        CHECK(pub(r.blob->data, r.blob->len, &p) == 0);
        CHECK(p.seq == i);
        CHECK_STR(p.user, "alice");
        CHECK_STR(p.epoch, r.u->epoch);
        CHECK(p.ts == WALL + 1000 + (int64_t)i); /* stamped: absent in the event */
    }
    rec_t b = rec(&st, "bob", "t1", "queued", 2000);
    CHECK(b.rc == BK_RECORD_OK && b.seq == 1);
    b = rec_ts(&st, "bob", "t1", "running", 2001, 0, 42);
    CHECK(b.rc == BK_RECORD_OK && b.seq == 2);
    pub_t p;
    CHECK(pub(b.blob->data, b.blob->len, &p) == 0 && p.ts == 42); /* the worker's own ts */
    CHECK(user(&st, "alice")->seq == 5);
    CHECK(user(&st, "bob")->seq == 2);

    /* epoch: <broker epoch>.<ordinal>, different per user */
    bk_user_t *a = user(&st, "alice"), *bo = user(&st, "bob");
    CHECK(strncmp(a->epoch, st.epoch, 16) == 0 && a->epoch[16] == '.');
    CHECK(a->epoch_len == strlen(a->epoch));
    CHECK(strcmp(a->epoch, bo->epoch) != 0);
    CHECK(ordinal(a->epoch) >= 1 && ordinal(bo->epoch) > ordinal(a->epoch));
    CHECK(st.ntasks == 3);
    bk_state_destroy(&st);
}

/* ---------------------------------------------------------------- latest + sharing */

static void
test_latest_and_blob_sharing(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0);
    rec_t r1 = rec(&st, "u", "a", "queued", 1000);
    bk_blob_t *first = r1.blob;
    CHECK(r1.rc == BK_RECORD_OK);
    const bk_task_t *t = task(&st, "u", "a");
    CHECK(t && t->blob == first && t->seq == 1 && t->ended_ms == 0);
    CHECK(r1.u->htail && r1.u->htail->blob == first);
    CHECK(first->refs == 2); /* the task and the history share it */
    CHECK(st.state_bytes == first->len && st.hist_bytes == first->len);

    rec_t r2 = rec(&st, "u", "a", "running", 1001);
    CHECK(r2.rc == BK_RECORD_OK && r2.seq == 2);
    t = task(&st, "u", "a");
    CHECK(t->blob == r2.blob && t->seq == 2);
    CHECK(first->refs == 1); /* history only */
    CHECK(r2.blob->refs == 2);
    CHECK(r2.u->hhead->blob == first && r2.u->htail->blob == r2.blob);
    CHECK(st.state_bytes == r2.blob->len);
    CHECK(st.hist_bytes == (uint64_t)first->len + r2.blob->len);
    CHECK(st.ntasks == 1);
    pub_t p;
    CHECK(pub(t->blob->data, t->blob->len, &p) == 0 && p.status == EVENT_RUNNING && p.seq == 2);
    CHECK(bk_state_task(r2.u, "b", 1) == NULL);
    CHECK(bk_state_task(r2.u, "a", 1) == t);
    bk_state_destroy(&st);

    /* no history: the task holds the only reference */
    bk_limits_t lim = s_big;
    lim.history_per_user = 0;
    CHECK(bk_state_init(&st, &lim) == 0);
    r1 = rec(&st, "u", "a", "queued", 1000);
    CHECK(r1.rc == BK_RECORD_OK && r1.blob->refs == 1 && r1.u->hhead == NULL);
    CHECK(st.hist_bytes == 0 && st.ghead == NULL);
    CHECK(bk_state_replay(r1.u, 0, NULL, NULL) == 0);
    bk_state_destroy(&st);
}

/* ---------------------------------------------------------------- history caps */

static void
test_history_per_user_cap(void)
{
    bk_limits_t lim = s_big;
    lim.history_per_user = 3;
    bk_state_t st;
    CHECK(bk_state_init(&st, &lim) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(rec(&st, "u", "a", "running", 1000 + i).rc == BK_RECORD_OK);
    CHECK(rec(&st, "v", "a", "running", 2000).rc == BK_RECORD_OK);
    bk_user_t *u = user(&st, "u");
    uint64_t s[8];
    CHECK(u->hcount == 3);
    CHECK(hist_seqs(u, s, 8) == 3 && s[0] == 3 && s[1] == 4 && s[2] == 5);
    CHECK(hist_seqs(user(&st, "v"), s, 8) == 1 && s[0] == 1);
    CHECK(global_fifo_ok(&st));
    bk_state_destroy(&st);
}

static void
test_history_global_bytes_cap(void)
{
    /* Every blob has the same size here: measure it first. */
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0);
    uint32_t blen = rec(&st, "A", "t", "running", 1000).blob->len;
    bk_state_destroy(&st);

    bk_limits_t lim = s_big;
    lim.history_bytes = 5 * (uint64_t)blen;
    CHECK(bk_state_init(&st, &lim) == 0);
    /* A1 B1 A2 B2 A3: 5 entries, at the cap */
    CHECK(rec(&st, "A", "t", "running", 1000).blob->len == blen);
    CHECK(rec(&st, "B", "t", "running", 1001).rc == BK_RECORD_OK);
    CHECK(rec(&st, "A", "t", "running", 1002).rc == BK_RECORD_OK);
    CHECK(rec(&st, "B", "t", "running", 1003).rc == BK_RECORD_OK);
    CHECK(rec(&st, "A", "t", "running", 1004).rc == BK_RECORD_OK);
    CHECK(st.hist_bytes == 5 * (uint64_t)blen);
    uint64_t s[8];
    /* B3: the oldest entry anywhere (A1) goes */
    CHECK(rec(&st, "B", "t", "running", 1005).rc == BK_RECORD_OK);
    CHECK(hist_seqs(user(&st, "A"), s, 8) == 2 && s[0] == 2 && s[1] == 3);
    CHECK(hist_seqs(user(&st, "B"), s, 8) == 3 && s[0] == 1 && s[2] == 3);
    /* A4: B1 goes (older than A2) */
    CHECK(rec(&st, "A", "t", "running", 1006).rc == BK_RECORD_OK);
    CHECK(hist_seqs(user(&st, "A"), s, 8) == 3 && s[0] == 2 && s[2] == 4);
    CHECK(hist_seqs(user(&st, "B"), s, 8) == 2 && s[0] == 2 && s[1] == 3);
    /* C1: A2 goes */
    CHECK(rec(&st, "C", "t", "running", 1007).rc == BK_RECORD_OK);
    CHECK(hist_seqs(user(&st, "A"), s, 8) == 2 && s[0] == 3 && s[1] == 4);
    CHECK(st.hist_bytes == 5 * (uint64_t)blen);
    CHECK(global_fifo_ok(&st));
    /* the global FIFO is in arrival order: B2 A3 B3 A4 C1 */
    const char *want_u[] = {"B", "A", "B", "A", "C"};
    uint64_t want_s[] = {2, 3, 3, 4, 1};
    int i = 0;
    for (const bk_hist_t *h = st.ghead; h; h = h->gnext, i++)
        CHECK(i < 5 && strcmp(h->user->id, want_u[i]) == 0 && h->seq == want_s[i]);
    CHECK(i == 5);
    /* the latest states are not history: all three users keep their task */
    CHECK(st.ntasks == 3 && task(&st, "A", "t")->seq == 4);

    /* one event bigger than the whole cap: kept as state, not as history */
    bk_state_destroy(&st);
    lim.history_bytes = blen - 1;
    CHECK(bk_state_init(&st, &lim) == 0);
    rec_t r = rec(&st, "A", "t", "running", 1000);
    CHECK(r.rc == BK_RECORD_OK && r.u->hhead == NULL && st.hist_bytes == 0 && r.blob->refs == 1);
    CHECK(task(&st, "A", "t") != NULL);
    bk_state_destroy(&st);
}

/*  Random sizes, users and order, against a simple model of both caps. */
#define M_USERS  5
#define M_EVENTS 3000

static void
test_history_caps_model(void)
{
    bk_limits_t lim = s_big;
    lim.history_per_user = 4;
    lim.history_bytes = 900;
    bk_state_t st;
    CHECK(bk_state_init(&st, &lim) == 0);
    typedef struct {
        int user;
        uint64_t seq;
        uint32_t len;
        int alive;
    } m_t;
    static m_t m[M_EVENTS];
    uint64_t useq[M_USERS] = {0};
    uint32_t ucount[M_USERS] = {0};
    uint64_t total = 0;
    size_t oldest = 0;
    uint32_t rnd = 12345;
    int bad = 0;
    for (int i = 0; i < M_EVENTS; i++) {
        rnd = rnd * 1103515245u + 12345u;
        int uix = (int)((rnd >> 16) % M_USERS);
        size_t pad = (rnd >> 8) % 200; /* 0: no message */
        char uid[8];
        snprintf(uid, sizeof uid, "m%d", uix);
        rec_t r = rec_ts(&st, uid, "t", "running", 1000 + i, pad, 7);
        if (r.rc != BK_RECORD_OK) {
            bad++;
            continue;
        }
        m[i] = (m_t){uix, ++useq[uix], r.blob->len, 1};
        ucount[uix]++;
        total += r.blob->len;
        while (ucount[uix] > lim.history_per_user) {
            for (int k = 0; k <= i; k++)
                if (m[k].alive && m[k].user == uix) {
                    m[k].alive = 0;
                    ucount[uix]--;
                    total -= m[k].len;
                    break;
                }
        }
        while (total > lim.history_bytes) {
            while (!m[oldest].alive)
                oldest++;
            m[oldest].alive = 0;
            ucount[m[oldest].user]--;
            total -= m[oldest].len;
        }
        /* compare every user's history with the model */
        for (int x = 0; x < M_USERS; x++) {
            snprintf(uid, sizeof uid, "m%d", x);
            bk_user_t *u = user(&st, uid);
            const bk_hist_t *h = u ? u->hhead : NULL;
            for (int k = 0; k <= i; k++) {
                if (!m[k].alive || m[k].user != x)
                    continue;
                if (!h || h->seq != m[k].seq || h->blob->len != m[k].len)
                    bad++;
                h = h ? h->unext : NULL;
            }
            if (h)
                bad++;
            if (u && u->hcount != ucount[x])
                bad++;
            /* contiguous, ending at the user's last seq */
            if (u && u->hhead) {
                uint64_t want = u->seq - u->hcount + 1;
                for (h = u->hhead; h; h = h->unext, want++)
                    if (h->seq != want)
                        bad++;
            }
        }
        if (st.hist_bytes != total)
            bad++;
        if (bad) {
            fprintf(stderr, "history model differs at event %d\n", i);
            break;
        }
    }
    CHECK(bad == 0);
    CHECK(global_fifo_ok(&st));
    bk_state_destroy(&st);
}

/* ---------------------------------------------------------------- replay */

typedef struct {
    uint64_t seqs[64];
    size_t n;
    size_t stop_after; /* 0: never */
} collect_t;

static int
collect(void *arg, const bk_blob_t *blob)
{
    collect_t *c = arg;
    pub_t p;
    if (pub(blob->data, blob->len, &p) != 0)
        p.seq = 0;
    if (c->n < 64)
        c->seqs[c->n] = p.seq;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static int
collected(const collect_t *c, uint64_t from, uint64_t to)
{
    if (c->n != (to >= from ? to - from + 1 : 0))
        return 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->seqs[i] != from + i)
            return 0;
    return 1;
}

static void
test_replay(void)
{
    bk_limits_t lim = s_big;
    lim.history_per_user = 10;
    bk_state_t st;
    CHECK(bk_state_init(&st, &lim) == 0);
    bk_user_t *u = bk_state_user(&st, "u", 1, 1000);
    collect_t c = {0};
    CHECK(u && u->seq == 0);
    CHECK(bk_state_replay(u, 0, collect, &c) == 1 && c.n == 0); /* nothing yet, nothing missed */
    for (int i = 0; i < 5; i++)
        CHECK(rec(&st, "u", i % 2 ? "a" : "b", "running", 1000 + i).rc == BK_RECORD_OK);
    for (uint64_t since = 0; since <= 5; since++) {
        c = (collect_t){0};
        CHECK(bk_state_replay(u, since, collect, &c) == 1);
        CHECK(collected(&c, since + 1, 5));
        CHECK(bk_state_replay(u, since, NULL, NULL) == 1);
    }
    /* beyond the user's seq: not a replay */
    c = (collect_t){0};
    CHECK(bk_state_replay(u, 6, collect, &c) == 0 && c.n == 0);
    CHECK(bk_state_replay(u, 1000, NULL, NULL) == 0);
    /* the callback stops it */
    c = (collect_t){.stop_after = 2};
    CHECK(bk_state_replay(u, 0, collect, &c) == 1 && c.n == 2 && c.seqs[1] == 2);

    /* the history holds 3..12 after 12 events: since 2..12 replay, since < 2 not */
    for (int i = 5; i < 12; i++)
        CHECK(rec(&st, "u", "a", "running", 2000 + i).rc == BK_RECORD_OK);
    CHECK(u->hhead->seq == 3 && u->seq == 12);
    c = (collect_t){0};
    CHECK(bk_state_replay(u, 2, collect, &c) == 1 && collected(&c, 3, 12));
    c = (collect_t){0};
    CHECK(bk_state_replay(u, 1, collect, &c) == 0 && c.n == 0);
    CHECK(bk_state_replay(u, 1, NULL, NULL) == 0);
    CHECK(bk_state_replay(u, 0, NULL, NULL) == 0);
    c = (collect_t){0};
    CHECK(bk_state_replay(u, 12, collect, &c) == 1 && c.n == 0);
    c = (collect_t){0};
    CHECK(bk_state_replay(u, 11, collect, &c) == 1 && collected(&c, 12, 12));
    CHECK(bk_state_replay(u, 13, NULL, NULL) == 0);
    bk_state_destroy(&st);
}

/* ---------------------------------------------------------------- snapshot */

static void
test_snapshot_by_seq(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0);
    /* 40 tasks created in order, then every third updated again, in
     * reverse: the snapshot is each task's latest, lowest seq first. */
    char tid[16];
    for (int i = 0; i < 40; i++) {
        snprintf(tid, sizeof tid, "task-%d", i);
        CHECK(rec(&st, "u", tid, "running", 1000 + i).rc == BK_RECORD_OK);
    }
    for (int i = 39; i >= 0; i -= 3) {
        snprintf(tid, sizeof tid, "task-%d", i);
        CHECK(rec(&st, "u", tid, i % 2 ? "succeeded" : "running", 2000 + i).rc == BK_RECORD_OK);
    }
    bk_user_t *u = user(&st, "u");
    collect_t c = {0};
    CHECK(bk_state_snapshot(u, collect, &c) == 0);
    CHECK(c.n == 40);
    int sorted = 1;
    for (size_t i = 1; i < c.n && i < 64; i++)
        sorted &= c.seqs[i] > c.seqs[i - 1];
    CHECK(sorted);
    /* the set: each task's latest seq */
    size_t pos = 0, n = 0;
    const bk_task_t *t;
    int all = 1;
    while ((t = strmap_next(u->tasks, &pos)) != NULL) {
        int found = 0;
        for (size_t i = 0; i < c.n; i++)
            found |= c.seqs[i] == t->seq;
        all &= found;
        n++;
    }
    CHECK(all && n == 40);
    CHECK(c.seqs[39] == u->seq);
    /* the callback stops it */
    c = (collect_t){.stop_after = 3};
    CHECK(bk_state_snapshot(u, collect, &c) == 0 && c.n == 3);
    /* a user without tasks: nothing */
    bk_user_t *e = bk_state_user(&st, "empty", 5, 1000);
    c = (collect_t){0};
    CHECK(e && bk_state_snapshot(e, collect, &c) == 0 && c.n == 0);
    bk_state_destroy(&st);
}

/* ---------------------------------------------------------------- retention */

static void
test_terminal_retention(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0); /* retention 1000 ms */
    CHECK(rec(&st, "u", "live", "running", 10000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "x", "running", 10000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "x", "succeeded", 10000).rc == BK_RECORD_OK);
    CHECK(task(&st, "u", "x")->ended_ms == 10000);
    CHECK(rec(&st, "u", "y", "failed", 10200).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "z", "cancelled", 10400).rc == BK_RECORD_OK);
    /* z is re-opened (a retry): it leaves the retention FIFO */
    CHECK(rec(&st, "u", "z", "running", 10500).rc == BK_RECORD_OK);
    CHECK(task(&st, "u", "z")->ended_ms == 0);
    CHECK(st.ntasks == 4);

    bk_state_sweep(&st, 10999);
    CHECK(task(&st, "u", "x") != NULL);
    bk_state_sweep(&st, 11000);
    CHECK(task(&st, "u", "x") == NULL);
    CHECK(task(&st, "u", "y") != NULL);
    bk_state_sweep(&st, 11199);
    CHECK(task(&st, "u", "y") != NULL);
    bk_state_sweep(&st, 11200);
    CHECK(task(&st, "u", "y") == NULL);
    bk_state_sweep(&st, 50000);
    CHECK(task(&st, "u", "z") != NULL && task(&st, "u", "live") != NULL);
    CHECK(st.ntasks == 2);
    CHECK(st.rhead == NULL && st.rtail == NULL);

    /* z ends again: its retention counts from the new end */
    CHECK(rec(&st, "u", "z", "failed", 60000).rc == BK_RECORD_OK);
    /* a task that ends, then ends again later, moves to the FIFO's tail */
    CHECK(rec(&st, "u", "w", "succeeded", 60100).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "z", "succeeded", 60200).rc == BK_RECORD_OK);
    CHECK(st.rhead == task(&st, "u", "w") && st.rtail == task(&st, "u", "z"));
    bk_state_sweep(&st, 61100);
    CHECK(task(&st, "u", "w") == NULL && task(&st, "u", "z") != NULL);
    bk_state_sweep(&st, 61199);
    CHECK(task(&st, "u", "z") != NULL);
    bk_state_sweep(&st, 61200);
    CHECK(task(&st, "u", "z") == NULL);
    /* the bytes follow: only "live" is left */
    CHECK(st.ntasks == 1 && st.state_bytes == task(&st, "u", "live")->blob->len);
    /* the user's seq and history are not touched by the sweep */
    CHECK(user(&st, "u")->seq == 9);
    CHECK(bk_state_replay(user(&st, "u"), 0, NULL, NULL) == 1);
    bk_state_destroy(&st);
}

static void
test_idle_users(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0); /* retention 1000 ms */
    CHECK(rec(&st, "gone", "t", "succeeded", 1000).rc == BK_RECORD_OK);
    char epoch1[sizeof user(&st, "gone")->epoch];
    strcpy(epoch1, user(&st, "gone")->epoch);
    CHECK(rec(&st, "live", "t", "running", 1000).rc == BK_RECORD_OK);
    bk_state_set_subscribed(&st, "watched", 7, 1, 1000);
    CHECK(user(&st, "watched") != NULL && user(&st, "watched")->idle_ms == 0);
    CHECK(bk_state_user(&st, "bare", 4, 1500) != NULL); /* created idle */
    CHECK(user(&st, "bare")->idle_ms == 1500);

    bk_state_sweep(&st, 2000); /* gone's task leaves: gone is idle from now */
    CHECK(task(&st, "gone", "t") == NULL);
    CHECK(user(&st, "gone") != NULL && user(&st, "gone")->idle_ms == 2000);
    bk_state_sweep(&st, 2499);
    CHECK(user(&st, "bare") != NULL);
    bk_state_sweep(&st, 2500);
    CHECK(user(&st, "bare") == NULL);
    bk_state_sweep(&st, 2999);
    CHECK(user(&st, "gone") != NULL);
    bk_state_sweep(&st, 3000);
    CHECK(user(&st, "gone") == NULL);
    bk_state_sweep(&st, 100000);
    CHECK(user(&st, "live") != NULL);    /* a live task */
    CHECK(user(&st, "watched") != NULL); /* a subscriber */

    /* unsubscribed: idle from then on */
    bk_state_set_subscribed(&st, "watched", 7, 0, 200000);
    CHECK(user(&st, "watched")->idle_ms == 200000);
    bk_state_sweep(&st, 200999);
    CHECK(user(&st, "watched") != NULL);
    /* subscribed again before the end: not idle any more */
    bk_state_set_subscribed(&st, "watched", 7, 1, 200500);
    bk_state_sweep(&st, 300000);
    CHECK(user(&st, "watched") != NULL && user(&st, "watched")->idle_ms == 0);
    /* an invalid user id is ignored */
    bk_state_set_subscribed(&st, "no/t valid", 10, 1, 300000);
    CHECK(user(&st, "no/t valid") == NULL);

    /* a user dropped and created again: new epoch, seq from 1 */
    rec_t r = rec(&st, "gone", "t2", "running", 300000);
    CHECK(r.rc == BK_RECORD_OK && r.seq == 1);
    CHECK(strcmp(r.u->epoch, epoch1) != 0);
    CHECK(ordinal(r.u->epoch) > ordinal(epoch1));
    /* and the idle FIFO is consistent: only idle users in it */
    int n = 0;
    for (bk_user_t *u = st.ihead; u; u = u->inext, n++)
        CHECK(u->idle_ms != 0 && !u->subscribed && strmap_size(u->tasks) == 0);
    CHECK(n == 0);
    bk_state_destroy(&st);
}

static void
test_max_users(void)
{
    bk_limits_t lim = s_big;
    lim.max_users = 3;
    bk_state_t st;
    CHECK(bk_state_init(&st, &lim) == 0);
    bk_state_set_subscribed(&st, "a", 1, 1, 1000);
    CHECK(rec(&st, "b", "t", "running", 1000).rc == BK_RECORD_OK);
    bk_state_set_subscribed(&st, "c", 1, 1, 1000);
    /* nobody idle: no room */
    CHECK(bk_state_user(&st, "d", 1, 1100) == NULL);
    CHECK(rec(&st, "d", "t", "running", 1100).rc == BK_RECORD_OVERLOADED);
    CHECK(user(&st, "d") == NULL && strmap_size(st.users) == 3);
    /* existing users are still served */
    CHECK(rec(&st, "b", "t", "running", 1100).rc == BK_RECORD_OK);
    CHECK(bk_state_user(&st, "a", 1, 1100) == user(&st, "a"));

    /* c idle from 2000, a from 3000: c (the longest idle) makes room first */
    bk_state_set_subscribed(&st, "c", 1, 0, 2000);
    bk_state_set_subscribed(&st, "a", 1, 0, 3000);
    rec_t r = rec(&st, "d", "t", "running", 4000);
    CHECK(r.rc == BK_RECORD_OK && r.seq == 1);
    CHECK(user(&st, "c") == NULL && user(&st, "a") != NULL && user(&st, "b") != NULL);
    CHECK(bk_state_user(&st, "e", 1, 4100) != NULL);
    CHECK(user(&st, "a") == NULL);
    /* e is idle now, the others are not: f takes e's place */
    CHECK(bk_state_user(&st, "f", 1, 4200) != NULL);
    CHECK(user(&st, "e") == NULL);
    /* f is idle (created, nothing else): g replaces it; a subscribed user
     * is never evicted */
    bk_state_set_subscribed(&st, "f", 1, 1, 4300);
    CHECK(bk_state_user(&st, "g", 1, 4400) == NULL);
    CHECK(strmap_size(st.users) == 3);
    bk_state_destroy(&st);
}

static void
test_tasks_per_user(void)
{
    bk_limits_t lim = s_big;
    lim.tasks_per_user = 2;
    bk_state_t st;
    CHECK(bk_state_init(&st, &lim) == 0);
    CHECK(rec(&st, "u", "a", "running", 1000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "b", "running", 1000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "c", "running", 1000).rc == BK_RECORD_TOO_MANY_TASKS);
    CHECK(user(&st, "u")->seq == 2); /* a refused event takes no seq */
    CHECK(task(&st, "u", "c") == NULL && st.ntasks == 2);
    /* other users have their own limit; existing tasks still update */
    CHECK(rec(&st, "v", "c", "running", 1000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "a", "running", 1001).rc == BK_RECORD_OK);
    CHECK(user(&st, "u")->seq == 3);
    /* b ends and leaves after the retention: room for c, not for d */
    CHECK(rec(&st, "u", "b", "succeeded", 1002).rc == BK_RECORD_OK);
    bk_state_sweep(&st, 5000);
    CHECK(task(&st, "u", "b") == NULL);
    CHECK(rec(&st, "u", "c", "running", 5001).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "d", "running", 5002).rc == BK_RECORD_TOO_MANY_TASKS);
    bk_state_destroy(&st);

    /* The limit is on live tasks (protocol.md: too_many_tasks = "the user
     * has --max-tasks-per-user live tasks"; broker.h: "live tasks per
     * user"; the answer says "finish some first"): a finished task within
     * its retention time is not live. */
    lim.tasks_per_user = 1;
    CHECK(bk_state_init(&st, &lim) == 0);
    CHECK(rec(&st, "u", "a", "running", 1000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "b", "running", 1001).rc == BK_RECORD_TOO_MANY_TASKS);
    CHECK(rec(&st, "u", "a", "succeeded", 1002).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "b", "running", 1003).rc == BK_RECORD_OK);
    CHECK(task(&st, "u", "a") != NULL); /* still shown until its retention ends */
    bk_state_destroy(&st);
}

static void
test_state_bytes(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0);
    uint32_t blen = rec(&st, "u", "a", "running", 1000).blob->len;
    bk_state_destroy(&st);

    bk_limits_t lim = s_big;
    lim.state_bytes = 2 * (uint64_t)blen;
    CHECK(bk_state_init(&st, &lim) == 0);
    CHECK(rec(&st, "u", "a", "running", 1000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "b", "running", 1000).rc == BK_RECORD_OK);
    CHECK(st.state_bytes == 2 * (uint64_t)blen);
    rec_t r = rec(&st, "u", "c", "running", 1000);
    CHECK(r.rc == BK_RECORD_OVERLOADED);
    CHECK(task(&st, "u", "c") == NULL && st.ntasks == 2 && user(&st, "u")->seq == 2);
    CHECK(rec(&st, "v", "c", "running", 1000).rc == BK_RECORD_OVERLOADED);
    CHECK(st.state_bytes == 2 * (uint64_t)blen && st.ntasks == 2);
    bk_state_destroy(&st);

    /* "failed" is one byte shorter than "running": a at blen, b at blen - 1,
     * the limit 2 * blen - 1 is reached; once b has left there is room */
    lim.state_bytes = 2 * (uint64_t)blen - 1;
    CHECK(bk_state_init(&st, &lim) == 0);
    CHECK(rec(&st, "u", "a", "running", 1000).rc == BK_RECORD_OK);
    CHECK(rec(&st, "u", "b", "failed", 1000).rc == BK_RECORD_OK);
    CHECK(st.state_bytes == lim.state_bytes);
    CHECK(rec(&st, "u", "c", "running", 1000).rc == BK_RECORD_OVERLOADED);
    bk_state_sweep(&st, 2000);
    CHECK(task(&st, "u", "b") == NULL && st.state_bytes == blen);
    r = rec(&st, "u", "c", "running", 2001);
    CHECK(r.rc == BK_RECORD_OK && r.seq == 3);
    bk_state_destroy(&st);
}

/* ---------------------------------------------------------------- restore */

/*  What a journal keeps of each accepted event: the published bytes and when. */
typedef struct {
    uint8_t *data;
    size_t len;
    int64_t at; /* wall ms */
} jrec_t;

typedef struct {
    jrec_t r[512];
    size_t n;
} jlog_t;

static rec_t
jrec(jlog_t *j, bk_state_t *st, const char *uid, const char *tid, const char *status, int64_t now)
{
    rec_t r = rec(st, uid, tid, status, now);
    if (r.rc == BK_RECORD_OK && j->n < 512) {
        jrec_t *x = &j->r[j->n++];
        x->data = malloc(r.blob->len);
        memcpy(x->data, r.blob->data, r.blob->len);
        x->len = r.blob->len;
        x->at = WALL + now;
    }
    return r;
}

static void
jlog_free(jlog_t *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->r[i].data);
    j->n = 0;
}

/*  Restores every record (to_history) into st as of now_ms (wall = WALL + now_ms). */
static int
jlog_restore(const jlog_t *j, bk_state_t *st, int64_t now_ms)
{
    int bad = 0;
    for (size_t i = 0; i < j->n; i++) {
        uint64_t seq = 0;
        pub_t p;
        if (bk_state_restore(st, j->r[i].data, j->r[i].len, 1, j->r[i].at, now_ms, WALL + now_ms,
                             &seq) != 0 ||
            pub(j->r[i].data, j->r[i].len, &p) != 0 || seq != p.seq)
            bad++;
    }
    return bad;
}

typedef struct {
    const bk_state_t *other;
    int bad;
} cmp_t;

/*  Every user of a has the same seq, epoch, tasks (seq, bytes, ended) and
 *  history in the other state. */
static int
cmp_user(void *arg, const bk_user_t *ua)
{
    cmp_t *c = arg;
    const bk_user_t *ub = strmap_get(c->other->users, ua->id, ua->id_len);
    int bad = 0;
    if (!ub) {
        fprintf(stderr, "user %s missing\n", ua->id);
        c->bad++;
        return 0;
    }
    if (ub->seq != ua->seq || strcmp(ub->epoch, ua->epoch) != 0 || ub->epoch_len != ua->epoch_len ||
        strmap_size(ub->tasks) != strmap_size(ua->tasks))
        bad++;
    size_t pos = 0;
    const bk_task_t *ta;
    while ((ta = strmap_next(ua->tasks, &pos)) != NULL) {
        const bk_task_t *tb = bk_state_task(ub, ta->id, ta->id_len);
        if (!tb || tb->seq != ta->seq || tb->blob->len != ta->blob->len ||
            memcmp(tb->blob->data, ta->blob->data, ta->blob->len) != 0 ||
            tb->ended_ms != ta->ended_ms)
            bad++;
    }
    const bk_hist_t *ha = ua->hhead, *hb = ub->hhead;
    for (; ha && hb; ha = ha->unext, hb = hb->unext)
        if (ha->seq != hb->seq || ha->blob->len != hb->blob->len ||
            memcmp(ha->blob->data, hb->blob->data, ha->blob->len) != 0)
            bad++;
    if (ha || hb || ua->hcount != ub->hcount)
        bad++;
    /* the latest state and the history share the blob after a restore too */
    if (ub->htail) {
        pub_t p;
        if (pub(ub->htail->blob->data, ub->htail->blob->len, &p) == 0) {
            const bk_task_t *tb = bk_state_task(ub, p.task, strlen(p.task));
            if (!tb || tb->blob != ub->htail->blob)
                bad++;
        }
    }
    if (bad)
        fprintf(stderr, "user %s differs after the restore\n", ua->id);
    c->bad += bad;
    return 0;
}

static int
same_state(const bk_state_t *a, const bk_state_t *b)
{
    cmp_t c = {.other = b};
    bk_state_each_user(a, cmp_user, &c);
    if (strmap_size(a->users) != strmap_size(b->users) || a->ntasks != b->ntasks ||
        a->state_bytes != b->state_bytes || a->hist_bytes != b->hist_bytes) {
        fprintf(stderr, "totals differ: users %zu/%zu tasks %" PRIu64 "/%" PRIu64 "\n",
                strmap_size(a->users), strmap_size(b->users), a->ntasks, b->ntasks);
        c.bad++;
    }
    return c.bad == 0;
}

static void
test_restore_same_state(void)
{
    bk_limits_t lim = s_big;
    lim.history_per_user = 6;
    lim.retention_ms = 100000;
    bk_state_t a, b;
    CHECK(bk_state_init(&a, &lim) == 0);
    jlog_t *j = calloc(1, sizeof *j);
    const char *statuses[] = {"queued", "running", "running", "succeeded", "failed", "cancelled"};
    char uid[8], tid[8];
    int64_t now = 1000;
    for (int i = 0; i < 120; i++) {
        snprintf(uid, sizeof uid, "r%d", i % 4);
        snprintf(tid, sizeof tid, "t%d", (i / 4) % 7);
        CHECK(jrec(j, &a, uid, tid, statuses[(i * 7) % 6], now += 10).rc == BK_RECORD_OK);
    }
    bk_state_set_subscribed(&a, "r0", 2, 1, now); /* subscriptions are not journaled */
    bk_state_set_subscribed(&a, "r0", 2, 0, now);

    CHECK(bk_state_init(&b, &lim) == 0);
    CHECK(strcmp(a.epoch, b.epoch) != 0);
    /* same clock mapping (wall = WALL + now): the ends come out identical */
    CHECK(jlog_restore(j, &b, now) == 0);
    CHECK(same_state(&a, &b));
    CHECK(same_state(&b, &a));
    /* the retention FIFO has every terminal task, in order of their ends */
    int n = 0, ordered = 1;
    for (const bk_task_t *t = b.rhead; t; t = t->rnext, n++)
        ordered &= !t->rnext || t->rnext->ended_ms >= t->ended_ms;
    int terminal = 0;
    for (const bk_task_t *t = a.rhead; t; t = t->rnext)
        terminal++;
    CHECK(n == terminal && ordered && n > 0);
    /* snapshots agree */
    collect_t ca = {0}, cb = {0};
    CHECK(bk_state_snapshot(user(&a, "r1"), collect, &ca) == 0);
    CHECK(bk_state_snapshot(user(&b, "r1"), collect, &cb) == 0);
    CHECK(ca.n == 7 && cb.n == 7 && memcmp(ca.seqs, cb.seqs, sizeof ca.seqs) == 0);
    /* both go on with the same next seq */
    CHECK(rec(&a, "r2", "t0", "running", now + 1).seq ==
          rec(&b, "r2", "t0", "running", now + 1).seq);
    /* the sweep removes the same tasks */
    int live = 0;
    for (int k = 0; k < 4; k++) {
        snprintf(uid, sizeof uid, "r%d", k);
        size_t pos = 0;
        const bk_task_t *t;
        while ((t = strmap_next(user(&a, uid)->tasks, &pos)) != NULL)
            live += t->ended_ms == 0;
    }
    CHECK(live > 0 && live < 28);
    CHECK(a.rhead && b.rhead && a.rhead->ended_ms == b.rhead->ended_ms);
    int64_t first_end = a.rhead ? a.rhead->ended_ms : 0;
    bk_state_sweep(&a, first_end + 99999);
    bk_state_sweep(&b, first_end + 99999);
    CHECK(a.ntasks == 28 && b.ntasks == 28);
    bk_state_sweep(&a, now + 100000);
    bk_state_sweep(&b, now + 100000);
    CHECK(a.ntasks == (uint64_t)live && b.ntasks == (uint64_t)live);

    /* restoring the same records twice changes nothing */
    bk_state_destroy(&b);
    CHECK(bk_state_init(&b, &lim) == 0);
    CHECK(jlog_restore(j, &b, now) == 0);
    uint64_t hb = b.hist_bytes, sb = b.state_bytes;
    CHECK(jlog_restore(j, &b, now) == 0);
    CHECK(b.hist_bytes == hb && b.state_bytes == sb && user(&b, "r3")->hcount == 6);
    uint64_t hs[8];
    CHECK(hist_seqs(user(&b, "r3"), hs, 8) == 6 && hs[0] == 25 && hs[5] == 30);
    uint64_t seq_last;
    const jrec_t *lastr = &j->r[j->n - 1];
    CHECK(bk_state_restore(&b, lastr->data, lastr->len, 1, lastr->at, now, WALL + now, &seq_last) ==
          0);
    CHECK(hist_seqs(user(&b, "r3"), hs, 8) == 6 && hs[0] == 25 && hs[5] == 30);
    CHECK(b.hist_bytes == hb && global_fifo_ok(&b));
    /* with room for everything: still each event once */
    bk_limits_t roomy = lim;
    roomy.history_per_user = 1000;
    bk_state_t d;
    CHECK(bk_state_init(&d, &roomy) == 0);
    CHECK(jlog_restore(j, &d, now) == 0);
    CHECK(jlog_restore(j, &d, now) == 0);
    CHECK(user(&d, "r0")->hcount == 30 && user(&d, "r0")->seq == 30);
    bk_state_destroy(&d);

    /* task states only (to_history 0): no history, same latest states */
    bk_state_t c;
    CHECK(bk_state_init(&c, &lim) == 0);
    for (size_t i = 0; i < j->n; i++) {
        uint64_t seq;
        CHECK(bk_state_restore(&c, j->r[i].data, j->r[i].len, 0, j->r[i].at, now, WALL + now,
                               &seq) == 0);
    }
    CHECK(c.ghead == NULL && c.hist_bytes == 0);
    CHECK(c.ntasks == b.ntasks && c.state_bytes == b.state_bytes);
    CHECK(user(&c, "r3")->seq == user(&b, "r3")->seq);
    bk_state_destroy(&c);

    /* task states in any order (a compaction writes them in map order):
     * the latest of each task wins, the user's seq is the highest */
    CHECK(bk_state_init(&c, &lim) == 0);
    for (size_t i = j->n; i-- > 0;) {
        uint64_t seq;
        CHECK(bk_state_restore(&c, j->r[i].data, j->r[i].len, 0, j->r[i].at, now, WALL + now,
                               &seq) == 0);
    }
    CHECK(c.ntasks == b.ntasks && c.state_bytes == b.state_bytes);
    for (int k = 0; k < 4; k++) {
        snprintf(uid, sizeof uid, "r%d", k);
        CHECK(user(&c, uid)->seq == 30);
        size_t pos = 0;
        const bk_task_t *t;
        while ((t = strmap_next(user(&b, uid)->tasks, &pos)) != NULL) {
            const bk_task_t *tc = bk_state_task(user(&c, uid), t->id, t->id_len);
            CHECK(tc && tc->seq == t->seq && tc->blob->len == t->blob->len &&
                  memcmp(tc->blob->data, t->blob->data, t->blob->len) == 0);
        }
    }
    bk_state_destroy(&c);

    /* bytes that are not a published event */
    uint64_t seq = 77;
    CHECK(bk_state_restore(&b, (const uint8_t *)"\x80", 1, 1, WALL, now, WALL + now, &seq) == -1);
    wev_t w;
    CHECK(wev_make(&w, "r9", "t", "running", 5, 0) == 0);
    CHECK(bk_state_restore(&b, (const uint8_t *)w.sb.data, w.sb.size, 1, WALL, now, WALL + now,
                           &seq) == -1); /* worker form: no seq, no epoch */
    wev_free(&w);
    CHECK(user(&b, "r9") == NULL);

    jlog_free(j);
    free(j);
    bk_state_destroy(&a);
    bk_state_destroy(&b);
}

static void
test_restore_older_incarnation(void)
{
    bk_state_t a, b;
    CHECK(bk_state_init(&a, &s_big) == 0); /* retention 1000 */
    jlog_t *j = calloc(1, sizeof *j);
    CHECK(jrec(j, &a, "x", "old1", "running", 1000).rc == BK_RECORD_OK);
    CHECK(jrec(j, &a, "x", "old2", "running", 1010).rc == BK_RECORD_OK);
    CHECK(jrec(j, &a, "y", "y1", "running", 1020).rc == BK_RECORD_OK);
    CHECK(jrec(j, &a, "x", "old1", "succeeded", 1030).rc == BK_RECORD_OK);
    CHECK(jrec(j, &a, "x", "old2", "failed", 1040).rc == BK_RECORD_OK);
    char old_epoch[64];
    strcpy(old_epoch, user(&a, "x")->epoch);
    bk_state_sweep(&a, 2100); /* x's tasks leave */
    bk_state_sweep(&a, 3100); /* x leaves */
    CHECK(user(&a, "x") == NULL);
    CHECK(jrec(j, &a, "x", "new", "running", 3200).rc == BK_RECORD_OK);
    CHECK(jrec(j, &a, "x", "new", "running", 3300).rc == BK_RECORD_OK);
    CHECK(strcmp(user(&a, "x")->epoch, old_epoch) != 0 && user(&a, "x")->seq == 2);

    CHECK(bk_state_init(&b, &s_big) == 0);
    CHECK(jlog_restore(j, &b, 3400) == 0);
    bk_user_t *x = user(&b, "x");
    CHECK(x && strcmp(x->epoch, user(&a, "x")->epoch) == 0);
    CHECK(x && x->seq == 2 && strmap_size(x->tasks) == 1);
    CHECK(task(&b, "x", "old1") == NULL && task(&b, "x", "old2") == NULL);
    uint64_t s[8];
    CHECK(x && hist_seqs(x, s, 8) == 2 && s[0] == 1 && s[1] == 2);
    CHECK(same_state(&a, &b) && same_state(&b, &a));
    CHECK(global_fifo_ok(&b));

    /* user_ordinal stays above every restored ordinal: a new user, or x
     * dropped once more, never gets an epoch seen before */
    long long top = ordinal(user(&a, "x")->epoch);
    CHECK(top >= 3);
    bk_user_t *z = bk_state_user(&b, "z", 1, 3400);
    CHECK(z && ordinal(z->epoch) > top);

    /* an ordinal far above the number of users */
    wev_t w;
    CHECK(wev_make(&w, "big", "t", "running", 5, 0) == 0);
    buf_t pb;
    buf_init(&pb);
    const char *ep = "0123456789abcdef.1f0";
    CHECK(event_pack_published(&w.ev, 5, 9, ep, strlen(ep), &pb) == 0);
    uint64_t seq = 0;
    CHECK(bk_state_restore(&b, (const uint8_t *)pb.data, pb.len, 1, WALL, 3400, WALL + 3400,
                           &seq) == 0);
    CHECK(seq == 9 && user(&b, "big")->seq == 9);
    CHECK_STR(user(&b, "big")->epoch, ep);
    bk_user_t *z2 = bk_state_user(&b, "z2", 2, 3400);
    CHECK(z2 && ordinal(z2->epoch) > 0x1f0);
    /* the next event of the restored user goes on from its seq and epoch */
    rec_t r = rec(&b, "big", "t", "running", 3500);
    CHECK(r.rc == BK_RECORD_OK && r.seq == 10);
    pub_t p;
    CHECK(pub(r.blob->data, r.blob->len, &p) == 0);
    CHECK_STR(p.epoch, ep);
    buf_free(&pb);
    wev_free(&w);

    jlog_free(j);
    free(j);
    bk_state_destroy(&a);
    bk_state_destroy(&b);
}

static void
test_restore_retention_from_at(void)
{
    bk_state_t st;
    CHECK(bk_state_init(&st, &s_big) == 0); /* retention 1000 */
    wev_t w;
    buf_t pb;
    buf_init(&pb);
    const char *ep = "00000000000000aa.1";
    uint64_t seq = 0;
    int64_t now = 50000, wall = WALL + 900000;
    /* in the order a journal has them: by the time they were recorded */
    /* recorded long ago: gone at the first sweep */
    CHECK(wev_make(&w, "u", "old", "cancelled", 5, 0) == 0);
    CHECK(event_pack_published(&w.ev, 5, 1, ep, strlen(ep), &pb) == 0);
    CHECK(bk_state_restore(&st, (const uint8_t *)pb.data, pb.len, 1, wall - 86400000, now, wall,
                           &seq) == 0);
    CHECK(seq == 1);
    wev_free(&w);
    /* recorded 600 ms (wall) before the restore: 400 ms left */
    buf_reset(&pb);
    CHECK(wev_make(&w, "u", "done", "succeeded", 5, 0) == 0);
    CHECK(event_pack_published(&w.ev, 5, 2, ep, strlen(ep), &pb) == 0);
    CHECK(bk_state_restore(&st, (const uint8_t *)pb.data, pb.len, 1, wall - 600, now, wall, &seq) ==
          0);
    wev_free(&w);
    /* recorded "in the future" (the wall clock went back): a full retention */
    buf_reset(&pb);
    CHECK(wev_make(&w, "u", "future", "failed", 5, 0) == 0);
    CHECK(event_pack_published(&w.ev, 5, 3, ep, strlen(ep), &pb) == 0);
    CHECK(bk_state_restore(&st, (const uint8_t *)pb.data, pb.len, 1, wall + 5000, now, wall,
                           &seq) == 0);
    wev_free(&w);
    /* recorded before 1970 (a damaged journal; fuzzing found INT64_MIN
     * overflowing the age): as if long ago */
    buf_reset(&pb);
    CHECK(wev_make(&w, "u", "damaged", "failed", 5, 0) == 0);
    CHECK(event_pack_published(&w.ev, 5, 3, ep, strlen(ep), &pb) == 0);
    CHECK(bk_state_restore(&st, (const uint8_t *)pb.data, pb.len, 1, INT64_MIN + 1, now, wall,
                           &seq) == 0);
    wev_free(&w);
    /* a live task: no retention at all */
    buf_reset(&pb);
    CHECK(wev_make(&w, "u", "live", "running", 5, 0) == 0);
    CHECK(event_pack_published(&w.ev, 5, 4, ep, strlen(ep), &pb) == 0);
    CHECK(bk_state_restore(&st, (const uint8_t *)pb.data, pb.len, 1, wall - 86400000, now, wall,
                           &seq) == 0);
    CHECK(seq == 4);
    wev_free(&w);
    buf_free(&pb);

    CHECK(task(&st, "u", "done")->ended_ms == now - 600);
    CHECK(task(&st, "u", "future")->ended_ms == now);
    CHECK(task(&st, "u", "live")->ended_ms == 0);
    CHECK(task(&st, "u", "damaged")->ended_ms == now - 1000);
    bk_state_sweep(&st, now);
    CHECK(task(&st, "u", "old") == NULL);
    CHECK(task(&st, "u", "done") != NULL);
    bk_state_sweep(&st, now + 399);
    CHECK(task(&st, "u", "done") != NULL);
    bk_state_sweep(&st, now + 400);
    CHECK(task(&st, "u", "done") == NULL);
    bk_state_sweep(&st, now + 999);
    CHECK(task(&st, "u", "future") != NULL);
    bk_state_sweep(&st, now + 1000);
    CHECK(task(&st, "u", "future") == NULL);
    bk_state_sweep(&st, now + 1000000);
    CHECK(task(&st, "u", "live") != NULL && user(&st, "u")->seq == 4);
    CHECK(task(&st, "u", "damaged") == NULL); /* out of order in the FIFO: gone in its turn */
    bk_state_destroy(&st);
}

int
main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    test_seq_per_user();
    test_latest_and_blob_sharing();
    test_history_per_user_cap();
    test_history_global_bytes_cap();
    test_history_caps_model();
    test_replay();
    test_snapshot_by_seq();
    test_terminal_retention();
    test_idle_users();
    test_max_users();
    test_tasks_per_user();
    test_state_bytes();
    test_restore_same_state();
    test_restore_older_incarnation();
    test_restore_retention_from_at();
    return check_report();
}
