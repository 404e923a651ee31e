/*  taskcast_jobs.h: submitting and cancelling jobs (libtaskcast).
 *
 *      tc_jobs_t *j = NULL;
 *      tc_options_t o = {0};              // endpoint: the broker's jobs endpoint
 *      if (tc_jobs_new(&j, &o) != TC_OK) ...
 *      tc_job_t job = {.kind = "render", .user_id = "2"};
 *      tc_job_reply_t r;
 *      if (tc_submit(j, &job, &r) == TC_OK) printf("%s\n", r.task_id);
 *      tc_cancel(j, r.task_id, "2", &r);  // r.was: "queued" or "running"
 *      tc_jobs_destroy(&j);
 *
 *  Delivery: a submit carries an idempotency key (producer, pseq) and is
 *  resent with the same key on a fresh socket when no answer comes within
 *  timeout_ms, up to `retries` times: a lost answer never makes two jobs. A
 *  cancel is resent the same way; a resent cancel whose first copy did
 *  arrive is answered not_found (the job was dropped by the first).
 *  docs/protocol.md section 6 is the protocol. Not thread-safe.
 */
#ifndef TASKCAST_JOBS_H
#define TASKCAST_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "taskcast.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_jobs tc_jobs_t;

typedef struct tc_job {
    const char *kind;    /* required, 1..64 of [A-Za-z0-9_.-] */
    const char *user_id; /* required, as for events */
    const char *task_id; /* NULL: the broker makes one */
    const void *args;    /* raw msgpack value, NULL: none; <= 64 KiB */
    size_t args_len;
    uint32_t timeout_s; /* 0: the broker's default (3600) */
    int max_retries;    /* -1: the broker's default (3) */
} tc_job_t;

typedef struct tc_job_reply {
    int ok;
    char task_id[129]; /* submit: the job's task id */
    int duplicate;     /* submit: the broker had this (producer, pseq) already */
    char was[16];      /* cancel: "queued" or "running" */
    char error[32];    /* on rejection: the stable error code */
    char detail[256];  /* on rejection: one sentence */
} tc_job_reply_t;

/*  opts->endpoint is the jobs endpoint (NULL: $TASKCAST_JOBS or
 *  tcp://127.0.0.1:5558); producer, timeout_ms and retries as for
 *  tc_client_new(). */
int tc_jobs_new(tc_jobs_t **out, const tc_options_t *opts);
void tc_jobs_destroy(tc_jobs_t **self_p);
/*  Submits one job and waits for the answer. reply may be NULL. Returns
 *  TC_OK, TC_EREJECTED, TC_ETIMEOUT, TC_EINVAL, TC_ESYS or TC_EPROTO. */
int tc_submit(tc_jobs_t *self, const tc_job_t *job, tc_job_reply_t *reply);
/*  Cancels user_id's job task_id; the same returns as tc_submit(). */
int tc_cancel(tc_jobs_t *self, const char *task_id, const char *user_id, tc_job_reply_t *reply);

#ifdef __cplusplus
}
#endif

#endif
