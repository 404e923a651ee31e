// Type declarations of the taskcast browser client (index.js).

/** A task frame: the latest event of one task (docs/protocol.md, section 4). */
export interface TaskFrame {
  type: 'task';
  seq: number;
  task_id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  progress?: number;
  message?: string;
  data?: unknown;
  ts: number;
}

export interface HelloFrame {
  type: 'hello';
  user_id: string;
  epoch: string;
  gateway: string;
}

/** An error frame from the gateway, or code "client" for a local failure
 * (getToken threw, the URL function threw, the WebSocket constructor threw). */
export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateEvent {
  state: ConnectionState;
  previous: ConnectionState;
  /** The close code that caused it (reconnecting, closed). */
  code?: number;
  reason?: string;
  /** reconnecting: ms until the next attempt. */
  delay?: number;
}

export interface AuthEvent {
  /** 4401 or 4403. */
  code: number;
  /** The error frame's code: "unauthorized" or "forbidden". */
  error: string | null;
  message: string;
}

export interface ClientEvents {
  hello: HelloFrame;
  task: TaskFrame;
  state: StateEvent;
  error: ErrorFrame;
  auth: AuthEvent;
  /** The tasks map was cleared: a new epoch (seq starts again from 1). */
  reset: { epoch: string | null };
  /** Every frame received, parsed, before it is handled. */
  message: { type: string; [key: string]: unknown };
}

/** What a WebSocket constructor must provide (browsers, Node >= 22, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type UrlSource =
  | string
  | string[]
  | ((info: { attempt: number; previous: string | null }) => string | Promise<string>);

export interface ConnectOptions {
  /** Called for every connect; may be async. */
  getToken: () => string | Promise<string>;
  /** Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** First reconnect delay, ms (500). */
  minDelay?: number;
  /** Cap of the exponential backoff, ms (30000). */
  maxDelay?: number;
  /** Send {"type":"ping"} after this much silence, ms (20000). */
  pingInterval?: number;
  /** Reconnect when nothing arrives this long after a ping, ms (10000). */
  pongTimeout?: number;
  /** Reconnect when no hello arrives this long after the socket opens, ms (15000). */
  connectTimeout?: number;
  /** Reconnect with a fresh token this long before its exp, ms (30000; at most a quarter of its lifetime). */
  renewBefore?: number;
  /** Send since/epoch on reconnects (true). */
  resume?: boolean;
}

export declare const CLOSE: Readonly<{
  NORMAL: 1000; SHUTDOWN: 1001; UNSUPPORTED: 1003; NO_STATUS: 1005; ABNORMAL: 1006;
  TOO_BIG: 1009; INTERNAL: 1011; BAD_REQUEST: 4400; UNAUTHORIZED: 4401; FORBIDDEN: 4403;
  SLOW_CONSUMER: 4429; UNAVAILABLE: 4503;
}>;

export declare class TaskcastClient {
  constructor(url: UrlSource, options: ConnectOptions);
  /** Latest frame of every task of the user, by task_id. */
  readonly tasks: Map<string, TaskFrame>;
  /** The epoch of the last hello. */
  readonly epoch: string | null;
  /** The seq of the last task frame applied (0: none yet in this epoch). */
  readonly seq: number;
  readonly state: ConnectionState;
  readonly hello: HelloFrame | null;
  /** The current or last URL, without the token. */
  readonly url: string | null;
  readonly stats: { attempts: number; hellos: number; applied: number; dropped: number };
  on<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K]) => void): void;
  /** Sends {"type":"cancel","task_id":...}; false when no session is open. */
  cancel(taskId: string): boolean;
  /** Closes with 1000; no reconnect. */
  close(): void;
}

export declare function connect(url: UrlSource, options: ConnectOptions): TaskcastClient;
/** A JWT's claims, not verified; null if unreadable. */
export declare function decodeJwt(token: string): Record<string, unknown> | null;
/** Ms until a token should be renewed, or null without a usable exp. */
export declare function renewDelay(token: string, renewBefore?: number, now?: number): number | null;
/** Reconnect delay of attempt n: uniform in [minDelay, min(maxDelay, minDelay * 2^n)]. */
export declare function backoff(n: number, minDelay?: number, maxDelay?: number,
                                random?: () => number): number;
