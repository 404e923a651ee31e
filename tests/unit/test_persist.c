/*  test_persist.c: the broker's journal records (broker/persist.c), without
 *  sockets: a broker_t set up by hand (log, state, dedup, journal), events
 *  taken in as ingest.c does, the journal reopened into a fresh broker_t.
 *
 *  "Time passing" is simulated by recording events as if they happened
 *  earlier: now_ms = monotonic now - age, wall_ms = wall now - age (the
 *  journal keeps wall times, the state monotonic ones). */
#include "broker.h"
#include "check.h"
#include "mbuild.h"
#include "clock.h"

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEC 1000LL
#define R   (60 * SEC) /* the retention of these tests */

static char s_dir[64];
static char s_path[128]; /* the journal */
static char s_copy[128]; /* a copy of it */

static bk_limits_t
limits(uint32_t history)
{
    bk_limits_t lim = {
        .retention_ms = R,
        .history_per_user = history,
        .history_bytes = 1u << 30,
        .tasks_per_user = 10000,
        .state_bytes = 1u << 30,
        .max_users = 1000000,
    };
    return lim;
}

/* ---------------------------------------------------------------- broker_t */

/*  A broker_t as main.c sets it up, minus the sockets; opens the journal. */
static int
bk_open(broker_t *bk, const char *path, uint32_t history, uint32_t window)
{
    memset(bk, 0, sizeof *bk);
    bk->sigfd = -1;
    log_init(&bk->log, "test_persist", LOG_WARN);
    buf_init(&bk->scratch);
    bk_limits_t lim = limits(history);
    char err[256] = "";
    if (bk_state_init(&bk->state, &lim) != 0)
        return -1;
    if (bk_persist_open(bk, path, window, err, sizeof err) != 0) {
        fprintf(stderr, "bk_persist_open: %s\n", err);
        return -1;
    }
    return 0;
}

static void
bk_close(broker_t *bk)
{
    bk_journal_close(&bk->journal);
    bk_dedup_destroy(&bk->dedup);
    bk_state_destroy(&bk->state);
    buf_free(&bk->scratch);
}

/* ---------------------------------------------------------------- events */

/*  A worker message, kept so it can be sent again. */
typedef struct {
    msgpack_sbuffer sb;
} msg_t;

/*  producer NULL: no idempotency key. */
static void
msg_make(msg_t *m, const char *user, const char *task, const char *status, int progress,
         const char *producer, uint64_t pseq)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&pk, &m->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + (producer ? 2 : 0));
    pk_str(&pk, "task_id");
    pk_str(&pk, task);
    pk_str(&pk, "user_id");
    pk_str(&pk, user);
    pk_str(&pk, "status");
    pk_str(&pk, status);
    pk_str(&pk, "progress");
    msgpack_pack_int(&pk, progress);
    if (producer) {
        pk_str(&pk, "producer");
        pk_str(&pk, producer);
        pk_str(&pk, "pseq");
        msgpack_pack_uint64(&pk, pseq);
    }
}

static void
msg_free(msg_t *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

enum { A_NEW, A_DUP, A_CONFLICT, A_REFUSED };

typedef struct {
    int kind;
    uint64_t seq;
} ans_t;

/*  What ingest.c's s_handle() does with one message (and the batch's
 *  journal flush), with the given clocks. */
static ans_t
ingest_at(broker_t *bk, const msg_t *m, int64_t now, int64_t wall)
{
    ans_t a = {A_REFUSED, 0};
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, m->sb.data, m->sb.size, EVENT_FROM_WORKER, &err) != 0) {
        fprintf(stderr, "test event refused: %s\n", err.detail);
        return a;
    }
    bk_dedup_id_t id;
    uint64_t seq = 0;
    if (ev.has_producer) {
        bk_dedup_hash(bk->dedup, &ev, m->sb.data, m->sb.size, &id);
        bk_dedup_result_t d = bk_dedup_find(bk->dedup, &id, &seq);
        if (d == BK_DEDUP_RESEND)
            return (ans_t){A_DUP, seq};
        if (d == BK_DEDUP_CONFLICT)
            return (ans_t){A_CONFLICT, 0};
    }
    bk_user_t *u = NULL;
    bk_blob_t *blob = NULL;
    if (bk_state_record(&bk->state, &ev, now, wall, &u, &blob) != BK_RECORD_OK)
        return a;
    seq = u->seq;
    if (ev.has_producer)
        bk_dedup_insert(bk->dedup, &id, seq);
    if (bk->journal)
        bk_persist_event(bk, blob, ev.has_producer ? &id : NULL, wall);
    if (bk->journal && bk_journal_flush(bk->journal) != 0)
        return a;
    return (ans_t){A_NEW, seq};
}

