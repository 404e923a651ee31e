"""A real browser (Debian's chromium, driven by playwright-core from
tests/browser) against a real gateway and broker.

What this proves, from inside the browser's own WebSocket API, which is all a
web app ever sees:
- authentication happens after the handshake: with an expired token, a
  malformed token or no token, the page gets `open`, then exactly one
  `{"type":"error","code":"unauthorized"}` message, then a clean close 4401
  (wasClean true), never 1006 / a bare ECONNRESET, which is what the system
  taskcast replaces showed browsers; a token for another user gets
  `forbidden` and 4403;
- with a valid token: `hello` first, then a worker's events in order with
  exactly the fields it sent, and a text ping is answered with a pong;
- SIGTERM to the gateway: the page gets a `shutdown` error and close 1001;
- examples/watch.html, unchanged, shows a task's final status, progress and
  message, shows why a bad token was refused (4401) and does not retry it;
- with a real taskcast-worker pool behind the broker, its "start a task"
  submits a job (POST /api/v1/jobs from another origin, no preflight) that the
  page then sees queued -> running with progress -> succeeded; its "cancel"
  ends a running job and a queued one `cancelled`; a cancel the gateway
  refuses (a task that is not a job) and a start it refuses (409, 413, 401)
  are shown as errors.

Why the pages are served over http: Chromium blocks a WebSocket to 127.0.0.1
opened from about:blank or a file:// page
(net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS), so the socket would never
reach the gateway. The pages come from a small static HTTP server on a loopback
port of its own, run in a thread of this test process: the page and the
gateway have different origins, as a real web app and its gateway do.

Needs /usr/bin/chromium (or $CHROMIUM), a node that the installed
playwright-core accepts (its "engines"; Debian 12's node 18 for 1.61) and
tests/browser/node_modules/playwright-core (`scripts/deps.sh --browser`, then
`npm ci` in tests/browser). Without them the module is skipped, unless
TASKCAST_REQUIRE_BROWSER=1 (scripts/test.sh sets it): then every test fails.
"""
import functools
import http.server
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
from pytest import fail, skip

from conftest import EXAMPLES, REPO, event, free_ports, uid

BROWSER_DIR = REPO / "tests" / "browser"
WS_PROBE = BROWSER_DIR / "ws_probe.mjs"
WATCH_PAGE = BROWSER_DIR / "watch_page.mjs"
CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
REQUIRE = os.environ.get("TASKCAST_REQUIRE_BROWSER") == "1"

# Bounds (seconds). A browser starts in about a second; sanitizer builds of the
# gateway answer a little more slowly.
BROWSER_START = 20.0  # the first report from a freshly launched browser
EVENT_TIMEOUT = 8.0  # any later report
SCRIPT_LIMIT_MS = 30000  # the node scripts stop themselves after this


def _node_needed():
    """(version, lowest node major) of the installed playwright-core, from
    its package.json ("engines": {"node": ">=18"}); None if not installed."""
    try:
        pkg = json.loads((BROWSER_DIR / "node_modules" / "playwright-core"
                          / "package.json").read_text())
    except (OSError, ValueError):
        return None
    m = re.match(r"\s*>=\s*(\d+)", str(pkg.get("engines", {}).get("node", "")))
    return pkg.get("version", "?"), int(m.group(1)) if m else 0


