/*  broker.h: the broker's private face: its context and its modules.
 *
 *  The hot path, top to bottom:
 *    loop.c    bk_loop_run()        epoll: listeners, peers, signals, timers, syncer
 *    zsrv.c    bk_zsock_fill()      read the peers' bytes; bk_zsock_next() their
 *                                   messages, in place (ZMTP spoken here)
 *    ingest.c  bk_ingest_drain()    a batch of worker messages, validate each
 *    dedup.c   bk_dedup_find()      drop a resend of (producer, pseq)
 *    state.c   bk_state_record()    give it a seq, keep latest state + history
 *    persist.c bk_persist_event()   its journal record (buffered for the batch)
 *    commit.c  bk_commit_hold()     its answer (and event) wait for the journal
 *    commit.c  bk_commit_flush()    one write() per batch; with --fsync batch the
 *    syncer.c                       syncer thread fdatasync()s (group commit)
 *    commit.c  bk_commit_release()  what the journal holds leaves, in order:
 *    fanout.c  bk_fanout_publish()  [user-id NUL][published msgpack] on XPUB
 *    commit.c  s_answer()           {"ok":true,"pseq":N,"seq":S} to the worker
 *    zsrv.c    bk_zsrv_flush()      one send() per peer before the loop sleeps
 *  Beside it: fanout.c hears of subscriptions (and answers subscription
 *  confirmations) and sends heartbeats; sync.c answers gateways' snapshot and
 *  replay requests from state.c (held in commit.c while the state they show
 *  is not yet on disk); compact.c rewrites the journal in a forked child.
 */
#ifndef TC_BROKER_H
#define TC_BROKER_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cfg.h"
#include "event.h"
#include "log.h"
#include "strmap.h"
#include "topic.h"
#include "zsrv.h"

/* ---------------------------------------------------------------- state */

typedef struct bk_user bk_user_t;
typedef struct bk_blob bk_blob_t;

/*  A history entry. It lives in the blob it records: one allocation per
 *  event, not two. */
typedef struct bk_hist {
    struct bk_hist *gprev, *gnext; /* global FIFO, oldest first */
    struct bk_hist *unext;         /* the user's history, oldest first */
    bk_user_t *user;
    uint64_t seq;
    bk_blob_t *blob; /* the blob holding this entry */
} bk_hist_t;

/*  A published event, shared by a task's latest state, the history, and
 *  what waits to be published. */
struct bk_blob {
    uint32_t refs;
    uint32_t len;
    bk_hist_t hist; /* used while the event is in its user's history */
    uint8_t data[];
};

typedef struct bk_task {
    bk_user_t *user;
    struct bk_task *rprev, *rnext; /* retention FIFO of terminal tasks */
    int64_t ended_ms;              /* monotonic ms it became terminal; 0 while live */
    uint64_t seq;                  /* seq of its latest event */
    bk_blob_t *blob;               /* its latest event, published form */
    uint32_t id_len;
    char id[];
} bk_task_t;

struct bk_user {
    struct bk_user *iprev, *inext; /* idle FIFO: no tasks, no subscriber */
    int64_t idle_ms;               /* monotonic ms it became idle; 0 if not idle */
    int subscribed;                /* a gateway subscribes to its topic */
    uint32_t pins;                 /* events of it waiting to be published */
    uint64_t seq;                  /* last seq given */
    strmap_t *tasks;               /* task id -> bk_task_t */
    uint32_t nlive;                /* tasks not terminal (the per-user limit counts these) */
    bk_hist_t *hhead, *htail;
    uint32_t hcount;
    uint8_t epoch_len;
    char epoch[40]; /* broker epoch + "." + ordinal: changes if the user's state was dropped */
    uint32_t id_len;
    char id[]; /* id_len bytes and a NUL */
};

typedef struct bk_limits {
    uint64_t retention_ms;     /* terminal tasks and idle users are kept this long */
    uint32_t history_per_user; /* events kept per user for replay */
    uint64_t history_bytes;    /* all users' history together */
    uint32_t tasks_per_user;   /* live tasks per user */
    uint64_t state_bytes;      /* all tasks' latest states together */
    uint64_t max_users;
} bk_limits_t;

