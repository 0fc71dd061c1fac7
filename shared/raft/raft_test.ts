/**
 * Scenario tests of the Raft state machine, driven through RaftCore nodes on the
 * deterministic test network. Every scenario also runs the
 * continuous safety checker.
 */

import assert from "node:assert/strict";
import { SafetyChecker } from "./_testing/invariants.ts";
import { bytes, Network, type NetworkOptions, text } from "./_testing/network.ts";
import { MemoryStorage } from "./storage.ts";
import { RaftCore } from "./raft.ts";
import { SeededRand } from "./_testing/rand.ts";
import {
  ConfChangeType,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  ProposalDroppedError,
  StateType,
} from "./types.ts";

const MT = MessageType;

function net(ids: number[], options: NetworkOptions = {}): Network {
  return new Network(ids, { observer: new SafetyChecker(), ...options });
}

/** Delivers the first in-flight message matching `pred`; fails if there is none. */
function deliverWhere(n: Network, pred: (m: Message) => boolean): Message {
  const i = n.inFlight.findIndex(pred);
  assert.ok(i >= 0, "expected an in-flight message matching the predicate");
  const m = n.inFlight[i];
  n.deliver(i);
  return m;
}

function deliverAll(n: Network, limit = 100_000): void {
  for (let k = 0; n.inFlight.length > 0; k++) {
    assert.ok(k < limit, "deliverAll: too many messages");
    n.deliver(0);
  }
}

function leaders(n: Network): number[] {
  return [...n.nodes.values()].filter((x) => !x.down && x.state === StateType.Leader).map((x) =>
    x.id
  );
}

/** Ticks all nodes until `pred` holds (at most `rounds` rounds). */
function tickUntil(n: Network, pred: () => boolean, rounds = 500): void {
  for (let i = 0; i < rounds; i++) {
    if (pred()) return;
    n.tickAll(1);
  }
  assert.ok(pred(), `condition not reached after ${rounds} rounds`);
}

function cc(type: ConfChangeType, nodeId: number) {
  return { type, nodeId, context: new Uint8Array(0) };
}

function proposeConfChange(n: Network, at: number, change: ReturnType<typeof cc>): void {
  const node = n.node(at);
  node.raw.proposeConfChange(change);
  n.send(...node.process());
}

// ---------------------------------------------------------------------------------------------
// Leader election

Deno.test("leader election: a candidate with a majority of votes becomes leader", () => {
  for (const preVote of [false, true]) {
    const n = net([1, 2, 3], { node: { preVote } });
    n.campaign(1);
    assert.equal(n.node(1).state, StateType.Leader);
    assert.equal(n.node(1).term, 1);
    for (const id of [2, 3]) {
      assert.equal(n.node(id).state, StateType.Follower);
      assert.equal(n.node(id).raw.lead, 1);
      assert.equal(n.node(id).term, 1);
    }
  }
});

Deno.test("leader election: a candidate without a majority does not become leader", () => {
  for (const preVote of [false, true]) {
    const n = net([1, 2, 3, 4, 5], { node: { preVote } });
    n.isolate(3);
    n.isolate(4);
    n.isolate(5);
    n.campaign(1);
    assert.notEqual(n.node(1).state, StateType.Leader);
    // With pre-vote the failed election does not even bump the term.
    assert.equal(n.node(1).term, preVote ? 0 : 1);
  }
});

Deno.test("leader election: randomized timeouts elect exactly one leader from ticks alone", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const n = net([1, 2, 3, 4, 5], { seed, node: { preVote: seed % 2 === 0 } });
    tickUntil(n, () => leaders(n).length === 1);
    const lead = leaders(n)[0];
    for (const x of n.nodes.values()) assert.equal(x.raw.lead, lead);
  }
});

