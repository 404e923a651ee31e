#!/usr/bin/python3
"""The taskcast benchmark suite: starts the systems, runs the scenarios,
writes the results. See bench/README.md.

  bench/run.py                          every scenario, every system found
  bench/run.py --scenarios S2,S4 --systems taskcast,nchan
  bench/run.py --smoke                  seconds-long check that the suite works
                                        (taskcast only; asserts counts, never timings)
  bench/run.py --set duration=5 --set sweep_rates=5000,10000
"""
import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

from runner import procs, report, scenarios, systems  # noqa: E402
from runner.params import resolve  # noqa: E402
from runner.tools import Tools  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)

TITLES = {
    "S1": "unthrottled publisher, 1,000 connections over 1,000 users",
    "S1b": "sweep of offered rates (>= 99.9 % delivered and p99 <= 10 ms)",
    "S2": "5,000 events/s, 1,000 connections over 1,000 users",
    "S3": "idle memory per authenticated connection",
    "S4": "authenticated connects",
    "S5": "broker ingest alone, journal off and on",
    "S6": "one user with 1,000 tabs at 1,000 events/s",
    "S7": "100,000 connections through several gateway processes, events flowing",
}

# Every figure a scenario uses; --set NAME=VALUE overrides one (lists with commas).
PARAMS = {
    "users": 1000,              # S1, S1b, S2, S5: users (one connection each)
    "duration": 10,             # seconds of publishing per measured step
    "payload": 100,             # bytes of "pad" in every event
    "window": 10000,            # unanswered events at most (the unthrottled publisher)
    "settle": 5,                # seconds tc-load may take after the publisher ends
    "pause": 0.5,               # seconds between the connect phase and publishing
    "load_procs": 1,            # tc-load processes for 1,000 connections
    "pub_procs": 1,             # tc-pub processes
    "s1_pub_procs": 2,          # S1: unthrottled HTTP publishing took ~85 % of a core alone
    "src": "127.0.0.0/8",       # source addresses for many connections
    "tool_nice": 0,             # niceness of tc-load and tc-pub (e.g. -5: on time on a busy box)
    "connect_timeout": 60,      # seconds a connection may take to become ready
    "conns_per_gateway": 15000,  # taskcast: gateway processes = ceil(conns / this)
    "min_gateways": 1,          # taskcast: gateway processes at least (SO_REUSEPORT shares the port)
    "sweep_rates": [2000, 5000, 10000, 20000, 40000, 80000, 120000, 150000, 200000],
    "sweep_duration": 5,
    "s2_rate": 5000,
    "s3_sizes": [10000, 50000],
    "s3_hold": 3,               # seconds connections are held before RSS is read
    "s4_conns": 10000,
    "s4_inflight": 512,
    "s5_duration": 10,
    "s5_window": 10000,
    "s5_pub_procs": 1,
    "fsync_policies": ["default"],  # "default": journal on without --fsync; else --fsync=X
    "s6_tabs": 1000,
    "s6_rate": 1000,
    "s6_load_procs": 2,
    "s7_conns": 100000,
    "s7_rate": 10000,
    "s7_gateways": 7,
    "s7_load_procs": 6,
    "s7_inflight": 1000,
    "s7_connect_timeout": 120,
}

# The smoke: every tool and the runner's every path, seconds long, tiny.
SMOKE = {
    "users": 20, "duration": 1, "settle": 10, "pause": 0.2, "connect_timeout": 20,
    "sweep_rates": [200, 400], "sweep_duration": 1, "s2_rate": 300, "s3_sizes": [60],
    "s3_hold": 0.5, "s4_conns": 100, "s4_inflight": 16, "s5_duration": 1, "s5_window": 200,
    "s6_tabs": 30, "s6_rate": 100, "s7_conns": 200, "s7_rate": 200, "s7_gateways": 2,
    "s7_load_procs": 2, "s7_connect_timeout": 20, "conns_per_gateway": 50,
}