typedef struct bk_state {
    bk_limits_t limits;
    strmap_t *users;
    bk_hist_t *ghead, *gtail;
    uint64_t hist_bytes;
    uint64_t nhist; /* history entries, all users */
    bk_task_t *rhead, *rtail;
    bk_user_t *ihead, *itail;
    uint64_t state_bytes;
    uint64_t ntasks;
    uint64_t user_ordinal;
    char epoch[17]; /* 16 hex digits, random per broker start */
} bk_state_t;

/*  Why bk_state_record() refused an event. */
typedef enum {
    BK_RECORD_OK = 0,
    BK_RECORD_TOO_MANY_TASKS, /* the user has tasks_per_user live tasks */
    BK_RECORD_OVERLOADED,     /* state_bytes or max_users reached */
    BK_RECORD_NOMEM
} bk_record_t;

/*  Drops a reference to a blob (freeing it with the last) and sets *b_p NULL. */
void bk_blob_unref(bk_blob_t **b_p);

int bk_state_init(bk_state_t *st, const bk_limits_t *limits);
void bk_state_destroy(bk_state_t *st);

/*  The user's record, created if absent (NULL if max_users is reached and no
 *  idle user can make room, or on out of memory). */
bk_user_t *bk_state_user(bk_state_t *st, const char *id, size_t len, int64_t now_ms);

/*  Records ev for its user: next seq, packs the published form (ts stamped
 *  if absent), replaces the task's latest state, appends to history.
 *  On BK_RECORD_OK, *blob_out is the published event (owned by the state;
 *  valid until the next state call) and *user_out its user. */
bk_record_t bk_state_record(bk_state_t *st, const event_t *ev, int64_t now_ms, int64_t wall_ms,
                            bk_user_t **user_out, bk_blob_t **blob_out);

typedef enum {
    BK_RESTORE_STATE = 0,  /* the task's latest state only */
    BK_RESTORE_EVENT = 1,  /* the task's state and the history */
    BK_RESTORE_HISTORY = 2 /* the history only (the task may be gone) */
} bk_restore_t;

/*  Puts one journaled event (published form) back into the state: the
 *  user's seq and epoch as recorded, and per mode the task's latest state
 *  and/or the history. at_wall_ms is when it was recorded (a terminal task's
 *  retention counts from then). Sets *seq_out to its seq. Returns 0, or -1
 *  if the bytes are not a published event. */
int bk_state_restore(bk_state_t *st, const uint8_t *data, size_t len, bk_restore_t mode,
                     int64_t at_wall_ms, int64_t now_ms, int64_t wall_ms, uint64_t *seq_out);

/*  Puts a user back with its epoch and last seq (which may be above every
 *  event still kept). 0, or -1 on a bad id or out of memory. */
int bk_state_restore_user(bk_state_t *st, const char *id, size_t len, const char *epoch,
                          size_t epoch_len, uint64_t seq, int64_t now_ms);

/*  Calls fn for every history entry, oldest first across all users. */
int bk_state_each_history(const bk_state_t *st, int (*fn)(void *arg, const bk_hist_t *h),
                          void *arg);

/*  Calls fn for every user (the state must not change meanwhile). */
int bk_state_each_user(const bk_state_t *st, int (*fn)(void *arg, const bk_user_t *u), void *arg);

/*  The user's task with this id, or NULL. */
const bk_task_t *bk_state_task(const bk_user_t *u, const char *id, size_t len);

/*  Keeps the user while an event of it waits to be published, and lets it
 *  go (it may become idle). */
void bk_state_pin(bk_user_t *u);
void bk_state_unpin(bk_state_t *st, bk_user_t *u, int64_t now_ms);

/*  Marks a user topic as subscribed or not (from XPUB notifications).
 *  0, or -1 if not recorded: a subscription for a user that cannot be kept
 *  (at the user limit), or an unsubscription of one not recorded. */
int bk_state_set_subscribed(bk_state_t *st, const char *id, size_t len, int subscribed,
                            int64_t now_ms);

