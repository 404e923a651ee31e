/*  jobs.h: tc-jobs, the job benchmark client (see bench/README.md).
 *
 *  Submits trivial jobs to a broker's jobs endpoint (a DEALER, pipelined,
 *  docs/protocol.md section 6) at a fixed rate or as fast as a window of
 *  unfinished jobs allows, and watches their task events on the broker's
 *  fanout (a SUB on the jobs' users) to time each job: submit -> answer,
 *  submit -> the first `running` event, submit -> the final event.
 *  jobs_run.c is the loop; jobs_main.c the options and the report.
 */
#ifndef TC_BENCH_JOBS_H
#define TC_BENCH_JOBS_H

#include <stdint.h>

#include "hist.h"
#include "tally.h"

#define JOBS_PROG "tc-jobs"

typedef struct jobs_cfg {
    const char *jobs_ep, *fanout_ep, *kind;
    uint64_t count;    /* jobs to submit */
    double rate;       /* jobs/s on a fixed schedule; 0: as the window allows */
    uint32_t window;   /* submitted and not yet finished, at most */
    uint32_t users;    /* jobs go to users bj0..bjN-1, round-robin */
    double timeout_s;  /* for the last job to finish after the last submit */
    char prefix[32];   /* task ids are <prefix>-<i> */
    char producer[48]; /* idempotency key producer */
} jobs_cfg_t;

typedef struct jobs_result {
    uint64_t submitted, acked, running, succeeded, failed, cancelled;
    tally_t errors;      /* rejected submits by error code */
    tally_t fail_reason; /* failed jobs by reason (the event's data.reason) */
    hist_t ack, to_running, to_done;
    int64_t t_first_submit, t_last_submit, t_last_done;
    double cpu_s;
    char error[256]; /* set when the run could not be made */
} jobs_result_t;

/*  Runs the benchmark. 0, or -1 with res->error set. */
int jobs_run(const jobs_cfg_t *cfg, jobs_result_t *res);

#endif
