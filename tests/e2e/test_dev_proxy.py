"""The gateway behind a real dev-server proxy: Vite's `server.proxy` with
`ws: true` (examples/dev-proxy/vite) and http-proxy-middleware, what
webpack-dev-server proxies with (examples/dev-proxy/webpack).

The system taskcast replaces broke there: a refused socket reached the
browser as a reset (`Failed to proxy ... Error: read ECONNRESET`). Refusals
now come after the handshake, as an error frame and close 4401/4403; and the
gateway completes the closing handshake (it waits for the client's close
frame before it closes TCP). Without that, the proxy was still forwarding the
client's close frame when the gateway's FIN arrived and printed
`ws proxy error: Error: This socket has been ended by the other party ... at
Socket.writeAfterFIN` with a stack trace, for 3 to 55 % of refusals.

What this proves, with the proxies' own output as the witness:
- a real browser (Debian's chromium via playwright-core, tests/browser/
  ws_probe.mjs) that opens its socket through Vite, from a page Vite serves,
  with a bad token sees open, one `unauthorized` error frame and a clean
  close 4401, never 1006;
- 1,000 refusals (4401 and 4403) through Vite, then through
  http-proxy-middleware: every client gets its close code, the proxy
  prints no proxy error, no writeAfterFIN, no ECONNRESET, no EPIPE, and the
  gateway is left with no session and no descriptor more than before.

Needs node and tests/browser/node_modules with vite and http-proxy-middleware
(`npm ci` in tests/browser), and for the browser test /usr/bin/chromium and
playwright-core. Without them these tests are skipped, unless
TASKCAST_REQUIRE_BROWSER=1: then they fail.
"""
import asyncio
import collections
import json
import os
import re
import shutil
import subprocess
import time

import pytest
from pytest import fail, skip
import websockets
import websockets.exceptions

from conftest import EXAMPLES, REPO, START_TIMEOUT, Proc, clean_env, free_ports, http_get, uid

BROWSER_DIR = REPO / "tests" / "browser"
NODE_MODULES = BROWSER_DIR / "node_modules"
VITE_EXAMPLE = EXAMPLES / "dev-proxy" / "vite"
HPM_EXAMPLE = EXAMPLES / "dev-proxy" / "webpack" / "proxy-server.cjs"
WS_PROBE = BROWSER_DIR / "ws_probe.mjs"
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
REQUIRE = os.environ.get("TASKCAST_REQUIRE_BROWSER") == "1"

REFUSALS = 1000
CONCURRENCY = 16  # clients at once through the proxy
CLIENT_TIMEOUT = 10.0  # one refused client: handshake, frame, close
PROBE_LIMIT_MS = 30000  # ws_probe.mjs stops itself after this

# What a proxy prints when a connection it forwards breaks under it: the
# first line of each report (Vite; http-proxy-middleware), then the causes
# those reports carry (their stack traces).
PROXY_ERRORS = ("ws proxy error", "ws proxy socket error", "[HPM] WebSocket error",
                "[HPM] Error occurred", "writeAfterFIN", "ended by the other party",
                "write after end", "ECONNRESET", "EPIPE")

