/**
 * The leader's bookkeeping for one follower (or learner): how far its log is known to match,
 * what to send next, and how aggressively. Internal to the package; read-only copies are
 * exposed through {@link PeerStatus}.
 *
 * Modes (the dissertation's "nextIndex" / "matchIndex", plus flow control):
 * - `probe`: the leader does not know where the logs diverge. It sends one append at a time
 *   and waits for the answer (or the next heartbeat response) before sending another.
 * - `pipeline`: the follower is known to be in sync up to `match`; appends are streamed
 *   optimistically (`next` moves ahead as they are sent), at most `maxInflight` at once.
 * - `snapshot`: the entries the follower needs are compacted; a snapshot is on its way and
 *   nothing else is sent until the transport reports the outcome or the follower answers.
 *
 * @module
 */

/** Replication mode of a follower, see the module documentation. */
export type ReplicationMode = "probe" | "pipeline" | "snapshot";

export class PeerProgress {
  /** Highest index known to be replicated on the peer. */
  match = 0;
  /** Index of the next entry to send. */
  next: number;
  mode: ReplicationMode = "probe";
  /** probe mode: an append is outstanding; wait for its answer or a heartbeat response. */
  probeSent = false;
  /** snapshot mode: index of the snapshot being sent. */
  snapshotIndex = 0;
  /** pipeline mode: last index of each outstanding append, ascending. */
  inflight: number[] = [];
  /** pipeline mode: leader ticks since the peer last acknowledged progress. */
  stalledTicks = 0;
  /** Heard from the peer since the last check-quorum round. */
  recentActive = false;

  constructor(next: number, public isLearner: boolean) {
    this.next = next;
  }

  toProbe(next: number): void {
    this.mode = "probe";
    this.next = Math.max(next, this.match + 1);
    this.probeSent = false;
    this.inflight.length = 0;
    this.snapshotIndex = 0;
    this.stalledTicks = 0;
  }

  toPipeline(): void {
    this.mode = "pipeline";
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflight.length = 0;
    this.snapshotIndex = 0;
    this.stalledTicks = 0;
  }

  toSnapshot(index: number): void {
    this.mode = "snapshot";
    this.snapshotIndex = index;
    this.probeSent = false;
    this.inflight.length = 0;
    this.stalledTicks = 0;
  }

  /** Records an acknowledgement up to `index`; returns whether `match` advanced. */
  acknowledge(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    if (this.next <= index) this.next = index + 1;
    let k = 0;
    while (k < this.inflight.length && this.inflight[k] <= index) k++;
    if (k > 0) this.inflight.splice(0, k);
    this.stalledTicks = 0;
    return true;
  }

  /** Whether the leader must hold back appends (entries) to this peer. */
  paused(maxInflight: number): boolean {
    switch (this.mode) {
      case "probe":
        return this.probeSent;
      case "pipeline":
        return this.inflight.length >= maxInflight;
      default:
        return true;
    }
  }
}

/** Read-only view of a peer's progress (see `RaftCore.status()`). */
export interface PeerStatus {
  match: number;
  next: number;
  mode: ReplicationMode;
  /** Appends outstanding (pipeline mode). */
  inflight: number;
  /** Whether appends are currently held back (probe outstanding, window full, snapshot). */
  paused: boolean;
  isLearner: boolean;
  recentActive: boolean;
}
