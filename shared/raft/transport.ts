/**
 * How Raft messages travel between nodes: the {@link RaftTransport} interface a `RaftNode` sends
 * through, the {@link TransportHandler} it receives with, and {@link LocalNetwork}, an in-process
 * network for tests and embedded clusters with fault injection (drop, partition, isolate). The
 * HTTP implementation is `http_transport.ts`.
 *
 * Contract: `send` never blocks and never throws; a message may be lost, duplicated or delayed
 * (Raft copes), but each failure to deliver is reported through `unreachable`, and each snapshot
 * (`MsgSnap`) send ends with exactly one `snapshotStatus` so that the leader resumes replication.
 *
 * @module
 */

import { type Message, MessageType } from "./types.ts";
import type { Rand } from "./types.ts";

/** Receives messages and delivery reports (implemented by `RaftNode`). */
export interface TransportHandler {
  receive(m: Message): void;
  /** A message to `peer` could not be delivered. */
  unreachable(peer: number): void;
  /** A snapshot send to `peer` finished (`ok`) or failed. */
  snapshotStatus(peer: number, ok: boolean): void;
}

/** Moves messages between nodes. */
export interface RaftTransport {
  /** Starts delivering incoming messages to `handler`. */
  start(handler: TransportHandler): void;
  /** Hands messages over for delivery (never blocks, never throws). */
  send(messages: readonly Message[]): void;
  /** Adds or updates the address of a peer. */
  addPeer(id: number, address: string): void;
  removePeer(id: number): void;
  close(): Promise<void>;
}

/** True for a message that carries a snapshot (transports send these separately). */
export function isSnapshotMessage(m: Message): boolean {
  return m.type === MessageType.MsgSnap;
}

/** Faults of a {@link LocalNetwork}. */
export interface LocalNetworkOptions {
  /** Probability of dropping each message (needs `rand`). */
  dropProbability?: number;
  rand?: Rand;
}

/**
 * An in-process network: each node gets a transport from `transport(id)`; messages are delivered
 * asynchronously (next macrotask, in order per link) unless the link is cut or the message is
 * dropped. Cut links and drops are reported as unreachable, like a failed connection.
 */
export class LocalNetwork {
  readonly #handlers = new Map<number, TransportHandler>();
  readonly #cut = new Set<string>();
  #dropProbability: number;
  readonly #rand?: Rand;
  #queue: { from: number; m: Message }[] = [];
  #flushScheduled = false;
  delivered = 0;
  dropped = 0;

  constructor(options: LocalNetworkOptions = {}) {
    this.#dropProbability = options.dropProbability ?? 0;
    this.#rand = options.rand;
    if (this.#dropProbability > 0 && !this.#rand) {
      throw new RangeError("LocalNetwork: dropProbability needs rand");
    }
  }

  transport(id: number): RaftTransport {
    return new LocalTransport(this, id);
  }

  /** Cuts the links between every node of `a` and every node of `b` (both directions). */
  partition(a: readonly number[], b: readonly number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.#cut.add(`${x}>${y}`);
        this.#cut.add(`${y}>${x}`);
      }
    }
  }

  /** Cuts `id` off from every other node. */
  isolate(id: number): void {
    const others = [...this.#handlers.keys()].filter((x) => x !== id);
    this.partition([id], others);
  }

  heal(): void {
    this.#cut.clear();
  }

  setDropProbability(p: number): void {
    this.#dropProbability = p;
  }

  /** @internal */
  attach(id: number, h: TransportHandler | null): void {
    if (h) this.#handlers.set(id, h);
    else this.#handlers.delete(id);
  }

  /** @internal */
  enqueue(from: number, messages: readonly Message[]): void {
    for (const m of messages) this.#queue.push({ from, m });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setTimeout(() => this.#flush(), 0);
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    const q = this.#queue;
    this.#queue = [];
    for (const { from, m } of q) {
      const sender = this.#handlers.get(from);
      const target = this.#handlers.get(m.to);
      const lost = !target || this.#cut.has(`${from}>${m.to}`) ||
        (this.#dropProbability > 0 && this.#rand!.next() < this.#dropProbability);
      if (lost) {
        this.dropped++;
        if (sender) {
          if (isSnapshotMessage(m)) sender.snapshotStatus(m.to, false);
          else sender.unreachable(m.to);
        }
        continue;
      }
      this.delivered++;
      target.receive(m);
      if (isSnapshotMessage(m) && sender) sender.snapshotStatus(m.to, true);
    }
  }
}

class LocalTransport implements RaftTransport {
  #closed = false;
  constructor(private readonly net: LocalNetwork, private readonly id: number) {}

  start(handler: TransportHandler): void {
    this.net.attach(this.id, handler);
  }

  send(messages: readonly Message[]): void {
    if (this.#closed || messages.length === 0) return;
    this.net.enqueue(this.id, messages);
  }

  addPeer(): void {}
  removePeer(): void {}

  close(): Promise<void> {
    this.#closed = true;
    this.net.attach(this.id, null);
    return Promise.resolve();
  }
}
