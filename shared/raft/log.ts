/**
 * The node's view of its log: what is in {@link Storage} (durable) plus a *tail* of entries
 * (and possibly a snapshot received from the leader) that the driver has not yet persisted.
 * Internal to the package.
 *
 * Indexes: `tailStart - 1` is the last index covered by storage or by the pending snapshot,
 * so `lastIndex() = tailStart + tail.length - 1` always. Tail entries override stored ones
 * at the same index (a follower may truncate a conflicting suffix that is already durable;
 * storage drops it when the replacement entries are appended).
 *
 * @module
 */

import { entrySize } from "./codec.ts";
import type { Storage } from "./storage.ts";
import { type Entry, RaftInvariantError, type Snapshot } from "./types.ts";

export class LogView {
  committed: number;
  /** Highest index the application has applied (acknowledged by `advance`). */
  applied: number;
  /** Entries not yet persisted. tail[k] has index tailStart + k. */
  tail: Entry[] = [];
  tailStart: number;
  /** Snapshot from the leader, not yet persisted. */
  pendingSnapshot: Snapshot | null = null;
  /** Last tail index handed to the driver for persistence in the outstanding Ready. */
  handedUpTo: number;

  constructor(readonly storage: Storage, commit: number, applied: number) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.tailStart = last + 1;
    this.handedUpTo = last;
    this.committed = commit;
    this.applied = Math.max(applied, first - 1);
    if (this.committed < first - 1) this.committed = first - 1;
    if (this.committed > last) {
      throw new RaftInvariantError(`commit ${commit} is beyond the last stored index ${last}`);
    }
  }

  firstIndex(): number {
    return this.pendingSnapshot
      ? this.pendingSnapshot.metadata.index + 1
      : this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.tailStart + this.tail.length - 1;
  }

  /** Term of entry i, or undefined if unknown (compacted or beyond the end). */
  termAt(i: number): number | undefined {
    if (i >= this.tailStart) {
      const k = i - this.tailStart;
      return k < this.tail.length ? this.tail[k].term : undefined;
    }
    if (this.pendingSnapshot) {
      return i === this.pendingSnapshot.metadata.index
        ? this.pendingSnapshot.metadata.term
        : undefined;
    }
    if (i < this.storage.firstIndex() - 1 || i < 0) return undefined;
    if (i === 0) return 0;
    return this.storage.term(i);
  }

  lastTerm(): number {
    return this.termAt(this.lastIndex()) ?? 0;
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const t = this.lastTerm();
    return lastTerm > t || (lastTerm === t && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [lo, hi) within `maxBytes` (at least one). Throws LogCompactedError from
   * storage when lo is compacted.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    if (hi <= lo) return [];
    let out: Entry[];
    let size = 0;
    if (lo < this.tailStart) {
      if (this.pendingSnapshot) {
        throw new RaftInvariantError(`entries(${lo}) below a pending snapshot`);
      }
      const sHi = Math.min(hi, this.tailStart);
      out = this.storage.entries(lo, sHi, maxBytes);
      if (out.length < sHi - lo || hi <= this.tailStart) return out;
      for (let i = 0; i < out.length; i++) size += entrySize(out[i]);
      lo = this.tailStart;
    } else {
      out = [];
    }
    const end = Math.min(hi, this.tailStart + this.tail.length);
    for (let i = lo; i < end; i++) {
      const e = this.tail[i - this.tailStart];
      size += entrySize(e);
      if (size > maxBytes && out.length > 0) break;
      out.push(e);
    }
    return out;
  }

  /** Appends entries that directly follow the last index (leader path). */
  appendLocal(e: Entry): void {
    this.tail.push(e);
  }

  /**
   * Appends entries whose first index is at most lastIndex + 1, replacing whatever is at
   * and after that index (follower path, after the conflict check).
   */
  appendReplacing(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = ents[0].index;
    if (after > this.lastIndex() + 1) {
      throw new RaftInvariantError(`append at ${after} leaves a gap after ${this.lastIndex()}`);
    }
    if (after <= this.committed) {
      throw new RaftInvariantError(
        `append at ${after} would overwrite committed ${this.committed}`,
      );
    }
    if (after >= this.tailStart) {
      this.tail.length = after - this.tailStart;
    } else {
      this.tailStart = after;
      this.tail = [];
    }
    if (this.handedUpTo >= after) this.handedUpTo = after - 1;
    for (let i = 0; i < ents.length; i++) this.tail.push(ents[i]);
  }

  /** Replaces the log with a snapshot (the driver persists it from the next Ready). */
  restore(snap: Snapshot): void {
    const idx = snap.metadata.index;
    this.pendingSnapshot = snap;
    this.tail = [];
    this.tailStart = idx + 1;
    this.handedUpTo = idx;
    this.committed = idx;
  }

  /** Tail entries not yet handed to the driver. */
  unhandedEntries(): Entry[] {
    const from = this.handedUpTo + 1 - this.tailStart;
    if (from >= this.tail.length) return [];
    return from <= 0 ? this.tail.slice() : this.tail.slice(from);
  }

  hasUnhandedEntries(): boolean {
    return this.handedUpTo < this.lastIndex();
  }

  /** The driver persisted the tail up to handedUpTo: drop it from memory. */
  persistedHanded(): void {
    const k = this.handedUpTo - this.tailStart + 1;
    if (k <= 0) return;
    if (k >= this.tail.length) {
      this.tailStart += this.tail.length;
      this.tail = [];
    } else {
      this.tail = this.tail.slice(k);
      this.tailStart += k;
    }
  }

  /** First index to hand to the application. */
  nextToApply(): number {
    const snapIdx = this.pendingSnapshot ? this.pendingSnapshot.metadata.index : 0;
    return Math.max(this.applied, snapIdx) + 1;
  }
}
