/**
 * A small ZeroMQ client speaking ZMTP 3.0 (rfc.zeromq.org specs 23 and 37) over plain TCP with the
 * NULL security mechanism: enough to read vLLM's KV-cache event PUB socket ({@link ZmqSubscriber})
 * and to ask its replay ROUTER socket for missed batches ({@link ZmqDealer}).
 *
 * Wire format, in short: each side sends a 64-byte greeting (signature `FF 00*8 7F`, version 3.0,
 * mechanism `NULL`), then a `READY` command carrying metadata (`Socket-Type`, `Identity`), then
 * frames: a flags byte (bit 0 MORE, bit 1 LONG = 8-byte big-endian size instead of 1 byte, bit 2
 * COMMAND) followed by the body. A message is a run of frames ending with one without MORE. A
 * ZMTP 3.0 subscriber subscribes by sending the message `01 <prefix>` (`00 <prefix>` cancels).
 * Peers announcing 3.1 are accepted (they fall back to 3.0 for us); their `PING` is answered with
 * `PONG` and their `ERROR` ends the connection.
 *
 * Speed: bytes are read into one reusable buffer per connection (256 KiB by default, grown for a
 * larger message, shrunk back once it is consumed), every complete message in a read is parsed in
 * place and handed to `onMessage` synchronously as `subarray` views of that buffer. **The frames
 * are only valid during the callback**: copy (`frame.slice()`) whatever is kept. A multipart
 * message is written with a single write.
 *
 * Robustness: the peer's greeting, `READY` (socket type must pair with ours) and every frame are
 * checked against limits; any violation is a {@link ZmtpError}: the connection is closed,
 * `protocolErrors` is counted, `onError` is called and a connecting subscriber redials with
 * exponential backoff. Nothing is thrown out of the socket loops and no promise is left to reject
 * unhandled; `close()` ends every loop, timer and socket before it resolves.
 *
 * @module
 */

/** The peer broke the protocol (or a limit); the connection was closed because of it. */
export class ZmtpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZmtpError";
  }
}

/** Counters of a socket; `stats` returns a snapshot. */
export interface ZmtpStats {
  /** Messages handed to `onMessage`. */
  messages: number;
  /** Body bytes of those messages (all frames summed). */
  bytes: number;
  /** Connections closed because the peer broke the protocol or a limit. */
  protocolErrors: number;
  /** Handshakes completed on an endpoint that had been connected before and was lost. */
  reconnects: number;
  /** TCP connect attempts that failed (refused, unreachable, timed out). */
  connectFailures: number;
  /** Connections currently past the handshake. */
  peers: number;
}

/** Counters all at zero. */
export function zeroZmtpStats(): ZmtpStats {
  return { messages: 0, bytes: 0, protocolErrors: 0, reconnects: 0, connectFailures: 0, peers: 0 };
}

/** Options shared by {@link ZmqSubscriber} and {@link ZmqDealer}. */
export interface ZmtpSocketOptions {
  /**
   * Called synchronously for every complete message. The frames are views of the connection's
   * read buffer and are **only valid until the callback returns**; copy what you keep. An
   * exception thrown here is passed to `onError` and the connection carries on.
   */
  onMessage: (frames: Uint8Array[], peer: string) => void;
  /**
   * Errors: {@link ZmtpError} for protocol violations, otherwise I/O or connect errors, or an
   * exception thrown by a callback. `peer` is the endpoint (`tcp://host:port`).
   */
  onError?: (err: Error, peer: string) => void;
  /** A connection finished its handshake (subscriptions, if any, are on their way). */
  onConnect?: (peer: string) => void;
  /** A connection that had finished its handshake ended. */
  onDisconnect?: (peer: string, reason: string) => void;
  /** Largest frame accepted, in bytes (default 64 MiB). Command frames are capped at 1 MiB too. */
  maxFrameBytes?: number;
  /** Most frames in one message (default 16). */
  maxFrames?: number;
  /** Most body bytes in one message, all frames together (default `maxFrameBytes`). */
  maxMessageBytes?: number;
  /** Initial read buffer per connection, in bytes (default 256 KiB, at least 4 KiB). */
  readBufferBytes?: number;
  /** Time allowed for the TCP connect, and then for the ZMTP handshake (default 10,000 ms). */
  handshakeTimeoutMs?: number;
}

