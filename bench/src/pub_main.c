/*  pub_main.c: tc-pub's options, schedule, and report (see pub.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "opt.h"
#include "pub.h"

static const cfg_opt_t s_opts[] = {
    {"target", NULL, "taskcast", "taskcast (ZeroMQ), redis (PUBLISH) or nchan (HTTP POST)", 0, NULL},
    {"endpoint", NULL, NULL, "taskcast: ingest endpoint [tcp://127.0.0.1:5555]; redis, nchan: "
                             "HOST:PORT", 0, NULL},
    {"prefix", NULL, NULL, "redis: channel prefix [tasks:]; nchan: publish path [/pub/]", 0, NULL},
    {"users", NULL, "1000", "users u0..uN-1, published to round-robin", 0, NULL},
    {"tasks-per-user", NULL, "10", "tasks t0..tK-1 per user, cycled", 0, NULL},
    {"rate", NULL, "1000", "events per second on a fixed schedule; 0: as fast as answers allow",
     0, NULL},
    {"window", NULL, "10000", "events sent and not yet answered, at most (per process)", 0, NULL},
    {"duration", NULL, "10", "seconds to publish (0: until --count)", 0, NULL},
    {"count", NULL, "0", "events to publish in total (0: until --duration)", 0, NULL},
    {"payload", NULL, "100", "bytes of \"pad\" in each event's data", 0, NULL},
    {"conns", NULL, NULL, "connections per process [taskcast 1, redis 1, nchan 4]", 0, NULL},
    {"procs", NULL, "1", "publisher processes (rate, count and users are split)", 0, NULL},
    {"batch-us", NULL, "50", "fixed rate: above 1e6/batch-us events/s per process, send in "
                             "batches every batch-us (each event up to that late)", 0, NULL},
    {"lazy-acks", NULL, NULL, "fixed rate: read answers only when waking up to send (fewer "
                              "wake-ups; ack latency then over by up to 1/rate)", 1, NULL},
    {"proto", NULL, "zmtp", "taskcast only: zmtp (ZMTP 3.0 spoken directly) or libzmq", 0, NULL},
    {"drain", NULL, "10", "seconds to wait for the last answers", 0, NULL},
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

typedef struct s_main {
    cfg_opt_t opt[S_NOPTS];
    pub_cfg_t cfg;
    pub_result_t total;
} s_main_t;

void
pub_answered(pub_worker_t *w, int64_t bt, const char *error, int no_receivers)
{
    int64_t now = procs_now_ns();
    if (w->inflight)
        w->inflight--;
    w->res->t_last_ack = now;
    if (error) {
        tally_add(&w->res->errors, error, 1);
        return;
    }
    w->res->acked++;
    if (no_receivers)
        w->res->no_receivers++;
    hist_record(&w->res->ack, now > bt ? (uint64_t)(now - bt) : 0);
}

static const pub_driver_t *
s_driver(const pub_cfg_t *cfg)
{
    return cfg->proto == PUB_PROTO_LIBZMQ ? &pub_zmq_driver : &pub_sock_driver;
}

static void
s_arm(int tfd, int64_t at_ns)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = at_ns / 1000000000;
    its.it_value.tv_nsec = at_ns % 1000000000;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*  The publishing loop of one worker; returns 0 or 1 (driver failure). */