class Ctx:
    def __init__(self, bin_dir, outdir, params, quiet=False):
        self.bin_dir = bin_dir
        self.outdir = outdir
        self.logdir = os.path.join(outdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.p = params
        self.secret = "bench-" + secrets.token_hex(24)
        self.tools = Tools(bin_dir, self.logdir, self.secret, nice=params["tool_nice"])
        self.notes = []
        self.quiet = quiet
        self.peers_dir = os.path.join(BENCH, "peers")

    def say(self, line):
        if not self.quiet:
            print(line, flush=True)

    def note(self, line):
        self.notes.append(line)
        self.say(f"  note: {line}")


def _machine(ctx):
    def version(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            return None
    return {
        "cpus": os.cpu_count(), "kernel": platform.release(),
        "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                           if l.startswith("model name")), None),
        "mem_total_kib": next((int(l.split()[1]) for l in open("/proc/meminfo")
                               if l.startswith("MemTotal")), None),
        "taskcast": version([os.path.join(ctx.bin_dir, "taskcast-broker"), "--version"]),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "sysctls": {k: procs.read_sysctl(k) for k in (
            "net.ipv4.ip_local_port_range", "net.core.somaxconn", "net.ipv4.tcp_mem",
            "net.netfilter.nf_conntrack_max", "fs.nr_open")},
    }


def run(ctx, names, systems_wanted):
    results = {"machine": _machine(ctx), "params": ctx.p, "scenarios": {}, "notes": ctx.notes,
               "started": datetime.datetime.now().isoformat(timespec="seconds")}
    md = ["# taskcast benchmark results", "",
          f"Started {results['started']} on {results['machine']['cpus']} CPUs "
          f"({results['machine']['cpu_model']}), kernel {results['machine']['kernel']}, "
          f"load average at start {' '.join(results['machine']['loadavg_at_start'])}.", ""]
    for name in names:
        ctx.say(f"{name}: {TITLES[name]}")
        t0 = time.monotonic()
        res = scenarios.SCENARIOS[name](ctx, systems_wanted)
        res["_seconds"] = round(time.monotonic() - t0, 1)
        results["scenarios"][name] = res
        report.write_json(os.path.join(ctx.outdir, f"{name}.json"), res)
        md.append(report.markdown(name, TITLES[name], res))
        if name == "S1b":
            png = report.plot_sweep(ctx.outdir, res)
            if png:
                md.append(f"![p99 against offered rate]({png})\n")
    if ctx.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in ctx.notes] + [""]
    results["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    report.write_json(os.path.join(ctx.outdir, "results.json"), results)
    with open(os.path.join(ctx.outdir, "summary.md"), "w") as f:
        f.write("\n".join(md))
    return results


# ---------------------------------------------------------------- the smoke

def smoke(ctx):
    """Runs every scenario tiny against taskcast, then the tool checks the
    scenarios do not reach; returns the failed checks (counts only)."""
    failed = []

    def check(what, cond):
        ctx.say(f"  {'ok' if cond else 'FAILED'}: {what}")
        if not cond:
            failed.append(what)

    res = run(ctx, list(scenarios.SCENARIOS), ["taskcast"])["scenarios"]

    def e2e(name, r, exact=True):
        if "error" in r or "skipped" in r:
            check(f"{name} ran ({r.get('error') or r.get('skipped')})", False)
            return
        check(f"{name}: {r['ready']}/{r['conns']} connections ready", r["ready"] == r["conns"])
        check(f"{name}: tc-pub sent {r['sent']}, acked {r['acked']}, no error",
              r["sent"] > 0 and r["acked"] == r["sent"] and r["pub_errors"] == 0)
        if exact:
            check(f"{name}: {r['frames']} of {r['expected_frames']} event frames delivered",
                  r["frames"] == r["expected_frames"])
        else:
            check(f"{name}: {r['frames']} event frames delivered", r["frames"] > 0)
        check(f"{name}: tools exited 0", r["raw"]["load"]["exit_status"] == 0 and
              r["raw"]["pub"]["exit_status"] == 0)

    e2e("S1", res["S1"]["taskcast"], exact=False)  # unthrottled: slow consumers may be cut
    for st in res["S1b"]["taskcast"].get("steps", []):
        e2e(f"S1b @ {st['offered_rate']}/s", st)
    check("S1b: every step ran", len(res["S1b"]["taskcast"].get("steps", [])) ==
          len(ctx.p["sweep_rates"]))
    for name in ("S2", "S6", "S7"):
        e2e(name, res[name]["taskcast"])
    for name in ("S3", "S4", "S5"):
        r = res[name]["taskcast"]
        if "error" in r or "skipped" in r:
            check(f"{name} ran ({r.get('error') or r.get('skipped')})", False)
    sizes = res["S3"]["taskcast"].get("sizes", [])
    check("S3: every size ran", len(sizes) == len(ctx.p["s3_sizes"]))
    for z in sizes:
        check(f"S3: {z['ready']}/{z['conns']} idle connections ready, "
              f"{z['kib_per_conn']} KiB each", z["ready"] == z["conns"] and
              z["kib_per_conn"] is not None)
    s4 = res["S4"]["taskcast"]
    check(f"S4: {s4.get('ready')}/{ctx.p['s4_conns']} connects ready",
          s4.get("ready") == ctx.p["s4_conns"])
    configs = res["S5"]["taskcast"].get("configs", [])
    check("S5: every journal configuration ran", len(configs) == 1 + len(ctx.p["fsync_policies"]))
    for c in configs:
        for phase in ("unthrottled", "half"):
            ph = c.get(phase, {})
            check(f"S5 journal {c['journal']}, {phase}: {ph.get('acked')} of {ph.get('sent')} "
                  "acked", ph.get("sent", 0) > 0 and ph.get("acked") == ph.get("sent") and
                  not ph.get("errors"))

    # What the scenarios do not reach: a wrong token, libzmq, Redis.
    with scenarios.Running(ctx, "taskcast", "smoke.tools") as s:
        wrong = "wrong-" + secrets.token_hex(24)
        run_ = ctx.tools.load_start("smoke.wrong", s.ws_port, users=5, conns=10, duration=0,
                                    connect_timeout=10, secret=wrong)
        rep = run_.finish(30)
        check(f"wrong token: {rep['closed_by_code'].get('4401', 0)} of 10 closed with 4401, "
              f"{rep['ready']} ready", rep["closed_by_code"].get("4401") == 10 and
              rep["ready"] == 0 and rep["failed_by_reason"].get("closed_before_ready") == 10)
        pub = ctx.tools.pub("smoke.libzmq", "taskcast", s.pub_endpoint, users=10, rate=0,
                            count=300, window=50, proto="libzmq")
        check(f"tc-pub --proto libzmq: {pub['acked']} of 300 acked",
              pub["acked"] == 300 and pub["errors"] == 0)
    if shutil.which("redis-server"):
        port = procs.free_ports(1)[0]
        r = procs.Proc("smoke.redis", ["redis-server", "--port", port, "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"],
                       os.path.join(ctx.logdir, "smoke.redis.log"))
        try:
            t_end = time.monotonic() + 10
            while not procs.port_open(port) and time.monotonic() < t_end:
                time.sleep(0.05)
            pub = ctx.tools.pub("smoke.redis", "redis", f"127.0.0.1:{port}", users=10,
                                rate=1000, count=300, window=50)
            check(f"tc-pub --target redis: {pub['acked']} of 300 answered, "
                  f"{pub['no_receivers']} with no subscriber",
                  pub["acked"] == 300 and pub["no_receivers"] == 300)
        finally:
            r.stop()
    else:
        ctx.say("  skipped: tc-pub --target redis (no redis-server here)")
    # A sanitizer build reports in the logs even where counts come out right.
    for f in sorted(os.listdir(ctx.logdir)):
        with open(os.path.join(ctx.logdir, f), errors="replace") as fh:
            text = fh.read()
        for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            if mark in text:
                check(f"no sanitizer report in logs/{f} ({mark})", False)
    for n in ctx.notes:
        if "exited with" in n:
            ctx.say(f"  (server exit statuses are reported, not asserted: {n})")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default=",".join(scenarios.SCENARIOS),
                    help="comma-separated, from " + ", ".join(scenarios.SCENARIOS))
    ap.add_argument("--systems", default=",".join(systems.SYSTEMS),
                    help="comma-separated, from " + ", ".join(systems.SYSTEMS) +
                    " (a peer without bench/peers/NAME/start.sh is skipped)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                    help="the CMake build directory (its bin/ has every program)")
    ap.add_argument("--out", help="results directory (default bench/results/<timestamp>)")
    ap.add_argument("--peers-dir", default=os.path.join(BENCH, "peers"),
                    help="where the peers' NAME/start.sh are (default bench/peers)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a parameter: " + ", ".join(PARAMS))
    ap.add_argument("--smoke", action="store_true",
                    help="seconds-long run of every tool and scenario against taskcast")
    args = ap.parse_args()

    params = resolve(ap, PARAMS, SMOKE if args.smoke else None, args.set)
    names = [n for n in args.scenarios.split(",") if n]
    for n in names:
        if n not in scenarios.SCENARIOS:
            ap.error(f"unknown scenario {n}")
    wanted = [s for s in args.systems.split(",") if s]

    bin_dir = os.path.join(os.path.abspath(args.build_dir), "bin")
    if args.smoke:
        outdir = args.out or tempfile.mkdtemp(prefix="taskcast-bench-smoke-")
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        outdir = args.out or os.path.join(BENCH, "results", stamp)
    os.makedirs(outdir, exist_ok=True)
    ctx = Ctx(bin_dir, outdir, params)
    ctx.peers_dir = os.path.abspath(args.peers_dir)
    print(f"results in {outdir}", flush=True)
    if args.smoke:
        failed = smoke(ctx)
        if failed:
            print(f"smoke FAILED ({len(failed)} checks); logs in {outdir}/logs", flush=True)
            return 1
        if not args.out:
            shutil.rmtree(outdir, ignore_errors=True)
        print("smoke passed", flush=True)
        return 0
    run(ctx, names, wanted)
    print(f"done: {os.path.join(outdir, 'summary.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
