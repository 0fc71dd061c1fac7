/**
 * `RaftNode`: the driver that turns the pure {@link RaftCore} into a running replica. It owns the
 * loop of the README ("The driver loop"): persist (through a {@link RaftPersistence}), send
 * (through a {@link RaftTransport}), apply (to the application's {@link StateMachine}), advance;
 * it ticks the core from an injected {@link Ticker}, and it gives the application promises:
 *
 * - `propose(data)` resolves with what `StateMachine.apply` returned for that entry on this node,
 *   on followers too (the proposal is forwarded to the leader and comes back through the log);
 * - `readIndex()` resolves once this node applied everything committed when it was called
 *   (linearizable reads; concurrent calls share one ReadIndex round);
 * - `proposeConfChange(cc)` resolves with the membership once the change is applied;
 * - `transferLeadership(to)` resolves when `to` leads.
 *
 * Proposals travel in a small envelope (proposer id, incarnation, sequence number) so that the
 * proposer recognises its own entries when they are applied; `StateMachine.apply` sees the
 * payload only. Deadlines are checked on ticks against an injected {@link Clock}: no timer per
 * request. A failing `save` (e.g. fsync error) or `apply` is fatal: the node stops, rejects
 * everything pending and reports through `onFatal` (continuing after a lost fsync is unsafe).
 *
 * @module
 */

import { RaftCore, type RaftStatus } from "./raft.ts";
import { CodecError, decodeConfChange, Reader, Writer } from "./codec.ts";
import type { RaftPersistence } from "./persistence.ts";
import {
  type ConfChange,
  type Config,
  type ConfState,
  type Entry,
  EntryType,
  type Logger,
  type Message,
  None,
  ProposalDroppedError,
  RaftError,
  type Rand,
  type Ready,
  silentLogger,
  type Snapshot,
  StateType,
} from "./types.ts";
import type { RaftTransport, TransportHandler } from "./transport.ts";

/** A source of time in milliseconds (see `shared/sim/clock.ts`). */
export interface NodeClock {
  now(): number;
}

/** Calls `fn` every `everyMs` until the returned function is called. */
export interface Ticker {
  start(everyMs: number, fn: () => void): () => void;
}

/** The production ticker (`setInterval`). */
export const intervalTicker: Ticker = {
  start(everyMs, fn) {
    const id = setInterval(fn, everyMs);
    return () => clearInterval(id);
  },
};

/** A ticker for tests: `fire()` runs every started callback once. */
export class ManualTicker implements Ticker {
  #fns = new Set<() => void>();

  start(_everyMs: number, fn: () => void): () => void {
    this.#fns.add(fn);
    return () => this.#fns.delete(fn);
  }

