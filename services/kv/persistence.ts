/**
 * Optional persistence: an append-only log of the write commands, as Redis's AOF, on the shared
 * write-ahead log (shared/wal: CRC-framed records, group commit, torn-tail truncation), plus
 * rewrites that compact it into a snapshot of the keyspace (shared/wal's atomic snapshot files).
 *
 * What is logged is what a command did, in a form that replays to the same state at any later
 * time: relative expiry becomes an absolute `PXAT` / `PEXPIREAT`, `INCRBYFLOAT` becomes the `SET`
 * of its result, `SPOP` the `SREM` of the members it chose (the commands say so through
 * `Context.propagated`). One record per command, or per `EXEC` for a transaction, so a torn tail
 * never replays half a transaction. Payload: the database (u16 LE), then the commands as RESP
 * arrays.
 *
 * `appendfsync`, as Redis's:
 * - `always`: the replies of a batch of commands are sent only once their records are fsynced
 *   (group commit: concurrent connections share an fsync);
 * - `everysec`: records are written to the OS before the replies go out and fsynced every second
 *   (a crash of the machine loses at most about a second; a crash of the process loses nothing);
 * - `no`: written to the OS before the replies, fsynced when the OS decides.
 *
 * A rewrite serializes the keyspace (synchronously: a consistent cut, at the price of a pause
 * proportional to the data), writes it as a snapshot covering the log up to its sequence number,
 * then deletes the log segments and snapshots it covers. Start-up loads the newest valid snapshot
 * and replays the log after it.
 *
 * @module
 */
import {
  DenoFileSystem,
  type FileSystem,
  RECORD_HEADER_BYTES,
  SnapshotFiles,
  Wal,
  type WalLogger,
} from "@deno-stores/shared/wal";
import type { Engine, LoggedWrite, PersistenceHandle } from "./engine.ts";
import { encodeCommand, ReplyReader } from "./reply.ts";
import { formatDouble, RespProtocolError, RespReader, RespWriter } from "./resp.ts";
import { HashValue, ListValue, SetValue } from "./values.ts";
import { SortedSet } from "./zset.ts";

export type AppendFsync = "always" | "everysec" | "no";
export const APPEND_FSYNC: readonly AppendFsync[] = ["always", "everysec", "no"];

/** WAL record types. */
const RECORD_COMMANDS = 1;
/** A record of the auxiliary state (the KV Connect store): its own payload format. */
const RECORD_AUX = 2;
/** A snapshot's first bytes: format 1 = frames of `u32 LE length | u8 record type | payload`. */
const SNAPSHOT_MAGIC = new Uint8Array([0x4b, 0x56, 0x53, 0x31]); // "KVS1"

/** State persisted beside the keyspace in the same log (the KV Connect store). */
export interface AuxState {
  /** Replays one of its records. */
  apply(payload: Uint8Array): void;
  /** Records that rebuild it (for a rewrite's snapshot). */
  snapshot(): Iterable<Uint8Array>;
}

/** Elements per command when a rewrite rebuilds a collection. */
const REWRITE_CHUNK = 1000;

/** Options of {@link Aof.open}. */
export interface AofOptions {
  engine: Engine;
  dir: string;
  fsync: AppendFsync;
  fs?: FileSystem;
  logger?: WalLogger;
  /** Segment size of the log (default 64 MiB). */
  segmentBytesMax?: number;
  /** Rewrite once the log has grown by this many bytes since the last rewrite... */
  autoRewriteMinBytes?: number;
  /** ...and by this percentage of the last snapshot's size (Redis's auto-aof-rewrite-*). */
  autoRewritePercentage?: number;
  /** State logged beside the keyspace (records of its own). */
  aux?: AuxState;
}

/** What start-up found. */
export interface LoadReport {
  snapshotIndex: number | null;
  snapshotCommands: number;
  replayedRecords: number;
  replayedCommands: number;
  truncatedBytes: number;
}

/** The append-only file; see the module documentation. */
export class Aof implements PersistenceHandle {
  readonly #engine: Engine;
  readonly #wal: Wal;
  readonly #snapshots: SnapshotFiles;
  #fsync: AppendFsync;
  readonly #autoMin: number;
  readonly #autoPct: number;
  readonly #aux: AuxState | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #rewriting: Promise<void> | null = null;
  #bytesSinceRewrite = 0;
  #lastSnapshotBytes = 0;
  #lastRewriteMs = 0;
  #rewrites = 0;
  #lastError: string | null = null;
  /** Bytes appended but not yet written (flushed) to the OS. */
  #pending = 0;
  readonly load: LoadReport;

