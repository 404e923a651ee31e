"""The scenarios of issue 5 (S1..S7). Each one runs every system it is given,
each started fresh, and returns one result per system (or why it was
skipped). Every wait is bounded. Parameters come from ctx.p (run.py).

An end-to-end step: tc-load connects (users x tabs connections) and reports
its connect phase over; the system's processes and tc-load's are sampled;
tc-pub publishes (a fixed --count at a fixed rate, or for a duration when
unthrottled); they are sampled again (the CPU window is the publishing
time); tc-load ends at the expected frame count, or `settle` seconds after
the publisher, and reports.
"""
import math
import os
import re
import shutil
import time

from . import procs, systems
from .tools import ToolError


def _cpu(before, after):
    return procs.usage(before, after)


def _parts_cpu(sysobj, before, after):
    """CPU % and RSS per named part (broker, gateways; a peer's listed
    processes by name: redis, nginx-worker, ...), each its own processes
    only (the system's total is over the whole tree)."""
    rows, _ = procs.usage(before, after)
    by_pid = {r["pid"]: r for r in rows}
    out = {}
    for part, pids in sysobj.parts().items():
        out[part] = {"cpu_pct": round(sum(by_pid[p]["cpu_pct"] for p in pids if p in by_pid), 1),
                     "rss_kib": sum(by_pid[p]["rss_kib"] for p in pids if p in by_pid)}
    return out


def e2e_step(ctx, sysobj, label, users, tabs, rate, duration, load_procs=None, pub_procs=1,
             src=None, connect_timeout=30, inflight=512, window=None):
    """One measured run through a started system; returns its figures."""
    p = ctx.p
    conns = users * tabs
    count = int(round(rate * duration)) if rate > 0 else 0
    load = ctx.tools.load_start(label, sysobj.ws_port, users=users, conns=conns,
                                ready=sysobj.ready_mode, duration=duration + 600,
                                expect=count * tabs, procs_n=load_procs, src=src,
                                inflight=inflight, connect_timeout=connect_timeout)
    try:
        if not load.wait_ready(connect_timeout + 15):
            raise ToolError(f"tc-load did not finish connecting: {load.label}")
        time.sleep(p["pause"])
        s_before, l_before = procs.sample(sysobj.roots()), procs.sample([load.pid])
        pub = ctx.tools.pub(label, sysobj.pub_target, sysobj.pub_endpoint, users=users,
                            rate=rate, count=count or None, duration=None if count else duration,
                            window=window or p["window"], payload=p["payload"], procs_n=pub_procs,
                            lazy_acks=rate > 0)
        s_after, l_after = procs.sample(sysobj.roots()), procs.sample([load.pid])
        rep = load.finish(p["settle"])
    finally:
        load.kill()
    srv_rows, srv = _cpu(s_before, s_after)
    load_rows, load_total = _cpu(l_before, l_after)
    expected = pub["sent"] * tabs
    lat = rep.get("latency_ms", {})
    res = {
        "offered_rate": rate, "users": users, "tabs": tabs, "conns": conns,
        "ready": rep["ready"], "failed": rep["failed"], "closed_by_code": rep["closed_by_code"],
        "sent": pub["sent"], "acked": pub["acked"], "pub_errors": pub["errors"],
        "rate_achieved": pub["rate_achieved"], "expected_frames": expected,
        "frames": rep.get("frames", 0), "stale_frames": rep.get("stale_frames", 0),
        "delivered_pct": round(100.0 * rep.get("frames", 0) / expected, 3) if expected else 0.0,
        "frames_per_s": rep.get("frames_per_s", 0), "latency_ms": lat,
        "server_cpu_pct": srv["cpu_pct"], "server_rss_mib": round(srv["rss_kib"] / 1024, 1),
        "parts": _parts_cpu(sysobj, s_before, s_after), "server_procs": srv_rows,
        "window_s": srv["window_s"],
        "load_cpu_pct": load_total["cpu_pct"],
        "load_cpu_pct_max_proc": max([r["cpu_pct"] for r in load_rows] or [0]),
        "pub_cpu_pct": pub["cpu_pct"], "pub_cpu_pct_max_proc": pub["cpu_pct_max_proc"],
        "pub_send_lag_p99_ms": pub.get("send_lag_ms", {}).get("p99", 0),
        "raw": {"load": rep, "pub": pub},
    }
    res["tools_ok"] = tools_ok(res)
    return res


