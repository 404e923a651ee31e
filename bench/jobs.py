#!/usr/bin/python3
"""The job benchmark (issue 6): trivial jobs submitted, dispatched, run and
reported end to end, on taskcast (broker + taskcast-worker with kept
children) and on Celery + Redis, in the same run. See bench/README.md.

  bench/jobs.py                        J1 and J2, taskcast and celery
  bench/jobs.py --systems taskcast --set j1_count=50000
  bench/jobs.py --smoke                seconds long: counts, never timings
                                       (Celery is skipped where it is not installed,
                                       unless TASKCAST_REQUIRE_CELERY=1)

J1  jobs/s: --set j1_count jobs, as fast as they finish (taskcast: at most
    j1_window unfinished; Celery: all submitted at once), per pool
    concurrency in j1_concurrency.
J2  submit -> running p50/p99 at j2_rate jobs/s for j2_duration seconds
    (Celery also at celery_j2_rate, which it can sustain).

Every process's CPU (% of one core, over the measured window) is reported:
taskcast-broker, taskcast-worker and its children, tc-jobs; redis-server,
the Celery worker and its pool processes, the Celery client.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

from runner import procs, report  # noqa: E402
from runner.params import resolve  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
CELERY_DIR = os.path.join(BENCH, "peers", "celery")
PY = "/usr/bin/python3"

PARAMS = {
    "j1_count": 20000,
    "j1_window": 1000,
    "j1_concurrency": [2, 4],
    "j2_rate": 1000,
    "j2_duration": 10,
    "j2_concurrency": 2,
    "celery_j1_count": 5000,      # Celery is far slower: fewer jobs, same measure
    "celery_j2_rate": 500,        # J2 for Celery also at a rate it sustains
    "warmup": 500,                # jobs run before each measured step (not measured)
    # taskcast: with a journal (--fsync batch, batch:500, interval) and without
    "variants": ["journal", "journal-delay", "interval", "memory"],
    "timeout": 120,
}
SMOKE = {"j1_count": 300, "j1_concurrency": [2], "j2_rate": 200, "j2_duration": 1,
         "celery_j2_rate": 100,
         "celery_j1_count": 100, "warmup": 20, "variants": ["journal"], "timeout": 60}


class Skip(Exception):
    pass


def _wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout} s")


def _json_of(out, what):
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{what} printed no report")


# The broker's options per variant, besides --journal (memory: none).
VARIANT_ARGS = {"journal": [], "journal-delay": ["--fsync=batch:500"],
                "interval": ["--fsync=interval"]}


class Taskcast:
    name = "taskcast"

    def __init__(self, ctx, variant, concurrency):
        self.ctx = ctx
        self.procs = []
        b = ctx.bin_dir
        for exe in ("taskcast-broker", "taskcast-worker", "tc-jobs"):
            if not os.access(os.path.join(b, exe), os.X_OK):
                raise Skip(f"{b}/{exe} is missing: build first")
        ingest, fanout, sync, jobs = procs.free_ports(4)
        self.jobs_ep = f"tcp://127.0.0.1:{jobs}"
        self.fanout_ep = f"tcp://127.0.0.1:{fanout}"
        self.sync_ep = f"tcp://127.0.0.1:{sync}"
        args = [os.path.join(b, "taskcast-broker"), f"--ingest=tcp://127.0.0.1:{ingest}",
                f"--fanout={self.fanout_ep}", f"--sync=tcp://127.0.0.1:{sync}",
                f"--jobs={self.jobs_ep}", "--log-level=warn", "--max-queued=1000000"]
        self.dir = None
        if variant != "memory":
            self.dir = tempfile.mkdtemp(prefix="tc-jobs-bench-")
            args.append(f"--journal={self.dir}/journal")
            args += VARIANT_ARGS[variant]
        label = f"{ctx.label}.taskcast-{variant}-c{concurrency}"
        self.broker = self._start(f"{label}.broker", args)
        _wait(lambda: procs.port_open(jobs), 15, "taskcast-broker did not listen")
        self.worker = self._start(f"{label}.worker", [
            os.path.join(b, "taskcast-worker"), "--config", "bench/jobs/pool.conf",
            f"--jobs={self.jobs_ep}", f"--concurrency={concurrency}", "--log-level=warn",
            "--name=bench-pool"])
        self.label = label

    def _start(self, label, argv):
        p = procs.Proc(label, argv, os.path.join(self.ctx.logdir, f"{label}.log"), cwd=REPO)
        self.procs.append(p)
        return p

    def roots(self):
        return [p.pid for p in self.procs]

    def run(self, tag, count, rate=0):
        argv = [os.path.join(self.ctx.bin_dir, "tc-jobs"), f"--jobs={self.jobs_ep}",
                f"--fanout={self.fanout_ep}", "--kind=trivial", f"--count={count}",
                f"--rate={rate}", f"--window={self.ctx.p['j1_window'] if not rate else 100000}",
                f"--prefix={tag}", f"--timeout={self.ctx.p['timeout']}"]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=self.ctx.p["timeout"] * 3)
        with open(os.path.join(self.ctx.logdir, f"{self.label}.{tag}.tool.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        if r.returncode != 0:
            raise RuntimeError(f"tc-jobs failed: {r.stderr.strip()[-300:]}")
        return _json_of(r.stdout, "tc-jobs")

    def fsyncs(self):
        """The broker's journal_fsyncs counter (taskcast-cli stats), or None
        without a journal."""
        r = subprocess.run([os.path.join(self.ctx.bin_dir, "taskcast-cli"), "stats",
                            f"--sync={self.sync_ep}", "--log-level=error"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"taskcast-cli stats failed: {r.stderr.strip()[-300:]}")
        return json.loads(r.stdout).get("journal_fsyncs")

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class Celery:
    name = "celery"

    def __init__(self, ctx, variant, concurrency):
        self.ctx = ctx
        self.procs = []
        if not shutil.which("redis-server"):
            raise Skip("redis-server is missing (apt-get install redis-server)")
        if subprocess.run([PY, "-c", "import celery, redis"], capture_output=True).returncode:
            raise Skip("python3-celery is missing (apt-get install python3-celery)")
        (port,) = procs.free_ports(1)
        self.url = f"redis://127.0.0.1:{port}/0"
        label = f"{ctx.label}.celery-c{concurrency}"
        self.label = label
        self.redis = self._start(f"{label}.redis", [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"], None)
        _wait(lambda: procs.port_open(port), 15, "redis-server did not listen")
        env = dict(os.environ, CELERY_BROKER=self.url, PYTHONDONTWRITEBYTECODE="1")
        self.env = env
        self.worker = self._start(f"{label}.worker", [
            PY, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork",
            "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", "WARNING"], env)

    def _start(self, label, argv, env):
        p = procs.Proc(label, argv, os.path.join(self.ctx.logdir, f"{label}.log"), env=env,
                       cwd=CELERY_DIR)
        self.procs.append(p)
        return p

    def roots(self):
        return [p.pid for p in self.procs]

    def run(self, tag, count, rate=0):
        argv = [PY, os.path.join(CELERY_DIR, "client.py"), f"--count={count}",
                f"--rate={rate}", f"--timeout={self.ctx.p['timeout'] * 3}"]
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=CELERY_DIR,
                           timeout=self.ctx.p["timeout"] * 4)
        with open(os.path.join(self.ctx.logdir, f"{self.label}.{tag}.tool.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        if not r.stdout.strip():
            raise RuntimeError(f"celery client failed: {r.stderr.strip()[-300:]}")
        return _json_of(r.stdout, "the celery client")

    def stop(self):
        for p in reversed(self.procs):
            p.stop(timeout=30)


SYSTEMS = {"taskcast": Taskcast, "celery": Celery}


class Ctx:
    def __init__(self, bin_dir, outdir, params):
        self.bin_dir = bin_dir
        self.outdir = outdir
        self.logdir = os.path.join(outdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.p = params
        self.label = "jobs"

    def say(self, line):
        print(line, flush=True)


def _cpu_rows(before, after, tool):
    rows, total = procs.usage(before, after)
    merged = {}
    for r in rows:
        m = merged.setdefault(r["name"], {"name": r["name"], "procs": 0, "cpu_pct": 0.0})
        m["procs"] += 1
        m["cpu_pct"] = round(m["cpu_pct"] + r["cpu_pct"], 1)
    out = sorted(merged.values(), key=lambda m: -m["cpu_pct"])
    out.append({"name": tool.get("tool", "client"), "procs": 1, "cpu_pct": tool.get("cpu_pct", 0)})
    return out, round(total["cpu_pct"] + tool.get("cpu_pct", 0), 1)


def step(ctx, sysobj, tag, count, rate=0):
    """One measured run: warm-up, then count jobs; CPU of every process."""
    if ctx.p["warmup"]:
        sysobj.run(f"{tag}w", ctx.p["warmup"])
    syncs = getattr(sysobj, "fsyncs", None)
    s0 = syncs() if syncs else None
    before = procs.sample(sysobj.roots())
    r = sysobj.run(tag, count, rate)
    after = procs.sample(sysobj.roots())
    r["cpu"], r["cpu_total_pct"] = _cpu_rows(before, after, r)
    s1 = syncs() if syncs else None
    if s0 is not None and s1 is not None:
        r["fsyncs"] = s1 - s0  # the broker's journal syncs during the step
    return r


def _measure(ctx, cls, variant, conc, tag, count, rate=0):
    """One step on a freshly started system: its result, or {"error": ...};
    Skip goes up (the system cannot run here)."""
    s = None
    try:
        s = cls(ctx, variant, conc)
        r = step(ctx, s, tag, count, rate)
        r["concurrency"] = conc
        return r
    except Skip:
        raise
    except Exception as e:  # noqa: BLE001 (the report says what failed)
        ctx.say(f"   failed: {e}")
        return {"concurrency": conc, "offered_rate": rate, "error": str(e)}
    finally:
        if s:
            s.stop()


def run_system(ctx, name, results):
    cls = SYSTEMS[name]
    variants = ctx.p["variants"] if name == "taskcast" else ["redis"]
    for variant in variants:
        key = name if name == "celery" else f"taskcast-{variant}"
        res = results.setdefault(key, {"j1": [], "j2": []})
        try:
            for conc in ctx.p["j1_concurrency"]:
                count = ctx.p["celery_j1_count"] if name == "celery" else ctx.p["j1_count"]
                ctx.say(f"== J1 {key} concurrency {conc}: {count} jobs")
                r = _measure(ctx, cls, variant, conc, f"j1c{conc}", count)
                res["j1"].append(r)
                if "error" not in r:
                    ctx.say(f"   {r['jobs_per_s']:.0f} jobs/s, {r['succeeded']}/{count} "
                            f"succeeded, cpu {r['cpu_total_pct']}%")
            conc = ctx.p["j2_concurrency"]
            rates = [ctx.p["j2_rate"]]
            if name == "celery" and ctx.p["celery_j2_rate"] not in rates:
                rates.append(ctx.p["celery_j2_rate"])  # one it can sustain, too
            for rate in rates:
                count = int(rate * ctx.p["j2_duration"])
                ctx.say(f"== J2 {key}: {count} jobs at {rate}/s, concurrency {conc}")
                r = _measure(ctx, cls, variant, conc, f"j2r{rate}", count, rate)
                res["j2"].append(r)
                if "error" not in r:
                    ctx.say(f"   submit->running p50 {r['to_running_ms'].get('p50')} ms, "
                            f"p99 {r['to_running_ms'].get('p99')} ms")
        except Skip as e:
            res["skipped"] = str(e)
            ctx.say(f"   skipped: {e}")
            return


def _cpu_text(r):
    text = ", ".join(f"{c['name']}{'x' + str(c['procs']) if c['procs'] > 1 else ''} "
                     f"{c['cpu_pct']:.0f}%" for c in r.get("cpu", []))
    text += f" (total {r['cpu_total_pct']:.0f}%)"
    if "fsyncs" in r:
        text += f"; {r['fsyncs']:,} journal syncs"
    return text


def summary(results, params):
    lines = ["# Jobs benchmark", ""]
    celery = {r["concurrency"]: r for r in results.get("celery", {}).get("j1", [])
              if "jobs_per_s" in r}
    lines += ["## J1: trivial jobs end to end, as fast as they finish", "",
              "| system | concurrency | jobs | succeeded | jobs/s | x Celery | submit->done p50 / p99 ms | CPU (% of one core) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, res in results.items():
        if res.get("skipped"):
            lines.append(f"| {key} | | | | skipped: {res['skipped']} | | | |")
        for r in res.get("j1", []):
            if "error" in r:
                lines.append(f"| {key} | {r['concurrency']} | | | failed: {r['error']} | | | |")
                continue
            base = celery.get(r["concurrency"])
            ratio = (f"{r['jobs_per_s'] / base['jobs_per_s']:.1f}x"
                     if base and base["jobs_per_s"] else "")
            d = r["to_done_ms"]
            lines.append(f"| {key} | {r['concurrency']} | {r['submitted']} | {r['succeeded']} | "
                         f"{r['jobs_per_s']:,.0f} | {ratio} | {d.get('p50', 0):.1f} / "
                         f"{d.get('p99', 0):.1f} | {_cpu_text(r)} |")
    lines += ["", "## J2: submit -> running at a fixed rate", "",
              "| system | jobs/s | jobs | succeeded | submit->running p50 / p99 / p99.9 ms | submit->done p50 / p99 ms | CPU (% of one core) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, res in results.items():
        for r in res.get("j2") or []:
            if "error" in r:
                lines.append(f"| {key} | {r['offered_rate']:.0f} | | | failed: {r['error']} | | |")
                continue
            t, d = r["to_running_ms"], r["to_done_ms"]
            lines.append(f"| {key} | {r['offered_rate']:.0f} | {r['submitted']} | {r['succeeded']} | {t.get('p50', 0):.2f} / "
                         f"{t.get('p99', 0):.2f} / {t.get('p999', 0):.2f} | {d.get('p50', 0):.2f} / "
                         f"{d.get('p99', 0):.2f} | {_cpu_text(r)} |")
    lines += ["", "taskcast's submit -> running is the time until tc-jobs, subscribed to the "
              "broker's fanout, receives the task's `running` event; Celery's is the time "
              "until the task itself starts (it returns time.monotonic_ns()), which does not "
              "include reporting it.", ""]
    return "\n".join(lines)


def plot(outdir, results):
    """jobs_per_s.png: J1 jobs/s per system and concurrency (log scale),
    with the 10,000/s target. Returns the file name, or None."""
    rows = [(key, r["concurrency"], r["jobs_per_s"]) for key, res in results.items()
            for r in res.get("j1", []) if r.get("jobs_per_s")]
    if not rows or not shutil.which("gnuplot"):
        return None
    with open(os.path.join(outdir, "jobs_per_s.dat"), "w") as f:
        f.write("# label jobs_per_s\n")
        for key, conc, rate in rows:
            f.write(f'"{key} c{conc}" {rate}\n')
    script = ["set terminal pngcairo size 900,520 noenhanced",
              "set output 'jobs_per_s.png'",
              "set title 'trivial jobs end to end per second (J1), kept children, 2 cores'",
              "set ylabel 'jobs/s (log scale)'", "set logscale y", "set yrange [100:*]",
              "set grid ytics", "set style fill solid 0.8", "set boxwidth 0.6",
              "set xtics rotate by -30", "unset key",
              "plot 'jobs_per_s.dat' using 0:2:xtic(1) with boxes lc rgb '#1b7837', "
              "10000 dashtype 2 lc rgb 'gray' title 'target 10,000/s'"]
    with open(os.path.join(outdir, "jobs_per_s.gp"), "w") as f:
        f.write("\n".join(script) + "\n")
    r = subprocess.run(["gnuplot", "jobs_per_s.gp"], cwd=outdir, capture_output=True, text=True)
    return "jobs_per_s.png" if r.returncode == 0 else None


def smoke_check(results):
    bad = []
    for key, res in results.items():
        if res.get("skipped"):
            if key.startswith("taskcast") or os.environ.get("TASKCAST_REQUIRE_CELERY") == "1":
                bad.append(f"{key} skipped: {res['skipped']}")
            continue
        runs = res.get("j1", []) + (res.get("j2") or [])
        if not runs:
            bad.append(f"{key}: nothing ran")
        for r in runs:
            if "error" in r:
                bad.append(f"{key}: {r['error']}")
            elif r["succeeded"] != r["submitted"] or r.get("unfinished"):
                bad.append(f"{key}: {r['succeeded']} of {r['submitted']} succeeded")
            elif key.startswith("taskcast") and r.get("running_seen") != r["submitted"]:
                bad.append(f"{key}: running seen for {r.get('running_seen')} of "
                           f"{r['submitted']}")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--systems", default="taskcast,celery")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", help="results directory [bench/results/<time>-jobs]")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    a = ap.parse_args()
    params = resolve(ap, PARAMS, SMOKE if a.smoke else None, a.set)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = a.out or (tempfile.mkdtemp(prefix="tc-jobs-smoke-") if a.smoke else
                       os.path.join(BENCH, "results", f"{stamp}-jobs"))
    ctx = Ctx(os.path.join(os.path.abspath(a.build_dir), "bin"), outdir, params)
    names = [n for n in a.systems.split(",") if n]
    for n in names:
        if n not in SYSTEMS:
            ap.error(f"--systems: {n} unknown (known: {', '.join(SYSTEMS)})")
    results = {}
    for n in names:
        run_system(ctx, n, results)
    try:  # the commit measured, where git is there to say it
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = ""
    report.write_json(os.path.join(outdir, "jobs.json"),
                      {"params": params, "commit": rev, "results": results,
                       "nproc": os.cpu_count(), "load_before": os.getloadavg()})
    if not a.smoke:
        plot(outdir, results)
    text = summary(results, params)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"results: {outdir}")
    if a.smoke:
        bad = smoke_check(results)
        for b in bad:
            print(f"SMOKE FAILED: {b}", file=sys.stderr)
        if not bad and not a.out:
            shutil.rmtree(outdir, ignore_errors=True)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