/*  Drops terminal tasks and idle users older than the retention time. */
void bk_state_sweep(bk_state_t *st, int64_t now_ms);

/*  Calls fn for the user's events with seq > since, oldest first, if the
 *  history holds all of them (returns 1), else calls nothing and returns 0.
 *  fn NULL: only tells whether a replay is possible. */
int bk_state_replay(const bk_user_t *u, uint64_t since, int (*fn)(void *arg, const bk_blob_t *blob),
                    void *arg);

/*  Calls fn for the latest state of each of the user's tasks, lowest seq
 *  first. Returns 0, or -1 on out of memory. */
int bk_state_snapshot(const bk_user_t *u, int (*fn)(void *arg, const bk_blob_t *blob), void *arg);

/* ---------------------------------------------------------------- dedup */

/*  Remembers the last `capacity` (producer, pseq) pairs with the seq they got
 *  and a hash of their bytes, so a resend is answered without publishing
 *  twice and a reuse of a pair for different content is refused. Pairs are
 *  kept as two keyed SipHash values (bk_dedup_id_t); the keys are random per
 *  broker unless given (the journal keeps them, so ids survive a restart). */
typedef struct bk_dedup bk_dedup_t;

#define BK_DEDUP_KEYS 32 /* bytes of key material */

typedef struct bk_dedup_id {
    uint64_t key;     /* hash of (producer, pseq), never 0 */
    uint64_t content; /* hash of the message bytes */
} bk_dedup_id_t;

typedef enum { BK_DEDUP_NEW, BK_DEDUP_RESEND, BK_DEDUP_CONFLICT } bk_dedup_result_t;

/*  keys: BK_DEDUP_KEYS bytes, or NULL for random ones. NULL on OOM or a
 *  capacity of 0 or over 2^28. */
bk_dedup_t *bk_dedup_new(uint32_t capacity, const unsigned char keys[BK_DEDUP_KEYS]);
void bk_dedup_destroy(bk_dedup_t **self_p);
void bk_dedup_keys(const bk_dedup_t *self, unsigned char out[BK_DEDUP_KEYS]);
/*  The id of ev (which must have a producer) sent as bytes. */
void bk_dedup_hash(const bk_dedup_t *self, const event_t *ev, const void *bytes, size_t len,
                   bk_dedup_id_t *id);
/*  Starts fetching the memory a lookup of id will read. */
void bk_dedup_prefetch(const bk_dedup_t *self, const bk_dedup_id_t *id);
/*  Looks the pair up; on RESEND sets *seq to the seq it was given. */
bk_dedup_result_t bk_dedup_find(bk_dedup_t *self, const bk_dedup_id_t *id, uint64_t *seq);
/*  Remembers id -> seq, evicting the oldest pair when full. */
void bk_dedup_insert(bk_dedup_t *self, const bk_dedup_id_t *id, uint64_t seq);
/*  Pairs remembered. */
uint32_t bk_dedup_count(const bk_dedup_t *self);
/*  Calls fn for every pair, oldest first; stops at the first non-zero.
 *  Reads the ring only: a fork()ed child (compaction) may call it, the
 *  index is not mapped there (BIGMEM_NOFORK). */
int bk_dedup_each(const bk_dedup_t *self,
                  int (*fn)(void *arg, const bk_dedup_id_t *id, uint64_t seq), void *arg);

/* ---------------------------------------------------------------- journal */

/*  An append-only file of checksummed records (journal.c); what the records
 *  mean is persist.c's business. Positions handed to the rest of the broker
 *  are logical (bytes ever written through this journal, across rewrites),
 *  so they stay comparable when a compaction replaces the file. */
typedef struct bk_journal bk_journal_t;

/*  Called for each whole record at open, in order: kind and the bytes after
 *  it. Returns 0, or -1 with a sentence in err to refuse the journal. */
typedef int (*bk_journal_replay_fn)(void *arg, int kind, const uint8_t *body, size_t len, char *err,
                                    size_t errlen);

