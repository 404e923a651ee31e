/*  test_commit.c: what an "ok" waits for (broker/commit.c with ingest.c,
 *  sync.c and the syncer), over the broker's real sockets (zsrv.c, ipc in a
 *  mkdtemp directory) with libzmq clients, and a journal beside them, the
 *  loop played by hand:
 *    --fsync batch  answers, publishes, duplicates of an event not yet on
 *                   disk and sync answers showing it leave only once the
 *                   syncer reported the journal on disk past them;
 *    --fsync never  and no journal: they leave after the batch's write;
 *  and a user whose event waits stays in the state (pinned). */
#include "broker.h"
#include "check.h"
#include "clock.h"
#include "mbuild.h"
#include "zmsg.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static char s_dir[64];
static char s_path[128];
static int s_round; /* endpoints differ per fixture */

typedef struct {
    broker_t bk;
    void *zctx;
    void *worker;  /* DEALER -> ingest */
    void *sub;     /* SUB <- fanout, user "u1" */
    void *gateway; /* DEALER -> sync */
} fx_t;

static void
s_endpoint(char *ep, size_t len, const char *name)
{
    snprintf(ep, len, "ipc://%s/%s-%d", s_dir, name, s_round);
}

/*  A libzmq client connected to the broker's socket NAME. */
static void *
s_client(void *ctx, int type, const char *name)
{
    char ep[128];
    s_endpoint(ep, sizeof ep, name);
    void *s = zmsg_socket(ctx, type, 1000, 1000, -1);
    if (!s || zmq_connect(s, ep) != 0)
        return NULL;
    return s;
}

static bk_zsock_t *
s_server(broker_t *bk, const char *name, bk_zsub_fn on_sub)
{
    char ep[128], err[256];
    s_endpoint(ep, sizeof ep, name);
    bk_zsock_t *z = bk_zsock_bind(bk, bk->epfd, ep, name, 1 << 20, on_sub, err, sizeof err);
    if (!z)
        fprintf(stderr, "bind %s: %s\n", ep, err);
    return z;
}

static int
readable(void *socket, int ms)
{
    zmq_pollitem_t it = {socket, 0, ZMQ_POLLIN, 0};
    return zmq_poll(&it, 1, ms) == 1;
}

/*  The loop's part: what the broker's descriptors say within ms (its
 *  subscriptions are read), then its output written. */
static void
fx_pump(fx_t *fx, int ms)
{
    broker_t *bk = &fx->bk;
    struct epoll_event evs[16];
    int n = epoll_wait(bk->epfd, evs, 16, ms);
    for (int i = 0; i < n; i++)
        bk_zsrv_event(bk, evs[i].data.ptr, evs[i].events);
    if (bk_zsock_ready(bk->fanout))
        bk_zsock_fill(bk->fanout);
    bk_zsrv_flush(bk);
}

