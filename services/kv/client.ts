/**
 * A TypeScript client for the kv server (and any Redis-compatible server): connections that
 * pipeline, and a pool of them.
 *
 * - {@link KvConnection}: one TCP connection. Every `command` called in the same tick goes out in
 *   one write (automatic pipelining) and replies are matched in order; `pipeline` sends a list of
 *   commands at once and returns every reply, errors included as {@link ReplyError} values.
 *   `command` rejects with the ReplyError of an error reply. A reply that does not come within
 *   `commandTimeoutMs` fails every pending command and closes the connection (the stream can no
 *   longer be trusted).
 * - {@link KvPool}: up to `size` connections, created on demand, reused; an idle one is closed
 *   after `idleTimeoutMs`; `acquire` waits at most `acquireTimeoutMs` for a free one; a broken
 *   connection is dropped, not handed out again.
 *
 * Arguments are strings (sent as UTF-8), numbers or bytes. Replies: strings are decoded as UTF-8
 * unless `strings: "binary"` (then one char per byte, see resp.ts), integers are numbers (bigint
 * beyond 2^53), nil is null, arrays are arrays, RESP3 maps are Maps.
 *
 * @example
 * ```ts
 * import { KvPool } from "./client.ts";
 * const pool = new KvPool({ hostname: "127.0.0.1", port: 6379, size: 10 });
 * await pool.command("SET", "greeting", "hello");
 * console.log(await pool.command("GET", "greeting")); // "hello"
 * await pool.close();
 * ```
 *
 * @module
 */
import { type Reply, ReplyError, ReplyReader } from "./reply.ts";
import { binaryToUtf8 } from "./resp.ts";

export { ReplyError };

/** An argument: text (UTF-8), a number, or raw bytes. */
export type Arg = string | number | bigint | Uint8Array;

/** Options of a {@link KvConnection}. */
export interface ConnectionOptions {
  hostname?: string;
  port?: number;
  /** AUTH after connecting (with `username`, "default" if absent). */
  password?: string;
  username?: string;
  /** SELECT after connecting. */
  db?: number;
  /** CLIENT SETNAME after connecting. */
  name?: string;
  /** 3: HELLO 3 after connecting (maps, doubles, booleans). */
  resp?: 2 | 3;
  /** "utf8" (default): strings in replies decoded as UTF-8; "binary": one char per byte. */
  strings?: "utf8" | "binary";
  connectTimeoutMs?: number;
  /** Most ms to wait for a reply (0 = forever). */
  commandTimeoutMs?: number;
}

/** The connection was closed or broke: nothing more can be sent on it. */
export class ConnectionClosedError extends Error {
  constructor(message = "connection closed") {
    super(message);
    this.name = "ConnectionClosedError";
  }
}

/** A reply did not come in time, or a free connection did not. */
export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

const encoder = new TextEncoder();

type Timer = ReturnType<typeof setTimeout>;