/*  Opens (or creates) the journal and replays it; a torn or damaged tail is
 *  cut off and its size put in *dropped; a leftover PATH.compact (a crash
 *  during a compaction) is removed. 0, or -1 with a sentence in err. */
int bk_journal_open(bk_journal_t **out, const char *path, bk_journal_replay_fn fn, void *arg,
                    uint64_t *dropped, char *err, size_t errlen);
/*  Flushes, syncs and closes (the next file of an unfinished rewrite too). */
void bk_journal_close(bk_journal_t **j_p);
/*  Buffers one record: kind, then head and body bytes. */
void bk_journal_append(bk_journal_t *j, int kind, const void *head, size_t headlen,
                       const void *body, size_t bodylen);
/*  Writes the buffered records (to both files while a rewrite is being
 *  finished). 0, or -1 with errno. */
int bk_journal_flush(bk_journal_t *j);
/*  fdatasync()s now, on the calling thread (start, close, tests). 0, or -1. */
int bk_journal_sync(bk_journal_t *j);
/*  Logical positions: everything appended so far (written or buffered), and
 *  everything written. */
uint64_t bk_journal_appended(const bk_journal_t *j);
uint64_t bk_journal_written(const bk_journal_t *j);
/*  The file descriptor appends go to (for the syncer). */
int bk_journal_fd(const bk_journal_t *j);
const char *bk_journal_path(const bk_journal_t *j);
/*  1 once the file is over twice its size after the last rewrite, and over
 *  min_bytes. */
int bk_journal_wants_rewrite(const bk_journal_t *j, uint64_t min_bytes);
uint64_t bk_journal_size(const bk_journal_t *j);

/*  A rewrite, step by step (compact.c drives them; see journal.c):
 *    next_open    create PATH.compact (magic only) beside the journal
 *    (a writer fills it through bk_journal_next_writer(), flushes and syncs it)
 *    next_copy    append what the journal got since the writer's snapshot
 *    next_dual    from now on every flush writes both files
 *    (fdatasync both, rename PATH.compact over PATH, fsync the directory)
 *    next_switch  the new file is the journal
 *  next_abort at any step before the rename leaves the journal as it was. */
int bk_journal_next_open(bk_journal_t *j, char *err, size_t errlen);
/*  A journal object writing to the next file (for the writer; freed with
 *  bk_journal_writer_close(), which flushes and fdatasyncs: 0 or -1). */
bk_journal_t *bk_journal_next_writer(bk_journal_t *j);
int bk_journal_writer_close(bk_journal_t **w_p);
/*  Copies up to max bytes of the journal from offset *from into the next
 *  file. 1 once everything written so far is copied, 0 if more is left, -1
 *  with errno. */
int bk_journal_next_copy(bk_journal_t *j, uint64_t *from, uint64_t max);
void bk_journal_next_dual(bk_journal_t *j);
int bk_journal_next_fd(const bk_journal_t *j);
const char *bk_journal_next_path(const bk_journal_t *j);
void bk_journal_next_switch(bk_journal_t *j);
void bk_journal_next_abort(bk_journal_t *j);
/*  Renames from over to and fsyncs to's directory: 0; 1 if renamed but the
 *  directory sync failed (the rename may not survive a machine crash); -1
 *  with errno if not renamed. */
int bk_journal_install(const char *from, const char *to);
/*  fsync()s the directory holding path. 0, or -1 with errno. */
int bk_journal_sync_dir(const char *path);
/*  The whole rewrite at once, on the calling thread: writer fills the next
 *  file from the current state. 0; 1 if done but the directory could not be
 *  synced; or -1 with a sentence in err (the old file is still the journal). */
int bk_journal_rewrite(bk_journal_t *j, int (*writer)(void *arg, bk_journal_t *out), void *arg,
                       char *err, size_t errlen);

/* ---------------------------------------------------------------- syncer */

/*  fdatasync() off the loop (syncer.c): the loop asks for a journal position
 *  to be on disk, a thread of ours syncs, and reports the position through
 *  an eventfd the loop watches. While one sync runs the loop goes on writing
 *  batches; the next sync covers all of them (group commit). */
typedef struct bk_syncer bk_syncer_t;