def _node_major():
    node = shutil.which("node")
    if not node:
        return None
    try:
        v = subprocess.run([node, "--version"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
        return int(v.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _package(name):
    """(version, lowest node major from its "engines") of an installed
    package of tests/browser, or None."""
    try:
        pkg = json.loads((NODE_MODULES / name / "package.json").read_text())
    except (OSError, ValueError):
        return None
    m = re.search(r"\d+", str(pkg.get("engines", {}).get("node", "")))
    return pkg.get("version", "?"), int(m.group(0)) if m else 0


def _missing(*packages):
    why = []
    major = _node_major()
    if major is None:
        why.append("node is not on PATH")
    for name in packages:
        got = _package(name)
        if got is None:
            why.append(f"{NODE_MODULES}/{name} is missing (npm ci in tests/browser)")
        elif major is not None and major < got[1]:
            why.append(f"node {major} is older than {name} {got[0]} needs ({got[1]})")
    return why


def _need(*packages, browser=False):
    why = _missing(*packages)
    if browser and not os.access(CHROMIUM, os.X_OK):
        why.append(f"{CHROMIUM} is missing")
    if not why:
        return
    if REQUIRE:
        fail("TASKCAST_REQUIRE_BROWSER=1 but the dev-proxy tests cannot run: "
             + "; ".join(why), pytrace=False)
    skip("dev-proxy tests need " + "; ".join(why) + " (scripts/deps.sh --browser && "
         "(cd tests/browser && npm ci))")


# ---------------------------------------------------------------- the proxies


class DevProxy(Proc):
    """A node dev server or proxy on 127.0.0.1:port forwarding /api to gw."""

    def __init__(self, tc, name, argv, port, cwd_env):
        self.port = port
        super().__init__(tc, name, argv, cwd_env)

    def wait_up(self, path):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                self.expect_failure = True
                fail(f"{self.name} exited with status {self.p.returncode}\n{self.log()}")
            try:
                last = http_get(self.port, path, timeout=2)[0]
                if last < 500:
                    return self
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        fail(f"{self.name} did not answer GET {path} within {START_TIMEOUT}s (last: {last})\n"
             f"{self.log()}")

    def errors(self):
        """(lines naming a proxy error, Counter of PROXY_ERRORS by lines)."""
        lines, counts = [], collections.Counter()
        for line in self.log().splitlines():
            hits = [e for e in PROXY_ERRORS if e.lower() in line.lower()]
            if hits:
                lines.append(line)
                counts.update(hits)
        return lines, counts

    def ws_url(self, user, token):
        return f"ws://127.0.0.1:{self.port}/api/v1/ws/tasks/{user}?token={token}"


def vite(tc, gw):
    """examples/dev-proxy/vite run by the vite of tests/browser. The example
    is copied to the test's directory, so Vite's cache lands there."""
    root = tc.tmp / "vite-app"
    shutil.copytree(VITE_EXAMPLE, root)
    # A page Vite serves as it is (from public/, no HMR client in it): a
    # page with Vite's client may be reloaded when Vite has optimized its
    # dependencies, which would end the probe's socket with it.
    (root / "public").mkdir()
    (root / "public" / "blank.txt").write_text("app\n")
    port = free_ports(1)[0]
    env = clean_env(TASKCAST_GATEWAY=f"http://127.0.0.1:{gw.port}", VITE_HOST="127.0.0.1",
                    VITE_PORT=str(port), NO_COLOR="1", CI="true")
    argv = ["node", NODE_MODULES / "vite" / "bin" / "vite.js", "--config",
            root / "vite.config.js", "--clearScreen", "false", root]
    v = DevProxy(tc, "vite", argv, port, env)
    v.expect_failure = True  # Vite ends with 128 + 15 on SIGTERM, by design
    return v.wait_up("/")


def proxy_middleware(tc, gw):
    """examples/dev-proxy/webpack/proxy-server.cjs: http-proxy-middleware
    in a plain node http server, as webpack-dev-server uses it."""
    port = free_ports(1)[0]
    env = clean_env(TASKCAST_GATEWAY=f"http://127.0.0.1:{gw.port}", PROXY_HOST="127.0.0.1",
                    PROXY_PORT=str(port), NODE_PATH=str(NODE_MODULES), NO_COLOR="1")
    return DevProxy(tc, "http-proxy-middleware", ["node", HPM_EXAMPLE], port,
                    env).wait_up("/api/v1/ws/status")


# ---------------------------------------------------------------- clients


async def _refused(url, expect, codes):
    """One client: reads until the close; counts the close code (1006: none
    arrived), or the exception that ended it."""
    try:
        async with websockets.connect(url, open_timeout=CLIENT_TIMEOUT, close_timeout=5,
                                      ping_interval=None) as ws:
            frames = []
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), CLIENT_TIMEOUT)))
            except websockets.exceptions.ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else 1006
                ok = code == expect[0] and [f.get("code") for f in frames] == [expect[1]]
                codes[code if ok else f"{code} after {frames!r}"] += 1
    except Exception as e:  # noqa: BLE001: counted, reported by the caller
        codes[type(e).__name__ + ": " + str(e)[:80]] += 1


