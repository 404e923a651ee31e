/*  jobs_run.c: tc-jobs' loop (see jobs.h): one DEALER submitting, one SUB
 *  watching the jobs' users, both through libzmq, polled together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "jobs.h"
#include "mpread.h"
#include "mpwrite.h"
#include "procs.h"
#include "topic.h"

#define S_BURST 256 /* submits per turn of the loop, at most */

typedef struct s_job {
    int64_t t_sub;
    uint8_t ran, done;
} s_job_t;

typedef struct s_run {
    const jobs_cfg_t *cfg;
    jobs_result_t *res;
    void *ctx, *dealer, *sub;
    s_job_t *jobs;
    uint64_t inflight, finished, next;
    size_t prefix_len;
    char confirm[64];
    size_t confirm_len;
} s_run_t;

static int
s_fail(s_run_t *r, const char *what)
{
    snprintf(r->res->error, sizeof r->res->error, "%s: %s", what, zmq_strerror(errno));
    return -1;
}

/*  {"type":"submit","kind":K,"user_id":U,"task_id":T,"args":{"i":I},
 *   "producer":P,"pseq":I} */
static int
s_submit(s_run_t *r, uint64_t i)
{
    const jobs_cfg_t *cfg = r->cfg;
    char user[32], task[64];
    int ulen = snprintf(user, sizeof user, "bj%llu", (unsigned long long)(i % cfg->users));
    int tlen = snprintf(task, sizeof task, "%s-%llu", cfg->prefix, (unsigned long long)i);
    uint8_t msg[512], *p = msg;
    p = mp_put_fixmap(p, 7);
    p = mp_put_lit(p, "type");
    p = mp_put_lit(p, "submit");
    p = mp_put_lit(p, "kind");
    p = mp_put_str(p, cfg->kind, strlen(cfg->kind));
    p = mp_put_lit(p, "user_id");
    p = mp_put_str(p, user, (size_t)ulen);
    p = mp_put_lit(p, "task_id");
    p = mp_put_str(p, task, (size_t)tlen);
    p = mp_put_lit(p, "args");
    p = mp_put_fixmap(p, 1);
    p = mp_put_lit(p, "i");
    p = mp_put_uint(p, i);
    p = mp_put_lit(p, "producer");
    p = mp_put_str(p, cfg->producer, strlen(cfg->producer));
    p = mp_put_lit(p, "pseq");
    p = mp_put_uint(p, i + 1); /* pseq 0 is not a key */
    r->jobs[i].t_sub = procs_now_ns();
    if (zmq_send(r->dealer, msg, (size_t)(p - msg), 0) < 0)
        return s_fail(r, "zmq_send");
    if (!r->res->t_first_submit)
        r->res->t_first_submit = r->jobs[i].t_sub;
    r->res->t_last_submit = r->jobs[i].t_sub;
    r->res->submitted++;
    r->inflight++;
    return 0;
}

static void
s_finish(s_run_t *r, uint64_t i, int64_t now)
{
    r->jobs[i].done = 1;
    r->inflight--;
    r->finished++;
    r->res->t_last_done = now;
}

/*  An answer: {"ok":B,"pseq":N,"error"?:E,...} */
static void
s_on_answer(s_run_t *r, const uint8_t *data, size_t len, int64_t now)
{
    mp_reader_t rd;
    mp_value_t h, k, v;
    mp_reader_init(&rd, data, len);
    if (mp_read(&rd, &h) != 0 || h.type != MP_MAP)
        return;
    int ok = 0;
    uint64_t pseq = 0;
    char error[TALLY_KEYLEN] = "no_error_code";
    for (uint32_t n = 0; n < h.v.n; n++) {
        if (mp_read_pair(&rd, &k, &v, 8) != 0)
            return;
        if (mp_str_eq(&k, "ok") && v.type == MP_BOOL)
            ok = v.v.b;
        else if (mp_str_eq(&k, "pseq") && v.type == MP_UINT)
            pseq = v.v.u;
        else if (mp_str_eq(&k, "error") && v.type == MP_STR)
            snprintf(error, sizeof error, "%.*s", (int)v.v.s.len, v.v.s.p);
    }
    if (pseq == 0 || pseq > r->cfg->count)
        return;
    s_job_t *j = &r->jobs[pseq - 1];
    if (ok) {
        r->res->acked++;
        hist_record(&r->res->ack, (uint64_t)(now - j->t_sub));
        return;
    }
    tally_add(&r->res->errors, error, 1);
    if (!j->done)
        s_finish(r, pseq - 1, now);
}