/*  A broker as main.c sets it up (journal NULL: memory only). */
static int
fx_open(fx_t *fx, const char *journal, bk_fsync_t policy, uint64_t retention_ms)
{
    memset(fx, 0, sizeof *fx);
    broker_t *bk = &fx->bk;
    bk->sigfd = -1;
    log_init(&bk->log, "test_commit", LOG_WARN);
    buf_init(&bk->scratch);
    bk->commit.policy = policy;
    bk_limits_t lim = {.retention_ms = retention_ms,
                       .history_per_user = 100,
                       .history_bytes = 1u << 20,
                       .tasks_per_user = 100,
                       .state_bytes = 1u << 20,
                       .max_users = 100};
    char err[256] = "";
    if (bk_state_init(&bk->state, &lim) != 0)
        return -1;
    if (journal) {
        unlink(journal);
        if (bk_persist_open(bk, journal, 1000, err, sizeof err) != 0 ||
            bk_syncer_start(&bk->syncer, 0, err, sizeof err) != 0 ||
            bk_syncer_files(bk->syncer, bk_journal_fd(bk->journal), -1) != 0) {
            fprintf(stderr, "fx_open: %s\n", err);
            return -1;
        }
    }
    else if (!(bk->dedup = bk_dedup_new(1000, NULL)))
        return -1;
    s_round++;
    bk->epfd = epoll_create1(EPOLL_CLOEXEC);
    bk->ingest = s_server(bk, "ingest", NULL);
    bk->fanout = s_server(bk, "fanout", bk_fanout_on_sub);
    bk->sync = s_server(bk, "sync", NULL);
    fx->zctx = zmq_ctx_new();
    fx->worker = s_client(fx->zctx, ZMQ_DEALER, "ingest");
    fx->sub = s_client(fx->zctx, ZMQ_SUB, "fanout");
    fx->gateway = s_client(fx->zctx, ZMQ_DEALER, "sync");
    if (!bk->ingest || !bk->fanout || !bk->sync || !fx->worker || !fx->sub || !fx->gateway ||
        zmq_setsockopt(fx->sub, ZMQ_SUBSCRIBE, "u1", 3) != 0)
        return -1;
    /* the broker reads the subscription (and marks u1 subscribed) */
    for (int i = 0; i < 100 && !bk_zsock_has_subscriber(bk->fanout, "u1", 3); i++)
        fx_pump(fx, 20);
    bk_user_t *u = strmap_get(bk->state.users, "u1", 2);
    return u && u->subscribed ? 0 : -1;
}

static void
fx_close(fx_t *fx)
{
    broker_t *bk = &fx->bk;
    bk_syncer_stop(&bk->syncer);
    bk_commit_destroy(&bk->commit);
    void *socks[] = {fx->worker, fx->sub, fx->gateway};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (socks[i])
            zmq_close(socks[i]);
    zmq_ctx_term(fx->zctx);
    bk_zsock_close(&bk->ingest);
    bk_zsock_close(&bk->fanout);
    bk_zsock_close(&bk->sync);
    close(bk->epfd);
    bk_journal_close(&bk->journal);
    bk_dedup_destroy(&bk->dedup);
    bk_state_destroy(&bk->state);
    buf_free(&bk->scratch);
}

/*  The worker sends an event (producer NULL: none). */
static void
fx_send(fx_t *fx, const char *user, const char *task, const char *status, const char *producer,
        uint64_t pseq)
{
    mb_t m;
    mb_init(&m);
    mb_map(&m, 3 + (producer ? 2 : 0));
    mb_str(&m, "task_id");
    mb_str(&m, task);
    mb_str(&m, "user_id");
    mb_str(&m, user);
    mb_str(&m, "status");
    mb_str(&m, status);
    if (producer) {
        mb_str(&m, "producer");
        mb_str(&m, producer);
        mb_str(&m, "pseq");
        msgpack_pack_uint64(&m.pk, pseq);
    }
    zmq_send(fx->worker, m.sb.data, m.sb.size, 0);
    mb_free(&m);
}

/*  The broker reads what the worker sent (n messages). */
static int
fx_ingest(fx_t *fx, int n)
{
    int got = 0;
    for (int i = 0; i < 100 && got < n; i++) {
        fx_pump(fx, 20);
        if (bk_zsock_ready(fx->bk.ingest))
            got += bk_ingest_drain(&fx->bk, BK_BATCH);
        bk_zsrv_flush(&fx->bk);
    }
    return got;
}

/*  The next answer to the worker within ms: 1 with *seq and *dup, or 0. */
static int
fx_answer(fx_t *fx, int ms, uint64_t *seq, int *dup)
{
    if (!readable(fx->worker, ms))
        return 0;
    char buf[256];
    int n = zmq_recv(fx->worker, buf, sizeof buf, 0);
    mp_reader_t r;
    mp_value_t map, k, v;
    mp_reader_init(&r, buf, n > 0 ? (size_t)n : 0);
    *seq = 0;
    *dup = 0;
    if (n <= 0 || mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return 0;
    for (uint32_t i = 0; i < map.v.n && mp_read_pair(&r, &k, &v, 4) == 0; i++) {
        if (mp_str_eq(&k, "seq"))
            *seq = v.v.u;
        if (mp_str_eq(&k, "duplicate"))
            *dup = 1;
    }
    return 1;
}

/*  The frames of the next message on a socket within ms (0: none). */
static int
frames(void *socket, int ms)
{
    if (!readable(socket, ms))
        return 0;
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, socket, 0) < 0)
            return n;
        n++;
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return n;
}

