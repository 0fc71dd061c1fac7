/**
 * Deterministic in-process test network: drives a cluster of RaftCore nodes, each with a MemoryStorage and a tiny replicated state
 * machine, with message filters (drop, cut, isolate, ignore) and two delivery modes:
 *
 * - `send(...)`: synchronous, FIFO, delivers until no message is left (scenario tests);
 * - `enqueue(...)` + `deliver(i)` / `dropAt(i)`: messages stay in flight so a randomized test
 *   can reorder, drop and duplicate them.
 *
 * Every node processes its Ready right after each tick/step/propose the way a real driver
 * would: persist snapshot/entries/hardState, then hand out messages, then apply committed
 * entries (including conf changes), then advance.
 *
 * @module
 */

import { decodeConfChange, decodeMessage, encodeMessage } from "../codec.ts";
import { bootstrap } from "../membership.ts";
import { RaftCore } from "../raft.ts";
import { MemoryStorage } from "../storage.ts";
import {
  type Config,
  type ConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  ProposalDroppedError,
  type ReadState,
  type Ready,
  type Snapshot,
  StateType,
} from "../types.ts";
import { SeededRand } from "./rand.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export function bytes(s: string): Uint8Array {
  return enc.encode(s);
}

export function text(b: Uint8Array): string {
  return dec.decode(b);
}

