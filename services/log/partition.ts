/**
 * A partition: an append-only log of record batches in a directory of segments, on the
 * {@link FileSystem} interface (the real disk or `SimDisk`), with an injected clock. See
 * `docs/log.md` for the format and guarantees.
 *
 * - Appends are serialized (offsets and file order agree), one batch per call. Writes are
 *   coalesced: appends queued together are written with one write, and acks=fsync appends made
 *   while an fsync runs are written by the next round just before its fsync.
 *   `acks: "write"` resolves after the OS write; `acks: "fsync"` after an fdatasync shared with
 *   concurrent appenders (group commit: at most one fsync running and one round waiting).
 * - Offsets are never reused, even after a crash loses unsynced records: see
 *   {@link OffsetReservation}.
 * - Segments roll by size and age; sealing fsyncs the segment and writes its indexes. A new
 *   segment's name is made durable (directory fsync) before anything in it is acknowledged
 *   as durable.
 * - Retention deletes whole closed segments; compaction rewrites closed segments keeping the
 *   latest record per key, in bounded async steps, swapping each cleaned copy in atomically.
 *   A cleaner checkpoint (`cleaner.checkpoint`) remembers how far the log has been cleaned, so
 *   each pass maps only the dirty part after it.
 * - Closed segments keep no file open while nobody reads them.
 *
 * @module
 */

import { dirname, type FileSystem, joinPath, writeFileAtomic } from "@deno-stores/shared/wal";
import {
  InvalidConfigError,
  LogClosedError,
  LogCorruptError,
  LogError,
  LogFailedError,
  OffsetOutOfRangeError,
} from "./errors.ts";
import { KeyOffsetMap } from "./key_offset_map.ts";
import { decodeSlot, encodeSlot, OffsetReservation, SLOT_BYTES } from "./offset_reservation.ts";
import {
  type BatchLimits,
  DEFAULT_BATCH_LIMITS,
  encodeBatch,
  encodeGapBatch,
  forEachRecord,
  HARD_MAX_BATCH_BYTES,
  lastOffsetAt,
  type LogRecord,
  readBatchHeader,
  setBaseOffset,
  type TimestampType,
  writeFilteredBatch,
} from "./record_batch.ts";
import {
  CLEANED_SUFFIX,
  DEFAULT_TAIL_CACHE_BYTES,
  INDEX_SUFFIX,
  LOG_SUFFIX,
  MAX_RELATIVE_OFFSET,
  MAX_SEGMENT_BYTES,
  parseSegmentFileName,
  Segment,
  segmentFileName,
  type SegmentOptions,
  TIMEINDEX_SUFFIX,
} from "./segment.ts";

/** Kafka's `cleanup.policy`. */
export type CleanupPolicy = "delete" | "compact" | "compact,delete";

/** When an append resolves. */
export type Acks = "write" | "fsync";

/** Partition configuration (Kafka topic-config names in camelCase; all optional). */
export interface PartitionConfig extends Partial<BatchLimits> {
  /** Roll when the active segment would grow past this. Default 1 GiB, max 2 GiB - 1. */
  segmentBytes?: number;
  /** Roll when the active segment is older than this (by the clock). Default 7 days. */
  segmentMs?: number;
  /** One offset-index entry per this many bytes of log. Default 4096. */
  indexIntervalBytes?: number;
  /** Delete old segments while the rest is at least this big. -1 = no limit (default). */
  retentionBytes?: number;
  /** Delete segments whose newest record is older than this. -1 = forever. Default 7 days. */
  retentionMs?: number;
  /** Default "delete". */
  cleanupPolicy?: CleanupPolicy;
  /** Tombstones survive this long after their segment was first cleaned. Default 1 day. */
  deleteRetentionMs?: number;
  /** Default "create" (the producer's timestamp). */
  timestampType?: TimestampType;
  /** Offsets reserved per checkpoint write. Default 2^20. */
  offsetReserveStep?: number;
  /** Memory budget of the compactor's key map. Default 32 MiB. */
  compactionMapBytesMax?: number;
}

/** The configuration with every default filled in. */
export type ResolvedPartitionConfig = Required<PartitionConfig>;

/** Where warnings go (a `shared/http` Logger fits). */
export interface PartitionLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  info?(msg: string, fields?: Record<string, unknown>): void;
}

/** Injected dependencies. */
export interface PartitionOptions {
  /** Milliseconds; drives record timestamps, rolling by age, retention and tombstones. */
  clock: { now(): number };
  /** Recovery and maintenance messages. Default: `console.warn`. */
  logger?: PartitionLogger;
  /** Newest bytes of the active segment kept in memory. Default: DEFAULT_TAIL_CACHE_BYTES. */
  tailCacheBytes?: number;
}

/** Options of {@link Partition.append}. */
export interface AppendOptions {
  /** Default "fsync". */
  acks?: Acks;
}

/** Result of {@link Partition.append}. */
export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  /** Set when the partition uses log-append time. */
  logAppendTime?: number;
}

/** Result of {@link Partition.read}. */
export interface ReadResult {
  /** Whole batches (possibly starting before the requested offset). A view of one buffer. */
  bytes: Uint8Array;
  /** Next offset to be written; everything below it is readable. */
  highWatermark: number;
  logStartOffset: number;
  /** Where the next read should start: after the last batch returned (or the offset asked). */
  nextOffset: number;
}

/** Counters since open. */
export interface PartitionStats {
  appends: number;
  appendedRecords: number;
  appendedBytes: number;
  fsyncs: number;
  /** Writes to segment files by appends (a burst of queued appends shares one). */
  writes: number;
  dirSyncs: number;
  rolls: number;
  reservations: number;
  /** Bytes cut off invalid tails during recovery. */
  truncatedBytes: number;
  truncations: number;
  indexRebuilds: number;
  compactions: number;
  compactedSegments: number;
  compactionBytesRemoved: number;
  retentionDeletions: number;
}

/** What compaction did. */
export interface CompactionResult {
  segmentsCleaned: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsRemoved: number;
  tombstonesRemoved: number;
  /** The key map hit its memory budget: only a prefix of the log was considered. */
  mapFull: boolean;
}

/** What recovery found at open. */
export interface PartitionRecovery {
  segments: number;
  /** End of the valid data found. */
  recoveredEnd: number;
  /** Next offset after recovery (>= recoveredEnd; larger when reserved offsets were lost). */
  nextOffset: number;
  truncatedBytes: number;
  /** Segments whose tail was cut off. */
  truncations: number;
  indexRebuilds: number;
  removedCleanedFiles: number;
}

const DAY_MS = 24 * 3600 * 1000;

/** The defaults. */
export const DEFAULT_PARTITION_CONFIG: Readonly<ResolvedPartitionConfig> = Object.freeze({
  ...DEFAULT_BATCH_LIMITS,
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * DAY_MS,
  indexIntervalBytes: 4096,
  retentionBytes: -1,
  retentionMs: 7 * DAY_MS,
  cleanupPolicy: "delete" as CleanupPolicy,
  deleteRetentionMs: DAY_MS,
  timestampType: "create" as TimestampType,
  offsetReserveStep: 1 << 20,
  compactionMapBytesMax: 32 * 1024 * 1024,
});

