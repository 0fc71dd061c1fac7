/**
 * Deterministic randomized cluster simulation: `RaftCore` nodes on `DurableStorage` over
 * per-node `SimDisk`s, talking through `SimNetwork`, driven by a `ManualClock`; a replicated KV
 * state machine; simulated clients recording a history for `checkKvHistory`. One seed drives
 * every choice (network, disks, faults, clients, election timeouts), so a failing seed replays
 * exactly. See `shared/raft/README.md` ("Simulation").
 *
 * @module
 */

import { RaftCore } from "../raft.ts";
import { decodeConfChange } from "../codec.ts";
import {
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  ProposalDroppedError,
  type Ready,
  type Snapshot,
  StateType,
} from "../types.ts";
import { DurableStorage } from "../durable_storage.ts";
import { bootstrapPersistence } from "../persistence.ts";
import { ManualClock } from "../../sim/clock.ts";
import { Prng } from "../../sim/prng.ts";
import { SimNetwork } from "../../sim/network.ts";
import { SimDisk } from "../../sim/disk.ts";
import { checkKvHistory, KvHistory, type OpHandle } from "../../sim/checker.ts";
import type { WalLogger } from "../../wal/wal.ts";

/** Options of one simulation run. */
export interface SimOptions {
  seed: number;
  /** Cluster size (3 or 5). */
  nodes: number;
  /** Simulated milliseconds of chaos before the final heal (default 5000). */
  durationMs?: number;
  /** Concurrent clients (default 4). */
  clients?: number;
  /** Keys (default 3). */
  keys?: number;
}

/** Outcome of a run. */
export interface SimResult {
  seed: number;
  nodes: number;
  ok: boolean;
  /** Why the run failed (with the seed and the replay command). */
  error?: string;
  stats: {
    ops: number;
    acked: number;
    unknown: number;
    failed: number;
    crashes: number;
    midWriteCrashes: number;
    restarts: number;
    partitions: number;
    snapshotsSent: number;
    compactions: number;
    maxTerm: number;
    simMs: number;
  };
}

/** The command that replays one seed. */
export function replayCommand(seed: number, nodes: number): string {
  return `deno run -A shared/raft/sim/main.ts --seeds 1 --start ${seed} --nodes ${nodes}`;
}

const TICK_MS = 10;
const CLIENT_TIMEOUT_MS = 600;
const quiet: WalLogger = { warn() {}, info() {} };
const enc = new TextEncoder();
const dec = new TextDecoder();

type Value = number;
interface Command {
  c: number; // client
  s: number; // client's sequence number
  k: "put" | "get" | "delete" | "cas";
  key: string;
  v?: Value;
  e?: Value | null;
}

class SimFailure extends Error {}

/** The replicated state machine: KV map + per-client applied sequence numbers (dedup). */
interface KvState {
  kv: Map<string, Value>;
  /** client -> applied sequence numbers (sorted). */
  sessions: Map<number, number[]>;
}

function encodeState(s: KvState): Uint8Array {
  return enc.encode(JSON.stringify({ kv: [...s.kv], sessions: [...s.sessions] }));
}

function decodeState(b: Uint8Array): KvState {
  if (b.length === 0) return { kv: new Map(), sessions: new Map() };
  const o = JSON.parse(dec.decode(b));
  return { kv: new Map(o.kv), sessions: new Map(o.sessions) };
}

interface PendingRead {
  index: number;
  ctx: string;
}

class SimNode {
  core!: RaftCore;
  persistence!: DurableStorage;
  up = false;
  /** Bumped by every crash: work of an older incarnation must stop. */
  incarnation = 0;
  state: KvState = { kv: new Map(), sessions: new Map() };
  conf: ConfState = { voters: [], learners: [] };
  applied = 0;
  lastCompaction = 0;
  compactEvery: number;
  /** Client request id -> callback, for requests submitted to this node. */
  waiting = new Map<string, (result: Value | null | boolean) => void>();
  readWaiting = new Map<string, (result: Value | null) => void>();
  reads: PendingRead[] = [];

  constructor(readonly id: number, readonly disk: SimDisk, compactEvery: number) {
    this.compactEvery = compactEvery;
  }
}