Deno.test("leader election: randomized election timeout stays within [electionTick, 2*electionTick)", () => {
  // Observed from outside: a lone candidate (its vote requests go nowhere) starts a new
  // election every randomized timeout; the gaps between elections are the timeouts.
  const storage = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
  const r = new RaftCore({
    id: 1,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    rand: new SeededRand(7),
  });
  const seen = new Set<number>();
  let lastTerm = r.term;
  let sinceElection = -1; // unknown until the first election
  for (let ticks = 0; ticks < 20_000; ticks++) {
    r.tick();
    if (sinceElection >= 0) sinceElection++;
    if (r.term !== lastTerm) {
      lastTerm = r.term;
      if (sinceElection >= 0) {
        assert.ok(sinceElection >= 10 && sinceElection < 20, `timeout ${sinceElection}`);
        seen.add(sinceElection);
      }
      sinceElection = 0;
    }
    while (r.hasReady()) {
      r.ready();
      r.advance();
    }
  }
  assert.equal(seen.size, 10);
});

Deno.test("split vote: no leader is elected when votes split, a later election succeeds", () => {
  const n = net([1, 2, 3, 4]);
  const n1 = n.node(1);
  const n2 = n.node(2);
  n1.raw.campaign();
  n.enqueue(n1.process());
  n2.raw.campaign();
  n.enqueue(n2.process());
  // 3 votes for 1 and 4 votes for 2 (first come, first served); 1 and 2 reject each other.
  deliverWhere(n, (m) => m.type === MT.MsgVote && m.from === 1 && m.to === 3);
  deliverWhere(n, (m) => m.type === MT.MsgVote && m.from === 2 && m.to === 4);
  deliverAll(n);
  assert.deepEqual(leaders(n), []);
  assert.equal(n1.term, 1);
  assert.equal(n2.term, 1);
  // Randomized timeouts break the tie.
  tickUntil(n, () => leaders(n).length === 1);
  assert.ok(n.node(leaders(n)[0]).term >= 2);
});

Deno.test("pre-vote: a rejoining partitioned node does not inflate the term or disrupt the leader", () => {
  const n = net([1, 2, 3], { node: { preVote: true } });
  n.elect(1);
  assert.ok(n.propose(1, "a"));
  const term = n.node(1).term;
  n.isolate(3);
  n.tick(3, 200); // many election timeouts alone
  assert.equal(n.node(3).term, term, "pre-vote keeps the isolated node's term");
  assert.ok(n.propose(1, "b"));
  n.recover();
  n.tickAll(30);
  assert.equal(leaders(n).length, 1);
  assert.equal(leaders(n)[0], 1, "the leader was not disrupted");
  for (const x of n.nodes.values()) {
    assert.equal(x.term, term);
    assert.deepEqual(x.items, ["a", "b"]);
  }
});

Deno.test("pre-vote: without it, a rejoining partitioned node inflates the term and disrupts", () => {
  const n = net([1, 2, 3], { node: { preVote: false } });
  n.elect(1);
  const term = n.node(1).term;
  n.isolate(3);
  n.tick(3, 200);
  assert.ok(n.node(3).term > term + 5);
  n.recover();
  n.tickAll(30);
  assert.ok(n.node(1).term > term, "the old leader was forced into a higher term");
});

Deno.test("check-quorum: a leader steps down when it has not heard from a quorum for an election timeout", () => {
  const n = net([1, 2, 3], { node: { checkQuorum: true } });
  n.elect(1);
  n.isolate(1);
  n.tick(1, 10);
  // The first check saw the followers active (they answered the election round).
  assert.equal(n.node(1).state, StateType.Leader);
  n.tick(1, 10);
  assert.equal(n.node(1).state, StateType.Follower);
  assert.equal(n.node(1).raw.lead, 0);
});

Deno.test("check-quorum: a leader with an active quorum keeps leadership", () => {
  const n = net([1, 2, 3], { node: { checkQuorum: true } });
  n.elect(1);
  n.isolate(3);
  n.tickAll(100);
  assert.equal(leaders(n).length, 1);
  assert.equal(leaders(n)[0], 1);
});

Deno.test("check-quorum: followers in a leader lease ignore vote requests from a higher term", () => {
  const n = net([1, 2, 3], { node: { checkQuorum: true } });
  n.elect(1);
  const term = n.node(1).term;
  n.campaign(3); // forced campaign (not pre-vote) while 1 is a healthy leader
  assert.equal(n.node(1).state, StateType.Leader);
  assert.equal(n.node(1).term, term);
  assert.equal(n.node(2).term, term, "follower did not adopt the disruptive term");
  assert.notEqual(n.node(3).state, StateType.Leader);
  // Without check-quorum the same campaign succeeds (3 is up to date).
  const m = net([1, 2, 3], { node: { checkQuorum: false } });
  m.elect(1);
  m.campaign(3);
  assert.equal(m.node(3).state, StateType.Leader);
});

