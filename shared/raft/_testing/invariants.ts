/**
 * Safety invariants of Raft (Ongaro & Ousterhout, Figure 3), checked continuously while a
 * test network runs. Attach a {@link SafetyChecker} as the network's observer; it throws an
 * {@link InvariantViolation} the moment a property breaks.
 *
 * - Election safety: at most one leader per term.
 * - Leader append-only: a leader never overwrites or deletes entries in its log.
 * - Log matching: if two logs contain an entry with the same index and term, the logs are
 *   identical up to that index. Checked incrementally: every persisted (index, term) must
 *   always carry the same payload and follow the same previous term; by induction this gives
 *   identical prefixes. {@link checkLogMatchingFull} also compares logs pairwise.
 * - Leader completeness: an entry committed in term T is in the log of every leader of a term
 *   greater than T (checked when a node becomes leader).
 * - State machine safety: no two nodes apply different entries at the same index (and their
 *   state-machine hashes agree at every index, including across snapshot installs).
 * - Committed entries never change: once any node reports commit >= i, the term at i is fixed.
 *
 * @module
 */

import { type Entry, StateType } from "../types.ts";
import { type ClusterObserver, fnv, type TestNode } from "./network.ts";
import type { Snapshot } from "../types.ts";

export class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvariantViolation";
  }
}

function dataKey(e: Entry): string {
  return `${e.type}:${e.data.length}:${fnv(0x811c9dc5, e.data)}`;
}

export class SafetyChecker implements ClusterObserver {
  /** term -> leader id */
  readonly leaders = new Map<number, number>();
  /** "index:term" -> payload key and previous entry term */
  private readonly registry = new Map<string, { data: string; prevTerm: number }>();
  /** index -> term of the committed entry */
  readonly committedTerm = new Map<number, number>();
  /** index -> smallest term in which any node observed the entry as committed */
  private readonly committedInTerm = new Map<number, number>();
  private readonly seenCommit = new Map<number, number>();
  /** index -> applied entry key / state hash after applying it */
  private readonly appliedKey = new Map<number, string>();
  private readonly hashAt = new Map<number, number>();
  /** leader id -> {term, lastIndex, lastTerm} when last checked */
  private readonly leaderLog = new Map<number, { term: number; last: number; lastTerm: number }>();
  checks = 0;

  /** Highest index known to be committed anywhere. */
  maxCommitted(): number {
    return this.maxCommit;
  }

  private maxCommit = 0;

  private fail(msg: string): never {
    throw new InvariantViolation(msg);
  }

  onPersist(node: TestNode, entries: Entry[]): void {
    const raw = node.raw;
    for (const e of entries) {
      const prevTerm = raw.termAt(e.index - 1);
      const k = `${e.index}:${e.term}`;
      const got = this.registry.get(k);
      const data = dataKey(e);
      if (!got) {
        this.registry.set(k, { data, prevTerm: prevTerm ?? -1 });
        continue;
      }
      if (got.data !== data) {
        this.fail(
          `log matching: node ${node.id} persisted a different entry at (index ${e.index}, term ${e.term})`,
        );
      }
      if (prevTerm !== undefined && got.prevTerm !== -1 && got.prevTerm !== prevTerm) {
        this.fail(
          `log matching: node ${node.id} has term ${prevTerm} at index ${e.index - 1} before ` +
            `(index ${e.index}, term ${e.term}); another log has term ${got.prevTerm}`,
        );
      }
      if (got.prevTerm === -1 && prevTerm !== undefined) got.prevTerm = prevTerm;
    }
  }

  onApply(node: TestNode, e: Entry, hash: number): void {
    const k = `${e.term}/${dataKey(e)}`;
    const prev = this.appliedKey.get(e.index);
    if (prev === undefined) {
      this.appliedKey.set(e.index, k);
      this.hashAt.set(e.index, hash);
      return;
    }
    if (prev !== k) {
      this.fail(
        `state machine safety: node ${node.id} applied a different entry at index ${e.index}`,
      );
    }
    if (this.hashAt.get(e.index) !== hash) {
      this.fail(`state machine safety: node ${node.id} state diverged at index ${e.index}`);
    }
  }

  onSnapshot(node: TestNode, snap: Snapshot, hash: number): void {
    const i = snap.metadata.index;
    const known = this.hashAt.get(i);
    if (known !== undefined && known !== hash) {
      this.fail(
        `state machine safety: node ${node.id} installed a snapshot at ${i} with a different state`,
      );
    }
    if (known === undefined) this.hashAt.set(i, hash);
    const t = this.committedTerm.get(i);
    if (t !== undefined && t !== snap.metadata.term) {
      this.fail(`snapshot at ${i} has term ${snap.metadata.term}, committed entry has term ${t}`);
    }
  }