static int
s_publish(pub_worker_t *w, const pub_driver_t *drv, procs_hdr_t *hdr, uint64_t count,
          uint32_t *users, uint32_t nusers, uint64_t *useq)
{
    const pub_cfg_t *cfg = w->cfg;
    pub_result_t *res = w->res;
    double rate = cfg->rate / cfg->procs;
    int64_t end = cfg->duration_s > 0 ? res->t0 + (int64_t)(cfg->duration_s * 1e9) : INT64_MAX;
    uint32_t next_user = 0;
    uint64_t i = 0;
    int failed = 0;
    /* Past 1 / --batch-us events per second, wake up once per batch-us
     * and send what is due: each event is then up to batch-us late (it
     * counts in the latency, from bt) for a fraction of the wake-ups. */
    int64_t slack = rate > 0 && 1e9 / rate < cfg->batch_ns ? cfg->batch_ns : 0;
    while (!atomic_load(&hdr->stop) && (!count || i < count)) {
        int64_t now = procs_now_ns();
        if (now >= end)
            break;
        /* Send what is due (fixed rate) or what the window allows, at most
         * 64 at a time so answers are read in between. */
        int more = 0, blocked = 0;
        for (unsigned batch = 0; (!count || i < count) && w->inflight < cfg->window; batch++) {
            if (batch == 64) {
                more = 1;
                break;
            }
            pub_ev_t ev;
            if (rate > 0) {
                ev.bt = res->t0 + (int64_t)((double)i * 1e9 / rate);
                if (ev.bt >= end)
                    break;
                if (ev.bt > now) {
                    s_arm(w->tfd, ev.bt + slack);
                    break;
                }
            }
            else
                ev.bt = now = procs_now_ns();
            ev.user = users[next_user];
            ev.useq = useq[next_user] + 1;
            ev.task = (uint32_t)((ev.useq - 1) % cfg->tasks_per_user);
            int rc = drv->send(w, &ev);
            if (rc < 0) {
                failed = 1;
                break;
            }
            if (rc == 0) {
                blocked = 1; /* the transport is full: wait until it drains */
                break;
            }
            if (rate > 0)
                hist_record(&res->lag, (uint64_t)(procs_now_ns() - ev.bt));
            useq[next_user] = ev.useq;
            next_user = next_user + 1 == nusers ? 0 : next_user + 1;
            res->sent++;
            res->t_last_send = rate > 0 ? ev.bt : now;
            w->inflight++;
            i++;
        }
        if ((count && i >= count) || failed)
            break; /* all sent (the answers are awaited below), or a failure */
        int64_t left_ms = end == INT64_MAX ? 100 : (end - now) / 1000000 + 1;
        int timeout = more ? 0 : left_ms < 100 ? (int)left_ms : 100;
        /* With --lazy-acks on the fixed schedule, wake up for the timer only
         * (answers are read then) unless the window is full or the
         * transport blocked. */
        int answers = !cfg->lazy_acks || rate == 0 || w->inflight >= cfg->window || blocked;
        if (failed || drv->wait(w, timeout, answers) < 0) {
            failed = 1;
            break;
        }
        uint64_t expirations;
        (void)!read(w->tfd, &expirations, sizeof expirations);
    }
    /* The schedule's span: an event sent on time "owns" 1/rate after it. */
    int64_t now = procs_now_ns();
    res->t_send_end = now;
    if (rate > 0 && res->t_last_send && res->t_last_send + (int64_t)(1e9 / rate) > now)
        res->t_send_end = res->t_last_send + (int64_t)(1e9 / rate);
    int64_t drain_end = now + (int64_t)(cfg->drain_s * 1e9);
    while (!failed && w->inflight > 0 && procs_now_ns() < drain_end && !atomic_load(&hdr->stop))
        failed = drv->wait(w, 50, 1) < 0;
    if (w->inflight > 0)
        tally_add(&res->errors, "unanswered", w->inflight);
    return failed;
}