// ---------------------------------------------------------------------------------------------
// Replication and safety scenarios

Deno.test("partitioned old leader cannot commit; its uncommitted entries are overwritten", () => {
  const n = net([1, 2, 3, 4, 5]);
  n.elect(1);
  assert.ok(n.propose(1, "a"));
  for (const x of [1, 2]) for (const y of [3, 4, 5]) n.cut(x, y);
  const commit = n.node(1).raw.commitIndex;
  assert.ok(n.propose(1, "stale"));
  n.tick(1, 5);
  assert.equal(n.node(1).raw.commitIndex, commit, "minority leader cannot commit");
  assert.equal(
    n.node(1).state,
    StateType.Leader,
    "without check-quorum it still believes it leads",
  );
  n.elect(3);
  assert.ok(n.propose(3, "fresh"));
  assert.deepEqual(n.node(3).items, ["a", "fresh"]);
  n.recover();
  n.tickAll(20);
  assert.deepEqual(leaders(n), [3]);
  for (const x of n.nodes.values()) assert.deepEqual(x.items, ["a", "fresh"]);
});

Deno.test("leader crash and re-election: no committed entry is lost", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  const want: string[] = [];
  for (let i = 0; i < 20; i++) {
    assert.ok(n.propose(1, `e${i}`));
    want.push(`e${i}`);
  }
  n.node(1).down = true;
  tickUntil(n, () => leaders(n).length === 1);
  const lead = leaders(n)[0];
  assert.notEqual(lead, 1);
  assert.ok(n.propose(lead, "after"));
  want.push("after");
  for (const id of [2, 3]) assert.deepEqual(n.node(id).items, want);
  // The old leader restarts from its storage and catches up.
  n.node(1).restart();
  tickUntil(n, () => n.node(1).items.length === want.length);
  assert.deepEqual(n.node(1).items, want);
  assert.equal(n.node(1).raw.lead, lead);
});

Deno.test("follower far behind catches up by snapshot after log compaction", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.isolate(3);
  const want: string[] = [];
  for (let i = 0; i < 100; i++) {
    assert.ok(n.propose(1, `v${i}`));
    want.push(`v${i}`);
  }
  assert.ok(n.node(1).compact());
  assert.ok(n.node(2).compact());
  const snapIndex = n.node(1).storage.snapshot().metadata.index;
  assert.ok(n.node(1).storage.firstIndex() > n.node(3).raw.lastIndex() + 1);
  let snaps = 0;
  n.msgHook = (m) => {
    if (m.type === MT.MsgSnap && m.to === 3) snaps++;
    return true;
  };
  n.recover();
  n.tickAll(5);
  assert.equal(snaps, 1);
  assert.deepEqual(n.node(3).items, want);
  assert.equal(n.node(3).storage.snapshot().metadata.index, snapIndex);
  assert.ok(n.propose(1, "post"));
  assert.deepEqual(n.node(3).items, [...want, "post"]);
  const pr = n.node(1).raw.status().progress!.get(3)!;
  assert.equal(pr.mode, "pipeline");
});

Deno.test("snapshot: a failed snapshot send is retried after the transport reports it", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.isolate(3);
  for (let i = 0; i < 10; i++) n.propose(1, `v${i}`);
  n.node(1).compact();
  n.recover();
  let dropped = 0;
  n.msgHook = (m) => {
    if (m.type === MT.MsgSnap && dropped === 0) {
      dropped++;
      return false; // the network reports SnapshotFailure to the leader
    }
    return true;
  };
  n.tickAll(10);
  assert.equal(dropped, 1);
  assert.equal(n.node(3).items.length, 10);
});

/** Builds a RaftCore over a storage holding entries with the given terms (1-based). */
function coreWithLog(id: number, terms: number[], commit: number): {
  core: RaftCore;
  storage: MemoryStorage;
} {
  const storage = new MemoryStorage({ voters: [1, 2, 3], learners: [] });
  storage.append(terms.map((term, i): Entry => ({
    term,
    index: i + 1,
    type: EntryType.Normal,
    data: bytes(`t${term}`),
  })));
  storage.setHardState({ term: Math.max(...terms), vote: 0, commit });
  const core = new RaftCore({
    id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    rand: new SeededRand(id),
  });
  return { core, storage };
}

