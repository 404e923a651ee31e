/*  pool.h: taskcast-worker, the pool process (the jobs spec, "taskcast-worker").
 *
 *  It connects a DEALER to the broker's jobs endpoint, says hello with the
 *  kinds it serves, and runs each job it is given as a child process: the
 *  job as one JSON line on the child's stdin, the child's answers as JSON
 *  lines on its stdout, turned into started/progress/done messages.
 *
 *  Files, in the order a job travels:
 *    main.c    options, start and stop
 *    config.c  the kinds file (kind, mode, command)
 *    loop.c    one poll() loop: signalfd, timerfd, ZMQ_FD, the children's pipes
 *    link.c    the DEALER: hello, heartbeats, liveness, reconnect, job/cancel in
 *    job.c     a job's life: start, lines from its child, timeout, cancel, done
 *    child.c   spawning, writing to, signalling and reaping children
 *    lines.c   JSON lines from a child, bounded; the job line for its stdin
 *  The wire messages are packed and read in common/jobs_wire.c.
 */
#ifndef TC_POOL_H
#define TC_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "event.h"
#include "jobs_wire.h"
#include "log.h"
#include "zconn.h"

#define POOL_LINE_MAX     65536 /* bytes of one stdout line */
#define POOL_ERR_LINE_MAX 4096  /* bytes of one stderr line logged */
#define POOL_ERR_RATE     100   /* stderr lines logged per child per second */

/* ---------------------------------------------------------------- config.c */

typedef struct pool_kind {
    char name[JOBS_KIND_MAX + 1];
    int kept;    /* 1: one child takes job after job; 0: one child per job */
    char **argv; /* NULL-terminated, split on spaces */
    int line;    /* line in the file, for messages */
} pool_kind_t;

typedef struct pool_config {
    pool_kind_t *kinds;
    size_t n;
} pool_config_t;

/*  Parses the kinds file's text. Returns 0, or -1 with "line N: sentence"
 *  in err (cfg is then empty). */
int pool_config_parse(pool_config_t *cfg, const char *text, size_t len, char *err, size_t errlen);
/*  Reads and parses a file. */
int pool_config_load(pool_config_t *cfg, const char *path, char *err, size_t errlen);
const pool_kind_t *pool_config_find(const pool_config_t *cfg, const char *kind, size_t len);
void pool_config_free(pool_config_t *cfg);

/* ---------------------------------------------------------------- lines.c */

/*  Splits a byte stream into lines of at most max bytes. */
typedef struct pool_lines {
    buf_t buf;
    size_t head; /* bytes of buf already handed out */
    size_t max;
    int skipping; /* the rest of an over-long line is being dropped */
} pool_lines_t;

enum { POOL_LINE_NONE = 0, POOL_LINE_OK = 1, POOL_LINE_LONG = 2 };

void pool_lines_init(pool_lines_t *lr, size_t max);
void pool_lines_free(pool_lines_t *lr);
/*  Adds bytes read. 0, or -1 out of memory. */
int pool_lines_push(pool_lines_t *lr, const char *p, size_t n);
/*  The next complete line (without its "\n" or "\r\n"), valid until the next
 *  push: POOL_LINE_OK; POOL_LINE_LONG for a line over max (its first max
 *  bytes; the rest up to its newline is dropped); POOL_LINE_NONE if no
 *  complete line is buffered. at_eof: the bytes after the last newline are
 *  a last line. */
int pool_lines_next(pool_lines_t *lr, int at_eof, const char **line, size_t *len);

/*  What a child said in one stdout line. */
typedef struct pool_line {
    int has_progress;
    jobs_progress_t progress;
    int has_message;
    char message[EVENT_MESSAGE_MAX + 1];
    int has_result; /* the result's msgpack was appended to the result buffer */
    int has_error;  /* {"error":"..."} (kept children end a job with it) */
    char error[EVENT_MESSAGE_MAX + 1];
} pool_line_t;

/*  Parses one stdout line: a JSON object with any of "progress" (a number
 *  0..100), "message" (a string), "result" (any JSON), "error" (a string);
 *  other keys are ignored, but one of these must be there. The result is
 *  converted to msgpack into result (reset first). Returns 0, or -1 with a
 *  sentence in err (the child then failed with bad_output). */
int pool_line_parse(const char *line, size_t len, pool_line_t *out, buf_t *result, char *err,
                    size_t errlen);

/*  Appends the job line for a child's stdin:
 *  {"task_id":..,"user_id":..,"kind":..,"args":<JSON>,"attempt":N}\n.
 *  Returns 0, or -1 if the args cannot be JSON (out is then unchanged). */
int pool_job_line(buf_t *out, const jobs_msg_t *job);

/* ---------------------------------------------------------------- child.c */

struct pool_job;

