"""tc-load and tc-pub as the runner drives them.

The JWT secret reaches both through TASKCAST_JWT_SECRET, never argv. Each
run's JSON (stdout) and human line (stderr) are kept in the log directory.
"""
import json
import os
import signal
import subprocess
import time

from . import procs


class ToolError(Exception):
    pass


class LoadRun:
    """A tc-load started in the background: wait for its connect phase,
    then for its report."""

    def __init__(self, tools, label, argv):
        self.label = label
        self.ready_file = os.path.join(tools.logdir, f"{label}.load.ready")
        self.out_path = os.path.join(tools.logdir, f"{label}.load.json")
        self.err_path = os.path.join(tools.logdir, f"{label}.load.log")
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        argv = argv + ["--ready-file", self.ready_file]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                      env=tools.env, start_new_session=True,
                                      preexec_fn=_tool_preexec(tools.nice))
        self.pid = self.p.pid

    def wait_ready(self, timeout):
        """True once the connect phase is over (every connection ready or
        failed), False if tc-load exited or timeout passed first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.path.exists(self.ready_file):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def finish(self, timeout):
        """Waits up to timeout for tc-load to end by itself (--expect or
        --duration), then stops it with SIGTERM (it reports on SIGTERM).
        Returns its JSON report."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.p.wait(5)
        return _report(self.out_path, self.err_path, self.p.returncode, "tc-load")

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait(5)


def _report(out_path, err_path, status, what):
    try:
        with open(out_path) as f:
            text = f.read().strip()
        data = json.loads(text.splitlines()[-1]) if text else None
    except (OSError, ValueError):
        data = None
    if data is None:
        tail = ""
        try:
            with open(err_path, errors="replace") as f:
                tail = f.read()[-2000:]
        except OSError:
            pass
        raise ToolError(f"{what} gave no report (exit status {status}): {tail}")
    data["exit_status"] = status
    return data


def _tool_preexec(nice):
    def preexec():
        procs.raise_nofile()
        if nice:
            os.nice(nice)
    return preexec


class Tools:
    def __init__(self, bin_dir, logdir, secret, nice=0):
        self.load_bin = os.path.join(bin_dir, "tc-load")
        self.pub_bin = os.path.join(bin_dir, "tc-pub")
        for b in (self.load_bin, self.pub_bin):
            if not os.access(b, os.X_OK):
                raise ToolError(f"{b} is missing: build first (cmake --build build)")
        self.logdir = logdir
        self.nice = nice
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TASKCAST_")}
        self.env["TASKCAST_JWT_SECRET"] = secret

    def load_start(self, label, port, users, conns, ready="hello", duration=3600, expect=0,
                   idle=False, procs_n=None, src=None, connect_rate=0, inflight=512,
                   connect_timeout=30, secret=None):
        """Starts tc-load; secret overrides the run's (for a wrong-token test)."""
        argv = [self.load_bin, "--target", f"127.0.0.1:{port}", "--users", users,
                "--conns", conns, "--ready", ready, "--duration", duration,
                "--expect", expect, "--connect-rate", connect_rate, "--inflight", inflight,
                "--connect-timeout", connect_timeout]
        if idle:
            argv.append("--idle")
        if procs_n:
            argv += ["--procs", procs_n]
        if src:
            argv += ["--src", src]
        if secret:
            argv += ["--secret", secret]
        return LoadRun(self, label, [str(a) for a in argv])

    def probe(self, label, port, ready, conns=1, timeout=30.0):
        """True once conns connections all become ready (the server is up)."""
        end = time.monotonic() + timeout
        n = 0
        while time.monotonic() < end:
            n += 1
            run = self.load_start(f"{label}.probe{n}", port, users=conns, conns=conns,
                                  ready=ready, duration=0, connect_timeout=5)
            try:
                rep = run.finish(20)
                if rep["ready"] == conns:
                    return True
            except ToolError:
                pass
            time.sleep(0.3)
        return False

    def pub(self, label, target, endpoint, users, rate, duration=None, count=None,
            window=10000, payload=100, procs_n=1, conns=None, lazy_acks=False, timeout=None,
            tasks_per_user=10, proto=None):
        """Runs tc-pub to its end and returns its report."""
        argv = [self.pub_bin, "--target", target, "--endpoint", endpoint, "--users", users,
                "--rate", rate, "--window", window, "--payload", payload, "--procs", procs_n,
                "--tasks-per-user", tasks_per_user,
                "--duration", duration if duration else 0, "--count", count if count else 0]
        if conns:
            argv += ["--conns", conns]
        if lazy_acks:
            argv.append("--lazy-acks")
        if proto:
            argv += ["--proto", proto]
        out_path = os.path.join(self.logdir, f"{label}.pub.json")
        err_path = os.path.join(self.logdir, f"{label}.pub.log")
        if timeout is None:
            span = duration if duration else (count / rate if rate else 60)
            timeout = span + 30
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen([str(a) for a in argv], stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, env=self.env, start_new_session=True,
                                 preexec_fn=_tool_preexec(self.nice))
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
            except BaseException:  # the runner is interrupted: leave nothing behind
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
                raise
        return _report(out_path, err_path, p.returncode, "tc-pub")