def tools_ok(res):
    """The load tools were not the bottleneck: no tool process above 80 %
    of a core, and the publisher kept its schedule (send lag p99 < 1 ms)."""
    return (res["load_cpu_pct_max_proc"] < 80 and res["pub_cpu_pct_max_proc"] < 80 and
            res["pub_send_lag_p99_ms"] < 1.0)


def passes(res, p99_ms=10.0, delivered_pct=99.9):
    return (res["delivered_pct"] >= delivered_pct and
            res["latency_ms"].get("p99", math.inf) <= p99_ms)


def _each_system(ctx, names, fn):
    """Runs fn(name) for every system, catching what makes one unrunnable."""
    out = {}
    for name in names:
        try:
            out[name] = fn(name)
        except systems.Skip as e:
            ctx.say(f"  {name}: skipped: {e}")
            out[name] = {"skipped": str(e)}
        except (systems.StartError, ToolError) as e:
            ctx.say(f"  {name}: failed: {e}")
            out[name] = {"error": str(e)}
    return out


class Running:
    """with Running(ctx, name, label, ...) as s: a system started fresh and
    stopped at the end (exit statuses are recorded)."""

    def __init__(self, ctx, name, label, **kw):
        self.ctx, self.name, self.label, self.kw = ctx, name, label, kw

    def __enter__(self):
        self.sys = systems.start(self.ctx, self.name, self.label, **self.kw)
        return self.sys

    def __exit__(self, *exc):
        statuses = self.sys.stop()
        bad = {k: v for k, v in statuses.items() if v not in (0, None)}
        if bad:
            self.ctx.note(f"{self.label}: processes exited with {bad} at stop")
        return False


def _gateways_for(ctx, conns):
    """taskcast gateway processes for this many connections (each < 20k fds),
    at least min_gateways (one per core is how taskcast is deployed)."""
    return max(ctx.p["min_gateways"], math.ceil(conns / ctx.p["conns_per_gateway"]))


# ------------------------------------------------------------------ scenarios

def s1_unthrottled(ctx, names):
    """S1: the publisher as fast as answers allow (--window in flight), 1,000
    connections over 1,000 users: what is delivered per second."""
    p = ctx.p

    def one(name):
        with Running(ctx, name, f"s1.{name}", gateways=_gateways_for(ctx, p["users"])) as s:
            r = e2e_step(ctx, s, f"s1.{name}", p["users"], 1, 0, p["duration"],
                         load_procs=p["load_procs"], pub_procs=p["s1_pub_procs"])
        ctx.say(f"  {name}: sent {r['rate_achieved']:.0f}/s, delivered {r['frames_per_s']:.0f}"
                f" frames/s ({r['delivered_pct']}%), server CPU {r['server_cpu_pct']}%")
        return r
    return _each_system(ctx, names, one)


def s1b_sweep(ctx, names):
    """S1b: offered rates in turn; the highest with >= 99.9 % delivered and
    p99 <= 10 ms. A system stops after two failing steps in a row; after a
    failing step it is restarted (a backlog must not leak into the next)."""
    p = ctx.p

    def one(name):
        steps, best, fails = [], None, 0
        lp, pp = p["load_procs"], p["pub_procs"]
        s = systems.start(ctx, name, f"s1b.{name}", gateways=_gateways_for(ctx, p["users"]))
        try:
            for rate in p["sweep_rates"]:
                label = f"s1b.{name}.{rate}"
                r = e2e_step(ctx, s, label, p["users"], 1, rate, p["sweep_duration"],
                             load_procs=lp, pub_procs=pp)
                r["pass"] = passes(r)
                r["load_procs"], r["pub_procs"] = lp, pp
                # A tool process near a core: more processes from the next step on.
                if r["load_cpu_pct_max_proc"] > 70 and lp < 8:
                    lp *= 2
                if r["pub_cpu_pct_max_proc"] > 70 and pp < 8:
                    pp *= 2
                steps.append(r)
                ctx.say(f"  {name} @ {rate}/s: delivered {r['delivered_pct']}%, p99 "
                        f"{r['latency_ms'].get('p99', 'n/a')} ms -> "
                        f"{'pass' if r['pass'] else 'FAIL'}")
                if r["pass"]:
                    best, fails = rate, 0
                    continue
                fails += 1
                if fails >= 2:
                    break
                s.stop()
                s = systems.start(ctx, name, f"{label}.restart")
        finally:
            s.stop()
        return {"best_rate": best, "steps": steps}
    return _each_system(ctx, names, one)


