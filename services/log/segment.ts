/**
 * One log segment: `<base offset, 20 digits>.log` holding whole record batches, plus two sparse
 * indexes kept in memory in typed arrays and written to disk when the segment is sealed (or the
 * partition closed):
 *
 * - `.index`: relative offset (u32) → file position (u32) of a batch, one entry per
 *   `indexIntervalBytes` of log. A lookup gives the largest entry at or below an offset; reads
 *   scan forward from there.
 * - `.timeindex`: (max timestamp of every batch before the entry's batch, relative offset of
 *   that batch). Entries have strictly increasing timestamps. A lookup for `ts` gives the last
 *   entry whose timestamp is `< ts`: every record before its batch is older than `ts`, so the
 *   search for the first record with timestamp `>= ts` may start there.
 *
 * Index file layout (big-endian): `.index` = magic "LOIX", CRC-32C of the rest, version 1,
 * entry count, log size the index describes, base offset, next offset, max timestamp, cleaned-at
 * time (ms, -1 = never), then 8-byte entries. `.timeindex` = magic "LOTI", CRC, version, count,
 * log size, base offset, then 12-byte entries (i64 timestamp, u32 relative offset). An index
 * whose CRC, base offset or log size does not match is ignored and rebuilt by scanning the log.
 *
 * File handles: all reads and writes of a segment go through one queue (the `FileHandle`
 * contract has one position per handle), fsync does not (it has its own handle). The handle is
 * opened lazily inside the queue. A sealed segment (closed: no more writes) keeps no file open
 * while nobody reads it: its fsync handle is closed once no fsync runs, its read handle when the
 * last reader releases it (the next read reopens it), so a partition holds a bounded number of
 * descriptors however many segments it has. A segment that is deleted or replaced while reads
 * are in flight is closed when the last reader releases it. Operations queued after
 * {@link Segment.close} fail with {@link LogClosedError}.
 *
 * @module
 */

import { crc32cUpdate, type FileHandle, type FileSystem, joinPath } from "@deno-stores/shared/wal";
import { CorruptBatchError, LogClosedError, LogCorruptError } from "./errors.ts";
import {
  baseOffsetAt,
  BATCH_HEADER_BYTES,
  BATCH_LENGTH_PREFIX_BYTES,
  type BatchHeader,
  batchSizeAt,
  forEachRecord,
  lastOffsetAt,
  maxTimestampAt,
  readBatchHeader,
  readI64,
  readU32,
  writeI64,
  writeU32,
} from "./record_batch.ts";

/** Suffix of segment data files. */
export const LOG_SUFFIX = ".log";
/** Suffix of offset index files. */
export const INDEX_SUFFIX = ".index";
/** Suffix of time index files. */
export const TIMEINDEX_SUFFIX = ".timeindex";
/** Suffix of a compacted copy being written (deleted on recovery). */
export const CLEANED_SUFFIX = ".cleaned";
/** Largest segment file: positions are u32 and must stay below 2^31. */
export const MAX_SEGMENT_BYTES = 0x7fffffff;
/** Offsets inside a segment are stored relative to its base as u32; stay far below. */
export const MAX_RELATIVE_OFFSET = 0x7fffffff;

const INDEX_MAGIC = 0x4c4f4958; // "LOIX"
const TIMEINDEX_MAGIC = 0x4c4f5449; // "LOTI"
const INDEX_HEADER_BYTES = 52;
const TIMEINDEX_HEADER_BYTES = 28;
const SCAN_CHUNK_BYTES = 1024 * 1024;

/** File name of a segment: the base offset as 20 digits plus `suffix`. */
export function segmentFileName(baseOffset: number, suffix: string = LOG_SUFFIX): string {
  return String(baseOffset).padStart(20, "0") + suffix;
}

const NAME_RE = /^(\d{20})\.log$/;

/** The base offset of a `.log` file name, or null if the name is not a segment. */
export function parseSegmentFileName(name: string): number | null {
  const m = NAME_RE.exec(name);
  if (m === null) return null;
  const v = Number(m[1]);
  return Number.isSafeInteger(v) ? v : null;
}

// ---------------------------------------------------------------------------------------------
// In-memory indexes

/** Sparse offset index: relative offset → file position, in two growing typed arrays. */
export class OffsetIndex {
  #rel = new Uint32Array(16);
  #pos = new Uint32Array(16);
  #count = 0;

  /** Number of entries. */
  get count(): number {
    return this.#count;
  }

