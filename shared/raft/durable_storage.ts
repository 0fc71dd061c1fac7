/**
 * Durable Raft storage: a {@link MemoryStorage} (what `RaftCore` reads) made durable by a
 * write-ahead log (`shared/wal`) plus snapshot files. See README.md ("Durability").
 *
 * Layout under `dir`: `wal/` (WAL segments) and `snap/` (snapshot files).
 *
 * WAL records (the WAL's sequence number is not the Raft index):
 *
 * - `1` hard state: `encodeHardState`;
 * - `2` entries: uvarint count, then entries (`writeEntry`). On replay a record replaces the log
 *   from its first index on, exactly as `MemoryStorage.append` does when it was saved: later
 *   entries for an index win and a conflicting tail is dropped;
 * - `3` snapshot marker: kind (1 = installed from the leader, 2 = compaction by the
 *   application), index, term. Written after the snapshot file is durable. An installed
 *   snapshot replaces the whole log; a compaction keeps the entries after its index.
 *
 * Snapshot file payload (`snap-<index>.snap`, see `shared/wal/snapshot_file.ts`): kind byte then
 * the codec's `encodeSnapshot` (metadata and data).
 *
 * @module
 */

import {
  decodeHardState,
  decodeSnapshot,
  encodeHardState,
  encodeSnapshotParts,
  entriesSize,
  readEntry,
  Reader,
  writeEntry,
  Writer,
} from "./codec.ts";
import { MemoryStorage } from "./storage.ts";
import type { ConfState, Entry, Snapshot } from "./types.ts";
import {
  applyToStorage,
  compactStorage,
  type RaftPersistence,
  type SaveUpdate,
} from "./persistence.ts";
import type { FileSystem } from "../wal/fs.ts";
import { joinPath } from "../wal/fs.ts";
import { type RecoveryInfo, type SegmentInfo, Wal, type WalLogger } from "../wal/wal.ts";
import { SnapshotFiles } from "../wal/snapshot_file.ts";

const REC_HARD_STATE = 1;
const REC_ENTRIES = 2;
const REC_SNAPSHOT = 3;

const KIND_INSTALL = 1;
const KIND_COMPACT = 2;

/** Options for {@link DurableStorage.open}. */
export interface DurableStorageOptions {
  /** Membership of the index-0 snapshot of a brand-new storage (tests; see MemoryStorage). */
  confState?: ConfState;
  /** WAL segment size limit (default 64 MiB). Segments are released after snapshots. */
  segmentBytesMax?: number;
  /** Largest WAL record (default 16 MiB): an entry batch is split into records below it. */
  maxRecordBytes?: number;
  /** Recovery and compaction messages (default `console.warn`). */
  logger?: WalLogger;
}

/**
 * The files are damaged in a way the WAL's own checks cannot see (a record that decodes badly,
 * a snapshot the log refers to is missing, a gap in the log). Opening refuses; nothing is changed.
 */
export class DurableStorageCorruptError extends Error {
  constructor(readonly dir: string, reason: string, options?: ErrorOptions) {
    super(`raft storage in ${dir} is corrupt: ${reason}`, options);
    this.name = "DurableStorageCorruptError";
  }
}

/** What recovery found. */
export interface DurableRecoveryInfo {
  wal: Readonly<RecoveryInfo>;
  /** Index of the snapshot file loaded (0 if none). */
  snapshotIndex: number;
  records: number;
}

interface EntryRec {
  seq: number;
  maxIndex: number;
}

const consoleLogger: WalLogger = { warn: (msg, fields) => console.warn(msg, fields ?? "") };

/** {@link RaftPersistence} on the WAL and snapshot files of `shared/wal`. */
export class DurableStorage implements RaftPersistence {
  readonly storage: MemoryStorage;
  readonly #dir: string;
  readonly #wal: Wal;
  readonly #snaps: SnapshotFiles;
  readonly #chunkBytes: number;
  /** Entry records still in the WAL (for segment release), in seq order. */
  #entryRecs: EntryRec[];
  /** Index of the newest snapshot file known durable. */
  #durableSnapIndex: number;
  #chain: Promise<void> = Promise.resolve();
  #queued = 0;
  /** Saves and compactions not yet settled (close waits for them). */
  readonly #inflight = new Set<Promise<void>>();
  #failed: unknown = undefined;
  #closed = false;
  readonly recovery: DurableRecoveryInfo;

  private constructor(
    dir: string,
    storage: MemoryStorage,
    wal: Wal,
    snaps: SnapshotFiles,
    chunkBytes: number,
    entryRecs: EntryRec[],
    recovery: DurableRecoveryInfo,
  ) {
    this.#dir = dir;
    this.storage = storage;
    this.#wal = wal;
    this.#snaps = snaps;
    this.#chunkBytes = chunkBytes;
    this.#entryRecs = entryRecs;
    this.#durableSnapIndex = recovery.snapshotIndex;
    this.recovery = recovery;
  }