interface Client {
  id: number;
  seq: number;
  nextAt: number;
  inflight?: { handle: OpHandle; id: string; deadline: number; write: boolean; cmd: Command };
  lastSeen: Value | null;
}

/** Runs one seed. Never throws for a protocol failure: see `SimResult.error`. */
export async function runSimulation(options: SimOptions): Promise<SimResult> {
  const sim = new Simulation(options);
  try {
    await sim.run();
    sim.finalChecks();
    return sim.result(true);
  } catch (e) {
    const msg = e instanceof SimFailure ? e.message : (e as Error)?.stack ?? String(e);
    return sim.result(false, msg);
  }
}

class Simulation {
  readonly seed: number;
  readonly n: number;
  readonly duration: number;
  readonly rand: Prng;
  readonly clock = new ManualClock(0);
  readonly net: SimNetwork<Message, number>;
  readonly nodes: SimNode[] = [];
  readonly clients: Client[] = [];
  readonly history: KvHistory;
  readonly keys: string[];
  readonly ids: number[];
  readonly faults: Prng;
  readonly clientRand: Prng;
  /** index -> term and data of the entry every node applied there (state machine safety). */
  readonly appliedAt = new Map<number, string>();
  /** Acknowledged writes: request ids that must survive. */
  readonly ackedWrites: { c: number; s: number }[] = [];
  stats = {
    ops: 0,
    acked: 0,
    unknown: 0,
    failed: 0,
    crashes: 0,
    midWriteCrashes: 0,
    restarts: 0,
    partitions: 0,
    snapshotsSent: 0,
    compactions: 0,
    maxTerm: 0,
    simMs: 0,
  };

  constructor(options: SimOptions) {
    this.seed = options.seed;
    this.n = options.nodes;
    this.duration = options.durationMs ?? 5000;
    this.rand = new Prng(options.seed);
    this.faults = this.rand.fork();
    this.clientRand = this.rand.fork();
    const netRand = this.rand.fork();
    const lat = 1 + netRand.nextInt(15);
    this.net = new SimNetwork<Message, number>({
      rand: netRand,
      latencyMs: [1, lat],
      dropProbability: netRand.next() * 0.05,
      duplicateProbability: netRand.next() * 0.03,
      reorderProbability: netRand.next() * 0.1,
      reorderDelayMs: 50,
    });
    this.history = new KvHistory(this.clock);
    this.ids = Array.from({ length: this.n }, (_, i) => i + 1);
    this.keys = Array.from({ length: options.keys ?? 3 }, (_, i) => `k${i}`);
    for (const id of this.ids) {
      const disk = new SimDisk({ rand: this.rand.fork() });
      this.nodes.push(new SimNode(id, disk, 10 + this.rand.nextInt(60)));
    }
    for (let c = 1; c <= (options.clients ?? 4); c++) {
      this.clients.push({ id: c, seq: 0, nextAt: this.clientRand.nextInt(50), lastSeen: null });
    }
  }

  result(ok: boolean, error?: string): SimResult {
    this.stats.simMs = this.clock.now();
    for (const node of this.nodes) {
      if (node.up) this.stats.maxTerm = Math.max(this.stats.maxTerm, node.core.term);
    }
    const res: SimResult = { seed: this.seed, nodes: this.n, ok, stats: { ...this.stats } };
    if (!ok) {
      res.error =
        `seed ${this.seed} (${this.n} nodes) failed at ${this.clock.now()} ms: ${error}\n` +
        `replay: ${replayCommand(this.seed, this.n)}`;
    }
    return res;
  }

  fail(msg: string): never {
    throw new SimFailure(msg);
  }

  // -------------------------------------------------------------------------------------------
  // Node life cycle

