/**
 * Write-ahead log: CRC-framed records in size-limited segment files, group commit, torn-tail
 * recovery, and segment release for compaction. See README.md for the format and guarantees.
 *
 * @module
 */

import { crc32cUpdate } from "./crc32c.ts";
import { dirname, type FileHandle, type FileSystem, joinPath } from "./fs.ts";

/** Bytes before the payload: length u32, crc32c u32, type u8. */
export const RECORD_HEADER_BYTES = 9;
const SEGMENT_RE = /^(\d{20})\.wal$/;

/** A record read back from the log. */
export interface WalRecord {
  /** Position in the log: consecutive integers, first record of a new log = `firstSeq`. */
  seq: number;
  /** Record type, 1..255 (0 is reserved: a zeroed region never parses as a record). */
  type: number;
  payload: Uint8Array;
}

/** A record to append. */
export interface WalInput {
  type: number;
  payload: Uint8Array;
}

/** Where recovery messages go (a `shared/http` `Logger` fits). */
export interface WalLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  info?(msg: string, fields?: Record<string, unknown>): void;
}

/** Options for {@link Wal.open}. */
export interface WalOptions {
  fs: FileSystem;
  /** Directory holding the segments (created if missing). One log per directory. */
  dir: string;
  /** A segment is closed when the next record would take it past this size. Default 64 MiB. */
  segmentBytesMax?: number;
  /** Largest payload accepted (and believed on recovery). Default 16 MiB. */
  maxRecordBytes?: number;
  /** Sequence number of the first record of a brand-new log. Default 1. */
  firstSeq?: number;
  /** Recovery and compaction messages. Default: `console.warn`. */
  logger?: WalLogger;
}

/** A segment file. */
export interface SegmentInfo {
  /** File name, `<firstSeq zero-padded to 20 digits>.wal`. */
  name: string;
  firstSeq: number;
  /** Records in the segment (written to the file; appends still buffered are not counted). */
  count: number;
  /** Bytes written to the file. */
  bytes: number;
}

/** What `open` found and repaired. */
export interface RecoveryInfo {
  segments: number;
  records: number;
  /** Set when a torn or corrupt tail was cut off the last segment. */
  truncatedTail?: { file: string; offset: number; droppedBytes: number; reason: string };
}

/** The log is damaged before its tail; opening it would silently lose acknowledged records. */
export class WalCorruptError extends Error {
  readonly file: string;
  readonly offset: number;
  readonly reason: string;