  fire(): void {
    for (const fn of [...this.#fns]) fn();
  }

  get active(): number {
    return this.#fns.size;
  }
}

/** The application state replicated by the node. */
export interface StateMachine<R = unknown> {
  /**
   * Applies the payload of one committed proposal at `index` and returns the result handed to the
   * proposer. Must be deterministic. Called in log order, exactly once per index per incarnation
   * (after a restart, entries after the last snapshot are applied again on the restored state).
   */
  apply(data: Uint8Array, index: number): R;
  /** Replaces the whole state with `snapshot.data` (state as of `snapshot.metadata.index`). */
  restore(snapshot: Snapshot): void;
  /**
   * Serialises the state as of the last applied index (for log compaction). The state must be
   * captured when the call is made: a returned promise may finish serialising later, while
   * further entries are applied (the node takes snapshots in the background).
   */
  snapshot(): Uint8Array | Promise<Uint8Array>;
  /** A membership change was applied at `index`; `conf` is the membership after it. */
  onConfChange?(cc: ConfChange, conf: ConfState, index: number): void;
  /** The known leader or this node's role changed. */
  onLeaderChange?(lead: number, isLeader: boolean, term: number): void;
}

/** Options of {@link RaftNode}. */
export interface RaftNodeOptions<R> {
  id: number;
  persistence: RaftPersistence;
  transport: RaftTransport;
  stateMachine: StateMachine<R>;
  rand: Rand;
  /** Milliseconds per tick (default 100). */
  tickMs?: number;
  /** Ticks of the election timeout (default 10). */
  electionTick?: number;
  /** Ticks between heartbeats (default 1). */
  heartbeatTick?: number;
  /** Default deadline of `propose`/`proposeConfChange` in ms (default 5000). */
  proposalTimeoutMs?: number;
  /** Default deadline of `readIndex` in ms (default 5000). */
  readTimeoutMs?: number;
  /** Proposals awaiting their apply before new ones are refused (default 100,000). */
  maxPendingProposals?: number;
  /**
   * Applied entries between automatic snapshots + log compaction (default 10,000; 0 = never), plus
   * up to a quarter more at random so that members do not all snapshot at once.
   */
  snapshotEntries?: number;
  ticker?: Ticker;
  clock?: NodeClock;
  logger?: Logger;
  /** Called once when the node stops because of an unrecoverable error. */
  onFatal?: (error: unknown) => void;
  /** Extra core options (defaults here: preVote and checkQuorum on). */
  raft?: Partial<
    Omit<Config, "id" | "storage" | "rand" | "applied" | "electionTick" | "heartbeatTick">
  >;
}

/** The node was stopped (or failed) before the request completed. */
export class NodeStoppedError extends RaftError {
  constructor(reason = "raft node stopped") {
    super(reason);
    this.name = "NodeStoppedError";
  }
}

/**
 * A request did not complete in time. For a proposal the outcome is unknown: it may still be
 * committed later (make commands idempotent or check before retrying).
 */
export class RaftTimeoutError extends RaftError {
  constructor(what: string) {
    super(`raft: ${what} timed out`);
    this.name = "RaftTimeoutError";
  }
}

/** Too many proposals are pending; retry later. */
export class NodeBusyError extends RaftError {
  constructor(limit: number) {
    super(`raft: ${limit} proposals pending`);
    this.name = "NodeBusyError";
  }
}

/** Options of a single request. */
export interface RequestOptions {
  /** Overrides the node's default deadline. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: unknown): void;
  deadline: number;
  /** For the timeout error ("proposal", "read", ...). */
  what: string;
  /** Unlinks the waiter from whatever list holds it. */
  remove: () => void;
  /** Detaches the abort listener. */
  cleanup?: () => void;
}

interface ReadRound {
  ctx: Uint8Array;
  key: string;
  waiters: Waiter<void>[];
  issuedAt: number;
}

const ENVELOPE_VERSION = 1;
const te = new TextEncoder();

/** Encodes a proposal envelope: version, proposer, incarnation, sequence, then the payload. */
export function encodeProposal(
  proposer: number,
  incarnation: number,
  seq: number,
  payload: Uint8Array,
): Uint8Array {
  const w = new Writer(payload.length + 24);
  w.u8(ENVELOPE_VERSION);
  w.uvarint(proposer, "proposal.proposer");
  w.uvarint(incarnation, "proposal.incarnation");
  w.uvarint(seq, "proposal.seq");
  const head = w.finish();
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** Decodes a proposal envelope (the payload aliases `data`). */
export function decodeProposal(
  data: Uint8Array,
): { proposer: number; incarnation: number; seq: number; payload: Uint8Array } {
  const r = new Reader(data, "proposal");
  const v = r.u8("proposal.version");
  if (v !== ENVELOPE_VERSION) throw new CodecError(`invalid proposal: version ${v}`);
  const proposer = r.uvarint("proposal.proposer");
  const incarnation = r.uvarint("proposal.incarnation");
  const seq = r.uvarint("proposal.seq");
  return { proposer, incarnation, seq, payload: data.subarray(data.length - r.remaining) };
}

/** What `RaftNode.status()` reports. */
export interface NodeStatus extends RaftStatus {
  /** Index the state machine reflects. */
  appliedToStateMachine: number;
  /** Index of the last snapshot taken or installed. */
  snapshotIndex: number;
  pendingProposals: number;
  pendingReads: number;
  stopped: boolean;
}

/** A running Raft replica: core + persistence + transport + state machine. */
export class RaftNode<R = unknown> implements TransportHandler {
  readonly id: number;
  readonly core: RaftCore;
  readonly #persistence: RaftPersistence;
  readonly #transport: RaftTransport;
  readonly #sm: StateMachine<R>;
  readonly #ticker: Ticker;
  readonly #clock: NodeClock;
  readonly #log: Logger;
  readonly #tickMs: number;
  readonly #electionTick: number;
  readonly #proposalTimeoutMs: number;
  readonly #readTimeoutMs: number;
  readonly #maxPending: number;
  readonly #snapshotEntries: number;
  /** Entries after the last snapshot that trigger the next one (snapshotEntries plus jitter). */
  #snapshotGap: number;
  readonly #rand: Rand;
  readonly #onFatal?: (error: unknown) => void;
  /** Random per incarnation: entries proposed by an earlier run never match this run's waiters. */
  readonly #incarnation: number;
  #seq = 0;
  #readSeq = 0;
  readonly #proposals = new Map<number, Waiter<R>>();
  readonly #confWaiters = new Map<string, Waiter<ConfState>>();
  readonly #transfers: { to: number; waiter: Waiter<void> }[] = [];
  /** Reads waiting for the next ReadIndex round. */
  #readQueue: Waiter<void>[] = [];
  #readRound: ReadRound | null = null;
  /** Reads confirmed at an index, waiting for the state machine to reach it. */
  #readsConfirmed: { index: number; waiters: Waiter<void>[] }[] = [];
  #applied: number;
  #snapshotIndex: number;
  #conf: ConfState;
  #stopTicker: (() => void) | null = null;
  #running = false;
  #loopDone: Promise<void> = Promise.resolve();
  /** The automatic snapshot being taken, off the Ready loop (one at a time). */
  #snapshotting: Promise<void> | null = null;
  #stopped = false;
  #fatal: unknown = undefined;
  #lead = None;

  constructor(options: RaftNodeOptions<R>) {
    this.id = options.id;
    this.#persistence = options.persistence;
    this.#transport = options.transport;
    this.#sm = options.stateMachine;
    this.#ticker = options.ticker ?? intervalTicker;
    this.#clock = options.clock ?? { now: () => performance.now() };
    this.#log = options.logger ?? silentLogger;
    this.#tickMs = options.tickMs ?? 100;
    this.#electionTick = options.electionTick ?? 10;
    this.#proposalTimeoutMs = options.proposalTimeoutMs ?? 5000;
    this.#readTimeoutMs = options.readTimeoutMs ?? 5000;
    this.#maxPending = options.maxPendingProposals ?? 100_000;
    this.#snapshotEntries = options.snapshotEntries ?? 10_000;
    this.#rand = options.rand;
    this.#snapshotGap = this.#nextSnapshotGap();
    this.#onFatal = options.onFatal;
    this.#incarnation = options.rand.nextInt(0x7fffffff) + 1;
    const storage = this.#persistence.storage;
    const snap = storage.snapshot();
    this.#applied = snap.metadata.index;
    this.#snapshotIndex = snap.metadata.index;
    this.#conf = cloneConf(snap.metadata.confState);
    if (snap.metadata.index > 0) this.#sm.restore(snap);
    this.core = new RaftCore({
      preVote: true,
      checkQuorum: true,
      ...options.raft,
      id: options.id,
      electionTick: this.#electionTick,
      heartbeatTick: options.heartbeatTick ?? 1,
      storage,
      rand: options.rand,
      applied: snap.metadata.index,
      logger: options.raft?.logger ?? this.#log,
    });
  }

  /** Starts ticking and receiving. */
  start(): void {
    if (this.#stopped) throw new NodeStoppedError();
    if (this.#stopTicker) return;
    this.#transport.start(this);
    this.#stopTicker = this.#ticker.start(this.#tickMs, () => this.#tick());
    this.#schedule();
  }

  /**
   * Stops ticking, waits for the Ready being processed, and rejects everything pending with
   * {@link NodeStoppedError}. The transport and the persistence stay open (their owner closes
   * them).
   */
  async stop(): Promise<void> {
    if (this.#stopped) {
      await this.#loopDone;
      return;
    }
    this.#stopped = true;
    this.#stopTicker?.();
    this.#stopTicker = null;
    await this.#loopDone;
    await this.#snapshotting;
    this.#rejectAll(new NodeStoppedError());
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The leader this node knows of (0 = none). */
  get leader(): number {
    return this.core.lead;
  }

  get isLeader(): boolean {
    return this.core.state === StateType.Leader;
  }

  get appliedIndex(): number {
    return this.#applied;
  }

  /** The membership as of the last applied entry. */
  membership(): ConfState {
    return cloneConf(this.#conf);
  }

  status(): NodeStatus {
    return {
      ...this.core.status(),
      appliedToStateMachine: this.#applied,
      snapshotIndex: this.#snapshotIndex,
      pendingProposals: this.#proposals.size,
      pendingReads: this.#readQueue.length + (this.#readRound?.waiters.length ?? 0) +
        this.#readsConfirmed.reduce((n, r) => n + r.waiters.length, 0),
      stopped: this.#stopped,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  /**
   * Replicates `data` and resolves with `StateMachine.apply`'s result on this node. Rejects with
   * `ProposalDroppedError` (known not appended: no leader, transfer in progress), NodeBusyError,
   * {@link RaftTimeoutError} (outcome unknown) or NodeStoppedError.
   */
  propose(data: Uint8Array, options: RequestOptions = {}): Promise<R> {
    const failed = this.#refuse();
    if (failed) return Promise.reject(failed);
    if (this.#proposals.size >= this.#maxPending) {
      return Promise.reject(new NodeBusyError(this.#maxPending));
    }
    const seq = ++this.#seq;
    const entry = encodeProposal(this.id, this.#incarnation, seq, data);
    return new Promise<R>((resolve, reject) => {
      const w = this.#waiter(resolve, reject, options, this.#proposalTimeoutMs, "proposal", () => {
        this.#proposals.delete(seq);
      });
      if (!w) return;
      this.#proposals.set(seq, w);
      try {
        this.core.propose(entry);
      } catch (e) {
        this.#proposals.delete(seq);
        w.cleanup?.();
        reject(e);
        return;
      }
      this.#schedule();
    });
  }

  /**
   * Resolves once this node's state machine reflects every entry committed before the call
   * (ReadIndex, dissertation 6.4): a read served after it is linearizable.
   */
  readIndex(options: RequestOptions = {}): Promise<void> {
    const failed = this.#refuse();
    if (failed) return Promise.reject(failed);
    return new Promise<void>((resolve, reject) => {
      const w = this.#waiter(resolve, reject, options, this.#readTimeoutMs, "read", () => {
        this.#removeRead(w!);
      });
      if (!w) return;
      this.#readQueue.push(w);
      if (this.#readRound === null) this.#issueRead();
      this.#schedule();
    });
  }

  /** Proposes a membership change; resolves with the membership once it is applied here. */
  proposeConfChange(cc: ConfChange, options: RequestOptions = {}): Promise<ConfState> {
    const failed = this.#refuse();
    if (failed) return Promise.reject(failed);
    const key = `${cc.type}:${cc.nodeId}`;
    if (this.#confWaiters.has(key)) {
      return Promise.reject(new ProposalDroppedError("raft: the same change is already pending"));
    }
    return new Promise<ConfState>((resolve, reject) => {
      const w = this.#waiter(
        resolve,
        reject,
        options,
        this.#proposalTimeoutMs,
        "conf change",
        () => {
          this.#confWaiters.delete(key);
        },
      );
      if (!w) return;
      this.#confWaiters.set(key, w);
      try {
        this.core.proposeConfChange(cc);
      } catch (e) {
        this.#confWaiters.delete(key);
        w.cleanup?.();
        reject(e);
        return;
      }
      this.#schedule();
    });
  }

  /** Asks for `to` to become leader; resolves once this node sees `to` lead. */
  transferLeadership(to: number, options: RequestOptions = {}): Promise<void> {
    const failed = this.#refuse();
    if (failed) return Promise.reject(failed);
    if (this.core.lead === to) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const entry: { to: number; waiter: Waiter<void> } = { to, waiter: null! };
      const w = this.#waiter(
        resolve,
        reject,
        options,
        this.#electionTick * this.#tickMs * 3,
        "leadership transfer",
        () => {
          const i = this.#transfers.indexOf(entry);
          if (i >= 0) this.#transfers.splice(i, 1);
        },
      );
      if (!w) return;
      entry.waiter = w;
      this.#transfers.push(entry);
      this.core.transferLeader(to);
      this.#schedule();
    });
  }

  /** Starts an election at once (tests, operators). */
  campaign(): void {
    if (this.#refuse()) return;
    this.core.campaign();
    this.#schedule();
  }

  // -------------------------------------------------------------------------------------------
  // TransportHandler

  receive(m: Message): void {
    if (this.#stopped) return;
    if (m.to !== this.id) {
      this.#log.warn(`raft node ${this.id}: dropped a message addressed to ${m.to}`);
      return;
    }
    try {
      this.core.step(m);
    } catch (e) {
      if (e instanceof RaftError && !(e.name === "RaftInvariantError")) {
        this.#log.warn(`raft node ${this.id}: rejected message from ${m.from}: ${e.message}`);
        return;
      }
      this.#fail(e);
      return;
    }
    this.#schedule();
  }

  unreachable(peer: number): void {
    if (this.#stopped) return;
    this.core.reportUnreachable(peer);
    this.#schedule();
  }

  snapshotStatus(peer: number, ok: boolean): void {
    if (this.#stopped) return;
    this.core.reportSnapshot(peer, ok);
    this.#schedule();
  }

  // -------------------------------------------------------------------------------------------
  // The loop

  #tick(): void {
    if (this.#stopped) return;
    this.core.tick();
    const now = this.#clock.now();
    this.#expire(now);
    const round = this.#readRound;
    if (round && now - round.issuedAt > this.#electionTick * this.#tickMs) {
      // No answer within an election timeout (dropped: no leader, leader changed): ask again.
      this.#readQueue = round.waiters.concat(this.#readQueue);
      this.#readRound = null;
      this.#issueRead();
    } else if (!round && this.#readQueue.length > 0) {
      this.#issueRead();
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#running || this.#stopped) return;
    if (!this.core.hasReady()) return;
    this.#running = true;
    this.#loopDone = this.#loop().finally(() => {
      this.#running = false;
    });
  }

  async #loop(): Promise<void> {
    // Let the proposals and messages of the current macrotask join this Ready.
    await Promise.resolve();
    try {
      while (!this.#stopped && this.core.hasReady()) {
        await this.#handleReady(this.core.ready());
      }
    } catch (e) {
      this.#fail(e);
      return;
    }
    if (!this.#stopped && this.core.hasReady()) queueMicrotask(() => this.#schedule());
  }

  async #handleReady(rd: Ready): Promise<void> {
    // A leader's messages (appends, heartbeats) go out before its own save, so that followers
    // write to disk while the leader does (Raft thesis 10.2.1). This is safe because the loop
    // handles one Ready at a time: a commit index counting the leader's unsaved entries can only
    // leave in a later Ready, after this save, and entries are applied (acknowledged) after it.
    // Other roles answer only after saving (votes and append responses promise durable state).
    const early = this.core.state === StateType.Leader;
    if (early && rd.messages.length > 0) this.#transport.send(rd.messages);
    if (rd.hardState || rd.entries.length > 0 || rd.snapshot) {
      await this.#persistence.save({
        hardState: rd.hardState,
        entries: rd.entries,
        snapshot: rd.snapshot,
        mustSync: rd.mustSync,
      });
      if (this.#stopped) return;
    }
    if (!early && rd.messages.length > 0) this.#transport.send(rd.messages);
    if (rd.softState) this.#onSoftState(rd.softState.lead, rd.softState.raftState);
    if (rd.snapshot) this.#restore(rd.snapshot);
    for (const e of rd.committedEntries) this.#apply(e);
    for (const rs of rd.readStates) this.#readConfirmed(rs.index, rs.requestCtx);
    this.#releaseReads();
    this.core.advance();
    if (
      this.#snapshotEntries > 0 && this.#snapshotting === null &&
      this.#applied - this.#snapshotIndex >= this.#snapshotGap
    ) {
      // In the background: saves, sends and applies go on while the snapshot is serialised and
      // written (the state machine captures its state synchronously, at this index).
      this.#snapshotting = this.#takeSnapshot().catch((e) => this.#fail(e)).finally(() => {
        this.#snapshotting = null;
      });
    }
  }

  #onSoftState(lead: number, state: StateType): void {
    if (lead !== this.#lead) {
      this.#lead = lead;
      for (let i = this.#transfers.length - 1; i >= 0; i--) {
        const t = this.#transfers[i];
        if (t.to === lead) {
          this.#transfers.splice(i, 1);
          t.waiter.cleanup?.();
          t.waiter.resolve();
        }
      }
    }
    this.#sm.onLeaderChange?.(lead, state === StateType.Leader, this.core.term);
  }

  #restore(snap: Snapshot): void {
    if (snap.metadata.index <= this.#applied) return;
    this.#sm.restore(snap);
    this.#applied = snap.metadata.index;
    this.#snapshotIndex = snap.metadata.index;
    this.#conf = cloneConf(snap.metadata.confState);
  }

  #apply(e: Entry): void {
    if (e.index <= this.#applied) return;
    if (e.index !== this.#applied + 1) {
      throw new RaftError(`raft node ${this.id}: apply gap: ${e.index} after ${this.#applied}`);
    }
    this.#applied = e.index;
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      this.#conf = this.core.applyConfChange(cc);
      this.#sm.onConfChange?.(cc, cloneConf(this.#conf), e.index);
      const key = `${cc.type}:${cc.nodeId}`;
      const w = this.#confWaiters.get(key);
      if (w) {
        this.#confWaiters.delete(key);
        w.cleanup?.();
        w.resolve(cloneConf(this.#conf));
      }
      return;
    }
    if (e.data.length === 0) return; // a new leader's no-op
    const p = decodeProposal(e.data);
    const result = this.#sm.apply(p.payload, e.index);
    if (p.proposer !== this.id || p.incarnation !== this.#incarnation) return;
    const w = this.#proposals.get(p.seq);
    if (!w) return;
    this.#proposals.delete(p.seq);
    w.cleanup?.();
    w.resolve(result);
  }

  /**
   * `snapshotEntries` plus up to a quarter more, drawn per snapshot: members apply the same
   * entries at about the same time, and without jitter they would all encode a snapshot at once.
   */
  #nextSnapshotGap(): number {
    return this.#snapshotEntries + this.#rand.nextInt(Math.floor(this.#snapshotEntries / 4) + 1);
  }

  async #takeSnapshot(): Promise<void> {
    this.#snapshotGap = this.#nextSnapshotGap();
    const index = this.#applied;
    const conf = cloneConf(this.#conf);
    const data = await this.#sm.snapshot();
    if (this.#stopped) return;
    const storage = this.#persistence.storage;
    if (index <= storage.snapshot().metadata.index) return;
    const snap = storage.createSnapshot(index, conf, data);
    await this.#persistence.compact(snap);
    this.#snapshotIndex = Math.max(this.#snapshotIndex, index);
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  #issueRead(): void {
    if (this.#readQueue.length === 0) return;
    const key = `${this.id}:${this.#incarnation}:${++this.#readSeq}`;
    const ctx = te.encode(key);
    this.#readRound = {
      ctx,
      key,
      waiters: this.#readQueue,
      issuedAt: this.#clock.now(),
    };
    this.#readQueue = [];
    this.core.readIndex(ctx);
  }

  #readConfirmed(index: number, ctx: Uint8Array): void {
    const round = this.#readRound;
    if (!round || !bytesEqual(round.ctx, ctx)) return; // an older, retried round
    this.#readRound = null;
    if (round.waiters.length > 0) this.#readsConfirmed.push({ index, waiters: round.waiters });
    if (this.#readQueue.length > 0) this.#issueRead();
  }

  #releaseReads(): void {
    if (this.#readsConfirmed.length === 0) return;
    let n = 0;
    for (const r of this.#readsConfirmed) {
      if (r.index > this.#applied) break;
      n++;
      for (const w of r.waiters) {
        w.cleanup?.();
        w.resolve();
      }
    }
    if (n > 0) this.#readsConfirmed.splice(0, n);
  }

  #removeRead(w: Waiter<void>): void {
    const drop = (list: Waiter<void>[]) => {
      const i = list.indexOf(w);
      if (i >= 0) list.splice(i, 1);
    };
    drop(this.#readQueue);
    if (this.#readRound) drop(this.#readRound.waiters);
    for (const r of this.#readsConfirmed) drop(r.waiters);
  }

  // -------------------------------------------------------------------------------------------
  // Waiters, deadlines, failure

  #refuse(): Error | null {
    if (this.#fatal !== undefined) {
      return new NodeStoppedError(`raft node failed: ${String(this.#fatal)}`);
    }
    if (this.#stopped) return new NodeStoppedError();
    return null;
  }

  #waiter<T>(
    resolve: (v: T) => void,
    reject: (e: unknown) => void,
    options: RequestOptions,
    defaultTimeoutMs: number,
    what: string,
    remove: () => void,
  ): Waiter<T> | null {
    const signal = options.signal;
    if (signal?.aborted) {
      reject(signal.reason);
      return null;
    }
    const w: Waiter<T> = {
      resolve,
      reject,
      deadline: this.#clock.now() + (options.timeoutMs ?? defaultTimeoutMs),
      what,
      remove,
    };
    if (signal) {
      const onAbort = () => {
        remove();
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      w.cleanup = () => signal.removeEventListener("abort", onAbort);
    }
    return w;
  }

  #expire(now: number): void {
    const expire = <T>(w: Waiter<T>) => {
      if (w.deadline > now) return;
      w.remove();
      w.cleanup?.();
      w.reject(new RaftTimeoutError(w.what));
    };
    for (const w of [...this.#proposals.values()]) expire(w);
    for (const w of [...this.#confWaiters.values()]) expire(w);
    for (const t of [...this.#transfers]) expire(t.waiter);
    const reads = [...this.#readQueue, ...(this.#readRound?.waiters ?? [])];
    for (const r of this.#readsConfirmed) reads.push(...r.waiters);
    for (const w of reads) expire(w);
  }

  #rejectAll(err: Error): void {
    const all: Waiter<unknown>[] = [
      ...this.#proposals.values(),
      ...this.#confWaiters.values(),
      ...this.#transfers.map((t) => t.waiter),
      ...this.#readQueue,
      ...(this.#readRound?.waiters ?? []),
    ] as Waiter<unknown>[];
    for (const r of this.#readsConfirmed) all.push(...r.waiters);
    this.#proposals.clear();
    this.#confWaiters.clear();
    this.#transfers.length = 0;
    this.#readQueue = [];
    this.#readRound = null;
    this.#readsConfirmed = [];
    for (const w of all) {
      w.cleanup?.();
      w.reject(err);
    }
  }

  #fail(e: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = e;
    this.#log.error(`raft node ${this.id} stopped on a fatal error: ${(e as Error)?.stack ?? e}`);
    this.#stopped = true;
    this.#stopTicker?.();
    this.#stopTicker = null;
    this.#rejectAll(new NodeStoppedError(`raft node failed: ${String(e)}`));
    this.#onFatal?.(e);
  }
}

function cloneConf(c: ConfState): ConfState {
  return { voters: [...c.voters], learners: [...c.learners] };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