def _missing():
    why = []
    if not os.access(CHROMIUM, os.X_OK):
        why.append(f"{CHROMIUM} is missing")
    needed = _node_needed()
    if needed is None:
        why.append(f"{BROWSER_DIR}/node_modules/playwright-core is missing (npm ci)")
    node = shutil.which("node")
    if not node:
        why.append("node is not on PATH")
    elif needed is not None:
        try:
            v = subprocess.run([node, "--version"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
            if int(v.lstrip("v").split(".")[0]) < needed[1]:
                why.append(f"node {v} is older than {needed[1]} "
                           f"(playwright-core {needed[0]} needs >= {needed[1]})")
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            why.append(f"node --version failed: {e!r}")
    return why


MISSING = _missing()
if MISSING and not REQUIRE:
    skip("browser tests need chromium, node and playwright-core: " + "; ".join(MISSING)
                + " (install: scripts/deps.sh --browser && (cd tests/browser && npm ci); "
                "TASKCAST_REQUIRE_BROWSER=1 turns this skip into a failure)",
                allow_module_level=True)


@pytest.fixture(autouse=True)
def _browser_required():
    if MISSING:
        fail("TASKCAST_REQUIRE_BROWSER=1 but the browser tests cannot run: "
                    + "; ".join(MISSING), pytrace=False)


# ---------------------------------------------------------------- the web app's origin


BLANK = b"<!doctype html><html><head><title>app</title></head><body>app</body></html>\n"


class _Pages(http.server.SimpleHTTPRequestHandler):
    """examples/ (watch.html), plus /blank.html: the page ws_probe opens its
    socket from."""

    def do_GET(self):
        self.server.paths.append(self.path)
        if self.path == "/blank.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BLANK)))
            self.end_headers()
            self.wfile.write(BLANK)
            return
        super().do_GET()

    def log_message(self, fmt, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def web():
    """http://127.0.0.1:PORT serving examples/ from a thread of this process."""
    port = free_ports(1)[0]
    handler = functools.partial(_Pages, directory=str(EXAMPLES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="static-http", daemon=True)
    thread.start()
    server.origin = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---------------------------------------------------------------- browser scripts


def _redact(text):
    return re.sub(r"token=[^&\s\"']*", "token=[redacted]", text)


class NodeScript:
    """One tests/browser/*.mjs run: one browser. Its stdout lines (JSON) are
    read by a thread into a queue; stdin lines go to the script."""

    def __init__(self, tmp, name, script, args):
        self.name = name
        self.err_path = tmp / f"{name}.stderr"
        self.reports = []  # every report read so far, in order
        self.q = queue.Queue()
        env = dict(os.environ, CHROMIUM=CHROMIUM)
        with open(self.err_path, "wb") as errf:
            # own session: the script (and playwright's handlers for SIGTERM)
            # can be ended without touching anything else
            self.p = subprocess.Popen(["node", str(script), *map(str, args)], cwd=BROWSER_DIR,
                                      env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=errf, text=True, bufsize=1,
                                      start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True, name=name)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({"event": "unparsable", "line": line})
        self.q.put(None)  # end of output

    def stderr(self):
        try:
            return _redact(self.err_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def _context(self):
        return (f"{self.name} reported so far: {_redact(json.dumps(self.reports))}\n"
                f"--- {self.name} stderr ---\n{self.stderr()[-4000:]}")

    def next(self, timeout=EVENT_TIMEOUT):
        """The next report. Fails on a timeout or when the script ended."""
        try:
            r = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name}: nothing reported within {timeout}s\n"
                                 + self._context()) from None
        if r is None:
            self.q.put(None)
            raise AssertionError(f"{self.name}: the script ended (status {self.p.poll()})\n"
                                 + self._context())
        self.reports.append(r)
        return r

    def until(self, pred, timeout=EVENT_TIMEOUT, what="the expected report"):
        """Reports up to and including the first one pred accepts."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no {what} within {timeout}s\n"
                                     + self._context())
            try:
                r = self.next(left)
            except AssertionError as e:
                raise AssertionError(f"{self.name}: waiting for {what}: {e}") from None
            got.append(r)
            if pred(r):
                return got

    def rest(self, timeout=EVENT_TIMEOUT):
        """Every report until the script's output ends."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: did not end within {timeout}s\n"
                                     + self._context())
            try:
                r = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if r is None:
                self.q.put(None)
                return got
            self.reports.append(r)
            got.append(r)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def end(self, timeout=10):
        """Closes stdin (the script closes its socket / page and exits); if it
        does not exit, SIGTERM (playwright closes the browser), then
        SIGKILL. Returns the exit status."""
        try:
            if self.p.stdin and not self.p.stdin.closed:
                self.p.stdin.close()
        except OSError:
            pass
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.p.poll() is None:
                self.p.send_signal(sig)
            try:
                return self.p.wait(timeout=timeout if sig is None else 5)
            except subprocess.TimeoutExpired:
                continue
        return self.p.poll()


@pytest.fixture
def browsers(tc):
    """Starts node scripts; each is ended at teardown (before the harness
    stops the gateway and broker)."""
    started = []
    counter = [0]

    def start(script, *args):
        counter[0] += 1
        s = NodeScript(tc.tmp, f"{script.stem}{counter[0]}", script, args)
        started.append(s)
        return s

    yield start
    stuck = []
    for s in started:
        rc = s.end()
        if rc is None:
            stuck.append(f"{s.name} (pid {s.p.pid}) did not exit")
    assert not stuck, stuck


def probe(browsers, web, ws_url):
    return browsers(WS_PROBE, "--page", web.origin + "/blank.html", "--ws", ws_url,
                    "--timeout", SCRIPT_LIMIT_MS)


def messages(reports):
    return [json.loads(r["data"]) for r in reports if r["event"] == "message"]


def expect_refused_in_browser(p, code, close_code, token=None):
    """open, exactly one error message with code, then a clean close_code."""
    first = p.next(BROWSER_START)
    assert first == {"event": "open"}, \
        f"the page did not see the handshake complete: {first!r}\n{p._context()}"
    rest = p.until(lambda r: r["event"] in ("close", "timeout"), what="close event")
    close = rest[-1]
    assert close["event"] == "close", f"no close event: {rest!r}\n{p._context()}"
    assert close["code"] != 1006, \
        f"the browser saw an abnormal close (1006), not a close frame: {rest!r}"
    assert [r["event"] for r in rest] == ["message", "close"], \
        f"expected exactly one message then the close: {rest!r}"
    frames = messages(rest)
    f = frames[0]
    assert f.get("type") == "error" and f.get("code") == code, f
    assert isinstance(f.get("message"), str) and f["message"], f
    if token:
        assert token not in rest[0]["data"], "the error frame echoes the token"
    assert close["code"] == close_code, f"close {close!r}, expected code {close_code}"
    assert close["wasClean"] is True, f"not a clean close: {close!r}"
    assert p.rest() == [], "reports after the close"


# ---------------------------------------------------------------- 1, 2: refusals


BAD = {
    "expired": lambda tc, u: tc.token(u, exp_in=-3600),
    "malformed": lambda tc, u: "abc.def.ghi",
    "missing": lambda tc, u: None,
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_browser_sees_unauthorized_4401_not_a_reset(shared, browsers, web, case):
    tc = shared
    _, gw = tc.stack
    user = uid("b")
    token = BAD[case](tc, user)
    p = probe(browsers, web, gw.url(user, token))
    expect_refused_in_browser(p, "unauthorized", 4401, token)


def test_browser_with_another_users_token_sees_forbidden_4403(shared, browsers, web):
    tc = shared
    _, gw = tc.stack
    user = uid("b")
    p = probe(browsers, web, gw.url(user, tc.token(uid("other"))))
    expect_refused_in_browser(p, "forbidden", 4403)


# ---------------------------------------------------------------- 3: events and ping


def test_browser_gets_hello_then_live_events_in_order_and_pong(shared, browsers, web):
    tc = shared
    broker, gw = tc.stack
    user = uid("b")
    p = probe(browsers, web, gw.url(user, tc.token(user)))
    assert p.next(BROWSER_START) == {"event": "open"}, p._context()
    r = p.next()
    assert r["event"] == "message", r
    hello = json.loads(r["data"])
    assert hello.get("type") == "hello" and hello.get("user_id") == user, hello
    assert isinstance(hello.get("epoch"), str) and hello["epoch"], hello
    assert isinstance(hello.get("gateway"), str) and hello["gateway"], hello

    # published while the page is connected
    base = int(time.time() * 1000)
    evs = [
        event("render-1", user, "queued", ts=base),
        event("render-1", user, "running", progress=42, message="rendering frame 42/100",
              ts=base + 1),
        event("import-7", user, "running", progress=12.5, message="rows: ünïcødé ✓",
              data={"rows": 1250, "big": 2**63 + 5, "neg": -2**63, "ratio": 1.0,
                    "tags": ["a", None, True]}, ts=base + 2),
        event("render-1", user, "succeeded", progress=100, message="done",
              data={"url": "/renders/1.mp4"}, ts=base + 3),
    ]
    w = tc.worker(broker)
    seqs = [w.publish_ok(ev) for ev in evs]
    assert seqs == list(range(seqs[0], seqs[0] + len(evs))), seqs
    got = p.until(lambda r: r["event"] != "message" or
                  json.loads(r["data"]).get("seq") == seqs[-1], what="the last event")
    assert all(r["event"] == "message" for r in got), got
    frames = [json.loads(r["data"]) for r in got]
    expected = []
    for ev, seq in zip(evs, seqs):
        f = {"type": "task", "seq": seq}
        f.update({k: ev[k] for k in ("task_id", "status", "progress", "message", "data", "ts")
                  if k in ev})
        expected.append(f)
    assert frames == expected, f"the page saw\n{frames!r}\nexpected\n{expected!r}"
    # exact JSON types as the browser receives the text: 1.0 stays a float,
    # 2**63+5 an integer (not 9.2e18), 100 an integer
    assert isinstance(frames[2]["progress"], float) and isinstance(frames[3]["progress"], int)
    assert isinstance(frames[2]["data"]["ratio"], float), frames[2]
    assert "9223372036854775813" in got[2]["data"], got[2]["data"]

    p.send('{"type":"ping"}')
    r = p.next()
    assert r["event"] == "message" and json.loads(r["data"]) == {"type": "pong"}, r

    # the page closes normally (stdin ends): a clean 1000 back, no error event
    p.p.stdin.close()
    rest = p.rest()
    assert [x["event"] for x in rest] == ["close"], rest
    assert rest[0]["code"] == 1000 and rest[0]["wasClean"] is True, rest


# ---------------------------------------------------------------- 4: shutdown


def test_browser_sees_shutdown_and_1001_when_the_gateway_stops(tc, browsers, web):
    broker = tc.broker()
    gw = tc.gateway(broker)
    p = probe(browsers, web, gw.url("2", tc.token("2")))
    assert p.next(BROWSER_START) == {"event": "open"}, p._context()
    r = p.next()
    assert r["event"] == "message" and json.loads(r["data"]).get("type") == "hello", r
    gw.stop(signal.SIGTERM)  # asserts exit status 0
    rest = p.until(lambda r: r["event"] in ("close", "timeout"), what="close event")
    assert [x["event"] for x in rest] == ["message", "close"], rest
    f = json.loads(rest[0]["data"])
    assert f.get("type") == "error" and f.get("code") == "shutdown", f
    assert isinstance(f.get("message"), str) and f["message"], f
    assert rest[1]["code"] == 1001, rest[1]
    assert rest[1]["wasClean"] is True, rest[1]


# ---------------------------------------------------------------- 5: examples/watch.html


def watch(browsers, web, ws_url):
    return browsers(WATCH_PAGE, "--page", f"{web.origin}/watch.html#{ws_url}",
                    "--timeout", SCRIPT_LIMIT_MS)


def test_watch_page_shows_a_tasks_progress_to_the_end(tc, browsers, web):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid("w")
    page = watch(browsers, web, gw.url(user, tc.token(user)))
    page.until(lambda r: r["event"] == "state" and r["text"].startswith("connected to "),
               timeout=BROWSER_START, what="'connected to ...' state")
    state = page.reports[-1]["text"]
    assert state.endswith(f" as {user}"), state

    w = tc.worker(broker)
    w.publish_ok(event("video-9", user, "queued"))
    w.publish_ok(event("video-9", user, "running", progress=30, message="encoding"))
    w.publish_ok(event("video-9", user, "running", progress=70, message="encoding"))
    last = w.publish_ok(event("video-9", user, "succeeded", progress=100, message="ready"))
    final = page.until(lambda r: r["event"] == "row" and r["seq"] == str(last),
                       what=f"row with seq {last}")[-1]
    assert final == {"event": "row", "id": "video-9", "status": "succeeded",
                     "class": "succeeded", "progress": 100, "message": "ready",
                     "seq": str(last), "cancel": False}, final
    errors = [r for r in page.reports if r["event"] == "pageerror"]
    assert not errors, errors
    sockets = [r for r in page.reports if r["event"] == "websocket"]
    assert sockets == [{"event": "websocket", "path": f"/api/v1/ws/tasks/{user}"}], sockets
    states = [r["text"] for r in page.reports if r["event"] == "state"]
    assert all(t in ("not connected", "connecting...") or t.startswith("connected to ")
               for t in states), f"the page was not connected all along: {states!r}"


def test_watch_page_shows_the_refusal_and_does_not_retry(tc, browsers, web):
    broker = tc.broker()
    gw = tc.gateway(broker)
    user = uid("w")
    token = tc.token(user, exp_in=-60)  # expired
    page = watch(browsers, web, gw.url(user, token))
    got = page.until(lambda r: r["event"] == "state" and r["text"].startswith("refused"),
                     timeout=BROWSER_START, what="'refused' state")
    text = got[-1]["text"]
    assert text.startswith("refused (4401): error: unauthorized: "), text
    assert token not in text
    # watch.html would retry after 0.5 s, 1 s, ... if it did: wait well past that
    time.sleep(2.5)
    page.p.stdin.close()
    later = page.rest()
    assert not any(r["event"] in ("websocket", "state") for r in later), \
        f"the page changed or reconnected after the refusal: {later!r}"
    sockets = [r for r in page.reports if r["event"] == "websocket"]
    assert len(sockets) == 1, f"the page opened {len(sockets)} sockets: {sockets!r}"
    # and the gateway saw exactly one connection, refused with 4401
    log = gw.log()
    accepted = re.findall(r"(?:authenticated|rejected) conn=\d+", log)
    assert len(accepted) == 1, f"{len(accepted)} connections in the gateway log:\n{log}"
    assert len(re.findall(r"rejected conn=\d+ .*\(4401\)", log)) == 1, log
    status, _, body = gw.get("/metrics")
    assert status == 200
    m = re.search(rb"^taskcast_gateway_connections_total (\d+)", body, re.M)
    assert m and int(m.group(1)) == 1, body.decode(errors="replace")


# ---------------------------------------------------------------- 6: watch.html starts and cancels jobs


def connected(page):
    page.until(lambda r: r["event"] == "state" and r["text"].startswith("connected to "),
               timeout=BROWSER_START, what="'connected to ...' state")


def seen(page, pred, what, since=0, timeout=EVENT_TIMEOUT):
    """The first report from index since on that pred accepts, read already
    or still to come."""
    for r in page.reports[since:]:
        if pred(r):
            return r
    return page.until(pred, timeout=timeout, what=what)[-1]


def act(page, **action):
    """One user action on the page (watch_page.mjs clicks it); waits until it
    is done. Returns the index of the first report after the action began."""
    since = len(page.reports)
    page.send(json.dumps(action))
    did = seen(page, lambda r: r["event"] == "did", f"{action['do']} done", since)
    assert did.get("ok") is True, did
    return since


def action_text(page, pred, what, since=0, timeout=EVENT_TIMEOUT):
    """The first #action report from index since on that pred accepts."""
    return seen(page, lambda r: r["event"] == "action" and pred(r), what, since, timeout)


def rows_of(page, task_id):
    return [r for r in page.reports if r["event"] == "row" and r["id"] == task_id]


def row_until(page, task_id, status, timeout=EVENT_TIMEOUT):
    return seen(page, lambda r: r["event"] == "row" and r["id"] == task_id
                and r["status"] == status, f"row {task_id} {status}", timeout=timeout)


@pytest.fixture
def jobs_stack(tc):
    """broker, gateway and a real taskcast-worker pool (render, thumb from
    examples/jobs) of concurrency 1."""
    broker = tc.broker()
    gw = tc.gateway(broker)
    tc.pool(broker, "pool", concurrency=1, args=["--grace-s", "1"])
    return broker, gw


def test_watch_page_starts_a_job_and_sees_it_queued_running_succeeded(tc, browsers, web,
                                                                        jobs_stack):
    _, gw = jobs_stack
    user = uid("j")
    page = watch(browsers, web, gw.url(user, tc.token(user)))
    connected(page)
    since = act(page, do="start", kind="render", args='{"steps":4,"delay":0.3}')
    started = action_text(page, lambda r: r["text"] != "starting a render task...",
                          "the start's outcome", since)
    assert started["error"] is False and re.fullmatch(r"started j-[0-9a-f]{16}",
                                                      started["text"]), started
    tid = started["text"].split()[1]
    final = row_until(page, tid, "succeeded", timeout=20)
    rows = rows_of(page, tid)
    statuses = [r["status"] for r in rows]
    assert statuses[0] == "queued" and rows[0]["cancel"] is True, rows
    running = [r for r in rows if r["status"] == "running"]
    assert running and all(r["cancel"] is True for r in running), rows
    assert statuses == ["queued"] + ["running"] * len(running) + ["succeeded"], statuses
    progress = [r["progress"] for r in running if r["progress"] is not None]
    assert progress == [25, 50, 75, 100], rows  # the child's 4 steps, each seen
    assert final["class"] == "succeeded" and final["cancel"] is False, final
    # the job went to the gateway the page's WebSocket URL names, from the
    # page's own (other) origin, and nothing failed in the page
    posts = [r for r in page.reports if r["event"] == "request" and r["method"] == "POST"]
    assert posts == [{"event": "request", "method": "POST", "path": "/api/v1/jobs"}], posts
    assert not [r for r in page.reports if r["event"] == "pageerror"], page.reports
    assert f"job submit over HTTP for user {user}" in gw.log()


def test_watch_page_cancels_a_running_and_a_queued_job(tc, browsers, web, jobs_stack):
    _, gw = jobs_stack
    user = uid("j")
    page = watch(browsers, web, gw.url(user, tc.token(user)))
    connected(page)
    # concurrency 1: the first runs (40 s unless cancelled), the second waits
    act(page, do="start", kind="render", args='{"steps":200,"delay":0.2}', task_id="long-1")
    action_text(page, lambda r: r["text"] == "started long-1", "started long-1")
    act(page, do="start", kind="render", args='{"steps":200,"delay":0.2}', task_id="long-2")
    action_text(page, lambda r: r["text"] == "started long-2", "started long-2")
    seen(page, lambda r: r["event"] == "row" and r["id"] == "long-1"
         and (r["progress"] or 0) > 0, "long-1 running with progress")
    assert rows_of(page, "long-2")[-1]["status"] == "queued", rows_of(page, "long-2")

    # the queued one: dropped at once, and the pool never runs it
    act(page, do="cancel", id="long-2")
    end = row_until(page, "long-2", "cancelled")
    assert end["class"] == "cancelled" and end["cancel"] is False, end
    assert [r["status"] for r in rows_of(page, "long-2")] == ["queued", "queued", "cancelled"], \
        rows_of(page, "long-2")  # queued, its button disabled, cancelled
    assert rows_of(page, "long-1")[-1]["status"] == "running", rows_of(page, "long-1")
    # the running one: its worker stops the child and confirms
    act(page, do="cancel", id="long-1")
    end = row_until(page, "long-1", "cancelled", timeout=15)
    assert end["class"] == "cancelled" and end["cancel"] is False, end
    # the button was disabled while the cancel was under way
    assert any(r["status"] == "running" and r["cancel"] is False
               for r in rows_of(page, "long-1")), rows_of(page, "long-1")
    actions = [r for r in page.reports if r["event"] == "action"]
    assert not [a for a in actions if a["error"]], actions
    assert actions[-1]["text"] == "cancel of long-1 sent", actions
    assert not [r for r in page.reports if r["event"] == "pageerror"], page.reports


def test_watch_page_shows_a_refused_cancel(tc, browsers, web, jobs_stack):
    broker, gw = jobs_stack
    user = uid("j")
    page = watch(browsers, web, gw.url(user, tc.token(user)))
    connected(page)
    # a running task a plain worker publishes: the page offers a cancel, but
    # it is no job of this user's, so the gateway refuses it
    tc.worker(broker).publish_ok(event("plain-1", user, "running", progress=10))
    first = seen(page, lambda r: r["event"] == "row" and r["id"] == "plain-1", "row plain-1")
    assert first["cancel"] is True, first
    since = act(page, do="cancel", id="plain-1")
    refused = action_text(page, lambda r: r["error"], "the refusal", since)
    assert refused["text"].startswith("cancel of plain-1 refused: not_found: "), refused
    assert '{"type":"error","code":"not_found"' in refused["text"], refused
    # the button is offered again, the task is untouched, the page connected
    again = seen(page, lambda r: r["event"] == "row" and r["id"] == "plain-1"
                 and r["cancel"] is True, "cancel button enabled again", since)
    assert again["status"] == "running", again
    states = [r["text"] for r in page.reports if r["event"] == "state"]
    assert states[-1].startswith("connected to "), states


def test_watch_page_shows_refused_starts(tc, browsers, web, jobs_stack):
    _, gw = jobs_stack
    user = uid("j")
    ttl = 15  # expires while the page is open (the socket stays); a busy machine needs the margin
    page = watch(browsers, web, gw.url(user, tc.token(user, exp_in=ttl)))
    minted = time.monotonic()
    connected(page)

    def refused(what, **action):
        since = act(page, do="start", **action)
        r = action_text(page, lambda r: not r["text"].startswith("starting "), what, since)
        assert r["error"] is True, r
        return r["text"]

    act(page, do="start", kind="render", args='{"steps":200,"delay":0.2}', task_id="dup-1")
    action_text(page, lambda r: r["text"] == "started dup-1", "started dup-1")
    text = refused("409", kind="thumb", args="{}", task_id="dup-1")
    assert text.startswith("start refused (409): task_exists: "), text
    assert '{"type":"error","code":"task_exists"' in text, text
    text = refused("413", kind="render", args=json.dumps({"pad": "x" * 80000}))
    assert text.startswith("start refused (413): message_too_big: "), text
    text = refused("a page-side check", kind="render", args="{steps")
    assert text.startswith("args must be JSON: "), text
    time.sleep(max(0.0, ttl + 1 - (time.monotonic() - minted)))
    text = refused("401", kind="render", args="{}")
    assert text.startswith("start refused (401): unauthorized: token expired"), text
    assert '{"type":"error","code":"unauthorized"' in text, text
    assert not [r for r in page.reports if r["event"] == "pageerror"], page.reports
