/**
 * The RESP listener: one read loop per connection. Every complete command in a read runs before
 * the replies go out in one write (pipelining costs one syscall per batch, not per command); a
 * batch whose replies pass {@link FLUSH_BYTES} is written out before the rest runs, so a client
 * that pipelines a lot without reading is slowed down by TCP, not buffered without bound.
 *
 * A protocol error answers `-ERR Protocol error: ...` after the replies of the commands before
 * it and closes that connection only. Past `maxclients` a new connection gets `-ERR max number of
 * clients reached` and is closed.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { RespProtocolError, RespReader, RespWriter } from "./resp.ts";
import { closeQuietly, formatAddr, isDisconnect, MAXCLIENTS_REPLY, writeAll } from "./socket.ts";

/** Replies buffered before a batch is written out mid-way. */
export const FLUSH_BYTES = 64 * 1024;

/** Options of a {@link RespServer}. */
export interface RespServerOptions {
  engine: Engine;
  hostname: string;
  port: number;
  /** Several processes may listen on the port (SO_REUSEPORT). */
  reusePort?: boolean;
  /** A connection's error that is not the peer going away (logged by the caller). */
  onConnectionError?: (e: unknown) => void;
  /**
   * Makes the writes of the commands run so far durable (persistence), before their replies
   * go out; null when there is nothing to wait for. A failure closes the connection without
   * the replies: nothing is acknowledged that was not made durable.
   */
  commit?: () => Promise<void> | null;
}

/** Accepts RESP connections and runs their commands on the engine. */
export class RespServer {
  readonly #engine: Engine;
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<Deno.TcpConn>();
  readonly #byClient = new Map<number, Deno.TcpConn>();
  readonly #onError: (e: unknown) => void;
  readonly #commit: () => Promise<void> | null;
  #closed = false;
  #accepting: Promise<void>;

  constructor(options: RespServerOptions) {
    this.#engine = options.engine;
    this.#onError = options.onConnectionError ?? (() => {});
    this.#commit = options.commit ?? (() => null);
    options.engine.killHook = (id) => {
      const conn = this.#byClient.get(id);
      if (conn !== undefined) closeQuietly(conn);
    };
    this.#listener = Deno.listen({
      hostname: options.hostname,
      port: options.port,
      transport: "tcp",
      reusePort: options.reusePort,
    });
    this.#accepting = this.#accept();
  }

  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  get connections(): number {
    return this.#conns.size;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closed) return;
        this.#onError(e);
        continue;
      }
      if (this.#engine.clients.size >= this.#engine.config.maxclients) {
        this.#engine.stats.rejectedConnections++;
        conn.write(MAXCLIENTS_REPLY)
          .catch(() => {})
          .finally(() => closeQuietly(conn));
        continue;
      }
      this.#conns.add(conn);
      this.#serve(conn).finally(() => this.#conns.delete(conn));
    }
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const engine = this.#engine;
    try {
      conn.setNoDelay(true);
    } catch { /* the peer may be gone already */ }
    const ra = conn.remoteAddr, la = conn.localAddr;
    const client = engine.connect(
      formatAddr(ra.hostname, ra.port),
      formatAddr(la.hostname, la.port),
    );
    this.#byClient.set(client.id, conn);
    const reader = new RespReader(engine.limitsFor(client));
    const out = new RespWriter();
    try {
      for (;;) {
        const n = await conn.read(reader.writable());
        if (n === null) break;
        let failure: RespProtocolError | null = null;
        try {
          reader.commit(n);
          while (engine.runBatch(client, reader, out, FLUSH_BYTES)) await this.#reply(conn, out);
        } catch (e) {
          if (!(e instanceof RespProtocolError)) throw e;
          failure = e;
          out.error(`ERR Protocol error: ${e.message}`);
        }
        if (out.length > 0) await this.#reply(conn, out);
        if (failure !== null || client.closing || this.#closed) break;
        reader.shrink();
      }
    } catch (e) {
      if (!isDisconnect(e)) this.#onError(e);
    } finally {
      this.#byClient.delete(client.id);
      engine.disconnect(client);
      closeQuietly(conn);
    }
  }

  /** Sends the replies written so far, once the writes behind them are durable. */
  async #reply(conn: Deno.Conn, out: RespWriter): Promise<void> {
    const pending = this.#commit();
    if (pending !== null) await pending;
    const bytes = out.bytes();
    // One write nearly always takes it all: one promise per batch on the hot path.
    const n = await conn.write(bytes);
    if (n < bytes.length) await writeAll(conn, bytes.subarray(n));
    out.reset();
  }

  /** {@link close}, under the name graceful shutdown calls. */
  shutdown(): Promise<void> {
    return this.close();
  }

  /** Stops accepting and closes every connection (commands in flight finish first). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const c of this.#conns) closeQuietly(c);
    await this.#accepting;
  }
}
