/*  load_main.c: tc-load's options, coordination and report (see load.h). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cfg.h"
#include "jwt.h"
#include "load.h"
#include "opt.h"

#define S_FDS_PER_PROC 18000 /* connections per process when --procs is not given */

static const cfg_opt_t s_opts[] = {
    {"target", NULL, "127.0.0.1:8000", "HOST:PORT of the WebSocket server (IPv4)", 0, NULL},
    {"path", NULL, "/api/v1/ws/tasks/", "URL path before the user id", 0, NULL},
    {"users", NULL, "1000", "users u0..uN-1", 0, NULL},
    {"tabs", NULL, NULL, "connections per user (conns = users * tabs)", 0, NULL},
    {"conns", NULL, NULL, "connections in total, user = index % users (default: users * tabs, "
                          "or users)", 0, NULL},
    {"ready", NULL, "hello", "hello: ready at the first hello frame; upgrade: at the 101", 0, NULL},
    {"secret", "TASKCAST_JWT_SECRET", NULL, "HS256 secret: one token per user (none: no token)",
     0, NULL},
    {"duration", NULL, "10", "seconds to hold the connections after the connect phase", 0, NULL},
    {"expect", NULL, "0", "stop once this many event frames arrived (0: at --duration)", 0, NULL},
    {"connect-rate", NULL, "0", "connects started per second (0: as fast as --inflight allows)",
     0, NULL},
    {"inflight", NULL, "512", "connects in flight (not yet ready), all processes together", 0,
     NULL},
    {"connect-timeout", NULL, "30", "seconds a connection may take to become ready", 0, NULL},
    {"src", NULL, NULL, "CIDR to bind source addresses from, e.g. 127.0.0.0/8 (past ~28k "
                        "connections to one port)", 0, NULL},
    {"procs", NULL, NULL, "worker processes (default: one per 18,000 connections)", 0, NULL},
    {"idle", NULL, NULL, "hold the connections; report connection counts only", 1, NULL},
    {"ready-file", NULL, NULL, "file to create when the connect phase is over", 0, NULL},
};
#define S_NOPTS (sizeof s_opts / sizeof s_opts[0])

typedef struct s_main {
    cfg_opt_t opt[S_NOPTS];
    load_cfg_t cfg;
    const char *ready_file;
    int64_t t_start, t_settled;
    load_result_t total;
} s_main_t;

static int
s_parse_src(const char *text, load_cfg_t *cfg)
{
    char addr[32];
    unsigned bits;
    const char *slash = strchr(text, '/');
    if (!slash || (size_t)(slash - text) >= sizeof addr || sscanf(slash + 1, "%u", &bits) != 1 ||
        bits < 8 || bits > 30)
        return -1;
    memcpy(addr, text, (size_t)(slash - text));
    addr[slash - text] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, addr, &in) != 1)
        return -1;
    uint32_t mask = bits ? ~0u << (32 - bits) : 0;
    uint64_t hosts = ((uint64_t)1 << (32 - bits)) - 2;
    /* One source address per 16,000 connections: each has ~28k ports. */
    uint64_t need = cfg->conns / 16000 + 1;
    cfg->src_base = (ntohl(in.s_addr) & mask) + 1;
    cfg->src_count = (uint32_t)(need < hosts ? need : hosts);
    return 0;
}