  async start(node: SimNode, fresh: boolean): Promise<void> {
    const fs = node.disk.mount();
    node.persistence = await DurableStorage.open(fs, "/raft", { logger: quiet });
    if (fresh) await bootstrapPersistence(node.persistence, this.ids);
    const storage = node.persistence.storage;
    const snap = storage.snapshot();
    node.state = decodeState(snap.data);
    node.conf = {
      voters: [...snap.metadata.confState.voters],
      learners: [...snap.metadata.confState.learners],
    };
    node.applied = snap.metadata.index;
    node.lastCompaction = snap.metadata.index;
    node.core = new RaftCore({
      id: node.id,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      rand: this.rand.fork(),
      applied: node.applied,
      preVote: true,
      checkQuorum: true,
      maxSizePerMsg: 4096,
      maxInflightMsgs: 64,
    });
    node.up = true;
    this.net.restart(node.id);
  }

  crash(node: SimNode, torn: boolean): void {
    node.up = false;
    node.incarnation++;
    node.waiting.clear();
    node.readWaiting.clear();
    node.reads = [];
    this.net.crash(node.id);
    node.disk.crash({ torn });
    this.stats.crashes++;
  }

  // -------------------------------------------------------------------------------------------
  // The driver loop of one node

  async handleReady(node: SimNode): Promise<void> {
    const inc = node.incarnation;
    const rd: Ready = node.core.ready();
    // As RaftNode does: a leader sends before its own save (so a crash in the save can follow
    // messages that already left), other roles only after it.
    const early = node.core.state === StateType.Leader;
    if (early) this.sendAll(node, rd.messages);
    await node.persistence.save({
      hardState: rd.hardState,
      entries: rd.entries,
      snapshot: rd.snapshot,
      mustSync: rd.mustSync,
    });
    if (node.incarnation !== inc) return; // crashed while saving: nothing else leaves the node
    if (!early) this.sendAll(node, rd.messages);
    if (rd.snapshot) this.restore(node, rd.snapshot);
    for (const e of rd.committedEntries) this.apply(node, e);
    for (const rs of rd.readStates) {
      node.reads.push({ index: rs.index, ctx: dec.decode(rs.requestCtx) });
    }
    this.serveReads(node);
    node.core.advance();
    if (node.applied - node.lastCompaction >= node.compactEvery) {
      const snap = node.persistence.storage.createSnapshot(
        node.applied,
        node.conf,
        encodeState(node.state),
      );
      node.lastCompaction = node.applied;
      this.stats.compactions++;
      await node.persistence.compact(snap);
    }
  }

