// The client against a real taskcast-broker and taskcast-gateway on loopback.
// Each test counts every seq the client hands out: exactly once, in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect } from '../index.js';
import {
  Harness, collect, freePorts, range, recording, sleep, waitFor, webSocketImpl,
} from './harness.js';

const WS = await webSocketImpl();
const FAST = { minDelay: 100, maxDelay: 1000 }; // reconnect within a second here
const WAIT = 15000; // any one wait (sanitizer builds are slow)

/** Runs body(h) with a fresh harness; stops every process after it. */
async function withHarness(t, body) {
  const h = new Harness(t.name);
  let failed = null;
  try {
    await body(h);
  } catch (e) {
    failed = e;
  }
  try {
    await h.finish();
  } catch (e) {
    failed ??= e;
  }
  if (failed) throw failed;
}

/** Publishes events first..last for user (tasks t0..t2 in turn), checks their seqs. */
async function publishRange(h, b, user, first, last) {
  for (let i = first; i <= last; i++) {
    assert.equal(await h.publish(b, user, `t${i % 3}`, 'running', i), i);
  }
}

/** Every seq 1..n handed out exactly once, in order; the map holds each task's latest. */
function assertExactlyOnce(client, seen, n) {
  assert.deepEqual(seen.tasks.map((f) => f.seq), range(n));
  for (let k = 0; k < 3 && k < n; k++) {
    const last = Math.max(...range(n).filter((i) => i % 3 === k));
    assert.equal(client.tasks.get(`t${k}`)?.seq, last, `task t${k}`);
    assert.equal(client.tasks.get(`t${k}`)?.progress, last);
  }
}

test('reconnects after a gateway restart: every seq once', async (t) => withHarness(t, async (h) => {
  const b = await h.broker();
  const gw = await h.gateway(b, { name: 'gw-before' });
  const user = 'u-restart';
  const rec = recording(WS);
  const client = connect(gw.url(user), { getToken: () => h.token(user), WebSocket: rec.WS, ...FAST });
  h.cleanups.push(() => client.close());
  const seen = collect(client);
  await waitFor(() => client.state === 'open', WAIT, 'the first hello');

  await publishRange(h, b, user, 1, 5);
  await waitFor(() => client.seq === 5, WAIT, 'seq 5');
  await gw.stop(); // 1001 to the client
  await publishRange(h, b, user, 6, 10); // while no gateway runs
  await h.gateway(b, { port: gw.port, name: 'gw-after' });
  await waitFor(() => client.seq === 10, WAIT, 'seq 10 (replayed)');
  await publishRange(h, b, user, 11, 15);
  await waitFor(() => client.seq === 15, WAIT, 'seq 15 (live)');

  assertExactlyOnce(client, seen, 15);
  assert.deepEqual(seen.hellos.map((f) => f.gateway), ['gw-before', 'gw-after']);
  assert.equal(seen.resets.length, 0, 'same epoch: the map was kept');
  const resumed = rec.urls.filter((u) => u.includes('since=5&epoch='));
  assert.ok(resumed.length >= 1, `a reconnect resumed from seq 5: ${rec.urls.map(redact)}`);
  assert.ok(seen.states.some((s) => s.state === 'reconnecting' && s.code === 1001));
}));

for (const form of ['array', 'function']) {
  test(`resumes on a second gateway (URL ${form}): every seq once`, async (t) => withHarness(t, async (h) => {
    const b = await h.broker();
    const [a, bb] = await Promise.all([h.gateway(b, { name: 'gw-a' }), h.gateway(b, { name: 'gw-b' })]);
    const user = `u-move-${form}`;
    let calls = 0;
    // The function form: A first, then B (what a page's own failover would do).
    const url = form === 'array' ? [a.url(user), bb.url(user)] : () => (calls++ === 0 ? a.url(user) : bb.url(user));
    const client = connect(url, { getToken: () => h.token(user), WebSocket: WS, ...FAST });
    h.cleanups.push(() => client.close());
    const seen = collect(client);
    await waitFor(() => client.state === 'open', WAIT, 'the first hello');
    assert.equal(client.hello.gateway, 'gw-a');

    await publishRange(h, b, user, 1, 5);
    await waitFor(() => client.seq === 5, WAIT, 'seq 5 on A');
    await a.kill(); // no close frame: the client sees the link drop
    await publishRange(h, b, user, 6, 10);
    await waitFor(() => client.seq === 10, WAIT, 'seq 10 on B');
    await publishRange(h, b, user, 11, 15);
    await waitFor(() => client.seq === 15, WAIT, 'seq 15 on B');

    assertExactlyOnce(client, seen, 15);
    assert.deepEqual(seen.hellos.map((f) => f.gateway), ['gw-a', 'gw-b']);
    assert.equal(client.url.includes(`:${bb.port}/`) && client.url.includes('since=5'), true, client.url);
  }));
}