def s2_moderate(ctx, names):
    """S2: 5,000 events/s, 1,000 connections over 1,000 users."""
    p = ctx.p

    def one(name):
        with Running(ctx, name, f"s2.{name}", gateways=_gateways_for(ctx, p["users"])) as s:
            r = e2e_step(ctx, s, f"s2.{name}", p["users"], 1, p["s2_rate"], p["duration"],
                         load_procs=p["load_procs"])
        lat = r["latency_ms"]
        ctx.say(f"  {name}: p50 {lat.get('p50')} p99 {lat.get('p99')} p99.9 {lat.get('p999')} "
                f"ms, server CPU {r['server_cpu_pct']}%")
        return r
    return _each_system(ctx, names, one)


def s3_idle_memory(ctx, names):
    """S3: RSS of the servers before and after N idle authenticated
    connections (N users, one connection each); KiB per connection."""
    p = ctx.p

    def one(name):
        out = []
        for conns in p["s3_sizes"]:
            gws = _gateways_for(ctx, conns)
            label = f"s3.{name}.{conns}"
            with Running(ctx, name, label, gateways=gws) as s:
                time.sleep(p["pause"])
                before = procs.sample(s.roots())
                load = ctx.tools.load_start(label, s.ws_port, users=conns, conns=conns,
                                            ready=s.ready_mode, idle=True, src=p["src"],
                                            connect_timeout=p["connect_timeout"])
                try:
                    load.wait_ready(p["connect_timeout"] + 15)
                    time.sleep(p["s3_hold"])  # let lazily allocated state settle
                    after = procs.sample(s.roots())
                    rep = load.finish(0)
                finally:
                    load.kill()
                parts0, parts1 = _parts_of(s, before), _parts_of(s, after)
            rss0, rss1 = _rss(before), _rss(after)
            ready = rep["ready"]
            r = {"conns": conns, "processes": gws if name == "taskcast" else max(2, gws),
                 "ready": ready, "failed": rep["failed"], "failed_by_reason":
                 rep["failed_by_reason"], "rss_before_mib": round(rss0 / 1024, 1),
                 "rss_after_mib": round(rss1 / 1024, 1),
                 "kib_per_conn": round((rss1 - rss0) / ready, 2) if ready else None,
                 "parts_kib_per_conn": {k: round((parts1[k] - parts0[k]) / ready, 2) if ready
                                        else None for k in parts1},
                 "raw": {"load": rep}}
            ctx.say(f"  {name} @ {conns}: {ready} ready, {r['kib_per_conn']} KiB per connection")
            out.append(r)
        return {"sizes": out}
    return _each_system(ctx, names, one)


def _rss(snap):
    return sum(st[2] for st in snap[1].values())


def _parts_of(sysobj, snap):
    _, pids = snap
    return {part: sum(pids[q][2] for q in listed if q in pids)
            for part, listed in sysobj.parts().items()}


