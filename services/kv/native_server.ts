/**
 * The RESP listener on a native event loop: Redis's own design (one epoll set, non-blocking
 * sockets, a read and a write system call per batch) driven from this isolate through FFI
 * (libc.ts), instead of Deno's socket ops. Same contract as {@link RespServer}: every complete
 * command of a read runs before the replies go out in one write; a batch past
 * {@link FLUSH_BYTES} of replies is written before the rest runs; a protocol error answers
 * `-ERR Protocol error: ...` and closes that connection only; past `maxclients` a new
 * connection is refused with Redis's error.
 *
 * A round: wait for ready sockets (epoll_wait without blocking; when nothing has been ready for
 * `spinMicros`, or every {@link YIELD_MS} of work so that timers and HTTP get their turn, on a
 * thread of Deno's pool so that this isolate is not blocked), read each ready connection and
 * run its commands, make the round's writes durable once for all of them (persistence: a group
 * commit), then write each connection's replies. A reply that does not fit the socket waits for
 * EPOLLOUT, and that connection is not read until it is sent (a client that does not read its
 * replies is held back by TCP, not buffered without bound).
 *
 * Why: under redis-benchmark the server thread spent most of its time in Deno's per-operation
 * machinery around the two system calls (see docs/kv-performance.md); here a batch costs the two
 * system calls and two FFI calls.
 *
 * @module
 */
import type { Client, Engine } from "./engine.ts";
import {
  EAGAIN,
  ECONNABORTED,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_DATA_OFFSET,
  EPOLL_EVENT_BYTES,
  EPOLLERR,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  IPPROTO_TCP,
  type Libc,
  MSG_NOSIGNAL,
  parseIp,
  readSockaddr,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddr,
  SOL_SOCKET,
  TCP_NODELAY,
} from "./libc.ts";
import { RespProtocolError, RespReader, RespWriter } from "./resp.ts";
import { FLUSH_BYTES, type RespServerOptions } from "./resp_server.ts";
import { formatAddr, MAXCLIENTS_REPLY } from "./socket.ts";

/** Most milliseconds of commands run before the event loop gets a turn. */
export const YIELD_MS = 1;
/** Ready sockets taken per epoll_wait. */
const MAX_EVENTS = 256;
/** epoll data of the listening socket and of the wake-up eventfd; connections start above. */
const LISTENER_ID = 1;
const WAKE_ID = 2;
/** Connections accepted per round at most. */
const MAX_ACCEPTS = 1000;
/** Pause of accepting after running out of file descriptors (the socket stays ready). */
const ACCEPT_PAUSE_MS = 100;

/** Most unanswerable input read away before a close (see #discardInput). */
const DISCARD_BYTES = 4 << 20;
const SCRATCH_BYTES = 64n * 1024n;

interface Conn {
  id: number;
  fd: number;
  client: Client;
  reader: RespReader;
  out: RespWriter;
  /** Bytes of `out` already written (a reply the socket did not take whole). */
  sent: number;
  /** Waiting for EPOLLOUT: not read until the replies are out. */
  blocked: boolean;
  /** Complete commands wait in the reader (the batch stopped at FLUSH_BYTES of replies). */
  more: boolean;
  /** Close once the replies so far are sent (QUIT, protocol error). */
  closeAfter: boolean;
  /** In this round's writes. */
  queued: boolean;
  closed: boolean;
}

/** Options of a {@link NativeRespServer}. */
export interface NativeRespServerOptions extends RespServerOptions {
  libc: Libc;
  /**
   * After the last ready socket, keep polling this long before sleeping (0: sleep at once, as
   * Redis does). Under load the loop then never sleeps, so neither it nor its clients pay for
   * wake-ups; the cost is up to this much CPU after each burst.
   */
  spinMicros?: number;
}

/** Why the native loop cannot serve (the caller falls back to Deno's sockets). */
export class NativeUnavailable extends Error {}

