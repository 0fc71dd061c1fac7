/**
 * A simulated message network in the style of TigerBeetle's VOPR packet simulator: messages
 * are held "in flight" with a random delivery time and handed out by {@link SimNetwork.step}
 * when the caller's simulated time reaches it. Faults: latency range, loss, duplication,
 * reordering (extra random delay), partitions, isolated nodes, cut links, crashed nodes.
 *
 * All randomness comes from the injected {@link Rand}, so a seed replays a run exactly.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Rand } from "./prng.ts";

/** A node address. */
export type NodeId = string | number;

/** Fault and timing parameters; every field can be changed later with `configure`. */
export interface NetworkFaults {
  /** Delivery delay in ms, uniform in [min, max]. Default [1, 10]. */
  latencyMs?: readonly [number, number];
  /** Probability a sent message is lost. Default 0. */
  dropProbability?: number;
  /** Probability a sent message is delivered twice (each copy with its own delay). Default 0. */
  duplicateProbability?: number;
  /** Probability a message gets an extra random delay in [0, reorderDelayMs]. Default 0. */
  reorderProbability?: number;
  /** Upper bound of the extra reorder delay in ms. Default 100. */
  reorderDelayMs?: number;
  /**
   * Per-link FIFO (one TCP connection per ordered pair): a message is never delivered before an
   * earlier message on the same link. Latency still varies; duplicates still happen if enabled.
   * Default false (datagram semantics: any order).
   */
  fifo?: boolean;
}

/** Options for {@link SimNetwork}. */
export interface NetworkOptions extends NetworkFaults {
  /** Source of all randomness. */
  rand: Rand;
  /**
   * Where `send` reads the current time. Without a clock, the network's time is the last
   * `nowMs` passed to `step` (starting at 0).
   */
  clock?: Clock;
}

/** A message in flight or delivered. */
export interface Envelope<M, N extends NodeId = NodeId> {
  /** Unique per network, increasing in send order (copies of a duplicate share none). */
  readonly id: number;
  readonly from: N;
  readonly to: N;
  readonly msg: M;
  readonly sentAt: number;
  readonly deliverAt: number;
  /** True for the extra copy made by duplication. */
  readonly duplicate: boolean;
}

/** Counters since construction. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  /** Lost at random. */
  dropped: number;
  /** Lost because of a partition, an isolated node or a cut link (at send or delivery). */
  blocked: number;
  /** Lost because the sender or receiver was down (at send, crash, or delivery). */
  crashed: number;
  /** Removed by the user filter. */
  filtered: number;
  duplicated: number;
}

/** Why a message given to `send` was not put in flight, or "sent". */
export type SendOutcome = "sent" | "dropped" | "blocked" | "crashed" | "filtered";

class Heap<T> {
  #items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const a = this.#items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): T | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      this.#siftDown(0);
    }
    return top;
  }

  /** Keeps only items matching `keep`; returns how many were removed. */
  retain(keep: (item: T) => boolean): number {
    const before = this.#items.length;
    this.#items = this.#items.filter(keep);
    for (let i = (this.#items.length >> 1) - 1; i >= 0; i--) this.#siftDown(i);
    return before - this.#items.length;
  }

  values(): readonly T[] {
    return this.#items;
  }

  #siftDown(i: number): void {
    const a = this.#items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.less(a[l], a[m])) m = l;
      if (r < a.length && this.less(a[r], a[m])) m = r;
      if (m === i) return;
      [a[i], a[m]] = [a[m], a[i]];
      i = m;
    }
  }
}

/**
 * A simulated network carrying messages of type `M` between nodes named `N`.
 *
 * Drive it from the simulation loop:
 *
 * ```ts
 * const net = new SimNetwork<Msg, number>({ rand: new Prng(seed), latencyMs: [1, 20], dropProbability: 0.05 });
 * net.send(1, 2, msg);
 * for (const env of net.step(clock.advance(1))) nodes.get(env.to)!.receive(env.from, env.msg);
 * ```
 *
 * Link rules: a message is lost if, when sent or when due, its link is cut (by `partition`,
 * `isolate` or `cut`) or an endpoint is crashed. `crash(node)` also discards everything in
 * flight to or from the node at once. `heal()` removes partitions, isolations and cuts, but
 * does not restart crashed nodes (use `restart`).
 */