/** Runs one Ready cycle like a driver (persist, collect messages, advance). */
function cycle(x: { core: RaftCore; storage: MemoryStorage }): Message[] {
  const out: Message[] = [];
  while (x.core.hasReady()) {
    const rd = x.core.ready();
    if (rd.snapshot) x.storage.applySnapshot(rd.snapshot);
    x.storage.append(rd.entries);
    if (rd.hardState) x.storage.setHardState(rd.hardState);
    out.push(...rd.messages);
    x.core.advance();
  }
  return out;
}

/** Makes `x` leader by campaigning and feeding it a granted vote from node 3. */
function forceLeader(x: { core: RaftCore; storage: MemoryStorage }): void {
  x.core.campaign();
  cycle(x);
  x.core.step({ ...ack(3, 0), type: MT.MsgVoteResp, term: x.core.term });
  assert.equal(x.core.state, StateType.Leader);
}

Deno.test("log mismatch: fast back-off finds the divergence point in one round trip", () => {
  const cases = [
    // Follower has a long suffix of a stale term.
    { leader: [1, 1, 1, 1, 1, 4, 4, 4, 4, 4], follower: [1, 1, 1, 1, 1, ...Array(25).fill(2)] },
    // Leader has a long suffix of terms the follower never saw.
    { leader: [1, 1, 1, 1, 1, ...Array(25).fill(3)], follower: [1, 1, 1, 1, 1, 2, 2, 2] },
  ];
  for (const c of cases) {
    const leader = coreWithLog(1, c.leader, 5);
    const follower = coreWithLog(2, c.follower, 5);
    forceLeader(leader);
    let rejections = 0;
    for (let round = 0; round < 50; round++) {
      const toFollower = cycle(leader).filter((m) => m.to === 2);
      if (toFollower.length === 0) break;
      for (const m of toFollower) follower.core.step(m);
      for (const m of cycle(follower).filter((m) => m.to === 1)) {
        if (m.type === MT.MsgAppResp && m.reject) rejections++;
        leader.core.step(m);
      }
    }
    assert.equal(rejections, 1, "one rejection, then the leader jumps to the match point");
    const lt = leader.core.logEntriesForTesting().map((e) => e.term);
    const ft = follower.core.logEntriesForTesting().map((e) => e.term);
    assert.deepEqual(ft, lt);
  }
});

Deno.test("flow control: the leader keeps at most maxInflightMsgs appends in flight", () => {
  const n = net([1, 2], { node: { maxInflightMsgs: 3, maxSizePerMsg: 1 } });
  n.elect(1);
  const leader = n.node(1);
  // Appends carrying entries (an empty MsgApp only carries the commit index / probes).
  const inflightApps = () =>
    n.inFlight.filter((m) => m.type === MT.MsgApp && m.to === 2 && m.entries.length > 0).length;
  for (let i = 0; i < 10; i++) {
    leader.raw.propose(bytes(`x${i}`));
    n.enqueue(leader.process());
  }
  assert.equal(inflightApps(), 3);
  const pr = leader.raw.status().progress!.get(2)!;
  assert.equal(pr.mode, "pipeline");
  assert.equal(pr.inflight, 3);
  assert.ok(pr.paused);
  // Each acknowledgement frees a slot; the window never exceeds 3.
  let max = 0;
  while (n.inFlight.length > 0) {
    max = Math.max(max, inflightApps());
    assert.ok(leader.raw.status().progress!.get(2)!.inflight <= 3);
    n.deliver(0);
  }
  assert.equal(max, 3);
  assert.equal(n.node(2).items.length, 10);
  // With the window full again, a heartbeat round sends no further entries.
  for (let i = 0; i < 10; i++) {
    leader.raw.propose(bytes(`y${i}`));
    n.enqueue(leader.process());
  }
  assert.equal(inflightApps(), 3);
  leader.raw.tick();
  n.enqueue(leader.process());
  deliverWhere(n, (m) => m.type === MT.MsgHeartbeat);
  deliverWhere(n, (m) => m.type === MT.MsgHeartbeatResp);
  assert.equal(inflightApps(), 3);
  deliverAll(n);
  leader.raw.tick();
  n.send(...leader.process());
  assert.equal(n.node(2).items.length, 20);
});