/** Encodes commands as RESP arrays of bulk strings into one buffer. */
function encode(commands: readonly (readonly Arg[])[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  const head = (s: string) => {
    const b = encoder.encode(s);
    parts.push(b);
    total += b.length;
  };
  for (const args of commands) {
    head(`*${args.length}\r\n`);
    for (const a of args) {
      const b = a instanceof Uint8Array ? a : encoder.encode(String(a));
      head(`$${b.length}\r\n`);
      parts.push(b);
      total += b.length;
      head("\r\n");
    }
  }
  const out = new Uint8Array(total);
  let p = 0;
  for (const b of parts) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}

function decodeStrings(r: Reply): Reply {
  if (typeof r === "string") return binaryToUtf8(r);
  if (Array.isArray(r)) return r.map(decodeStrings);
  if (r instanceof Map) {
    const m = new Map<Reply, Reply>();
    for (const [k, v] of r) m.set(decodeStrings(k), decodeStrings(v));
    return m;
  }
  return r;
}

interface Pending {
  resolve(r: Reply): void;
  reject(e: Error): void;
}

/** One connection; see the module documentation. */
export class KvConnection {
  #conn: Deno.TcpConn;
  #reader = new ReplyReader();
  #pending: Pending[] = [];
  #outbox: (readonly Arg[])[] = [];
  #flushScheduled = false;
  #closed = false;
  #utf8: boolean;
  #timeoutMs: number;
  #timer: Timer | undefined;
  /** When the connection was last used (the pool's idle timeout). */
  lastUsedMs = Date.now();

  private constructor(conn: Deno.TcpConn, options: ConnectionOptions) {
    this.#conn = conn;
    this.#utf8 = (options.strings ?? "utf8") === "utf8";
    this.#timeoutMs = options.commandTimeoutMs ?? 0;
    this.#readLoop();
  }

  /** Connects, then AUTH / HELLO / SELECT / CLIENT SETNAME as the options ask. */
  static async connect(options: ConnectionOptions = {}): Promise<KvConnection> {
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    let timer: Timer | undefined;
    const conn = await Promise.race([
      Deno.connect({ hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 6379 }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new TimeoutError(`connect: no connection in ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    conn.setNoDelay(true);
    const c = new KvConnection(conn, options);
    try {
      if (options.resp === 3) {
        const hello: Arg[] = ["HELLO", 3];
        if (options.password !== undefined) {
          hello.push("AUTH", options.username ?? "default", options.password);
        }
        await c.command(...hello);
      } else if (options.password !== undefined) {
        await c.command("AUTH", options.username ?? "default", options.password);
      }
      if (options.db !== undefined && options.db !== 0) await c.command("SELECT", options.db);
      if (options.name !== undefined) await c.command("CLIENT", "SETNAME", options.name);
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Commands sent and not answered yet. */
  get inFlight(): number {
    return this.#pending.length;
  }

  /** Runs one command; rejects with a ReplyError on an error reply. */
  command(...args: Arg[]): Promise<Reply> {
    return this.#send(args).then((r) => {
      if (r instanceof ReplyError) throw r;
      return r;
    });
  }

  /** Sends every command at once; every reply, errors as ReplyError values. */
  pipeline(commands: readonly (readonly Arg[])[]): Promise<Reply[]> {
    return Promise.all(commands.map((c) => this.#send(c)));
  }

  #send(args: readonly Arg[]): Promise<Reply> {
    if (this.#closed) return Promise.reject(new ConnectionClosedError());
    if (args.length === 0) return Promise.reject(new RangeError("an empty command"));
    this.lastUsedMs = Date.now();
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.#outbox.push(args);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flush());
      }
      if (this.#timeoutMs > 0 && this.#timer === undefined) this.#arm();
    });
  }

  #arm(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#pending.length > 0) {
        this.#fail(new TimeoutError(`no reply in ${this.#timeoutMs} ms`));
      }
    }, this.#timeoutMs);
  }

  async #flush(): Promise<void> {
    this.#flushScheduled = false;
    const batch = this.#outbox;
    this.#outbox = [];
    if (batch.length === 0 || this.#closed) return;
    const bytes = encode(batch);
    try {
      let off = 0;
      while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
    } catch (e) {
      this.#fail(new ConnectionClosedError(`write failed: ${(e as Error).message}`));
    }
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.#reader.push(buf.subarray(0, n));
        for (let r = this.#reader.next(); r !== undefined; r = this.#reader.next()) {
          const p = this.#pending.shift();
          if (p === undefined) throw new Error("a reply nobody asked for");
          p.resolve(this.#utf8 ? decodeStrings(r) : r);
        }
        if (this.#timer !== undefined) {
          clearTimeout(this.#timer);
          this.#timer = undefined;
          if (this.#pending.length > 0) this.#arm();
        }
      }
      this.#fail(new ConnectionClosedError("the server closed the connection"));
    } catch (e) {
      this.#fail(
        e instanceof ConnectionClosedError ? e : new ConnectionClosedError((e as Error).message),
      );
    }
  }

  #fail(e: Error): void {
    const pending = this.#pending;
    this.#pending = [];
    this.#outbox = [];
    for (const p of pending) p.reject(e);
    this.close();
  }

  /** Closes at once; commands not answered yet fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    const pending = this.#pending;
    this.#pending = [];
    for (const p of pending) p.reject(new ConnectionClosedError());
  }
}

/** Options of a {@link KvPool}. */
export interface PoolOptions extends ConnectionOptions {
  /** Connections at most. */
  size?: number;
  /** An idle connection is closed after this long (0 = never). */
  idleTimeoutMs?: number;
  /** `acquire` fails after waiting this long for a free connection. */
  acquireTimeoutMs?: number;
}

/** A pool of connections; see the module documentation. */
export class KvPool {
  readonly size: number;
  #options: PoolOptions;
  #idle: KvConnection[] = [];
  #busy = new Set<KvConnection>();
  #opening = 0;
  #waiters: { resolve(c: KvConnection): void; reject(e: Error): void; timer: Timer }[] = [];
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(options: PoolOptions = {}) {
    this.size = options.size ?? 10;
    if (!Number.isInteger(this.size) || this.size < 1) {
      throw new RangeError(`pool size ${this.size}`);
    }
    this.#options = options;
    const idle = options.idleTimeoutMs ?? 30_000;
    if (idle > 0) {
      const sweeper = setInterval(() => this.closeIdle(idle), Math.max(100, Math.floor(idle / 2)));
      Deno.unrefTimer(sweeper as unknown as number);
      this.#sweeper = sweeper;
    }
  }

  /** Connections open, idle, in use, being opened, and callers waiting. */
  stats(): { open: number; idle: number; busy: number; opening: number; waiting: number } {
    return {
      open: this.#idle.length + this.#busy.size,
      idle: this.#idle.length,
      busy: this.#busy.size,
      opening: this.#opening,
      waiting: this.#waiters.length,
    };
  }

  /** Closes the idle connections unused for `idleMs` or more (the idle timer calls this). */
  closeIdle(idleMs: number): void {
    const cutoff = Date.now() - idleMs;
    this.#idle = this.#idle.filter((c) => {
      if (c.lastUsedMs > cutoff && !c.closed) return true;
      c.close();
      return false;
    });
  }

  /** A connection for the caller's exclusive use; give it back with {@link release}. */
  async acquire(): Promise<KvConnection> {
    if (this.#closed) throw new ConnectionClosedError("the pool is closed");
    for (let c = this.#idle.pop(); c !== undefined; c = this.#idle.pop()) {
      if (!c.closed) {
        this.#busy.add(c);
        return c;
      }
    }
    if (this.#busy.size + this.#opening < this.size) {
      this.#opening++;
      try {
        const c = await KvConnection.connect(this.#options);
        this.#busy.add(c);
        return c;
      } finally {
        this.#opening--;
      }
    }
    const timeoutMs = this.#options.acquireTimeoutMs ?? 10_000;
    return await new Promise<KvConnection>((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(new TimeoutError(`no free connection in ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  /** Gives a connection back (a broken one is dropped). */
  release(c: KvConnection): void {
    if (!this.#busy.delete(c)) return;
    if (c.closed || this.#closed) {
      c.close();
      // A waiter gets a fresh connection instead.
      const w = this.#waiters.shift();
      if (w !== undefined) {
        clearTimeout(w.timer);
        this.acquire().then(w.resolve, w.reject);
      }
      return;
    }
    const w = this.#waiters.shift();
    if (w !== undefined) {
      clearTimeout(w.timer);
      this.#busy.add(c);
      w.resolve(c);
      return;
    }
    c.lastUsedMs = Date.now();
    this.#idle.push(c);
  }

  /** Runs `fn` with a connection of the pool. */
  async with<T>(fn: (c: KvConnection) => Promise<T>): Promise<T> {
    const c = await this.acquire();
    try {
      return await fn(c);
    } finally {
      this.release(c);
    }
  }

  /** One command on a pooled connection. */
  command(...args: Arg[]): Promise<Reply> {
    return this.with((c) => c.command(...args));
  }

  /** A pipeline on one pooled connection. */
  pipeline(commands: readonly (readonly Arg[])[]): Promise<Reply[]> {
    return this.with((c) => c.pipeline(commands));
  }

  /** Closes every connection; waiting callers fail. */
  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new ConnectionClosedError("the pool is closed"));
    }
    this.#waiters = [];
    for (const c of this.#idle) c.close();
    for (const c of this.#busy) c.close();
    this.#idle = [];
    this.#busy.clear();
    return Promise.resolve();
  }
}