  private constructor(
    engine: Engine,
    wal: Wal,
    snapshots: SnapshotFiles,
    options: AofOptions,
    load: LoadReport,
    snapshotBytes: number,
  ) {
    this.#engine = engine;
    this.#wal = wal;
    this.#snapshots = snapshots;
    this.#fsync = options.fsync;
    this.#autoMin = options.autoRewriteMinBytes ?? 64 * 1024 * 1024;
    this.#autoPct = options.autoRewritePercentage ?? 100;
    this.#aux = options.aux;
    this.load = load;
    this.#lastSnapshotBytes = snapshotBytes;
    this.setFsync(options.fsync);
  }

  /** Changes the policy (CONFIG SET appendfsync); pending writes are fsynced first. */
  setFsync(policy: AppendFsync): void {
    if (!APPEND_FSYNC.includes(policy)) throw new RangeError(`appendfsync ${policy}`);
    this.#fsync = policy;
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (policy === "everysec") {
      this.#timer = setInterval(() => {
        this.#wal.sync().catch((e) => (this.#lastError = String(e)));
      }, 1000);
    } else if (policy === "always") {
      this.#wal.sync().catch((e) => (this.#lastError = String(e)));
    }
  }

  /** Opens (or creates) the log in `dir`, loads it into the engine, and returns it. */
  static async open(options: AofOptions): Promise<Aof> {
    const fs = options.fs ?? new DenoFileSystem();
    const logger = options.logger;
    const snapshots = new SnapshotFiles({ fs, dir: `${options.dir}/snapshots`, logger });
    const snap = await snapshots.loadNewest();
    const wal = await Wal.open({
      fs,
      dir: `${options.dir}/log`,
      logger,
      segmentBytesMax: options.segmentBytesMax,
      firstSeq: snap === null ? 1 : snap.index + 1,
    });
    const loader = new Loader(options.engine, options.aux);
    let snapshotCommands = 0;
    if (snap !== null) snapshotCommands = loader.applySnapshot(snap.data);
    let replayedRecords = 0, replayedCommands = 0;
    for await (const r of wal.replay(snap === null ? undefined : snap.index + 1)) {
      replayedCommands += loader.apply(r.type, r.payload);
      replayedRecords++;
    }
    loader.close();
    const truncated = wal.recovery.truncatedTail?.droppedBytes ?? 0;
    return new Aof(options.engine, wal, snapshots, options, {
      snapshotIndex: snap?.index ?? null,
      snapshotCommands,
      replayedRecords,
      replayedCommands,
      truncatedBytes: truncated,
    }, snap?.data.length ?? 0);
  }

  /** Logs a record of the auxiliary state: buffered until {@link commit}. */
  recordAux(payload: Uint8Array): void {
    this.#wal.append(RECORD_AUX, payload);
    this.#pending += payload.length;
    this.#bytesSinceRewrite += payload.length + RECORD_HEADER_BYTES;
  }

  /** Logs writes (the engine's hook): buffered until {@link commit}. */
  record(write: LoggedWrite): void {
    if (write.commands.length === 0) return;
    const payload = encodeWrite(write);
    this.#wal.append(RECORD_COMMANDS, payload);
    this.#pending += payload.length;
    this.#bytesSinceRewrite += payload.length + RECORD_HEADER_BYTES;
  }

  /**
   * Waits until every write logged so far is as durable as the policy says: fsynced (`always`)
   * or written to the OS (`everysec`, `no`); null when it already is. The server calls it before
   * sending any replies, reads included: a reply never shows a write that could still be lost
   * (concurrent callers share one write and one fsync: group commit). A failure refuses writes
   * from then on (MISCONF) and rejects: the caller must not send the replies.
   */
  commit(): Promise<void> | null {
    const wal = this.#wal;
    if (this.#fsync === "always") {
      if (wal.durableSeq >= wal.lastSeq) return null;
      this.#pending = 0;
      return wal.sync().then(() => this.#maybeAutoRewrite(), (e) => this.#failed(e));
    }
    if (this.#pending === 0) return this.#flushing;
    this.#pending = 0;
    const flushing = wal.flush().then(() => this.#maybeAutoRewrite(), (e) => this.#failed(e))
      .finally(() => {
        if (this.#flushing === flushing) this.#flushing = null;
      });
    this.#flushing = flushing;
    return flushing;
  }

  #flushing: Promise<void> | null = null;

  #failed(e: unknown): never {
    this.#lastError = String(e);
    this.#engine.writeError = `Errors writing to the AOF file: ${this.#lastError}`;
    throw e;
  }

  #maybeAutoRewrite(): void {
    if (this.#rewriting !== null) return;
    const grown = this.#bytesSinceRewrite;
    if (grown < this.#autoMin) return;
    if (this.#lastSnapshotBytes > 0 && grown * 100 < this.#lastSnapshotBytes * this.#autoPct) {
      return;
    }
    this.rewrite().catch((e) => (this.#lastError = String(e)));
  }

  /** Compacts the log into a snapshot of the keyspace (one at a time; callers share it). */
  rewrite(): Promise<void> {
    this.#rewriting ??= this.#rewrite().finally(() => (this.#rewriting = null));
    return this.#rewriting;
  }

  get rewriteInProgress(): boolean {
    return this.#rewriting !== null;
  }

  async #rewrite(): Promise<void> {
    const started = performance.now();
    // The cut: everything logged so far is in the keyspace; later writes get later seqs.
    await this.#wal.flush();
    const seq = this.#wal.lastSeq;
    const chunks = serialize(this.#engine, this.#aux);
    this.#bytesSinceRewrite = 0;
    const info = await this.#snapshots.write(seq, chunks);
    this.#lastSnapshotBytes = chunks.reduce((n, c) => n + c.length, 0);
    await this.#wal.rotate();
    await this.#wal.releaseUpTo(seq);
    await this.#snapshots.deleteOlderThan(info.index);
    this.#rewrites++;
    this.#lastRewriteMs = performance.now() - started;
  }

  /** For INFO persistence. */
  info(): [string, string | number][] {
    return [
      ["aof_enabled", 1],
      ["aof_fsync", this.#fsync],
      ["aof_rewrite_in_progress", this.#rewriting !== null ? 1 : 0],
      ["aof_rewrites", this.#rewrites],
      ["aof_last_rewrite_time_ms", Math.round(this.#lastRewriteMs)],
      ["aof_current_size", this.#bytesSinceRewrite],
      ["aof_base_size", this.#lastSnapshotBytes],
      ["aof_last_write_status", this.#lastError === null ? "ok" : "err"],
      ["aof_loaded_records", this.load.replayedRecords],
      ["aof_loaded_snapshot_commands", this.load.snapshotCommands],
      ["aof_truncated_bytes", this.load.truncatedBytes],
    ];
  }

  /** Writes and fsyncs what is pending, then closes. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#rewriting?.catch(() => {});
    await this.#wal.sync();
    await this.#wal.close();
  }
}

/** A record's payload: database u16 LE, then RESP arrays. */
export function encodeWrite(write: LoggedWrite): Uint8Array {
  const parts = write.commands.map((c) => encodeCommand(c));
  const out = new Uint8Array(2 + parts.reduce((n, p) => n + p.length, 0));
  out[0] = write.db & 0xff;
  out[1] = write.db >>> 8;
  let p = 2;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/** Applies logged commands to the engine through a connection of its own. */
class Loader {
  #engine: Engine;
  #client;
  #out = new RespWriter();
  #replies = new ReplyReader();
  /** One reader for every record (each leaves it empty, or the load fails). */
  #reader = new RespReader();

  #aux: AuxState | undefined;

  constructor(engine: Engine, aux: AuxState | undefined) {
    this.#engine = engine;
    this.#aux = aux;
    this.#client = engine.session("aof", "aof");
  }

  /** Applies a snapshot (see SNAPSHOT_MAGIC); returns the commands run. */
  applySnapshot(data: Uint8Array): number {
    const m = SNAPSHOT_MAGIC;
    if (
      data.length < 4 || data[0] !== m[0] || data[1] !== m[1] || data[2] !== m[2] ||
      data[3] !== m[3]
    ) {
      throw new RespProtocolError("a snapshot of an unknown format");
    }
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let n = 0, at = 4;
    while (at < data.length) {
      if (at + 5 > data.length) throw new RespProtocolError("a snapshot ends inside a header");
      const len = view.getUint32(at, true);
      const type = data[at + 4];
      if (at + 5 + len > data.length) {
        throw new RespProtocolError("a snapshot ends inside a record");
      }
      n += this.apply(type, data.subarray(at + 5, at + 5 + len));
      at += 5 + len;
    }
    return n;
  }

  /** Applies one record of either kind; returns the commands run. */
  apply(type: number, payload: Uint8Array): number {
    if (type === RECORD_COMMANDS) return this.applyRecord(payload);
    if (type === RECORD_AUX) {
      if (this.#aux === undefined) {
        throw new RespProtocolError("the log holds KV Connect records but no store was given");
      }
      this.#aux.apply(payload);
      return 0;
    }
    throw new RespProtocolError(`a record of unknown type ${type}`);
  }

  /** Applies one record's payload; returns the commands run. */
  applyRecord(payload: Uint8Array): number {
    if (payload.length < 2) throw new RespProtocolError("a record without its database");
    const db = payload[0] | (payload[1] << 8);
    this.#client.db = this.#engine.db(db);
    const reader = this.#reader;
    reader.push(payload.subarray(2));
    let n = 0;
    for (let args = reader.next(); args !== null; args = reader.next()) {
      if (args.length === 0) continue;
      this.#out.reset();
      this.#engine.execute(this.#client, args, this.#out);
      this.#replies.push(this.#out.bytes());
      const r = this.#replies.next();
      if (r instanceof Error) {
        throw new RespProtocolError(`replaying ${args[0]} failed: ${r.message}`);
      }
      n++;
    }
    if (reader.partial) throw new RespProtocolError("a logged record ends inside a command");
    return n;
  }

  close(): void {
    this.#engine.disconnect(this.#client);
  }
}

/** A record framed for a snapshot: u32 LE length, u8 type, payload. */
function frame(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out[4] = type;
  out.set(body, 5);
  return out;
}

function framed(write: LoggedWrite): Uint8Array {
  return frame(RECORD_COMMANDS, encodeWrite(write));
}

/** The whole keyspace as commands that rebuild it (and the auxiliary state), framed. */
export function serialize(engine: Engine, aux?: AuxState): Uint8Array[] {
  const out: Uint8Array[] = [SNAPSHOT_MAGIC.slice()];
  if (aux !== undefined) { for (const r of aux.snapshot()) out.push(frame(RECORD_AUX, r)); }
  const now = engine.now();
  for (const db of engine.keyspace.dbs) {
    let batch: string[][] = [];
    let batchBytes = 0;
    const push = (cmd: string[]) => {
      batch.push(cmd);
      for (const a of cmd) batchBytes += a.length + 16;
      if (batchBytes > 1 << 20) flush();
    };
    const flush = () => {
      if (batch.length > 0) out.push(framed({ db: db.id, commands: batch }));
      batch = [];
      batchBytes = 0;
    };
    for (const [key, v] of db.data) {
      const at = db.expires.get(key);
      if (at !== undefined && at <= now) continue;
      if (typeof v === "string") {
        push(at === undefined ? ["SET", key, v] : ["SET", key, v, "PXAT", String(at)]);
        continue;
      }
      const chunked = (head: string[], items: Iterable<string[]>) => {
        let cmd = [...head];
        let count = 0;
        for (const item of items) {
          cmd.push(...item);
          if (++count === REWRITE_CHUNK) {
            push(cmd);
            cmd = [...head];
            count = 0;
          }
        }
        if (count > 0) push(cmd);
      };
      if (v instanceof ListValue) {
        chunked(["RPUSH", key], mapIter(v.slice(0, v.length - 1), (x) => [x]));
      } else if (v instanceof HashValue) {
        chunked(["HSET", key], mapIter(v.fields.entries(), ([f, x]) => [f, x]));
      } else if (v instanceof SetValue) chunked(["SADD", key], mapIter(v.values(), (x) => [x]));
      else if (v instanceof SortedSet) {
        chunked(["ZADD", key], mapIter(v.entries(), ([m, s]) => [formatDouble(s), m]));
      }
      if (at !== undefined) push(["PEXPIREAT", key, String(at)]);
    }
    flush();
  }
  return out;
}

function* mapIter<T, U>(it: Iterable<T>, f: (x: T) => U): IterableIterator<U> {
  for (const x of it) yield f(x);
}
