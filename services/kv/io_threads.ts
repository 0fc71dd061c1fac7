/**
 * RESP over several cores, as Redis's `io-threads`: `threads` worker isolates (io_worker.ts)
 * listen on the same port (SO_REUSEPORT: the kernel spreads connections over them) and do the
 * socket reads and writes; this isolate parses and runs every command. Bytes travel through
 * shared-memory rings (ring.ts), one pair per worker. Because one isolate executes everything,
 * Redis's guarantees stay as they are with one thread: per-key order, atomic commands, MULTI and
 * multi-key commands; persistence sees one order of writes.
 *
 * The executor drains every worker's ring, runs the commands of each connection in the order
 * they came, then (after the persistence commit, when there is one) sends each connection its
 * replies; a round's replies to a connection go out as one frame, so pipelining still costs one
 * write per batch.
 *
 * @module
 */
import type { Client, Engine } from "./engine.ts";
import { RespProtocolError, RespReader, RespWriter } from "./resp.ts";
import { FLUSH_BYTES } from "./resp_server.ts";
import { doorbellValue, FRAME, newDoorbell, Ring, ringDoorbell, waitDoorbell } from "./ring.ts";
import { MAXCLIENTS_ERROR } from "./socket.ts";

/** Options of {@link IoThreads.start}. */
export interface IoThreadsOptions {
  engine: Engine;
  hostname: string;
  port: number;
  /** Worker isolates doing socket I/O. */
  threads: number;
  /** Bytes of each ring (a power of two). */
  ringBytes?: number;
  /** As RespServerOptions.commit: persistence before replies. */
  commit?: () => Promise<void> | null;
  onError?: (e: unknown) => void;
}

interface ConnState {
  worker: number;
  id: number;
  client: Client;
  reader: RespReader;
  out: RespWriter;
  /** Complete commands wait in the reader (it stopped at FLUSH_BYTES of replies). */
  more: boolean;
  /** Close once the replies so far are sent. */
  closeAfter: boolean;
}

const td = new TextDecoder();

/** The executor side; see the module documentation. */
export class IoThreads {
  readonly port: number;
  readonly #engine: Engine;
  readonly #workers: Worker[];
  readonly #in: Ring[];
  readonly #out: Ring[];
  readonly #bell: SharedArrayBuffer;
  readonly #commit: () => Promise<void> | null;
  readonly #onError: (e: unknown) => void;
  readonly #conns = new Map<number, ConnState>();
  #dirty = new Set<ConnState>();
  #stopped = false;
  #loop: Promise<void> = Promise.resolve();

  private constructor(
    options: IoThreadsOptions,
    port: number,
    workers: Worker[],
    rings: { in: Ring[]; out: Ring[]; bell: SharedArrayBuffer },
  ) {
    this.port = port;
    this.#engine = options.engine;
    this.#workers = workers;
    this.#in = rings.in;
    this.#out = rings.out;
    this.#bell = rings.bell;
    this.#commit = options.commit ?? (() => null);
    this.#onError = options.onError ?? (() => {});
    options.engine.killHook = (clientId) => {
      for (const c of this.#conns.values()) {
        if (c.client.id === clientId) {
          c.closeAfter = true;
          this.#dirty.add(c);
        }
      }
      // Wake the executor: the close goes out now, not at the next request.
      ringDoorbell(this.#bell);
    };
  }

  /** Starts the workers (the first binds the port, the others join it) and the executor. */
  static async start(options: IoThreadsOptions): Promise<IoThreads> {
    const threads = options.threads;
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`io threads ${threads}`);
    const ringBytes = options.ringBytes ?? 8 * 1024 * 1024;
    const bell = newDoorbell();
    const rings = { in: [] as Ring[], out: [] as Ring[], bell };
    const workers: Worker[] = [];
    let port = options.port;
    try {
      for (let i = 0; i < threads; i++) {
        const w = new Worker(new URL("./io_worker.ts", import.meta.url).href, { type: "module" });
        workers.push(w);
        const toMain = Ring.create(ringBytes, bell), fromMain = Ring.create(ringBytes);
        rings.in.push(toMain);
        rings.out.push(fromMain);
        const ready = new Promise<{ listening?: number; error?: string }>((resolve) => {
          w.onmessage = (e) => resolve(e.data);
          w.onerror = (e) => {
            e.preventDefault();
            resolve({ error: e.message });
          };
        });
        w.postMessage({
          hostname: options.hostname,
          port,
          toMain: toMain.handle,
          fromMain: fromMain.handle,
        });
        const r = await ready;
        if (r.error !== undefined) throw new Error(`io thread ${i}: ${r.error}`);
        port = r.listening!;
      }
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    const io = new IoThreads(options, port, workers, rings);
    io.#loop = io.#run();
    return io;
  }

  get connections(): number {
    return this.#conns.size;
  }

  #onFrame(worker: number, id: number, type: number, payload: Uint8Array): void {
    const key = worker * 2 ** 32 + id;
    const engine = this.#engine;
    if (type === FRAME.OPEN) {
      const [addr, laddr] = JSON.parse(td.decode(payload)) as [string, string];
      const client = engine.connect(addr, laddr);
      const c: ConnState = {
        worker,
        id,
        client,
        reader: new RespReader(engine.limitsFor(client)),
        out: new RespWriter(),
        more: false,
        closeAfter: false,
      };
      this.#conns.set(key, c);
      if (engine.clients.size > engine.config.maxclients) {
        engine.stats.rejectedConnections++;
        c.out.error(MAXCLIENTS_ERROR);
        c.closeAfter = true;
        this.#dirty.add(c);
      }
      return;
    }
    const c = this.#conns.get(key);
    if (c === undefined) return;
    if (type === FRAME.CLOSED) {
      engine.disconnect(c.client);
      this.#conns.delete(key);
      this.#dirty.delete(c);
      this.#out[worker].tryWrite(id, FRAME.FORGET, new Uint8Array(0));
      return;
    }
    if (c.closeAfter) return; // replies after a protocol error or QUIT are not read
    c.reader.push(payload);
    this.#process(c);
    this.#dirty.add(c);
  }

