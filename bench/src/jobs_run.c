/*  jobs_run.c: tc-jobs' loop (see jobs.h): one DEALER submitting, one SUB
 *  watching the jobs' users, both spoken by this loop (common/zconn.c: no
 *  libzmq I/O thread, so the tool takes little of the machine it measures),
 *  polled together. Submits of a turn leave in one write.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "jobs.h"
#include "mpread.h"
#include "mpwrite.h"
#include "procs.h"
#include "topic.h"
#include "zconn.h"
#include "zmtp.h"

#define S_BURST 256 /* submits per turn of the loop, at most */

typedef struct s_job {
    int64_t t_sub;
    uint8_t ran, done;
} s_job_t;

enum { S_TOPIC_OTHER, S_TOPIC_USER, S_TOPIC_CONFIRM };

typedef struct s_run {
    const jobs_cfg_t *cfg;
    jobs_result_t *res;
    log_t log;
    zconn_t dealer, sub;
    int topic; /* what the SUB's current message is about (S_TOPIC_*) */
    int confirmed;
    s_job_t *jobs;
    uint64_t inflight, finished, next;
    size_t prefix_len;
    char confirm[64];
    size_t confirm_len;
} s_run_t;

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
    buf_t *out = zconn_out(&r->dealer);
    if (!out) {
        snprintf(r->res->error, sizeof r->res->error, "the link to %s was lost", r->cfg->jobs_ep);
        return -1;
    }
    r->jobs[i].t_sub = procs_now_ns();
    zmtp_put_frame(out, msg, (size_t)(p - msg), 0);
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

/*  The DEALER's frames: an answer is one frame (after an empty
 *  delimiter, if any). */
static void
s_on_dealer_frame(void *owner, zconn_t *z, const uint8_t *data, size_t len, int first, int more)
{
    if (!more && len > 0)
        s_on_answer(owner, data, len, procs_now_ns());
}

/*  The SUB's frames: [topic][body]; a user's event, or our confirmation. */
static void
s_on_sub_frame(void *owner, zconn_t *z, const uint8_t *data, size_t len, int first, int more)
{
    s_run_t *r = owner;
    if (first) {
        r->topic = S_TOPIC_OTHER;
        if (len == r->confirm_len && memcmp(data, r->confirm, len) == 0)
            r->topic = S_TOPIC_CONFIRM;
        else if (len > 2 && data[0] == 'b' && data[1] == 'j' && data[len - 1] == '\0')
            r->topic = S_TOPIC_USER;
        return;
    }
    if (more)
        return;
    if (r->topic == S_TOPIC_CONFIRM)
        r->confirmed = 1;
    else if (r->topic == S_TOPIC_USER)
        s_on_event(r, data, len, procs_now_ns());
}

/*  Subscribes to the users, then to our confirmation topic: once the
 *  broker answers on it, every subscription is in effect (docs/protocol.md
 *  section 2). Again after a reconnect. */
static void
s_on_sub_up(void *owner, zconn_t *z)
{
    s_run_t *r = owner;
    buf_t *out = zconn_out(z);
    for (uint32_t u = 0; u < r->cfg->users; u++) {
        char topic[32];
        int n = snprintf(topic, sizeof topic, "bj%u", u);
        zmtp_put_subscription(out, topic, (size_t)n + 1, 1); /* with the NUL */
    }
    zmtp_put_subscription(out, r->confirm, r->confirm_len, 1);
    zconn_flush(z);
}

static void
s_on_up_nothing(void *owner, zconn_t *z)
{
}

/*  One poll over both links, up to wait_ms; handles what came. */
static int
s_poll(s_run_t *r, int wait_ms)
{
    zconn_t *zs[2] = {&r->dealer, &r->sub};
    struct pollfd f[2];
    int64_t now = clock_mono_ms();
    for (int i = 0; i < 2; i++) {
        int64_t due = zconn_deadline_ms(zs[i]);
        if (due && due <= now)
            zconn_on_timeout(zs[i]);
        else if (due && due - now < wait_ms)
            wait_ms = (int)(due - now);
        f[i] = (struct pollfd){zconn_fd(zs[i]),
                               (short)(POLLIN | (zconn_wants_write(zs[i]) ? POLLOUT : 0)), 0};
    }
    if (poll(f, 2, wait_ms) < 0 && errno != EINTR) {
        snprintf(r->res->error, sizeof r->res->error, "poll: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (f[i].fd < 0 || f[i].fd != zconn_fd(zs[i]))
            continue;
        if (f[i].revents & (POLLOUT | POLLERR | POLLHUP))
            zconn_on_writable(zs[i]);
        if ((f[i].revents & (POLLIN | POLLERR | POLLHUP)) && f[i].fd == zconn_fd(zs[i]))
            zconn_on_readable(zs[i]);
    }
    return 0;
}

static int
s_open(s_run_t *r)
{
    log_init(&r->log, JOBS_PROG, LOG_WARN);
    r->confirm_len = (size_t)snprintf(r->confirm, sizeof r->confirm, "%stc-jobs-%ld",
                                      TOPIC_CONFIRM_PREFIX, (long)getpid());
    const zconn_spec_t d = {.name = "jobs",
                            .endpoint = r->cfg->jobs_ep,
                            .type = "DEALER",
                            .peer_type = "ROUTER",
                            .max_frame = 1 << 20,
                            .log = &r->log,
                            .owner = r,
                            .on_up = s_on_up_nothing,
                            .on_frame = s_on_dealer_frame};
    const zconn_spec_t s = {.name = "fanout",
                            .endpoint = r->cfg->fanout_ep,
                            .type = "SUB",
                            .peer_type = "XPUB",
                            .max_frame = 1 << 20,
                            .log = &r->log,
                            .owner = r,
                            .on_up = s_on_sub_up,
                            .on_frame = s_on_sub_frame};
    const char *why = NULL;
    if (zconn_open(&r->dealer, &d, &why) != 0 || zconn_open(&r->sub, &s, &why) != 0) {
        snprintf(r->res->error, sizeof r->res->error, "%s", why);
        return -1;
    }
    int64_t deadline = procs_now_ns() + 10 * INT64_C(1000000000);
    while (procs_now_ns() < deadline && !(r->confirmed && zconn_up(&r->dealer)))
        if (s_poll(r, 100) != 0)
            return -1;
    if (r->confirmed && zconn_up(&r->dealer))
        return 0;
    snprintf(r->res->error, sizeof r->res->error,
             "no subscription confirmation from %s and link to %s within 10 s", r->cfg->fanout_ep,
             r->cfg->jobs_ep);
    return -1;
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
        zconn_flush(&r->dealer); /* the turn's submits in one write */
        if (s_poll(r, (int)wait_ms) != 0)
            return -1;
    }
}

int
jobs_run(const jobs_cfg_t *cfg, jobs_result_t *res)
{
    s_run_t r = {.cfg = cfg, .res = res, .prefix_len = strlen(cfg->prefix)};
    r.dealer.fd = r.sub.fd = -1; /* zconn_close() is safe before zconn_open() */
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
    zconn_close(&r.dealer);
    zconn_close(&r.sub);
    free(r.jobs);
    return rc;
}