for (const [what, sub, code] of [['a badly signed token', 'u-auth', 4401], ['another user\'s token', 'u-other', 4403]]) {
  test(`${what} gives one auth event and stops (${code})`, async (t) => withHarness(t, async (h) => {
    const b = await h.broker();
    const gw = await h.gateway(b);
    const user = 'u-auth';
    const rec = recording(WS);
    let tokens = 0;
    const getToken = async () => {
      tokens++;
      return code === 4401 ? h.token(user, { secret: 'not-the-gateways-secret-0123456789abcdef' }) : h.token(sub);
    };
    const client = connect(gw.url(user), { getToken, WebSocket: rec.WS, ...FAST, maxDelay: 200 });
    h.cleanups.push(() => client.close());
    const seen = collect(client);
    await waitFor(() => seen.auth.length > 0, WAIT, 'the auth event');
    await sleep(1500); // several backoff periods: any retry would show
    assert.equal(rec.urls.length, 2, 'one connect, one retry with a fresh token');
    assert.equal(tokens, 2);
    assert.equal(seen.auth.length, 1);
    assert.equal(seen.auth[0].code, code);
    assert.equal(seen.auth[0].error, code === 4401 ? 'unauthorized' : 'forbidden');
    assert.equal(client.state, 'closed');
    assert.deepEqual(seen.errors.map((e) => e.code), Array(2).fill(seen.auth[0].error));
    assert.equal(seen.hellos.length, 0);
  }));
}

test('short-lived tokens are renewed by getToken, events keep flowing', async (t) => withHarness(t, async (h) => {
  const b = await h.broker();
  const gw = await h.gateway(b);
  const user = 'u-renew';
  let tokens = 0;
  const getToken = async () => {
    tokens++;
    await sleep(5); // an async token endpoint
    return h.token(user, { expIn: 3 });
  };
  const client = connect(() => gw.url(user), { getToken, WebSocket: WS, ...FAST });
  h.cleanups.push(() => client.close());
  const seen = collect(client);
  await waitFor(() => client.state === 'open', WAIT, 'the first hello');

  // ~7 s of events: the first token has expired twice over by the end.
  const start = Date.now();
  let n = 0;
  while (Date.now() - start < 7000) {
    n++;
    assert.equal(await h.publish(b, user, `t${n % 3}`, 'running', n), n);
    await sleep(200);
  }
  await waitFor(() => client.seq === n, WAIT, `seq ${n}`);
  // A reconnect now must use a live token too: the gateway refuses expired ones.
  const hellos = seen.hellos.length;
  await gw.stop();
  await h.gateway(b, { port: gw.port });
  n++;
  assert.equal(await h.publish(b, user, `t${n % 3}`, 'running', n), n);
  await waitFor(() => client.seq === n && seen.hellos.length > hellos, WAIT, `seq ${n} after a restart`);

  assertExactlyOnce(client, seen, n);
  assert.ok(tokens >= 3, `getToken called ${tokens} times in ~7 s of 3 s tokens`);
  assert.ok(seen.hellos.length >= 4, `${seen.hellos.length} hellos: renewals reconnect`);
  assert.deepEqual(seen.errors.map((e) => e.code), ['shutdown'], 'no token was refused');
  assert.deepEqual(seen.auth, []);
  assert.equal(client.state, 'open');
}));

test('a silent link is detected by ping and replaced', async (t) => withHarness(t, async (h) => {
  const b = await h.broker();
  const gw = await h.gateway(b);
  // A TCP proxy to the gateway that can go silent without closing anything.
  const [pport] = await freePorts(1);
  const pairs = [];
  let frozen = false;
  const proxy = net.createServer((c) => {
    const up = net.connect(gw.port, '127.0.0.1');
    pairs.push(c, up);
    for (const [from, to] of [[c, up], [up, c]]) {
      from.on('data', (d) => { if (!frozen) to.write(d); });
      from.on('error', () => {});
    }
  });
  await new Promise((r) => proxy.listen(pport, '127.0.0.1', r));
  h.cleanups.push(async () => {
    for (const s of pairs) s.destroy();
    await new Promise((r) => proxy.close(r));
  });

  const user = 'u-dead';
  const urls = [`ws://127.0.0.1:${pport}/api/v1/ws/tasks/${user}`, gw.url(user)];
  const client = connect(urls, {
    getToken: () => h.token(user), WebSocket: WS, ...FAST, pingInterval: 300, pongTimeout: 300,
  });
  h.cleanups.push(() => client.close());
  const seen = collect(client);
  await waitFor(() => client.state === 'open', WAIT, 'the first hello');
  await publishRange(h, b, user, 1, 3);
  await waitFor(() => client.seq === 3, WAIT, 'seq 3 through the proxy');
  await sleep(1000); // pings through the live proxy keep it open
  assert.equal(seen.hellos.length, 1, 'a live link is kept');

  frozen = true;
  await publishRange(h, b, user, 4, 6);
  await waitFor(() => client.seq === 6, WAIT, 'seq 6 after the link went silent');
  assertExactlyOnce(client, seen, 6);
  assert.equal(seen.hellos.length, 2);
  assert.ok(client.url.includes(`:${gw.port}/`), client.url);
}));

test('cancel sends {"type":"cancel"}; an unknown job is an error event, the session stays', async (t) => withHarness(t, async (h) => {
  const b = await h.broker();
  const gw = await h.gateway(b);
  const user = 'u-cancel';
  const client = connect(gw.url(user), { getToken: () => h.token(user), WebSocket: WS, ...FAST });
  h.cleanups.push(() => client.close());
  const seen = collect(client);
  await waitFor(() => client.state === 'open', WAIT, 'the first hello');
  assert.equal(client.cancel('no-such-job'), true);
  await waitFor(() => seen.errors.length === 1, WAIT, 'the error frame');
  assert.equal(seen.errors[0].code, 'not_found');
  await publishRange(h, b, user, 1, 1);
  await waitFor(() => client.seq === 1, WAIT, 'seq 1');
  assert.equal(seen.hellos.length, 1);
  client.close();
  assert.equal(client.state, 'closed');
  assert.equal(client.cancel('x'), false);
}));

function redact(u) {
  return u.replace(/token=[^&]*/, 'token=[redacted]');
}