/** FNV-1a over a running hash and some bytes/numbers. */
export function fnv(h: number, data: Uint8Array): number {
  for (let i = 0; i < data.length; i++) {
    h ^= data[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function fnvNum(h: number, n: number): number {
  h ^= n & 0xffff;
  h = Math.imul(h, 0x01000193) >>> 0;
  h ^= Math.floor(n / 65536) & 0xffff;
  return Math.imul(h, 0x01000193) >>> 0;
}

/** Observer hooks (used by the invariant checker). */
export interface ClusterObserver {
  /** Entries were persisted by `node` (after its storage append). */
  onPersist?(node: TestNode, entries: Entry[]): void;
  /** `node` applied `entry`; `hash` is its state-machine hash after applying it. */
  onApply?(node: TestNode, entry: Entry, hash: number): void;
  /** `node` restored its state machine from `snap`. */
  onSnapshot?(node: TestNode, snap: Snapshot, hash: number): void;
  /** `node` finished processing (called after each tick/step and Ready cycle). */
  afterProcess?(node: TestNode): void;
}

export type NodeOptions = Partial<Omit<Config, "id" | "storage" | "rand">>;

/** State machine snapshot format of the test application (JSON). */
interface SmSnapshot {
  hash: number;
  items: string[];
}

/** A RaftCore plus storage and a replicated state machine (list of applied payloads). */
export class TestNode {
  raw!: RaftCore;
  /** Payloads of applied normal (non-empty) entries, in log order. */
  items: string[] = [];
  /** Running hash of everything applied (index, term, type, data). */
  hash = 0x811c9dc5;
  appliedIndex = 0;
  confState: ConfState;
  readStates: ReadState[] = [];
  /** Every Ready this node produced (only kept when `recordReadies`). */
  readies: Ready[] = [];
  recordReadies = false;
  /** Whether the node is stopped (crashed): it ignores ticks and messages. */
  down = false;

  constructor(
    readonly id: number,
    readonly storage: MemoryStorage,
    readonly options: NodeOptions,
    readonly rand: SeededRand,
    public observer?: ClusterObserver,
  ) {
    this.confState = storage.initialState().confState;
    this.start();
  }

  private start(): void {
    // Recover the state machine from the stored snapshot; raft replays the rest.
    const snap = this.storage.snapshot();
    this.restoreStateMachine(snap);
    this.raw = new RaftCore({
      electionTick: 10,
      heartbeatTick: 1,
      maxSizePerMsg: 1024 * 1024,
      maxInflightMsgs: 256,
      ...this.options,
      id: this.id,
      storage: this.storage,
      rand: this.rand,
      applied: snap.metadata.index,
    });
  }

  private restoreStateMachine(snap: Snapshot): void {
    if (snap.metadata.index === 0) {
      this.items = [];
      this.hash = 0x811c9dc5;
      this.appliedIndex = 0;
      this.confState = this.storage.initialState().confState;
      return;
    }
    const sm = JSON.parse(text(snap.data)) as SmSnapshot;
    this.items = [...sm.items];
    this.hash = sm.hash;
    this.appliedIndex = snap.metadata.index;
    this.confState = {
      voters: [...snap.metadata.confState.voters],
      learners: [...snap.metadata.confState.learners],
    };
  }

  /** Simulates a crash and restart: volatile state is lost, storage survives. */
  restart(): void {
    this.readStates = [];
    this.down = false;
    this.start();
  }

  get state(): StateType {
    return this.raw.state;
  }

  get term(): number {
    return this.raw.term;
  }

  /** Processes Readies until there is nothing left; returns the messages to send. */
  process(): Message[] {
    const out: Message[] = [];
    while (this.raw.hasReady()) {
      const rd = this.raw.ready();
      if (this.recordReadies) this.readies.push(rd);
      // 1. Persist.
      if (rd.snapshot) this.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) {
        this.storage.append(rd.entries);
        this.observer?.onPersist?.(this, rd.entries);
      }
      if (rd.hardState) this.storage.setHardState(rd.hardState);
      // 2. Send.
      for (const m of rd.messages) out.push(m);
      // 3. Apply.
      if (rd.snapshot) {
        this.restoreStateMachine(rd.snapshot);
        this.observer?.onSnapshot?.(this, rd.snapshot, this.hash);
      }
      for (const e of rd.committedEntries) this.apply(e);
      for (const rs of rd.readStates) this.readStates.push(rs);
      // 4. Advance.
      this.raw.advance();
    }
    this.observer?.afterProcess?.(this);
    return out;
  }

  private apply(e: Entry): void {
    if (e.index !== this.appliedIndex + 1) {
      throw new Error(`node ${this.id}: applying ${e.index} after ${this.appliedIndex}`);
    }
    this.appliedIndex = e.index;
    this.hash = fnvNum(fnvNum(this.hash, e.index), e.term);
    this.hash = fnv(fnvNum(this.hash, e.type), e.data);
    if (e.type === EntryType.ConfChange) {
      this.confState = this.raw.applyConfChange(decodeConfChange(e.data));
    } else if (e.data.length > 0) {
      this.items.push(text(e.data));
    }
    this.observer?.onApply?.(this, e, this.hash);
  }

  /**
   * Snapshots the state machine at its applied index and compacts the log up to it. Returns
   * false if there is nothing new to compact.
   */
  compact(): boolean {
    const index = this.appliedIndex;
    if (index <= this.storage.snapshot().metadata.index || index < this.storage.firstIndex()) {
      return false;
    }
    const data = bytes(JSON.stringify({ hash: this.hash, items: this.items } as SmSnapshot));
    this.storage.createSnapshot(index, this.confState, data);
    this.storage.compact(index);
    return true;
  }
}

export interface NetworkOptions {
  /** Per-node raft options (defaults: electionTick 10, heartbeatTick 1). */
  node?: NodeOptions;
  /** Options for particular nodes. */
  perNode?: Record<number, NodeOptions>;
  seed?: number;
  /** Encode+decode every delivered message with the codec (default true). */
  codecRoundTrip?: boolean;
  /** Initial learners (ids that are members but not voters). */
  learners?: number[];
  observer?: ClusterObserver;
  /**
   * How initial membership is stored: "snapshot" (ConfState of the index-0 snapshot) or
   * "log" (committed ConfChange entries written by `bootstrap()`; lets nodes added later
   * learn the full history from the log). Default "snapshot".
   */
  bootstrap?: "snapshot" | "log";
}

function key(from: number, to: number): string {
  return `${from}-${to}`;
}

export class Network {
  readonly nodes = new Map<number, TestNode>();
  readonly rand: SeededRand;
  private readonly dropRates = new Map<string, number>();
  private readonly ignored = new Set<MessageType>();
  /** Optional hook: return false to drop the message. */
  msgHook: ((m: Message) => boolean) | null = null;
  readonly codecRoundTrip: boolean;
  /** Messages in flight (for enqueue/deliver mode). */
  inFlight: Message[] = [];
  /** Count of messages delivered / dropped by filters. */
  delivered = 0;
  dropped = 0;
  private readonly options: NetworkOptions;

  /** Creates a cluster whose members are `ids` (voters) plus `options.learners`. */
  constructor(ids: number[], options: NetworkOptions = {}) {
    this.options = options;
    this.rand = new SeededRand(options.seed ?? 1);
    this.codecRoundTrip = options.codecRoundTrip ?? true;
    const learners = options.learners ?? [];
    for (const id of [...ids, ...learners]) {
      this.addNode(id, { voters: ids, learners });
    }
  }

  /**
   * Adds a node. `confState` is its initial membership; pass null for a node joining an
   * existing cluster (empty storage: it learns the membership via the log or a snapshot).
   */
  addNode(id: number, confState: ConfState | null): TestNode {
    let storage: MemoryStorage;
    if (confState === null) {
      storage = new MemoryStorage();
    } else if (this.options.bootstrap === "log") {
      storage = new MemoryStorage();
      bootstrap(storage, confState.voters, confState.learners);
    } else {
      storage = new MemoryStorage({
        voters: [...confState.voters],
        learners: [...confState.learners],
      });
    }
    const node = new TestNode(
      id,
      storage,
      { ...this.options.node, ...this.options.perNode?.[id] },
      this.rand.fork(),
      this.options.observer,
    );
    this.nodes.set(id, node);
    // Apply what is already committed in storage (e.g. bootstrap conf changes).
    this.send(...node.process());
    return node;
  }

  node(id: number): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raw(id: number): RaftCore {
    return this.node(id).raw;
  }

  // --- filters ----------------------------------------------------------------------------

  /** Drops messages from -> to with probability `perc` (0..1). */
  drop(from: number, to: number, perc: number): void {
    this.dropRates.set(key(from, to), perc);
  }

  /** Cuts the link between two nodes in both directions. */
  cut(a: number, b: number): void {
    this.drop(a, b, 2.0); // always drop
    this.drop(b, a, 2.0);
  }

  /** Cuts a node off from every other node. */
  isolate(id: number): void {
    for (const other of this.nodes.keys()) {
      if (other !== id) this.cut(id, other);
    }
  }

  /** Drops every message of this type. */
  ignore(t: MessageType): void {
    this.ignored.add(t);
  }

  /** Removes every filter. */
  recover(): void {
    this.dropRates.clear();
    this.ignored.clear();
  }

  /** Filters messages through drop/cut/ignore rules and the hook. */
  filter(msgs: Message[]): Message[] {
    const out: Message[] = [];
    for (const m of msgs) {
      if (this.ignored.has(m.type)) {
        this.lost(m);
        continue;
      }
      if (m.type === MessageType.MsgHup) throw new Error("unexpected MsgHup on the wire");
      const perc = this.dropRates.get(key(m.from, m.to)) ?? 0;
      if (perc > 0 && (perc >= 1 || this.rand.next() < perc)) {
        this.lost(m);
        continue;
      }
      if (this.msgHook && !this.msgHook(m)) {
        this.lost(m);
        continue;
      }
      out.push(m);
    }
    return out;
  }

  /**
   * A message was lost. Like a real transport, report failed snapshot sends to the sender so
   * it leaves snapshot mode and retries, and report lost appends as an unreachable peer so
   * the leader stops streaming optimistically and probes.
   */
  private lost(m: Message): void {
    this.dropped++;
    const sender = this.nodes.get(m.from);
    if (!sender || sender.down) return;
    if (m.type === MessageType.MsgSnap) sender.raw.reportSnapshot(m.to, false);
    else if (m.type === MessageType.MsgApp) sender.raw.reportUnreachable(m.to);
  }

  private wire(m: Message): Message {
    return this.codecRoundTrip ? decodeMessage(encodeMessage(m)) : m;
  }

  /** Steps one message into its recipient and returns what the recipient sends back. */
  deliverMessage(m: Message): Message[] {
    const node = this.nodes.get(m.to);
    if (!node || node.down) {
      this.lost(m);
      return [];
    }
    this.delivered++;
    node.raw.step(this.wire(m));
    if (m.type === MessageType.MsgSnap) {
      const sender = this.nodes.get(m.from);
      if (sender && !sender.down) sender.raw.reportSnapshot(m.to, true);
    }
    return node.process();
  }

  // --- synchronous mode -------------------------------------------------------------------

  /** Delivers messages (and everything they cause) until the network is quiet. */
  send(...msgs: Message[]): void {
    const queue = this.filter(msgs);
    let guard = 0;
    for (let i = 0; i < queue.length; i++) {
      if (++guard > 5_000_000) throw new Error("network.send: message storm (livelock?)");
      const out = this.deliverMessage(queue[i]);
      if (out.length > 0) { for (const m of this.filter(out)) queue.push(m); }
      if (i > 100_000) {
        queue.splice(0, i + 1);
        i = -1;
      }
    }
  }

  /** Processes pending Readies of all nodes and delivers the resulting messages. */
  stabilize(): void {
    const msgs: Message[] = [];
    for (const n of this.nodes.values()) if (!n.down) msgs.push(...n.process());
    this.send(...msgs);
  }

  tick(id: number, n = 1): void {
    for (let i = 0; i < n; i++) {
      const node = this.node(id);
      if (node.down) return;
      node.raw.tick();
      this.send(...node.process());
    }
  }

  /** Ticks every running node once per round, `rounds` times. */
  tickAll(rounds = 1): void {
    for (let r = 0; r < rounds; r++) {
      for (const id of [...this.nodes.keys()]) {
        const node = this.node(id);
        if (node.down) continue;
        node.raw.tick();
        this.send(...node.process());
      }
    }
  }

  campaign(id: number): void {
    const node = this.node(id);
    node.raw.campaign();
    this.send(...node.process());
  }

  /** Proposes at `id`; returns false if the proposal was dropped. */
  propose(id: number, data: string | Uint8Array): boolean {
    const node = this.node(id);
    try {
      node.raw.propose(typeof data === "string" ? bytes(data) : data);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return false;
      throw e;
    }
    this.send(...node.process());
    return true;
  }

  readIndex(id: number, ctx: string): void {
    const node = this.node(id);
    node.raw.readIndex(bytes(ctx));
    this.send(...node.process());
  }

  transferLeader(from: number, to: number): void {
    const node = this.node(from);
    node.raw.transferLeader(to);
    this.send(...node.process());
  }

  /** Elects `id` (campaign with synchronous delivery) and asserts it became leader. */
  elect(id: number): void {
    this.campaign(id);
    const st = this.node(id).state;
    if (st !== StateType.Leader) throw new Error(`node ${id} did not become leader (state ${st})`);
  }

  /** The leader with the highest term among running nodes, or 0. */
  leader(): number {
    let best = 0;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (!n.down && n.state === StateType.Leader && n.term > bestTerm) {
        best = n.id;
        bestTerm = n.term;
      }
    }
    return best;
  }

  // --- asynchronous mode ------------------------------------------------------------------

  /** Puts messages in flight (after filters) without delivering them. */
  enqueue(msgs: Message[]): void {
    for (const m of this.filter(msgs)) this.inFlight.push(m);
  }

  /**
   * Delivers the in-flight message at position i (0 = oldest; order is preserved); its
   * consequences are enqueued.
   */
  deliver(i: number): void {
    const m = this.inFlight.splice(i, 1)[0];
    this.enqueue(this.deliverMessage(m));
  }

  /** Delivers a copy of the in-flight message at position i, keeping the original. */
  duplicate(i: number): void {
    const m = this.inFlight[i];
    this.enqueue(this.deliverMessage(decodeMessage(encodeMessage(m))));
  }

  dropAt(i: number): void {
    const m = this.inFlight.splice(i, 1)[0];
    this.lost(m);
  }
}