/*  delay_us (--fsync batch:US): a sync that would start less than delay_us
 *  after the last one ended first waits delay_us, so that more batches
 *  share it: fewer syncs (each a costly exit on a virtual disk) under load,
 *  up to delay_us more latency. 0: sync at once. 0, or -1 with a sentence
 *  in err. */
int bk_syncer_start(bk_syncer_t **out, int64_t delay_us, char *err, size_t errlen);
/*  Stops the thread after the sync in progress and frees it. */
void bk_syncer_stop(bk_syncer_t **s_p);
/*  The eventfd that becomes readable when a sync finished. */
int bk_syncer_fd(const bk_syncer_t *s);
/*  The files to sync from now on (fd2 -1 for none); dup()ed. 0 or -1. */
int bk_syncer_files(bk_syncer_t *s, int fd, int fd2);
/*  Asks for position lsn (written before the call) to be made durable. */
void bk_syncer_want(bk_syncer_t *s, uint64_t lsn);
/*  After the next sync of both files: rename from over to, fsync its directory. */
void bk_syncer_rename(bk_syncer_t *s, const char *from, const char *to);
typedef struct bk_synced {
    uint64_t durable; /* the position on disk */
    uint64_t rounds;  /* fdatasync rounds so far */
    int renamed;      /* 1 once (the first time after) a rename is done and durable */
} bk_synced_t;

/*  Reads the completions. 0, or -1 with errno once a sync failed. */
int bk_syncer_poll(bk_syncer_t *s, bk_synced_t *out);

/* ---------------------------------------------------------------- persist */

typedef struct broker broker_t;
typedef struct bk_jobs bk_jobs_t;

/*  Opens the journal at path and rebuilds the state, the epoch and the
 *  idempotency window from it (creating it if absent); sets bk->journal and
 *  bk->dedup. 0, or -1 with a sentence in err. */
int bk_persist_open(broker_t *bk, const char *path, uint32_t dedup_window, char *err,
                    size_t errlen);
/*  Buffers the record of one accepted event (written by the batch's flush). */
void bk_persist_event(broker_t *bk, const bk_blob_t *blob, const bk_dedup_id_t *id,
                      int64_t wall_ms);
/*  Appends the current state to out as a compact journal (the records that
 *  rebuild it exactly). 0, or -1 (out of memory). */
int bk_persist_write_state(broker_t *bk, bk_journal_t *out);
/*  About how many bytes bk_persist_write_state() would write now. */
uint64_t bk_persist_estimate(const broker_t *bk);
/*  Rewrites the journal as the current state on the calling thread (tests;
 *  the broker compacts with compact.c). 0, or -1 with a sentence. */
int bk_persist_compact(broker_t *bk, char *err, size_t errlen);

/* ---------------------------------------------------------------- commit */

/*  When an ok may be given (--fsync): */
typedef enum {
    BK_FSYNC_BATCH = 0, /* once the event is on disk (fdatasync, group commit) */
    BK_FSYNC_INTERVAL,  /* once written; fdatasync every interval */
    BK_FSYNC_NEVER      /* once written; the OS writes back */
} bk_fsync_t;

typedef struct bk_held bk_held_t; /* a sync answer held back (sync.c) */

/*  One thing waiting to leave (commit.c): an answer to a worker with the
 *  event it publishes, or a sync answer. */
typedef struct bk_out {
    uint64_t lsn;       /* leaves once the journal holds this position */
    bk_user_t *user;    /* the event to publish (the user is pinned), or NULL */
    bk_blob_t *blob;
    bk_held_t *held;    /* a sync answer (sent by sync.c), or NULL */
    bk_zpeer_t *peer;   /* who asked (a reference) */
    uint8_t empties;    /* empty delimiter frames before the answer (REQ peers) */
    uint8_t answer_len; /* bytes in answer[]; 0: the answer is in big */
    char answer[46];
    char *big;          /* a longer answer (errors), malloc'ed */
    size_t big_len;
} bk_out_t;