static int
s_configure(s_main_t *m)
{
    const cfg_opt_t *o = m->opt;
    load_cfg_t *cfg = &m->cfg;
    uint64_t users, tabs, conns, procs, expect, inflight;
    if (opt_u64(o, S_NOPTS, LOAD_PROG, "users", 1, 10000000, &users) ||
        opt_u64(o, S_NOPTS, LOAD_PROG, "tabs", 1, 100000, &tabs) ||
        opt_u64(o, S_NOPTS, LOAD_PROG, "conns", 1, 10000000, &conns) ||
        opt_u64(o, S_NOPTS, LOAD_PROG, "procs", 1, PROCS_MAX, &procs) ||
        opt_u64(o, S_NOPTS, LOAD_PROG, "expect", 0, UINT64_MAX, &expect) ||
        opt_u64(o, S_NOPTS, LOAD_PROG, "inflight", 1, 1000000, &inflight) ||
        opt_double(o, S_NOPTS, LOAD_PROG, "duration", &cfg->duration_s) ||
        opt_double(o, S_NOPTS, LOAD_PROG, "connect-rate", &cfg->connect_rate) ||
        opt_double(o, S_NOPTS, LOAD_PROG, "connect-timeout", &cfg->connect_timeout_s))
        return -1;
    cfg->users = (uint32_t)users;
    cfg->conns = (uint32_t)(conns ? conns : users * (tabs ? tabs : 1));
    cfg->procs = (uint32_t)(procs ? procs : (cfg->conns + S_FDS_PER_PROC - 1) / S_FDS_PER_PROC);
    cfg->expect = expect;
    cfg->inflight = (uint32_t)inflight;
    if (cfg->procs > cfg->conns)
        cfg->procs = cfg->conns;
    if (cfg->conns / cfg->procs + 64 > (uint32_t)procs_raise_nofile(1 << 30)) {
        fprintf(stderr, "%s: %u connections per process exceed the open-file limit (%ld): "
                        "use more --procs\n", LOAD_PROG, cfg->conns / cfg->procs,
                procs_raise_nofile(1 << 30));
        return -1;
    }
    char host[256];
    if (cfg_parse_listen(cfg_value(o, S_NOPTS, "target"), host, sizeof host, &cfg->port) != 0 ||
        strlen(host) >= sizeof cfg->host || inet_pton(AF_INET, host, &cfg->dst.sin_addr) != 1) {
        fprintf(stderr, "%s: --target must be IPV4:PORT\n", LOAD_PROG);
        return -1;
    }
    memcpy(cfg->host, host, strlen(host) + 1); /* fits: checked above */
    cfg->dst.sin_family = AF_INET;
    cfg->dst.sin_port = htons((uint16_t)cfg->port);
    cfg->path = cfg_value(o, S_NOPTS, "path");
    const char *ready = cfg_value(o, S_NOPTS, "ready");
    if (strcmp(ready, "hello") != 0 && strcmp(ready, "upgrade") != 0) {
        fprintf(stderr, "%s: --ready must be hello or upgrade\n", LOAD_PROG);
        return -1;
    }
    cfg->ready_upgrade = strcmp(ready, "upgrade") == 0;
    cfg->secret = cfg_value(o, S_NOPTS, "secret");
    if (cfg->secret && strlen(cfg->secret) < JWT_SECRET_MIN) {
        fprintf(stderr, "%s: the secret must be at least %d bytes\n", LOAD_PROG, JWT_SECRET_MIN);
        return -1;
    }
    const char *src = cfg_value(o, S_NOPTS, "src");
    if (src && s_parse_src(src, cfg) != 0) {
        fprintf(stderr, "%s: --src must be an IPv4 CIDR from /8 to /30, e.g. 127.0.0.0/8\n",
                LOAD_PROG);
        return -1;
    }
    cfg->idle = cfg_value(o, S_NOPTS, "idle") != NULL;
    m->ready_file = cfg_value(o, S_NOPTS, "ready-file");
    return 0;
}

/*  The parent's tick: ends the connect phase, then the run. */
static int
s_tick(procs_hdr_t *hdr, void *arg)
{
    s_main_t *m = arg;
    const load_cfg_t *cfg = &m->cfg;
    int64_t now = procs_now_ns();
    if (atomic_load(&hdr->phase) == LOAD_PHASE_CONNECT) {
        uint64_t settled = atomic_load(&hdr->ctr[LOAD_CTR_SETTLED]);
        /* The workers time connections out themselves; this is a backstop. */
        double limit = cfg->connect_timeout_s + 2;
        if (settled < cfg->conns && (double)(now - m->t_start) / 1e9 < limit)
            return 0;
        m->t_settled = now;
        atomic_store(&hdr->phase, LOAD_PHASE_MEASURE);
        fprintf(stderr, "%s: connect phase over: %llu of %u ready in %.2f s\n", LOAD_PROG,
                (unsigned long long)atomic_load(&hdr->ctr[LOAD_CTR_READY]), cfg->conns,
                (double)(now - m->t_start) / 1e9);
        if (m->ready_file) {
            int fd = open(m->ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd >= 0)
                close(fd);
        }
        return 0;
    }
    if (cfg->expect && atomic_load(&hdr->ctr[LOAD_CTR_FRAMES]) >= cfg->expect)
        return 1;
    return (double)(now - m->t_settled) / 1e9 >= cfg->duration_s;
}