/*  A task event of one of the jobs' users: task_id, status, data.reason. */
static void
s_on_event(s_run_t *r, const uint8_t *data, size_t len, int64_t now)
{
    mp_reader_t rd;
    mp_value_t h, k, v;
    mp_reader_init(&rd, data, len);
    if (mp_read(&rd, &h) != 0 || h.type != MP_MAP)
        return;
    mp_value_t task = {0}, status = {0}, reason = {0};
    for (uint32_t n = 0; n < h.v.n; n++) {
        if (mp_read(&rd, &k) != 0 || k.type != MP_STR)
            return;
        if (mp_str_eq(&k, "data")) {
            mp_reader_t peek = rd;
            if (mp_read(&peek, &v) == 0 && v.type == MP_MAP) {
                rd = peek;
                for (uint32_t m = 0; m < v.v.n; m++) {
                    mp_value_t dk, dv;
                    if (mp_read_pair(&rd, &dk, &dv, 8) != 0)
                        return;
                    if (mp_str_eq(&dk, "reason") && dv.type == MP_STR)
                        reason = dv;
                }
                continue;
            }
        }
        mp_reader_t at = rd;
        if (mp_read(&at, &v) != 0)
            return;
        if (mp_skip(&rd, 8) != 0)
            return;
        if (mp_str_eq(&k, "task_id") && v.type == MP_STR)
            task = v;
        else if (mp_str_eq(&k, "status") && v.type == MP_STR)
            status = v;
    }
    const char *t = task.v.s.p;
    size_t tl = task.type == MP_STR ? task.v.s.len : 0;
    if (tl <= r->prefix_len + 1 || memcmp(t, r->cfg->prefix, r->prefix_len) != 0 ||
        t[r->prefix_len] != '-')
        return;
    uint64_t i = 0;
    for (size_t c = r->prefix_len + 1; c < tl; c++) {
        if (t[c] < '0' || t[c] > '9' || i > UINT64_MAX / 10)
            return;
        i = i * 10 + (uint64_t)(t[c] - '0');
    }
    if (i >= r->next || status.type != MP_STR)
        return;
    s_job_t *j = &r->jobs[i];
    if (j->done)
        return;
    uint64_t dt = (uint64_t)(now - j->t_sub);
    if (mp_str_eq(&status, "running")) {
        if (!j->ran) {
            j->ran = 1;
            r->res->running++;
            hist_record(&r->res->to_running, dt);
        }
        return;
    }
    if (mp_str_eq(&status, "succeeded"))
        r->res->succeeded++;
    else if (mp_str_eq(&status, "failed")) {
        r->res->failed++;
        char why[TALLY_KEYLEN] = "no_reason";
        if (reason.type == MP_STR)
            snprintf(why, sizeof why, "%.*s", (int)reason.v.s.len, reason.v.s.p);
        tally_add(&r->res->fail_reason, why, 1);
    }
    else if (mp_str_eq(&status, "cancelled"))
        r->res->cancelled++;
    else
        return; /* queued */
    hist_record(&r->res->to_done, dt);
    s_finish(r, i, now);
}

/*  Reads every waiting message of one socket. type 0: answers, 1: events. */
static int
s_drain(s_run_t *r, void *sock, int is_sub)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    for (;;) {
        /* A message: skip empty frames (a REQ-style delimiter) and, on the
         * SUB, the topic; handle the last frame. */
        int got = 0, frames = 0;
        for (;;) {
            if (zmq_msg_recv(&part, sock, got ? 0 : ZMQ_DONTWAIT) < 0) {
                if (errno == EAGAIN && !got) {
                    zmq_msg_close(&part);
                    return 0;
                }
                zmq_msg_close(&part);
                return s_fail(r, "zmq_msg_recv");
            }
            got = 1;
            frames++;
            if (!zmq_msg_more(&part))
                break;
        }
        int64_t now = procs_now_ns();
        const uint8_t *d = zmq_msg_data(&part);
        size_t len = zmq_msg_size(&part);
        if (is_sub && frames == 2)
            s_on_event(r, d, len, now);
        else if (!is_sub)
            s_on_answer(r, d, len, now);
    }
}

/*  Subscribes to the users and waits for the broker's confirmation that
 *  every subscription is in effect (docs/protocol.md section 2). */
