// taskcast browser client: one WebSocket to a gateway, the user's tasks kept
// up to date across reconnects (docs/protocol.md, sections 4 and 5).
//
// No dependency: runs in browsers and in Node >= 18 given a WebSocket
// constructor (Node 22's global one, or the `ws` package's).
//
// The contract it keeps: every task frame is applied once, in seq order, per
// epoch. A reconnect asks the gateway for what it missed (`since` = the last
// applied seq, `epoch` = the epoch of the last hello); a frame with a seq at
// or below the last applied one is a duplicate and is dropped; a hello with
// another epoch (or an answer to a connect without `since`) starts the map
// over, because a new epoch means seq counts from 1 again.

const OPEN = 1; // WebSocket.OPEN, the same in every implementation

/** Close codes the gateway sends (docs/protocol.md, section 4). */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  SHUTDOWN: 1001,
  UNSUPPORTED: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  BAD_REQUEST: 4400,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  SLOW_CONSUMER: 4429,
  UNAVAILABLE: 4503,
});

const DEFAULTS = {
  minDelay: 500, // first reconnect delay, ms
  maxDelay: 30000, // cap of the exponential backoff, ms
  pingInterval: 20000, // send {"type":"ping"} after this much silence, ms
  pongTimeout: 10000, // then give the link up if nothing arrives within this, ms
  connectTimeout: 15000, // from the socket's creation to the hello, ms
  renewBefore: 30000, // reconnect with a fresh token this long before exp, ms
  resume: true, // send since/epoch on reconnects
};

const MAX_TIMER = 0x7fffffff; // setTimeout's limit (~24.8 days)

/**
 * Decodes a JWT's claims without verifying anything (the gateway verifies).
 * Returns the claims object, or null when the token is not a readable JWT.
 */
export function decodeJwt(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/**
 * Milliseconds from now until the token should be renewed, or null when it
 * carries no usable exp. The lifetime counted is the shorter of exp - now (by
 * the local clock) and exp - iat (immune to a skewed local clock when the
 * token was just minted); renewal comes renewBefore ms before its end, but
 * never later than three quarters of it.
 */
export function renewDelay(token, renewBefore = DEFAULTS.renewBefore, now = Date.now()) {
  const c = decodeJwt(token);
  if (!c || typeof c.exp !== 'number' || !Number.isFinite(c.exp)) return null;
  let ttl = c.exp * 1000 - now;
  if (typeof c.iat === 'number' && c.iat < c.exp) ttl = Math.min(ttl, (c.exp - c.iat) * 1000);
  if (ttl <= 0) return null; // expired already: the gateway will say so
  return Math.max(0, ttl - Math.min(renewBefore, ttl / 4));
}

/**
 * The delay before reconnect attempt n (0, 1, ...): exponential backoff with
 * full jitter, uniformly drawn in [minDelay, min(maxDelay, minDelay * 2^n)].
 */
export function backoff(n, minDelay = DEFAULTS.minDelay, maxDelay = DEFAULTS.maxDelay,
                        random = Math.random) {
  const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(n, 30));
  return Math.round(minDelay + random() * Math.max(0, cap - minDelay));
}

/**
 * Opens a client. url: a ws(s) URL of the task route
 * (`wss://host/api/v1/ws/tasks/USER`), an array of them (the next one is
 * tried after each lost connection or failed attempt), or a function
 * ({attempt, previous}) => URL (may be async), called for every connect.
 */
export function connect(url, options) {
  return new TaskcastClient(url, options);
}

