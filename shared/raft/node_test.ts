import assert from "node:assert/strict";
import {
  decodeProposal,
  encodeProposal,
  ManualTicker,
  NodeStoppedError,
  RaftNode,
  RaftTimeoutError,
  type StateMachine,
} from "./node.ts";
import { LocalNetwork } from "./transport.ts";
import { bootstrapPersistence, MemoryPersistence, type RaftPersistence } from "./persistence.ts";
import {
  ConfChangeType,
  type ConfState,
  type Entry,
  type HardState,
  ProposalDroppedError,
  type Snapshot,
} from "./types.ts";
import { CodecError } from "./codec.ts";
import { ManualClock } from "../sim/clock.ts";
import { Prng } from "../sim/prng.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const TICK_MS = 100;

/** A replicated map: "key=value" sets, apply returns the number of keys. */
class KvMachine implements StateMachine<number> {
  map = new Map<string, string>();
  applied: number[] = [];
  confChanges: ConfState[] = [];
  leaders: number[] = [];

  apply(data: Uint8Array, index: number): number {
    const [k, v] = dec.decode(data).split("=");
    this.map.set(k, v);
    this.applied.push(index);
    return this.map.size;
  }
  restore(snapshot: Snapshot): void {
    this.map = new Map(JSON.parse(dec.decode(snapshot.data)));
  }
  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify([...this.map]));
  }
  onConfChange(_cc: unknown, conf: ConfState): void {
    this.confChanges.push(conf);
  }
  onLeaderChange(lead: number): void {
    this.leaders.push(lead);
  }
}

interface Member {
  id: number;
  node: RaftNode<number>;
  sm: KvMachine;
  persistence: RaftPersistence;
}

class Cluster {
  readonly ticker = new ManualTicker();
  readonly clock = new ManualClock(0);
  readonly net: LocalNetwork;
  readonly members = new Map<number, Member>();
  readonly rand: Prng;

  constructor(seed: number, dropProbability = 0) {
    this.rand = new Prng(seed);
    this.net = new LocalNetwork({ dropProbability, rand: this.rand.fork() });
  }

  async add(
    id: number,
    voters: number[] | null,
    options: {
      snapshotEntries?: number;
      persistence?: RaftPersistence;
      onFatal?: (e: unknown) => void;
    } = {},
  ): Promise<Member> {
    const persistence = options.persistence ?? new MemoryPersistence();
    if (voters) await bootstrapPersistence(persistence, voters);
    const sm = new KvMachine();
    const node = new RaftNode<number>({
      id,
      persistence,
      transport: this.net.transport(id),
      stateMachine: sm,
      rand: this.rand.fork(),
      ticker: this.ticker,
      clock: this.clock,
      tickMs: TICK_MS,
      snapshotEntries: options.snapshotEntries ?? 0,
      proposalTimeoutMs: 3000,
      readTimeoutMs: 3000,
      onFatal: options.onFatal,
    });
    node.start();
    const m = { id, node, sm, persistence };
    this.members.set(id, m);
    return m;
  }

  async start(n: number, options: { snapshotEntries?: number } = {}): Promise<void> {
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    for (const id of ids) await this.add(id, ids, options);
  }

  /** One tick of time for every node, then let messages and saves settle. */
  async tick(): Promise<void> {
    this.clock.advance(TICK_MS);
    this.ticker.fire();
    await settle();
  }

  async until(cond: () => boolean, maxTicks = 300): Promise<void> {
    for (let i = 0; i < maxTicks; i++) {
      if (cond()) return;
      await this.tick();
    }
    assert.fail(`condition not reached within ${maxTicks} ticks`);
  }

  leader(): Member | undefined {
    return [...this.members.values()].find((m) => !m.node.stopped && m.node.isLeader);
  }

  async waitLeader(): Promise<Member> {
    await this.until(() => this.leader() !== undefined);
    return this.leader()!;
  }

  /** Ticks while `p` is pending (so that timeouts and retries happen), then returns its outcome. */
  async drive<T>(p: Promise<T>, maxTicks = 300): Promise<T> {
    let done = false;
    const watched = p.finally(() => (done = true));
    watched.catch(() => {});
    for (let i = 0; i < maxTicks && !done; i++) await this.tick();
    await settle();
    assert.ok(done, "request still pending");
    return await p;
  }