typedef struct bk_commit {
    bk_fsync_t policy;
    uint64_t interval_ms; /* BK_FSYNC_INTERVAL */
    uint64_t delay_us;    /* BK_FSYNC_BATCH: the syncer's group-commit delay */
    uint64_t written;     /* journal positions: written, */
    uint64_t asked;       /* asked of the syncer, */
    uint64_t durable;     /* and on disk */
    bk_out_t *ring;       /* waiting, oldest first */
    size_t cap, head, count;
} bk_commit_t;

/*  A new slot at the tail, its lsn set to what the journal holds so far (so
 *  it leaves after everything recorded before it), or NULL (out of memory). */
bk_out_t *bk_commit_hold(broker_t *bk);
/*  Writes the journal's buffer, asks the syncer for it (batch) and releases
 *  what may leave. 0, or -1 with errno (a write failed: nothing of it may be
 *  acknowledged). */
int bk_commit_flush(broker_t *bk);
/*  Sends everything that may leave: the policy's position reached. */
void bk_commit_release(broker_t *bk);
/*  The syncer reported: a new durable position, perhaps a rename. */
void bk_commit_synced(broker_t *bk);
/*  1 if something recorded at journal position lsn may leave now. */
int bk_commit_ready(const broker_t *bk, uint64_t lsn);
/*  Frees whatever is still waiting (at exit). */
void bk_commit_destroy(bk_commit_t *c);
/*  Parses "batch", "never", "interval" or "interval:MS". 0 or -1. */
/*  --fsync: batch[:US] (US: the group-commit delay, 0..10000), never,
 *  interval[:MS]. 0, or -1 if malformed. */
int bk_commit_parse_policy(const char *text, bk_fsync_t *policy, uint64_t *interval_ms,
                           uint64_t *delay_us);

/* ---------------------------------------------------------------- compaction */

/*  compact.c: rewriting the journal without stopping ingest. */
typedef enum {
    BK_COMPACT_IDLE = 0,
    BK_COMPACT_CHILD, /* a forked child writes the snapshot */
    BK_COMPACT_TAIL,  /* the loop copies what was journaled since */
    BK_COMPACT_DUAL   /* both files written; waiting for the syncer's rename */
} bk_compact_phase_t;

typedef struct bk_compact {
    bk_compact_phase_t phase;
    int pid;                /* the child (CHILD) */
    uint64_t copied;        /* journal offset copied into the new file so far */
    uint64_t before;        /* journal size when it started */
    int64_t started_ms;     /* monotonic */
    int64_t not_before_ms;  /* after a failure: no new attempt until then */
} bk_compact_t;

/*  Starts a compaction if the journal wants one (none running). */
void bk_compact_maybe(broker_t *bk);
/*  A child exited (SIGCHLD): reaps ours and moves on. */
void bk_compact_reap(broker_t *bk);
/*  One step of the tail copy (TAIL): called every loop turn. */
void bk_compact_step(broker_t *bk);
/*  The syncer renamed the new file over the journal: it is the journal now. */
void bk_compact_renamed(broker_t *bk);
/*  At exit: kills a running child, removes an unfinished new file. */
void bk_compact_abort(broker_t *bk);
/*  1 while a compaction runs. */
int bk_compact_busy(const broker_t *bk);

/* ---------------------------------------------------------------- context */

#define BK_BATCH 512 /* messages handled per pass, per socket */

typedef struct bk_stats {
    uint64_t accepted, rejected, duplicates, published, syncs, subscribes, fsyncs, compactions;
} bk_stats_t;