def refuse_many(tc, proxy, n=REFUSALS):
    """n refused clients through proxy, CONCURRENCY at a time: nine in ten
    with a token that is not a JWT (4401), one in ten with another user's
    token (4403). Returns the Counter of outcomes."""
    user = uid("dp")
    forbidden = tc.token(uid("other"))
    urls = [(proxy.ws_url(user, forbidden), (4403, "forbidden")) if i % 10 == 9 else
            (proxy.ws_url(user, f"not-a-jwt-{i}"), (4401, "unauthorized")) for i in range(n)]
    codes = collections.Counter()

    async def main():
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(url, expect):
            async with sem:
                await _refused(url, expect, codes)

        await asyncio.gather(*(one(u, e) for u, e in urls))

    asyncio.run(main())
    return codes


def gateway_fds(gw):
    return len(os.listdir(f"/proc/{gw.pid}/fd"))


def gateway_connections(gw):
    body = http_get(gw.port, "/metrics")[2].decode()
    return int(float(re.search(r"^taskcast_gateway_connections (\S+)$", body, re.M).group(1)))


def expect_no_leak(gw, fds_before):
    """Every refused session gone, and with it its descriptor (within the
    close wait, for a client that stopped answering)."""
    deadline = time.monotonic() + 5
    while gateway_connections(gw) != 0 or gateway_fds(gw) > fds_before:
        assert time.monotonic() < deadline, (
            f"the gateway keeps {gateway_connections(gw)} connections and "
            f"{gateway_fds(gw)} descriptors (before: {fds_before})")
        time.sleep(0.1)


def expect_clean(proxy, codes, n=REFUSALS):
    time.sleep(0.5)  # what the proxy prints about the last ones
    lines, counts = proxy.errors()
    expected = {4401: n - n // 10, 4403: n // 10}
    assert not lines, (
        f"{proxy.name} printed proxy errors for {n} refusals: {dict(counts)} (lines "
        f"containing each; outcomes {dict(codes)}); the first lines:\n" + "\n".join(lines[:10]))
    assert dict(codes) == expected, f"outcomes {dict(codes)}, expected {expected}"


# ---------------------------------------------------------------- the tests


def test_browser_through_vite_sees_unauthorized_4401_not_a_reset(stack, tc):
    _need("vite", "playwright-core", browser=True)
    _, gw = stack
    v = vite(tc, gw)
    user = uid("dp")
    # The page comes from Vite and its socket goes to Vite's origin, as in a
    # web app under development.
    page = f"http://127.0.0.1:{v.port}/blank.txt"
    # stdin stays open while the probe runs: its end makes the page close
    # the socket (ws_probe.mjs).
    with open(tc.tmp / "ws_probe.stderr", "wb") as errf:
        probe = subprocess.Popen(
            ["node", WS_PROBE, "--page", page, "--ws", v.ws_url(user, "expired.or.not"),
             "--timeout", str(PROBE_LIMIT_MS)], cwd=BROWSER_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=errf, text=True,
            env=dict(os.environ, CHROMIUM=CHROMIUM), start_new_session=True)
    try:
        lines = []
        for line in probe.stdout:  # the probe exits after the close event
            lines.append(line)
        probe.wait(timeout=15)
    finally:
        probe.stdin.close()
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    stderr = (tc.tmp / "ws_probe.stderr").read_text(errors="replace")
    reports = [json.loads(line) for line in lines if line.strip()]
    events = [r["event"] for r in reports]
    assert events == ["open", "message", "close"], (
        f"expected open, one message, close: {reports!r}\n--- stderr ---\n{stderr[-3000:]}")
    frame = json.loads(reports[1]["data"])
    assert frame.get("type") == "error" and frame.get("code") == "unauthorized", frame
    close = reports[2]
    assert close["code"] == 4401 and close["wasClean"] is True, close
    time.sleep(0.5)
    lines, counts = v.errors()
    assert not lines, f"Vite printed proxy errors {dict(counts)}:\n" + "\n".join(lines[:10])


def test_1000_refusals_through_vite_print_no_proxy_error(stack, tc):
    _need("vite")
    _, gw = stack
    fds = gateway_fds(gw)
    v = vite(tc, gw)
    expect_clean(v, refuse_many(tc, v))
    expect_no_leak(gw, fds)


def test_1000_refusals_through_http_proxy_middleware_print_no_proxy_error(stack, tc):
    _need("http-proxy-middleware")
    _, gw = stack
    fds = gateway_fds(gw)
    p = proxy_middleware(tc, gw)
    expect_clean(p, refuse_many(tc, p))
    expect_no_leak(gw, fds)