typedef struct pool_child {
    pid_t pid;
    const pool_kind_t *kind;
    int in_fd, out_fd, err_fd; /* -1 once closed */
    pool_lines_t out, err;
    buf_t in; /* bytes waiting for the child's stdin */
    size_t in_off;
    int close_in; /* close stdin once in is written (per-job children) */
    int exited;   /* reaped: status holds the wait status */
    int status;
    int term_sent;         /* SIGTERM sent: never reused */
    int64_t kill_at_ms;    /* when SIGKILL follows (0: not scheduled) */
    int broken;            /* wrote garbage: its lines are ignored from now on */
    struct pool_job *job;  /* the job it runs, NULL if idle (kept) */
    int64_t err_window_ms; /* stderr rate limit: start of the second */
    unsigned err_lines, err_dropped;
} pool_child_t;

/*  Starts the kind's command with three non-blocking pipes (posix_spawn,
 *  no shell, its own process group, default signal mask). Returns a child,
 *  or NULL with a sentence in err. */
pool_child_t *pool_child_spawn(const pool_kind_t *kind, char *err, size_t errlen);
/*  Queues bytes for the child's stdin and writes what the pipe takes. */
void pool_child_write(pool_child_t *c, const void *p, size_t n);
/*  Writes what is queued; closes stdin when done if close_in. 0, or -1 if
 *  the child's stdin is gone (EPIPE). */
int pool_child_flush(pool_child_t *c);
/*  SIGTERM (once) to its process group, SIGKILL grace_ms later. */
void pool_child_term(pool_child_t *c, int64_t now_ms, int64_t grace_ms);
/*  Sends SIGKILL if its time has come. */
void pool_child_tick(pool_child_t *c, int64_t now_ms);
/*  "exit status N" or "killed by signal N". */
void pool_child_describe(int status, char *out, size_t n);
/*  Closes the pipes and frees the child (it must have been reaped). */
void pool_child_destroy(pool_child_t **pc);

/* ---------------------------------------------------------------- the process */

typedef struct pool_job {
    char task_id[EVENT_TASK_ID_MAX + 1];
    char user_id[EVENT_USER_ID_MAX + 1];
    char kind[JOBS_KIND_MAX + 1];
    uint64_t attempt, timeout_s;
    int64_t started_ms, deadline_ms;
    const char *end; /* why it is being stopped: "timeout", "cancelled",
                      * "bad_output", "shutdown", "abandoned"; NULL */
    char end_message[256];
    buf_t result; /* the last result (msgpack) */
    int has_result;
    int has_error; /* per-job: an {"error":..} line came */
    char error[EVENT_MESSAGE_MAX + 1];
    pool_child_t *child;
} pool_job_t;

typedef struct pool {
    log_t log;
    pool_config_t cfg;
    const char *endpoint;
    char name[256];
    uint64_t concurrency;
    int64_t grace_ms;
    uint64_t hb_ms, liveness; /* from the options until a welcome says otherwise */
    /* link.c */
    zconn_t link;
    int link_open;
    int hello_due;    /* the link is new: say hello when it is up */
    int rx_body_seen; /* the current message's body was handled */
    int64_t last_recv_ms, last_send_ms;
    int lost; /* the broker went silent; not yet heard again */
    uint64_t connects;
    /* loop.c */
    int sigfd, tfd;
    int stopping; /* SIGTERM came: bye sent, no new jobs */
    int64_t stop_deadline_ms;
    int killed_rest;
    /* job.c */
    pool_job_t **jobs;
    size_t njobs; /* at most concurrency */
    pool_child_t **children;
    size_t nchildren, children_cap;
    buf_t out, line, scratch;
    char errbuf[256];
} pool_t;

/*  loop.c */
int pool_loop_run(pool_t *p);

/*  link.c */
int pool_link_open(pool_t *p, int64_t now_ms);
void pool_link_close(pool_t *p, int linger_ms);
/*  Sends p->out (a packed message). */
void pool_link_send(pool_t *p);
/*  Writes what was sent this turn (the loop calls it every turn). */
void pool_link_flush(pool_t *p);
/*  Heartbeats out, broker liveness in (reconnects when it is silent). */
void pool_link_tick(pool_t *p, int64_t now_ms);

/*  job.c */
void pool_job_start(pool_t *p, const jobs_msg_t *m, int64_t now_ms);
void pool_job_cancel(pool_t *p, const jobs_msg_t *m, int64_t now_ms);
/*  Timeouts, SIGKILLs due, the shutdown deadline. */
void pool_job_tick(pool_t *p, int64_t now_ms);
/*  A child's pipes are readable/writable. */
void pool_job_on_stdout(pool_t *p, pool_child_t *c, int64_t now_ms);
void pool_job_on_stderr(pool_t *p, pool_child_t *c, int64_t now_ms);
void pool_job_on_stdin(pool_t *p, pool_child_t *c, int64_t now_ms);
/*  SIGCHLD: reaps every child that ended and ends its job. */
void pool_job_reap(pool_t *p, int64_t now_ms);
/*  SIGTERM to the worker: bye, no new jobs, grace for the running ones. */
void pool_job_shutdown(pool_t *p, int64_t now_ms);
/*  The broker was lost: every running job is stopped without a report. */
void pool_job_abandon_all(pool_t *p, int64_t now_ms);
/*  Frees every job and child (at exit, all reaped). */
void pool_job_destroy_all(pool_t *p);

#endif
