"""Processes the runner starts, and what it measures of them.

Every process is started in a session of its own (so a peer's start script
and everything it forks can be stopped together by the group id the runner
created), with RLIMIT_NOFILE raised to the hard limit (at most 20,000), its
output in a log file. CPU is read from /proc/PID/stat (utime + stime), memory
from /proc/PID/status (VmRSS), for a process and all its descendants.
"""
import os
import resource
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE_MAX = 20000  # the team's rule: no process opens more than 20,000 files


def raise_nofile():
    """preexec_fn: the soft open-file limit up to the hard one (<= 20,000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, NOFILE_MAX) if hard != resource.RLIM_INFINITY else NOFILE_MAX
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def free_ports(n):
    """n distinct free loopback TCP ports (bound to port 0 to find them)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in ports:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Proc:
    """One started process (and the session it leads)."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                  start_new_session=True, preexec_fn=raise_nofile)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=20.0):
        """SIGTERM to the process (a peer's start.sh stops its stack in
        order), SIGKILL to its whole session after timeout or once it has
        exited (whatever it left behind). Returns the exit status (None if
        it had to be killed)."""
        status = None
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                status = self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.p.wait(5)
        else:
            status = self.p.returncode
        # Anything the process forked and left behind in its session.
        self._signal_group(signal.SIGKILL)
        self.log.close()
        return status

    def _signal_group(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pids):
    """pids and all their descendants."""
    kids = _children_map()
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _stat(pid):
    """(comm, cpu ticks, rss KiB) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return None
    comm = stat[stat.index(b"(") + 1:stat.rindex(b")")].decode(errors="replace")
    fields = stat[stat.rindex(b")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    rss = 0
    for line in status.splitlines():
        if line.startswith(b"VmRSS:"):
            rss = int(line.split()[1])
    return comm, ticks, rss


def sample(roots):
    """{pid: (comm, ticks, rss_kib)} for roots and their descendants, with
    the time it was taken."""
    snap = {}
    for pid in tree(roots):
        st = _stat(pid)
        if st:
            snap[pid] = st
    return time.monotonic(), snap


def usage(before, after):
    """CPU (% of one core) of each process between two samples, and its RSS
    at the second. Returns a list of dicts and the totals."""
    t0, s0 = before
    t1, s1 = after
    span = max(t1 - t0, 1e-9)
    rows = []
    for pid, (comm, ticks, rss) in sorted(s1.items()):
        ticks0 = s0.get(pid, (comm, 0, 0))[1] if pid in s0 else 0
        rows.append({"pid": pid, "name": comm,
                     "cpu_pct": round(100.0 * (ticks - ticks0) / CLK_TCK / span, 1),
                     "rss_kib": rss})
    total = {"cpu_pct": round(sum(r["cpu_pct"] for r in rows), 1),
             "rss_kib": sum(r["rss_kib"] for r in rows), "window_s": round(span, 3)}
    return rows, total


def rss_kib(roots):
    """Sum of VmRSS over roots and their descendants."""
    return sum(st[2] for st in sample(roots)[1].values())


def read_sysctl(name):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return f.read().strip()
    except OSError:
        return None


class TemporarySysctls:
    """Sets sysctls for the time of a scenario and restores them after.
    Only what a scenario needs; every change is noted in its results."""

    def __init__(self, values, notes):
        self.values = values
        self.notes = notes
        self.saved = {}

    def __enter__(self):
        for name, value in self.values.items():
            old = read_sysctl(name)
            if old is None or old.split() == str(value).split():
                continue
            try:
                with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
                    f.write(str(value))
                self.saved[name] = old
                self.notes.append(f"sysctl {name} set from '{old}' to '{value}' for this "
                                  "scenario, restored after")
            except OSError as e:
                self.notes.append(f"sysctl {name} could not be set to '{value}': {e}")
        return self

    def __exit__(self, *exc):
        for name, old in self.saved.items():
            try:
                with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
                    f.write(old)
            except OSError as e:
                self.notes.append(f"sysctl {name} could NOT be restored to '{old}': {e}")
        return False