  /** Adds an entry; relative offsets and positions must increase. */
  append(rel: number, pos: number): void {
    if (this.#count === this.#rel.length) {
      const r = new Uint32Array(this.#count * 2);
      r.set(this.#rel);
      this.#rel = r;
      const p = new Uint32Array(this.#count * 2);
      p.set(this.#pos);
      this.#pos = p;
    }
    this.#rel[this.#count] = rel;
    this.#pos[this.#count] = pos;
    this.#count++;
  }

  /** Index of the largest entry with relative offset <= rel, or -1. */
  #floor(rel: number): number {
    let lo = 0;
    let hi = this.#count - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#rel[mid] <= rel) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  /** File position of the largest entry at or below `rel` (0 when there is none). */
  lookup(rel: number): number {
    const i = this.#floor(rel);
    return i < 0 ? 0 : this.#pos[i];
  }

  /** Position of the last entry (0 when empty). */
  lastPosition(): number {
    return this.#count === 0 ? 0 : this.#pos[this.#count - 1];
  }

  /** Entry `i` as [rel, pos]. */
  entry(i: number): [number, number] {
    return [this.#rel[i], this.#pos[i]];
  }

  /** Bytes of memory held. */
  get memoryBytes(): number {
    return this.#rel.byteLength + this.#pos.byteLength;
  }
}

/** Sparse time index: strictly increasing timestamps → relative offsets. */
export class TimeIndex {
  #ts = new Float64Array(16);
  #rel = new Uint32Array(16);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  /** Adds an entry if `ts` is larger than the last one (otherwise it would tell nothing). */
  maybeAppend(ts: number, rel: number): void {
    if (this.#count > 0 && ts <= this.#ts[this.#count - 1]) return;
    if (this.#count === this.#ts.length) {
      const t = new Float64Array(this.#count * 2);
      t.set(this.#ts);
      this.#ts = t;
      const r = new Uint32Array(this.#count * 2);
      r.set(this.#rel);
      this.#rel = r;
    }
    this.#ts[this.#count] = ts;
    this.#rel[this.#count] = rel;
    this.#count++;
  }

  /** Relative offset where a search for the first timestamp >= ts may start (0 if none). */
  lookup(ts: number): number {
    let lo = 0;
    let hi = this.#count - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ts[mid] < ts) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans < 0 ? 0 : this.#rel[ans];
  }

  entry(i: number): [number, number] {
    return [this.#ts[i], this.#rel[i]];
  }

  get memoryBytes(): number {
    return this.#ts.byteLength + this.#rel.byteLength;
  }
}

// ---------------------------------------------------------------------------------------------
// Index files

/** What the `.index` header records about the log. */
interface IndexMeta {
  logBytes: number;
  nextOffset: number;
  maxTimestamp: number;
  cleanedAtMs: number;
}

// ---------------------------------------------------------------------------------------------
// Segment

/** How a segment is opened or created. */
export interface SegmentOptions {
  fs: FileSystem;
  dir: string;
  /** One offset-index entry per this many bytes of log. */
  indexIntervalBytes: number;
  /** Largest batch believed when scanning. */
  maxBatchBytes: number;
  /** Bytes of its tail the active segment keeps in memory (0: none). */
  tailCacheBytes: number;
}

/** Default of {@link SegmentOptions.tailCacheBytes}. */
export const DEFAULT_TAIL_CACHE_BYTES = 256 * 1024;

/** What opening a segment found. */
export interface SegmentRecovery {
  /** The index files were missing or invalid and were rebuilt by scanning. */
  indexRebuilt: boolean;
  /** Bytes scanned (CRC-checked). */
  scannedBytes: number;
  /** Set when an invalid tail was cut off. */
  truncated?: { position: number; droppedBytes: number; reason: string };
}

/** A batch found by {@link Segment.scan}. */
export type BatchVisitor = (
  buf: Uint8Array,
  pos: number,
  header: BatchHeader,
  filePos: number,
) => boolean | void;

/** A located batch range: bytes of whole batches and the offsets they cover. */
export interface BatchRange {
  bytes: Uint8Array;
  /** Base offset of the first batch (NaN if empty). */
  firstOffset: number;
  /** Last offset of the last batch (NaN if empty). */
  lastOffset: number;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/**
 * One segment of a partition. Mutated by one writer (the partition's append lock or the
 * compactor writing a fresh copy); read concurrently.
 */
export class Segment {
  readonly baseOffset: number;
  /** Path of the `.log` file (changes once when a compacted copy is renamed into place). */
  path: string;
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #indexInterval: number;
  readonly #maxBatchBytes: number;

  /** Bytes of completed writes; reads never go past this (invariant: whole batches only). */
  sizeBytes = 0;
  /** Offset after the last batch; `baseOffset` when empty. */
  nextOffset: number;
  /** Largest record timestamp, -1 when empty. */
  maxTimestamp = -1;
  /** When compaction first cleaned this segment (ms), -1 if never. */
  cleanedAtMs = -1;
  /** Clock time the segment started (for rolling by age). */
  rollStartMs = 0;
  readonly offsetIndex = new OffsetIndex();
  readonly timeIndex = new TimeIndex();
  #bytesSinceIndex = 0;

  /**
   * Compaction found no tombstone left to drop in this segment (in memory only): a pass with
   * nothing new to map may skip it.
   */
  tombstonesPurged = false;

  /** The read/write handle; only touched inside the queue (opened lazily there). */
  #handle: FileHandle | null = null;
  /**
   * A second handle used only for fsync. fdatasync flushes the file (the inode), whichever
   * descriptor it is called on, and Deno runs the operations of one file resource one at a
   * time: a sync on the write handle would hold up the writes of the next group-commit round.
   */
  #syncHandle: Promise<FileHandle> | null = null;
  /** fsyncs in flight (the sync handle of a sealed segment is closed when this drops to 0). */
  #syncs = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #refs = 0;
  #retired = false;
  /** No more writes: handles are closed whenever the segment is idle. */
  #sealed = false;
  /** close() was called: new operations are refused. */
  #closing = false;
  /** The queue reached close(): operations queued after it fail. */
  #closed = false;
  #closePromise: Promise<void> | null = null;

  private constructor(options: SegmentOptions, baseOffset: number, path?: string) {
    this.#fs = options.fs;
    this.#dir = options.dir;
    this.#indexInterval = options.indexIntervalBytes;
    this.#maxBatchBytes = options.maxBatchBytes;
    this.#tailCap = options.tailCacheBytes;
    this.baseOffset = baseOffset;
    this.nextOffset = baseOffset;
    this.path = path ?? joinPath(options.dir, segmentFileName(baseOffset));
  }

  /**
   * Creates a new empty segment file (`createNew`). The caller makes the name durable with a
   * directory fsync before acknowledging anything written to it.
   */
  static async create(
    options: SegmentOptions,
    baseOffset: number,
    nowMs: number,
    path?: string,
  ): Promise<Segment> {
    const seg = new Segment(options, baseOffset, path);
    seg.#handle = await options.fs.open(seg.path, { createNew: true });
    seg.rollStartMs = nowMs;
    return seg;
  }

  /**
   * Opens an existing segment. A closed segment is trusted when its index files match its size
   * (no scan); otherwise, and for the active segment from its last index entry, batches are
   * scanned with CRC checks and an invalid tail is truncated (and reported). A closed segment
   * is opened sealed: its file is not kept open.
   */
  static async open(
    options: SegmentOptions,
    baseOffset: number,
    active: boolean,
    nowMs: number,
  ): Promise<{ segment: Segment; recovery: SegmentRecovery }> {
    const seg = new Segment(options, baseOffset);
    seg.rollStartMs = nowMs;
    seg.#sealed = !active;
    const st = await options.fs.stat(seg.path);
    if (st === null) throw new LogCorruptError(seg.path, "segment file vanished");
    const fileSize = st.size;
    if (fileSize > MAX_SEGMENT_BYTES) {
      throw new LogCorruptError(seg.path, `segment of ${fileSize} bytes is too large`);
    }
    const recovery: SegmentRecovery = { indexRebuilt: false, scannedBytes: 0 };
    const meta = await seg.#loadIndexes(fileSize, active);
    let scanFrom = 0;
    if (meta !== null) {
      seg.sizeBytes = meta.logBytes;
      seg.nextOffset = meta.nextOffset;
      seg.maxTimestamp = meta.maxTimestamp;
      seg.cleanedAtMs = meta.cleanedAtMs;
      if (!active) return { segment: seg, recovery };
      scanFrom = seg.offsetIndex.lastPosition();
    } else {
      recovery.indexRebuilt = true;
    }
    // Scan [scanFrom, fileSize): indexes and metadata are (re)built for what is found.
    seg.sizeBytes = scanFrom;
    let prevNext = scanFrom === 0 ? baseOffset : -1;
    const res = await seg.scan(scanFrom, fileSize, { verifyCrc: true }, (_b, _p, h, filePos) => {
      if (h.baseOffset < baseOffset || (prevNext >= 0 && h.baseOffset < prevNext)) {
        throw new CorruptBatchError(
          `batch base offset ${h.baseOffset} goes backwards (expected >= ${prevNext})`,
          filePos,
        );
      }
      if (h.lastOffset - baseOffset > MAX_RELATIVE_OFFSET) {
        throw new CorruptBatchError(`offset ${h.lastOffset} too far from the base`, filePos);
      }
      prevNext = h.lastOffset + 1;
      seg.#track(filePos, h.sizeBytes, h.baseOffset, h.lastOffset, h.maxTimestamp);
    });
    recovery.scannedBytes = res.end - scanFrom;
    if (res.error !== undefined) {
      const dropped = fileSize - res.end;
      recovery.truncated = { position: res.end, droppedBytes: dropped, reason: res.error.message };
      await seg.#withHandle(async (h) => {
        await h.truncate(res.end);
        await h.sync();
      });
    }
    if (!active) await seg.#closeIdleHandle();
    return { segment: seg, recovery };
  }

  /** Number of readers holding the segment. */
  get refs(): number {
    return this.#refs;
  }

  /** Whether the segment holds no batch. */
  get isEmpty(): boolean {
    return this.sizeBytes === 0;
  }

  /** Whether the segment was deleted or replaced (it closes once no reader holds it). */
  get retired(): boolean {
    return this.#retired;
  }

  /** Runs `fn` after every earlier read/write of this segment. */
  #io<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn);
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * Runs `fn` with the read/write handle, in the queue; opens the file if it is not open.
   * Throws {@link LogClosedError} once the segment is closed.
   */
  #withHandle<T>(fn: (h: FileHandle) => Promise<T>): Promise<T> {
    return this.#io(async () => {
      if (this.#closed) throw new LogClosedError();
      if (this.#handle === null) this.#handle = await this.#fs.open(this.path);
      return fn(this.#handle);
    });
  }

  /** Closes the read/write handle after the queued operations (it reopens on the next use). */
  #closeIdleHandle(): Promise<void> {
    return this.#io(async () => {
      const h = this.#handle;
      this.#handle = null;
      if (h !== null) await h.close();
    });
  }

  /** Closes the fsync handle (callers make sure no fsync is in flight). */
  async #closeSyncHandle(): Promise<void> {
    const sh = this.#syncHandle;
    this.#syncHandle = null;
    if (sh !== null) await (await sh.catch(() => null))?.close();
  }

  /**
   * Marks the segment sealed (fsynced, no more writes): its fsync handle is closed once no
   * fsync runs and its read/write handle once no reader holds it; reads reopen it lazily.
   */
  async seal(): Promise<void> {
    this.#sealed = true;
    this.#tail = null; // only the active segment keeps its tail in memory
    if (this.#closing) return;
    if (this.#syncs === 0) await this.#closeSyncHandle().catch(() => {});
    if (this.#refs === 0) await this.#closeIdleHandle().catch(() => {});
  }

  #checkOffsets(base: number, last: number, next = this.nextOffset): void {
    if (!(base >= this.baseOffset && base >= next && last >= base)) {
      // An invariant of the caller is broken: never write a batch the next open would cut off.
      throw new Error(
        `batch [${base}, ${last}] does not fit segment ${this.path} ` +
          `(base ${this.baseOffset}, next offset ${this.nextOffset})`,
      );
    }
  }

  /** Records a batch just written at `pos` in the indexes and metadata. */
  #track(pos: number, size: number, base: number, last: number, maxTs: number): void {
    if (pos > 0 && this.#bytesSinceIndex >= this.#indexInterval) {
      const rel = base - this.baseOffset;
      this.offsetIndex.append(rel, pos);
      if (this.maxTimestamp >= 0) this.timeIndex.maybeAppend(this.maxTimestamp, rel);
      this.#bytesSinceIndex = 0;
    }
    this.#bytesSinceIndex += size;
    this.sizeBytes = pos + size;
    this.nextOffset = last + 1;
    if (maxTs > this.maxTimestamp) this.maxTimestamp = maxTs;
  }

  /**
   * Appends encoded batches (offsets assigned) at the end with one write (the partition's
   * coalesced appends), keeping the newest bytes in memory. The caller serializes appends; the
   * offsets must fit (increasing from `nextOffset`, else this throws without writing). Readers
   * see the batches once this resolves.
   */
  async appendMany(batches: readonly Uint8Array[]): Promise<void> {
    let chunk = batches[0];
    if (batches.length > 1) {
      let bytes = 0;
      for (const b of batches) bytes += b.length;
      chunk = new Uint8Array(bytes);
      let at = 0;
      for (const b of batches) {
        chunk.set(b, at);
        at += b.length;
      }
    }
    this.#remember(await this.#write(chunk), chunk);
  }

  /**
   * The newest bytes of the active segment, as written: reads of the log's tail (what consumers
   * that keep up ask for) are answered from memory, with no system call. Up to
   * {@link SegmentOptions.tailCacheBytes}; grown as needed, dropped when the segment is sealed.
   */
  #tail: Uint8Array | null = null;
  /** File position of `#tail[0]`, and how many bytes it holds. */
  #tailStart = 0;
  #tailLength = 0;
  #tailCap: number;

  #remember(pos: number, batch: Uint8Array): void {
    const cap = this.#tailCap;
    if (cap <= 0 || this.#sealed) return;
    let n = batch.length;
    if (n > cap) {
      // More than it holds (a large coalesced write): its newest bytes.
      pos += n - cap;
      batch = batch.subarray(n - cap);
      n = cap;
      this.#tailLength = 0;
    }
    if (pos !== this.#tailStart + this.#tailLength) {
      // Not contiguous with what is held: start over.
      this.#tailStart = pos;
      this.#tailLength = 0;
    }
    if (this.#tailLength + n > cap) {
      // Keep the newest half: each byte is moved about once on average.
      const drop = Math.min(this.#tailLength, this.#tailLength + n - (cap >> 1));
      this.#tail!.copyWithin(0, drop, this.#tailLength);
      this.#tailStart += drop;
      this.#tailLength -= drop;
    }
    const need = this.#tailLength + n;
    if (this.#tail === null || this.#tail.length < need) {
      const grown = new Uint8Array(
        Math.min(cap, Math.max(need, 2 * (this.#tail?.length ?? 32 * 1024))),
      );
      if (this.#tail !== null) grown.set(this.#tail.subarray(0, this.#tailLength));
      this.#tail = grown;
    }
    this.#tail.set(batch, this.#tailLength);
    this.#tailLength += n;
  }

  /**
   * Appends a chunk of whole, already validated batches in increasing offset order with one
   * write (the compactor's output) and indexes them.
   */
  async appendBatches(chunk: Uint8Array): Promise<void> {
    if (chunk.length > 0) await this.#write(chunk);
  }

  /**
   * Writes whole batches at the end with one write, after checking that their offsets fit (in
   * order from `nextOffset`), then indexes them; returns where they were written.
   */
  async #write(chunk: Uint8Array): Promise<number> {
    let next = this.nextOffset;
    for (let p = 0; p < chunk.length; p += batchSizeAt(chunk, p)) {
      const last = lastOffsetAt(chunk, p);
      this.#checkOffsets(baseOffsetAt(chunk, p), last, next);
      next = last + 1;
    }
    const pos = this.sizeBytes;
    await this.#withHandle((h) => h.writeAt(pos, chunk));
    for (let p = 0; p < chunk.length;) {
      const size = batchSizeAt(chunk, p);
      this.#track(
        pos + p,
        size,
        baseOffsetAt(chunk, p),
        lastOffsetAt(chunk, p),
        maxTimestampAt(chunk, p),
      );
      p += size;
    }
    return pos;
  }

  /**
   * fdatasync of the segment file (through its own handle, so writes are not held up). On a
   * sealed segment the handle is closed again when no other fsync runs.
   */
  async sync(): Promise<void> {
    if (this.#closing) throw new LogClosedError();
    this.#syncs++;
    try {
      if (this.#syncHandle === null) {
        const opening = this.#fs.open(this.path);
        this.#syncHandle = opening;
        opening.catch(() => {
          if (this.#syncHandle === opening) this.#syncHandle = null;
        });
      }
      const h = await this.#syncHandle;
      await h.sync();
    } finally {
      this.#syncs--;
      if (this.#syncs === 0 && this.#sealed && !this.#closing) {
        await this.#closeSyncHandle().catch(() => {}); // the fsync itself succeeded
      }
    }
  }

  /** Reads `length` bytes at `pos` (shorter at the end), into `into` when it is big enough. */
  readAt(pos: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    const t = this.#tail;
    if (
      t !== null && pos >= this.#tailStart && pos + length <= this.#tailStart + this.#tailLength
    ) {
      const from = pos - this.#tailStart;
      if (into !== undefined && into.length >= length) {
        into.set(t.subarray(from, from + length));
        return Promise.resolve(into.subarray(0, length));
      }
      return Promise.resolve(t.slice(from, from + length));
    }
    return this.#withHandle(async (h) => {
      if (into !== undefined && into.length >= length && h.readInto !== undefined) {
        const n = await h.readInto(pos, into.subarray(0, length));
        return into.subarray(0, n);
      }
      return h.read(pos, length);
    });
  }

  /**
   * Calls `visit` for each batch in `[from, end)`, reading in chunks of about 1 MiB. Stops at
   * the first invalid batch and returns its position as `end` with the error; a visitor may
   * also throw a {@link CorruptBatchError} to stop there, or return false to stop early.
   */
  async scan(
    from: number,
    end: number,
    options: { verifyCrc: boolean },
    visit: BatchVisitor,
  ): Promise<{ end: number; error?: CorruptBatchError }> {
    let bufStart = from;
    let buf = EMPTY;
    let pos = from;
    while (pos < end) {
      let rel = pos - bufStart;
      if (rel + BATCH_LENGTH_PREFIX_BYTES > buf.length) {
        buf = await this.readAt(pos, Math.min(SCAN_CHUNK_BYTES, end - pos));
        bufStart = pos;
        rel = 0;
        if (buf.length < Math.min(BATCH_LENGTH_PREFIX_BYTES, end - pos)) {
          return { end: pos, error: new CorruptBatchError("file shorter than expected", pos) };
        }
      }
      if (rel + BATCH_LENGTH_PREFIX_BYTES <= buf.length) {
        const size = batchSizeAt(buf, rel);
        if (
          size >= BATCH_HEADER_BYTES && size <= this.#maxBatchBytes && pos + size <= end &&
          rel + size > buf.length
        ) {
          buf = await this.readAt(pos, Math.max(size, Math.min(SCAN_CHUNK_BYTES, end - pos)));
          bufStart = pos;
          rel = 0;
        }
      }
      let header: BatchHeader;
      try {
        header = readBatchHeader(buf, rel, Math.min(buf.length, end - bufStart), {
          verifyCrc: options.verifyCrc,
          maxBatchBytes: this.#maxBatchBytes,
        });
        if (visit(buf, rel, header, pos) === false) return { end: pos + header.sizeBytes };
      } catch (e) {
        if (!(e instanceof CorruptBatchError)) throw e;
        const err = new CorruptBatchError(
          e.message.replace(/^corrupt record batch at \d+: /, ""),
          pos,
        );
        return { end: pos, error: err };
      }
      pos += header.sizeBytes;
    }
    return { end: pos };
  }

  /**
   * Reads whole batches starting with the first batch whose last offset is `>= offset`, up to
   * `maxBytes` (at least one whole batch, however large). One buffer; the result is a view of
   * it. Empty if no batch in the segment reaches `offset`.
   */
  async readFrom(offset: number, maxBytes: number, into?: Uint8Array): Promise<BatchRange> {
    const end = this.sizeBytes;
    const rel = Math.max(0, Math.min(offset - this.baseOffset, MAX_RELATIVE_OFFSET));
    let pos = this.offsetIndex.lookup(rel);
    const want = Math.max(1, maxBytes);
    let bufStart = pos;
    let buf = pos < end
      ? await this.readAt(
        pos,
        Math.min(end - pos, this.#indexInterval + want + BATCH_HEADER_BYTES),
        into,
      )
      : EMPTY;
    // Find the first batch reaching `offset`.
    let first = -1;
    let firstSize = 0;
    while (pos < end) {
      let r = pos - bufStart;
      if (r + BATCH_HEADER_BYTES > buf.length) {
        buf = await this.readAt(pos, Math.min(end - pos, want + this.#indexInterval));
        bufStart = pos;
        r = 0;
        if (buf.length < BATCH_HEADER_BYTES) this.#corrupt(pos, "short read");
      }
      const size = batchSizeAt(buf, r);
      if (size < BATCH_HEADER_BYTES || pos + size > end) this.#corrupt(pos, `bad length ${size}`);
      if (lastOffsetAt(buf, r) >= offset) {
        first = pos;
        firstSize = size;
        break;
      }
      pos += size;
    }
    if (first < 0) return { bytes: EMPTY, firstOffset: NaN, lastOffset: NaN };
    // Make sure one buffer holds the first batch and as much after it as maxBytes allows.
    const need = Math.min(end - first, Math.max(firstSize, want));
    if (first - bufStart + need > buf.length) {
      buf = await this.readAt(first, need);
      bufStart = first;
      if (buf.length < firstSize) this.#corrupt(first, "short read");
    }
    const s = first - bufStart;
    let q = s + firstSize;
    let lastOff = lastOffsetAt(buf, s);
    while (q + BATCH_LENGTH_PREFIX_BYTES <= buf.length) {
      const size = batchSizeAt(buf, q);
      if (size < BATCH_HEADER_BYTES) this.#corrupt(bufStart + q, `bad length ${size}`);
      if (q + size > buf.length || q + size - s > want) break;
      lastOff = lastOffsetAt(buf, q);
      q += size;
    }
    const bytes = buf.subarray(s, q);
    return { bytes, firstOffset: baseOffsetAt(buf, s), lastOffset: lastOff };
  }

  #corrupt(pos: number, why: string): never {
    throw new LogCorruptError(this.path, `at position ${pos}: ${why}`);
  }

  /**
   * The first record (in log order) whose timestamp is `>= ts`, or null. Uses the time index to
   * skip batches that are certainly older, then scans.
   */
  async findTimestamp(ts: number): Promise<{ offset: number; timestamp: number } | null> {
    if (this.maxTimestamp < ts) return null;
    const rel = this.timeIndex.lookup(ts);
    const from = this.offsetIndex.lookup(rel);
    let found: { offset: number; timestamp: number } | null = null;
    const res = await this.scan(from, this.sizeBytes, { verifyCrc: false }, (buf, pos, h) => {
      if (h.maxTimestamp < ts) return true;
      forEachRecord(buf, pos, h, (c) => {
        if (found === null && c.timestamp >= ts) {
          found = { offset: c.offset, timestamp: c.timestamp };
        }
      });
      return found === null;
    });
    if (res.error !== undefined) throw new LogCorruptError(this.path, res.error.message);
    return found;
  }

  /** Encodes the `.index` file. */
  #encodeIndex(): Uint8Array {
    const n = this.offsetIndex.count;
    const b = new Uint8Array(INDEX_HEADER_BYTES + n * 8);
    writeU32(b, 0, INDEX_MAGIC);
    writeU32(b, 8, 1);
    writeU32(b, 12, n);
    writeU32(b, 16, this.sizeBytes);
    writeI64(b, 20, this.baseOffset);
    writeI64(b, 28, this.nextOffset);
    writeI64(b, 36, this.maxTimestamp);
    writeI64(b, 44, this.cleanedAtMs);
    for (let i = 0; i < n; i++) {
      const [rel, pos] = this.offsetIndex.entry(i);
      writeU32(b, INDEX_HEADER_BYTES + i * 8, rel);
      writeU32(b, INDEX_HEADER_BYTES + i * 8 + 4, pos);
    }
    writeU32(b, 4, crc32cUpdate(0, b, 8, b.length));
    return b;
  }

  /** Encodes the `.timeindex` file. */
  #encodeTimeIndex(): Uint8Array {
    const n = this.timeIndex.count;
    const b = new Uint8Array(TIMEINDEX_HEADER_BYTES + n * 12);
    writeU32(b, 0, TIMEINDEX_MAGIC);
    writeU32(b, 8, 1);
    writeU32(b, 12, n);
    writeU32(b, 16, this.sizeBytes);
    writeI64(b, 20, this.baseOffset);
    for (let i = 0; i < n; i++) {
      const [ts, rel] = this.timeIndex.entry(i);
      writeI64(b, TIMEINDEX_HEADER_BYTES + i * 12, ts);
      writeU32(b, TIMEINDEX_HEADER_BYTES + i * 12 + 8, rel);
    }
    writeU32(b, 4, crc32cUpdate(0, b, 8, b.length));
    return b;
  }

  /**
   * Writes both index files for the current content and fsyncs them. Their names become
   * durable with the next directory fsync; a missing or stale index is rebuilt on open.
   */
  async writeIndexes(): Promise<void> {
    const base = joinPath(this.#dir, segmentFileName(this.baseOffset, ""));
    for (
      const [suffix, data] of [
        [INDEX_SUFFIX, this.#encodeIndex()],
        [TIMEINDEX_SUFFIX, this.#encodeTimeIndex()],
      ] as const
    ) {
      const h = await this.#fs.open(base + suffix, { create: true, truncate: true });
      try {
        await h.writeAt(0, data);
        await h.sync();
      } finally {
        await h.close();
      }
    }
  }

  /** Loads both index files if they are valid for a log of `fileSize` bytes, else null. */
  async #loadIndexes(fileSize: number, active: boolean): Promise<IndexMeta | null> {
    const base = joinPath(this.#dir, segmentFileName(this.baseOffset, ""));
    let idx: Uint8Array;
    let tix: Uint8Array;
    try {
      idx = await this.#fs.readFile(base + INDEX_SUFFIX);
      tix = await this.#fs.readFile(base + TIMEINDEX_SUFFIX);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    if (
      idx.length < INDEX_HEADER_BYTES || readU32(idx, 0) !== INDEX_MAGIC ||
      readU32(idx, 4) !== crc32cUpdate(0, idx, 8, idx.length) || readU32(idx, 8) !== 1
    ) return null;
    if (
      tix.length < TIMEINDEX_HEADER_BYTES || readU32(tix, 0) !== TIMEINDEX_MAGIC ||
      readU32(tix, 4) !== crc32cUpdate(0, tix, 8, tix.length) || readU32(tix, 8) !== 1
    ) return null;
    const n = readU32(idx, 12);
    const tn = readU32(tix, 12);
    const logBytes = readU32(idx, 16);
    if (idx.length !== INDEX_HEADER_BYTES + n * 8) return null;
    if (tix.length !== TIMEINDEX_HEADER_BYTES + tn * 12) return null;
    if (readI64(idx, 20) !== this.baseOffset || readI64(tix, 20) !== this.baseOffset) return null;
    if (readU32(tix, 16) !== logBytes) return null;
    if (active ? logBytes > fileSize : logBytes !== fileSize) return null;
    const meta: IndexMeta = {
      logBytes,
      nextOffset: readI64(idx, 28),
      maxTimestamp: readI64(idx, 36),
      cleanedAtMs: readI64(idx, 44),
    };
    if (!(meta.nextOffset >= this.baseOffset) || !Number.isSafeInteger(meta.nextOffset)) {
      return null;
    }
    let prevRel = -1;
    let prevPos = -1;
    for (let i = 0; i < n; i++) {
      const rel = readU32(idx, INDEX_HEADER_BYTES + i * 8);
      const pos = readU32(idx, INDEX_HEADER_BYTES + i * 8 + 4);
      if (rel <= prevRel || pos <= prevPos || pos >= logBytes) return null;
      this.offsetIndex.append(rel, pos);
      prevRel = rel;
      prevPos = pos;
    }
    for (let i = 0; i < tn; i++) {
      this.timeIndex.maybeAppend(
        readI64(tix, TIMEINDEX_HEADER_BYTES + i * 12),
        readU32(tix, TIMEINDEX_HEADER_BYTES + i * 12 + 8),
      );
    }
    return meta;
  }

  /**
   * Sealed segments whose file is open while no reader holds them, least recently used first:
   * a consumer reading an old segment read after read does not reopen its file each time, and
   * at most {@link Segment.idleHandlesMax} such files stay open in the process.
   */
  static readonly #idle = new Map<Segment, true>();
  /** Most idle sealed-segment files kept open (per process). */
  static idleHandlesMax = 64;

  #park(): void {
    const idle = Segment.#idle;
    idle.delete(this);
    idle.set(this, true);
    while (idle.size > Segment.idleHandlesMax) {
      const oldest = idle.keys().next().value!;
      idle.delete(oldest);
      void oldest.#closeIdleHandle().catch(() => {});
    }
  }

  /** Takes a reference for a reader (the file stays open until released). */
  retain(): void {
    this.#refs++;
    Segment.#idle.delete(this);
  }

  /**
   * Drops a reader's reference; the last one closes the segment if it was retired meanwhile,
   * or parks its file if it is sealed (kept open among the most recently read idle files, else
   * closed; the next read reopens it).
   */
  release(): void {
    this.#refs--;
    if (this.#refs !== 0 || this.#closing) return;
    if (this.#retired) void this.close();
    else if (this.#sealed) this.#park();
  }

  /** Marks the segment deleted or replaced: its file closes once no reader holds it. */
  retire(): void {
    this.#retired = true;
    if (this.#refs === 0) void this.close();
  }

  /**
   * Closes the file handles after the reads and writes queued so far; later ones (and fsyncs)
   * fail with {@link LogClosedError}.
   */
  close(): Promise<void> {
    if (this.#closePromise !== null) return this.#closePromise;
    this.#closing = true;
    Segment.#idle.delete(this);
    this.#closePromise = (async () => {
      await this.#io(async () => {
        this.#closed = true;
        const h = this.#handle;
        this.#handle = null;
        if (h !== null) await h.close();
      });
      await this.#closeSyncHandle();
    })();
    return this.#closePromise;
  }

  /** Approximate memory held by the indexes. */
  get indexMemoryBytes(): number {
    return this.offsetIndex.memoryBytes + this.timeIndex.memoryBytes;
  }
}
