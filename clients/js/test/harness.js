// Test harness: a real taskcast-broker and taskcast-gateway on free loopback
// ports, as tests/e2e/conftest.py starts them, events published with
// taskcast-cli, HS256 tokens minted with node:crypto.
//
// Binaries: $TASKCAST_BUILD_DIR/bin (default <repo>/build/bin).
// At finish() every process it started is stopped (SIGTERM, exit status 0
// required unless it was killed on purpose) and every log is checked for a
// sanitizer report or a token the test used.

import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../../..');
export const BUILD = path.resolve(process.env.TASKCAST_BUILD_DIR || path.join(REPO, 'build'));
const BIN = path.join(BUILD, 'bin');

export const START_TIMEOUT = 15000; // sanitizer builds start slowly
export const STOP_TIMEOUT = 10000;
const SANITIZER_MARKS = ['AddressSanitizer', 'LeakSanitizer', 'runtime error:'];
const RESERVED_PORTS = new Set([5555, 5556, 5557, 5558, 8000, 8001]);

export const SECRET = 'js-hs256-' + crypto.randomBytes(24).toString('hex');

/** The WebSocket the tests give the client: the `ws` package (npm ci), else Node's own. */
export async function webSocketImpl() {
  try {
    return (await import('ws')).WebSocket;
  } catch {
    if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
    throw new Error('no WebSocket implementation: run `npm ci` in clients/js (installs ws)');
  }
}

/** A WebSocket subclass that records every URL it is constructed with. */
export function recording(WS) {
  const urls = [];
  class Recorded extends WS {
    constructor(url, ...rest) {
      super(url, ...rest);
      urls.push(String(url));
    }
  }
  return { WS: Recorded, urls };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls cond every 20 ms; throws with what after timeout ms. */
export async function waitFor(cond, timeout, what) {
  const deadline = Date.now() + timeout;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

const handedOut = new Set();

/** n distinct free loopback ports, never one handed out before in this run. */
export async function freePorts(n) {
  const ports = [];
  const servers = [];
  try {
    while (ports.length < n) {
      const s = net.createServer();
      await new Promise((res, rej) => s.once('error', rej).listen(0, '127.0.0.1', res));
      servers.push(s);
      const p = s.address().port;
      if (handedOut.has(p) || RESERVED_PORTS.has(p)) continue;
      handedOut.add(p);
      ports.push(p);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
  return ports;
}

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TASKCAST_')) env[k] = v;
  env.ASAN_OPTIONS ??= 'detect_leaks=1';
  env.UBSAN_OPTIONS ??= 'print_stacktrace=1';
  return { ...env, ...extra };
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** An HS256 JWT: sub, iat now, exp now + expIn seconds. */
export function mintToken(sub, { secret = SECRET, expIn = 300, ...claims } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, iat: now, exp: now + expIn, ...claims }));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

function httpStatus(port, p) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => req.destroy());
  });
}

const alive = new Set(); // children to kill if this process exits early
process.on('exit', () => {
  for (const c of alive) try { c.kill('SIGKILL'); } catch { /* gone */ }
});

class Proc {
  constructor(h, name, argv, env) {
    this.h = h;
    this.name = name;
    this.logPath = path.join(h.tmp, `${name}.log`);
    const fd = fs.openSync(this.logPath, 'a');
    this.child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.code = undefined;
    this.killed = false;
    this.exited = new Promise((res) => this.child.once('exit', (code, sig) => {
      alive.delete(this.child);
      this.code = code ?? sig;
      res(this.code);
    }));
    alive.add(this.child);
    h.procs.push(this);
  }

  running() { return this.code === undefined; }

  log() {
    try { return fs.readFileSync(this.logPath, 'utf8'); } catch { return ''; }
  }

  async waitExit(timeout) {
    let timer;
    const t = new Promise((res) => { timer = setTimeout(() => res('timeout'), timeout); });
    const r = await Promise.race([this.exited, t]);
    clearTimeout(timer);
    return r;
  }

  /** SIGTERM; the exit status must be 0. */
  async stop() {
    if (this.running()) this.child.kill('SIGTERM');
    if (await this.waitExit(STOP_TIMEOUT) === 'timeout') {
      this.child.kill('SIGKILL');
      throw new Error(`${this.name} did not exit within ${STOP_TIMEOUT} ms of SIGTERM`);
    }
    if (this.code !== 0) throw new Error(`${this.name} exited with ${this.code}\n${this.log()}`);
  }

  /** SIGKILL, on purpose: its exit status is not checked. */
  async kill() {
    this.killed = true;
    if (this.running()) this.child.kill('SIGKILL');
    await this.exited;
  }
}

