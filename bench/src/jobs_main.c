/*  jobs_main.c: tc-jobs' options and report (see jobs.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "jobs.h"
#include "opt.h"
#include "procs.h"

static const cfg_opt_t s_opts[] = {
    {"jobs", NULL, "tcp://127.0.0.1:5558", "the broker's jobs endpoint", 0, NULL},
    {"fanout", NULL, "tcp://127.0.0.1:5556",
     "the broker's fanout endpoint (events are watched there)", 0, NULL},
    {"kind", NULL, "trivial", "the jobs' kind", 0, NULL},
    {"count", NULL, "10000", "jobs to submit", 0, NULL},
    {"rate", NULL, "0", "jobs per second on a fixed schedule; 0: as fast as --window allows", 0,
     NULL},
    {"window", NULL, "1000", "jobs submitted and not yet finished, at most", 0, NULL},
    {"users", NULL, "100", "the jobs' users bj0..bjN-1, round-robin", 0, NULL},
    {"timeout", NULL, "30", "seconds to wait for the last jobs after the last submit", 0, NULL},
    {"prefix", NULL, NULL, "task ids are PREFIX-<i> [tcj<pid>]", 0, NULL},
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

static int
s_configure(cfg_opt_t *o, jobs_cfg_t *cfg)
{
    uint64_t window, users;
    if (opt_u64(o, S_NOPTS, JOBS_PROG, "count", 1, 100000000, &cfg->count) ||
        opt_u64(o, S_NOPTS, JOBS_PROG, "window", 1, 10000000, &window) ||
        opt_u64(o, S_NOPTS, JOBS_PROG, "users", 1, 100000, &users) ||
        opt_double(o, S_NOPTS, JOBS_PROG, "rate", &cfg->rate) ||
        opt_double(o, S_NOPTS, JOBS_PROG, "timeout", &cfg->timeout_s))
        return -1;
    cfg->window = (uint32_t)window;
    cfg->users = (uint32_t)users;
    cfg->jobs_ep = cfg_value(o, S_NOPTS, "jobs");
    cfg->fanout_ep = cfg_value(o, S_NOPTS, "fanout");
    cfg->kind = cfg_value(o, S_NOPTS, "kind");
    const char *prefix = cfg_value(o, S_NOPTS, "prefix");
    if (prefix && (strlen(prefix) == 0 || strlen(prefix) >= sizeof cfg->prefix)) {
        fprintf(stderr, "%s: --prefix must be 1..%zu bytes\n", JOBS_PROG, sizeof cfg->prefix - 1);
        return -1;
    }
    if (strlen(cfg->kind) > 64) {
        fprintf(stderr, "%s: --kind is at most 64 bytes\n", JOBS_PROG);
        return -1;
    }
    if (prefix)
        snprintf(cfg->prefix, sizeof cfg->prefix, "%s", prefix);
    else
        snprintf(cfg->prefix, sizeof cfg->prefix, "tcj%ld", (long)getpid());
    snprintf(cfg->producer, sizeof cfg->producer, "tc-jobs-%s", cfg->prefix);
    return 0;
}

static double
s_span_s(int64_t from, int64_t to)
{
    return to > from ? (double)(to - from) / 1e9 : 0;
}

static void
s_report(const jobs_cfg_t *cfg, const jobs_result_t *res, double wall)
{
    double submit_s = s_span_s(res->t_first_submit, res->t_last_submit);
    double done_s = s_span_s(res->t_first_submit, res->t_last_done);
    uint64_t finished = res->succeeded + res->failed + res->cancelled;
    buf_t b;
    buf_init(&b);
    buf_printf(&b,
               "{\"tool\":\"tc-jobs\",\"jobs\":\"%s\",\"kind\":\"%s\",\"count\":%llu,"
               "\"offered_rate\":%.1f,\"window\":%u,\"users\":%u,",
               cfg->jobs_ep, cfg->kind, (unsigned long long)cfg->count, cfg->rate, cfg->window,
               cfg->users);
    buf_printf(&b, "\"submitted\":%llu,\"acked\":%llu,\"rejected\":%llu,\"rejected_by_code\":",
               (unsigned long long)res->submitted, (unsigned long long)res->acked,
               (unsigned long long)tally_total(&res->errors));
    tally_json(&res->errors, &b);
    buf_printf(&b,
               ",\"running_seen\":%llu,\"succeeded\":%llu,\"failed\":%llu,"
               "\"failed_by_reason\":",
               (unsigned long long)res->running, (unsigned long long)res->succeeded,
               (unsigned long long)res->failed);
    tally_json(&res->fail_reason, &b);
    buf_printf(&b,
               ",\"cancelled\":%llu,\"unfinished\":%llu,\"submit_s\":%.3f,\"done_s\":%.3f,"
               "\"submit_rate\":%.1f,\"jobs_per_s\":%.1f,\"ack_ms\":",
               (unsigned long long)res->cancelled,
               (unsigned long long)(res->submitted - finished - tally_total(&res->errors)),
               submit_s, done_s, submit_s > 0 ? (double)res->submitted / submit_s : 0,
               done_s > 0 ? (double)finished / done_s : 0);
    hist_json(&res->ack, 1e6, &b);
    buf_append_str(&b, ",\"to_running_ms\":");
    hist_json(&res->to_running, 1e6, &b);
    buf_append_str(&b, ",\"to_done_ms\":");
    hist_json(&res->to_done, 1e6, &b);
    buf_printf(&b, ",\"wall_s\":%.3f,\"cpu_s\":%.3f,\"cpu_pct\":%.1f}\n", wall, res->cpu_s,
               wall > 0 ? 100 * res->cpu_s / wall : 0);
    if (buf_ok(&b))
        fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    buf_free(&b);
    fprintf(stderr,
            "%s: %llu jobs, %llu succeeded, %llu failed, %llu rejected in %.2f s "
            "(%.0f jobs/s); submit->running ms p50 %.3f p99 %.3f; submit->done ms p50 "
            "%.3f p99 %.3f; cpu %.0f%%\n",
            JOBS_PROG, (unsigned long long)res->submitted, (unsigned long long)res->succeeded,
            (unsigned long long)res->failed, (unsigned long long)tally_total(&res->errors), done_s,
            done_s > 0 ? (double)finished / done_s : 0,
            (double)hist_percentile(&res->to_running, 50) / 1e6,
            (double)hist_percentile(&res->to_running, 99) / 1e6,
            (double)hist_percentile(&res->to_done, 50) / 1e6,
            (double)hist_percentile(&res->to_done, 99) / 1e6,
            wall > 0 ? 100 * res->cpu_s / wall : 0);
}

int
main(int argc, char **argv)
{
    cfg_opt_t opt[S_NOPTS];
    memcpy(opt, s_opts, sizeof s_opts);
    jobs_cfg_t cfg = {0};
    int rc =
        cfg_parse_main(opt, S_NOPTS, argc, argv, 1, JOBS_PROG, JOBS_PROG " [options]",
                       "Submits trivial jobs to a taskcast broker's jobs endpoint and times\n"
                       "them through their task events on the broker's fanout: submit ->\n"
                       "answer, -> running, -> succeeded. One JSON object on stdout, one line\n"
                       "on stderr.");
    if (rc < 0 && s_configure(opt, &cfg) != 0)
        rc = 2;
    if (rc >= 0)
        return rc;
    jobs_result_t *res = calloc(1, sizeof *res); /* large (histograms): not on the stack */
    if (!res)
        return 1;
    int64_t t0 = procs_now_ns();
    if (jobs_run(&cfg, res) != 0) {
        fprintf(stderr, "%s: %s\n", JOBS_PROG, res->error);
        free(res);
        return 1;
    }
    s_report(&cfg, res, (double)(procs_now_ns() - t0) / 1e9);
    free(res);
    return 0;
}