static void
s_merge(s_main_t *m, procs_t *pr, double *cpu_max, double *cpu_measure_max)
{
    load_result_t *t = &m->total;
    memset(t, 0, sizeof *t);
    hist_init(&t->latency);
    hist_init(&t->connect);
    *cpu_max = *cpu_measure_max = 0;
    for (int i = 0; i < pr->n; i++) {
        const load_result_t *r = procs_slot(pr, i);
        t->attempted += r->attempted;
        t->established += r->established;
        t->ready += r->ready;
        t->closed_after_ready += r->closed_after_ready;
        t->frames += r->frames;
        t->other_frames += r->other_frames;
        t->stale_frames += r->stale_frames;
        t->pings += r->pings;
        t->open_at_end += r->open_at_end;
        t->cpu_s += r->cpu_s;
        t->cpu_measure_s += r->cpu_measure_s;
        if (r->wall_measure_s > t->wall_measure_s)
            t->wall_measure_s = r->wall_measure_s;
        if (r->wall_measure_s > 0 && r->cpu_measure_s / r->wall_measure_s > *cpu_measure_max)
            *cpu_measure_max = r->cpu_measure_s / r->wall_measure_s;
        if (r->cpu_s > *cpu_max)
            *cpu_max = r->cpu_s;
#define S_MIN_SET(f) if (r->f && (!t->f || r->f < t->f)) t->f = r->f
#define S_MAX_SET(f) if (r->f > t->f) t->f = r->f
        S_MIN_SET(t_first_connect);
        S_MIN_SET(t_first_frame);
        S_MAX_SET(t_last_ready);
        S_MAX_SET(t_last_frame);
        tally_merge(&t->failed, &r->failed);
        tally_merge(&t->closes, &r->closes);
        hist_merge(&t->latency, &r->latency);
        hist_merge(&t->connect, &r->connect);
    }
}