static int
s_worker(int idx, procs_hdr_t *hdr, void *slot, void *arg)
{
    const pub_cfg_t *cfg = arg;
    pub_worker_t w = {.cfg = cfg, .res = slot, .idx = idx, .tfd = -1};
    hist_init(&w.res->ack);
    hist_init(&w.res->lag);
    prctl(PR_SET_TIMERSLACK, 1UL); /* wake up at the due time, not 50 us later */
    uint32_t nusers = cfg->users / cfg->procs + ((uint32_t)idx < cfg->users % cfg->procs);
    uint64_t count = cfg->count / cfg->procs + ((uint64_t)idx < cfg->count % cfg->procs);
    uint32_t *users = calloc(nusers, sizeof *users);
    uint64_t *useq = calloc(nusers, sizeof *useq);
    w.pad = malloc(cfg->payload + 1);
    w.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    buf_init(&w.scratch);
    const pub_driver_t *drv = s_driver(cfg);
    int rc = 1;
    char err[256] = "";
    if (!users || !useq || !w.pad || w.tfd < 0) {
        fprintf(stderr, "%s: worker %d: out of memory\n", PUB_PROG, idx);
        goto done;
    }
    for (uint32_t k = 0; k < nusers; k++)
        users[k] = (uint32_t)idx + k * cfg->procs;
    snprintf(w.producer, sizeof w.producer, "bench-%d", (int)getpid());
    memset(w.pad, 'x', cfg->payload);
    w.pad[cfg->payload] = '\0';
    if (drv->open(&w, err, sizeof err) != 0) {
        fprintf(stderr, "%s: worker %d: %s\n", PUB_PROG, idx, err);
        drv->close(&w);
        goto done;
    }
    double cpu0 = procs_cpu_s();
    w.res->t0 = procs_now_ns();
    rc = nusers ? s_publish(&w, drv, hdr, count, users, nusers, useq) : 0;
    drv->close(&w);
    w.res->cpu_s = procs_cpu_s() - cpu0;
done:
    if (w.tfd >= 0)
        close(w.tfd);
    buf_free(&w.scratch);
    free(w.pad);
    free(users);
    free(useq);
    return rc;
}

static int
s_configure(s_main_t *m)
{
    const cfg_opt_t *o = m->opt;
    pub_cfg_t *cfg = &m->cfg;
    uint64_t users, tasks, window, payload, conns, procs;
    double batch_us;
    if (opt_u64(o, S_NOPTS, PUB_PROG, "users", 1, 10000000, &users) ||
        opt_u64(o, S_NOPTS, PUB_PROG, "tasks-per-user", 1, 1000000, &tasks) ||
        opt_u64(o, S_NOPTS, PUB_PROG, "window", 1, 10000000, &window) ||
        opt_u64(o, S_NOPTS, PUB_PROG, "payload", 0, 1 << 20, &payload) ||
        opt_u64(o, S_NOPTS, PUB_PROG, "conns", 1, PUB_CONNS_MAX, &conns) ||
        opt_u64(o, S_NOPTS, PUB_PROG, "procs", 1, PROCS_MAX, &procs) ||
        opt_u64(o, S_NOPTS, PUB_PROG, "count", 0, UINT64_MAX, &cfg->count) ||
        opt_double(o, S_NOPTS, PUB_PROG, "rate", &cfg->rate) ||
        opt_double(o, S_NOPTS, PUB_PROG, "duration", &cfg->duration_s) ||
        opt_double(o, S_NOPTS, PUB_PROG, "drain", &cfg->drain_s) ||
        opt_double(o, S_NOPTS, PUB_PROG, "batch-us", &batch_us))
        return -1;
    if (cfg->duration_s == 0 && cfg->count == 0) {
        fprintf(stderr, "%s: give --duration or --count\n", PUB_PROG);
        return -1;
    }
    cfg->users = (uint32_t)users;
    cfg->tasks_per_user = (uint32_t)tasks;
    cfg->window = (uint32_t)window;
    cfg->payload = (uint32_t)payload;
    cfg->procs = (uint32_t)procs;
    cfg->lazy_acks = cfg_value(o, S_NOPTS, "lazy-acks") != NULL;
    cfg->batch_ns = (int64_t)(batch_us * 1000);
    const char *target = cfg_value(o, S_NOPTS, "target");
    const char *endpoint = cfg_value(o, S_NOPTS, "endpoint");
    const char *prefix = cfg_value(o, S_NOPTS, "prefix");
    const char *proto = cfg_value(o, S_NOPTS, "proto");
    if (strcmp(target, "taskcast") == 0) {
        cfg->target = PUB_TASKCAST;
        cfg->endpoint = endpoint ? endpoint : "tcp://127.0.0.1:5555";
        cfg->conns = (uint32_t)(conns ? conns : 1);
        if (strcmp(proto, "libzmq") == 0) {
            cfg->proto = PUB_PROTO_LIBZMQ;
            return 0;
        }
        if (strcmp(proto, "zmtp") != 0) {
            fprintf(stderr, "%s: --proto must be zmtp or libzmq\n", PUB_PROG);
            return -1;
        }
        cfg->proto = PUB_PROTO_ZMTP;
        if (strncmp(cfg->endpoint, "tcp://", 6) != 0) {
            fprintf(stderr, "%s: --proto zmtp needs a tcp:// endpoint\n", PUB_PROG);
            return -1;
        }
        endpoint = cfg->endpoint + 6;
    }
    else if (strcmp(target, "redis") == 0) {
        cfg->target = PUB_REDIS;
        cfg->proto = PUB_PROTO_RESP;
        cfg->prefix = prefix ? prefix : "tasks:";
        cfg->conns = (uint32_t)(conns ? conns : 1);
    }
    else if (strcmp(target, "nchan") == 0) {
        cfg->target = PUB_NCHAN;
        cfg->proto = PUB_PROTO_HTTP;
        cfg->prefix = prefix ? prefix : "/pub/";
        cfg->conns = (uint32_t)(conns ? conns : 4);
    }
    else {
        fprintf(stderr, "%s: --target must be taskcast, redis or nchan\n", PUB_PROG);
        return -1;
    }
    char host[256];
    if (!cfg->endpoint)
        cfg->endpoint = endpoint;
    if (!endpoint || cfg_parse_listen(endpoint, host, sizeof host, &cfg->port) != 0 ||
        strlen(host) >= sizeof cfg->host || inet_pton(AF_INET, host, &cfg->dst.sin_addr) != 1) {
        fprintf(stderr, "%s: --endpoint must be %sIPV4:PORT for %s\n", PUB_PROG,
                cfg->target == PUB_TASKCAST ? "tcp://" : "", target);
        return -1;
    }
    memcpy(cfg->host, host, strlen(host) + 1); /* fits: checked above */
    cfg->dst.sin_family = AF_INET;
    cfg->dst.sin_port = htons((uint16_t)cfg->port);
    return 0;
}

