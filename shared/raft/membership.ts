/**
 * Cluster membership (voters and learners), single-server changes, and the bootstrap helper.
 *
 * Following the dissertation (chapter 4), a configuration takes effect on a server as soon
 * as its entry is in the server's log, committed or not; if the entry is later removed by a
 * conflicting append, the server falls back to the previous configuration in its log. Safety
 * rests on changing one server at a time (any majority of the old and of the new voter set
 * overlap), on a leader proposing a change only once the previous one is committed, and only
 * once it has committed an entry in its own term.
 *
 * @module
 */

import { encodeConfChange } from "./codec.ts";
import type { MemoryStorage } from "./storage.ts";
import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  EntryType,
  isValidNodeId,
  RaftError,
} from "./types.ts";

/** A proposed membership change is invalid. */
export class ConfChangeError extends RaftError {
  constructor(message: string) {
    super(message);
    this.name = "ConfChangeError";
  }
}

/** Immutable membership value. */
export interface Membership {
  readonly voters: ReadonlySet<number>;
  readonly learners: ReadonlySet<number>;
}

export function membershipFromConfState(cs: ConfState): Membership {
  const voters = new Set(cs.voters);
  const learners = new Set(cs.learners.filter((id) => !voters.has(id)));
  return { voters, learners };
}

export function membershipToConfState(m: Membership): ConfState {
  return {
    voters: [...m.voters].sort((a, b) => a - b),
    learners: [...m.learners].sort((a, b) => a - b),
  };
}

/** Why `cc` cannot be applied to `m`, or null if it can. */
export function checkConfChange(m: Membership, cc: ConfChange): string | null {
  if (!isValidNodeId(cc.nodeId)) return `invalid node id ${cc.nodeId}`;
  switch (cc.type) {
    case ConfChangeType.AddNode:
    case ConfChangeType.UpdateNode:
      return null;
    case ConfChangeType.AddLearnerNode:
    case ConfChangeType.RemoveNode:
      if (m.voters.has(cc.nodeId) && m.voters.size === 1) {
        return `cannot remove or demote ${cc.nodeId}, the last voter`;
      }
      return null;
    default:
      return `unknown conf change type ${cc.type}`;
  }
}

/**
 * The membership after `cc`. Total (never throws): a change that would leave no voter, or
 * an invalid one, leaves the membership unchanged, so every server computes the same result
 * for the same log.
 */
export function applyConfChange(m: Membership, cc: ConfChange): Membership {
  if (checkConfChange(m, cc) !== null) return m;
  const voters = new Set(m.voters);
  const learners = new Set(m.learners);
  switch (cc.type) {
    case ConfChangeType.AddNode:
      learners.delete(cc.nodeId);
      voters.add(cc.nodeId);
      break;
    case ConfChangeType.AddLearnerNode:
      voters.delete(cc.nodeId);
      learners.add(cc.nodeId);
      break;
    case ConfChangeType.RemoveNode:
      voters.delete(cc.nodeId);
      learners.delete(cc.nodeId);
      break;
    default:
      return m;
  }
  return { voters, learners };
}

/**
 * Initializes the empty storage of every member of a brand-new cluster: the membership is
 * written as committed conf-change entries (term 1, indexes 1..n: first the voters, then the
 * learners), and the hard state commits them. Every initial member must be bootstrapped
 * with the same lists. Nodes added later start with an empty storage and learn the
 * membership from the leader's log (or snapshot); never bootstrap them.
 *
 * The application sees these entries as the first committed entries of the log and applies
 * them like any other conf change.
 */
export function bootstrap(
  storage: MemoryStorage,
  voters: readonly number[],
  learners: readonly number[] = [],
): void {
  if (storage.lastIndex() !== 0 || storage.initialState().hardState.term !== 0) {
    throw new RaftError("bootstrap: storage is not empty");
  }
  if (voters.length === 0) throw new RaftError("bootstrap: at least one voter is required");
  const ents: Entry[] = [];
  const add = (type: ConfChangeType, nodeId: number) => {
    if (!isValidNodeId(nodeId)) throw new RaftError(`bootstrap: invalid node id ${nodeId}`);
    ents.push({
      term: 1,
      index: ents.length + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type, nodeId, context: new Uint8Array(0) }),
    });
  };
  for (const id of voters) add(ConfChangeType.AddNode, id);
  for (const id of learners) add(ConfChangeType.AddLearnerNode, id);
  storage.append(ents);
  storage.setHardState({ term: 1, vote: 0, commit: ents.length });
}