Deno.test("flow control: maxSizePerMsg batches entries into size-limited appends", () => {
  const n = net([1, 2], { node: { maxSizePerMsg: 100 } });
  n.elect(1);
  const leader = n.node(1);
  // Follower 2 is briefly unreachable, so entries accumulate.
  n.isolate(2);
  for (let i = 0; i < 20; i++) n.propose(1, "x".repeat(30));
  n.recover();
  const sizes: number[] = [];
  n.msgHook = (m) => {
    if (m.type === MT.MsgApp && m.entries.length > 0) sizes.push(m.entries.length);
    return true;
  };
  leader.raw.tick();
  n.send(...leader.process());
  assert.equal(n.node(2).items.length, 20);
  assert.ok(sizes.length > 1);
  for (const s of sizes) assert.ok(s <= 3, `batch of ${s} entries exceeds ~100 bytes`);
});

// ---------------------------------------------------------------------------------------------
// Leadership transfer

Deno.test("leadership transfer: an up-to-date follower takes over via MsgTimeoutNow", () => {
  const n = net([1, 2, 3], { node: { checkQuorum: true, preVote: true } });
  n.elect(1);
  let timeoutNow = 0;
  n.msgHook = (m) => {
    if (m.type === MT.MsgTimeoutNow) timeoutNow++;
    return true;
  };
  n.transferLeader(1, 2);
  assert.equal(timeoutNow, 1);
  assert.deepEqual(leaders(n), [2]);
  assert.equal(n.node(2).term, 2);
  assert.equal(n.node(1).raw.lead, 2);
  assert.ok(n.propose(2, "x"));
});

Deno.test("leadership transfer: a lagging transferee is caught up first", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.isolate(3);
  for (let i = 0; i < 5; i++) n.propose(1, `v${i}`);
  n.recover();
  n.transferLeader(1, 3);
  assert.deepEqual(leaders(n), [3]);
  assert.equal(n.node(3).items.length, 5);
});

Deno.test("leadership transfer: proposals are refused during a transfer, which aborts after an election timeout", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.node(3).down = true; // transferee unreachable
  n.transferLeader(1, 3);
  assert.equal(n.node(1).raw.status().leadTransferee, 3);
  assert.throws(() => n.node(1).raw.propose(bytes("x")), ProposalDroppedError);
  n.tick(1, 10);
  assert.equal(n.node(1).raw.status().leadTransferee, 0);
  assert.ok(n.propose(1, "x"));
  assert.deepEqual(leaders(n), [1]);
});

Deno.test("leadership transfer: a follower forwards the request; transfer to a learner is ignored", () => {
  const n = net([1, 2, 3], { learners: [4] });
  n.elect(1);
  n.transferLeader(1, 4);
  assert.deepEqual(leaders(n), [1]);
  n.transferLeader(3, 3); // follower 3 asks the leader to hand over to 3
  assert.deepEqual(leaders(n), [3]);
});

// ---------------------------------------------------------------------------------------------
// ReadIndex

Deno.test("ReadIndex: the leader returns its commit index only after a quorum acknowledges a heartbeat", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.propose(1, "x");
  const leader = n.node(1);
  const commit = leader.raw.commitIndex;
  leader.raw.readIndex(bytes("req-1"));
  n.enqueue(leader.process());
  assert.equal(leader.readStates.length, 0);
  const hbs = n.inFlight.filter((m) => m.type === MT.MsgHeartbeat);
  assert.equal(hbs.length, 2);
  assert.ok(hbs.every((m) => m.context.length > 0), "heartbeats carry the read context");
  deliverWhere(n, (m) => m.type === MT.MsgHeartbeat && m.to === 2);
  assert.equal(leader.readStates.length, 0, "follower ack still in flight");
  deliverWhere(n, (m) => m.type === MT.MsgHeartbeatResp && m.from === 2);
  assert.equal(leader.readStates.length, 1);
  assert.equal(leader.readStates[0].index, commit);
  assert.equal(text(leader.readStates[0].requestCtx), "req-1");
});