export class TaskcastClient {
  constructor(url, options = {}) {
    if (typeof options.getToken !== 'function') throw new TypeError('options.getToken is required');
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') {
      throw new TypeError('no WebSocket: pass options.WebSocket (e.g. the ws package\'s)');
    }
    if (Array.isArray(url) ? url.length === 0 : typeof url !== 'string' && typeof url !== 'function') {
      throw new TypeError('url must be a string, a non-empty array of strings or a function');
    }
    this._url = url;
    this._WS = WS;
    this._getToken = options.getToken;
    this._opt = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) if (options[k] !== undefined) this._opt[k] = options[k];

    /** Latest frame of every task, by task_id. */
    this.tasks = new Map();
    /** The epoch of the last hello, or null. */
    this.epoch = null;
    /** The seq of the last task frame applied in this epoch (0: none). */
    this.seq = 0;
    /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
    this.state = 'connecting';
    /** The last hello frame. */
    this.hello = null;
    /** The URL of the current or last connection (token removed). */
    this.url = null;
    /** Counters: connection attempts, hellos, frames applied, duplicates dropped. */
    this.stats = { attempts: 0, hellos: 0, applied: 0, dropped: 0 };

    this._listeners = new Map();
    this._ws = null;
    this._urlIndex = 0;
    this._failures = 0; // reconnects since the last hello (backoff exponent)
    this._authRefusals = 0; // consecutive 4401/4403 without a hello between
    this._resumeAsked = false;
    this._lastError = null; // the error frame before a close
    this._lastRx = 0;
    this._pinged = false;
    this._timers = { retry: null, watch: null, renew: null };
    this._closed = false;

    this._open(0);
  }

  // ------------------------------------------------------------ events

  /** Adds a listener; returns a function that removes it. */
  on(type, fn) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._listeners.get(type)?.delete(fn);
  }

  /** A listener that throws does not stop the client: it is rethrown apart. */
  _emit(type, detail) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (e) {
        setTimeout(() => { throw e; }, 0);
      }
    }
  }

  _setState(state, extra) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous, ...extra });
  }

  // ------------------------------------------------------------ public API

  /**
   * Asks the gateway to cancel a job of this user. Returns false when there
   * is no open session to send it on (nothing is queued). Success shows as the
   * task's `cancelled` frame; an unknown job as an `error` event (not_found).
   */
  cancel(taskId) {
    if (typeof taskId !== 'string' || taskId === '') throw new TypeError('taskId must be a non-empty string');
    return this._send({ type: 'cancel', task_id: taskId });
  }

  /** Closes with 1000 and stops for good; the tasks map stays as it was. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._clearTimers();
    this._drop(CLOSE.NORMAL, 'client closed');
    this._setState('closed', { code: CLOSE.NORMAL });
  }

  // ------------------------------------------------------------ connecting

  async _open(attempt) {
    if (this._closed) return;
    this.stats.attempts++;
    let u;
    let token;
    try {
      u = new URL(await this._nextUrl(attempt));
      token = await this._getToken();
      if (typeof token !== 'string' || token === '') throw new Error('getToken() gave no token');
    } catch (e) {
      if (this._closed) return;
      this._emit('error', { type: 'error', code: 'client', message: String(e?.message ?? e) });
      this._retry(null);
      return;
    }
    if (this._closed) return;

    u.searchParams.delete('since');
    u.searchParams.delete('epoch');
    this._resumeAsked = this._opt.resume && this.epoch !== null;
    if (this._resumeAsked) {
      u.searchParams.set('since', String(this.seq));
      u.searchParams.set('epoch', this.epoch);
    }
    this.url = u.toString();
    u.searchParams.set('token', token);

    let ws;
    try {
      ws = new this._WS(u.toString());
    } catch (e) {
      this._emit('error', { type: 'error', code: 'client', message: String(e?.message ?? e) });
      this._retry(null);
      return;
    }
    this._ws = ws;
    this._lastError = null;
    this._lastRx = Date.now();
    this._pinged = false;
    this._hello = false;
    this._token = token;
    ws.onopen = () => {
      if (ws === this._ws) this._lastRx = Date.now();
    };
    ws.onmessage = (ev) => {
      if (ws === this._ws) this._onMessage(ev.data);
    };
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._ws = null;
      this._onClose(ev.code, ev.reason);
    };
    this._watch();
  }

  async _nextUrl(attempt) {
    const u = this._url;
    if (typeof u === 'string') return u;
    if (Array.isArray(u)) return u[this._urlIndex % u.length];
    return await u({ attempt, previous: this.url });
  }

  /** Closes the current socket without reacting to its close event. */
  _drop(code, reason) {
    const ws = this._ws;
    this._ws = null;
    clearTimeout(this._timers.watch);
    clearTimeout(this._timers.renew);
    if (!ws) return;
    try {
      ws.close(code, reason);
    } catch {
      // a socket still connecting may refuse a code; it is dropped anyway
      try { ws.close(); } catch { /* nothing more to do */ }
    }
  }

  _clearTimers() {
    for (const k of Object.keys(this._timers)) {
      clearTimeout(this._timers[k]);
      this._timers[k] = null;
    }
  }

  /**
   * Schedules the next connect. delay null: the backoff's next step (and,
   * with a URL list, the next URL); a number: that delay on the same URL.
   */
  _retry(delay, code, reason) {
    if (this._closed) return;
    clearTimeout(this._timers.watch);
    clearTimeout(this._timers.renew);
    if (delay === null) {
      delay = backoff(this._failures, this._opt.minDelay, this._opt.maxDelay);
      this._failures++;
      this._urlIndex++;
    }
    this._setState('reconnecting', { code, reason, delay });
    clearTimeout(this._timers.retry);
    this._timers.retry = setTimeout(() => this._open(this._failures), delay);
  }

  // ------------------------------------------------------------ receiving

  _onMessage(data) {
    this._lastRx = Date.now();
    this._pinged = false;
    if (typeof data !== 'string') return; // the gateway sends text only
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    this._emit('message', f);
    switch (f.type) {
      case 'hello': this._onHello(f); break;
      case 'task': this._onTask(f); break;
      case 'error':
        this._lastError = f;
        this._emit('error', f);
        break;
      default: break; // pong, and whatever a later gateway adds
    }
  }

  _onHello(f) {
    // A new epoch, or an answer to a connect that did not resume: the state
    // that follows is complete by itself, so the map starts over.
    if (f.epoch !== this.epoch || !this._resumeAsked) {
      const had = this.epoch !== null || this.tasks.size > 0;
      this.tasks.clear();
      this.seq = 0;
      this.epoch = typeof f.epoch === 'string' ? f.epoch : null;
      if (had) this._emit('reset', { epoch: this.epoch });
    }
    this._resumeAsked = true; // a later hello on this socket is a new epoch
    this.hello = f;
    this.stats.hellos++;
    this._hello = true;
    this._failures = 0;
    this._authRefusals = 0;
    this._scheduleRenew();
    this._watch(); // from the connect timeout to the ping rhythm
    this._emit('hello', f);
    this._setState('open');
  }

  _onTask(f) {
    if (typeof f.seq !== 'number' || typeof f.task_id !== 'string') return;
    if (!this._hello || f.seq <= this.seq) {
      this.stats.dropped++;
      return;
    }
    this.seq = f.seq;
    this.tasks.set(f.task_id, f);
    this.stats.applied++;
    this._emit('task', f);
  }

  _onClose(code, reason) {
    if (this._closed) return;
    const err = this._lastError;
    switch (code) {
      case CLOSE.UNAUTHORIZED:
      case CLOSE.FORBIDDEN:
        // Once: a fresh token may fix it. Twice in a row: it will not.
        if (++this._authRefusals >= 2) {
          this._closed = true;
          this._clearTimers();
          this._emit('auth', { code, error: err?.code ?? null, message: err?.message ?? reason ?? '' });
          this._setState('closed', { code, reason });
          return;
        }
        this._retry(this._opt.minDelay, code, reason);
        return;
      case CLOSE.BAD_REQUEST:
        // since/epoch refused: start over without them.
        this.epoch = null;
        this.seq = 0;
        this._retry(this._opt.minDelay, code, reason);
        return;
      case CLOSE.SLOW_CONSUMER:
        this._retry(this._opt.minDelay, code, reason); // resume where we were
        return;
      default:
        // 1001 (gateway stopping), 1006 (link lost), 4503 (broker away),
        // 1011, anything else: back off, and try the next URL.
        this._retry(null, code, reason);
    }
  }

  // ------------------------------------------------------------ liveness and tokens

  _send(obj) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN || !this._hello) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  /**
   * One timer watches the link: no hello within connectTimeout, or nothing
   * received for pingInterval + pongTimeout (a ping is sent at
   * pingInterval; the gateway answers it with a pong) closes the socket and
   * reconnects. The gateway's own WebSocket pings are invisible to page
   * scripts, so the client asks with {"type":"ping"}.
   */
  _watch() {
    clearTimeout(this._timers.watch);
    const o = this._opt;
    const now = Date.now();
    let due;
    if (!this._hello) {
      due = this._lastRx + o.connectTimeout; // _lastRx: the socket's creation or its open
      if (now >= due) return this._dead('no hello');
    } else {
      const idle = now - this._lastRx;
      if (idle >= o.pingInterval + o.pongTimeout) return this._dead('no answer to ping');
      if (idle >= o.pingInterval && !this._pinged) {
        this._pinged = this._send({ type: 'ping' });
      }
      due = this._lastRx + (idle >= o.pingInterval ? o.pingInterval + o.pongTimeout : o.pingInterval);
    }
    this._timers.watch = setTimeout(() => this._watch(), Math.min(MAX_TIMER, Math.max(10, due - now)));
  }

  _dead(why) {
    this._drop(CLOSE.NORMAL, why);
    this._retry(null, CLOSE.ABNORMAL, why);
  }

  _scheduleRenew() {
    clearTimeout(this._timers.renew);
    const d = renewDelay(this._token, this._opt.renewBefore);
    if (d === null) return;
    this._timers.renew = setTimeout(() => {
      // Reconnect with a fresh token; the resume makes it lossless.
      this._drop(CLOSE.NORMAL, 'token renewal');
      this._retry(0, CLOSE.NORMAL, 'token renewal');
    }, Math.min(MAX_TIMER, Math.max(250, d)));
  }
}