/*  The gateway asks for u1's state; the broker reads the request. */
static void
fx_sync_request(fx_t *fx, int stats)
{
    mb_t m;
    mb_init(&m);
    mb_map(&m, 2);
    mb_str(&m, "req");
    msgpack_pack_uint64(&m.pk, 7);
    mb_str(&m, stats ? "op" : "user_id");
    mb_str(&m, stats ? "stats" : "u1");
    zmq_send(fx->gateway, m.sb.data, m.sb.size, 0);
    mb_free(&m);
    for (int i = 0; i < 100; i++) {
        fx_pump(fx, 20);
        if (bk_zsock_ready(fx->bk.sync) && bk_sync_drain(&fx->bk, 10) > 0)
            break;
    }
    bk_zsrv_flush(&fx->bk);
}

/*  The loop's part when the syncer's eventfd fires. */
static int
fx_synced(fx_t *fx, uint64_t want)
{
    struct pollfd p = {bk_syncer_fd(fx->bk.syncer), POLLIN, 0};
    for (int i = 0; i < 100 && fx->bk.commit.durable < want; i++)
        if (poll(&p, 1, 50) == 1)
            bk_commit_synced(&fx->bk);
    bk_zsrv_flush(&fx->bk);
    return fx->bk.commit.durable >= want;
}

static void
test_batch_waits_for_the_disk(void)
{
    fx_t fx;
    CHECK(fx_open(&fx, s_path, BK_FSYNC_BATCH, 3600000) == 0);
    uint64_t seq;
    int dup;
    fx_send(&fx, "u1", "t1", "running", "p", 1);
    CHECK(fx_ingest(&fx, 1) == 1);
    uint64_t written = fx.bk.commit.written;
    CHECK(written > 0 && fx.bk.commit.asked == written && fx.bk.commit.count == 1);
    /* written, not yet known to be on disk: no answer, nothing published */
    CHECK(fx_answer(&fx, 50, &seq, &dup) == 0);
    CHECK(frames(fx.sub, 10) == 0);
    /* a resend of it: not answered before it either */
    fx_send(&fx, "u1", "t1", "running", "p", 1);
    CHECK(fx_ingest(&fx, 1) == 1);
    CHECK(fx_answer(&fx, 20, &seq, &dup) == 0);
    /* a sync answer would show it: held too; stats are not */
    fx_sync_request(&fx, 0);
    CHECK(frames(fx.gateway, 20) == 0);
    fx_sync_request(&fx, 1);
    CHECK(frames(fx.gateway, 1000) == 1);
    CHECK(fx.bk.commit.count == 3);

    /* the syncer reports: everything leaves, in order */
    CHECK(fx_synced(&fx, written));
    CHECK(fx.bk.commit.count == 0 && fx.bk.stats.fsyncs >= 1);
    CHECK(fx_answer(&fx, 1000, &seq, &dup) == 1 && seq == 1 && !dup);
    CHECK(fx_answer(&fx, 1000, &seq, &dup) == 1 && seq == 1 && dup);
    CHECK(frames(fx.sub, 1000) == 2);     /* [u1 NUL][event] */
    CHECK(frames(fx.gateway, 1000) == 2); /* [header][event] */

    /* nothing waits now: a sync answer goes at once */
    fx_sync_request(&fx, 0);
    CHECK(frames(fx.gateway, 1000) == 2);
    /* a rejection waits behind what came before it, then goes */
    fx_send(&fx, "u1", "t2", "running", "p", 2);
    fx_send(&fx, "u1", "", "running", NULL, 0);
    CHECK(fx_ingest(&fx, 2) == 2);
    CHECK(fx_answer(&fx, 20, &seq, &dup) == 0);
    CHECK(fx_synced(&fx, fx.bk.commit.written));
    CHECK(fx_answer(&fx, 1000, &seq, &dup) == 1 && seq == 2);
    CHECK(fx_answer(&fx, 1000, &seq, &dup) == 1 && seq == 0); /* the error */
    fx_close(&fx);
}