static void
s_report(s_main_t *m, procs_t *pr, int bad)
{
    double cpu_max, cpu_measure_max;
    s_merge(m, pr, &cpu_max, &cpu_measure_max);
    const load_cfg_t *cfg = &m->cfg;
    const load_result_t *t = &m->total;
    double wall = (double)(procs_now_ns() - m->t_start) / 1e9;
    double connect_s = t->t_last_ready > t->t_first_connect
                           ? (double)(t->t_last_ready - t->t_first_connect) / 1e9 : 0;
    double window = t->t_last_frame > t->t_first_frame
                        ? (double)(t->t_last_frame - t->t_first_frame) / 1e9 : 0;
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "{\"tool\":\"tc-load\",\"target\":\"%s:%d\",\"procs\":%u,\"users\":%u,"
                   "\"conns\":%u,\"ready_mode\":\"%s\",\"idle\":%s,\"worker_failures\":%d,",
               cfg->host, cfg->port, cfg->procs, cfg->users, cfg->conns,
               cfg->ready_upgrade ? "upgrade" : "hello", cfg->idle ? "true" : "false", bad);
    buf_printf(&b, "\"attempted\":%llu,\"established\":%llu,\"ready\":%llu,\"failed\":%llu,"
                   "\"failed_by_reason\":",
               (unsigned long long)t->attempted, (unsigned long long)t->established,
               (unsigned long long)t->ready, (unsigned long long)tally_total(&t->failed));
    tally_json(&t->failed, &b);
    buf_printf(&b, ",\"closed_after_ready\":%llu,\"closed_by_code\":",
               (unsigned long long)t->closed_after_ready);
    tally_json(&t->closes, &b);
    buf_printf(&b, ",\"open_at_end\":%llu,\"connect_phase_s\":%.3f,\"ready_per_s\":%.1f,"
                   "\"connect_ms\":",
               (unsigned long long)t->open_at_end, connect_s,
               connect_s > 0 ? (double)t->ready / connect_s : 0);
    hist_json(&t->connect, 1e6, &b);
    if (!cfg->idle) {
        buf_printf(&b, ",\"frames\":%llu,\"other_frames\":%llu,\"stale_frames\":%llu,"
                       "\"pings\":%llu,\"window_s\":%.3f,\"frames_per_s\":%.1f,"
                       "\"latency_ms\":",
                   (unsigned long long)t->frames, (unsigned long long)t->other_frames,
                   (unsigned long long)t->stale_frames, (unsigned long long)t->pings, window,
                   window > 0 ? (double)t->frames / window : 0);
        hist_json(&t->latency, 1e6, &b);
    }
    buf_printf(&b, ",\"wall_s\":%.3f,\"cpu_s\":%.3f,\"cpu_pct\":%.1f,\"measure_cpu_pct\":%.1f,"
                   "\"measure_cpu_pct_max_proc\":%.1f}\n",
               wall, t->cpu_s, wall > 0 ? 100 * t->cpu_s / wall : 0,
               t->wall_measure_s > 0 ? 100 * t->cpu_measure_s / t->wall_measure_s : 0,
               100 * cpu_measure_max);
    if (buf_ok(&b))
        fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    buf_free(&b);
    fprintf(stderr, "%s: %llu/%u ready in %.2f s (%.0f/s), %llu failed, %llu closed by server",
            LOAD_PROG, (unsigned long long)t->ready, cfg->conns, connect_s,
            connect_s > 0 ? (double)t->ready / connect_s : 0,
            (unsigned long long)tally_total(&t->failed), (unsigned long long)t->closed_after_ready);
    if (!cfg->idle)
        fprintf(stderr, "; %llu frames (%.0f/s); latency ms p50 %.3f p99 %.3f p99.9 %.3f max %.3f",
                (unsigned long long)t->frames, window > 0 ? (double)t->frames / window : 0,
                (double)hist_percentile(&t->latency, 50) / 1e6,
                (double)hist_percentile(&t->latency, 99) / 1e6,
                (double)hist_percentile(&t->latency, 99.9) / 1e6, (double)t->latency.max / 1e6);
    fprintf(stderr, "; cpu %.0f%% of a core (busiest process %.0f%% while measuring)\n",
            wall > 0 ? 100 * t->cpu_s / wall : 0, 100 * cpu_measure_max);
}

int
main(int argc, char **argv)
{
    s_main_t *m = calloc(1, sizeof *m); /* large (histograms): not on the stack */
    if (!m)
        return 1;
    memcpy(m->opt, s_opts, sizeof s_opts);
    int rc = cfg_parse_main(m->opt, S_NOPTS, argc, argv, 1, LOAD_PROG,
                            LOAD_PROG " --target HOST:PORT [options]",
                            "Opens WebSocket connections to a task stream server, counts how many\n"
                            "become ready, and measures the delay of every event frame from the\n"
                            "\"bt\" timestamp the publisher (tc-pub) put in it. One JSON object on\n"
                            "stdout, one line on stderr.");
    if (rc < 0 && s_configure(m) != 0)
        rc = 2;
    if (rc >= 0) {
        free(m);
        return rc;
    }
    m->t_start = m->cfg.start_ns = procs_now_ns();
    procs_t pr;
    char err[256];
    int bad = procs_run(&pr, (int)m->cfg.procs, sizeof(load_result_t), load_conn_run, &m->cfg,
                        s_tick, m, 30, err, sizeof err);
    if (bad < 0)
        fprintf(stderr, "%s: %s\n", LOAD_PROG, err);
    else
        s_report(m, &pr, bad);
    procs_end(&pr);
    free(m);
    return bad ? 1 : 0;
}
