/*  cli_jobs.c: `taskcast-cli submit` and `taskcast-cli cancel`: one job
 *  submitted or cancelled on the broker's jobs endpoint, the answer printed. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "json.h"
#include "taskcast_jobs.h"

static const cfg_opt_t s_submit_cfg[] = {
    {"kind", NULL, NULL, "the job's kind (required)", 0, NULL},
    {"user", NULL, NULL, "user id the task belongs to (required)", 0, NULL},
    {"task", NULL, NULL, "task id (default: the broker makes one)", 0, NULL},
    {"args", NULL, NULL, "the job's arguments, any JSON value", 0, NULL},
    {"timeout-s", NULL, NULL, "seconds the job may run (default: the broker's, 3600)", 0, NULL},
    {"max-retries", NULL, NULL, "new attempts after a lost worker (default: the broker's, 3)", 0,
     NULL},
    {"jobs", "TASKCAST_JOBS", "tcp://127.0.0.1:5558", "broker jobs endpoint", 0, NULL},
    {"timeout-ms", NULL, "2000", "wait this long for an answer before resending", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};
#define S_NSUBMIT (sizeof s_submit_cfg / sizeof s_submit_cfg[0])

static const cfg_opt_t s_cancel_cfg[] = {
    {"user", NULL, NULL, "user id the task belongs to (required)", 0, NULL},
    {"task", NULL, NULL, "task id (required)", 0, NULL},
    {"jobs", "TASKCAST_JOBS", "tcp://127.0.0.1:5558", "broker jobs endpoint", 0, NULL},
    {"timeout-ms", NULL, "2000", "wait this long for an answer before resending", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};
#define S_NCANCEL (sizeof s_cancel_cfg / sizeof s_cancel_cfg[0])

/*  The client for cfg's --jobs and --timeout-ms, or an exit status. */
static int
s_client(const cfg_opt_t *cfg, size_t n, const char *cmd, tc_jobs_t **out)
{
    uint64_t ms;
    const char *text = cfg_value(cfg, n, "timeout-ms");
    if (cfg_parse_u64(text, 1, 3600000, &ms) != 0) {
        fprintf(stderr, "%s %s: --timeout-ms must be 1..3600000, not '%s'\n", CLI_NAME, cmd, text);
        return CLI_EXIT_USAGE;
    }
    tc_options_t o = {.endpoint = cfg_value(cfg, n, "jobs"), .timeout_ms = (int)ms};
    int rc = tc_jobs_new(out, &o);
    if (rc == TC_EINVAL) {
        fprintf(stderr, "%s %s: --jobs '%s' is not a ZeroMQ endpoint (tcp://HOST:PORT)\n", CLI_NAME,
                cmd, o.endpoint);
        return CLI_EXIT_USAGE;
    }
    if (rc != TC_OK) {
        fprintf(stderr, "error: %s\n", tc_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    return -1;
}

/*  The exit status of a request's outcome, its error printed. */
static int
s_outcome(int rc, const tc_job_reply_t *r, const char *cmd)
{
    switch (rc) {
    case TC_OK:
        return CLI_EXIT_OK;
    case TC_EREJECTED:
        fprintf(stderr, "error: %s: %s\n", r->error, r->detail);
        return CLI_EXIT_FAIL;
    case TC_ETIMEOUT:
        fprintf(stderr, "error: no answer from the broker's jobs endpoint\n");
        return CLI_EXIT_TIMEOUT;
    case TC_EINVAL:
        fprintf(stderr, "%s %s: %s\n", CLI_NAME, cmd, tc_strerror(rc));
        return CLI_EXIT_USAGE;
    default:
        fprintf(stderr, "error: %s\n", tc_strerror(rc));
        return CLI_EXIT_FAIL;
    }
}

int
cli_submit(int argc, char **argv)
{
    log_t lg;
    cfg_opt_t cfg[S_NSUBMIT];
    memcpy(cfg, s_submit_cfg, sizeof cfg);
    int rc = cli_parse(cfg, S_NSUBMIT, argc, argv,
                       CLI_NAME " submit --kind K --user U [--args JSON] [options]",
                       "Submits one job; the task shows as queued to the user's browsers.\n"
                       "Prints 'ok task_id=T' (and ' duplicate') and exits 0; a refusal prints\n"
                       "'error: CODE: DETAIL' and exits 1; no answer exits 3; bad usage exits 2.",
                       &lg);
    if (rc >= 0)
        return rc;
    tc_job_t job = {.kind = cfg_value(cfg, S_NSUBMIT, "kind"),
                    .user_id = cfg_value(cfg, S_NSUBMIT, "user"),
                    .task_id = cfg_value(cfg, S_NSUBMIT, "task"),
                    .max_retries = -1};
    if (!job.kind || !*job.kind || !job.user_id || !*job.user_id) {
        fprintf(stderr, "%s submit: --kind and --user are required (see --help)\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    uint64_t v;
    const char *text = cfg_value(cfg, S_NSUBMIT, "timeout-s");
    if (text) {
        if (cfg_parse_u64(text, 1, 604800, &v) != 0) {
            fprintf(stderr, "%s submit: --timeout-s must be 1..604800, not '%s'\n", CLI_NAME, text);
            return CLI_EXIT_USAGE;
        }
        job.timeout_s = (uint32_t)v;
    }
    text = cfg_value(cfg, S_NSUBMIT, "max-retries");
    if (text) {
        if (cfg_parse_u64(text, 0, 100, &v) != 0) {
            fprintf(stderr, "%s submit: --max-retries must be 0..100, not '%s'\n", CLI_NAME, text);
            return CLI_EXIT_USAGE;
        }
        job.max_retries = (int)v;
    }
    buf_t args;
    buf_init(&args);
    text = cfg_value(cfg, S_NSUBMIT, "args");
    if (text) {
        char err[200];
        if (json_to_msgpack(text, strlen(text), &args, err, sizeof err) != 0 || !buf_ok(&args)) {
            fprintf(stderr, "%s submit: --args: %s\n", CLI_NAME,
                    buf_ok(&args) ? err : "out of memory");
            buf_free(&args);
            return CLI_EXIT_USAGE;
        }
        job.args = args.data;
        job.args_len = args.len;
    }
    tc_jobs_t *client = NULL;
    rc = s_client(cfg, S_NSUBMIT, "submit", &client);
    if (rc < 0) {
        tc_job_reply_t r;
        rc = s_outcome(tc_submit(client, &job, &r), &r, "submit");
        if (rc == CLI_EXIT_OK)
            printf("ok task_id=%s%s\n", r.task_id, r.duplicate ? " duplicate" : "");
    }
    tc_jobs_destroy(&client);
    buf_free(&args);
    return rc;
}

int
cli_cancel(int argc, char **argv)
{
    log_t lg;
    cfg_opt_t cfg[S_NCANCEL];
    memcpy(cfg, s_cancel_cfg, sizeof cfg);
    int rc = cli_parse(cfg, S_NCANCEL, argc, argv, CLI_NAME " cancel --user U --task T [options]",
                       "Cancels a user's queued or running job. Prints 'ok was=queued' or\n"
                       "'ok was=running' and exits 0; 'error: not_found: ...' exits 1.",
                       &lg);
    if (rc >= 0)
        return rc;
    const char *user = cfg_value(cfg, S_NCANCEL, "user"), *task = cfg_value(cfg, S_NCANCEL, "task");
    if (!user || !*user || !task || !*task) {
        fprintf(stderr, "%s cancel: --user and --task are required (see --help)\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    tc_jobs_t *client = NULL;
    rc = s_client(cfg, S_NCANCEL, "cancel", &client);
    if (rc < 0) {
        tc_job_reply_t r;
        rc = s_outcome(tc_cancel(client, task, user, &r), &r, "cancel");
        if (rc == CLI_EXIT_OK)
            printf("ok was=%s\n", r.was);
    }
    tc_jobs_destroy(&client);
    return rc;
}