/** Options of {@link ZmqSubscriber}. */
export interface ZmqSubscriberOptions extends ZmtpSocketOptions {
  /** Topic prefixes to subscribe to (default `[empty]`: everything). */
  topics?: Uint8Array[];
  /** First redial delay after a connection is lost or fails (default 100 ms). */
  reconnectMinMs?: number;
  /** The delay doubles up to this (default 5,000 ms). */
  reconnectMaxMs?: number;
}

/** Options of {@link ZmqDealer}. */
export interface ZmqDealerOptions extends ZmtpSocketOptions {
  /** Routing id announced to the ROUTER (0 to 255 bytes; default empty: the ROUTER picks one). */
  identity?: Uint8Array;
}

/** A parsed `tcp://host:port` endpoint. */
export interface TcpEndpoint {
  hostname: string;
  port: number;
}

/**
 * Parses `tcp://host:port` (`[v6addr]` allowed). For `bind`, `*` means every IPv4 interface and
 * port 0 an ephemeral port. Throws a `TypeError` for anything else.
 */
export function parseTcpEndpoint(endpoint: string, forBind = false): TcpEndpoint {
  const m = typeof endpoint === "string"
    ? /^tcp:\/\/(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(endpoint)
    : null;
  if (!m) throw new TypeError(`not a tcp://host:port endpoint: ${String(endpoint).slice(0, 200)}`);
  let hostname = m[1];
  const port = Number(m[2]);
  if (port > 65535 || (!forBind && port === 0)) throw new TypeError(`bad port in ${endpoint}`);
  if (hostname.startsWith("[")) hostname = hostname.slice(1, -1);
  else if (hostname === "*") {
    if (!forBind) throw new TypeError(`cannot connect to a wildcard: ${endpoint}`);
    hostname = "0.0.0.0";
  }
  return { hostname, port };
}

// ---------------------------------------------------------------------------------------------
// Wire encoding

const FLAG_MORE = 1;
const FLAG_LONG = 2;
const FLAG_COMMAND = 4;
const GREETING_BYTES = 64;
const MAX_COMMAND_BYTES = 1 << 20;
/** Most of a PONG context echoed (spec 37 limits it to 16 bytes). */
const MAX_PING_CONTEXT = 16;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** Our greeting: ZMTP 3.0, NULL, as-server 0. */
const GREETING: Uint8Array = (() => {
  const g = new Uint8Array(GREETING_BYTES);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 0;
  g.set(ascii("NULL"), 12);
  return g;
})();

function headerBytes(size: number): number {
  return size > 255 ? 9 : 2;
}

/** Writes one frame header at `at`; returns the offset after it. */
function putHeader(out: Uint8Array, at: number, flags: number, size: number): number {
  if (size > 255) {
    out[at] = flags | FLAG_LONG;
    const hi = Math.floor(size / 0x100000000);
    const lo = size >>> 0;
    out[at + 1] = hi >>> 24;
    out[at + 2] = (hi >>> 16) & 0xff;
    out[at + 3] = (hi >>> 8) & 0xff;
    out[at + 4] = hi & 0xff;
    out[at + 5] = lo >>> 24;
    out[at + 6] = (lo >>> 16) & 0xff;
    out[at + 7] = (lo >>> 8) & 0xff;
    out[at + 8] = lo & 0xff;
    return at + 9;
  }
  out[at] = flags;
  out[at + 1] = size;
  return at + 2;
}

/** A whole multipart message as one buffer (one write). */
function encodeMessage(frames: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const f of frames) total += headerBytes(f.length) + f.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    at = putHeader(out, at, i < frames.length - 1 ? FLAG_MORE : 0, f.length);
    out.set(f, at);
    at += f.length;
  }
  return out;
}

function encodeCommand(name: string, data: Uint8Array): Uint8Array {
  const size = 1 + name.length + data.length;
  const out = new Uint8Array(headerBytes(size) + size);
  let at = putHeader(out, 0, FLAG_COMMAND, size);
  out[at++] = name.length;
  out.set(ascii(name), at);
  out.set(data, at + name.length);
  return out;
}