Deno.test("ReadIndex: a deposed leader cannot confirm reads", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.isolate(1);
  n.readIndex(1, "stale");
  n.tick(1, 5);
  assert.equal(n.node(1).readStates.length, 0);
});

Deno.test("ReadIndex: not served by a leader that has not committed an entry in its term", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.propose(1, "x");
  // Node 2 becomes leader but its empty entry cannot commit: acks are lost.
  n.ignore(MT.MsgAppResp);
  n.elect(2);
  const leader = n.node(2);
  assert.equal(leader.raw.status().committedInTerm, false);
  n.readIndex(2, "early");
  n.tickAll(3); // heartbeats flow, but the read must wait
  assert.equal(leader.readStates.length, 0);
  assert.equal(leader.raw.status().readsAwaitingCommit, 1);
  n.recover();
  n.tickAll(3);
  assert.equal(leader.raw.status().committedInTerm, true);
  assert.equal(leader.readStates.length, 1);
  assert.equal(text(leader.readStates[0].requestCtx), "early");
  assert.equal(leader.readStates[0].index, leader.raw.commitIndex);
});

Deno.test("ReadIndex: a follower request is forwarded and answered with the leader's commit index", () => {
  const n = net([1, 2, 3]);
  n.elect(1);
  n.propose(1, "x");
  n.readIndex(2, "from-follower");
  const rs = n.node(2).readStates;
  assert.equal(rs.length, 1);
  assert.equal(rs[0].index, n.node(1).raw.commitIndex);
  assert.equal(text(rs[0].requestCtx), "from-follower");
});

Deno.test("ReadIndex: a single-voter leader answers immediately once it committed in its term", () => {
  const n = net([1]);
  n.campaign(1);
  n.stabilize();
  assert.equal(n.node(1).state, StateType.Leader);
  n.readIndex(1, "solo");
  assert.equal(n.node(1).readStates.length, 1);
});

// ---------------------------------------------------------------------------------------------
// Membership

/** Ticks and proposes until `pred` holds; returns the payloads that were accepted. */
function underLoad(n: Network, pred: () => boolean, accepted: string[], tag: string): void {
  for (let i = 0; i < 400 && !pred(); i++) {
    const lead = n.leader();
    if (lead !== 0) {
      const v = `${tag}-${i}`;
      if (n.propose(lead, v)) accepted.push(v);
    }
    n.tickAll(1);
  }
  assert.ok(pred(), `condition not reached (${tag})`);
}

Deno.test("membership: adding and removing members under load keeps all replicas consistent", () => {
  const n = net([1, 2, 3], { bootstrap: "log" });
  n.elect(1);
  const accepted: string[] = [];
  const voters = () => n.node(n.leader()).raw.membership().voters;
  // Add 4 as a learner, then promote it.
  n.addNode(4, null);
  proposeConfChange(n, 1, cc(ConfChangeType.AddLearnerNode, 4));
  underLoad(n, () => n.node(4).items.length > 3, accepted, "a");
  assert.deepEqual(n.node(1).raw.membership().learners, [4]);
  proposeConfChange(n, 1, cc(ConfChangeType.AddNode, 4));
  underLoad(n, () => voters().includes(4), accepted, "b");
  // Add 5 directly as a voter.
  n.addNode(5, null);
  underLoad(
    n,
    () => {
      try {
        proposeConfChange(n, n.leader(), cc(ConfChangeType.AddNode, 5));
        return true;
      } catch (e) {
        if (e instanceof ProposalDroppedError) return false;
        throw e;
      }
    },
    accepted,
    "c",
  );
  underLoad(n, () => voters().includes(5), accepted, "d");
  // Remove the leader itself: it steps down once it applies its removal.
  proposeConfChange(n, 1, cc(ConfChangeType.RemoveNode, 1));
  underLoad(n, () => n.leader() !== 0 && n.leader() !== 1 && !voters().includes(1), accepted, "e");
  // And a follower.
  const lead = n.leader();
  const victim = [2, 3, 4, 5].find((x) => x !== lead)!;
  underLoad(
    n,
    () => {
      try {
        proposeConfChange(n, n.leader(), cc(ConfChangeType.RemoveNode, victim));
        return true;
      } catch (e) {
        if (e instanceof ProposalDroppedError) return false;
        throw e;
      }
    },
    accepted,
    "f",
  );
  underLoad(n, () => !voters().includes(victim), accepted, "g");
  const remaining = voters();
  assert.equal(remaining.length, 3);
  // Let the remaining members converge, then compare.
  n.tickAll(5);
  const ref = n.node(n.leader()).items;
  assert.deepEqual(ref, accepted, "every accepted proposal was applied, in order");
  for (const id of remaining) assert.deepEqual(n.node(id).items, ref);
  assert.equal(n.node(1).state, StateType.Follower);
});