static void
s_report(s_main_t *m, procs_t *pr, int bad, double wall)
{
    static const char *s_names[] = {"taskcast", "redis", "nchan"};
    const pub_cfg_t *cfg = &m->cfg;
    pub_result_t *t = &m->total;
    memset(t, 0, sizeof *t);
    hist_init(&t->ack);
    hist_init(&t->lag);
    double cpu_max = 0;
    for (int i = 0; i < pr->n; i++) {
        const pub_result_t *r = procs_slot(pr, i);
        t->sent += r->sent;
        t->acked += r->acked;
        t->no_receivers += r->no_receivers;
        t->reconnects += r->reconnects;
        t->cpu_s += r->cpu_s;
        if (r->t0 && (!t->t0 || r->t0 < t->t0))
            t->t0 = r->t0;
        if (r->t_send_end > t->t_send_end)
            t->t_send_end = r->t_send_end;
        if (r->t_last_ack > t->t_last_ack)
            t->t_last_ack = r->t_last_ack;
        double span = (double)((r->t_last_ack > r->t_send_end ? r->t_last_ack : r->t_send_end) -
                               r->t0) / 1e9;
        if (span > 0 && r->cpu_s / span > cpu_max)
            cpu_max = r->cpu_s / span;
        tally_merge(&t->errors, &r->errors);
        hist_merge(&t->ack, &r->ack);
        hist_merge(&t->lag, &r->lag);
    }
    double send_s = t->t_send_end > t->t0 ? (double)(t->t_send_end - t->t0) / 1e9 : 0;
    double ack_s = t->t_last_ack > t->t0 ? (double)(t->t_last_ack - t->t0) / 1e9 : 0;
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "{\"tool\":\"tc-pub\",\"target\":\"%s\",\"endpoint\":\"%s\",\"procs\":%u,"
                   "\"conns\":%u,\"users\":%u,\"tasks_per_user\":%u,\"payload\":%u,"
                   "\"offered_rate\":%.1f,\"window\":%u,\"worker_failures\":%d,",
               s_names[cfg->target], cfg->endpoint, cfg->procs, cfg->conns, cfg->users,
               cfg->tasks_per_user, cfg->payload, cfg->rate, cfg->window, bad);
    buf_printf(&b, "\"sent\":%llu,\"acked\":%llu,\"errors\":%llu,\"errors_by_code\":",
               (unsigned long long)t->sent, (unsigned long long)t->acked,
               (unsigned long long)tally_total(&t->errors));
    tally_json(&t->errors, &b);
    buf_printf(&b, ",\"no_receivers\":%llu,\"reconnects\":%llu,\"send_s\":%.3f,"
                   "\"rate_achieved\":%.1f,\"acks_per_s\":%.1f,\"ack_latency_ms\":",
               (unsigned long long)t->no_receivers, (unsigned long long)t->reconnects, send_s,
               send_s > 0 ? (double)t->sent / send_s : 0,
               ack_s > 0 ? (double)t->acked / ack_s : 0);
    hist_json(&t->ack, 1e6, &b);
    buf_append_str(&b, ",\"send_lag_ms\":");
    hist_json(&t->lag, 1e6, &b);
    buf_printf(&b, ",\"lazy_acks\":%s,\"latency_from\":\"%s\",\"wall_s\":%.3f,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,"
                   "\"cpu_pct_max_proc\":%.1f}\n",
               cfg->lazy_acks && cfg->rate > 0 ? "true" : "false",
               cfg->rate > 0 ? "scheduled send time" : "send time", wall, t->cpu_s,
               wall > 0 ? 100 * t->cpu_s / wall : 0, 100 * cpu_max);
    if (buf_ok(&b))
        fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    buf_free(&b);
    fprintf(stderr, "%s: %s: sent %llu in %.2f s (%.0f/s), acked %llu (%.0f/s), %llu errors; "
                    "ack ms p50 %.3f p99 %.3f p99.9 %.3f max %.3f; cpu %.0f%% (busiest process "
                    "%.0f%%)\n",
            PUB_PROG, s_names[cfg->target], (unsigned long long)t->sent, send_s,
            send_s > 0 ? (double)t->sent / send_s : 0, (unsigned long long)t->acked,
            ack_s > 0 ? (double)t->acked / ack_s : 0,
            (unsigned long long)tally_total(&t->errors),
            (double)hist_percentile(&t->ack, 50) / 1e6, (double)hist_percentile(&t->ack, 99) / 1e6,
            (double)hist_percentile(&t->ack, 99.9) / 1e6, (double)t->ack.max / 1e6,
            wall > 0 ? 100 * t->cpu_s / wall : 0, 100 * cpu_max);
}

