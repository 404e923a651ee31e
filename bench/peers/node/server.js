'use strict';
// Node ws + Redis pub/sub peer.
//
// GET /api/v1/ws/tasks/{user_id}?token=JWT (WebSocket). The handshake completes,
// then the token is checked (jsonwebtoken, HS256 only, exp required, sub ==
// user_id). A refused client gets {"type":"error","code":...,"message":...} and
// close code 4401 (bad token) or 4403 (a good token of another user), as taskcast
// does. An accepted one is subscribed to Redis channel "tasks:{user_id}", gets
// {"type":"hello","user_id":...} once Redis confirmed the subscription, then every
// message published on that channel, byte for byte, as a text frame.
//
// The primary process forks TASKCAST_PEER_WORKERS workers (node:cluster, default
// 2: one per core) that share the listening socket. Each worker holds one Redis
// connection for all its subscriptions: a channel is subscribed on its user's first
// WebSocket and unsubscribed with the last; one listener dispatches every message
// to the user's WebSockets.
//
// Environment: TASKCAST_PEER_PORT, TASKCAST_PEER_JWT_SECRET,
// TASKCAST_PEER_REDIS_URL, TASKCAST_PEER_WORKERS, TASKCAST_PEER_READY_DIR (each
// worker writes ready.<pid> there once it serves).

const cluster = require('node:cluster');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { WebSocket, WebSocketServer } = require('ws');
const { createClient } = require('redis');
const jwt = require('jsonwebtoken');

const PORT = Number(process.env.TASKCAST_PEER_PORT);
// A KeyObject, not the string: given a string, jsonwebtoken 9 first tries to parse
// it as a public key on every verify(), which costs ~0.5 ms on Node 18-20
// (auth0/node-jsonwebtoken#966, #1046); with a KeyObject a verify() costs ~12 us.
const SECRET = crypto.createSecretKey(Buffer.from(process.env.TASKCAST_PEER_JWT_SECRET || ''));
const REDIS_URL = process.env.TASKCAST_PEER_REDIS_URL || 'redis://127.0.0.1:6379';
const WORKERS = Number(process.env.TASKCAST_PEER_WORKERS || 2);
const READY_DIR = process.env.TASKCAST_PEER_READY_DIR || '';
const PREFIX = 'tasks:';
const ROUTE = /^\/api\/v1\/ws\/tasks\/([^/?]+)(?:\?(.*))?$/;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;

function primary() {
  let stopping = false;
  for (let i = 0; i < WORKERS; i++) {
    cluster.fork();
  }
  // A worker that dies is an error the benchmark must see, not hide by a respawn.
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} exited (${signal || code})`);
      process.exit(1);
    }
    if (Object.keys(cluster.workers).length === 0) {
      process.exit(0);
    }
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      stopping = true;
      for (const w of Object.values(cluster.workers)) {
        w.process.kill('SIGTERM');
      }
    });
  }
}

async function worker() {
  const redis = createClient({ url: REDIS_URL });
  // node-redis reconnects and subscribes again to every channel by itself.
  redis.on('error', (e) => console.error(`redis: ${e.message}`));
  await redis.connect();

  // user id -> { conns: Set<WebSocket>, waiting: number, ready: Promise }
  const users = new Map();

  function deliver(message, channel) {
    const entry = users.get(channel.toString().slice(PREFIX.length));
    if (entry === undefined) {
      return;
    }
    for (const ws of entry.conns) {
      ws.send(message, { binary: false });
    }
  }

  function release(user, entry) {
    if (entry.conns.size === 0 && entry.waiting === 0 && users.get(user) === entry) {
      users.delete(user);
      redis.unsubscribe(PREFIX + user, deliver, true)
        .catch((e) => console.error(`unsubscribe: ${e.message}`));
    }
  }

  // Adds ws to user's connections once Redis delivers the channel to this worker,
  // right after its hello, so that nothing reaches it before the hello.
  async function join(user, ws) {
    let entry = users.get(user);
    if (entry === undefined) {
      entry = { conns: new Set(), waiting: 0, ready: null };
      entry.ready = redis.subscribe(PREFIX + user, deliver, true);
      users.set(user, entry);
    }
    entry.waiting++;
    try {
      await entry.ready;
    } catch (e) {
      if (users.get(user) === entry) {
        users.delete(user); // the next connection tries again
      }
      throw e;
    } finally {
      entry.waiting--;
    }
    if (ws.readyState !== WebSocket.OPEN) {
      release(user, entry);
      return;
    }
    ws.send(JSON.stringify({ type: 'hello', user_id: user }));
    entry.conns.add(ws);
    ws.on('close', () => {
      entry.conns.delete(ws);
      release(user, entry);
    });
  }

  function refuse(ws, closeCode, code, message) {
    ws.send(JSON.stringify({ type: 'error', code, message }));
    ws.close(closeCode);
  }

  function onConnection(ws, user, token) {
    ws.on('error', () => {}); // a broken connection just closes
    let claims;
    try {
      claims = jwt.verify(token, SECRET, { algorithms: ['HS256'] });
    } catch (e) {
      const expired = e instanceof jwt.TokenExpiredError;
      refuse(ws, CLOSE_UNAUTHORIZED, 'unauthorized', expired ? 'token expired' : 'invalid token');
      return;
    }
    if (typeof claims !== 'object' || typeof claims.exp !== 'number' ||
        typeof claims.sub !== 'string') {
      refuse(ws, CLOSE_UNAUTHORIZED, 'unauthorized', 'invalid token');
      return;
    }
    if (claims.sub !== user) {
      refuse(ws, CLOSE_FORBIDDEN, 'forbidden', 'token is for another user');
      return;
    }
    join(user, ws).catch((e) => {
      console.error(`subscribe: ${e.message}`);
      ws.close(1011);
    });
  }

  // permessage-deflate off (ws's default for servers, and what its docs advise
  // for throughput); no client tracking: the worker keeps its own sets.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false,
    clientTracking: false, maxPayload: 64 * 1024 });
  const server = http.createServer((req, res) => {
    res.writeHead(404).end();
  });
  server.on('upgrade', (req, socket, head) => {
    const m = ROUTE.exec(req.url);
    if (m === null) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    let user;
    try {
      user = decodeURIComponent(m[1]);
    } catch (e) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const token = new URLSearchParams(m[2] || '').get('token') || '';
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, user, token));
  });
  server.listen({ host: '127.0.0.1', port: PORT, backlog: 4096 }, () => {
    if (READY_DIR) {
      fs.writeFileSync(path.join(READY_DIR, `ready.${process.pid}`), '');
    }
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (cluster.isPrimary) {
  primary();
} else {
  worker().catch((e) => {
    console.error(`worker: ${e.message}`);
    process.exit(1);
  });
}