Deno.test("membership: only one conf change may be pending; a new leader must commit in its term first", () => {
  const n = net([1, 2, 3], { bootstrap: "log" });
  n.elect(1);
  const leader = n.node(1);
  leader.raw.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 4));
  assert.throws(
    () => leader.raw.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 5)),
    ProposalDroppedError,
  );
  n.send(...leader.process());
  // Applied now: another change is accepted.
  leader.raw.proposeConfChange(cc(ConfChangeType.AddLearnerNode, 5));
  n.send(...leader.process());
  // A fresh leader whose empty entry is not committed refuses conf changes.
  n.ignore(MT.MsgAppResp);
  n.elect(2);
  assert.throws(
    () => n.node(2).raw.proposeConfChange(cc(ConfChangeType.RemoveNode, 5)),
    ProposalDroppedError,
  );
  // Invalid changes are refused up front.
  n.recover();
  n.tickAll(2);
  assert.throws(
    () => n.node(2).raw.proposeConfChange(cc(ConfChangeType.AddNode, 0 as number)),
    Error,
  );
});

Deno.test("learner: does not campaign or vote, receives the log, and can be promoted to voter", () => {
  const n = net([1, 2], { learners: [3] });
  n.tick(3, 100);
  assert.equal(n.node(3).state, StateType.Follower, "a learner never campaigns");
  assert.equal(n.node(3).term, 0);
  const voteTargets: number[] = [];
  n.msgHook = (m) => {
    if (m.type === MT.MsgVote) voteTargets.push(m.to);
    return true;
  };
  n.elect(1);
  assert.deepEqual(voteTargets, [2], "vote requests go to voters only");
  n.msgHook = null;
  n.propose(1, "x");
  assert.deepEqual(n.node(3).items, ["x"]);
  // A learner's vote does not count towards a quorum: candidate 1 (voters 1, 2) with 2
  // unreachable stays a candidate even when learner 3 grants its vote.
  const lone = net([1, 2], { learners: [3] });
  lone.isolate(2);
  lone.campaign(1);
  assert.equal(lone.node(1).state, StateType.Candidate);
  lone.node(1).raw.step({ ...ack(3, 0), type: MT.MsgVoteResp, term: lone.node(1).term });
  assert.equal(lone.node(1).state, StateType.Candidate);
  // Promote 3; it can then win an election.
  proposeConfChange(n, 1, cc(ConfChangeType.AddNode, 3));
  n.tickAll(2);
  assert.ok(!n.node(3).raw.membership().learners.includes(3));
  assert.deepEqual(n.node(3).raw.membership().voters, [1, 2, 3]);
  n.isolate(1);
  n.elect(3);
  assert.ok(n.propose(3, "y"));
  assert.deepEqual(n.node(2).items, ["x", "y"]);
});

Deno.test("removed node does not disrupt the cluster when it comes back", () => {
  for (
    const opts of [{ preVote: true, checkQuorum: true }, { preVote: true }, { checkQuorum: true }]
  ) {
    const n = net([1, 2, 3], { bootstrap: "log", node: opts });
    n.elect(1);
    n.isolate(3);
    proposeConfChange(n, 1, cc(ConfChangeType.RemoveNode, 3));
    n.tickAll(2);
    assert.deepEqual(n.node(1).raw.membership().voters, [1, 2]);
    n.propose(1, "x");
    const term = n.node(1).term;
    n.recover();
    for (let i = 0; i < 200; i++) {
      n.tickAll(1);
      if (i % 10 === 0) n.propose(1, `y${i}`);
    }
    assert.deepEqual(leaders(n), [1], JSON.stringify(opts));
    assert.equal(n.node(1).term, term, `term unchanged with ${JSON.stringify(opts)}`);
    assert.equal(n.node(2).term, term);
  }
});