def s4_connects(ctx, names):
    """S4: N authenticated connects (N users) as fast as the server takes
    them (a bounded number in flight): ready connections per second."""
    p = ctx.p

    def one(name):
        conns = p["s4_conns"]
        label = f"s4.{name}"
        with Running(ctx, name, label, gateways=_gateways_for(ctx, conns)) as s:
            time.sleep(p["pause"])
            before = procs.sample(s.roots())
            load = ctx.tools.load_start(label, s.ws_port, users=conns, conns=conns,
                                        ready=s.ready_mode, idle=True, duration=0, src=p["src"],
                                        inflight=p["s4_inflight"],
                                        connect_timeout=p["connect_timeout"])
            try:
                load.wait_ready(p["connect_timeout"] + 15)
                after = procs.sample(s.roots())
                rep = load.finish(30)
            finally:
                load.kill()
        _, srv = procs.usage(before, after)
        r = {"conns": conns, "ready": rep["ready"], "failed": rep["failed"],
             "failed_by_reason": rep["failed_by_reason"], "ready_per_s": rep["ready_per_s"],
             "connect_phase_s": rep["connect_phase_s"], "connect_ms": rep["connect_ms"],
             "server_cpu_pct": srv["cpu_pct"], "load_cpu_pct": rep["cpu_pct"], "raw": rep}
        ctx.say(f"  {name}: {rep['ready']}/{conns} ready, {rep['ready_per_s']:.0f}/s")
        return r
    return _each_system(ctx, names, one)


def s5_ingest(ctx, names):
    """S5: taskcast's broker alone: acknowledged events/s with the publisher
    unthrottled (--window in flight), then the ack latency at half that rate
    on a fixed schedule; journal off, then on with each fsync policy."""
    p = ctx.p
    if "taskcast" not in names:
        return {}
    configs = [("off", [])]
    jdir = os.path.join(ctx.outdir, "journal")
    for policy in p["fsync_policies"]:
        if policy == "default":
            configs.append(("on", []))
        elif systems.broker_supports(ctx, "--fsync"):
            configs.append((f"on, fsync {policy}", [f"--fsync={policy}"]))
        else:
            ctx.note(f"S5: fsync policy '{policy}' skipped: this taskcast-broker has no --fsync")
    out = []
    for title, extra in configs:
        label = f"s5.{len(out)}"
        args = list(extra)
        journal = None
        if title != "off":
            os.makedirs(jdir, exist_ok=True)
            journal = os.path.join(jdir, f"{label}.journal")
            args.append(f"--journal={journal}")
        try:
            r = _s5_one(ctx, label, title, args, journal)
        except (systems.StartError, ToolError) as e:
            ctx.say(f"  journal {title}: failed: {e}")
            r = {"journal": title, "error": str(e)}
        out.append(r)
    shutil.rmtree(jdir, ignore_errors=True)
    return {"taskcast": {"configs": out}}


def _s5_one(ctx, label, title, args, journal):
    p = ctx.p
    res = {"journal": title, "broker_args": [a for a in args if not a.startswith("--journal=")]}
    for phase in ("unthrottled", "half"):
        # At info level the broker logs each compaction of its journal.
        with Running(ctx, "taskcast", f"{label}.{phase}", gateways=0, broker_args=args,
                     broker_log="info" if journal else "warn") as s:
            before = procs.sample(s.roots())
            if phase == "unthrottled":
                pub = ctx.tools.pub(f"{label}.{phase}", "taskcast", s.pub_endpoint,
                                    users=p["users"], rate=0, duration=p["s5_duration"],
                                    window=p["s5_window"], payload=p["payload"],
                                    procs_n=p["s5_pub_procs"])
            else:
                rate = max(1, round(res["unthrottled"]["acks_per_s"] / 2))
                pub = ctx.tools.pub(f"{label}.{phase}", "taskcast", s.pub_endpoint,
                                    users=p["users"], rate=rate,
                                    count=int(rate * p["s5_duration"]),
                                    window=p["s5_window"], payload=p["payload"],
                                    procs_n=p["s5_pub_procs"])
            after = procs.sample(s.roots())
            size = os.path.getsize(journal) if journal and os.path.exists(journal) else None
            log_path = s.broker.log_path
        _, srv = procs.usage(before, after)
        res[phase] = {"offered_rate": pub["offered_rate"], "sent": pub["sent"],
                      "acked": pub["acked"], "errors": pub["errors_by_code"],
                      "acks_per_s": pub["acks_per_s"], "ack_latency_ms": pub["ack_latency_ms"],
                      "broker_cpu_pct": srv["cpu_pct"], "broker_rss_mib":
                      round(srv["rss_kib"] / 1024, 1), "pub_cpu_pct": pub["cpu_pct"],
                      "pub_cpu_pct_max_proc": pub["cpu_pct_max_proc"],
                      "journal_mib": round(size / 2**20, 1) if size is not None else None,
                      "compactions": _compactions(log_path) if journal else None,
                      "raw": pub}
        if journal and os.path.exists(journal):
            os.unlink(journal)
        ack = pub["ack_latency_ms"]
        ctx.say(f"  journal {title}, {phase}: {pub['acks_per_s']:.0f} acks/s, ack p99 "
                f"{ack.get('p99')} ms, broker CPU {srv['cpu_pct']}%")
    return res