export class SimNetwork<M, N extends NodeId = NodeId> {
  readonly #rand: Rand;
  readonly #clock: Clock | undefined;
  #now = 0;
  #nextId = 1;
  #latency: readonly [number, number] = [1, 10];
  #drop = 0;
  #dup = 0;
  #reorderP = 0;
  #reorderDelay = 100;
  #fifo = false;
  readonly #queue = new Heap<Envelope<M, N>>((a, b) =>
    a.deliverAt < b.deliverAt || (a.deliverAt === b.deliverAt && a.id < b.id)
  );
  /** Per-link latest scheduled delivery time, for FIFO links. */
  readonly #linkTail = new Map<N, Map<N, number>>();
  readonly #cut = new Map<N, Set<N>>();
  readonly #isolated = new Set<N>();
  readonly #down = new Set<N>();
  #filter: ((env: Envelope<M, N>) => boolean) | null = null;
  readonly #stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    blocked: 0,
    crashed: 0,
    filtered: 0,
    duplicated: 0,
  };

  constructor(options: NetworkOptions) {
    this.#rand = options.rand;
    this.#clock = options.clock;
    this.configure(options);
  }

  /** Changes fault parameters (fields left out keep their value). */
  configure(faults: NetworkFaults): void {
    if (faults.latencyMs !== undefined) {
      const [lo, hi] = faults.latencyMs;
      if (!(lo >= 0 && hi >= lo)) throw new RangeError(`bad latencyMs [${lo}, ${hi}]`);
      this.#latency = [lo, hi];
    }
    const prob = (name: string, p: number | undefined, cur: number) => {
      if (p === undefined) return cur;
      if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${p}`);
      return p;
    };
    this.#drop = prob("dropProbability", faults.dropProbability, this.#drop);
    this.#dup = prob("duplicateProbability", faults.duplicateProbability, this.#dup);
    this.#reorderP = prob("reorderProbability", faults.reorderProbability, this.#reorderP);
    if (faults.reorderDelayMs !== undefined) {
      if (!(faults.reorderDelayMs >= 0)) throw new RangeError("reorderDelayMs must be >= 0");
      this.#reorderDelay = faults.reorderDelayMs;
    }
    if (faults.fifo !== undefined) this.#fifo = faults.fifo;
  }

  /** The network's notion of the current time. */
  now(): number {
    return this.#clock !== undefined ? this.#clock.now() : this.#now;
  }

  /**
   * A user filter run on each message when sent: return false to drop it (etcd-style "drop all
   * MsgApp from 1 to 2"). `null` removes the filter.
   */
  setFilter(filter: ((env: Envelope<M, N>) => boolean) | null): void {
    this.#filter = filter;
  }

  /** Puts a message in flight (or loses it); returns what happened. */
  send(from: N, to: N, msg: M): SendOutcome {
    this.#stats.sent++;
    const now = this.now();
    if (this.#down.has(from) || this.#down.has(to)) {
      this.#stats.crashed++;
      return "crashed";
    }
    if (this.isBlocked(from, to)) {
      this.#stats.blocked++;
      return "blocked";
    }
    const env = this.#envelope(from, to, msg, now, false);
    if (this.#filter !== null && !this.#filter(env)) {
      this.#stats.filtered++;
      return "filtered";
    }
    if (this.#rand.next() < this.#drop) {
      this.#stats.dropped++;
      return "dropped";
    }
    this.#queue.push(env);
    if (this.#dup > 0 && this.#rand.next() < this.#dup) {
      this.#stats.duplicated++;
      this.#queue.push(this.#envelope(from, to, msg, now, true));
    }
    return "sent";
  }

  #envelope(from: N, to: N, msg: M, now: number, duplicate: boolean): Envelope<M, N> {
    const [lo, hi] = this.#latency;
    let delay = lo === hi ? lo : lo + this.#rand.next() * (hi - lo);
    if (this.#reorderP > 0 && this.#rand.next() < this.#reorderP) {
      delay += this.#rand.next() * this.#reorderDelay;
    }
    let deliverAt = now + delay;
    if (this.#fifo) {
      let tails = this.#linkTail.get(from);
      if (tails === undefined) this.#linkTail.set(from, tails = new Map());
      const tail = tails.get(to) ?? -Infinity;
      if (deliverAt < tail) deliverAt = tail;
      tails.set(to, deliverAt);
    }
    return { id: this.#nextId++, from, to, msg, sentAt: now, deliverAt, duplicate };
  }

  /**
   * Advances the network to `nowMs` (default: the clock's time) and returns every message due
   * by then, in delivery order (time, then send order). Messages whose link was cut or whose
   * endpoint crashed while in flight are discarded instead.
   */
  step(nowMs?: number): Envelope<M, N>[] {
    const now = nowMs ?? this.now();
    if (now > this.#now) this.#now = now;
    const out: Envelope<M, N>[] = [];
    for (;;) {
      const head = this.#queue.peek();
      if (head === undefined || head.deliverAt > now) break;
      this.#queue.pop();
      if (this.#lost(head)) continue;
      this.#stats.delivered++;
      out.push(head);
    }
    return out;
  }

  /** Counts and reports a due message lost to a crash or a cut link. */
  #lost(env: Envelope<M, N>): boolean {
    if (this.#down.has(env.to) || this.#down.has(env.from)) {
      this.#stats.crashed++;
      return true;
    }
    if (this.isBlocked(env.from, env.to)) {
      this.#stats.blocked++;
      return true;
    }
    return false;
  }

  /** Alias of {@link SimNetwork.step}. */
  deliver(nowMs?: number): Envelope<M, N>[] {
    return this.step(nowMs);
  }

  /**
   * Pops the single next message regardless of its time (event-driven simulations that jump
   * the clock to `deliverAt`), or undefined when nothing is in flight. Lost messages are skipped.
   */
  popNext(): Envelope<M, N> | undefined {
    for (;;) {
      const head = this.#queue.pop();
      if (head === undefined) return undefined;
      if (head.deliverAt > this.#now) this.#now = head.deliverAt;
      if (this.#lost(head)) continue;
      this.#stats.delivered++;
      return head;
    }
  }

  /** Delivery time of the earliest message in flight. */
  nextDeliveryAt(): number | undefined {
    return this.#queue.peek()?.deliverAt;
  }

  /** Number of messages in flight. */
  inFlight(): number {
    return this.#queue.size;
  }

  /** Snapshot of the messages in flight (unordered). */
  pending(): readonly Envelope<M, N>[] {
    return [...this.#queue.values()];
  }

  /** Drops every message in flight. */
  clear(): void {
    this.#queue.retain(() => false);
  }

  /** True if messages from `from` to `to` are currently lost by a partition/isolation/cut. */
  isBlocked(from: N, to: N): boolean {
    if (from === to) return false;
    if (this.#isolated.has(from) || this.#isolated.has(to)) return true;
    return this.#cut.get(from)?.has(to) ?? false;
  }

  /** Cuts the link from `from` to `to` (one direction). */
  cut(from: N, to: N): void {
    let s = this.#cut.get(from);
    if (s === undefined) this.#cut.set(from, s = new Set());
    s.add(to);
  }

  /** Restores one direction cut by `cut` or `partition` (not an isolation). */
  uncut(from: N, to: N): void {
    this.#cut.get(from)?.delete(to);
  }

  /** Cuts every link between a node of `groupA` and a node of `groupB`, both directions. */
  partition(groupA: readonly N[], groupB: readonly N[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) continue;
        this.cut(a, b);
        this.cut(b, a);
      }
    }
  }

  /** Cuts a node off from every other node (including ones that appear later). */
  isolate(node: N): void {
    this.#isolated.add(node);
  }

  /** Removes all partitions, isolations and cuts. Crashed nodes stay down. */
  heal(): void {
    this.#cut.clear();
    this.#isolated.clear();
  }

  /** Marks a node down and discards everything in flight to or from it. */
  crash(node: N): void {
    this.#down.add(node);
    this.#stats.crashed += this.#queue.retain((e) => e.from !== node && e.to !== node);
    this.#linkTail.delete(node);
    for (const tails of this.#linkTail.values()) tails.delete(node);
  }

  /** Brings a crashed node back (with no messages in flight). */
  restart(node: N): void {
    this.#down.delete(node);
  }

  isDown(node: N): boolean {
    return this.#down.has(node);
  }

  stats(): Readonly<NetworkStats> {
    return { ...this.#stats };
  }
}