  sendAll(node: SimNode, messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type === MessageType.MsgSnap) {
        this.stats.snapshotsSent++;
        const outcome = this.net.send(node.id, m.to, m);
        node.core.reportSnapshot(m.to, outcome === "sent");
      } else {
        this.net.send(node.id, m.to, m);
      }
    }
  }

  restore(node: SimNode, snap: Snapshot): void {
    if (snap.metadata.index <= node.applied) return;
    node.state = decodeState(snap.data);
    node.conf = {
      voters: [...snap.metadata.confState.voters],
      learners: [...snap.metadata.confState.learners],
    };
    node.applied = snap.metadata.index;
    node.lastCompaction = snap.metadata.index;
  }

  apply(node: SimNode, e: Entry): void {
    if (e.index !== node.applied + 1) {
      this.fail(`node ${node.id} applies index ${e.index} after ${node.applied}`);
    }
    node.applied = e.index;
    const sig = `${e.term}:${e.type}:${dec.decode(e.data)}`;
    const prev = this.appliedAt.get(e.index);
    if (prev === undefined) this.appliedAt.set(e.index, sig);
    else if (prev !== sig) {
      this.fail(`state machine safety: index ${e.index} applied as ${prev} and as ${sig}`);
    }
    if (e.type === EntryType.ConfChange) {
      node.conf = node.core.applyConfChange(decodeConfChange(e.data));
      return;
    }
    if (e.data.length === 0) return;
    const cmd = JSON.parse(dec.decode(e.data)) as Command;
    const seen = node.state.sessions.get(cmd.c) ?? [];
    if (seen.includes(cmd.s)) return; // a duplicated proposal: applied once only
    seen.push(cmd.s);
    node.state.sessions.set(cmd.c, seen);
    const kv = node.state.kv;
    let result: Value | null | boolean = null;
    switch (cmd.k) {
      case "put":
        kv.set(cmd.key, cmd.v!);
        break;
      case "delete":
        kv.delete(cmd.key);
        break;
      case "get":
        result = kv.get(cmd.key) ?? null;
        break;
      case "cas": {
        const cur = kv.get(cmd.key) ?? null;
        result = cur === cmd.e;
        if (result) kv.set(cmd.key, cmd.v!);
        break;
      }
    }
    const id = `${cmd.c}:${cmd.s}`;
    const cb = node.waiting.get(id);
    if (cb) {
      node.waiting.delete(id);
      cb(result);
    }
  }

  serveReads(node: SimNode): void {
    if (node.reads.length === 0) return;
    const keep: PendingRead[] = [];
    for (const r of node.reads) {
      if (r.index > node.applied) {
        keep.push(r);
        continue;
      }
      const cb = node.readWaiting.get(r.ctx);
      if (!cb) continue;
      node.readWaiting.delete(r.ctx);
      const key = r.ctx.split("|")[1];
      cb(node.state.kv.get(key) ?? null);
    }
    node.reads = keep;
  }

  // -------------------------------------------------------------------------------------------
  // Clients

  clientStep(now: number, final: boolean): void {
    const r = this.clientRand;
    for (const cl of this.clients) {
      if (cl.inflight) {
        if (now >= cl.inflight.deadline) {
          this.history.unknown(cl.inflight.handle);
          this.stats.unknown++;
          cl.inflight = undefined;
          cl.nextAt = now + r.nextInt(30);
        }
        continue;
      }
      if (final || now < cl.nextAt) continue;
      const up = this.nodes.filter((n) => n.up);
      if (up.length === 0) continue;
      const node = r.pick(up);
      const key = r.pick(this.keys);
      cl.seq++;
      const s = cl.seq;
      const value = cl.id * 1_000_000 + s;
      const x = r.next();
      let cmd: Command;
      if (x < 0.35) cmd = { c: cl.id, s, k: "put", key, v: value };
      else if (x < 0.7) cmd = { c: cl.id, s, k: "get", key };
      else if (x < 0.85) cmd = { c: cl.id, s, k: "cas", key, e: cl.lastSeen, v: value };
      else cmd = { c: cl.id, s, k: "delete", key };
      const handle = cmd.k === "put"
        ? this.history.invoke(cl.id, { kind: "put", key, value })
        : cmd.k === "get"
        ? this.history.invoke(cl.id, { kind: "get", key })
        : cmd.k === "cas"
        ? this.history.invoke(cl.id, { kind: "cas", key, expected: cmd.e!, value })
        : this.history.invoke(cl.id, { kind: "delete", key });
      this.stats.ops++;
      const id = `${cl.id}:${s}`;
      cl.inflight = { handle, id, deadline: now + CLIENT_TIMEOUT_MS, write: cmd.k !== "get", cmd };
      const done = (result: Value | null | boolean) => {
        if (cl.inflight?.id !== id) return; // timed out already
        this.history.ok(handle, cmd.k === "get" || cmd.k === "cas" ? result : undefined);
        this.stats.acked++;
        if (cmd.k === "get") cl.lastSeen = result as Value | null;
        if (cmd.k !== "get") this.ackedWrites.push({ c: cl.id, s });
        cl.inflight = undefined;
        cl.nextAt = this.clock.now() + r.nextInt(20);
      };
      try {
        if (cmd.k === "get" && r.chance(0.5)) {
          const ctx = `${id}|${key}`;
          node.readWaiting.set(ctx, (v) => done(v));
          node.core.readIndex(enc.encode(ctx));
        } else {
          node.waiting.set(id, done);
          node.core.propose(enc.encode(JSON.stringify(cmd)));
        }
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
        // Known not to be in any log: no effect.
        node.waiting.delete(id);
        this.history.fail(handle);
        this.stats.failed++;
        cl.inflight = undefined;
        cl.nextAt = now + 5 + r.nextInt(30);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  async faultStep(now: number): Promise<void> {
    const f = this.faults;
    if (!f.chance(1 / 120)) return; // about one event per 120 ms
    const x = f.next();
    const up = this.nodes.filter((n) => n.up);
    const down = this.nodes.filter((n) => !n.up);
    if (x < 0.15 && up.length > 0) {
      this.crash(f.pick(up), f.chance(0.7));
    } else if (x < 0.4 && down.length > 0) {
      const node = f.pick(down);
      this.stats.restarts++;
      await this.start(node, false);
    } else if (x < 0.52) {
      const shuffled = f.shuffle([...this.ids]);
      const cut = 1 + f.nextInt(this.n - 1);
      this.net.heal();
      this.net.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      this.stats.partitions++;
    } else if (x < 0.6) {
      this.net.isolate(f.pick(this.ids));
      this.stats.partitions++;
    } else if (x < 0.9) {
      this.net.heal();
    } else {
      // leadership transfer request to a random node
      const leader = up.find((n) => n.core.state === 2);
      if (leader) leader.core.transferLeader(f.pick(this.ids));
    }
    void now;
  }

  // -------------------------------------------------------------------------------------------
  // Main loop

  async step(now: number, chaos: boolean): Promise<void> {
    for (const env of this.net.step(now)) {
      const node = this.nodes[env.to - 1];
      if (node.up) node.core.step(env.msg);
    }
    if (now % TICK_MS === 0) {
      for (const node of this.nodes) if (node.up) node.core.tick();
    }
    this.clientStep(now, !chaos);
    if (chaos) await this.faultStep(now);
    for (const node of this.nodes) {
      let rounds = 0;
      while (node.up && node.core.hasReady() && rounds++ < 8) {
        if (chaos && this.faults.chance(0.002)) {
          // Crash in the middle of persisting this Ready (torn write).
          const p = this.handleReady(node).catch(() => {});
          for (let i = this.faults.nextInt(12); i > 0; i--) await Promise.resolve();
          this.crash(node, true);
          this.stats.midWriteCrashes++;
          await p;
          break;
        }
        await this.handleReady(node);
      }
    }
  }

  async run(): Promise<void> {
    for (const node of this.nodes) await this.start(node, true);
    let now = 0;
    while (now < this.duration) {
      now = this.clock.advance(1);
      await this.step(now, true);
    }
    // Heal everything and let the cluster converge.
    this.net.heal();
    this.net.configure({ dropProbability: 0, duplicateProbability: 0, reorderProbability: 0 });
    for (const node of this.nodes) {
      if (!node.up) {
        this.stats.restarts++;
        await this.start(node, false);
      }
    }
    const deadline = now + 10_000;
    while (now < deadline) {
      now = this.clock.advance(1);
      await this.step(now, false);
      if (now % 50 === 0 && this.converged()) return;
    }
    this.fail(`no convergence within 10 s after healing: ${this.describe()}`);
  }

  converged(): boolean {
    if (this.clients.some((c) => c.inflight)) return false;
    const leader = this.nodes.find((n) => n.core.state === 2);
    if (!leader) return false;
    const commit = leader.core.commitIndex;
    if (leader.core.termAt(commit) !== leader.core.term) return false;
    return this.nodes.every((n) => n.applied === commit && !n.core.hasReady());
  }

  describe(): string {
    return this.nodes.map((n) =>
      `node ${n.id}: up=${n.up} state=${n.core?.state} term=${n.core?.term} commit=${n.core?.commitIndex} applied=${n.applied}`
    ).join("; ");
  }

  finalChecks(): void {
    // Every node holds the same state.
    const ref = JSON.stringify([...this.nodes[0].state.kv].sort());
    for (const node of this.nodes) {
      const s = JSON.stringify([...node.state.kv].sort());
      if (s !== ref) this.fail(`node ${node.id} state ${s} differs from node 1 ${ref}`);
    }
    // Every acknowledged write survives (is in the applied set of every node).
    for (const node of this.nodes) {
      for (const w of this.ackedWrites) {
        if (!(node.state.sessions.get(w.c) ?? []).includes(w.s)) {
          this.fail(`acknowledged write ${w.c}:${w.s} lost on node ${node.id}`);
        }
      }
    }
    const res = checkKvHistory(this.history.operations());
    if (!res.ok) {
      this.fail(
        `history not linearizable${res.inconclusive ? " (inconclusive)" : ""}: ${res.info}`,
      );
    }
  }
}