  afterProcess(node: TestNode): void {
    this.checks++;
    const r = node.raw;
    const committed = r.commitIndex;

    // Committed entries never change.
    const seen = this.seenCommit.get(node.id) ?? 0;
    if (committed > seen) {
      const from = Math.max(seen + 1, r.firstIndex() - 1);
      for (let i = from; i <= committed; i++) {
        const t = r.termAt(i);
        if (t === undefined) continue;
        const known = this.committedTerm.get(i);
        if (known === undefined) this.committedTerm.set(i, t);
        else if (known !== t) {
          this.fail(
            `committed entry changed: node ${node.id} has term ${t} at committed index ${i}, expected ${known}`,
          );
        }
        const ct = this.committedInTerm.get(i);
        if (ct === undefined || r.term < ct) this.committedInTerm.set(i, r.term);
      }
      this.seenCommit.set(node.id, committed);
      if (committed > this.maxCommit) this.maxCommit = committed;
    } else if (committed < seen) {
      // A restarted node may start from its persisted commit (never lower than before).
      if (!node.down) this.seenCommit.set(node.id, committed);
    }

    if (r.state !== StateType.Leader) {
      this.leaderLog.delete(node.id);
      return;
    }
    // Election safety.
    const other = this.leaders.get(r.term);
    if (other === undefined) {
      this.leaders.set(r.term, node.id);
      this.checkLeaderCompleteness(node);
    } else if (other !== node.id) {
      this.fail(`election safety: nodes ${other} and ${node.id} are both leader in term ${r.term}`);
    }
    // Leader append-only.
    const last = r.lastIndex();
    const lastTerm = r.lastTerm();
    const prev = this.leaderLog.get(node.id);
    if (prev && prev.term === r.term) {
      if (last < prev.last) {
        this.fail(
          `leader append-only: leader ${node.id} log shrank from ${prev.last} to ${last} in term ${r.term}`,
        );
      }
      const t = r.termAt(prev.last);
      if (t !== undefined && t !== prev.lastTerm) {
        this.fail(
          `leader append-only: leader ${node.id} overwrote index ${prev.last} in term ${r.term}`,
        );
      }
    }
    this.leaderLog.set(node.id, { term: r.term, last, lastTerm });
  }

  private checkLeaderCompleteness(node: TestNode): void {
    const r = node.raw;
    const snapIndex = r.firstIndex() - 1;
    for (const [i, committedIn] of this.committedInTerm) {
      if (committedIn >= r.term) continue;
      if (i <= snapIndex) continue; // covered by the leader's snapshot
      const t = r.termAt(i);
      if (t !== this.committedTerm.get(i)) {
        this.fail(
          `leader completeness: node ${node.id} became leader of term ${r.term} without committed ` +
            `entry ${i} (term ${
              this.committedTerm.get(i)
            }, committed in term ${committedIn}); it has ${t}`,
        );
      }
    }
  }
}

/** Pairwise full comparison of logs: same (index, term) implies identical prefixes. */
export function checkLogMatchingFull(nodes: TestNode[]): void {
  const logs = nodes.map((n) => {
    const first = n.raw.firstIndex();
    return { id: n.id, first, ents: n.raw.logEntriesForTesting() };
  });
  for (let a = 0; a < logs.length; a++) {
    for (let b = a + 1; b < logs.length; b++) {
      const la = logs[a];
      const lb = logs[b];
      const lo = Math.max(la.first, lb.first);
      const hi = Math.min(la.first + la.ents.length, lb.first + lb.ents.length) - 1;
      // Find the highest common index with equal terms; everything below must be equal.
      let match = -1;
      for (let i = hi; i >= lo; i--) {
        if (la.ents[i - la.first].term === lb.ents[i - lb.first].term) {
          match = i;
          break;
        }
      }
      for (let i = lo; i <= match; i++) {
        const ea = la.ents[i - la.first];
        const eb = lb.ents[i - lb.first];
        if (ea.term !== eb.term || dataKey(ea) !== dataKey(eb)) {
          throw new InvariantViolation(
            `log matching: nodes ${la.id} and ${lb.id} agree at index ${match} but differ at ${i}`,
          );
        }
      }
    }
  }
}