  /**
   * Opens (or creates) the storage in `dir` and rebuilds the MemoryStorage from the newest valid
   * snapshot file and the WAL. A torn or corrupt WAL tail is truncated (and logged); damage
   * before it throws `WalCorruptError` (from `shared/wal`), an inconsistency between the log and
   * the snapshot files throws {@link DurableStorageCorruptError}.
   */
  static async open(
    fs: FileSystem,
    dir: string,
    options: DurableStorageOptions = {},
  ): Promise<DurableStorage> {
    const logger = options.logger ?? consoleLogger;
    const maxRecordBytes = options.maxRecordBytes ?? 16 * 1024 * 1024;
    if ((await fs.stat(dir)) === null) {
      await fs.mkdir(dir);
    }
    const snaps = new SnapshotFiles({ fs, dir: joinPath(dir, "snap"), logger });
    const storage = new MemoryStorage(options.confState);
    let baseKind = 0;
    let snapshotIndex = 0;
    const loaded = await snaps.loadNewest();
    if (loaded !== null) {
      let snap: Snapshot;
      try {
        baseKind = loaded.data[0];
        if (baseKind !== KIND_INSTALL && baseKind !== KIND_COMPACT) {
          throw new Error(`unknown snapshot kind ${baseKind}`);
        }
        snap = decodeSnapshot(loaded.data.subarray(1));
      } catch (e) {
        throw new DurableStorageCorruptError(
          dir,
          `snapshot file ${loaded.name} does not decode: ${(e as Error).message}`,
          { cause: e },
        );
      }
      if (snap.metadata.index !== loaded.index) {
        throw new DurableStorageCorruptError(
          dir,
          `snapshot file ${loaded.name} holds index ${snap.metadata.index}`,
        );
      }
      storage.applySnapshot(snap);
      snapshotIndex = loaded.index;
    }
    const wal = await Wal.open({
      fs,
      dir: joinPath(dir, "wal"),
      segmentBytesMax: options.segmentBytesMax,
      maxRecordBytes,
      logger,
    });
    const base = storage.snapshot().metadata;
    const clearTail = () => storage.applySnapshot(storage.snapshot());
    let entryRecs: EntryRec[] = [];
    let sawBaseMarker = false;
    let records = 0;
    try {
      // Pass 1: the last installed-snapshot marker. Everything before it was replaced by that
      // snapshot (its entries records may even be partly released already): skip them.
      let lastInstall = -1;
      for await (const rec of wal.replay()) {
        if (rec.type !== REC_SNAPSHOT) continue;
        const m = decodeOrCorrupt(dir, `WAL record ${rec.seq}`, () => decodeMarker(rec.payload));
        if (m.kind === KIND_INSTALL) lastInstall = rec.seq;
      }
      for await (const rec of wal.replay()) {
        records++;
        const where = `WAL record ${rec.seq}`;
        switch (rec.type) {
          case REC_HARD_STATE:
            storage.setHardState(decodeOrCorrupt(dir, where, () => decodeHardState(rec.payload)));
            break;
          case REC_ENTRIES: {
            const ents = decodeOrCorrupt(dir, where, () => decodeEntries(rec.payload));
            if (ents.length === 0 || rec.seq < lastInstall) break;
            const last = ents[ents.length - 1].index;
            if (last <= base.index) {
              // The record cut the log back to `last`, below the snapshot: drop what follows.
              clearTail();
            } else {
              const first = ents[0].index;
              if (first > storage.lastIndex() + 1) {
                throw new DurableStorageCorruptError(
                  dir,
                  `${where}: entries from ${first} leave a gap after index ${storage.lastIndex()}`,
                );
              }
              storage.append(ents);
            }
            entryRecs.push({ seq: rec.seq, maxIndex: last });
            break;
          }
          case REC_SNAPSHOT: {
            const m = decodeOrCorrupt(dir, where, () => decodeMarker(rec.payload));
            if (m.index > base.index) {
              throw new DurableStorageCorruptError(
                dir,
                `${where} refers to the snapshot at index ${m.index} but the newest valid ` +
                  `snapshot file is at index ${base.index}`,
              );
            }
            if (m.index === base.index) {
              if (m.term !== base.term) {
                throw new DurableStorageCorruptError(
                  dir,
                  `${where}: snapshot ${m.index} has term ${m.term}, the file says ${base.term}`,
                );
              }
              sawBaseMarker = true;
            }
            if (m.kind === KIND_INSTALL) {
              clearTail();
              entryRecs = [];
            }
            break;
          }
          default:
            throw new DurableStorageCorruptError(dir, `${where} has unknown type ${rec.type}`);
        }
      }
    } catch (e) {
      await wal.close().catch(() => {});
      throw e;
    }
    // An installed snapshot whose marker did not make it: the save was cut after the file.
    if (baseKind === KIND_INSTALL && !sawBaseMarker) clearTail();
    // The hard state may predate a snapshot (torn save): the snapshot is committed by definition.
    const hs = storage.hardState();
    if (hs.term < base.term) {
      storage.setHardState({ term: base.term, vote: 0, commit: Math.max(hs.commit, base.index) });
    } else if (hs.commit < base.index) {
      storage.setHardState({ ...hs, commit: base.index });
    }
    const chunkBytes = Math.max(1024, Math.min(4 * 1024 * 1024, maxRecordBytes - 64));
    return new DurableStorage(dir, storage, wal, snaps, chunkBytes, entryRecs, {
      wal: wal.recovery,
      snapshotIndex,
      records,
    });
  }

