/*  cli_publish.c: `taskcast-cli publish`: one event, the broker's answer on
 *  stdout (or the rejection on stderr). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "json.h"
#include "taskcast.h"
#include "taskcast_pack.h"

static const cfg_opt_t s_cfg[] = {
    {"user", NULL, NULL, "user id the task belongs to (required)", 0, NULL},
    {"task", NULL, NULL, "task id (required)", 0, NULL},
    {"status", NULL, NULL, "queued, running, succeeded, failed or cancelled (required)", 0, NULL},
    {"progress", NULL, NULL, "percent done, 0..100", 0, NULL},
    {"message", NULL, NULL, "one line for the user", 0, NULL},
    {"data", NULL, NULL, "any JSON value, passed through to the browser", 0, NULL},
    {"ts", NULL, NULL, "event time in ms since the Unix epoch (default: the broker's clock)", 0,
     NULL},
    {"producer", NULL, NULL, "idempotency producer id (default: random)", 0, NULL},
    {"ingest", "TASKCAST_INGEST", "tcp://127.0.0.1:5555", "broker ingest endpoint", 0, NULL},
    {"timeout-ms", NULL, "2000", "wait this long for an answer before resending", 0, NULL},
    {"retries", NULL, "5", "resends after a timeout (0: none)", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};

#define S_NOPTS (sizeof s_cfg / sizeof s_cfg[0])

typedef struct {
    log_t log;
    cfg_opt_t cfg[S_NOPTS]; /* a copy of s_cfg that cfg_parse fills */
    tc_options_t opts;
    tc_event_t ev;
    buf_t data; /* --data converted to msgpack */
} s_publish_t;

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s publish: ", CLI_NAME);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/*  Fills the event and options from the parsed flags. Returns -1, or an
 *  exit status after printing why. */
static int
s_build(s_publish_t *self)
{
    const cfg_opt_t *opts = self->cfg;
    static const char *const required[] = {"user", "task", "status"};
    for (size_t i = 0; i < 3; i++)
        if (!cfg_value(opts, S_NOPTS, required[i]) || !*cfg_value(opts, S_NOPTS, required[i]))
            return s_usage_error("--%s is required (see --help)", required[i]);
    tc_event_t *ev = &self->ev;
    ev->user_id = cfg_value(opts, S_NOPTS, "user");
    ev->task_id = cfg_value(opts, S_NOPTS, "task");
    ev->status = cfg_value(opts, S_NOPTS, "status");
    if (!tc_status_valid(ev->status))
        return s_usage_error(
            "--status must be queued, running, succeeded, failed or cancelled, not '%s'",
            ev->status);
    const char *text = cfg_value(opts, S_NOPTS, "progress");
    if (text) {
        char *end = NULL;
        double p = strtod(text, &end);
        if (!*text || *end || !isfinite(p) || p < 0 || p > 100)
            return s_usage_error("--progress must be a number from 0 to 100, not '%s'", text);
        ev->has_progress = 1;
        ev->progress = p;
    }
    ev->message = cfg_value(opts, S_NOPTS, "message");
    text = cfg_value(opts, S_NOPTS, "data");
    if (text) {
        char err[200];
        if (json_to_msgpack(text, strlen(text), &self->data, err, sizeof err) != 0)
            return s_usage_error("--data: %s", err);
        if (!buf_ok(&self->data))
            return s_usage_error("--data: %s", "out of memory");
        ev->data = self->data.data;
        ev->data_len = self->data.len;
    }
    uint64_t v;
    text = cfg_value(opts, S_NOPTS, "ts");
    if (text) {
        if (cfg_parse_u64(text, 1, INT64_MAX, &v) != 0)
            return s_usage_error("--ts must be milliseconds since the Unix epoch, not '%s'", text);
        ev->ts = (int64_t)v;
    }
    text = cfg_value(opts, S_NOPTS, "timeout-ms");
    if (cfg_parse_u64(text, 1, 3600000, &v) != 0)
        return s_usage_error("--timeout-ms must be 1..3600000, not '%s'", text);
    self->opts.timeout_ms = (int)v;
    text = cfg_value(opts, S_NOPTS, "retries");
    if (cfg_parse_u64(text, 0, 1000, &v) != 0)
        return s_usage_error("--retries must be 0..1000, not '%s'", text);
    self->opts.retries = v == 0 ? -1 : (int)v;
    self->opts.endpoint = cfg_value(opts, S_NOPTS, "ingest");
    self->opts.producer = cfg_value(opts, S_NOPTS, "producer");
    if (self->opts.producer && !tc_producer_valid(self->opts.producer))
        return s_usage_error("--producer must be 1..%d printable ASCII characters",
                             TC_PRODUCER_MAX);
    return -1;
}

/*  Sends the event and reports the outcome. Returns the exit status. */
static int
s_send(s_publish_t *self)
{
    tc_client_t *client = NULL;
    int rc = tc_client_new(&client, &self->opts);
    if (rc == TC_EINVAL) {
        fprintf(stderr, "%s publish: --ingest '%s' is not a ZeroMQ endpoint (tcp://HOST:PORT)\n",
                CLI_NAME, self->opts.endpoint);
        return CLI_EXIT_USAGE;
    }
    if (rc != TC_OK) {
        fprintf(stderr, "error: %s\n", tc_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    log_debug(&self->log, "publishing task=%s user=%s status=%s to %s as producer=%s",
              self->ev.task_id, self->ev.user_id, self->ev.status, self->opts.endpoint,
              tc_client_producer(client));
    tc_reply_t reply;
    rc = tc_publish(client, &self->ev, &reply);
    int status;
    switch (rc) {
    case TC_OK:
        printf("ok seq=%llu pseq=%llu%s\n", (unsigned long long)reply.seq,
               (unsigned long long)reply.pseq, reply.duplicate ? " duplicate" : "");
        status = CLI_EXIT_OK;
        break;
    case TC_EREJECTED:
        fprintf(stderr, "error: %s: %s\n", reply.error, reply.detail);
        status = CLI_EXIT_FAIL;
        break;
    case TC_ETIMEOUT:
        fprintf(stderr, "error: no answer from %s (%d ms per attempt, %d attempts)\n",
                self->opts.endpoint, self->opts.timeout_ms,
                self->opts.retries < 0 ? 1 : self->opts.retries + 1);
        status = CLI_EXIT_TIMEOUT;
        break;
    case TC_EINVAL:
        fprintf(stderr, "%s publish: %s\n", CLI_NAME, tc_strerror(rc));
        status = CLI_EXIT_USAGE;
        break;
    default:
        fprintf(stderr, "error: %s\n", tc_strerror(rc));
        status = CLI_EXIT_FAIL;
        break;
    }
    tc_client_destroy(&client);
    return status;
}

/* cli_publish: see cli.h */
int
cli_publish(int argc, char **argv)
{
    s_publish_t self = {0};
    memcpy(self.cfg, s_cfg, sizeof s_cfg);
    buf_init(&self.data);
    int rc = cli_parse(self.cfg, S_NOPTS, argc, argv,
                       CLI_NAME " publish --user U --task T --status S [options]",
                       "Sends one task event to the broker and waits for its answer.\n"
                       "Prints 'ok seq=S pseq=N' (and ' duplicate') and exits 0; a rejection\n"
                       "prints 'error: CODE: DETAIL' and exits 1; no answer exits 3; bad\n"
                       "usage exits 2.",
                       &self.log);
    if (rc < 0)
        rc = s_build(&self);
    if (rc < 0)
        rc = s_send(&self);
    buf_free(&self.data);
    return rc;
}
