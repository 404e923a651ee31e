"""The systems under test: taskcast (broker + gateways from the build
directory) and the peers (bench/peers/<name>/start.sh PORT REDIS_PORT SECRET,
see bench/README.md), each started fresh on free loopback ports.

A system tells the scenarios where browsers connect (ws_port, ready_mode),
where and how tc-pub publishes (pub_target, pub_endpoint), and which
processes are its own (roots: CPU and memory are sampled over their trees).
"""
import os
import subprocess
import time

from . import procs

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the runner must know of each peer (bench-interface: nchan authorises
# before the upgrade and cannot send a hello, so its ready signal is the 101;
# the Redis-based peers read PUBLISH on tasks:{user} from the Redis their
# start.sh runs on REDIS_PORT).
PEERS = {
    "nchan": {"pub_target": "nchan", "ready": "upgrade", "redis": False},
    "fastapi": {"pub_target": "redis", "ready": "hello", "redis": True},
    "node": {"pub_target": "redis", "ready": "hello", "redis": True},
}
PEER_START_TIMEOUT = 300  # seconds: a first start may apt-get or npm ci
SYSTEMS = ["taskcast"] + list(PEERS)


class Skip(Exception):
    """The system cannot run here (say why in one line)."""


class StartError(Exception):
    pass


class Taskcast:
    name = "taskcast"
    ready_mode = "hello"
    pub_target = "taskcast"

    def __init__(self, ctx, label, gateways=1, broker_args=(), gateway_args=(),
                 broker_log="warn"):
        self.ctx = ctx
        self.procs = []
        bindir = ctx.bin_dir
        for b in ("taskcast-broker", "taskcast-gateway"):
            if not os.access(os.path.join(bindir, b), os.X_OK):
                raise Skip(f"{bindir}/{b} is missing: build first")
        ingest, fanout, sync, listen, jobs = procs.free_ports(5)
        self.ws_port = listen
        self.pub_endpoint = f"tcp://127.0.0.1:{ingest}"
        self.ingest_port = ingest
        env = dict(ctx.tools.env)
        level = ["--log-level", "warn"]
        zmq = [f"--fanout=tcp://127.0.0.1:{fanout}", f"--sync=tcp://127.0.0.1:{sync}"]
        self.broker = self._start(f"{label}.broker", [os.path.join(bindir, "taskcast-broker"),
                                  f"--ingest=tcp://127.0.0.1:{ingest}", f"--jobs=tcp://127.0.0.1:{jobs}",
                                  f"--log-level={broker_log}"]
                                  + zmq + list(broker_args), env)
        if not _wait_port(ingest, 15, self.broker):
            self.stop()
            raise StartError(f"taskcast-broker did not start: {self.broker.tail()}")
        self.gateways = []
        for i in range(gateways):
            self.gateways.append(self._start(
                f"{label}.gateway{i}", [os.path.join(bindir, "taskcast-gateway"),
                                        f"--listen=127.0.0.1:{listen}",
                                        f"--name=bench-gw{i}"] + zmq + level +
                list(gateway_args), env))
        if gateways and not ctx.tools.probe(label, listen, "hello", conns=2 * gateways):
            tails = " | ".join(g.tail(5) for g in self.gateways)
            self.stop()
            raise StartError(f"taskcast-gateway did not serve: {tails}")

    def _start(self, label, argv, env):
        p = procs.Proc(label, argv, os.path.join(self.ctx.logdir, f"{label}.log"), env=env)
        self.procs.append(p)
        return p

    def roots(self):
        return [p.pid for p in self.procs if p.alive()]

    def parts(self):
        """Named process groups for per-part figures (broker, gateways)."""
        return {"broker": [self.broker.pid], "gateways": [g.pid for g in self.gateways]}

    def stop(self):
        return {p.name: p.stop() for p in reversed(self.procs)}


class Peer:
    """bench/peers/<name>/start.sh PORT REDIS_PORT SECRET PIDFILE: runs the
    whole stack (Redis included) as its children in the foreground; PIDFILE
    appears, with one "PID NAME" line per server process, once it serves;
    SIGTERM to start.sh stops it all."""

    def __init__(self, ctx, name, label, workers=2):
        self.ctx = ctx
        self.name = name
        self.procs = []
        meta = PEERS[name]
        script = os.path.join(ctx.peers_dir, name, "start.sh")
        if not os.path.exists(script):
            raise Skip(f"peer {name}: {script} does not exist (yet)")
        self.ready_mode = meta["ready"]
        self.pub_target = meta["pub_target"]
        port, redis_port = procs.free_ports(2)
        self.ws_port = port
        self.pub_endpoint = f"127.0.0.1:{redis_port if meta['redis'] else port}"
        self.pidfile = os.path.join(ctx.logdir, f"{label}.pids")
        env = dict(ctx.tools.env)
        env["TASKCAST_PEER_WORKERS"] = str(workers)
        env["TASKCAST_PEER_RUNDIR"] = os.path.join(ctx.logdir, f"{label}.run")
        self.server = procs.Proc(f"{label}.{name}", ["/bin/sh", script, port, redis_port,
                                                    ctx.secret, self.pidfile],
                                 os.path.join(ctx.logdir, f"{label}.{name}.log"), env=env,
                                 cwd=os.path.dirname(script))
        self.procs.append(self.server)
        end = time.monotonic() + PEER_START_TIMEOUT
        while not os.path.exists(self.pidfile) and self.server.alive() and \
                time.monotonic() < end:
            time.sleep(0.1)
        if not os.path.exists(self.pidfile) or \
                not ctx.tools.probe(label, port, self.ready_mode, conns=2, timeout=30):
            tail = self.server.tail(10)
            self.stop()
            raise StartError(f"peer {name} did not serve on {port}: {tail}")
        with open(self.pidfile) as f:
            self.listed = [(int(pid), pname) for pid, pname in
                           (line.split(None, 1) for line in f if line.strip())]

    def roots(self):
        return [p.pid for p in self.procs if p.alive()]

    def parts(self):
        """The listed server processes by name (redis, nginx-worker, ...)."""
        parts = {}
        for pid, pname in self.listed:
            parts.setdefault(pname.strip(), []).append(pid)
        return parts

    def stop(self):
        return {p.name: p.stop() for p in reversed(self.procs)}


def _wait_port(port, timeout, proc):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if procs.port_open(port):
            return True
        if not proc.alive():
            return False
        time.sleep(0.05)
    return False


def start(ctx, name, label, gateways=1, broker_args=(), broker_log="warn"):
    """Starts system name fresh (Skip if it cannot run here). gateways is
    taskcast's gateway processes; a peer gets as many worker processes, at
    least its default of 2."""
    if name == "taskcast":
        return Taskcast(ctx, label, gateways=gateways, broker_args=broker_args,
                        broker_log=broker_log)
    if name in PEERS:
        return Peer(ctx, name, label, workers=max(2, gateways))
    raise Skip(f"unknown system {name} (known: {', '.join(SYSTEMS)})")


def broker_supports(ctx, flag):
    """True if taskcast-broker --help lists flag (e.g. --fsync)."""
    try:
        out = subprocess.run([os.path.join(ctx.bin_dir, "taskcast-broker"), "--help"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return f"{flag} " in out or f"{flag}=" in out