/** Fills defaults and checks ranges; throws {@link InvalidConfigError}. */
export function resolvePartitionConfig(config: PartitionConfig = {}): ResolvedPartitionConfig {
  const c: ResolvedPartitionConfig = { ...DEFAULT_PARTITION_CONFIG };
  for (const [k, v] of Object.entries(config)) {
    if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  }
  const int = (name: keyof ResolvedPartitionConfig, min: number, max: number) => {
    const v = c[name];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new InvalidConfigError(`${name} = ${v} must be an integer in [${min}, ${max}]`);
    }
  };
  int("segmentBytes", 1024, MAX_SEGMENT_BYTES);
  int("segmentMs", 1, Number.MAX_SAFE_INTEGER);
  int("indexIntervalBytes", 1, 1 << 30);
  int("retentionBytes", -1, Number.MAX_SAFE_INTEGER);
  int("retentionMs", -1, Number.MAX_SAFE_INTEGER);
  int("deleteRetentionMs", 0, Number.MAX_SAFE_INTEGER);
  int("offsetReserveStep", 1, 1 << 30);
  int("compactionMapBytesMax", 64 * 1024, 2 ** 40);
  int("maxBatchBytes", 64, HARD_MAX_BATCH_BYTES);
  int("maxRecordsPerBatch", 1, 10_000_000);
  int("maxKeyBytes", 0, HARD_MAX_BATCH_BYTES);
  int("maxValueBytes", 0, HARD_MAX_BATCH_BYTES);
  int("maxHeadersPerRecord", 0, 100_000);
  int("maxHeaderKeyBytes", 0, HARD_MAX_BATCH_BYTES);
  int("maxHeaderValueBytes", 0, HARD_MAX_BATCH_BYTES);
  if (!["delete", "compact", "compact,delete"].includes(c.cleanupPolicy)) {
    throw new InvalidConfigError(`cleanupPolicy ${c.cleanupPolicy} is not known`);
  }
  if (c.timestampType !== "create" && c.timestampType !== "logAppend") {
    throw new InvalidConfigError(`timestampType ${c.timestampType} is not known`);
  }
  return c;
}

const consoleLogger: PartitionLogger = {
  warn: (msg, fields) => console.warn(msg, fields ?? ""),
};

const EMPTY: Uint8Array = new Uint8Array(0);
/** Bytes of compaction work between yields to the event loop. */
const COMPACTION_SLICE_BYTES = 1024 * 1024;

/**
 * A real macrotask turn (timers and I/O callbacks run). With synchronous file I/O every await of
 * a read is only a microtask, so compaction must yield like this to let requests through.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** File name of the cleaner checkpoint inside a partition directory. */
export const CLEANER_CHECKPOINT_FILE = "cleaner.checkpoint";
const CLEANER_CHECKPOINT_MAGIC = 0x4c4f4343; // "LOCC"

/**
 * The cleaner checkpoint of `dir`: 0 (the log start) when the file is missing or damaged (a
 * damaged one is logged). Starting over only costs work: compaction never depends on it for
 * what it may drop beyond "this prefix holds at most one record per key".
 */
