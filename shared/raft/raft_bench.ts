/**
 * Throughput of a 3-node in-memory cluster driven synchronously in-process (no codec, no
 * I/O): committed entries per second with 100-byte proposals.
 *
 * - single: one proposal at a time (propose, run until the leader applied it, repeat);
 * - batched: many `propose()` calls per Ready cycle (1,000 proposals, then run the cluster
 *   until all are applied at the leader);
 * - batched/proposeBatch: the same with one multi-entry MsgProp per batch;
 * - batched + codec: every message encoded and decoded with codec.ts, as over a transport.
 *
 *   deno bench -A shared/raft/raft_bench.ts      # Deno.bench timings per batch
 *   deno run -A shared/raft/raft_bench.ts        # prints entries/s for each mode
 *
 * @module
 */

import { SeededRand } from "./_testing/rand.ts";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { RaftCore } from "./raft.ts";
import { MemoryStorage } from "./storage.ts";
import { type Message, StateType } from "./types.ts";

const PAYLOAD = new Uint8Array(100).fill(7);
const EMPTY = new Uint8Array(0);

/** Minimal synchronous driver: persist, send, apply, advance; deliver until quiet. */
class BenchCluster {
  readonly nodes = new Map<number, { rn: RaftCore; storage: MemoryStorage; applied: number }>();
  private queue: Message[] = [];
  committedAtLeader = 0;

  /** With `codec`, every message is encoded and decoded as a transport would. */
  constructor(ids: number[], private readonly leaderId = 1, private readonly codec = false) {
    for (const id of ids) {
      const storage = new MemoryStorage({ voters: ids, learners: [] });
      const rn = new RaftCore({
        id,
        electionTick: 10,
        heartbeatTick: 1,
        storage,
        rand: new SeededRand(id),
        maxSizePerMsg: 1024 * 1024,
        maxInflightMsgs: 256,
        checkQuorum: true,
        preVote: true,
      });
      this.nodes.set(id, { rn, storage, applied: 0 });
    }
    this.nodes.get(leaderId)!.rn.campaign();
    this.run();
    if (this.nodes.get(leaderId)!.rn.state !== StateType.Leader) throw new Error("no leader");
  }

  private processNode(id: number): void {
    const n = this.nodes.get(id)!;
    const rn = n.rn;
    while (rn.hasReady()) {
      const rd = rn.ready();
      if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length) n.storage.append(rd.entries);
      if (rd.hardState) n.storage.setHardState(rd.hardState);
      for (const m of rd.messages) this.queue.push(m);
      const ce = rd.committedEntries;
      if (ce.length) {
        n.applied = ce[ce.length - 1].index;
        if (id === this.leaderId) this.committedAtLeader += ce.length;
      }
      rn.advance();
      // Keep memory bounded: snapshot (empty state) and drop the applied prefix now and then.
      if (n.applied - n.storage.firstIndex() > 50_000) {
        n.storage.createSnapshot(n.applied - 1000, { voters: [1, 2, 3], learners: [] }, EMPTY);
        n.storage.compact(n.applied - 1000);
      }
    }
  }

  /** Runs until no node has work and no message is in flight. */
  run(): void {
    for (;;) {
      for (const id of this.nodes.keys()) this.processNode(id);
      if (this.queue.length === 0) return;
      const q = this.queue;
      this.queue = [];
      for (const m of q) {
        this.nodes.get(m.to)!.rn.step(this.codec ? decodeMessage(encodeMessage(m)) : m);
      }
    }
  }

  leader(): RaftCore {
    return this.nodes.get(this.leaderId)!.rn;
  }
}

export function benchSingle(entries: number): number {
  const c = new BenchCluster([1, 2, 3]);
  const leader = c.leader();
  const start = c.committedAtLeader;
  const t0 = performance.now();
  for (let i = 0; i < entries; i++) {
    leader.propose(PAYLOAD);
    c.run();
  }
  const ms = performance.now() - t0;
  if (c.committedAtLeader - start !== entries) throw new Error("not all entries committed");
  return entries / (ms / 1000);
}

export function benchBatched(
  entries: number,
  batch: number,
  multiEntryProp: boolean,
  codec = false,
): number {
  const c = new BenchCluster([1, 2, 3], 1, codec);
  const leader = c.leader();
  const start = c.committedAtLeader;
  const datas = Array.from({ length: batch }, () => PAYLOAD);
  const t0 = performance.now();
  for (let done = 0; done < entries; done += batch) {
    if (multiEntryProp) leader.proposeBatch(datas);
    else for (let i = 0; i < batch; i++) leader.propose(PAYLOAD);
    c.run();
  }
  const ms = performance.now() - t0;
  const committed = c.committedAtLeader - start;
  if (committed < entries) throw new Error(`only ${committed} of ${entries} committed`);
  return committed / (ms / 1000);
}

Deno.bench("raft 3-node: single proposer, 100-byte entry (per commit)", { group: "raft" }, (b) => {
  const c = new BenchCluster([1, 2, 3]);
  const leader = c.leader();
  b.start();
  for (let i = 0; i < 100; i++) {
    leader.propose(PAYLOAD);
    c.run();
  }
  b.end();
});

Deno.bench("raft 3-node: batched, 1000 x 100-byte propose() per cycle", { group: "raft" }, (b) => {
  const c = new BenchCluster([1, 2, 3]);
  const leader = c.leader();
  b.start();
  for (let i = 0; i < 1000; i++) leader.propose(PAYLOAD);
  c.run();
  b.end();
});

Deno.bench(
  "raft 3-node: batched, proposeBatch(1000 x 100 bytes) per cycle",
  { group: "raft" },
  (b) => {
    const c = new BenchCluster([1, 2, 3]);
    const leader = c.leader();
    const datas = Array.from({ length: 1000 }, () => PAYLOAD);
    b.start();
    leader.proposeBatch(datas);
    c.run();
    b.end();
  },
);

if (import.meta.main) {
  // Warm up the JIT.
  benchSingle(2_000);
  benchBatched(20_000, 1000, false);
  const fmt = (x: number) => Math.round(x).toLocaleString("en-US");
  console.log(`single proposer:                 ${fmt(benchSingle(20_000))} entries/s`);
  for (const batch of [100, 1000, 5000]) {
    console.log(
      `batched propose() x${String(batch).padEnd(5)}:       ${
        fmt(benchBatched(500_000, batch, false))
      } entries/s`,
    );
  }
  console.log(
    `batched proposeBatch(1000):      ${fmt(benchBatched(500_000, 1000, true))} entries/s`,
  );
  console.log(
    `batched x1000 + message codec:   ${fmt(benchBatched(500_000, 1000, false, true))} entries/s`,
  );
}