// ---------------------------------------------------------------------------------------------
// Proposals

Deno.test("proposal: a follower forwards to the leader; no leader means the proposal is dropped", () => {
  const n = net([1, 2, 3]);
  assert.equal(n.propose(2, "nobody"), false);
  n.elect(1);
  assert.ok(n.propose(2, "via-follower"));
  for (const x of n.nodes.values()) assert.deepEqual(x.items, ["via-follower"]);
  const m = net([1, 2, 3], { node: { disableProposalForwarding: true } });
  m.elect(1);
  assert.equal(m.propose(2, "x"), false);
});

Deno.test("proposal: the uncommitted-size limit drops proposals until entries commit", () => {
  const n = net([1, 2, 3], { node: { maxUncommittedEntriesSize: 100 } });
  n.elect(1);
  n.isolate(1);
  let ok = 0;
  for (let i = 0; i < 10; i++) if (n.propose(1, "x".repeat(30))) ok++;
  assert.equal(ok, 3, "proposals accepted up to the limit");
  n.recover();
  n.tickAll(3);
  assert.ok(n.propose(1, "x".repeat(30)));
});

Deno.test("commit: a leader only commits entries of its own term by counting replicas", () => {
  // Figure 8 of the Raft paper: an old-term entry replicated on a majority is not committed
  // until an entry of the current term is.
  const x = coreWithLog(1, [1], 0);
  forceLeader(x); // term 2; appends the empty entry at index 2
  cycle(x);
  assert.equal(x.core.lastIndex(), 2);
  // Follower 2 acknowledges only the old entry: leader + 2 form a majority holding index 1.
  x.core.step({ ...ack(2, 1), term: x.core.term });
  assert.equal(x.core.commitIndex, 0, "old-term entry on a majority is not committed");
  x.core.step({ ...ack(2, 2), term: x.core.term });
  assert.equal(x.core.commitIndex, 2, "current-term entry commits, and with it the old one");
});

function ack(from: number, index: number): Message {
  return {
    type: MT.MsgAppResp,
    to: 1,
    from,
    term: 0,
    logTerm: 0,
    index,
    entries: [],
    commit: 0,
    snapshot: null,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
  };
}

Deno.test("membership: a configuration takes effect when appended and is rolled back if truncated", () => {
  const n = net([1, 2, 3], { bootstrap: "log" });
  n.elect(1);
  assert.ok(n.propose(1, "a"));
  n.isolate(1);
  proposeConfChange(n, 1, cc(ConfChangeType.AddLearnerNode, 4));
  assert.deepEqual(
    n.node(1).raw.membership(),
    { voters: [1, 2, 3], learners: [4] },
    "in effect on the leader as soon as it is in its log",
  );
  n.elect(2);
  assert.ok(n.propose(2, "b"));
  n.recover();
  n.tickAll(5);
  assert.deepEqual(leaders(n), [2]);
  assert.deepEqual(n.node(1).raw.membership(), { voters: [1, 2, 3], learners: [] });
  assert.deepEqual(n.node(1).items, ["a", "b"]);
});

Deno.test("ReadIndex: lease-based reads are answered by the leader without a heartbeat round", () => {
  const n = net([1, 2, 3], { node: { checkQuorum: true, readOnlyOption: 1 } });
  n.elect(1);
  const leader = n.node(1);
  leader.raw.readIndex(bytes("lease"));
  const out = leader.process();
  assert.equal(out.filter((m) => m.type === MT.MsgHeartbeat).length, 0);
  assert.equal(leader.readStates.length, 1);
  assert.equal(leader.readStates[0].index, leader.raw.commitIndex);
  assert.throws(
    () =>
      new RaftCore({
        id: 1,
        electionTick: 10,
        heartbeatTick: 1,
        storage: new MemoryStorage(),
        rand: new SeededRand(1),
        readOnlyOption: 1,
      }),
    /checkQuorum/,
  );
});