static void
test_never_and_memory_answer_after_the_write(void)
{
    for (int journal = 0; journal < 2; journal++) {
        fx_t fx;
        CHECK(fx_open(&fx, journal ? s_path : NULL, BK_FSYNC_NEVER, 3600000) == 0);
        uint64_t seq;
        int dup;
        fx_send(&fx, "u1", "t1", "running", "p", 1);
        CHECK(fx_ingest(&fx, 1) == 1);
        CHECK(fx.bk.commit.count == 0 && fx.bk.commit.asked == 0);
        CHECK(fx_answer(&fx, 1000, &seq, &dup) == 1 && seq == 1 && !dup);
        CHECK(frames(fx.sub, 1000) == 2);
        fx_sync_request(&fx, 0);
        CHECK(frames(fx.gateway, 1000) == 2);
        fx_close(&fx);
    }
}

/*  A user whose event waits to be published is not dropped, even if its
 *  task ended and the retention (0 here) is over. */
static void
test_waiting_user_stays(void)
{
    fx_t fx;
    CHECK(fx_open(&fx, s_path, BK_FSYNC_BATCH, 0) == 0);
    fx_send(&fx, "u2", "t1", "succeeded", NULL, 0);
    CHECK(fx_ingest(&fx, 1) == 1);
    bk_user_t *u = strmap_get(fx.bk.state.users, "u2", 2);
    CHECK(u && u->pins == 1);
    bk_state_sweep(&fx.bk.state, clock_mono_ms() + 10);
    CHECK(strmap_get(fx.bk.state.users, "u2", 2) == u && strmap_size(u->tasks) == 0);
    CHECK(fx_synced(&fx, fx.bk.commit.written));
    uint64_t seq;
    int dup;
    CHECK(fx_answer(&fx, 1000, &seq, &dup) == 1 && seq == 1);
    CHECK(u->pins == 0);
    bk_state_sweep(&fx.bk.state, clock_mono_ms() + 10);
    CHECK(strmap_get(fx.bk.state.users, "u2", 2) == NULL);
    fx_close(&fx);
}

static void
test_policy_names(void)
{
    bk_fsync_t p;
    uint64_t ms = 0, us = 7;
    CHECK(bk_commit_parse_policy("batch", &p, &ms, &us) == 0 && p == BK_FSYNC_BATCH && us == 0);
    CHECK(bk_commit_parse_policy("batch:250", &p, &ms, &us) == 0 && p == BK_FSYNC_BATCH &&
          us == 250);
    CHECK(bk_commit_parse_policy("batch:0", &p, &ms, &us) == 0 && us == 0);
    CHECK(bk_commit_parse_policy("never", &p, &ms, &us) == 0 && p == BK_FSYNC_NEVER);
    CHECK(bk_commit_parse_policy("interval", &p, &ms, &us) == 0 && p == BK_FSYNC_INTERVAL &&
          ms == 1000);
    CHECK(bk_commit_parse_policy("interval:50", &p, &ms, &us) == 0 && p == BK_FSYNC_INTERVAL &&
          ms == 50);
    const char *bad[] = {"",           "Batch",       "interval:",        "interval:0",
                         "interval:x", "interval50",  "interval:3600001", "always",
                         "batch:",     "batch:10001", "batchy",           "batch:-1",
                         NULL};
    for (int i = 0; bad[i]; i++)
        CHECK(bk_commit_parse_policy(bad[i], &p, &ms, &us) == -1);
}

int
main(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/tc-commit-XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(s_path, sizeof s_path, "%s/journal", s_dir);
    test_policy_names();
    test_batch_waits_for_the_disk();
    test_never_and_memory_answer_after_the_write();
    test_waiting_user_stays();
    unlink(s_path);
    if (rmdir(s_dir) != 0) {
        fprintf(stderr, "rmdir %s: %s\n", s_dir, strerror(errno));
        CHECK(0);
    }
    return check_report();
}