function encodeMetadata(props: [string, Uint8Array][]): Uint8Array {
  let total = 0;
  for (const [k, v] of props) total += 1 + k.length + 4 + v.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const [k, v] of props) {
    out[at++] = k.length;
    out.set(ascii(k), at);
    at += k.length;
    new DataView(out.buffer).setUint32(at, v.length);
    at += 4;
    out.set(v, at);
    at += v.length;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Printable rendering of peer-supplied bytes for error messages. */
function printable(b: Uint8Array, start: number, end: number, max = 64): string {
  let s = "";
  for (let i = start; i < end && s.length < max; i++) {
    const c = b[i];
    s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : "?";
  }
  return end - start > max ? s + "…" : s;
}

function sameAscii(b: Uint8Array, start: number, end: number, s: string): boolean {
  if (end - start !== s.length) return false;
  for (let i = 0; i < s.length; i++) {
    let c = b[start + i];
    if (c >= 0x61 && c <= 0x7a) c -= 0x20; // case-insensitive
    let d = s.charCodeAt(i);
    if (d >= 0x61 && d <= 0x7a) d -= 0x20;
    if (c !== d) return false;
  }
  return true;
}

const asError = (e: unknown): Error => e instanceof Error ? e : new Error(String(e));

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

// ---------------------------------------------------------------------------------------------
// One connection

interface Limits {
  maxFrameBytes: number;
  maxFrames: number;
  maxMessageBytes: number;
  readBufferBytes: number;
  handshakeTimeoutMs: number;
}

interface SessionConfig {
  limits: Limits;
  /** Greeting and READY, sent as soon as the connection is up. */
  hello: Uint8Array;
  /** Peer socket types we pair with. */
  accepts: readonly string[];
  stats: ZmtpStats;
  onMessage: (frames: Uint8Array[], peer: string) => void;
  /** An exception thrown by a user callback. */
  onCallbackError: (err: Error, peer: string) => void;
}

interface SessionEnd {
  handshook: boolean;
  reason: string;
  error: Error | null;
  protocolError: boolean;
}

const GREETING_STATE = 0;
const AWAIT_READY = 1;
const READY = 2;

/** Reads, parses and writes one ZMTP connection; `run()` never rejects. */
class Session {
  readonly peer: string;
  readonly #conn: Deno.Conn;
  readonly #cfg: SessionConfig;
  readonly #onReady: (s: Session) => void;
  readonly #minRoom: number;
  readonly #maxCommand: number;
  #buf: Uint8Array;
  /** Start of the message being assembled (or of unparsed bytes between messages). */
  #msgStart = 0;
  /** Next frame header. */
  #pos = 0;
  /** End of the bytes read. */
  #end = 0;
  /** Absolute end of a frame whose body is still incomplete, else 0. */
  #need = 0;
  #state = GREETING_STATE;
  #nFrames = 0;
  #msgBytes = 0;
  /** Offset (from #msgStart) and size of each frame of the message being assembled. */
  #frameAt: number[] = [];
  #closed = false;
  #handshook = false;
  #reason = "";
  #error: Error | null = null;
  #protocolError = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writes: Promise<boolean> = Promise.resolve(true);

  constructor(conn: Deno.Conn, peer: string, cfg: SessionConfig, onReady: (s: Session) => void) {
    this.#conn = conn;
    this.peer = peer;
    this.#cfg = cfg;
    this.#onReady = onReady;
    this.#buf = new Uint8Array(cfg.limits.readBufferBytes);
    this.#minRoom = Math.min(16384, cfg.limits.readBufferBytes >> 2);
    this.#maxCommand = Math.min(cfg.limits.maxFrameBytes, MAX_COMMAND_BYTES);
  }

  get ready(): boolean {
    return this.#state === READY && !this.#closed;
  }

  /** Queues bytes for writing; resolves false if the connection closed first or failed. */
  send(bytes: Uint8Array): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    const p = this.#writes.then(async () => {
      if (this.#closed) return false;
      try {
        await writeAll(this.#conn, bytes);
        return true;
      } catch (e) {
        this.#fail(asError(e), false);
        return false;
      }
    });
    this.#writes = p;
    return p;
  }

  close(reason = "closed locally"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reason = reason;
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }

  #fail(err: Error, protocol: boolean): void {
    if (this.#closed) return;
    this.#error = err;
    this.#protocolError = protocol;
    this.close(err.message);
  }

  async run(): Promise<SessionEnd> {
    const ms = this.#cfg.limits.handshakeTimeoutMs;
    this.#timer = setTimeout(
      () => this.#fail(new ZmtpError(`no ZMTP handshake within ${ms} ms`), true),
      ms,
    );
    void this.send(this.#cfg.hello);
    while (!this.#closed) {
      this.#prepareRead();
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buf.subarray(this.#end));
      } catch (e) {
        this.#fail(asError(e), false);
        break;
      }
      if (this.#closed) break;
      if (n === null) {
        if (this.#end > this.#msgStart) {
          const what = this.#state === GREETING_STATE ? "greeting" : "frame or message";
          this.#fail(new ZmtpError(`connection closed in the middle of a ${what}`), true);
        } else this.close("closed by peer");
        break;
      }
      this.#end += n;
      try {
        this.#parse();
      } catch (e) {
        this.#fail(asError(e), e instanceof ZmtpError);
      }
    }
    this.close();
    await this.#writes;
    return {
      handshook: this.#handshook,
      reason: this.#reason,
      error: this.#error,
      protocolError: this.#protocolError,
    };
  }

  /** Makes room after #end: resets, compacts or grows the buffer. */
  #prepareRead(): void {
    let b = this.#buf;
    const initial = this.#cfg.limits.readBufferBytes;
    const ms = this.#msgStart;
    const end = this.#end;
    if (ms === end) {
      this.#msgStart =
        this.#pos =
        this.#end =
        this.#need =
          0;
      if (b.length > initial) this.#buf = new Uint8Array(initial);
      return;
    }
    const need = this.#need;
    if (b.length - end >= this.#minRoom && need <= b.length) return;
    const required = Math.max(end - ms, need - ms) + this.#minRoom;
    if (required <= b.length) b.copyWithin(0, ms, end);
    else {
      b = new Uint8Array(Math.max(required, b.length * 2));
      b.set(this.#buf.subarray(ms, end));
      this.#buf = b;
    }
    this.#pos -= ms;
    this.#end -= ms;
    if (need) this.#need -= ms;
    this.#msgStart = 0;
  }

  /** Checks the greeting as far as it has arrived; true once all 64 bytes are in and fine. */
  #greeting(): boolean {
    const b = this.#buf;
    const n = this.#end;
    if (b[0] !== 0xff || (n >= 10 && (b[9] & 1) !== 1)) {
      throw new ZmtpError("not a ZMTP peer (bad greeting signature)");
    }
    if (n >= 11 && b[10] < 3) throw new ZmtpError(`ZMTP ${b[10]}.x is not supported (3.0 needed)`);
    if (n < GREETING_BYTES) return false;
    let mechEnd = 12;
    while (mechEnd < 32 && b[mechEnd] !== 0) mechEnd++;
    for (let i = mechEnd; i < 32; i++) {
      if (b[i] !== 0) throw new ZmtpError("malformed mechanism in greeting");
    }
    if (!sameAscii(b, 12, mechEnd, "NULL")) {
      throw new ZmtpError(`security mechanism ${printable(b, 12, mechEnd)} is not supported`);
    }
    this.#pos = this.#msgStart = GREETING_BYTES;
    this.#state = AWAIT_READY;
    return true;
  }

  #parse(): void {
    if (this.#state === GREETING_STATE && !this.#greeting()) return;
    const b = this.#buf;
    const end = this.#end;
    const lim = this.#cfg.limits;
    const frameAt = this.#frameAt;
    let p = this.#pos;
    let ms = this.#msgStart;
    this.#need = 0;
    try {
      while (!this.#closed) {
        const avail = end - p;
        if (avail < 1) break;
        const flags = b[p];
        if (flags > 7) throw new ZmtpError(`bad frame flags 0x${flags.toString(16)}`);
        let size: number;
        let bodyStart: number;
        if (flags & FLAG_LONG) {
          if (avail < 9) break;
          const hi = ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
          const lo = ((b[p + 5] << 24) | (b[p + 6] << 16) | (b[p + 7] << 8) | b[p + 8]) >>> 0;
          size = hi * 0x100000000 + lo;
          bodyStart = p + 9;
        } else {
          if (avail < 2) break;
          size = b[p + 1];
          bodyStart = p + 2;
        }
        const isCommand = (flags & FLAG_COMMAND) !== 0;
        if (isCommand) {
          if (flags & FLAG_MORE) throw new ZmtpError("command frame with the MORE flag");
          if (this.#nFrames > 0) throw new ZmtpError("command frame inside a multipart message");
          if (size > this.#maxCommand) {
            throw new ZmtpError(`command frame of ${size} bytes (limit ${this.#maxCommand})`);
          }
        } else {
          if (this.#state !== READY) throw new ZmtpError("message frame before the READY command");
          if (size > lim.maxFrameBytes) {
            throw new ZmtpError(`frame of ${size} bytes (limit ${lim.maxFrameBytes})`);
          }
          if (this.#nFrames >= lim.maxFrames) {
            throw new ZmtpError(`message of more than ${lim.maxFrames} frames`);
          }
          if (this.#msgBytes + size > lim.maxMessageBytes) {
            throw new ZmtpError(`message of more than ${lim.maxMessageBytes} bytes`);
          }
        }
        const bodyEnd = bodyStart + size;
        if (bodyEnd > end) {
          this.#need = bodyEnd;
          break;
        }
        p = bodyEnd;
        if (isCommand) {
          ms = p;
          this.#command(bodyStart, bodyEnd);
          continue;
        }
        const j = this.#nFrames * 2;
        frameAt[j] = bodyStart - ms;
        frameAt[j + 1] = size;
        this.#nFrames++;
        this.#msgBytes += size;
        if (flags & FLAG_MORE) continue;
        const n = this.#nFrames;
        const frames: Uint8Array[] = new Array(n);
        for (let i = 0, k = 0; i < n; i++, k += 2) {
          const at = ms + frameAt[k];
          frames[i] = b.subarray(at, at + frameAt[k + 1]);
        }
        const stats = this.#cfg.stats;
        stats.messages++;
        stats.bytes += this.#msgBytes;
        this.#nFrames = 0;
        this.#msgBytes = 0;
        ms = p;
        try {
          this.#cfg.onMessage(frames, this.peer);
        } catch (e) {
          this.#cfg.onCallbackError(asError(e), this.peer);
        }
      }
    } finally {
      this.#pos = p;
      this.#msgStart = ms;
    }
  }

  #command(start: number, end: number): void {
    const b = this.#buf;
    if (end - start < 1 || 1 + b[start] > end - start) {
      throw new ZmtpError("malformed command frame");
    }
    const nameEnd = start + 1 + b[start];
    const is = (name: string) => sameAscii(b, start + 1, nameEnd, name);
    if (is("ERROR")) {
      const len = nameEnd < end ? b[nameEnd] : 0;
      const reason = printable(b, nameEnd + 1, Math.min(end, nameEnd + 1 + len), 128);
      throw new ZmtpError(`peer sent ERROR: ${reason || "(no reason)"}`);
    }
    if (this.#state !== READY) {
      if (!is("READY")) {
        throw new ZmtpError(`expected READY, got command ${printable(b, start + 1, nameEnd)}`);
      }
      this.#ready(nameEnd, end);
      return;
    }
    if (is("PING")) {
      // TTL (2 bytes), then a context to echo.
      const ctx = b.subarray(
        Math.min(nameEnd + 2, end),
        Math.min(end, nameEnd + 2 + MAX_PING_CONTEXT),
      );
      void this.send(encodeCommand("PONG", ctx));
    } else if (is("READY")) throw new ZmtpError("second READY command");
    // PONG, SUBSCRIBE, CANCEL and unknown commands are ignored.
  }

  /** Validates the peer's READY metadata; on success the connection is up. */
  #ready(start: number, end: number): void {
    const b = this.#buf;
    let socketType: string | null = null;
    let p = start;
    while (p < end) {
      const nameLen = b[p];
      const nameStart = p + 1;
      const valueStart = nameStart + nameLen + 4;
      if (nameLen === 0 || valueStart > end) throw new ZmtpError("malformed READY metadata");
      const valueLen = ((b[valueStart - 4] << 24) | (b[valueStart - 3] << 16) |
        (b[valueStart - 2] << 8) | b[valueStart - 1]) >>> 0;
      if (valueLen > end - valueStart) throw new ZmtpError("malformed READY metadata");
      if (sameAscii(b, nameStart, nameStart + nameLen, "Socket-Type")) {
        socketType = printable(b, valueStart, valueStart + valueLen, 32);
      }
      p = valueStart + valueLen;
    }
    if (socketType === null) throw new ZmtpError("READY without a Socket-Type");
    if (!this.#cfg.accepts.includes(socketType.toUpperCase())) {
      throw new ZmtpError(
        `peer socket type ${socketType} does not pair with ours (wanted ${
          this.#cfg.accepts.join(" or ")
        })`,
      );
    }
    this.#state = READY;
    this.#handshook = true;
    clearTimeout(this.#timer);
    this.#onReady(this);
  }
}

// ---------------------------------------------------------------------------------------------
// Sockets

function positiveInt(name: string, v: number | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new RangeError(`${name} must be an integer >= ${min}`);
  }
  return v;
}

function dial(
  addr: TcpEndpoint,
  timeoutMs: number,
  aborts: Set<AbortController>,
): Promise<Deno.TcpConn> {
  const ac = new AbortController();
  aborts.add(ac);
  const timer = setTimeout(
    () => ac.abort(new ZmtpError(`TCP connect timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  return Deno.connect({ hostname: addr.hostname, port: addr.port, signal: ac.signal }).finally(
    () => {
      clearTimeout(timer);
      aborts.delete(ac);
    },
  );
}

function tune(conn: Deno.TcpConn): void {
  try {
    conn.setNoDelay(true);
    conn.setKeepAlive(true);
  } catch {
    // not fatal
  }
}

const endpointOf = (a: Deno.NetAddr): string =>
  `tcp://${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`;

/** What both sockets share: options, counters, callbacks, session bookkeeping. */
abstract class ZmtpSocket {
  protected readonly limits: Limits;
  protected readonly counters: ZmtpStats = zeroZmtpStats();
  protected readonly sessions = new Set<Session>();
  protected readonly aborts = new Set<AbortController>();
  protected readonly opts: ZmtpSocketOptions;
  protected closing = false;
  readonly #cfg: SessionConfig;

  protected constructor(opts: ZmtpSocketOptions, hello: Uint8Array, accepts: string[]) {
    if (typeof opts?.onMessage !== "function") throw new TypeError("onMessage is required");
    this.opts = opts;
    const maxFrameBytes = positiveInt("maxFrameBytes", opts.maxFrameBytes, 64 << 20);
    this.limits = {
      maxFrameBytes,
      maxFrames: positiveInt("maxFrames", opts.maxFrames, 16),
      maxMessageBytes: positiveInt("maxMessageBytes", opts.maxMessageBytes, maxFrameBytes),
      readBufferBytes: positiveInt("readBufferBytes", opts.readBufferBytes, 256 << 10, 4096),
      handshakeTimeoutMs: positiveInt("handshakeTimeoutMs", opts.handshakeTimeoutMs, 10_000),
    };
    this.#cfg = {
      limits: this.limits,
      hello,
      accepts,
      stats: this.counters,
      onMessage: opts.onMessage,
      onCallbackError: (err, peer) => this.reportError(err, peer),
    };
  }

  /** A snapshot of the counters. */
  get stats(): ZmtpStats {
    return { ...this.counters };
  }

  protected reportError(err: Error, peer: string): void {
    try {
      this.opts.onError?.(err, peer);
    } catch {
      // an onError that throws has nowhere further to report to
    }
  }

  protected callback(peer: string, f: () => void): void {
    try {
      f();
    } catch (e) {
      this.reportError(asError(e), peer);
    }
  }

  /** Runs a connection to its end, keeping counters and calling the hooks; never rejects. */
  protected async runSession(
    conn: Deno.TcpConn,
    peer: string,
    onReady: (s: Session) => void,
  ): Promise<SessionEnd> {
    tune(conn);
    const s = new Session(conn, peer, this.#cfg, (s) => {
      this.counters.peers++;
      onReady(s);
    });
    this.sessions.add(s);
    if (this.closing) s.close();
    const end = await s.run();
    this.sessions.delete(s);
    if (end.handshook) this.counters.peers--;
    if (end.error) {
      if (end.protocolError) this.counters.protocolErrors++;
      this.reportError(end.error, peer);
    }
    if (end.handshook) this.callback(peer, () => this.opts.onDisconnect?.(peer, end.reason));
    return end;
  }
}

/**
 * A SUB socket: connects to PUB/XPUB sockets (redialling forever with backoff) and/or accepts
 * their connections, subscribes each to the topics, and hands every message to `onMessage`.
 *
 * ```ts
 * const sub = new ZmqSubscriber({
 *   topics: [new TextEncoder().encode("kv@")],
 *   onMessage: ([topic, seq, payload], peer) => ingest(peer, seq.slice(), payload.slice()),
 * });
 * sub.connect("tcp://vllm-0:5557");
 * // ...
 * await sub.close();
 * ```
 */
export class ZmqSubscriber extends ZmtpSocket {
  readonly #topics: Uint8Array[];
  readonly #reconnectMinMs: number;
  readonly #reconnectMaxMs: number;
  readonly #loops = new Set<Promise<void>>();
  readonly #listeners = new Set<Deno.TcpListener>();
  readonly #wakers = new Set<() => void>();

  constructor(opts: ZmqSubscriberOptions) {
    const hello = concat([
      GREETING,
      encodeCommand("READY", encodeMetadata([["Socket-Type", ascii("SUB")]])),
    ]);
    super(opts, hello, ["PUB", "XPUB"]);
    this.#topics = (opts.topics ?? [new Uint8Array(0)]).map((t) => Uint8Array.from(t));
    this.#reconnectMinMs = positiveInt("reconnectMinMs", opts.reconnectMinMs, 100);
    this.#reconnectMaxMs = Math.max(
      this.#reconnectMinMs,
      positiveInt("reconnectMaxMs", opts.reconnectMaxMs, 5000),
    );
  }

  /**
   * Dials a PUB endpoint (`tcp://host:port`) and keeps it connected until {@link close}: a lost or
   * failed connection is redialled after `reconnectMinMs`, doubling up to `reconnectMaxMs` (reset
   * once a connection has completed its handshake and ended without a protocol error).
   * Subscriptions are re-sent on every connection. Throws a `TypeError` for a bad endpoint.
   */
  connect(endpoint: string): void {
    const addr = parseTcpEndpoint(endpoint);
    this.#checkOpen();
    this.#track(this.#connectLoop(endpoint, addr));
  }

  /**
   * Listens on `tcp://host:port` (`*` for all interfaces, port 0 for any) for PUB sockets that
   * connect to us; any number may. Returns the bound address. Throws if the address can't be
   * bound.
   */
  bind(endpoint: string): Deno.NetAddr {
    const addr = parseTcpEndpoint(endpoint, true);
    this.#checkOpen();
    const listener = Deno.listen({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
    this.#listeners.add(listener);
    this.#track(this.#acceptLoop(listener));
    return listener.addr;
  }

  /** Adds a topic prefix, on current connections and future ones. */
  subscribe(topic: Uint8Array): void {
    this.#checkOpen();
    const t = Uint8Array.from(topic);
    this.#topics.push(t);
    this.#broadcast(encodeMessage([concat([Uint8Array.of(1), t])]));
  }

  /** Removes one earlier subscription to exactly this prefix (no-op if there is none). */
  unsubscribe(topic: Uint8Array): void {
    this.#checkOpen();
    const i = this.#topics.findIndex((t) =>
      t.length === topic.length && t.every((x, k) => x === topic[k])
    );
    if (i < 0) return;
    this.#topics.splice(i, 1);
    this.#broadcast(encodeMessage([concat([Uint8Array.of(0), topic])]));
  }

  /** Closes every connection and listener and stops redialling; resolves once all loops ended. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      for (const wake of this.#wakers) wake();
      for (const ac of this.aborts) ac.abort();
      for (const l of this.#listeners) {
        try {
          l.close();
        } catch {
          // already closed
        }
      }
      for (const s of this.sessions) s.close();
    }
    while (this.#loops.size > 0) await Promise.all(this.#loops);
  }

  #checkOpen(): void {
    if (this.closing) throw new ZmtpError("subscriber is closed");
  }

  #broadcast(bytes: Uint8Array): void {
    for (const s of this.sessions) if (s.ready) void s.send(bytes);
  }

  #subscriptions(): Uint8Array {
    return concat(this.#topics.map((t) => encodeMessage([concat([Uint8Array.of(1), t])])));
  }

  #track(loop: Promise<void>): void {
    const p: Promise<void> = loop.catch((e) => this.reportError(asError(e), "")).finally(() =>
      this.#loops.delete(p)
    );
    this.#loops.add(p);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.closing) return resolve();
      const wake = () => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  #onReady(s: Session): void {
    if (this.#topics.length > 0) void s.send(this.#subscriptions());
    this.callback(s.peer, () => this.opts.onConnect?.(s.peer));
  }

  async #connectLoop(endpoint: string, addr: TcpEndpoint): Promise<void> {
    let delay = this.#reconnectMinMs;
    let everConnected = false;
    while (!this.closing) {
      let conn: Deno.TcpConn | null = null;
      try {
        conn = await dial(addr, this.limits.handshakeTimeoutMs, this.aborts);
      } catch (e) {
        if (this.closing) break;
        this.counters.connectFailures++;
        this.reportError(asError(e), endpoint);
      }
      if (conn) {
        const end = await this.runSession(conn, endpoint, (s) => {
          if (everConnected) this.counters.reconnects++;
          everConnected = true;
          this.#onReady(s);
        });
        if (end.handshook && !end.protocolError) delay = this.#reconnectMinMs;
      }
      if (this.closing) break;
      await this.#sleep(delay);
      delay = Math.min(delay * 2, this.#reconnectMaxMs);
    }
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    const local = endpointOf(listener.addr);
    while (!this.closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (this.closing || e instanceof Deno.errors.BadResource) break;
        this.reportError(asError(e), local);
        await this.#sleep(this.#reconnectMinMs); // e.g. out of file descriptors
        continue;
      }
      if (this.closing) {
        conn.close();
        break;
      }
      const peer = endpointOf(conn.remoteAddr);
      this.#track(this.runSession(conn, peer, (s) => this.#onReady(s)).then(() => {}));
    }
    try {
      listener.close();
    } catch {
      // already closed
    }
    this.#listeners.delete(listener);
  }
}

/**
 * A DEALER socket with one connection to a ROUTER (vLLM's replay endpoint). It does not redial:
 * after a lost connection (see `onDisconnect`, `connected`) call {@link connect} again.
 *
 * ```ts
 * const dealer = new ZmqDealer({ onMessage: ([, seq, payload]) => replayed(seq, payload.slice()) });
 * await dealer.connect("tcp://vllm-0:5558");
 * await dealer.send([new Uint8Array(0), startSeqBytes]);
 * ```
 */
export class ZmqDealer extends ZmtpSocket {
  #busy = false;
  #session: Session | null = null;
  #loop: Promise<void> | null = null;
  #everConnected = false;

  constructor(opts: ZmqDealerOptions) {
    const identity = opts.identity ?? new Uint8Array(0);
    if (!(identity instanceof Uint8Array) || identity.length > 255) {
      throw new RangeError("identity must be at most 255 bytes");
    }
    const ready = encodeMetadata([["Socket-Type", ascii("DEALER")], ["Identity", identity]]);
    super(opts, concat([GREETING, encodeCommand("READY", ready)]), ["ROUTER", "DEALER"]);
  }

  /** True while a connection is past its handshake. */
  get connected(): boolean {
    return this.#session?.ready ?? false;
  }

  /**
   * Connects to a ROUTER (`tcp://host:port`); resolves once the ZMTP handshake is done. Rejects
   * with the connect error or a {@link ZmtpError} (also counted and passed to `onError`), or if
   * already connected or closed.
   */
  async connect(endpoint: string): Promise<void> {
    const addr = parseTcpEndpoint(endpoint);
    if (this.closing) throw new ZmtpError("dealer is closed");
    if (this.#busy) throw new ZmtpError("dealer is already connected or connecting");
    this.#busy = true;
    let conn: Deno.TcpConn;
    const dialing = dial(addr, this.limits.handshakeTimeoutMs, this.aborts);
    this.#loop = dialing.then(() => {}, () => {});
    try {
      conn = await dialing;
    } catch (e) {
      this.#busy = false;
      if (!this.closing) this.counters.connectFailures++;
      throw this.closing ? new ZmtpError("dealer is closed") : e;
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#loop = this.runSession(conn, endpoint, (s) => {
      this.#session = s;
      if (this.#everConnected) this.counters.reconnects++;
      this.#everConnected = true;
      this.callback(endpoint, () => this.opts.onConnect?.(endpoint));
      resolve();
    }).then((end) => {
      this.#session = null;
      this.#busy = false;
      if (!end.handshook) reject(end.error ?? new ZmtpError(`connection ended: ${end.reason}`));
    });
    return await promise;
  }

  /**
   * Sends one multipart message (at least one frame) in a single write; resolves once it is
   * handed to the kernel. Rejects with a {@link ZmtpError} if not connected or if the connection
   * is lost before the write completes.
   */
  async send(frames: Uint8Array[]): Promise<void> {
    if (!Array.isArray(frames) || frames.length === 0) {
      throw new TypeError("a message needs at least one frame");
    }
    const s = this.#session;
    if (!s || !s.ready) throw new ZmtpError("dealer is not connected");
    if (!(await s.send(encodeMessage(frames)))) {
      throw new ZmtpError("connection lost before the message was written");
    }
  }

  /** Closes the connection (or aborts a connect); resolves once everything has ended. */
  async close(): Promise<void> {
    this.closing = true;
    for (const ac of this.aborts) ac.abort();
    for (const s of this.sessions) s.close();
    while (this.#loop) {
      const loop = this.#loop;
      await loop;
      if (this.#loop === loop) this.#loop = null;
    }
  }
}