  constructor(file: string, offset: number, reason: string) {
    super(`WAL corrupt in ${file} at offset ${offset}: ${reason}`);
    this.name = "WalCorruptError";
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

/** An earlier write or fsync failed; the log refuses further work (reopen to recover). */
export class WalFailedError extends Error {
  constructor(cause: unknown) {
    super(`WAL unusable after an I/O error: ${cause instanceof Error ? cause.message : cause}`, {
      cause,
    });
    this.name = "WalFailedError";
  }
}

/** Segment file name for a first sequence number. */
export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, "0")}.wal`;
}

/** Encodes one record (header + payload) into `out` at `offset`; returns the bytes used. */
function encodeInto(out: Uint8Array, offset: number, type: number, payload: Uint8Array): number {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[offset + 8] = type;
  out.set(payload, offset + RECORD_HEADER_BYTES);
  const crc = crc32cUpdate(0, out, offset + 8, offset + RECORD_HEADER_BYTES + payload.length);
  dv.setUint32(offset, payload.length, true);
  dv.setUint32(offset + 4, crc, true);
  return RECORD_HEADER_BYTES + payload.length;
}

/** Encodes one record as a fresh buffer. */
export function encodeRecord(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_BYTES + payload.length);
  encodeInto(out, 0, type, payload);
  return out;
}

type Parsed =
  | { ok: true; type: number; start: number; end: number }
  | { ok: false; reason: string };

/** Parses the record at `off` of `data[0, end)`. */
function parseAt(data: Uint8Array, off: number, end: number, maxRecord: number): Parsed {
  const avail = end - off;
  if (avail < RECORD_HEADER_BYTES) {
    return { ok: false, reason: `incomplete header (${avail} of ${RECORD_HEADER_BYTES} bytes)` };
  }
  const len = (data[off] | (data[off + 1] << 8) | (data[off + 2] << 16) | (data[off + 3] << 24)) >>>
    0;
  if (len > maxRecord) {
    return { ok: false, reason: `length ${len} exceeds maxRecordBytes (${maxRecord})` };
  }
  if (avail - RECORD_HEADER_BYTES < len) {
    return {
      ok: false,
      reason: `short payload (${avail - RECORD_HEADER_BYTES} of ${len} bytes)`,
    };
  }
  const stored =
    (data[off + 4] | (data[off + 5] << 8) | (data[off + 6] << 16) | (data[off + 7] << 24)) >>> 0;
  const type = data[off + 8];
  const actual = crc32cUpdate(0, data, off + 8, off + RECORD_HEADER_BYTES + len);
  if (actual !== stored) {
    return {
      ok: false,
      reason: `crc mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)})`,
    };
  }
  if (type === 0) return { ok: false, reason: "record type 0 (reserved)" };
  return { ok: true, type, start: off + RECORD_HEADER_BYTES, end: off + RECORD_HEADER_BYTES + len };
}

interface ScanResult {
  count: number;
  /** End of the last good record. */
  validEnd: number;
  bad?: { offset: number; reason: string };
}

function scan(data: Uint8Array, end: number, maxRecord: number): ScanResult {
  let off = 0;
  let count = 0;
  while (off < end) {
    const p = parseAt(data, off, end, maxRecord);
    if (!p.ok) return { count, validEnd: off, bad: { offset: off, reason: p.reason } };
    count++;
    off = p.end;
  }
  return { count, validEnd: off };
}

/** The offset of some valid record starting after `from`, or -1. */
function findValidAfter(data: Uint8Array, from: number, maxRecord: number): number {
  for (let y = from + 1; y + RECORD_HEADER_BYTES <= data.length; y++) {
    if (data[y + 8] === 0) continue; // type 0 never valid: skip zeroed regions cheaply
    const len = (data[y] | (data[y + 1] << 8) | (data[y + 2] << 16) | (data[y + 3] << 24)) >>> 0;
    if (len > maxRecord || y + RECORD_HEADER_BYTES + len > data.length) continue;
    if (parseAt(data, y, data.length, maxRecord).ok) return y;
  }
  return -1;
}

/** Pending appends destined for one segment. */
interface Chunk {
  /** The chunk opens a new segment whose first record is `firstSeq`. */
  newSegment: boolean;
  firstSeq: number;
  buf: Uint8Array;
  len: number;
  count: number;
}

const consoleLogger: WalLogger = {
  warn: (msg, fields) => console.warn(msg, fields ?? ""),
};

/**
 * A segmented write-ahead log.
 *
 * ```ts
 * const wal = await Wal.open({ fs: new DenoFileSystem(), dir: "/data/wal" });
 * for await (const r of wal.replay()) apply(r);
 * await wal.appendAndSync([{ type: 1, payload }]); // durable when it resolves
 * ```
 *
 * `append` only buffers; `flush` writes the buffer with one write per segment touched; `sync`
 * flushes and fsyncs. Concurrent `sync` calls are coalesced: while one fsync runs, later
 * callers wait for a single next one that covers all of them (group commit).
 */
export class Wal {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #segmentBytesMax: number;
  readonly #maxRecord: number;
  readonly #logger: WalLogger;
  readonly #segments: SegmentInfo[];
  #active: FileHandle;
  readonly #recovery: RecoveryInfo;

  /** Sequence number of the last appended record. */
  #lastSeq: number;
  /** Last sequence number known durable. */
  #durableSeq: number;
  /** Logical size and count of the tail segment, buffered appends included. */
  #tailBytes: number;
  #tailCount: number;
  #chunks: Chunk[] = [];
  #dirDirty = false;
  #failed: unknown = undefined;
  #closed = false;
  /** Serializes file I/O (flush, fsync, rotation, release, close). */
  #io: Promise<unknown> = Promise.resolve();
  /** A sync that has not started yet: new callers join it. */
  #queuedSync: Promise<void> | null = null;
  /** The sync whose fsync is in progress, and the last seq it covers. */
  #runningSync: { upTo: number; promise: Promise<void> } | null = null;

  private constructor(
    options: Required<Omit<WalOptions, "firstSeq">>,
    segments: SegmentInfo[],
    active: FileHandle,
    recovery: RecoveryInfo,
  ) {
    this.#fs = options.fs;
    this.#dir = options.dir;
    this.#segmentBytesMax = options.segmentBytesMax;
    this.#maxRecord = options.maxRecordBytes;
    this.#logger = options.logger;
    this.#segments = segments;
    this.#active = active;
    this.#recovery = recovery;
    const tail = segments[segments.length - 1];
    this.#lastSeq = tail.firstSeq + tail.count - 1;
    this.#durableSeq = this.#lastSeq;
    this.#tailBytes = tail.bytes;
    this.#tailCount = tail.count;
  }

  /**
   * Opens (or creates) the log in `options.dir`, validating every record. A torn or corrupt tail
   * of the last segment (nothing valid after the first bad record) is cut off and logged; any
   * other damage throws {@link WalCorruptError}.
   */
  static async open(options: WalOptions): Promise<Wal> {
    const fs = options.fs;
    const dir = options.dir;
    const opts = {
      fs,
      dir,
      segmentBytesMax: options.segmentBytesMax ?? 64 * 1024 * 1024,
      maxRecordBytes: options.maxRecordBytes ?? 16 * 1024 * 1024,
      logger: options.logger ?? consoleLogger,
    };
    if (!(opts.segmentBytesMax >= RECORD_HEADER_BYTES)) {
      throw new RangeError(`segmentBytesMax ${opts.segmentBytesMax} is too small`);
    }
    if (!(opts.maxRecordBytes >= 0 && opts.maxRecordBytes <= 0xffffffff)) {
      throw new RangeError(`maxRecordBytes ${opts.maxRecordBytes} out of range`);
    }
    const firstSeq = options.firstSeq ?? 1;
    if (!Number.isSafeInteger(firstSeq) || firstSeq < 0) {
      throw new RangeError(`firstSeq ${firstSeq} must be a non-negative safe integer`);
    }
    if ((await fs.stat(dir)) === null) {
      await fs.mkdir(dir);
      await fs.syncDir(dirname(dir));
    }
    const names = (await fs.readDir(dir)).filter((n) => SEGMENT_RE.test(n));
    const segments: SegmentInfo[] = names
      .map((name) => ({ name, firstSeq: Number(SEGMENT_RE.exec(name)![1]), count: 0, bytes: 0 }))
      .sort((a, b) => a.firstSeq - b.firstSeq);
    const recovery: RecoveryInfo = { segments: segments.length, records: 0 };

    if (segments.length === 0) {
      const name = segmentName(firstSeq);
      const handle = await fs.open(joinPath(dir, name), { createNew: true });
      await fs.syncDir(dir);
      return new Wal(opts, [{ name, firstSeq, count: 0, bytes: 0 }], handle, {
        segments: 1,
        records: 0,
      });
    }

    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const isLast = i === segments.length - 1;
      const path = joinPath(dir, seg.name);
      if (i > 0) {
        const prev = segments[i - 1];
        const expected = prev.firstSeq + prev.count;
        if (seg.firstSeq !== expected) {
          throw new WalCorruptError(
            path,
            0,
            `sequence gap: ${prev.name} ends at ${
              expected - 1
            } but the next segment starts at ${seg.firstSeq}`,
          );
        }
      }
      const data = await fs.readFile(path);
      const res = scan(data, data.length, opts.maxRecordBytes);
      seg.count = res.count;
      seg.bytes = res.validEnd;
      recovery.records += res.count;
      if (res.bad === undefined) continue;
      const { offset, reason } = res.bad;
      if (!isLast) {
        throw new WalCorruptError(
          path,
          offset,
          `${reason}; this is not the last segment, so acknowledged records would be lost`,
        );
      }
      const later = findValidAfter(data, offset, opts.maxRecordBytes);
      if (later >= 0) {
        throw new WalCorruptError(
          path,
          offset,
          `${reason}; a valid record follows at offset ${later}, so this is not a torn tail`,
        );
      }
      const dropped = data.length - offset;
      opts.logger.warn("wal: truncating torn or corrupt tail", {
        file: path,
        offset,
        droppedBytes: dropped,
        reason,
      });
      const h = await fs.open(path);
      try {
        await h.truncate(offset);
        await h.sync();
      } finally {
        await h.close();
      }
      recovery.truncatedTail = { file: path, offset, droppedBytes: dropped, reason };
    }
    const tail = segments[segments.length - 1];
    const active = await fs.open(joinPath(dir, tail.name));
    return new Wal(opts, segments, active, recovery);
  }

  /** What recovery found when the log was opened. */
  get recovery(): Readonly<RecoveryInfo> {
    return this.#recovery;
  }

  /** Sequence number of the first record still in the log (after releases). */
  get firstSeq(): number {
    return this.#segments[0].firstSeq;
  }

  /** Sequence number of the last appended record (`firstSeq - 1` when empty). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Every record up to this sequence number is durable. */
  get durableSeq(): number {
    return this.#durableSeq;
  }

  /** The segment files, oldest first. */
  segments(): SegmentInfo[] {
    return this.#segments.map((s) => ({ ...s }));
  }

  #check(): void {
    if (this.#closed) throw new Error("WAL is closed");
    if (this.#failed !== undefined) throw new WalFailedError(this.#failed);
  }

  /** `#check` for promise-returning methods: a rejected promise instead of a throw. */
  #rejectIfUnusable(): Promise<never> | undefined {
    try {
      this.#check();
      return undefined;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Buffers a record and returns its sequence number. Not written until `flush`/`sync`; durable
   * once a `sync()` called after this append resolves.
   */
  append(type: number, payload: Uint8Array): number {
    this.#check();
    if (!Number.isInteger(type) || type < 1 || type > 255) {
      throw new RangeError(`record type ${type} must be an integer in 1..255`);
    }
    if (payload.length > this.#maxRecord) {
      throw new RangeError(
        `record of ${payload.length} bytes exceeds maxRecordBytes ${this.#maxRecord}`,
      );
    }
    const size = RECORD_HEADER_BYTES + payload.length;
    const seq = this.#lastSeq + 1;
    let chunk = this.#chunks[this.#chunks.length - 1];
    if (this.#tailCount > 0 && this.#tailBytes + size > this.#segmentBytesMax) {
      chunk = this.#newChunk(true, seq);
      this.#tailBytes = 0;
      this.#tailCount = 0;
    } else if (chunk === undefined) {
      chunk = this.#newChunk(false, seq);
    }
    if (chunk.len + size > chunk.buf.length) {
      let cap = Math.max(chunk.buf.length * 2, 4096);
      while (cap < chunk.len + size) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(chunk.buf.subarray(0, chunk.len));
      chunk.buf = next;
    }
    chunk.len += encodeInto(chunk.buf, chunk.len, type, payload);
    chunk.count++;
    this.#tailBytes += size;
    this.#tailCount++;
    this.#lastSeq = seq;
    return seq;
  }

  #newChunk(newSegment: boolean, firstSeq: number): Chunk {
    const chunk: Chunk = { newSegment, firstSeq, buf: new Uint8Array(0), len: 0, count: 0 };
    this.#chunks.push(chunk);
    return chunk;
  }

  /** Runs `fn` after every earlier I/O operation; a failure poisons the log. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#io.then(async () => {
      if (this.#failed !== undefined) throw new WalFailedError(this.#failed);
      try {
        return await fn();
      } catch (e) {
        if (this.#failed === undefined) this.#failed = e;
        throw e;
      }
    });
    this.#io = run.catch(() => {});
    return run;
  }

  /** Writes buffered chunks. Caller holds the I/O lock. */
  async #flushLocked(): Promise<void> {
    const chunks = this.#chunks;
    this.#chunks = [];
    for (const chunk of chunks) {
      if (chunk.newSegment) {
        // Seal the current segment durably before anything of the next one can reach the disk,
        // so a crash can only ever tear the last segment.
        await this.#active.sync();
        await this.#active.close();
        const name = segmentName(chunk.firstSeq);
        this.#active = await this.#fs.open(joinPath(this.#dir, name), { createNew: true });
        this.#segments.push({ name, firstSeq: chunk.firstSeq, count: 0, bytes: 0 });
        this.#dirDirty = true;
      }
      if (chunk.len > 0) {
        const seg = this.#segments[this.#segments.length - 1];
        await this.#active.writeAt(seg.bytes, chunk.buf.subarray(0, chunk.len));
        seg.bytes += chunk.len;
        seg.count += chunk.count;
      }
    }
  }

  /** Writes buffered records to the segment files (one write per segment), without fsync. */
  flush(): Promise<void> {
    const bad = this.#rejectIfUnusable();
    if (bad !== undefined) return bad;
    return this.#exclusive(async () => {
      await this.#flushLocked();
    });
  }

  /**
   * Writes and fsyncs everything appended so far (and the directory after a new segment).
   * Concurrent calls share fsyncs: at most one runs and one waits, and every caller that
   * arrived before the waiting one starts is covered by it.
   */
  sync(): Promise<void> {
    const bad = this.#rejectIfUnusable();
    if (bad !== undefined) return bad;
    if (this.#lastSeq <= this.#durableSeq && this.#chunks.length === 0 && !this.#dirDirty) {
      return Promise.resolve();
    }
    const running = this.#runningSync;
    if (
      running !== null && this.#lastSeq <= running.upTo && this.#chunks.length === 0 &&
      !this.#dirDirty
    ) {
      return running.promise; // the fsync in progress already covers everything appended
    }
    if (this.#queuedSync !== null) return this.#queuedSync;
    const p: Promise<void> = this.#exclusive(async () => {
      this.#queuedSync = null; // callers from now on need the next round
      const upTo = this.#lastSeq;
      this.#runningSync = { upTo, promise: p };
      try {
        await this.#flushLocked();
        await this.#active.sync();
        if (this.#dirDirty) {
          this.#dirDirty = false;
          await this.#fs.syncDir(this.#dir);
        }
        if (upTo > this.#durableSeq) this.#durableSeq = upTo;
      } finally {
        this.#runningSync = null;
      }
    });
    this.#queuedSync = p;
    return p;
  }

  /**
   * Appends `records` and resolves once they are durable; concurrent callers are coalesced
   * into shared fsyncs. Returns the first and last sequence numbers assigned.
   */
  async appendAndSync(records: readonly WalInput[]): Promise<{ first: number; last: number }> {
    const first = this.#lastSeq + 1;
    for (const r of records) this.append(r.type, r.payload);
    const last = this.#lastSeq;
    await this.sync();
    return { first, last };
  }

  /** Closes the current segment (if it has records) and starts a new one; durable on return. */
  async rotate(): Promise<void> {
    this.#check();
    if (this.#tailCount > 0) {
      this.#newChunk(true, this.#lastSeq + 1);
      this.#tailBytes = 0;
      this.#tailCount = 0;
    }
    await this.sync();
  }

  /**
   * Reads records back in order, starting at `fromSeq` (default: the first). Flushes buffered
   * appends first. Meant for start-up, before appending; segments released while it runs
   * make it fail.
   */
  async *replay(fromSeq?: number): AsyncGenerator<WalRecord> {
    this.#check();
    await this.flush();
    const start = fromSeq ?? this.firstSeq;
    const segs = this.segments();
    for (let i = 0; i < segs.length; i++) {
      const seg = segs[i];
      const next = segs[i + 1];
      if (next !== undefined && next.firstSeq <= start) continue;
      if (seg.count === 0) continue;
      const path = joinPath(this.#dir, seg.name);
      const data = await this.#fs.readFile(path);
      if (data.length < seg.bytes) {
        throw new WalCorruptError(
          path,
          data.length,
          `file shrank to ${data.length} of ${seg.bytes} bytes`,
        );
      }
      let off = 0;
      for (let k = 0; k < seg.count; k++) {
        const p = parseAt(data, off, seg.bytes, this.#maxRecord);
        if (!p.ok) throw new WalCorruptError(path, off, `${p.reason} (changed since open)`);
        const seq = seg.firstSeq + k;
        if (seq >= start) yield { seq, type: p.type, payload: data.slice(p.start, p.end) };
        off = p.end;
      }
    }
  }

  /**
   * Deletes every segment whose records all have `seq <= upTo` (never the last segment).
   * Oldest first, each removal made durable before the next, so a crash never leaves a gap.
   * Returns the names removed.
   */
  releaseUpTo(upTo: number): Promise<string[]> {
    const bad = this.#rejectIfUnusable();
    if (bad !== undefined) return bad;
    return this.#exclusive(async () => {
      const removed: string[] = [];
      while (this.#segments.length > 1 && this.#segments[1].firstSeq - 1 <= upTo) {
        const seg = this.#segments[0];
        await this.#fs.remove(joinPath(this.#dir, seg.name));
        await this.#fs.syncDir(this.#dir);
        this.#segments.shift();
        removed.push(seg.name);
      }
      if (removed.length > 0) {
        this.#logger.info?.("wal: released segments", { dir: this.#dir, removed, upTo });
      }
      return removed;
    });
  }

  /** Deletes every segment older than the segment named `name` (which must exist). */
  truncateBefore(name: string): Promise<string[]> {
    const seg = this.#segments.find((s) => s.name === name);
    if (seg === undefined) {
      return Promise.reject(new Error(`truncateBefore: no segment named ${name}`));
    }
    return this.releaseUpTo(seg.firstSeq - 1);
  }

  /** Syncs buffered records and closes the log. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#failed === undefined) await this.sync();
    } finally {
      this.#closed = true;
      await this.#io;
      await this.#active.close();
    }
  }
}
