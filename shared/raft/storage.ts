/**
 * Log storage: the read interface the Raft state machine uses ({@link Storage}) and an
 * in-memory implementation ({@link MemoryStorage}) that a durable storage can wrap (the
 * durable one journals every mutation to a WAL first, then applies it to the memory copy).
 *
 * Model. Storage holds a snapshot (possibly the empty snapshot at index 0), the log entries
 * that follow it, and the persisted {@link HardState}. The entry just before the first stored
 * entry is the *boundary*: its index and term are always known (`term(firstIndex() - 1)`
 * works) even though its payload was compacted away.
 *
 * @module
 */

import { entrySize } from "./codec.ts";
import { type ConfState, type Entry, type HardState, RaftError, type Snapshot } from "./types.ts";

/** What a node starts from: the persisted hard state and the membership of the snapshot. */
export interface InitialState {
  hardState: HardState;
  /** Membership as of the snapshot; conf-change entries in the stored log are replayed on top. */
  confState: ConfState;
}

/** The requested index is below the first stored entry (compacted into the snapshot). */
export class LogCompactedError extends RaftError {
  constructor(index: number, first: number) {
    super(`raft storage: index ${index} is compacted (first index ${first})`);
    this.name = "LogCompactedError";
  }
}

/** The requested index is beyond the last stored entry. */
export class EntryUnavailableError extends RaftError {
  constructor(index: number, last: number) {
    super(`raft storage: index ${index} is beyond the last index ${last}`);
    this.name = "EntryUnavailableError";
  }
}

/** `applySnapshot`/`createSnapshot` with a snapshot older than the one already stored. */
export class StaleSnapshotError extends RaftError {
  constructor(index: number, current: number) {
    super(`raft storage: snapshot at ${index} is older than the stored one at ${current}`);
    this.name = "StaleSnapshotError";
  }
}

/**
 * A storage may throw this from `snapshot()` while it is still building one; the leader
 * then retries later.
 */
export class SnapshotNotReadyError extends RaftError {
  constructor() {
    super("raft storage: snapshot temporarily unavailable");
    this.name = "SnapshotNotReadyError";
  }
}

/**
 * Read access to persisted Raft state. All methods are synchronous and must reflect every
 * mutation the driver made before returning from its Ready processing.
 */
export interface Storage {
  /** The persisted hard state and the membership of the stored snapshot. */
  initialState(): InitialState;
  /**
   * Entries with indexes in [lo, hi). At least one entry is returned when the range is not
   * empty, further entries only while their total encoded size stays within `maxBytes`.
   * Throws {@link LogCompactedError} when lo < firstIndex() and
   * {@link EntryUnavailableError} when hi > lastIndex() + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of entry i, for firstIndex() - 1 <= i <= lastIndex(); throws otherwise. */
  term(i: number): number;
  /** Index of the first stored entry (snapshot index + 1 right after a snapshot). */
  firstIndex(): number;
  /** Index of the last stored entry (the boundary index when no entry is stored). */
  lastIndex(): number;
  /** The most recent snapshot. May throw {@link SnapshotNotReadyError}. */
  snapshot(): Snapshot;
}

/** Trims `ents` in place to the longest prefix (at least one entry) within `maxBytes`. */
export function limitSize(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length <= 1) return ents;
  let size = entrySize(ents[0]);
  for (let i = 1; i < ents.length; i++) {
    size += entrySize(ents[i]);
    if (size > maxBytes) {
      ents.length = i;
      break;
    }
  }
  return ents;
}

function copyConf(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}

/**
 * Storage kept in memory. Used by tests and the benchmark, and as the in-memory half of the
 * durable storage. Not thread-safe (there are no threads); entries are stored by reference
 * and must not be mutated after being appended.
 */
export class MemoryStorage implements Storage {
  private hard: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  /** Index and term of the entry preceding `ents[0]`. */
  private baseIndex = 0;
  private baseTerm = 0;
  private ents: Entry[] = [];

  /**
   * A fresh storage. `confState` (default: empty) becomes the membership of the empty
   * snapshot at index 0 - a quick way to start a cluster in tests; see `bootstrap()` for the
   * log-based alternative that lets nodes added later learn the membership.
   */
  constructor(confState?: ConfState) {
    this.snap = {
      data: new Uint8Array(0),
      metadata: {
        index: 0,
        term: 0,
        confState: copyConf(confState ?? { voters: [], learners: [] }),
      },
    };
  }