int
main(int argc, char **argv)
{
    s_main_t *m = calloc(1, sizeof *m); /* large (histograms): not on the stack */
    if (!m)
        return 1;
    memcpy(m->opt, s_opts, sizeof s_opts);
    int rc = cfg_parse_main(m->opt, S_NOPTS, argc, argv, 1, PUB_PROG,
                            PUB_PROG " --target taskcast|redis|nchan [options]",
                            "Publishes task events with a \"bt\" timestamp to taskcast's broker, to\n"
                            "Redis (PUBLISH tasks:{user}) or to Nchan (POST /pub/{user}), at a\n"
                            "fixed rate or as fast as answers allow, and measures the answers.\n"
                            "One JSON object on stdout, one line on stderr.");
    if (rc < 0 && s_configure(m) != 0)
        rc = 2;
    if (rc >= 0) {
        free(m);
        return rc;
    }
    int64_t t_start = procs_now_ns();
    procs_t pr;
    char err[256];
    int bad = procs_run(&pr, (int)m->cfg.procs, sizeof(pub_result_t), s_worker, &m->cfg, NULL,
                        NULL, m->cfg.drain_s + 5, err, sizeof err);
    if (bad < 0)
        fprintf(stderr, "%s: %s\n", PUB_PROG, err);
    else
        s_report(m, &pr, bad, (double)(procs_now_ns() - t_start) / 1e9);
    procs_end(&pr);
    free(m);
    return bad ? 1 : 0;
}
