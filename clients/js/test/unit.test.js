// The client's rules against a scripted WebSocket (no server): what each
// close code does to the next URL, duplicates, epochs, backoff, JWT exp.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoff, connect, decodeJwt, renewDelay } from '../index.js';

/** A WebSocket whose peer the test plays. */
class FakeWS {
  static all = [];
  constructor(url) {
    this.url = new URL(url);
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWS.all.push(this);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close(code) { this.closedWith = code ?? 1005; this.readyState = 3; }
  // the peer
  open() { this.readyState = 1; this.onopen?.({}); }
  frame(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  serverClose(code) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const last = () => FakeWS.all[FakeWS.all.length - 1];
async function next(count) {
  for (let i = 0; i < 200 && FakeWS.all.length < count; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(FakeWS.all.length, count, 'a new socket');
  return last();
}

function client(opts = {}) {
  FakeWS.all = [];
  const c = connect('ws://gw.test/api/v1/ws/tasks/2', {
    getToken: () => 'tok', WebSocket: FakeWS, minDelay: 1, maxDelay: 2, ...opts,
  });
  return c;
}

const task = (seq, id = 't1', extra = {}) => ({ type: 'task', seq, task_id: id, status: 'running', ts: 1, ...extra });

test('drops seq at or below the last one, resumes with since/epoch', async () => {
  const c = client();
  const ws = await next(1);
  assert.equal(ws.url.searchParams.get('since'), null);
  assert.equal(ws.url.searchParams.get('token'), 'tok');
  ws.open();
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  const got = [];
  c.on('task', (f) => got.push(f.seq));
  for (const s of [1, 2, 2, 1, 3]) ws.frame(task(s, `t${s}`));
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(c.stats.dropped, 2);
  ws.serverClose(1006);
  const ws2 = await next(2);
  assert.equal(ws2.url.searchParams.get('since'), '3');
  assert.equal(ws2.url.searchParams.get('epoch'), 'E1');
  ws2.open();
  ws2.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  ws2.frame(task(3, 't3'));
  ws2.frame(task(4, 't1'));
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.equal(c.tasks.size, 3, 'same epoch: the map is kept');
  c.close();
});

test('a new epoch starts the map over', async () => {
  const c = client();
  const ws = await next(1);
  ws.open();
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  ws.frame(task(7, 'old'));
  const resets = [];
  c.on('reset', (r) => resets.push(r.epoch));
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E2', gateway: 'g' });
  ws.frame(task(1, 'new'));
  assert.deepEqual([...c.tasks.keys()], ['new']);
  assert.equal(c.seq, 1);
  assert.deepEqual(resets, ['E2']);
  c.close();
});

test('4400 reconnects without since and rebuilds the map', async () => {
  const c = client();
  const ws = await next(1);
  ws.open();
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  ws.frame(task(5, 'gone'));
  ws.frame({ type: 'error', code: 'bad_request', message: 'since must be ...' });
  ws.serverClose(4400);
  const ws2 = await next(2);
  assert.equal(ws2.url.searchParams.get('since'), null);
  assert.equal(ws2.url.searchParams.get('epoch'), null);
  ws2.open();
  ws2.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  ws2.frame(task(5, 'kept'));
  assert.deepEqual([...c.tasks.keys()], ['kept'], 'the snapshot replaced the map, seq 5 applied');
  c.close();
});

test('4429 and 4503 reconnect with resume; the URL list moves on 4503 only', async () => {
  const c = connect(['ws://a.test/api/v1/ws/tasks/2', 'ws://b.test/api/v1/ws/tasks/2'], {
    getToken: () => 'tok', WebSocket: (FakeWS.all = [], FakeWS), minDelay: 1, maxDelay: 2,
  });
  const ws = await next(1);
  ws.open();
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  ws.frame(task(9));
  ws.serverClose(4429);
  const ws2 = await next(2);
  assert.equal(ws2.url.host, 'a.test');
  assert.equal(ws2.url.searchParams.get('since'), '9');
  ws2.serverClose(4503);
  const ws3 = await next(3);
  assert.equal(ws3.url.host, 'b.test');
  assert.equal(ws3.url.searchParams.get('since'), '9');
  c.close();
});

test('4401 once: a fresh token; twice in a row: auth, closed, no retry', async () => {
  let tokens = 0;
  const c = client({ getToken: async () => `tok${++tokens}` });
  const auth = [];
  c.on('auth', (a) => auth.push(a));
  const ws = await next(1);
  ws.open();
  ws.frame({ type: 'error', code: 'unauthorized', message: 'token expired' });
  ws.serverClose(4401);
  const ws2 = await next(2);
  assert.equal(ws2.url.searchParams.get('token'), 'tok2');
  ws2.open();
  ws2.frame({ type: 'error', code: 'unauthorized', message: 'bad signature' });
  ws2.serverClose(4401);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(FakeWS.all.length, 2);
  assert.deepEqual(auth, [{ code: 4401, error: 'unauthorized', message: 'bad signature' }]);
  assert.equal(c.state, 'closed');
});

test('a hello between two 4401s resets the count', async () => {
  const c = client();
  const ws = await next(1);
  ws.serverClose(4401);
  const ws2 = await next(2);
  ws2.open();
  ws2.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  ws2.serverClose(4401);
  await next(3);
  assert.notEqual(c.state, 'closed');
  c.close();
});

test('close() sends 1000 and never reconnects; cancel() needs a session', async () => {
  const c = client();
  const ws = await next(1);
  assert.equal(c.cancel('j-1'), false, 'not open yet');
  ws.open();
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  assert.equal(c.cancel('j-1'), true);
  assert.deepEqual(ws.sent, [{ type: 'cancel', task_id: 'j-1' }]);
  const states = [];
  c.on('state', (s) => states.push(s.state));
  c.close();
  assert.equal(ws.closedWith, 1000);
  ws.serverClose(1000);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(FakeWS.all.length, 1);
  assert.deepEqual(states, ['closed']);
});

test('silence: a ping, then a reconnect', async () => {
  const c = client({ pingInterval: 100, pongTimeout: 100 });
  const ws = await next(1);
  ws.open();
  ws.frame({ type: 'hello', user_id: '2', epoch: 'E1', gateway: 'g' });
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(ws.sent, [{ type: 'ping' }]);
  ws.frame({ type: 'pong' }); // answered: alive
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(FakeWS.all.length, 1);
  await next(2); // no answer to the next ping
  assert.equal(ws.closedWith, 1000);
  c.close();
});

test('a URL function that fails is an error event and a retry, not a crash', async () => {
  FakeWS.all = [];
  let calls = 0;
  const c = connect(() => (++calls === 1 ? 'not a url' : 'ws://gw.test/api/v1/ws/tasks/2'), {
    getToken: () => 'tok', WebSocket: FakeWS, minDelay: 1, maxDelay: 2,
  });
  const errors = [];
  c.on('error', (e) => errors.push(e.code));
  await next(1);
  assert.deepEqual(errors, ['client']);
  assert.equal(calls, 2);
  c.close();
});

test('backoff: full jitter between minDelay and the doubling cap', () => {
  assert.equal(backoff(0, 500, 30000, () => 1), 500);
  assert.equal(backoff(3, 500, 30000, () => 1), 4000);
  assert.equal(backoff(3, 500, 30000, () => 0), 500);
  assert.equal(backoff(40, 500, 30000, () => 1), 30000);
  for (let n = 0; n < 50; n++) {
    const d = backoff(n);
    assert.ok(d >= 500 && d <= 30000, String(d));
  }
});

test('JWT exp: decoded without verifying, renewal before it', () => {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const tok = (claims) => `${b64({ alg: 'HS256' })}.${b64(claims)}.sig`;
  const now = 1_700_000_000_000;
  assert.deepEqual(decodeJwt(tok({ sub: 'ü', exp: 5 })), { sub: 'ü', exp: 5 });
  assert.equal(decodeJwt('nope'), null);
  assert.equal(renewDelay(tok({ exp: now / 1000 + 3600 }), 30000, now), 3600000 - 30000);
  assert.equal(renewDelay(tok({ exp: now / 1000 + 4 }), 30000, now), 3000, 'a quarter of a short life');
  // iat bounds the lifetime when the local clock runs behind the issuer's
  assert.equal(renewDelay(tok({ iat: now / 1000 + 600, exp: now / 1000 + 604 }), 30000, now), 3000);
  assert.equal(renewDelay(tok({ exp: now / 1000 - 1 }), 30000, now), null);
  assert.equal(renewDelay(tok({ sub: '2' }), 30000, now), null);
});