  async stopAll(): Promise<void> {
    for (const m of this.members.values()) await m.node.stop();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("proposal envelope round-trips and rejects bad versions", () => {
  const payload = enc.encode("hello");
  const e = encodeProposal(7, 123456, 2 ** 40, payload);
  const d = decodeProposal(e);
  assert.equal(d.proposer, 7);
  assert.equal(d.incarnation, 123456);
  assert.equal(d.seq, 2 ** 40);
  assert.equal(dec.decode(d.payload), "hello");
  assert.throws(() => decodeProposal(new Uint8Array([9, 1, 1, 1])), CodecError);
  assert.throws(() => decodeProposal(new Uint8Array([1, 0x80])), CodecError);
  assert.throws(() => decodeProposal(new Uint8Array([])), CodecError);
});

Deno.test("RaftNode: a single node elects itself and applies proposals in order", async () => {
  const c = new Cluster(1);
  await c.start(1);
  const m = await c.waitLeader();
  const results = await c.drive(Promise.all([
    m.node.propose(enc.encode("a=1")),
    m.node.propose(enc.encode("b=2")),
    m.node.propose(enc.encode("a=3")),
  ]));
  assert.deepEqual(results, [1, 2, 2]);
  assert.equal(m.sm.map.get("a"), "3");
  await c.drive(m.node.readIndex());
  assert.ok(m.sm.leaders.includes(1));
  await c.stopAll();
});

Deno.test("RaftNode: a follower's proposal is forwarded and resolves with its apply result", async () => {
  const c = new Cluster(2);
  await c.start(3);
  const leader = await c.waitLeader();
  const follower = [...c.members.values()].find((m) => m !== leader)!;
  await c.until(() => follower.node.leader === leader.id);
  const n = await c.drive(follower.node.propose(enc.encode("x=1")));
  assert.equal(n, 1);
  // Every member applies it.
  await c.until(() => [...c.members.values()].every((m) => m.sm.map.get("x") === "1"));
  // A linearizable read on another follower sees a write acknowledged before it started.
  await c.drive(leader.node.propose(enc.encode("y=2")));
  const other = [...c.members.values()].find((m) => m !== leader && m !== follower)!;
  await c.drive(other.node.readIndex());
  assert.equal(other.sm.map.get("y"), "2");
  await c.stopAll();
});

Deno.test("RaftNode: concurrent reads share ReadIndex rounds and all resolve", async () => {
  const c = new Cluster(3);
  await c.start(3);
  const leader = await c.waitLeader();
  await c.drive(leader.node.propose(enc.encode("k=v")));
  const reads = Array.from({ length: 50 }, () => leader.node.readIndex());
  await c.drive(Promise.all(reads));
  assert.equal(leader.node.status().pendingReads, 0);
  await c.stopAll();
});

Deno.test("RaftNode: an isolated leader's proposals time out and a new leader takes over", async () => {
  const c = new Cluster(4);
  await c.start(3);
  const old = await c.waitLeader();
  c.net.isolate(old.id);
  const stuck = old.node.propose(enc.encode("lost=1"));
  await assert.rejects(c.drive(stuck), RaftTimeoutError);
  await c.until(() => {
    const l = c.leader();
    return l !== undefined && l.id !== old.id;
  });
  const fresh = c.leader()!;
  assert.equal(await c.drive(fresh.node.propose(enc.encode("new=1"))), 1);
  // The isolated node stepped down (check-quorum) and its read cannot be confirmed.
  assert.equal(old.node.isLeader, false);
  await assert.rejects(c.drive(old.node.readIndex({ timeoutMs: 1000 })), RaftTimeoutError);
  c.net.heal();
  await c.until(() => old.sm.map.get("new") === "1");
  // The timed-out proposal never committed anywhere.
  for (const m of c.members.values()) assert.equal(m.sm.map.has("lost"), false);
  await c.stopAll();
});

Deno.test("RaftNode: a proposal without a known leader is dropped at once", async () => {
  const c = new Cluster(5);
  await c.start(3);
  const m = c.members.get(1)!;
  await assert.rejects(m.node.propose(enc.encode("a=1")), ProposalDroppedError);
  await c.stopAll();
});

Deno.test("RaftNode: snapshots compact the log and a new member catches up from one", async () => {
  const c = new Cluster(6);
  await c.start(3, { snapshotEntries: 20 });
  const leader = await c.waitLeader();
  for (let i = 0; i < 100; i++) {
    await c.drive(leader.node.propose(enc.encode(`k${i % 30}=${i}`)));
  }
  await c.until(() => leader.node.status().snapshotIndex >= 80);
  assert.ok(leader.persistence.storage.firstIndex() > 50, "log compacted");
  const conf = await c.drive(
    leader.node.proposeConfChange({
      type: ConfChangeType.AddNode,
      nodeId: 4,
      context: new Uint8Array(),
    }),
  );
  assert.deepEqual([...conf.voters].sort(), [1, 2, 3, 4]);
  const joiner = await c.add(4, null, { snapshotEntries: 20 });
  await c.until(() => joiner.sm.map.size === 30 && joiner.sm.map.get("k9") === "99");
  assert.ok(joiner.node.status().snapshotIndex > 0, "caught up through a snapshot");
  assert.deepEqual([...joiner.node.membership().voters].sort(), [1, 2, 3, 4]);
  // The new member takes part in commits.
  const n = await c.drive(joiner.node.propose(enc.encode("late=1")));
  assert.equal(n, 31);
  await c.stopAll();
});

Deno.test("RaftNode: a restarted node restores its snapshot and replays the log after it", async () => {
  const c = new Cluster(7);
  await c.start(3, { snapshotEntries: 10 });
  const leader = await c.waitLeader();
  for (let i = 0; i < 25; i++) await c.drive(leader.node.propose(enc.encode(`k${i}=${i}`)));
  const victim = [...c.members.values()].find((m) => m !== leader)!;
  await c.until(() => victim.sm.map.size === 25);
  await victim.node.stop();
  await victim.node.stop(); // idempotent
  await c.drive(leader.node.propose(enc.encode("after=1")));
  const revived = await c.add(victim.id, null, {
    snapshotEntries: 10,
    persistence: victim.persistence,
  });
  assert.ok(revived.sm.map.size >= 20, "restored from the snapshot before replay");
  await c.until(() => revived.sm.map.get("after") === "1" && revived.sm.map.size === 26);
  await c.stopAll();
});

Deno.test("RaftNode: leadership transfer resolves when the target leads", async () => {
  const c = new Cluster(8);
  await c.start(3);
  const leader = await c.waitLeader();
  await c.drive(leader.node.propose(enc.encode("a=1")));
  const target = [...c.members.values()].find((m) => m !== leader)!;
  await c.drive(leader.node.transferLeadership(target.id));
  await c.until(() => target.node.isLeader);
  assert.equal(leader.node.isLeader, false);
  await c.stopAll();
});

Deno.test("RaftNode: stop rejects pending requests and later ones", async () => {
  const c = new Cluster(9);
  await c.start(3);
  const leader = await c.waitLeader();
  c.net.isolate(leader.id);
  const p = leader.node.propose(enc.encode("a=1"));
  const r = leader.node.readIndex();
  await leader.node.stop();
  await assert.rejects(p, NodeStoppedError);
  await assert.rejects(r, NodeStoppedError);
  await assert.rejects(leader.node.propose(enc.encode("b=1")), NodeStoppedError);
  await c.stopAll();
});

Deno.test("RaftNode: an aborted request is rejected with the signal's reason", async () => {
  const c = new Cluster(10);
  await c.start(3);
  const leader = await c.waitLeader();
  c.net.isolate(leader.id);
  const ac = new AbortController();
  const p = leader.node.propose(enc.encode("a=1"), { signal: ac.signal });
  ac.abort(new Error("client went away"));
  await assert.rejects(p, /client went away/);
  assert.equal(leader.node.status().pendingProposals, 0);
  await assert.rejects(
    leader.node.readIndex({ signal: AbortSignal.abort(new Error("already")) }),
    /already/,
  );
  await c.stopAll();
});

class FailingPersistence extends MemoryPersistence {
  failAfter = Infinity;
  override save(
    update: { hardState?: HardState; entries: readonly Entry[]; snapshot?: Snapshot },
  ): Promise<void> {
    if (update.entries.length > 0 && --this.failAfter < 0) {
      return Promise.reject(new Error("fsync: EIO"));
    }
    return super.save(update);
  }
}

Deno.test("RaftNode: a failing save stops the node and reports the fatal error", async () => {
  const c = new Cluster(11);
  const persistence = new FailingPersistence();
  await bootstrapPersistence(persistence, [1]);
  const fatal: unknown[] = [];
  const { node } = await c.add(1, null, { persistence, onFatal: (e) => fatal.push(e) });
  await c.waitLeader();
  persistence.failAfter = 0;
  const p = node.propose(enc.encode("a=1"));
  await assert.rejects(c.drive(p), NodeStoppedError);
  assert.equal(fatal.length, 1);
  assert.match(String(fatal[0]), /EIO/);
  assert.equal(node.stopped, true);
  await assert.rejects(node.propose(enc.encode("b=1")), /EIO/);
  await node.stop();
});

Deno.test("RaftNode: a 3-node cluster keeps every acknowledged write under message loss", async () => {
  const c = new Cluster(12, 0.1);
  await c.start(3);
  await c.waitLeader();
  const acked: string[] = [];
  for (let i = 0; i < 40; i++) {
    const m = [...c.members.values()][i % 3];
    try {
      await c.drive(m.node.propose(enc.encode(`w${i}=${i}`)));
      acked.push(`w${i}`);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError || e instanceof RaftTimeoutError)) throw e;
    }
  }
  c.net.setDropProbability(0);
  assert.ok(acked.length > 20, `only ${acked.length} writes acknowledged`);
  await c.until(() => [...c.members.values()].every((m) => acked.every((k) => m.sm.map.has(k))));
  // Every member applied the same indexes in the same order.
  const ref = c.members.get(1)!.sm.applied;
  for (const m of c.members.values()) {
    const n = Math.min(ref.length, m.sm.applied.length);
    assert.deepEqual(m.sm.applied.slice(0, n), ref.slice(0, n));
  }
  await c.stopAll();
});
