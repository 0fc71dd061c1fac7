import assert from "node:assert/strict";
import { decodeConfChange, entrySize } from "./codec.ts";
import { bootstrap } from "./membership.ts";
import { RaftCore } from "./raft.ts";
import {
  EntryUnavailableError,
  limitSize,
  LogCompactedError,
  MemoryStorage,
  StaleSnapshotError,
} from "./storage.ts";
import { SeededRand } from "./_testing/rand.ts";
import { ConfChangeType, type Entry, EntryType, RaftError } from "./types.ts";

function ents(from: number, terms: number[], size = 1): Entry[] {
  return terms.map((term, i) => ({
    term,
    index: from + i,
    type: EntryType.Normal,
    data: new Uint8Array(size).fill(i),
  }));
}

Deno.test("MemoryStorage: append, term, entries and the boundary", () => {
  const s = new MemoryStorage({ voters: [1], learners: [] });
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 0);
  assert.equal(s.term(0), 0);
  s.append(ents(1, [1, 1, 2]));
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.term(3), 2);
  assert.deepEqual(s.entries(1, 4, Infinity).map((e) => e.index), [1, 2, 3]);
  assert.throws(() => s.term(4), EntryUnavailableError);
  assert.throws(() => s.entries(2, 5, Infinity), EntryUnavailableError);
  assert.deepEqual(s.entries(2, 2, Infinity), []);
  assert.throws(() => s.append(ents(5, [2])), RaftError, "gaps are refused");
});

Deno.test("MemoryStorage: appending over a conflicting tail replaces it", () => {
  const s = new MemoryStorage();
  s.append(ents(1, [1, 1, 1, 1]));
  s.append(ents(3, [2]));
  assert.equal(s.lastIndex(), 3, "everything after the new entry is discarded");
  assert.deepEqual([1, 2, 3].map((i) => s.term(i)), [1, 1, 2]);
});

Deno.test("MemoryStorage: entries respects maxBytes but returns at least one entry", () => {
  const s = new MemoryStorage();
  s.append(ents(1, [1, 1, 1, 1, 1], 10));
  const one = entrySize(s.entries(1, 2, Infinity)[0]);
  assert.equal(s.entries(1, 6, 0).length, 1);
  assert.equal(s.entries(1, 6, one * 2).length, 2);
  assert.equal(s.entries(1, 6, one * 2 + 1).length, 2);
  assert.equal(s.entries(1, 6, Infinity).length, 5);
  assert.equal(limitSize(s.entries(1, 6, Infinity), one * 3).length, 3);
});

Deno.test("MemoryStorage: snapshot, compact and applySnapshot", () => {
  const s = new MemoryStorage({ voters: [1, 2], learners: [] });
  s.append(ents(1, [1, 1, 2, 2, 3]));
  assert.throws(() => s.compact(3), RaftError, "cannot compact beyond the snapshot");
  const snap = s.createSnapshot(3, { voters: [1, 2], learners: [3] }, new Uint8Array([9]));
  assert.equal(snap.metadata.term, 2);
  s.compact(3);
  assert.equal(s.firstIndex(), 4);
  assert.equal(s.term(3), 2, "the boundary term stays known");
  assert.throws(() => s.term(2), LogCompactedError);
  assert.throws(() => s.entries(3, 5, Infinity), LogCompactedError);
  s.compact(2); // at or below the boundary: no-op
  assert.equal(s.firstIndex(), 4);
  assert.deepEqual(s.initialState().confState, { voters: [1, 2], learners: [3] });
  assert.throws(() => s.createSnapshot(2, { voters: [1], learners: [] }, new Uint8Array()));
  // A snapshot from the leader replaces the log.
  s.applySnapshot({
    data: new Uint8Array(),
    metadata: { index: 10, term: 4, confState: { voters: [1, 2, 3], learners: [] } },
  });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.term(10), 4);
  assert.throws(
    () =>
      s.applySnapshot({
        data: new Uint8Array(),
        metadata: { index: 5, term: 4, confState: { voters: [1], learners: [] } },
      }),
    StaleSnapshotError,
  );
  // Stale prefix of an append is ignored.
  s.append(ents(9, [4, 4, 4]));
  assert.equal(s.lastIndex(), 11);
});

Deno.test("bootstrap: writes the membership as committed conf changes", () => {
  const s = new MemoryStorage();
  bootstrap(s, [1, 2, 3], [4]);
  assert.equal(s.lastIndex(), 4);
  assert.deepEqual(s.initialState().hardState, { term: 1, vote: 0, commit: 4 });
  const ccs = s.entries(1, 5, Infinity).map((e) => {
    assert.equal(e.type, EntryType.ConfChange);
    return decodeConfChange(e.data);
  });
  assert.deepEqual(ccs.map((c) => [c.type, c.nodeId]), [
    [ConfChangeType.AddNode, 1],
    [ConfChangeType.AddNode, 2],
    [ConfChangeType.AddNode, 3],
    [ConfChangeType.AddLearnerNode, 4],
  ]);
  assert.throws(() => bootstrap(s, [1]), RaftError, "refuses a non-empty storage");
  // A node started on it knows the membership and hands the entries out for applying.
  const node = new RaftCore({
    id: 1,
    electionTick: 10,
    heartbeatTick: 1,
    storage: s,
    rand: new SeededRand(1),
  });
  assert.deepEqual(node.membership(), { voters: [1, 2, 3], learners: [4] });
  const rd = node.ready();
  assert.equal(rd.committedEntries.length, 4);
  let conf = { voters: [] as number[], learners: [] as number[] };
  for (const e of rd.committedEntries) conf = node.applyConfChange(decodeConfChange(e.data));
  assert.deepEqual(conf, { voters: [1, 2, 3], learners: [4] });
  node.advance();
  assert.equal(node.appliedIndex, 4);
  assert.equal(node.hasReady(), false);
});

Deno.test("RaftCore: restart hands out committed entries after the applied index again", () => {
  const s = new MemoryStorage({ voters: [1], learners: [] });
  const mk = (applied: number) =>
    new RaftCore({
      id: 1,
      electionTick: 10,
      heartbeatTick: 1,
      storage: s,
      rand: new SeededRand(1),
      applied,
    });
  const a = mk(0);
  a.campaign();
  a.propose(new Uint8Array([1]));
  a.propose(new Uint8Array([2]));
  const applied: number[] = [];
  while (a.hasReady()) {
    const rd = a.ready();
    s.append(rd.entries);
    if (rd.hardState) s.setHardState(rd.hardState);
    for (const e of rd.committedEntries) applied.push(e.index);
    a.advance();
  }
  assert.deepEqual(applied, [1, 2, 3]);
  const b = mk(1);
  assert.equal(b.term, a.term);
  assert.equal(b.commitIndex, 3);
  const rd = b.ready();
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [2, 3]);
  assert.equal(rd.hardState, undefined, "nothing new to persist");
  assert.throws(() => b.ready(), RaftError, "ready() twice without advance()");
  b.advance();
});