static int
s_subscribe(s_run_t *r)
{
    for (uint32_t u = 0; u < r->cfg->users; u++) {
        char topic[32];
        int n = snprintf(topic, sizeof topic, "bj%u", u);
        if (zmq_setsockopt(r->sub, ZMQ_SUBSCRIBE, topic, (size_t)n + 1) != 0) /* with the NUL */
            return s_fail(r, "subscribe");
    }
    r->confirm_len = (size_t)snprintf(r->confirm, sizeof r->confirm, "%stc-jobs-%ld",
                                      TOPIC_CONFIRM_PREFIX, (long)getpid());
    if (zmq_setsockopt(r->sub, ZMQ_SUBSCRIBE, r->confirm, r->confirm_len) != 0)
        return s_fail(r, "subscribe");
    int64_t deadline = procs_now_ns() + 10 * INT64_C(1000000000);
    zmq_msg_t part;
    zmq_msg_init(&part);
    while (procs_now_ns() < deadline) {
        zmq_pollitem_t it = {r->sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        if (zmq_msg_recv(&part, r->sub, 0) < 0)
            break;
        int match = zmq_msg_size(&part) == r->confirm_len &&
                    memcmp(zmq_msg_data(&part), r->confirm, r->confirm_len) == 0;
        while (zmq_msg_more(&part))
            zmq_msg_recv(&part, r->sub, 0);
        if (match) {
            zmq_msg_close(&part);
            return 0;
        }
    }
    zmq_msg_close(&part);
    snprintf(r->res->error, sizeof r->res->error,
             "no subscription confirmation from %s within 10 s", r->cfg->fanout_ep);
    return -1;
}

static int
s_open(s_run_t *r)
{
    int zero = 0, big = 1000000;
    r->ctx = zmq_ctx_new();
    if (!r->ctx)
        return s_fail(r, "zmq_ctx_new");
    r->dealer = zmq_socket(r->ctx, ZMQ_DEALER);
    r->sub = zmq_socket(r->ctx, ZMQ_SUB);
    if (!r->dealer || !r->sub)
        return s_fail(r, "zmq_socket");
    zmq_setsockopt(r->dealer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r->sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r->dealer, ZMQ_SNDHWM, &big, sizeof big);
    zmq_setsockopt(r->dealer, ZMQ_RCVHWM, &big, sizeof big);
    zmq_setsockopt(r->sub, ZMQ_RCVHWM, &zero, sizeof zero); /* never drop here */
    if (zmq_connect(r->dealer, r->cfg->jobs_ep) != 0 || zmq_connect(r->sub, r->cfg->fanout_ep) != 0)
        return s_fail(r, "zmq_connect");
    return s_subscribe(r);
}

static int
s_loop(s_run_t *r)
{
    const jobs_cfg_t *cfg = r->cfg;
    int64_t t0 = procs_now_ns(), end = 0;
    double ns_per_job = cfg->rate > 0 ? 1e9 / cfg->rate : 0;
    for (;;) {
        int64_t now = procs_now_ns();
        for (int b = 0; b < S_BURST && r->next < cfg->count && r->inflight < cfg->window; b++) {
            int64_t due = t0 + (int64_t)(ns_per_job * (double)r->next);
            if (cfg->rate > 0 && now < due)
                break;
            if (s_submit(r, r->next++) != 0)
                return -1;
        }
        if (r->next == cfg->count) {
            if (r->finished == cfg->count)
                return 0;
            if (!end)
                end = procs_now_ns() + (int64_t)(cfg->timeout_s * 1e9);
            if (procs_now_ns() > end)
                return 0; /* the report shows what did not finish */
        }
        long wait_ms = 100;
        if (r->next < cfg->count && r->inflight < cfg->window) {
            int64_t due = t0 + (int64_t)(ns_per_job * (double)r->next);
            int64_t ahead = due - procs_now_ns();
            wait_ms = ahead <= 0 ? 0 : (long)((ahead + 999999) / 1000000);
        }
        zmq_pollitem_t it[2] = {{r->dealer, 0, ZMQ_POLLIN, 0}, {r->sub, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, wait_ms) < 0 && errno != EINTR)
            return s_fail(r, "zmq_poll");
        if (s_drain(r, r->dealer, 0) != 0 || s_drain(r, r->sub, 1) != 0)
            return -1;
    }
}

int
jobs_run(const jobs_cfg_t *cfg, jobs_result_t *res)
{
    s_run_t r = {.cfg = cfg, .res = res, .prefix_len = strlen(cfg->prefix)};
    hist_init(&res->ack);
    hist_init(&res->to_running);
    hist_init(&res->to_done);
    r.jobs = calloc(cfg->count ? cfg->count : 1, sizeof *r.jobs);
    double cpu0 = procs_cpu_s();
    int rc = -1;
    if (!r.jobs)
        snprintf(res->error, sizeof res->error, "out of memory");
    else if (s_open(&r) == 0)
        rc = s_loop(&r);
    res->cpu_s = procs_cpu_s() - cpu0;
    if (r.dealer)
        zmq_close(r.dealer);
    if (r.sub)
        zmq_close(r.sub);
    if (r.ctx)
        zmq_ctx_term(r.ctx);
    free(r.jobs);
    return rc;
}
