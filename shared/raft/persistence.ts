/**
 * Where a node's Raft state lives: the {@link RaftPersistence} interface the node driver codes
 * against, and {@link MemoryPersistence}, its in-memory implementation for tests. The durable
 * implementation (WAL + snapshot files) is `DurableStorage` in `durable_storage.ts`.
 *
 * @module
 */

import type { Entry, HardState, Snapshot } from "./types.ts";
import type { MemoryStorage } from "./storage.ts";
import { MemoryStorage as MemoryStorageImpl } from "./storage.ts";
import { type ConfState, RaftError } from "./types.ts";
import { bootstrap } from "./membership.ts";

/** What one Ready asks a persistence to save. */
export interface SaveUpdate {
  hardState?: HardState;
  entries: readonly Entry[];
  snapshot?: Snapshot;
  /** Default true. */
  mustSync?: boolean;
}

/** Where a node's Raft state lives: a MemoryStorage the core reads, made durable by save(). */
export interface RaftPersistence {
  readonly storage: MemoryStorage;
  /**
   * Makes one Ready's hard state, entries (may overwrite a tail) and snapshot durable (fsync);
   * resolves when durable. With `mustSync: false` (only the commit index changed, which Raft can
   * recover) the record is written but not waited for: a later sync covers it.
   */
  save(update: SaveUpdate): Promise<void>;
  /** Records that the application compacted its state up to `index` (snapshot data), letting old WAL segments go. */
  compact(snapshot: Snapshot): Promise<void>;
  close(): Promise<void>;
}

/**
 * Applies one Ready's worth of state to a MemoryStorage in the order the driver loop requires:
 * snapshot first, then entries, then hard state. Shared by both persistence implementations.
 */
export function applyToStorage(
  storage: MemoryStorage,
  update: { hardState?: HardState; entries: readonly Entry[]; snapshot?: Snapshot },
): void {
  if (update.snapshot && update.snapshot.metadata.index > storage.snapshot().metadata.index) {
    storage.applySnapshot(update.snapshot);
  }
  storage.append(update.entries);
  if (update.hardState) storage.setHardState(update.hardState);
}

/**
 * Makes `snapshot` (taken by the application at `snapshot.metadata.index`) the storage's snapshot
 * if it is newer than the stored one, then compacts the log up to its index. Accepts both a
 * snapshot already recorded with `storage.createSnapshot()` and one that was not.
 */
export function compactStorage(storage: MemoryStorage, snapshot: Snapshot): void {
  const idx = snapshot.metadata.index;
  const cur = storage.snapshot().metadata.index;
  if (idx < cur) return; // stale: a newer snapshot is already in place
  if (idx > cur) {
    if (idx > storage.lastIndex()) {
      // Not in the log (e.g. entries lost?): install it as a whole.
      storage.applySnapshot(snapshot);
      return;
    }
    storage.createSnapshot(idx, snapshot.metadata.confState, snapshot.data);
  }
  storage.compact(idx);
}

/** In-memory persistence for tests (save only updates the MemoryStorage). */
export class MemoryPersistence implements RaftPersistence {
  readonly storage: MemoryStorage;

  /** Wraps `storage` (default: a fresh `MemoryStorage` with membership `confState`). */
  constructor(storage?: MemoryStorage, confState?: ConfState) {
    this.storage = storage ?? new MemoryStorageImpl(confState);
  }

  save(
    update: { hardState?: HardState; entries: readonly Entry[]; snapshot?: Snapshot },
  ): Promise<void> {
    applyToStorage(this.storage, update);
    return Promise.resolve();
  }

  compact(snapshot: Snapshot): Promise<void> {
    compactStorage(this.storage, snapshot);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Writes the initial membership of a new cluster (see `bootstrap()` in `membership.ts`) through
 * `persistence`, so that it is durable. Run it on every initial member, on an empty storage.
 */
export async function bootstrapPersistence(
  persistence: RaftPersistence,
  voters: readonly number[],
  learners: readonly number[] = [],
): Promise<void> {
  const scratch = new MemoryStorageImpl();
  bootstrap(scratch, voters, learners);
  if (persistence.storage.lastIndex() !== 0 || persistence.storage.hardState().term !== 0) {
    throw new RaftError("bootstrap: storage is not empty");
  }
  const entries = scratch.entries(1, scratch.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
  await persistence.save({ hardState: scratch.hardState(), entries });
}