/*  As if it happened age ms ago. */
static ans_t
ingest_ago(broker_t *bk, const msg_t *m, int64_t age)
{
    return ingest_at(bk, m, clock_mono_ms() - age, clock_wall_ms() - age);
}

static ans_t
ingest(broker_t *bk, const msg_t *m)
{
    return ingest_ago(bk, m, 0);
}

/*  Sends one event and forgets the message. */
static ans_t
send_ago(broker_t *bk, const char *user, const char *task, const char *status, int64_t age)
{
    msg_t m;
    msg_make(&m, user, task, status, 1, NULL, 0);
    ans_t a = ingest_ago(bk, &m, age);
    msg_free(&m);
    return a;
}

/* ---------------------------------------------------------------- comparing */

static bk_user_t *
user(const broker_t *bk, const char *id)
{
    return strmap_get(bk->state.users, id, strlen(id));
}

static const bk_task_t *
task(const broker_t *bk, const char *uid, const char *tid)
{
    bk_user_t *u = user(bk, uid);
    return u ? bk_state_task(u, tid, strlen(tid)) : NULL;
}

static int64_t
absdiff(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

typedef struct {
    const broker_t *other;
    int bad;
    int back; /* comparing the reopened broker with the original: only count */
} cmp_t;

/*  The user has the same seq, epoch, tasks (seq, bytes, terminal, end
 *  within 50 ms) and history in the other broker. */
static int
cmp_user(void *arg, const bk_user_t *ua)
{
    cmp_t *c = arg;
    const bk_user_t *ub = strmap_get(c->other->state.users, ua->id, ua->id_len);
    if (!ub) {
        fprintf(stderr, "user %s %s after the reopen\n", ua->id, c->back ? "appeared" : "missing");
        c->bad++;
        return 0;
    }
    int bad = 0;
    if (ub->seq != ua->seq) {
        if (!c->back)
            fprintf(stderr, "user %s: seq %" PRIu64 " after the reopen, %" PRIu64 " before\n",
                    ua->id, ub->seq, ua->seq);
        bad++;
    }
    if (strcmp(ub->epoch, ua->epoch) != 0) {
        if (!c->back)
            fprintf(stderr, "user %s: epoch %s after the reopen, %s before\n", ua->id, ub->epoch,
                    ua->epoch);
        bad++;
    }
    if (strmap_size(ub->tasks) != strmap_size(ua->tasks)) {
        if (!c->back)
            fprintf(stderr, "user %s: %zu tasks after the reopen, %zu before\n", ua->id,
                    strmap_size(ub->tasks), strmap_size(ua->tasks));
        bad++;
    }
    size_t pos = 0;
    const bk_task_t *ta;
    while ((ta = strmap_next(ua->tasks, &pos)) != NULL) {
        const bk_task_t *tb = bk_state_task(ub, ta->id, ta->id_len);
        if (!tb || tb->seq != ta->seq || tb->blob->len != ta->blob->len ||
            memcmp(tb->blob->data, ta->blob->data, ta->blob->len) != 0 ||
            (tb->ended_ms != 0) != (ta->ended_ms != 0) ||
            absdiff(tb->ended_ms, ta->ended_ms) > 50) {
            if (!c->back)
                fprintf(stderr, "user %s task %.*s differs after the reopen\n", ua->id,
                        (int)ta->id_len, ta->id);
            bad++;
        }
    }
    const bk_hist_t *ha = ua->hhead, *hb = ub->hhead;
    for (; ha && hb; ha = ha->unext, hb = hb->unext)
        if (ha->seq != hb->seq || ha->blob->len != hb->blob->len ||
            memcmp(ha->blob->data, hb->blob->data, ha->blob->len) != 0)
            bad++;
    if (ha || hb || ua->hcount != ub->hcount) {
        if (!c->back)
            fprintf(stderr, "user %s: history of %u entries after the reopen, %u before\n", ua->id,
                    ub->hcount, ua->hcount);
        bad++;
    }
    c->bad += bad;
    return 0;
}

typedef struct {
    bk_dedup_id_t id[4096];
    uint64_t seq[4096];
    size_t n;
} pairs_t;

static int
pairs_add(void *arg, const bk_dedup_id_t *id, uint64_t seq)
{
    pairs_t *p = arg;
    if (p->n < 4096) {
        p->id[p->n] = *id;
        p->seq[p->n] = seq;
    }
    p->n++;
    return 0;
}

/*  Same broker epoch, same users (both ways), same idempotency window in
 *  the same order, same dedup keys. */
static int
same_broker(const broker_t *a, const broker_t *b)
{
    int bad = 0;
    if (strcmp(a->state.epoch, b->state.epoch) != 0) {
        fprintf(stderr, "broker epoch %s after the reopen, %s before\n", b->state.epoch,
                a->state.epoch);
        bad++;
    }
    cmp_t c = {.other = b};
    bk_state_each_user(&a->state, cmp_user, &c);
    cmp_t back = {.other = a, .back = 1};
    bk_state_each_user(&b->state, cmp_user, &back);
    bad += c.bad + back.bad;
    if (a->state.ntasks != b->state.ntasks || a->state.state_bytes != b->state.state_bytes ||
        a->state.hist_bytes != b->state.hist_bytes)
        bad++;
    unsigned char ka[BK_DEDUP_KEYS], kb[BK_DEDUP_KEYS];
    bk_dedup_keys(a->dedup, ka);
    bk_dedup_keys(b->dedup, kb);
    if (memcmp(ka, kb, sizeof ka) != 0) {
        fprintf(stderr, "dedup keys differ after the reopen\n");
        bad++;
    }
    pairs_t *pa = calloc(1, sizeof *pa), *pb = calloc(1, sizeof *pb);
    bk_dedup_each(a->dedup, pairs_add, pa);
    bk_dedup_each(b->dedup, pairs_add, pb);
    if (pa->n != pb->n || memcmp(pa->id, pb->id, sizeof pa->id) != 0 ||
        memcmp(pa->seq, pb->seq, sizeof pa->seq) != 0) {
        fprintf(stderr, "idempotency window differs after the reopen: %zu / %zu pairs\n", pa->n,
                pb->n);
        bad++;
    }
    free(pa);
    free(pb);
    return bad == 0;
}

/*  The global history FIFO of both holds the same (user, seq), in order. */
static int
same_history_order(const broker_t *a, const broker_t *b)
{
    const bk_hist_t *x = a->state.ghead, *y = b->state.ghead;
    for (; x && y; x = x->gnext, y = y->gnext)
        if (x->seq != y->seq || strcmp(x->user->id, y->user->id) != 0)
            return 0;
    return !x && !y;
}

static int
copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = in && out ? 0 : -1;
    char buf[8192];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

static long
file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ---------------------------------------------------------------- the workload */

static const char *const s_status[] = {"queued",  "running", "running",  "succeeded",
                                       "running", "failed",  "cancelled"};

typedef struct {
    msg_t m[600];
    uint64_t seq[600];
    size_t n;
} sent_t;

/*  n events over 5 users and 6 tasks each, 2 in 3 with (producer, pseq). */
static int
workload(broker_t *bk, sent_t *s, size_t n, uint64_t pseq0)
{
    int bad = 0;
    for (size_t i = 0; i < n && s->n < 600; i++) {
        char uid[8], tid[8];
        snprintf(uid, sizeof uid, "u%zu", i % 5);
        snprintf(tid, sizeof tid, "t%zu", (i / 5) % 6);
        msg_t *m = &s->m[s->n];
        msg_make(m, uid, tid, s_status[(i / 3) % 7], (int)(i % 101), i % 3 ? "prod-1" : NULL,
                 pseq0 + i);
        ans_t a = ingest(bk, m);
        if (a.kind != A_NEW)
            bad++;
        s->seq[s->n++] = a.seq;
    }
    return bad;
}

static void
sent_free(sent_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        msg_free(&s->m[i]);
    s->n = 0;
}

/*  Every message with a producer is a resend with its seq (if still in the
 *  window of the last `window` pairs), and a changed copy is refused. */
static int
resends_ok(broker_t *bk, const sent_t *s, size_t window)
{
    int bad = 0;
    size_t with = 0;
    for (size_t i = s->n; i-- > 0;) {
        event_t ev;
        event_error_t err;
        if (event_decode(&ev, s->m[i].sb.data, s->m[i].sb.size, EVENT_FROM_WORKER, &err) != 0)
            return 1;
        if (!ev.has_producer)
            continue;
        if (++with > window)
            break;
        ans_t a = ingest(bk, &s->m[i]);
        if (a.kind != A_DUP || a.seq != s->seq[i]) {
            fprintf(stderr,
                    "event %zu: a resend answered kind %d seq %" PRIu64 ", want seq %" PRIu64 "\n",
                    i, a.kind, a.seq, s->seq[i]);
            bad++;
        }
    }
    return bad;
}

/* ---------------------------------------------------------------- tests */

static void
test_new_journal(void)
{
    unlink(s_path);
    broker_t a, b;
    CHECK(bk_open(&a, s_path, 8, 64) == 0);
    CHECK(a.journal && a.dedup);
    CHECK(file_size(s_path) > 8); /* the meta record is written at once */
    char epoch[17];
    strcpy(epoch, a.state.epoch);
    bk_journal_close(&a.journal);
    CHECK(bk_open(&b, s_path, 8, 64) == 0);
    CHECK_STR(b.state.epoch, epoch);
    CHECK(same_broker(&a, &b));
    CHECK(strmap_size(b.state.users) == 0);
    bk_close(&a);
    bk_close(&b);
}

static void
test_reopen_same_state(void)
{
    unlink(s_path);
    broker_t a, b, c;
    sent_t *s = calloc(1, sizeof *s);
    CHECK(bk_open(&a, s_path, 8, 4096) == 0);
    CHECK(workload(&a, s, 300, 1) == 0);
    bk_state_set_subscribed(&a.state, "u1", 2, 1, clock_mono_ms());
    bk_journal_close(&a.journal); /* the broker stops (or dies): the file stays */

    CHECK(bk_open(&b, s_path, 8, 4096) == 0);
    CHECK(same_broker(&a, &b));
    CHECK(same_history_order(&a, &b));
    CHECK(user(&b, "u0")->seq == 60 && strmap_size(user(&b, "u0")->tasks) == 6);
    /* resends of old pairs are resends, with their seq */
    CHECK(resends_ok(&b, s, 4096) == 0);
    /* the same pair with other bytes is refused */
    msg_t m;
    msg_make(&m, "u1", "t0", "running", 100, "prod-1", 2);
    CHECK(ingest(&b, &m).kind == A_CONFLICT);
    msg_free(&m);
    /* seqs go on */
    uint64_t next = user(&b, "u3")->seq + 1;
    msg_make(&m, "u3", "t9", "running", 1, "prod-1", 100000);
    ans_t x = ingest(&b, &m);
    CHECK(x.kind == A_NEW && x.seq == next);
    bk_close(&b);

    /* and after a second reopen the new event is there, its pair too */
    CHECK(bk_open(&c, s_path, 8, 4096) == 0);
    CHECK(user(&c, "u3")->seq == next && task(&c, "u3", "t9") != NULL);
    ans_t y = ingest(&c, &m);
    CHECK(y.kind == A_DUP && y.seq == next);
    CHECK_STR(c.state.epoch, a.state.epoch);
    msg_free(&m);
    bk_close(&c);

    /* a smaller window after the restart keeps the newest pairs */
    CHECK(bk_open(&c, s_path, 8, 16) == 0);
    CHECK(resends_ok(&c, s, 15) == 0);
    bk_close(&c);

    sent_free(s);
    free(s);
    bk_close(&a);
}

static void
test_compact_same_state(void)
{
    unlink(s_path);
    broker_t a, b;
    sent_t *s = calloc(1, sizeof *s);
    char err[256] = "";
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    CHECK(workload(&a, s, 400, 1) == 0);
    long before = file_size(s_path);
    uint64_t estimate = bk_persist_estimate(&a);
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    long after = file_size(s_path);
    CHECK(after > 0 && after < before / 2);
    /* the estimate that decides whether a compaction is worth it */
    CHECK(estimate > (uint64_t)after * 8 / 10 && estimate < (uint64_t)after * 12 / 10);
    CHECK(bk_journal_size(a.journal) == (uint64_t)after);
    char compact[160];
    snprintf(compact, sizeof compact, "%s.compact", s_path);
    CHECK(access(compact, F_OK) != 0);
    /* events after the compaction are appended to the compact file */
    CHECK(workload(&a, s, 100, 1000) == 0);
    CHECK(file_size(s_path) > after);
    /* and a second compaction */
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    CHECK(workload(&a, s, 50, 2000) == 0);
    bk_journal_close(&a.journal);

    CHECK(bk_open(&b, s_path, 8, 100) == 0);
    CHECK(same_broker(&a, &b));
    CHECK(resends_ok(&b, s, 100) == 0);
    CHECK(user(&b, "u2")->seq == 110);
    msg_t m;
    msg_make(&m, "u2", "t0", "running", 5, NULL, 0);
    ans_t x = ingest(&b, &m);
    CHECK(x.kind == A_NEW && x.seq == 111);
    msg_free(&m);
    /* a compaction of the restored state gives the same state again */
    CHECK(bk_persist_compact(&b, err, sizeof err) == 0);
    broker_t c;
    bk_journal_close(&b.journal);
    CHECK(bk_open(&c, s_path, 8, 100) == 0);
    CHECK(same_broker(&b, &c));
    bk_close(&c);
    bk_close(&b);
    sent_free(s);
    free(s);
    bk_close(&a);
}

/*  What a crash right now would leave: the journal (and the scratch of a
 *  compaction, if any) copied aside, opened into a fresh broker. */
static int
crash_open(broker_t *out, uint32_t history, uint32_t window)
{
    char next[160], copy_next[160];
    snprintf(next, sizeof next, "%s.compact", s_path);
    snprintf(copy_next, sizeof copy_next, "%s.compact", s_copy);
    unlink(copy_next);
    if (copy_file(s_path, s_copy) != 0 ||
        (access(next, F_OK) == 0 && copy_file(next, copy_next) != 0))
        return -1;
    int rc = bk_open(out, s_copy, history, window);
    if (access(copy_next, F_OK) == 0) {
        fprintf(stderr, "the scratch of a compaction survived the open\n");
        rc = -1;
    }
    return rc;
}

/*  Reaps the compaction's child once it exited (as the loop does on
 *  SIGCHLD). */
static void
wait_child(broker_t *bk)
{
    for (int i = 0; i < 10000 && bk->compact.phase == BK_COMPACT_CHILD; i++) {
        bk_compact_reap(bk);
        if (bk->compact.phase == BK_COMPACT_CHILD)
            usleep(1000);
    }
}

/*  The compaction the broker runs: a forked child writes the snapshot
 *  while events go on; the tail is copied; the new file renamed (on this
 *  thread: no syncer). A crash at each phase restarts with everything. */
static void
test_compact_forked(void)
{
    unlink(s_path);
    broker_t a, b;
    sent_t *s = calloc(1, sizeof *s);
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    a.journal_min = 4096;
    CHECK(workload(&a, s, 200, 1) == 0);
    a.now_ms = clock_mono_ms();
    bk_compact_maybe(&a);
    CHECK(a.compact.phase == BK_COMPACT_CHILD && a.compact.pid > 0 && bk_compact_busy(&a));
    bk_compact_maybe(&a); /* one at a time */
    /* recorded while the child writes: in the journal only, copied later */
    CHECK(workload(&a, s, 50, 1000) == 0);
    CHECK(crash_open(&b, 8, 100) == 0 && same_broker(&a, &b));
    bk_close(&b);
    struct stat old, now;
    CHECK(stat(s_path, &old) == 0);
    /* reaped: the tail is copied (a small one at once), both files written,
     * the new one renamed */
    wait_child(&a);
    CHECK(a.compact.phase == BK_COMPACT_IDLE && a.stats.compactions == 1 && !bk_compact_busy(&a));
    CHECK(stat(s_path, &now) == 0 && now.st_ino != old.st_ino);
    CHECK(bk_journal_size(a.journal) == (uint64_t)file_size(s_path));
    CHECK(crash_open(&b, 8, 100) == 0 && same_broker(&a, &b) && same_history_order(&a, &b));
    bk_close(&b);
    CHECK(workload(&a, s, 50, 3000) == 0);
    bk_journal_close(&a.journal);
    CHECK(bk_open(&b, s_path, 8, 100) == 0);
    CHECK(same_broker(&a, &b) && same_history_order(&a, &b));
    CHECK(resends_ok(&b, s, 100) == 0);
    bk_close(&b);
    sent_free(s);
    free(s);
    bk_close(&a);
}

/*  A compaction that fails (its child killed; the new file cannot be
 *  created) leaves the journal whole, and is tried again later. */
static void
test_compact_failures(void)
{
    unlink(s_path);
    broker_t a, b;
    sent_t *s = calloc(1, sizeof *s);
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    a.journal_min = 4096;
    CHECK(workload(&a, s, 200, 1) == 0);
    char next[160];
    snprintf(next, sizeof next, "%s.compact", s_path);

    a.now_ms = clock_mono_ms();
    bk_compact_maybe(&a);
    CHECK(a.compact.phase == BK_COMPACT_CHILD);
    kill(a.compact.pid, SIGKILL);
    wait_child(&a);
    CHECK(a.compact.phase == BK_COMPACT_IDLE && a.stats.compactions == 0);
    CHECK(access(next, F_OK) != 0);
    CHECK(a.compact.not_before_ms > a.now_ms); /* not at once again */
    bk_compact_maybe(&a);
    CHECK(a.compact.phase == BK_COMPACT_IDLE);

    CHECK(mkdir(next, 0700) == 0); /* cannot be created */
    a.compact.not_before_ms = 0;
    bk_compact_maybe(&a);
    CHECK(a.compact.phase == BK_COMPACT_IDLE && a.compact.not_before_ms > a.now_ms);
    CHECK(rmdir(next) == 0);

    CHECK(workload(&a, s, 20, 1000) == 0);
    a.compact.not_before_ms = 0;
    bk_compact_maybe(&a);
    wait_child(&a);
    CHECK(a.compact.phase == BK_COMPACT_IDLE && a.stats.compactions == 1);
    bk_journal_close(&a.journal);
    CHECK(bk_open(&b, s_path, 8, 100) == 0 && same_broker(&a, &b));
    bk_close(&b);
    sent_free(s);
    free(s);
    bk_close(&a);
}

/*  "The oldest entry anywhere goes first": after a compaction and a
 *  restart, the global history FIFO is still in arrival order. */
static void
test_compact_keeps_history_order(void)
{
    unlink(s_path);
    broker_t a, b;
    sent_t *s = calloc(1, sizeof *s);
    char err[256] = "";
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    CHECK(workload(&a, s, 100, 1) == 0); /* 5 users, interleaved */
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    bk_journal_close(&a.journal);
    CHECK(bk_open(&b, s_path, 8, 100) == 0);
    CHECK(same_broker(&a, &b));
    CHECK(same_history_order(&a, &b));
    bk_close(&b);
    sent_free(s);
    free(s);
    bk_close(&a);
}

/*  Terminal tasks ended 10, 12, ..., 48 s ago over two users: after a
 *  reopen (raw journal, and compacted) each leaves exactly R after its end. */
static void
check_retention(broker_t *b, const char *what)
{
    int64_t t = clock_mono_ms(); /* just after the reopen */
    char uid[8], tid[8];
    int bad = 0;
    bk_state_sweep(&b->state, t + R - 49 * SEC); /* none is old enough */
    for (int k = 0; k < 20; k++) {
        snprintf(uid, sizeof uid, "r%d", k % 2);
        snprintf(tid, sizeof tid, "end%d", k);
        if (!task(b, uid, tid))
            bad++;
    }
    bk_state_sweep(&b->state, t + R - 29 * SEC); /* ended 30 s ago and more */
    for (int k = 0; k < 20; k++) {
        snprintf(uid, sizeof uid, "r%d", k % 2);
        snprintf(tid, sizeof tid, "end%d", k);
        int present = task(b, uid, tid) != NULL;
        if (present != (k < 10)) {
            fprintf(stderr, "%s: task %s (ended %d s ago) is %s\n", what, tid, 10 + 2 * k,
                    present ? "still there" : "gone too early");
            bad++;
        }
    }
    CHECK(task(b, "r0", "live") != NULL);
    bk_state_sweep(&b->state, t + R - 9 * SEC);
    for (int k = 0; k < 20; k++) {
        snprintf(uid, sizeof uid, "r%d", k % 2);
        snprintf(tid, sizeof tid, "end%d", k);
        if (task(b, uid, tid))
            bad++;
    }
    CHECK(task(b, "r0", "live") != NULL);
    if (bad)
        fprintf(stderr, "%s: retention is wrong\n", what);
    CHECK(bad == 0);
}

static void
test_retention_survives(void)
{
    unlink(s_path);
    broker_t a, b;
    char err[256] = "";
    CHECK(bk_open(&a, s_path, 4, 100) == 0);
    CHECK(send_ago(&a, "r0", "live", "running", 60 * SEC).kind == A_NEW);
    /* oldest first, as they happen; each user's first ones are older than
     * its history (4 entries), so a compaction writes them as task states */
    char uid[8], tid[8];
    for (int k = 19; k >= 0; k--) {
        snprintf(uid, sizeof uid, "r%d", k % 2);
        snprintf(tid, sizeof tid, "end%d", k);
        CHECK(send_ago(&a, uid, tid, k % 3 ? "succeeded" : "failed", (10 + 2 * k) * SEC).kind ==
              A_NEW);
    }
    bk_journal_flush(a.journal);
    CHECK(copy_file(s_path, s_copy) == 0);
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    bk_journal_close(&a.journal);

    CHECK(bk_open(&b, s_copy, 4, 100) == 0); /* the journal as it was */
    CHECK(same_broker(&a, &b));
    check_retention(&b, "raw journal");
    bk_close(&b);

    CHECK(bk_open(&b, s_path, 4, 100) == 0); /* the compacted one */
    CHECK(same_broker(&a, &b));
    check_retention(&b, "compacted journal");
    bk_close(&b);
    bk_close(&a);
}

/*  A terminal task that left after its retention stays gone after a
 *  compaction and a restart (the history still holds its events). */
static void
test_compact_swept_task_stays_gone(void)
{
    unlink(s_path);
    broker_t a, b;
    char err[256] = "";
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    CHECK(send_ago(&a, "s", "old", "running", 3 * R).kind == A_NEW);
    CHECK(send_ago(&a, "s", "old", "succeeded", 2 * R).kind == A_NEW);
    CHECK(send_ago(&a, "s", "live", "running", 0).kind == A_NEW);
    bk_state_sweep(&a.state, clock_mono_ms());
    CHECK(task(&a, "s", "old") == NULL && task(&a, "s", "live") != NULL);
    CHECK(copy_file(s_path, s_copy) == 0);
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    bk_journal_close(&a.journal);

    /* raw journal: restored as it was, gone at the first sweep */
    CHECK(bk_open(&b, s_copy, 8, 100) == 0);
    bk_state_sweep(&b.state, clock_mono_ms());
    CHECK(task(&b, "s", "old") == NULL);
    CHECK(same_broker(&a, &b));
    bk_close(&b);

    /* compacted journal: the same */
    CHECK(bk_open(&b, s_path, 8, 100) == 0);
    bk_state_sweep(&b.state, clock_mono_ms());
    if (task(&b, "s", "old"))
        fprintf(stderr,
                "compacted journal: task 'old' is back, ended %" PRId64
                " ms ago (it left 1 retention ago)\n",
                clock_mono_ms() - task(&b, "s", "old")->ended_ms);
    CHECK(task(&b, "s", "old") == NULL);
    CHECK(same_broker(&a, &b));
    bk_close(&b);
    bk_close(&a);
}

/*  The user's seq survives a compaction even when the task of its latest
 *  event has left and no history holds it (--history 0): seqs are never
 *  given twice within an epoch. */
static void
test_compact_keeps_seq(void)
{
    unlink(s_path);
    broker_t a, b;
    char err[256] = "";
    CHECK(bk_open(&a, s_path, 0, 100) == 0);
    CHECK(send_ago(&a, "q", "live", "running", 3 * R).kind == A_NEW);
    ans_t last = send_ago(&a, "q", "done", "succeeded", 2 * R);
    CHECK(last.kind == A_NEW && last.seq == 2);
    bk_state_sweep(&a.state, clock_mono_ms());
    CHECK(task(&a, "q", "done") == NULL && user(&a, "q")->seq == 2);
    char epoch[64];
    strcpy(epoch, user(&a, "q")->epoch);
    CHECK(copy_file(s_path, s_copy) == 0);
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    bk_journal_close(&a.journal);

    CHECK(bk_open(&b, s_copy, 0, 100) == 0);
    bk_state_sweep(&b.state, clock_mono_ms());
    CHECK(same_broker(&a, &b));
    ans_t n = send_ago(&b, "q", "live", "running", 0);
    CHECK(n.kind == A_NEW && n.seq == 3);
    bk_close(&b);

    CHECK(bk_open(&b, s_path, 0, 100) == 0);
    bk_state_sweep(&b.state, clock_mono_ms());
    CHECK(same_broker(&a, &b));
    n = send_ago(&b, "q", "live", "running", 0);
    if (n.seq <= 2 && strcmp(user(&b, "q")->epoch, epoch) == 0)
        fprintf(stderr,
                "compacted journal: user q got seq %" PRIu64
                " again in epoch %s (seq 2 was given before)\n",
                n.seq, epoch);
    CHECK(n.kind == A_NEW && (n.seq == 3 || strcmp(user(&b, "q")->epoch, epoch) != 0));
    bk_close(&b);
    bk_close(&a);
}

/*  A user dropped (idle past the retention) before a compaction does not
 *  get its old epoch back after the restart: its epoch with a new seq 1
 *  would look like the old state to a client resuming with since/epoch. */
static void
test_compact_dropped_user_epoch(void)
{
    unlink(s_path);
    broker_t a, b;
    char err[256] = "";
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    CHECK(send_ago(&a, "keep", "t", "running", 4 * R).kind == A_NEW);
    CHECK(send_ago(&a, "gone", "t", "succeeded", 4 * R).kind == A_NEW);
    char old[64];
    strcpy(old, user(&a, "gone")->epoch);
    int64_t now = clock_mono_ms();
    bk_state_sweep(&a.state, now - 2 * R); /* its task leaves */
    bk_state_sweep(&a.state, now - R);     /* then the idle user */
    CHECK(user(&a, "gone") == NULL && user(&a, "keep") != NULL);
    CHECK(copy_file(s_path, s_copy) == 0);
    CHECK(bk_persist_compact(&a, err, sizeof err) == 0);
    bk_journal_close(&a.journal);

    /* in the same broker, the user would come back with a new epoch */
    ans_t x = send_ago(&a, "gone", "t2", "running", 0);
    CHECK(x.seq == 1 && strcmp(user(&a, "gone")->epoch, old) != 0);

    /* raw journal: restored as it was (old epoch, its seq 1), then dropped */
    CHECK(bk_open(&b, s_copy, 8, 100) == 0);
    bk_state_sweep(&b.state, clock_mono_ms());
    bk_state_sweep(&b.state, clock_mono_ms() + R);
    CHECK(user(&b, "gone") == NULL);
    x = send_ago(&b, "gone", "t2", "running", 0);
    CHECK(x.kind == A_NEW && x.seq == 1 && strcmp(user(&b, "gone")->epoch, old) != 0);
    bk_close(&b);

    /* compacted journal: the user is not in it; it comes back new */
    CHECK(bk_open(&b, s_path, 8, 100) == 0);
    CHECK(user(&b, "gone") == NULL);
    x = send_ago(&b, "gone", "t2", "running", 0);
    CHECK(x.kind == A_NEW && x.seq == 1);
    if (strcmp(user(&b, "gone")->epoch, old) == 0)
        fprintf(stderr,
                "compacted journal: dropped user 'gone' got its old epoch %s back with a "
                "new seq 1\n",
                old);
    CHECK(strcmp(user(&b, "gone")->epoch, old) != 0);
    bk_close(&b);
    bk_close(&a);
}

/*  A torn last record (a crash in the middle of a write) is cut off; the
 *  rest is restored. Records that are not ours are refused. */
static void
test_torn_and_refused(void)
{
    unlink(s_path);
    broker_t a, b;
    sent_t *s = calloc(1, sizeof *s);
    CHECK(bk_open(&a, s_path, 8, 100) == 0);
    CHECK(workload(&a, s, 40, 1) == 0);
    bk_journal_close(&a.journal);
    long size = file_size(s_path);
    FILE *f = fopen(s_path, "ab");
    static const unsigned char torn[] = {0x40, 0, 0, 0, 1, 2, 3, 4, 'E', 9, 9};
    CHECK(f && fwrite(torn, 1, sizeof torn, f) == sizeof torn);
    if (f)
        fclose(f);
    CHECK(bk_open(&b, s_path, 8, 100) == 0);
    CHECK(file_size(s_path) == size);
    CHECK(same_broker(&a, &b));
    bk_close(&b);
    sent_free(s);
    free(s);
    bk_close(&a);

    /* no meta record first; an unknown kind; not an event: all refused */
    struct {
        int kind;
        const char *want;
    } cases[] = {{'E', "meta"}, {'Z', "unknown record kind"}, {'M', "meta"}};
    for (int i = 0; i < 3; i++) {
        unlink(s_path);
        CHECK(bk_open(&a, s_path, 8, 100) == 0); /* a valid journal with its meta */
        unsigned char junk[40] = {0};
        if (i == 0) {
            bk_close(&a);
            unlink(s_path);
            bk_journal_t *j;
            uint64_t dropped;
            char e[200];
            CHECK(bk_journal_open(&j, s_path, NULL, NULL, &dropped, e, sizeof e) == 0);
            bk_journal_append(j, 'E', junk, sizeof junk, NULL, 0);
            bk_journal_close(&j);
        }
        else {
            bk_journal_append(a.journal, cases[i].kind, junk, sizeof junk, NULL, 0);
            bk_close(&a);
        }
        memset(&b, 0, sizeof b);
        log_init(&b.log, "test_persist", LOG_WARN);
        bk_limits_t lim = limits(8);
        CHECK(bk_state_init(&b.state, &lim) == 0);
        char err[256] = "";
        CHECK(bk_persist_open(&b, s_path, 100, err, sizeof err) == -1);
        if (!strstr(err, cases[i].want))
            fprintf(stderr, "case %d: %s\n", i, err);
        CHECK(strstr(err, cases[i].want) != NULL);
        bk_close(&b);
    }
}

int
main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    snprintf(s_dir, sizeof s_dir, "/tmp/tc-persist-XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(s_path, sizeof s_path, "%s/journal", s_dir);
    snprintf(s_copy, sizeof s_copy, "%s/copy", s_dir);
    test_new_journal();
    test_reopen_same_state();
    test_compact_same_state();
    test_compact_keeps_history_order();
    test_compact_forked();
    test_compact_failures();
    test_retention_survives();
    test_compact_swept_task_stays_gone();
    test_compact_keeps_seq();
    test_compact_dropped_user_epoch();
    test_torn_and_refused();
    char compact[160];
    snprintf(compact, sizeof compact, "%s.compact", s_path);
    unlink(compact);
    unlink(s_path);
    unlink(s_copy);
    if (rmdir(s_dir) != 0) {
        fprintf(stderr, "rmdir %s: %s\n", s_dir, strerror(errno));
        CHECK(0);
    }
    return check_report();
}