/** A system call failed. */
export class SyscallError extends Error {
  constructor(call: string, readonly errno: number, message: string) {
    super(`${call}: ${message} (errno ${errno})`);
  }
}

/** Accepts RESP connections on an epoll loop and runs their commands on the engine. */
export class NativeRespServer {
  readonly #engine: Engine;
  readonly #libc: Libc;
  readonly #onError: (e: unknown) => void;
  readonly #commit: () => Promise<void> | null;
  readonly #ep: number;
  readonly #listenFd: number;
  readonly #wakeFd: number;
  readonly #addr: Deno.NetAddr;
  readonly #events = new Uint8Array(MAX_EVENTS * EPOLL_EVENT_BYTES);
  readonly #eventView = new DataView(this.#events.buffer);
  readonly #ctlEvent = new Uint8Array(EPOLL_EVENT_BYTES);
  readonly #ctlView = new DataView(this.#ctlEvent.buffer);
  readonly #conns = new Map<number, Conn>();
  readonly #byClient = new Map<number, Conn>();
  /** Connections whose replies go out at the end of the round. */
  #dirty: Conn[] = [];
  /** Connections with complete commands left in their reader. */
  #more: Conn[] = [];
  #nextId = WAKE_ID + 1;
  readonly #scratch = new Uint8Array(Number(SCRATCH_BYTES));
  #closed = false;
  #acceptPaused = false;
  readonly #spinMicros: number;
  #loop: Promise<void>;

  /**
   * Binds and starts serving; throws {@link NativeUnavailable} for an address only Deno's
   * sockets can take (a host name), {@link SyscallError} when the socket cannot be bound.
   */
  constructor(options: NativeRespServerOptions) {
    const ip = parseIp(options.hostname);
    if (ip === null) throw new NativeUnavailable(`not a numeric address: ${options.hostname}`);
    this.#engine = options.engine;
    this.#libc = options.libc;
    this.#onError = options.onConnectionError ?? (() => {});
    this.#commit = options.commit ?? (() => null);
    this.#spinMicros = options.spinMicros ?? 0;
    const s = this.#libc.symbols;
    const fds: number[] = [];
    try {
      const fd = this.#check(
        "socket",
        s.socket(ip.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
      );
      fds.push(fd);
      this.#setInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
      if (options.reusePort) this.#setInt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
      const sa = sockaddr(ip, options.port);
      this.#check("bind", s.bind(fd, sa, sa.length));
      this.#check("listen", s.listen(fd, 511));
      const bound = this.#localAddr(fd);
      if (bound === null) throw new SyscallError("getsockname", this.#libc.errno(), "no address");
      this.#addr = { transport: "tcp", hostname: options.hostname, port: bound.port };
      this.#ep = this.#check("epoll_create1", s.epoll_create1(EPOLL_CLOEXEC));
      fds.push(this.#ep);
      this.#wakeFd = this.#check("eventfd", s.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
      fds.push(this.#wakeFd);
      this.#ctl(EPOLL_CTL_ADD, fd, EPOLLIN, LISTENER_ID);
      this.#ctl(EPOLL_CTL_ADD, this.#wakeFd, EPOLLIN, WAKE_ID);
      this.#listenFd = fd;
    } catch (e) {
      for (const fd of fds) s.close(fd);
      throw e;
    }
    this.#engine.multiplexingApi = "epoll";
    this.#engine.killHook = (id) => {
      const conn = this.#byClient.get(id);
      if (conn !== undefined) this.#close(conn);
    };
    this.#loop = this.#run();
  }

  get addr(): Deno.NetAddr {
    return this.#addr;
  }

  get connections(): number {
    return this.#conns.size;
  }

  #check(call: string, r: number): number {
    if (r < 0) {
      const errno = this.#libc.errno();
      throw new SyscallError(call, errno, this.#libc.describe(errno));
    }
    return r;
  }

  #setInt(fd: number, level: number, option: number, value: number): void {
    const v = new Uint8Array(new Int32Array([value]).buffer);
    this.#check("setsockopt", this.#libc.symbols.setsockopt(fd, level, option, v, 4));
  }

  #ctl(op: number, fd: number, events: number, id: number): void {
    const v = this.#ctlView;
    v.setUint32(0, events, true);
    // The whole id in the 64-bit data field (ids never repeat: 2^53 of them).
    v.setUint32(EPOLL_DATA_OFFSET, id % 0x1_0000_0000, true);
    v.setUint32(EPOLL_DATA_OFFSET + 4, Math.floor(id / 0x1_0000_0000), true);
    this.#check("epoll_ctl", this.#libc.symbols.epoll_ctl(this.#ep, op, fd, this.#ctlEvent));
  }