export class Harness {
  constructor(name) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tc-js-${name.replace(/\W+/g, '_')}-`));
    this.procs = [];
    this.secrets = new Set([SECRET]);
    this.cleanups = [];
  }

  async broker() {
    const ports = await freePorts(4);
    const [ingest, fanout, sync, jobs] = ports.map((p) => `tcp://127.0.0.1:${p}`);
    const argv = [path.join(BIN, 'taskcast-broker'), '--ingest', ingest, '--fanout', fanout,
      '--sync', sync, '--jobs', jobs];
    const p = new Proc(this, `broker${this.procs.length}`, argv, cleanEnv({ TASKCAST_LOG_LEVEL: 'debug' }));
    Object.assign(p, { ingest, fanout, sync, jobs });
    return p; // ready when a gateway on it is ready (/ready needs its heartbeats)
  }

  /** A gateway on broker b, ready (/ready 200: the broker's heartbeats arrive). */
  async gateway(b, { port, name } = {}) {
    port ??= (await freePorts(1))[0];
    name ??= `gw${port}`;
    const argv = [path.join(BIN, 'taskcast-gateway'), '--listen', `127.0.0.1:${port}`,
      '--fanout', b.fanout, '--sync', b.sync, '--jobs', b.jobs, '--name', name];
    const g = new Proc(this, name, argv, cleanEnv({ TASKCAST_LOG_LEVEL: 'debug', TASKCAST_JWT_SECRET: SECRET }));
    Object.assign(g, { port, gwName: name, url: (user) => `ws://127.0.0.1:${port}/api/v1/ws/tasks/${user}` });
    const deadline = Date.now() + START_TIMEOUT;
    for (;;) {
      if (!g.running()) throw new Error(`${name} exited with ${g.code}\n${g.log()}`);
      if (!b.running()) throw new Error(`${b.name} exited with ${b.code}\n${b.log()}`);
      if (await httpStatus(port, '/ready') === 200) return g;
      if (Date.now() > deadline) throw new Error(`${name} not ready within ${START_TIMEOUT} ms\n${g.log()}`);
      await sleep(50);
    }
  }

  /** A token for sub (registered: it must never appear in a log). */
  token(sub, opts) {
    const t = mintToken(sub, opts);
    this.secrets.add(t);
    this.secrets.add(t.split('.')[2]);
    return t;
  }

  /** One event through taskcast-cli publish; resolves to its seq. */
  publish(b, user, task, status = 'running', progress) {
    const args = ['publish', '--ingest', b.ingest, '--user', user, '--task', task, '--status', status];
    if (progress !== undefined) args.push('--progress', String(progress));
    return new Promise((resolve, reject) => {
      execFile(path.join(BIN, 'taskcast-cli'), args, { env: cleanEnv({}), timeout: 20000 },
        (err, stdout, stderr) => {
          const m = /ok seq=(\d+)/.exec(stdout);
          if (err || !m) reject(new Error(`publish failed: ${err?.message ?? ''} ${stdout} ${stderr}`));
          else resolve(Number(m[1]));
        });
    });
  }

  /** Stops everything (gateways first), then checks exit statuses and logs. */
  async finish() {
    for (const f of this.cleanups.reverse()) await f();
    const problems = [];
    const order = [...this.procs].reverse().sort((a, b) => (a.name.startsWith('broker') ? 1 : 0) -
                                                         (b.name.startsWith('broker') ? 1 : 0));
    for (const p of order) {
      if (p.killed) continue;
      try {
        await p.stop();
      } catch (e) {
        problems.push(e.message);
      }
    }
    for (const p of this.procs) {
      const text = p.log();
      for (const m of SANITIZER_MARKS) if (text.includes(m)) problems.push(`${p.name} log contains ${m}`);
      for (const s of this.secrets) if (s.length >= 16 && text.includes(s)) problems.push(`${p.name} log contains a token or secret`);
    }
    if (problems.length) {
      const logs = this.procs.map((p) => `--- ${p.name} (${p.logPath}) ---\n${p.log()}`).join('\n');
      throw new Error(`teardown: ${problems.join('; ')}\n${logs}`);
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** Collects a client's events. */
export function collect(client) {
  const seen = { tasks: [], hellos: [], states: [], errors: [], auth: [], resets: [] };
  client.on('task', (f) => seen.tasks.push(f));
  client.on('hello', (f) => seen.hellos.push(f));
  client.on('state', (s) => seen.states.push(s));
  client.on('error', (f) => seen.errors.push(f));
  client.on('auth', (a) => seen.auth.push(a));
  client.on('reset', (r) => seen.resets.push(r));
  return seen;
}

/** 1..n */
export const range = (n) => Array.from({ length: n }, (_, i) => i + 1);
