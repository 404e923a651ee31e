"""Writing the results: the JSON of every scenario, one markdown table per
scenario (summary.md), and gnuplot plots of p99 against offered rate."""
import json
import os
import shutil
import subprocess


def _ms(lat, key):
    v = (lat or {}).get(key)
    return "" if v is None else f"{v:.2f}"


def _ok(r):
    return r is not None and "skipped" not in r and "error" not in r


def _why(r):
    return r.get("skipped") or r.get("error") or ""


def _ratio(value, base, better_low=False):
    if not value or not base:
        return ""
    return f"{(base / value if better_low else value / base):.2f}x"


def _e2e_cols(r):
    lat = r["latency_ms"]
    return [f"{r['delivered_pct']:.2f}", _ms(lat, "p50"), _ms(lat, "p90"), _ms(lat, "p99"),
            _ms(lat, "p999"), _ms(lat, "max"), f"{r['server_cpu_pct']:.0f}",
            f"{r['load_cpu_pct_max_proc']:.0f} / {r['pub_cpu_pct_max_proc']:.0f}",
            f"{r['pub_send_lag_p99_ms']:.2f}", "yes" if r["tools_ok"] else "NO"]


E2E_HEAD = ["delivered %", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "server CPU %",
            "tc-load / tc-pub CPU % (busiest process)", "tc-pub late p99 ms",
            "tools not the bottleneck"]


def _per_system(systems, res, rows_of):
    """The rows of every system: rows_of(name, result) for one that ran,
    else one row with why it did not."""
    rows = []
    for s in systems:
        rows.extend(rows_of(s, res[s]) if _ok(res[s]) else [[s, _why(res[s])]])
    return rows


def _compaction_text(*runs):
    if not any(runs):
        return ""
    def one(c):
        if not c:
            return ""
        return f"{c['count']} ({c['longest_ms']})" if c["longest_ms"] is not None \
            else str(c["count"])
    return " / ".join(one(c) for c in runs)


def tables(name, res):
    """(title, header, rows) tables of one scenario's results."""
    out = []
    systems = [s for s in res if not s.startswith("_")]
    base = res.get("taskcast") if _ok(res.get("taskcast")) else None
    if name in ("S1", "S2", "S6", "S7"):
        head = ["system", "conns", "sent/s", "frames/s"] + E2E_HEAD
        if name == "S7":
            head[1:2] = ["ready / conns", "open at end"]
        def e2e_row(s, r):
            conns = [f"{r['ready']} / {r['conns']}", str(r.get("open_at_end", ""))] \
                if name == "S7" else [str(r["conns"])]
            return [[s] + conns + [f"{r['rate_achieved']:.0f}", f"{r['frames_per_s']:.0f}"] +
                    _e2e_cols(r)]
        out.append((name, head, _per_system(systems, res, e2e_row)))
        if base and name == "S2" and any(_ok(res[s]) for s in systems if s != "taskcast"):
            out.append((f"{name}: ratios to taskcast (p99, server CPU; above 1: taskcast "
                        "better)", ["system", "p99", "server CPU"],
                        [[s, _ratio(res[s]["latency_ms"].get("p99"),
                                    base["latency_ms"].get("p99"), better_low=False),
                          _ratio(res[s]["server_cpu_pct"], base["server_cpu_pct"])]
                         for s in systems if s != "taskcast" and _ok(res[s])]))
    elif name == "S1b":
        out.append(("S1b: highest offered rate with >= 99.9 % delivered and p99 <= 10 ms",
                    ["system", "events/s"],
                    _per_system(systems, res, lambda s, r: [[s, str(r["best_rate"] or "none")]])))
        for s in systems:
            if not _ok(res[s]):
                continue
            rows = [[f"{r['offered_rate']}", f"{r['rate_achieved']:.0f}", f"{r['frames_per_s']:.0f}"]
                    + _e2e_cols(r) + ["pass" if r["pass"] else "fail"] for r in res[s]["steps"]]
            out.append((f"S1b steps: {s}", ["offered/s", "sent/s", "frames/s"] + E2E_HEAD +
                        ["result"], rows))
    elif name == "S3":
        def size_rows(s, r):
            return [[s, str(z["conns"]), str(z["ready"]), str(z["processes"]),
                     f"{z['rss_before_mib']}", f"{z['rss_after_mib']}", str(z["kib_per_conn"]),
                     ", ".join(f"{k} {v}" for k, v in z["parts_kib_per_conn"].items())]
                    for z in r["sizes"]]
        rows = _per_system(systems, res, size_rows)
        out.append(("S3: idle authenticated connections (one per user)",
                    ["system", "conns", "ready", "gateway / worker processes", "RSS before MiB",
                     "RSS after MiB", "KiB per connection", "by part (KiB per connection)"], rows))
    elif name == "S4":
        rows = _per_system(systems, res, lambda s, r: [[
            s, str(r["conns"]), str(r["ready"]), str(r["failed"]), f"{r['ready_per_s']:.0f}",
            _ms(r["connect_ms"], "p50"), _ms(r["connect_ms"], "p99"),
            f"{r['server_cpu_pct']:.0f}", f"{r['load_cpu_pct']:.0f}",
            _ratio(base["ready_per_s"], r["ready_per_s"]) if base and s != "taskcast" else ""]])
        out.append(("S4: authenticated connects", ["system", "conns", "ready", "failed",
                                                    "ready connects/s", "connect p50 ms",
                                                    "connect p99 ms", "server CPU %",
                                                    "tc-load CPU %", "taskcast / system"], rows))
    elif name == "S5":
        rows = []
        for c in res.get("taskcast", {}).get("configs", []):
            if "error" in c:
                rows.append([c["journal"], c["error"]])
                continue
            u, h = c["unthrottled"], c["half"]
            rows.append([c["journal"], f"{u['acks_per_s']:.0f}", _ms(u["ack_latency_ms"], "p99"),
                         f"{u['broker_cpu_pct']:.0f}", f"{u['pub_cpu_pct_max_proc']:.0f}",
                         f"{h['offered_rate']:.0f}", _ms(h["ack_latency_ms"], "p50"),
                         _ms(h["ack_latency_ms"], "p99"), _ms(h["ack_latency_ms"], "p999"),
                         _ms(h["ack_latency_ms"], "max"), str(u["journal_mib"] or ""),
                         _compaction_text(u.get("compactions"), h.get("compactions"))])
        out.append(("S5: broker ingest alone", ["journal", "acks/s (unthrottled)",
                    "ack p99 ms (unthrottled)", "broker CPU %", "tc-pub CPU % (busiest)",
                    "half rate /s", "ack p50 ms", "ack p99 ms", "ack p99.9 ms", "ack max ms",
                    "journal MiB after", "compactions started (longest finished, ms), unthrottled / half"], rows))
    return out