  async #run(): Promise<void> {
    const s = this.#libc.symbols, spinMs = this.#spinMicros / 1000;
    let lastWork = -Infinity, lastYield = performance.now(), worked = false;
    while (!this.#closed) {
      const now = performance.now();
      // The spin counts from the end of the last round (a long round must not use it up).
      if (worked) lastWork = now;
      // Idle: nothing was ready in the last poll, nothing is left over, and the spin is over.
      const idle = !worked && this.#more.length === 0 && now - lastWork >= spinMs;
      let n: number;
      if (idle || now - lastYield >= YIELD_MS) {
        // On a thread of Deno's pool: timers, HTTP and persistence run meanwhile. Busy, the
        // wait returns at once (timeout 0): a turn of the event loop every YIELD_MS.
        n = await s.epoll_wait_async(this.#ep, this.#events, MAX_EVENTS, idle ? -1 : 0);
        lastYield = performance.now();
        if (this.#closed) break;
      } else {
        n = s.epoll_wait(this.#ep, this.#events, MAX_EVENTS, 0);
      }
      worked = n > 0 || this.#more.length > 0;
      if (!worked) continue; // n < 0 is EINTR, the only error epoll_wait has on a valid set
      try {
        // Awaited only when a commit is pending (an await costs a turn of the microtask queue).
        const pending = this.#round(Math.max(n, 0));
        if (pending !== null) await pending;
      } catch (e) {
        this.#onError(e);
      }
    }
  }

  /**
   * Handles `n` ready events and the connections with commands left over; the replies go out
   * at once, or after the commit of the round's writes (the promise).
   */
  #round(n: number): Promise<void> | null {
    const v = this.#eventView;
    const more = this.#more;
    this.#more = [];
    for (const conn of more) {
      conn.more = false;
      if (!conn.closed) this.#runCommands(conn);
    }
    for (let i = 0; i < n; i++) {
      const off = i * EPOLL_EVENT_BYTES;
      const events = v.getUint32(off, true);
      const id = v.getUint32(off + EPOLL_DATA_OFFSET, true) +
        v.getUint32(off + EPOLL_DATA_OFFSET + 4, true) * 0x1_0000_0000;
      if (id === LISTENER_ID) {
        this.#acceptAll();
        continue;
      }
      if (id === WAKE_ID) {
        this.#libc.symbols.read(this.#wakeFd, this.#ctlEvent, 8n);
        continue;
      }
      const conn = this.#conns.get(id);
      if (conn === undefined) continue; // closed earlier in this round
      if (conn.blocked) {
        // Registered for EPOLLOUT only; an error or hang-up shows in the write.
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) this.#send(conn);
      } else if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        // Not read again while earlier commands wait (left over, or replies not sent yet): its
        // input stays in the socket (TCP holds the client back) and an end of input cannot
        // overtake them. The socket stays ready: it comes back in a later round.
        if (!conn.more && !conn.queued && !conn.closeAfter) this.#readAndRun(conn);
      }
    }
    if (this.#dirty.length === 0) return null;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const conn of dirty) conn.queued = false;
    const pending = this.#commit();
    if (pending === null) {
      this.#sendAll(dirty);
      return null;
    }
    return pending.then(() => this.#sendAll(dirty), (e) => {
      // Nothing is acknowledged that was not made durable: these connections lose their replies.
      this.#onError(e);
      for (const conn of dirty) this.#close(conn);
    });
  }

  #sendAll(conns: Conn[]): void {
    for (const conn of conns) {
      if (!conn.closed) this.#send(conn);
    }
  }

  #acceptAll(): void {
    const s = this.#libc.symbols;
    const name = new Uint8Array(128), lenBuf = new Uint32Array(1);
    const len = new Uint8Array(lenBuf.buffer);
    // At most MAX_ACCEPTS a round (Redis's limit): a connection storm must not stall the others.
    for (let i = 0; i < MAX_ACCEPTS; i++) {
      lenBuf[0] = name.length;
      const fd = s.accept4(this.#listenFd, name, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const errno = this.#libc.errno();
        if (errno === EAGAIN) return;
        // The connection went away before it was taken, or a signal: try the next.
        if (errno === EINTR || errno === ECONNABORTED) continue;
        // Out of descriptors (EMFILE/ENFILE) or worse: the socket stays ready, so stop asking
        // for a while instead of spinning.
        this.#onError(new SyscallError("accept4", errno, this.#libc.describe(errno)));
        this.#pauseAccepting();
        return;
      }
      this.#adopt(fd, readSockaddr(name.subarray(0, lenBuf[0])));
    }
  }

  #pauseAccepting(): void {
    if (this.#acceptPaused) return;
    this.#acceptPaused = true;
    this.#ctl(EPOLL_CTL_DEL, this.#listenFd, 0, LISTENER_ID);
    setTimeout(() => {
      this.#acceptPaused = false;
      if (this.#closed) return;
      try {
        this.#ctl(EPOLL_CTL_ADD, this.#listenFd, EPOLLIN, LISTENER_ID);
      } catch (e) {
        this.#onError(e);
        this.#pauseAccepting();
      }
    }, ACCEPT_PAUSE_MS);
  }

  #adopt(fd: number, peer: { hostname: string; port: number } | null): void {
    const engine = this.#engine, s = this.#libc.symbols;
    if (engine.clients.size >= engine.config.maxclients) {
      engine.stats.rejectedConnections++;
      s.write(fd, MAXCLIENTS_REPLY, BigInt(MAXCLIENTS_REPLY.length));
      s.close(fd);
      return;
    }
    try {
      this.#setInt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    } catch { /* the peer may be gone already */ }
    const id = this.#nextId++;
    try {
      this.#ctl(EPOLL_CTL_ADD, fd, EPOLLIN, id);
    } catch (e) {
      s.close(fd);
      this.#onError(e);
      return;
    }
    const local = this.#localAddr(fd);
    const client = engine.connect(
      peer === null ? "" : formatAddr(peer.hostname, peer.port),
      local === null ? "" : formatAddr(local.hostname, local.port),
    );
    const conn: Conn = {
      id,
      fd,
      client,
      reader: new RespReader(engine.limitsFor(client)),
      out: new RespWriter(),
      sent: 0,
      blocked: false,
      more: false,
      closeAfter: false,
      queued: false,
      closed: false,
    };
    this.#conns.set(id, conn);
    this.#byClient.set(client.id, conn);
  }

  /** The local address of a socket (a connection's: what the client connected to). */
  #localAddr(fd: number): { hostname: string; port: number } | null {
    const name = new Uint8Array(128), len = new Uint32Array([128]);
    const r = this.#libc.symbols.getsockname(fd, name, new Uint8Array(len.buffer));
    return r < 0 ? null : readSockaddr(name.subarray(0, len[0]));
  }

  /** Reads what the socket has and runs the complete commands. */
  #readAndRun(conn: Conn): void {
    const s = this.#libc.symbols;
    let area: Uint8Array;
    try {
      area = conn.reader.writable();
    } catch (e) {
      this.#protocolError(conn, e);
      return;
    }
    const r = Number(s.read(conn.fd, area, BigInt(area.length)));
    if (r === 0) {
      this.#close(conn);
      return;
    }
    if (r < 0) {
      const errno = this.#libc.errno();
      if (errno !== EAGAIN && errno !== EINTR) this.#close(conn);
      return;
    }
    try {
      conn.reader.commit(r);
    } catch (e) {
      this.#protocolError(conn, e);
      return;
    }
    this.#runCommands(conn);
  }

  #runCommands(conn: Conn): void {
    const engine = this.#engine;
    try {
      conn.more = engine.runBatch(conn.client, conn.reader, conn.out, FLUSH_BYTES);
    } catch (e) {
      this.#protocolError(conn, e);
      return;
    }
    if (conn.closed) return; // closed while its commands ran
    if (conn.client.closing || this.#closed) conn.closeAfter = true;
    if (conn.out.length > 0 || conn.closeAfter) this.#queue(conn);
    else conn.reader.shrink();
  }

  #protocolError(conn: Conn, e: unknown): void {
    if (!(e instanceof RespProtocolError)) {
      this.#onError(e);
      this.#close(conn);
      return;
    }
    conn.out.error(`ERR Protocol error: ${e.message}`);
    conn.closeAfter = true;
    conn.more = false;
    this.#queue(conn);
  }

  /** Puts a connection's replies in this round's writes (once). */
  #queue(conn: Conn): void {
    if (conn.queued) return;
    conn.queued = true;
    this.#dirty.push(conn);
  }

  /** Writes the replies not sent yet; on a full socket, waits for EPOLLOUT. */
  #send(conn: Conn): void {
    const s = this.#libc.symbols;
    const bytes = conn.out.bytes();
    while (conn.sent < bytes.length) {
      const rest = bytes.subarray(conn.sent);
      const w = Number(s.send(conn.fd, rest, BigInt(rest.length), MSG_NOSIGNAL));
      if (w < 0) {
        const errno = this.#libc.errno();
        if (errno === EINTR) continue;
        if (errno === EAGAIN) {
          if (!conn.blocked && !this.#watch(conn, EPOLLOUT)) return;
          conn.blocked = true;
          return;
        }
        this.#close(conn); // the peer went away
        return;
      }
      conn.sent += w;
    }
    conn.out.reset();
    conn.sent = 0;
    if (conn.blocked) {
      conn.blocked = false;
      if (!this.#watch(conn, EPOLLIN)) return;
    }
    if (conn.closeAfter) {
      this.#discardInput(conn);
      this.#close(conn);
      return;
    }
    if (conn.more) this.#more.push(conn);
    else conn.reader.shrink();
  }

  /** Changes what a connection waits for; a failure closes it (false). */
  #watch(conn: Conn, events: number): boolean {
    try {
      this.#ctl(EPOLL_CTL_MOD, conn.fd, events, conn.id);
      return true;
    } catch (e) {
      this.#onError(e);
      this.#close(conn);
      return false;
    }
  }

  /**
   * Reads away what the client sent and will never be answered (after a protocol error or
   * QUIT): closing a socket with unread input resets the connection, and the client could
   * lose the reply just sent.
   */
  #discardInput(conn: Conn): void {
    const s = this.#libc.symbols;
    for (let total = 0; total < DISCARD_BYTES;) {
      const r = Number(s.read(conn.fd, this.#scratch, SCRATCH_BYTES));
      if (r <= 0) return;
      total += r;
    }
  }

  #close(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    this.#conns.delete(conn.id);
    this.#byClient.delete(conn.client.id);
    // Closing the descriptor takes it out of the epoll set.
    this.#libc.symbols.close(conn.fd);
    this.#engine.disconnect(conn.client);
  }

  /** {@link close}, under the name graceful shutdown calls. */
  shutdown(): Promise<void> {
    return this.close();
  }

  /** Stops accepting and closes every connection (the round in progress finishes first). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const s = this.#libc.symbols;
    s.write(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
    await this.#loop;
    for (const conn of [...this.#conns.values()]) this.#close(conn);
    s.close(this.#listenFd);
    s.close(this.#wakeFd);
    s.close(this.#ep);
  }
}