  initialState(): InitialState {
    return { hardState: { ...this.hard }, confState: copyConf(this.snap.metadata.confState) };
  }

  setHardState(hs: HardState): void {
    this.hard = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  hardState(): HardState {
    return { ...this.hard };
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return this.baseIndex + this.ents.length;
  }

  term(i: number): number {
    if (i === this.baseIndex) return this.baseTerm;
    if (i < this.baseIndex) throw new LogCompactedError(i, this.baseIndex + 1);
    const k = i - this.baseIndex - 1;
    if (k >= this.ents.length) throw new EntryUnavailableError(i, this.lastIndex());
    return this.ents[k].term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo <= this.baseIndex) throw new LogCompactedError(lo, this.baseIndex + 1);
    if (hi > this.lastIndex() + 1) throw new EntryUnavailableError(hi - 1, this.lastIndex());
    if (hi <= lo) return [];
    const start = lo - this.baseIndex - 1;
    const end = hi - this.baseIndex - 1;
    // Take entries while within the budget (at least one).
    let size = entrySize(this.ents[start]);
    let k = start + 1;
    while (k < end) {
      size += entrySize(this.ents[k]);
      if (size > maxBytes) break;
      k++;
    }
    return this.ents.slice(start, k);
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Appends entries, which must be contiguous. Entries at or below the boundary are ignored;
   * entries already stored from the first new index on are replaced (a conflicting tail is
   * discarded). The first new entry may not leave a gap after the last stored one.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    let from = 0;
    if (entries[0].index <= this.baseIndex) {
      from = this.baseIndex + 1 - entries[0].index;
      if (from >= entries.length) return;
    }
    const first = entries[from].index;
    if (first > this.lastIndex() + 1) {
      throw new RaftError(
        `raft storage: append at ${first} leaves a gap after last index ${this.lastIndex()}`,
      );
    }
    const keep = first - this.baseIndex - 1;
    if (keep < this.ents.length) this.ents.length = keep;
    for (let i = from; i < entries.length; i++) this.ents.push(entries[i]);
  }

  /**
   * Replaces the whole log with a snapshot received from the leader: the snapshot becomes
   * the boundary and every stored entry is discarded. Throws {@link StaleSnapshotError} if
   * the stored snapshot is newer.
   */
  applySnapshot(snap: Snapshot): void {
    const idx = snap.metadata.index;
    if (idx < this.snap.metadata.index) throw new StaleSnapshotError(idx, this.snap.metadata.index);
    this.snap = {
      data: snap.data,
      metadata: {
        index: idx,
        term: snap.metadata.term,
        confState: copyConf(snap.metadata.confState),
      },
    };
    this.baseIndex = idx;
    this.baseTerm = snap.metadata.term;
    this.ents = [];
  }

  /**
   * Records a snapshot of the application state at `index` (which must be stored or be the
   * boundary) with the membership `confState` as of that index. Does not compact; call
   * {@link compact} afterwards to release the entries it covers.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index < this.snap.metadata.index) {
      throw new StaleSnapshotError(index, this.snap.metadata.index);
    }
    if (index > this.lastIndex()) throw new EntryUnavailableError(index, this.lastIndex());
    this.snap = {
      data,
      metadata: { index, term: this.term(index), confState: copyConf(confState) },
    };
    return this.snap;
  }

  /**
   * Discards entries up to and including `index`, which becomes the boundary. `index` may not
   * exceed the snapshot index (a lagging follower must always be able to catch up from the
   * snapshot plus the remaining entries). Compacting at or below the boundary is a no-op.
   */
  compact(index: number): void {
    if (index <= this.baseIndex) return;
    if (index > this.snap.metadata.index) {
      throw new RaftError(
        `raft storage: compact(${index}) beyond the snapshot index ${this.snap.metadata.index}`,
      );
    }
    const t = this.term(index);
    this.ents = this.ents.slice(index - this.baseIndex);
    this.baseIndex = index;
    this.baseTerm = t;
  }
}