def _compactions(log_path):
    """The broker's compactions: started ("journal compaction started"; one
    started in the last seconds of a run may not finish before the broker
    stops, and its fork and copy-on-write faults still count), finished
    ("journal compacted: ... in N ms"), and the longest finished."""
    count, finished, longest = 0, 0, None
    with open(log_path, errors="replace") as f:
        for line in f:
            if "journal compaction started" in line:
                count += 1
            elif "compacted" in line:
                finished += 1
                m = re.search(r" in (\d+) ms", line)
                if m:
                    longest = max(longest or 0, int(m.group(1)))
    return {"count": count, "finished": finished, "longest_ms": longest}


def s6_tabs(ctx, names):
    """S6: one user with many tabs (1,000) at 1,000 events/s: every event to
    every tab."""
    p = ctx.p

    def one(name):
        with Running(ctx, name, f"s6.{name}", gateways=_gateways_for(ctx, p["s6_tabs"])) as s:
            r = e2e_step(ctx, s, f"s6.{name}", 1, p["s6_tabs"], p["s6_rate"], p["duration"],
                         load_procs=p["s6_load_procs"])
        ctx.say(f"  {name}: delivered {r['delivered_pct']}%, p99 "
                f"{r['latency_ms'].get('p99')} ms, server CPU {r['server_cpu_pct']}%")
        return r
    return _each_system(ctx, names, one)


def s7_scale(ctx, names):
    """S7: many concurrent connections (100,000, one per user) through
    several gateway processes sharing one port, events flowing."""
    p = ctx.p
    conns = p["s7_conns"]
    wanted = {}
    conntrack = procs.read_sysctl("net.netfilter.nf_conntrack_max")
    if conntrack is not None and int(conntrack) < conns * 2 + 20000:
        wanted["net.netfilter.nf_conntrack_max"] = conns * 2 + 20000
    notes = []

    def one(name):
        label = f"s7.{name}"
        with Running(ctx, name, label, gateways=p["s7_gateways"]) as s:
            r = e2e_step(ctx, s, label, conns, 1, p["s7_rate"], p["duration"],
                         load_procs=p["s7_load_procs"], src=p["src"],
                         connect_timeout=p["s7_connect_timeout"], inflight=p["s7_inflight"])
        r["gateways"] = p["s7_gateways"] if name == "taskcast" else None
        r["open_at_end"] = r["raw"]["load"]["open_at_end"]
        ctx.say(f"  {name}: {r['ready']}/{conns} ready, {r['open_at_end']} open at the end, "
                f"delivered {r['delivered_pct']}%, p99 {r['latency_ms'].get('p99')} ms")
        return r
    with procs.TemporarySysctls(wanted, notes):
        out = _each_system(ctx, names, one)
    for n in notes:
        ctx.note(f"S7: {n}")
    return out


SCENARIOS = {
    "S1": s1_unthrottled,
    "S1b": s1b_sweep,
    "S2": s2_moderate,
    "S3": s3_idle_memory,
    "S4": s4_connects,
    "S5": s5_ingest,
    "S6": s6_tabs,
    "S7": s7_scale,
}