def markdown(name, title, res):
    lines = [f"## {name}: {title}", ""]
    for t, head, rows in tables(name, res):
        lines += [f"**{t}**", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join(" --- " for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


COLORS = {"taskcast": "#1b7837", "nchan": "#2166ac", "fastapi": "#e08214", "node": "#762a83"}


def plot_sweep(outdir, res):
    """s1b_p99.png: p99 (log scale) against offered rate, one line per
    system. Returns the file name, or None without gnuplot or data."""
    series = []
    for s, r in res.items():
        if s.startswith("_") or not _ok(r) or not r.get("steps"):
            continue
        dat = os.path.join(outdir, f"s1b_{s}.dat")
        with open(dat, "w") as f:
            f.write("# offered_rate p50_ms p99_ms p999_ms delivered_pct\n")
            for st in r["steps"]:
                lat = st["latency_ms"]
                f.write(f"{st['offered_rate']} {lat.get('p50', 'NaN')} {lat.get('p99', 'NaN')} "
                        f"{lat.get('p999', 'NaN')} {st['delivered_pct']}\n")
        series.append((s, os.path.basename(dat)))
    if not series or not shutil.which("gnuplot"):
        return None
    script = ["set terminal pngcairo size 900,560 noenhanced",
              "set output 's1b_p99.png'",
              "set title 'p99 end-to-end latency against offered rate (1,000 connections)'",
              "set xlabel 'offered events/s'", "set ylabel 'p99 latency, ms'",
              "set logscale y", "set grid", "set key top left",
              "plot 10 title 'target: 10 ms' dashtype 2 lc rgb 'gray', " +
              ", ".join(f"'{d}' using 1:3 with linespoints lw 2 pt {i + 5} "
                        f"lc rgb '{COLORS.get(s, '#000000')}' title '{s}'"
                        for i, (s, d) in enumerate(series))]
    gp = os.path.join(outdir, "s1b_p99.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    r = subprocess.run(["gnuplot", "s1b_p99.gp"], cwd=outdir, capture_output=True, text=True)
    return "s1b_p99.png" if r.returncode == 0 else None