  /** The WAL's segment files (for tests and monitoring). */
  segments(): SegmentInfo[] {
    return this.#wal.segments();
  }

  #unusable(): Error | undefined {
    if (this.#closed) return new Error("DurableStorage is closed");
    if (this.#failed !== undefined) {
      return new Error(`DurableStorage unusable after an error in ${this.#dir}`, {
        cause: this.#failed,
      });
    }
    return undefined;
  }

  /**
   * Runs the ordered part of an operation (snapshot file write, WAL appends, MemoryStorage
   * update) after every earlier one. With nothing queued, `fn` runs synchronously (plain saves
   * then update the MemoryStorage before `save` returns). A failure makes the storage unusable.
   */
  #ordered<T>(fn: () => T | Promise<T>): Promise<T> {
    const bad = this.#unusable();
    if (bad) return Promise.reject(bad);
    if (this.#queued === 0) {
      let r: T | Promise<T>;
      try {
        r = fn();
      } catch (e) {
        this.#failed = e;
        return Promise.reject(e);
      }
      if (!(r instanceof Promise)) return Promise.resolve(r);
      return this.#track(r);
    }
    return this.#track(this.#chain.then(() => {
      const bad = this.#unusable();
      if (bad) throw bad;
      return fn();
    }));
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#queued++;
    const done = p.finally(() => this.#queued--);
    this.#chain = done.then(() => {}, (e) => {
      if (this.#failed === undefined) this.#failed = e;
    });
    return done;
  }

  /** `wal.sync()`; a failure makes the storage unusable. */
  async #sync(): Promise<void> {
    try {
      await this.#wal.sync();
    } catch (e) {
      if (this.#failed === undefined) this.#failed = e;
      throw e;
    }
  }

  #appendEntries(entries: readonly Entry[]): void {
    let start = 0;
    while (start < entries.length) {
      let end = start + 1;
      let size = entriesSize(entries.slice(start, end));
      while (end < entries.length) {
        const s = entriesSize(entries.slice(end, end + 1));
        if (size + s > this.#chunkBytes) break;
        size += s;
        end++;
      }
      const chunk = entries.slice(start, end);
      const seq = this.#wal.append(REC_ENTRIES, encodeEntries(chunk));
      this.#entryRecs.push({ seq, maxIndex: chunk[chunk.length - 1].index });
      start = end;
    }
  }

  save(update: SaveUpdate): Promise<void> {
    const snap = update.snapshot;
    const append = (installed?: { index: number; markerSeq: number }) => {
      if (update.entries.length > 0) this.#appendEntries(update.entries);
      if (update.hardState) this.#wal.append(REC_HARD_STATE, encodeHardState(update.hardState));
      applyToStorage(this.storage, update);
      return installed;
    };
    const ordered = snap === undefined ? this.#ordered(() => append()) : this.#ordered(async () => {
      if (snap.metadata.index <= this.storage.snapshot().metadata.index) return append();
      const index = snap.metadata.index;
      await this.#snaps.write(index, encodeSnapshotFile(KIND_INSTALL, snap));
      this.#durableSnapIndex = Math.max(this.#durableSnapIndex, index);
      const markerSeq = this.#wal.append(
        REC_SNAPSHOT,
        encodeMarker(KIND_INSTALL, index, snap.metadata.term),
      );
      // Keep the latest hard state after the marker so that older segments can go.
      this.#wal.append(REC_HARD_STATE, encodeHardState(this.storage.hardState()));
      this.#entryRecs = [];
      return append({ index, markerSeq });
    });
    if (update.mustSync === false && snap === undefined && update.entries.length === 0) {
      // Only the commit index changed: written, and made durable by the next sync.
      return this.#inflightAdd(ordered.then(() => {}));
    }
    return this.#inflightAdd(ordered.then(async (installed) => {
      await this.#sync();
      if (installed) await this.#release(installed.markerSeq - 1, installed.index);
    }));
  }

  compact(snapshot: Snapshot): Promise<void> {
    const index = snapshot.metadata.index;
    if (index <= this.#durableSnapIndex) {
      return this.#inflightAdd(this.#ordered(() => compactStorage(this.storage, snapshot)));
    }
    let term = snapshot.metadata.term;
    if (index >= this.storage.firstIndex() - 1 && index <= this.storage.lastIndex()) {
      term = this.storage.term(index);
    }
    const full: Snapshot = {
      data: snapshot.data,
      metadata: { index, term, confState: snapshot.metadata.confState },
    };
    // The snapshot file is written (and fsynced) outside the ordered chain, so that entry saves
    // are not held up behind a large file; only the WAL marker is ordered with them.
    const written = this.#snaps.write(index, encodeSnapshotFile(KIND_COMPACT, full));
    return this.#inflightAdd(
      written.then(() =>
        this.#ordered(() => {
          // An installed snapshot may have overtaken this one while the file was written.
          if (index <= this.#durableSnapIndex) return undefined;
          this.#durableSnapIndex = index;
          const markerSeq = this.#wal.append(REC_SNAPSHOT, encodeMarker(KIND_COMPACT, index, term));
          this.#wal.append(REC_HARD_STATE, encodeHardState(this.storage.hardState()));
          // Keep every entry record holding an index after the snapshot (and all that follow it).
          let upTo = markerSeq - 1;
          const keep = this.#entryRecs.find((r) => r.maxIndex > index);
          if (keep !== undefined && keep.seq - 1 < upTo) upTo = keep.seq - 1;
          return upTo;
        })
      ).then(async (upTo) => {
        if (upTo === undefined) return;
        await this.#sync();
        compactStorage(this.storage, full);
        await this.#release(upTo, index);
      }),
    );
  }

  #inflightAdd(p: Promise<void>): Promise<void> {
    this.#inflight.add(p);
    const drop = () => this.#inflight.delete(p);
    p.then(drop, drop);
    return p;
  }

  async #release(upTo: number, snapIndex: number): Promise<void> {
    if (upTo >= this.#wal.firstSeq) await this.#wal.releaseUpTo(upTo);
    const first = this.#wal.firstSeq;
    this.#entryRecs = this.#entryRecs.filter((r) => r.seq >= first);
    await this.#snaps.deleteOlderThan(snapIndex);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#chain;
    await Promise.allSettled([...this.#inflight]);
    this.#closed = true;
    await this.#wal.close();
  }
}

function decodeOrCorrupt<T>(dir: string, where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new DurableStorageCorruptError(dir, `${where} does not decode: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

function encodeEntries(ents: readonly Entry[]): Uint8Array {
  const w = new Writer(entriesSize(ents) + 8);
  w.uvarint(ents.length, "entries.count");
  for (const e of ents) writeEntry(w, e);
  return w.finish();
}

function decodeEntries(buf: Uint8Array): Entry[] {
  const r = new Reader(buf, "entries record");
  const n = r.count("entries.count", 3);
  const ents: Entry[] = new Array(n);
  for (let i = 0; i < n; i++) {
    ents[i] = readEntry(r);
    if (i > 0 && ents[i].index !== ents[i - 1].index + 1) {
      throw new Error(`entries not contiguous at ${ents[i].index}`);
    }
  }
  r.end();
  return ents;
}

function encodeMarker(kind: number, index: number, term: number): Uint8Array {
  const w = new Writer(24);
  w.u8(kind);
  w.uvarint(index, "marker.index");
  w.uvarint(term, "marker.term");
  return w.finish();
}

function decodeMarker(buf: Uint8Array): { kind: number; index: number; term: number } {
  const r = new Reader(buf, "snapshot marker");
  const kind = r.u8("marker.kind");
  if (kind !== KIND_INSTALL && kind !== KIND_COMPACT) throw new Error(`unknown kind ${kind}`);
  const index = r.uvarint("marker.index");
  const term = r.uvarint("marker.term");
  r.end();
  return { kind, index, term };
}

/** The snapshot file payload as parts (kind and head, then the data itself, not copied). */
function encodeSnapshotFile(kind: number, snap: Snapshot): Uint8Array[] {
  const [head, data] = encodeSnapshotParts(snap);
  const first = new Uint8Array(1 + head.length);
  first[0] = kind;
  first.set(head, 1);
  return [first, data];
}