struct broker {
    log_t log;
    const cfg_opt_t *opt; /* the resolved options (main.c's table) */
    int epfd;           /* the loop's epoll set */
    bk_zsrv_t zsrv;     /* what zsrv.c keeps for all sockets */
    bk_zsock_t *ingest; /* ROUTER: workers */
    bk_zsock_t *fanout; /* XPUB: gateways */
    bk_zsock_t *sync;   /* ROUTER: gateways' snapshot/replay requests */
    bk_zsock_t *jobsock; /* ROUTER: job submitters and pool workers */
    bk_jobs_t *jobs;
    int sigfd;
    int stop;
    int exit_code;
    bk_state_t state;
    bk_dedup_t *dedup;
    bk_journal_t *journal; /* NULL: memory only */
    uint64_t journal_min;  /* compact only past this many bytes */
    bk_syncer_t *syncer;   /* with a journal */
    bk_commit_t commit;
    bk_compact_t compact;
    buf_t scratch; /* packing space reused for every message */
    char boot[17]; /* random per process: tells gateways of a restart */
    bk_stats_t stats;
    int64_t now_ms, wall_ms; /* the clocks, read once per batch */
    int64_t next_heartbeat_ms, next_sweep_ms, next_sync_ms, next_jobs_ms;
    int64_t warn_window_ms; /* rate limit for rejection warnings */
    uint32_t warn_count;
    int64_t started_ms;
};

/* ---------------------------------------------------------------- jobs */

/*  jobs.c: the jobs endpoint (submit, cancel, the pool workers). */
#define BK_JOBS_HIST 12 /* histogram buckets: <= 1, 4, 16, ... 4^10 ms, more */
typedef struct bk_jobs_stats {
    uint64_t submitted, duplicates, refused, dispatched, succeeded, failed, cancelled, retried,
        workers_lost;
    uint64_t queued_hist[BK_JOBS_HIST], running_hist[BK_JOBS_HIST]; /* ms, per dispatch / end */
    uint64_t queued_ms_sum, running_ms_sum;
} bk_jobs_stats_t;

/*  At most max_queued jobs queued over all kinds (queue_full past it). */
bk_jobs_t *bk_jobs_new(uint32_t max_queued);
void bk_jobs_destroy(bk_jobs_t **self_p);
/*  Handles up to max messages of the jobs socket; how many. */
int bk_jobs_drain(broker_t *bk, int max);
/*  Heartbeats, dead workers, retries due, timeouts; returns when it wants
 *  to be called next (monotonic ms). */
int64_t bk_jobs_tick(broker_t *bk, int64_t now_ms);
const bk_jobs_stats_t *bk_jobs_stats(const bk_jobs_t *self);
/*  The jobs' metrics as flat pairs for the stats answer (sync.c): how many,
 *  then packing them. */
uint32_t bk_jobs_stats_pairs(const bk_jobs_t *self);
void bk_jobs_pack_stats(const bk_jobs_t *self, msgpack_packer *pk);

/*  Replays a journal record of jobs (persist.c): 0, -1 if it is damaged, 1
 *  if kind is not a job record. */
int bk_jobs_replay(broker_t *bk, int kind, const uint8_t *body, size_t len);
/*  After the replay: queued jobs queued again, running ones waiting for
 *  their workers. */
void bk_jobs_restored(broker_t *bk, int64_t now_ms);
/*  A 'J' for every live job, into a compaction's new journal. */
int bk_jobs_write_all(broker_t *bk, bk_journal_t *out);
/*  What became durable may be dispatched now (after the syncer's report). */
void bk_jobs_dispatch(broker_t *bk);

/*  Runs the event loop until SIGINT/SIGTERM or a fatal error. */
void bk_loop_run(broker_t *bk);

/*  Reads and handles up to max worker messages. Returns how many. */
int bk_ingest_drain(broker_t *bk, int max);

/*  Publishes one event on its user's topic (to every gateway subscribed). */
void bk_fanout_publish(broker_t *bk, const bk_user_t *u, const bk_blob_t *blob);
/*  The XPUB's first subscriber to a topic, or the last one gone. */
void bk_fanout_on_sub(broker_t *bk, const uint8_t *topic, size_t len, int subscribe);
/*  Publishes the heartbeat. */
void bk_fanout_heartbeat(broker_t *bk, int64_t wall_ms);

/*  Reads and answers up to max sync requests. Returns how many. */
int bk_sync_drain(broker_t *bk, int max);
/*  Sends a held sync answer to its gateway and frees it. */
void bk_sync_release(broker_t *bk, bk_out_t *o);
/*  Frees a held sync answer without sending it. */
void bk_sync_free_held(bk_held_t **h_p);

#endif