  /** Runs what the connection's reader holds, up to FLUSH_BYTES of replies (see #run). */
  #process(c: ConnState): void {
    try {
      c.more = this.#engine.runBatch(c.client, c.reader, c.out, FLUSH_BYTES);
      if (c.client.closing) c.closeAfter = true;
    } catch (e) {
      if (!(e instanceof RespProtocolError)) throw e;
      c.out.error(`ERR Protocol error: ${e.message}`);
      c.closeAfter = true;
      c.more = false;
    }
    this.#dirty.add(c);
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        const before = doorbellValue(this.#bell);
        let frames = 0;
        for (let w = 0; w < this.#in.length; w++) {
          frames += this.#in[w].drain((id, type, p) => this.#onFrame(w, id, type, p));
        }
        if (this.#dirty.size > 0) await this.#flush();
        // Connections that stopped at FLUSH_BYTES of replies go on, a batch at a time.
        for (let more = this.#withMore(); more.length > 0; more = this.#withMore()) {
          for (const c of more) this.#process(c);
          await this.#flush();
        }
        if (frames === 0) await waitDoorbell(this.#bell, before, 1000);
      } catch (e) {
        this.#onError(e);
      }
    }
  }

  #withMore(): ConnState[] {
    return [...this.#conns.values()].filter((c) => c.more && !c.closeAfter);
  }

  async #flush(): Promise<void> {
    const dirty = this.#dirty;
    this.#dirty = new Set();
    const pending = this.#commit();
    if (pending !== null) {
      try {
        await pending;
      } catch (e) {
        // Not durable: no reply goes out; the connections are closed.
        for (const c of dirty) {
          await this.#out[c.worker].write(c.id, FRAME.CLOSE, new Uint8Array(0));
        }
        for (const r of this.#out) r.ring();
        this.#onError(e);
        return;
      }
    }
    const rung = new Set<number>();
    for (const c of dirty) {
      const out = this.#out[c.worker];
      const bytes = c.out.bytes();
      for (let off = 0; off < bytes.length; off += out.maxPayload) {
        await out.write(c.id, FRAME.REPLY, bytes.subarray(off, off + out.maxPayload));
      }
      c.out.reset();
      c.reader.shrink();
      if (c.closeAfter) await out.write(c.id, FRAME.CLOSE, new Uint8Array(0));
      rung.add(c.worker);
    }
    for (const w of rung) this.#out[w].ring();
  }

  /** Stops listening, closes every connection and the workers. */
  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.#workers.map((w) =>
      new Promise<void>((resolve) => {
        w.onmessage = () => resolve();
        w.postMessage("stop");
        setTimeout(resolve, 1000);
      })
    ));
    for (const w of this.#workers) w.terminate();
    ringDoorbell(this.#bell);
    await this.#loop;
    for (const c of this.#conns.values()) this.#engine.disconnect(c.client);
    this.#conns.clear();
  }

  /** {@link close}, under the name graceful shutdown calls. */
  shutdown(): Promise<void> {
    return this.close();
  }
}