async function readCleanerCheckpoint(
  fs: FileSystem,
  dir: string,
  logger: PartitionLogger,
): Promise<number> {
  let b: Uint8Array;
  try {
    b = await fs.readFile(joinPath(dir, CLEANER_CHECKPOINT_FILE));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  // One slot, as the offset reservation writes them (generation 1: the format's version).
  const slot = decodeSlot(CLEANER_CHECKPOINT_MAGIC, b, 0);
  if (slot !== null && slot.gen === 1 && b.length === SLOT_BYTES) return slot.value;
  logger.warn("log: cleaner checkpoint unreadable; compaction starts over from the log start", {
    dir,
  });
  return 0;
}

/**
 * Replaces the cleaner checkpoint atomically: a fsynced temporary file renamed over it. Without
 * a directory fsync a crash may bring back the previous checkpoint, which is valid too.
 */
function writeCleanerCheckpoint(fs: FileSystem, dir: string, offset: number): Promise<void> {
  const path = joinPath(dir, CLEANER_CHECKPOINT_FILE);
  return writeFileAtomic(fs, path, encodeSlot(CLEANER_CHECKPOINT_MAGIC, 1, offset), {
    syncDir: false,
  });
}

interface Waiter {
  offset: number;
  done: (available: boolean) => void;
}

/** Compaction stopped because the partition is closing. */
class Aborted extends Error {}

/** Bytes of the batches in `items`. */
function sizeOf(items: readonly Uint8Array[]): number {
  let n = 0;
  for (const it of items) n += it.length;
  return n;
}

/**
 * One partition of a topic.
 *
 * @example
 * ```ts
 * import { DenoFileSystem } from "@deno-stores/shared/wal";
 * import { decodeBatches, Partition } from "@deno-stores/log";
 * const dir = await Deno.makeTempDir();
 * const p = await Partition.open(new DenoFileSystem(), dir, {}, { clock: { now: Date.now } });
 * const { baseOffset } = await p.append([{ key: null, value: new Uint8Array([1]) }], {
 *   acks: "fsync",
 * });
 * const { bytes } = await p.read(baseOffset, 1 << 20);
 * console.assert(decodeBatches(bytes, baseOffset).length === 1);
 * await p.close();
 * ```
 */
export class Partition {
  readonly dir: string;
  #config: Readonly<ResolvedPartitionConfig>;
  readonly #fs: FileSystem;
  readonly #clock: { now(): number };
  readonly #logger: PartitionLogger;
  #segOpts: SegmentOptions;
  #limits!: BatchLimits;
  #compacted = false;
  #deletes = false;
  readonly #recovery: PartitionRecovery;
  readonly #reservation: OffsetReservation;

  /** All segments, oldest first; replaced (never mutated) so readers can hold a snapshot. */
  #segments: Segment[];
  /** The last segment; the only one appended to. */
  #active: Segment;
  /** Next offset to assign; also the high watermark once the write in flight completes. */
  #nextOffset: number;
  /** Everything below is written to the OS and readable. */
  #hw: number;
  /** Everything below is fsynced. */
  #durableEnd: number;
  #logStartOffset: number;
  /** A new segment name is not yet durable (a directory fsync is owed). */
  #dirDirty = false;
  #appendTail: Promise<unknown> = Promise.resolve();
  /** Appends waiting for their turn in the append order. */
  #queuedAppends = 0;
  /**
   * Batches whose offsets are assigned but which are not written yet: appends queued together
   * (a burst of concurrent producers) are written with one write by the last of them.
   */
  #pending: Uint8Array[] = [];
  /** Bytes queued or being written: not in the active segment's size yet, but bound for it. */
  #unwrittenBytes = 0;
  /** Some queued batch is acks=write: its appender waits for the write, not for an fsync. */
  #pendingWriteAcks = false;
  #pendingDone: PromiseWithResolvers<void> | null = null;
  /** The last write of queued batches issued (they run one after the other). */
  #flushTail: Promise<void> = Promise.resolve();
  #maintenanceTail: Promise<unknown> = Promise.resolve();
  #runningSync: { upTo: number; promise: Promise<void> } | null = null;
  /** Background seals of rolled segments (fsync + indexes); sync rounds wait for them. */
  readonly #sealing = new Set<Promise<void>>();
  #queuedSync: Promise<void> | null = null;
  #failed: unknown = undefined;
  /**
   * close() was called: new appends and maintenance runs are refused, queued appends still run
   * and are acknowledged by a final sync round.
   */
  #closing = false;
  /** Closed: every call throws {@link LogClosedError}. */
  #closed = false;
  #closePromise: Promise<void> | null = null;
  /**
   * Cleaner checkpoint: every offset below it has been through a compaction pass whose key map
   * covered it, so records below it hold at most one record per key (among themselves). The
   * next pass maps keys from here on.
   */
  #cleanerCheckpoint = 0;
  readonly #waiters = new Set<Waiter>();
  readonly #stats: PartitionStats = {
    appends: 0,
    appendedRecords: 0,
    appendedBytes: 0,
    fsyncs: 0,
    writes: 0,
    dirSyncs: 0,
    rolls: 0,
    reservations: 0,
    truncatedBytes: 0,
    truncations: 0,
    indexRebuilds: 0,
    compactions: 0,
    compactedSegments: 0,
    compactionBytesRemoved: 0,
    retentionDeletions: 0,
  };

  private constructor(
    fs: FileSystem,
    dir: string,
    config: ResolvedPartitionConfig,
    options: PartitionOptions,
    segOpts: SegmentOptions,
    segments: Segment[],
    reservation: OffsetReservation,
    nextOffset: number,
    recovery: PartitionRecovery,
  ) {
    this.#fs = fs;
    this.dir = dir;
    this.#config = config;
    this.#clock = options.clock;
    this.#logger = options.logger ?? consoleLogger;
    this.#segOpts = segOpts;
    this.#applyConfig(config);
    this.#segments = segments;
    this.#active = segments[segments.length - 1];
    this.#reservation = reservation;
    this.#nextOffset = nextOffset;
    this.#hw = nextOffset;
    this.#durableEnd = nextOffset;
    this.#logStartOffset = segments[0].baseOffset;
    this.#recovery = recovery;
  }

  /**
   * Opens (creating if needed) the partition in `dir` and recovers it: leftover compaction
   * files are removed, closed segments are trusted (indexes rebuilt if missing or stale), the
   * active segment is scanned with CRC checks from its last index entry and an invalid tail is
   * truncated (logged and counted). The next offset is `max(recovered end, reserved mark)`;
   * lost reserved offsets are covered by an empty gap batch so readers can step over them.
   */
  static async open(
    fs: FileSystem,
    dir: string,
    config: PartitionConfig = {},
    options: PartitionOptions,
  ): Promise<Partition> {
    const cfg = resolvePartitionConfig(config);
    const logger = options.logger ?? consoleLogger;
    const now = options.clock.now();
    if ((await fs.stat(dir)) === null) {
      await fs.mkdir(dir);
      await fs.syncDir(dirname(dir));
    }
    const segOpts: SegmentOptions = {
      fs,
      dir,
      indexIntervalBytes: cfg.indexIntervalBytes,
      maxBatchBytes: Math.max(cfg.maxBatchBytes, HARD_MAX_BATCH_BYTES),
      tailCacheBytes: options.tailCacheBytes ?? DEFAULT_TAIL_CACHE_BYTES,
    };
    const names = await fs.readDir(dir);
    let removedCleaned = 0;
    for (const name of names) {
      if (name.endsWith(CLEANED_SUFFIX)) {
        await fs.remove(joinPath(dir, name));
        removedCleaned++;
      }
    }
    if (removedCleaned > 0) {
      logger.warn("log: removed unfinished compaction files", { dir, count: removedCleaned });
      await fs.syncDir(dir);
    }
    const bases = names.map(parseSegmentFileName).filter((b): b is number => b !== null)
      .sort((a, b) => a - b);
    const state = await OffsetReservation.read(fs, dir);
    const cleanerCheckpoint = await readCleanerCheckpoint(fs, dir, logger);
    const segments: Segment[] = [];
    const recovery: PartitionRecovery = {
      segments: bases.length,
      recoveredEnd: 0,
      nextOffset: 0,
      truncatedBytes: 0,
      truncations: 0,
      indexRebuilds: 0,
      removedCleanedFiles: removedCleaned,
    };
    try {
      for (let i = 0; i < bases.length; i++) {
        const active = i === bases.length - 1;
        const { segment, recovery: r } = await Segment.open(segOpts, bases[i], active, now);
        if (r.indexRebuilt) recovery.indexRebuilds++;
        // A closed segment's rebuilt index is saved so the next open need not scan again.
        if (!active && (r.indexRebuilt || r.truncated !== undefined)) await segment.writeIndexes();
        if (r.truncated !== undefined) {
          recovery.truncatedBytes += r.truncated.droppedBytes;
          recovery.truncations++;
          logger.warn("log: truncating torn or corrupt segment tail", {
            file: segment.path,
            position: r.truncated.position,
            droppedBytes: r.truncated.droppedBytes,
            reason: r.truncated.reason,
            activeSegment: active,
          });
        }
        const prev = segments[segments.length - 1];
        if (prev !== undefined && prev.nextOffset > segment.baseOffset) {
          throw new LogCorruptError(
            segment.path,
            `segment starts at ${segment.baseOffset} but the previous one ends at ${prev.nextOffset}`,
          );
        }
        segments.push(segment);
      }
    } catch (e) {
      for (const s of segments) await s.close();
      throw e;
    }
    let recoveredEnd = segments.length > 0
      ? segments[segments.length - 1].nextOffset
      : (state.kind === "ok" ? state.value : 0);
    let next = recoveredEnd;
    if (state.kind === "ok") next = Math.max(next, state.value);
    else if (state.kind === "corrupt") {
      next = recoveredEnd + cfg.offsetReserveStep;
      logger.warn("log: offset reservation checkpoint unreadable; skipping a reserve step", {
        dir,
        recoveredEnd,
        next,
      });
    } else if (segments.length > 0) {
      logger.warn("log: offset reservation checkpoint missing", { dir, recoveredEnd });
    }
    if (segments.length === 0) {
      // No data at all: the log simply starts at `next` (no gap batch; a batch below the
      // segment's base offset would be cut off as corrupt by the next open).
      recoveredEnd = next;
      segments.push(await Segment.create(segOpts, next, now));
    }
    let reservation: OffsetReservation;
    try {
      reservation = await OffsetReservation.create(
        fs,
        dir,
        next,
        state.kind === "ok" ? state.generation : 0,
      );
      // Make the first segment's name (and any removals) durable before appends are acked.
      await fs.syncDir(dir);
    } catch (e) {
      for (const s of segments) await s.close();
      throw e;
    }
    recovery.recoveredEnd = recoveredEnd;
    recovery.nextOffset = next;
    const p = new Partition(
      fs,
      dir,
      cfg,
      options,
      segOpts,
      segments,
      reservation,
      recoveredEnd,
      recovery,
    );
    // Never trust a checkpoint past the recovered log (it only lets compaction skip mapping).
    p.#cleanerCheckpoint = Math.min(cleanerCheckpoint, segments[segments.length - 1].nextOffset);
    p.#stats.truncatedBytes = recovery.truncatedBytes;
    p.#stats.truncations = recovery.truncations;
    p.#stats.indexRebuilds = recovery.indexRebuilds;
    if (next > recoveredEnd) {
      logger.warn("log: offsets reserved before a crash were lost; marking the gap", {
        dir,
        from: recoveredEnd,
        to: next - 1,
      });
      await p.#serialized(() => p.#appendGap(next));
    }
    return p;
  }

  #applyConfig(config: ResolvedPartitionConfig): void {
    this.#config = Object.freeze({ ...config });
    this.#limits = {
      maxBatchBytes: config.maxBatchBytes,
      maxRecordsPerBatch: config.maxRecordsPerBatch,
      maxKeyBytes: config.maxKeyBytes,
      maxValueBytes: config.maxValueBytes,
      maxHeadersPerRecord: config.maxHeadersPerRecord,
      maxHeaderKeyBytes: config.maxHeaderKeyBytes,
      maxHeaderValueBytes: config.maxHeaderValueBytes,
    };
    this.#compacted = config.cleanupPolicy.includes("compact");
    this.#deletes = config.cleanupPolicy.includes("delete");
    this.#segOpts = { ...this.#segOpts, indexIntervalBytes: config.indexIntervalBytes };
  }

  /**
   * Changes settings of the open partition (validated like at open; unset fields keep their
   * current value). Takes effect for the next append, roll, retention or compaction run;
   * `indexIntervalBytes` for segments created from now on.
   */
  reconfigure(changes: PartitionConfig): void {
    this.#applyConfig(resolvePartitionConfig({ ...this.#config, ...changes }));
  }

  // -------------------------------------------------------------------------------------------
  // Accessors

  /** The current settings (defaults filled in). */
  get config(): Readonly<ResolvedPartitionConfig> {
    return this.#config;
  }

  /** Next offset to be written; every offset below it is readable (or a gap). */
  get highWatermark(): number {
    return this.#hw;
  }

  /** Everything below this offset is fsynced. */
  get durableOffset(): number {
    return this.#durableEnd;
  }

  /** The first offset still in the log (advanced by retention). */
  get logStartOffset(): number {
    return this.#logStartOffset;
  }

  /** Total bytes of all segments. */
  get size(): number {
    let n = 0;
    for (const s of this.#segments) n += s.sizeBytes;
    return n;
  }

  /** Number of segments (the active one included). */
  get segmentCount(): number {
    return this.#segments.length;
  }

  /** Base offsets of the segments, oldest first. */
  segmentBaseOffsets(): number[] {
    return this.#segments.map((s) => s.baseOffset);
  }

  /** A copy of the counters. */
  get stats(): PartitionStats {
    return { ...this.#stats };
  }

  /** What recovery found at open. */
  get recovery(): Readonly<PartitionRecovery> {
    return this.#recovery;
  }

  /** The durable reserved mark (offsets below it may have been handed out). */
  get reservedOffset(): number {
    return this.#reservation.value;
  }

  /** Where the next compaction pass starts mapping keys (everything below has been cleaned). */
  get cleanerCheckpoint(): number {
    return this.#cleanerCheckpoint;
  }

  #check(): void {
    if (this.#closed) throw new LogClosedError();
    if (this.#failed !== undefined) throw new LogFailedError(this.#failed);
  }

  #fail(e: unknown): void {
    if (this.#failed === undefined) {
      this.#failed = e;
      this.#logger.warn("log: I/O failure, partition is unusable until reopened", {
        dir: this.dir,
        error: e instanceof Error ? e.message : String(e),
      });
    }
    // Queued batches will never be written: their appenders are told now.
    this.#dropPending(new LogFailedError(this.#failed));
  }

  #dropPending(error: Error): void {
    const done = this.#pendingDone;
    if (done === null) return;
    this.#unwrittenBytes -= sizeOf(this.#pending);
    this.#pending = [];
    this.#pendingWriteAcks = false;
    this.#pendingDone = null;
    done.reject(error);
  }

  /** Runs `fn` after every earlier append/roll. */
  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#appendTail.then(() => {
      this.#check();
      return fn();
    });
    this.#appendTail = p.catch(() => {});
    return p;
  }

  /** Runs `fn` after every earlier retention or compaction run (refused once closing). */
  #maintenance<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#maintenanceTail.then(() => {
      this.#check();
      if (this.#closing) throw new LogClosedError();
      return fn();
    });
    this.#maintenanceTail = p.catch(() => {});
    return p;
  }

  // -------------------------------------------------------------------------------------------
  // Append

  /**
   * Appends `records` as one batch. Resolves with the offsets once written to the OS
   * (`acks: "write"`) or fsynced (`acks: "fsync"`, the default). Records are validated and
   * encoded before the append lock is taken; limit violations throw typed errors and assign no
   * offset. On a compacted log a null key is rejected ({@link InvalidRecordError}).
   */
  async append(records: readonly LogRecord[], options: AppendOptions = {}): Promise<AppendResult> {
    this.#check();
    if (this.#closing) throw new LogClosedError();
    const acks = options.acks ?? "fsync";
    const now = this.#clock.now();
    const logAppend = this.config.timestampType === "logAppend";
    const batch = encodeBatch(0, records, {
      now,
      timestampType: this.config.timestampType,
      limits: this.#limits,
      requireKeys: this.#compacted,
    });
    const count = records.length;
    this.#queuedAppends++;
    let ran = false;
    let written: Promise<void> | undefined;
    const result = await this.#serialized(async () => {
      ran = true;
      this.#queuedAppends--;
      try {
        await this.#maybeRoll(batch.length, count, now);
        const base = this.#nextOffset;
        const last = base + count - 1;
        if (last >= this.#reservation.value) await this.#reserve(last + 1);
        setBaseOffset(batch, base);
        this.#nextOffset = last + 1;
        written = this.#addPending(batch);
        if (acks === "write") this.#pendingWriteAcks = true;
        this.#stats.appends++;
        this.#stats.appendedRecords += count;
        this.#stats.appendedBytes += batch.length;
        const r: AppendResult = { baseOffset: base, lastOffset: last };
        if (logAppend) r.logAppendTime = now;
        return r;
      } catch (e) {
        if (!(e instanceof LogError)) this.#fail(e);
        throw e instanceof LogError ? e : new LogFailedError(e);
      } finally {
        // The last of a wave of queued appends writes the wave (its own batch included). A
        // wave of acks=fsync appends only, while an fsync runs, is left for the next round,
        // which writes everything queued by then with one write before its fsync.
        if (
          this.#queuedAppends === 0 && this.#pending.length > 0 &&
          (this.#pendingWriteAcks || this.#runningSync === null)
        ) {
          await this.#flushPending().catch(() => {});
        }
      }
    }).finally(() => {
      if (ran) return;
      // Refused before its turn (the partition failed or closed): whoever waits for the wave
      // is told, since no later append will write it.
      this.#queuedAppends--;
      if (this.#queuedAppends === 0) {
        this.#dropPending(
          this.#failed !== undefined ? new LogFailedError(this.#failed) : new LogClosedError(),
        );
      }
    });
    // acks=fsync: the sync round that covers the batch writes it first if it is still queued.
    if (acks === "fsync") await this.#syncUpTo(result.lastOffset + 1);
    else await written;
    return result;
  }

  /**
   * Queues an encoded batch (offsets assigned) for the next {@link #flushPending}; resolves once
   * it is written and readable (rejects if that write fails).
   */
  #addPending(batch: Uint8Array): Promise<void> {
    if (this.#pending.length === 0) {
      this.#pendingDone = Promise.withResolvers<void>();
      // Only the appenders await it: a failure is reported to them, never unhandled.
      this.#pendingDone.promise.catch(() => {});
    }
    this.#pending.push(batch);
    this.#unwrittenBytes += batch.length;
    return this.#pendingDone!.promise;
  }

  /**
   * Writes every queued batch to the active segment with one write, then makes them readable;
   * resolves once every write issued so far is done. Called by the last append of a wave and
   * before anything else writes to or rolls the active segment (inside the append order), and
   * by a sync round before its fsync. A failed write fails the partition (callers that must not
   * go on after one check {@link #check}).
   */
  #flushPending(): Promise<void> {
    if (this.#pending.length === 0) return this.#flushTail;
    const items = this.#pending, done = this.#pendingDone!;
    this.#pending = [];
    this.#pendingWriteAcks = false;
    this.#pendingDone = null;
    // One write at a time, in the order the batches were queued: a sync round's flush may be
    // issued while an append's is still being written.
    const seg = this.#active;
    const p = this.#flushTail.then(async () => {
      try {
        this.#check();
        await seg.appendMany(items);
        this.#stats.writes++;
        this.#advanceHw(lastOffsetAt(items[items.length - 1], 0) + 1);
        done.resolve();
      } catch (e) {
        if (!(e instanceof LogError)) this.#fail(e);
        const err = e instanceof LogError ? e : new LogFailedError(e);
        done.reject(err);
        throw err;
      } finally {
        this.#unwrittenBytes -= sizeOf(items);
      }
    });
    this.#flushTail = p.catch(() => {});
    return p;
  }

  /** Writes an empty batch covering `[nextOffset, end)` (lost reserved offsets). */
  async #appendGap(end: number): Promise<void> {
    const base = this.#nextOffset;
    const gap = encodeGapBatch(base, end - 1);
    await this.#maybeRoll(gap.length, end - base, this.#clock.now());
    this.#nextOffset = end;
    this.#addPending(gap);
    await this.#flushPending();
  }

  #advanceHw(end: number): void {
    if (end <= this.#hw) return;
    this.#hw = end;
    if (this.#waiters.size === 0) return;
    for (const w of this.#waiters) if (end > w.offset) w.done(true);
  }

  /** Raises the durable reservation so that offsets below `needed` may be used. */
  async #reserve(needed: number): Promise<void> {
    await this.#reservation.advance(needed + this.config.offsetReserveStep);
    this.#stats.reservations++;
    this.#stats.fsyncs++;
  }

  /** Nothing written to the active segment, nor on its way there. */
  #activeEmpty(): boolean {
    return this.#active.isEmpty && this.#unwrittenBytes === 0;
  }

  async #maybeRoll(bytes: number, count: number, now: number): Promise<void> {
    const a = this.#active;
    const relEnd = this.#nextOffset + count - 1 - a.baseOffset;
    const full = a.sizeBytes + this.#unwrittenBytes + bytes > this.config.segmentBytes;
    const old = now - a.rollStartMs >= this.config.segmentMs;
    if ((!this.#activeEmpty() && (full || old)) || relEnd > MAX_RELATIVE_OFFSET) {
      await this.#roll(now);
    }
  }

  /**
   * Starts a new active segment at the next offset and seals the old one in the background
   * (fsync, then its indexes, then its file handles are closed: reads reopen them on demand),
   * so appends do not wait for a whole segment to reach the disk.
   * Every fsync round waits for the seals started before it, so `durableOffset` and acks=fsync
   * still cover the old segment. A crash before the seal completes leaves a closed segment
   * without a valid index: recovery scans it with CRC checks and cuts a torn tail.
   */
  async #roll(now: number): Promise<void> {
    await this.#flushPending();
    const old = this.#active;
    const seg = await Segment.create(this.#segOpts, this.#nextOffset, now);
    this.#dirDirty = true;
    this.#segments = [...this.#segments, seg];
    this.#active = seg;
    this.#stats.rolls++;
    old.retain();
    const seal = (async () => {
      try {
        await old.sync();
        this.#stats.fsyncs++;
        await old.writeIndexes();
        await old.seal(); // no more writes: its files close while nobody reads it
      } catch (e) {
        this.#fail(e);
        throw new LogFailedError(e);
      } finally {
        old.release();
      }
    })();
    this.#sealing.add(seal);
    seal.then(() => this.#sealing.delete(seal), () => this.#sealing.delete(seal));
  }

  /** Waits for the background seals started so far. */
  async #awaitSeals(): Promise<void> {
    if (this.#sealing.size > 0) await Promise.all([...this.#sealing]);
  }

  /** Rolls the active segment now if it holds data (for tests and operators). */
  roll(): Promise<void> {
    return this.#serialized(async () => {
      if (!this.#activeEmpty()) await this.#roll(this.#clock.now());
    });
  }

  /** Resolves once every offset below `end` is durable (group commit). */
  async #syncUpTo(end: number): Promise<void> {
    while (this.#durableEnd < end) {
      this.#check();
      const running = this.#runningSync;
      if (running === null) {
        await this.#startSyncRound();
        continue;
      }
      if (running.upTo >= end) {
        await running.promise;
        continue;
      }
      if (this.#queuedSync === null) {
        this.#queuedSync = running.promise.catch(() => {}).then(() => {
          this.#queuedSync = null;
          return this.#startSyncRound();
        });
      }
      await this.#queuedSync;
    }
  }

  /** One fsync round covering everything written so far. */
  #startSyncRound(): Promise<void> {
    if (this.#runningSync !== null) return this.#runningSync.promise;
    this.#check();
    // Everything with an offset so far is covered: queued batches are written first.
    const flushed = this.#flushPending();
    const upTo = this.#nextOffset;
    const seg = this.#active;
    const dirty = this.#dirDirty;
    this.#dirDirty = false;
    const seals = [...this.#sealing];
    seg.retain();
    const promise = (async () => {
      try {
        await flushed;
        // What the fsync covers: the batches below `upTo` that were written. A write that
        // failed (its appenders were told, the partition is failed) carried nothing durable,
        // and nothing after it was written.
        const covered = Math.min(upTo, this.#hw);
        await Promise.all([...seals, seg.sync()]);
        this.#stats.fsyncs++;
        if (dirty) {
          await this.#fs.syncDir(this.dir);
          this.#stats.dirSyncs++;
        }
        if (covered > this.#durableEnd) this.#durableEnd = covered;
      } catch (e) {
        if (e instanceof LogError) throw e;
        this.#fail(e);
        throw new LogFailedError(e);
      } finally {
        seg.release();
        this.#runningSync = null;
      }
    })();
    this.#runningSync = { upTo, promise };
    return promise;
  }

  /** fsyncs everything written so far (and the directory if a segment was created). */
  flush(): Promise<void> {
    return this.#syncUpTo(this.#nextOffset);
  }

  // -------------------------------------------------------------------------------------------
  // Read

  /**
   * Reads whole batches from the one containing `offset` (or the first after it, across
   * compaction gaps) up to `maxBytes`, but always at least one whole batch. The bytes may
   * start before `offset`: decode with {@link decodeBatches}`(bytes, offset)`.
   * `offset == highWatermark` gives empty bytes; below `logStartOffset` or above the high
   * watermark throws {@link OffsetOutOfRangeError}. Empty bytes below the high watermark (no
   * segment holds a batch there any more) come with `nextOffset` moved past the hole. With
   * `into` (at least `maxBytes` plus the
   * index interval and a batch header), the bytes are read into it when they fit: the result is
   * then a view of `into`, valid until the caller reuses it (a sequential consumer reads its
   * whole log through one buffer, with no allocation per read).
   */
  async read(
    offset: number,
    maxBytes: number,
    options: { into?: Uint8Array } = {},
  ): Promise<ReadResult> {
    this.#check();
    const hw = this.#hw;
    const lso = this.#logStartOffset;
    if (!Number.isSafeInteger(offset) || offset < lso || offset > hw) {
      throw new OffsetOutOfRangeError(offset, lso, hw);
    }
    let at = offset;
    for (;;) {
      const segs = this.#segments;
      let i = floorSegment(segs, at);
      while (i < segs.length && segs[i].nextOffset <= at) i++;
      if (i >= segs.length) break;
      const seg = segs[i];
      seg.retain();
      let r;
      try {
        r = await seg.readFrom(at, maxBytes, options.into);
      } finally {
        seg.release();
      }
      if (r.bytes.length > 0) {
        return {
          bytes: r.bytes,
          highWatermark: this.#hw,
          logStartOffset: this.#logStartOffset,
          nextOffset: r.lastOffset + 1,
        };
      }
      // No batch of `seg` reaches `at` any more: go on after it (nextOffset > at, so this ends).
      at = seg.nextOffset;
    }
    // No segment holds anything at or after `at`. Segments are updated before the high
    // watermark, so whatever lies in [offset, hw) is a hole (nothing to read): move the reader
    // to the high watermark (which is `offset` in the usual case of reading at the end).
    const hwNow = this.#hw;
    return {
      bytes: EMPTY,
      highWatermark: hwNow,
      logStartOffset: this.#logStartOffset,
      nextOffset: Math.max(offset, hwNow),
    };
  }

  /**
   * Resolves true as soon as `highWatermark > offset`, or false when `maxWaitMs` passes, the
   * signal aborts or the partition closes (long-poll support for fetch).
   */
  waitForData(offset: number, maxWaitMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#hw > offset) return Promise.resolve(true);
    if (this.#closing || maxWaitMs <= 0 || signal?.aborted === true) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const onAbort = () => w.done(false);
      const timer = setTimeout(() => w.done(this.#hw > offset), maxWaitMs);
      const w: Waiter = {
        offset,
        done: (available) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          this.#waiters.delete(w);
          resolve(available);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(w);
    });
  }

  /**
   * The earliest offset (in log order) whose record timestamp is `>= ts`, with that timestamp,
   * or null if there is none (Kafka's offsetsForTimes). Like {@link read}, the segment list is
   * read again at each step, so segments deleted or replaced meanwhile are never opened; a
   * result below a log start offset moved meanwhile is dropped and the search goes on there.
   */
  async offsetForTimestamp(ts: number): Promise<{ offset: number; timestamp: number } | null> {
    let at = this.#logStartOffset;
    for (;;) {
      this.#check();
      const segs = this.#segments;
      at = Math.max(at, this.#logStartOffset);
      let i = floorSegment(segs, at);
      while (
        i < segs.length &&
        (segs[i].nextOffset <= at || segs[i].maxTimestamp < ts || segs[i].retired)
      ) i++;
      if (i >= segs.length) return null;
      const seg = segs[i];
      seg.retain();
      let found;
      try {
        found = await seg.findTimestamp(ts);
      } finally {
        seg.release();
      }
      if (found !== null && found.offset >= this.#logStartOffset) return found;
      // Nothing (or only something retention removed meanwhile): go on after this segment.
      at = seg.nextOffset;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Retention

  /**
   * Deletes whole closed segments, oldest first, while the policy includes "delete" and
   * either the rest of the log is still at least `retentionBytes` or the segment's newest
   * record is older than `retentionMs`. Never the active segment. Returns the number deleted.
   */
  enforceRetention(): Promise<number> {
    return this.#maintenance(async () => {
      if (!this.#deletes) return 0;
      await this.#awaitSeals(); // a seal must not write indexes for a deleted segment
      const now = this.#clock.now();
      const { retentionBytes, retentionMs } = this.config;
      let deleted = 0;
      const removed: Segment[] = [];
      for (;;) {
        const segs = this.#segments;
        if (segs.length <= 1) break;
        const oldest = segs[0];
        let total = 0;
        for (const s of segs) total += s.sizeBytes;
        const bySize = retentionBytes >= 0 && total - oldest.sizeBytes >= retentionBytes;
        const byTime = retentionMs >= 0 && oldest.maxTimestamp < now - retentionMs;
        if (!bySize && !byTime) break;
        this.#segments = segs.slice(1);
        this.#logStartOffset = Math.max(this.#logStartOffset, segs[1].baseOffset);
        oldest.retire();
        removed.push(oldest);
        deleted++;
      }
      if (removed.length === 0) return 0;
      try {
        for (const seg of removed) await this.#removeSegmentFiles(seg.baseOffset);
        await this.#fs.syncDir(this.dir);
        this.#stats.dirSyncs++;
      } catch (e) {
        this.#fail(e);
        throw new LogFailedError(e);
      }
      this.#stats.retentionDeletions += deleted;
      this.#logger.info?.("log: retention deleted segments", {
        dir: this.dir,
        count: deleted,
        logStartOffset: this.#logStartOffset,
      });
      return deleted;
    });
  }

  async #removeSegmentFiles(base: number): Promise<void> {
    for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIMEINDEX_SUFFIX]) {
      try {
        await this.#fs.remove(joinPath(this.dir, segmentFileName(base, suffix)));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Compaction

  /**
   * Compacts the closed segments (policy must include "compact", else a no-op): keeps the
   * latest record per key; a tombstone (null value) that is the latest for its key is kept
   * until `deleteRetentionMs` after its segment was first cleaned, then dropped. Records with
   * a null key (only possible in data written under another policy) are kept. Offsets are
   * preserved: a filtered batch keeps its base and last offset, and the last batch of each
   * segment is kept even when empty, so reads step over gaps.
   *
   * 1. Key map: key → latest offset over the dirty part of the closed segments, from the
   *    cleaner checkpoint on, as far as `compactionMapBytesMax` allows (a full map is logged
   *    and the pass covers the log up to the map's end only).
   * 2. Every closed segment up to the map's end, the already cleaned ones too, drops the records
   *    at or before the map's end whose key has a newer offset in the map. A segment whose
   *    records all stay is not rewritten (nor buffered). Otherwise it is rewritten into
   *    `<base>.cleaned` (the unchanged prefix copied in bounded steps), fsynced, renamed over
   *    `<base>.log` and the directory fsynced: a crash leaves either the old or the new segment.
   * 3. The cleaner checkpoint moves to the map's end + 1 (the next pass resumes there).
   *
   * The work runs in ~1 MiB steps that yield to the event loop (a macrotask, so also with
   * synchronous file I/O), concurrently with appends and reads.
   */
  compact(): Promise<CompactionResult> {
    return this.#maintenance(async () => {
      const result: CompactionResult = {
        segmentsCleaned: 0,
        bytesBefore: 0,
        bytesAfter: 0,
        recordsRemoved: 0,
        tombstonesRemoved: 0,
        mapFull: false,
      };
      if (!this.#compacted) return result;
      await this.#awaitSeals(); // a seal must not overwrite a cleaned segment's indexes
      const closed = this.#segments.slice(0, -1);
      if (closed.length === 0) return result;
      const now = this.#clock.now();
      // Phase 1: key → latest offset over the dirty part (as far as the budget allows).
      const from = Math.max(this.#cleanerCheckpoint, this.#logStartOffset);
      const map = new KeyOffsetMap({ maxBytes: this.config.compactionMapBytesMax });
      /** Every offset in [from, mapEnd] is in the map (or has a null key, or none). */
      let mapEnd = from - 1;
      let full = false;
      for (const seg of closed) {
        if (seg.nextOffset <= from) continue;
        await this.#mapSegment(seg, from, map, (offset, isFull) => {
          if (isFull) full = true;
          else if (offset > mapEnd) mapEnd = offset;
        });
        if (full) break;
        mapEnd = Math.max(mapEnd, seg.nextOffset - 1);
      }
      if (full) {
        result.mapFull = true;
        this.#logger.warn("log: compaction key map full; cleaning up to its end, the rest later", {
          dir: this.dir,
          from,
          mapEnd,
          keys: map.size,
          compactionMapBytesMax: this.config.compactionMapBytesMax,
        });
      }
      // Phase 2: rewrite each closed segment up to the map's end, oldest first. With nothing
      // mapped, only segments that may still hold expired tombstones are worth a look.
      for (const seg of closed) {
        if (seg.baseOffset > mapEnd) break;
        if (!this.#segments.includes(seg)) continue;
        if (map.size === 0 && seg.cleanedAtMs >= 0 && !this.#tombstonesDue(seg, now)) continue;
        await this.#cleanSegment(seg, map, mapEnd, now, result);
      }
      // Phase 3: everything up to the map's end is clean now.
      if (mapEnd + 1 > this.#cleanerCheckpoint) {
        this.#cleanerCheckpoint = mapEnd + 1;
        try {
          await writeCleanerCheckpoint(this.#fs, this.dir, this.#cleanerCheckpoint);
        } catch (e) {
          // Only costs work after a restart (the previous checkpoint, or none, is still valid).
          this.#logger.warn("log: could not write the cleaner checkpoint", {
            dir: this.dir,
            error: e instanceof Error ? e.message : String(e),
          });
        }
      }
      this.#stats.compactions++;
      return result;
    }).catch((e) => {
      if (e instanceof Aborted) throw new LogClosedError();
      throw e;
    });
  }

  #abortIfClosed(): void {
    if (this.#closing) throw new Aborted();
  }

  /** Whether compaction may still find a tombstone to drop in `seg`. */
  #tombstonesDue(seg: Segment, now: number): boolean {
    return !seg.tombstonesPurged && seg.cleanedAtMs >= 0 &&
      now - seg.cleanedAtMs >= this.config.deleteRetentionMs;
  }

  /**
   * Phase 1 for one segment: puts the keys of its records at offsets `>= from` into `map`,
   * calling `mapped(offset, false)` for each record (or batch) covered and `mapped(-1, true)`
   * when the map is full (the scan stops there). Scans ~1 MiB per step, then yields.
   */
  async #mapSegment(
    seg: Segment,
    from: number,
    map: KeyOffsetMap,
    mapped: (offset: number, full: boolean) => void,
  ): Promise<void> {
    let full = false;
    seg.retain();
    try {
      let pos = seg.baseOffset >= from
        ? 0
        : seg.offsetIndex.lookup(Math.min(from - seg.baseOffset, MAX_RELATIVE_OFFSET));
      const end = seg.sizeBytes;
      while (pos < end && !full) {
        const sliceStart = pos;
        const res = await seg.scan(pos, end, { verifyCrc: false }, (buf, p, h, filePos) => {
          if (h.lastOffset >= from) {
            forEachRecord(buf, p, h, (c) => {
              if (full || c.offset < from) return;
              if (c.keyLength >= 0 && !map.put(buf, c.keyStart, c.keyLength, c.offset)) {
                full = true;
                mapped(-1, true);
                return;
              }
              mapped(c.offset, false);
            });
            if (full) return false;
            mapped(h.lastOffset, false);
          }
          return filePos + h.sizeBytes - sliceStart < COMPACTION_SLICE_BYTES;
        });
        if (res.error !== undefined) throw new LogCorruptError(seg.path, res.error.message);
        pos = res.end;
        await yieldToEventLoop();
        this.#abortIfClosed();
      }
    } finally {
      seg.release();
    }
  }

  async #cleanSegment(
    seg: Segment,
    map: KeyOffsetMap,
    mapEnd: number,
    now: number,
    result: CompactionResult,
  ): Promise<void> {
    const dropTombstones = seg.cleanedAtMs >= 0 &&
      now - seg.cleanedAtMs >= this.config.deleteRetentionMs;
    /** The whole segment is covered by the map (so this pass cleans all of it). */
    const whole = seg.nextOffset - 1 <= mapEnd;
    const cleanedPath = joinPath(this.dir, segmentFileName(seg.baseOffset, CLEANED_SUFFIX));
    const logPath = joinPath(this.dir, segmentFileName(seg.baseOffset, LOG_SUFFIX));
    let out: Segment | null = null;
    let chunk = new Uint8Array(COMPACTION_SLICE_BYTES + 64 * 1024);
    let chunkLen = 0;
    /** Until the first change: the batches before this file position stay as they are. */
    let prefixEnd = 0;
    let changed = false;
    let removed = 0;
    let tombstones = 0;
    const ranges: number[] = [];
    const ensure = (n: number) => {
      if (chunkLen + n > chunk.length) {
        const next = new Uint8Array(Math.max(chunk.length * 2, chunkLen + n));
        next.set(chunk.subarray(0, chunkLen));
        chunk = next;
      }
    };
    seg.retain();
    try {
      let pos = 0;
      const end = seg.sizeBytes;
      while (pos < end) {
        // One slice: scan up to ~1 MiB of batches synchronously, then write and yield.
        const sliceStart = pos;
        const res = await seg.scan(pos, end, { verifyCrc: false }, (buf, p, h, filePos) => {
          const isLast = filePos + h.sizeBytes === end;
          ranges.length = 0;
          let maxTs = -1;
          let kept = 0;
          forEachRecord(buf, p, h, (c) => {
            let keep = true;
            if (c.keyLength >= 0 && c.offset <= mapEnd) {
              const latest = map.get(buf, c.keyStart, c.keyLength);
              if (latest > c.offset) keep = false;
              else if (c.valueLength < 0 && dropTombstones) {
                keep = false;
                tombstones++;
              }
            }
            if (keep) {
              ranges.push(c.recordStart, c.recordEnd);
              if (c.timestamp > maxTs) maxTs = c.timestamp;
              kept++;
            } else removed++;
          });
          if (kept === h.recordCount) {
            if (changed) {
              ensure(h.sizeBytes);
              chunk.set(buf.subarray(p, p + h.sizeBytes), chunkLen);
              chunkLen += h.sizeBytes;
            } else prefixEnd = filePos + h.sizeBytes; // nothing buffered before a change
          } else {
            changed = true;
            // Never launder a damaged batch into a fresh CRC.
            readBatchHeader(buf, p, p + h.sizeBytes, { verifyCrc: true });
            if (kept > 0 || isLast) {
              ensure(h.sizeBytes);
              chunkLen += writeFilteredBatch(
                buf,
                h,
                ranges,
                kept > 0 ? maxTs : -1,
                chunk,
                chunkLen,
              );
            }
          }
          return filePos + h.sizeBytes - sliceStart < COMPACTION_SLICE_BYTES;
        });
        if (res.error !== undefined) throw new LogCorruptError(seg.path, res.error.message);
        pos = res.end;
        if (changed) {
          if (out === null) {
            out = await Segment.create(this.#segOpts, seg.baseOffset, seg.rollStartMs, cleanedPath);
            await this.#copyBatches(seg, prefixEnd, out);
          }
          if (chunkLen > 0) await out.appendBatches(chunk.subarray(0, chunkLen));
          chunkLen = 0;
        }
        await yieldToEventLoop();
        this.#abortIfClosed();
      }
      const firstClean = seg.cleanedAtMs >= 0 ? seg.cleanedAtMs : whole ? now : -1;
      // After a pass that dropped expired tombstones over the whole segment none is left.
      const purged = seg.tombstonesPurged || (dropTombstones && whole);
      if (out === null) {
        // Nothing changed: nothing was written; just remember when it was first cleaned.
        seg.tombstonesPurged = purged;
        if (seg.cleanedAtMs !== firstClean) {
          seg.cleanedAtMs = firstClean;
          await seg.writeIndexes();
        }
        return;
      }
      const cleaned: Segment = out;
      await cleaned.sync();
      this.#stats.fsyncs++;
      this.#abortIfClosed();
      // Swap: drop the old indexes (rebuilt if we crash), rename over the log, fsync the dir.
      for (const suffix of [INDEX_SUFFIX, TIMEINDEX_SUFFIX]) {
        try {
          await this.#fs.remove(joinPath(this.dir, segmentFileName(seg.baseOffset, suffix)));
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
      }
      await this.#fs.rename(cleanedPath, logPath);
      await this.#fs.syncDir(this.dir);
      this.#stats.dirSyncs++;
      cleaned.path = logPath;
      cleaned.cleanedAtMs = firstClean;
      cleaned.tombstonesPurged = purged;
      cleaned.nextOffset = Math.max(cleaned.nextOffset, seg.nextOffset);
      this.#segments = this.#segments.map((s) => (s === seg ? cleaned : s));
      seg.retire();
      out = null;
      await cleaned.writeIndexes();
      await cleaned.seal(); // closed segment: its files close while nobody reads it
      result.segmentsCleaned++;
      result.bytesBefore += seg.sizeBytes;
      result.bytesAfter += cleaned.sizeBytes;
      result.recordsRemoved += removed;
      result.tombstonesRemoved += tombstones;
      this.#stats.compactedSegments++;
      this.#stats.compactionBytesRemoved += seg.sizeBytes - cleaned.sizeBytes;
    } catch (e) {
      if (out !== null) await this.#discard(out, cleanedPath).catch(() => {});
      throw e;
    } finally {
      seg.release();
    }
  }

  /**
   * Copies the whole batches of `from` in `[0, end)` to the end of `to`, ~1 MiB per write,
   * yielding between writes (the unchanged prefix of a segment being compacted).
   */
  async #copyBatches(from: Segment, end: number, to: Segment): Promise<void> {
    let buf = new Uint8Array(0);
    let pos = 0;
    while (pos < end) {
      const sliceStart = pos;
      let len = 0;
      const res = await from.scan(pos, end, { verifyCrc: false }, (b, p, h, filePos) => {
        if (len + h.sizeBytes > buf.length) {
          const next = new Uint8Array(
            Math.max(COMPACTION_SLICE_BYTES + 64 * 1024, len + h.sizeBytes),
          );
          next.set(buf.subarray(0, len));
          buf = next;
        }
        buf.set(b.subarray(p, p + h.sizeBytes), len);
        len += h.sizeBytes;
        return filePos + h.sizeBytes - sliceStart < COMPACTION_SLICE_BYTES;
      });
      if (res.error !== undefined) throw new LogCorruptError(from.path, res.error.message);
      if (len > 0) await to.appendBatches(buf.subarray(0, len));
      pos = res.end;
      await yieldToEventLoop();
      this.#abortIfClosed();
    }
  }

  async #discard(seg: Segment, path: string): Promise<void> {
    await seg.close();
    try {
      await this.#fs.remove(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Close

  /**
   * Refuses new appends and maintenance runs, waits for the appends in flight, stops compaction
   * at its next step, then runs a final group-commit round: appenders waiting for an fsync of
   * data written before close() resolve successfully (they reject only if the partition failed).
   * Then the partition is closed: the active segment's indexes are written (so the next open
   * scans nothing) and every file is closed. Pending `waitForData` calls resolve false. Calling
   * it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    await this.#appendTail;
    for (const w of [...this.#waiters]) w.done(false);
    await this.#maintenanceTail;
    if (this.#failed === undefined) {
      // Acknowledge every waiting acks=fsync appender (a failure rejects them by itself).
      await this.#syncUpTo(this.#nextOffset).catch(() => {});
    }
    this.#closed = true;
    await this.#queuedSync?.catch(() => {});
    await this.#runningSync?.promise.catch(() => {});
    await this.#awaitSeals().catch(() => {});
    try {
      if (this.#failed === undefined) {
        await this.#active.sync();
        if (this.#dirDirty) await this.#fs.syncDir(this.dir);
        this.#durableEnd = this.#hw;
        await this.#active.writeIndexes();
        // Clean shutdown: nothing past the end was handed out, so no gap on the next open.
        await this.#reservation.advance(this.#nextOffset);
      }
    } finally {
      for (const s of this.#segments) await s.close();
      await this.#reservation.close();
    }
  }
}

/** Index of the last segment whose base offset is `<= offset` (0 if none). */
function floorSegment(segs: readonly Segment[], offset: number): number {
  let lo = 0;
  let hi = segs.length - 1;
  let ans = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (segs[mid].baseOffset <= offset) {
      ans = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return ans;
}
