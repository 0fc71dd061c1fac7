/**
 * Watches: each HTTP watch stream holds any number of watchers; the hub receives the events of
 * every applied revision from the store and hands each watcher the events in its range, one
 * response per revision (all events of a txn together), in revision order per stream.
 *
 * @module
 */

import type { MvccStore } from "../mvcc/store.ts";
import { EtcdError, type WatchEvent } from "../mvcc/types.ts";

/** A watcher's definition (from a create_request). */
export interface WatchSpec {
  key: string;
  rangeEnd?: string;
  startRevision: number;
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
  progressNotify: boolean;
  /** Split responses larger than the request size limit into fragments. */
  fragment: boolean;
  /** Requested id (0: assign one). */
  watchId: number;
}

/** What a stream sends (encoded to JSON by the app). */
export type WatchMessage =
  | { kind: "created"; watchId: number; revision: number }
  | {
    kind: "canceled";
    watchId: number;
    revision: number;
    compactRevision?: number;
    reason?: string;
  }
  | {
    kind: "events";
    watchId: number;
    revision: number;
    events: WatchEvent[];
    prevKv: boolean;
    fragment: boolean;
  }
  | { kind: "progress"; watchId: number; revision: number };

interface Watcher {
  id: number;
  stream: WatchStream;
  spec: WatchSpec;
  /** Sent something since the last progress tick (then no progress notification is due). */
  busy: boolean;
}

/** Dispatches store events to watchers. */
export class WatchHub {
  readonly #watchers = new Set<Watcher>();
  #progressTimer: ReturnType<typeof setInterval> | undefined;
  constructor(readonly store: MvccStore) {
    store.onEvents((rev, events) => this.#dispatch(rev, events));
  }

  /**
   * Every `intervalMs`, watchers created with `progress_notify` that were sent nothing since the
   * previous tick get an empty response with the current revision (etcd: every 10 minutes).
   */
  startProgressNotify(intervalMs: number): void {
    clearInterval(this.#progressTimer);
    this.#progressTimer = setInterval(() => this.progressTick(), intervalMs);
  }

  /** One progress round (the timer's body; tests call it directly). */
  progressTick(): void {
    for (const w of this.#watchers) {
      if (w.spec.progressNotify && !w.busy) {
        w.stream.send({ kind: "progress", watchId: w.id, revision: this.store.revision });
      }
      w.busy = false;
    }
  }

  /** Stops the progress timer. */
  close(): void {
    clearInterval(this.#progressTimer);
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Opens a stream; `send` receives its messages in order. */
  open(send: (m: WatchMessage) => void): WatchStream {
    return new WatchStream(this, send);
  }

  /** @internal */
  add(w: Watcher): void {
    this.#watchers.add(w);
  }

  /** @internal */
  remove(w: Watcher): void {
    this.#watchers.delete(w);
  }

  #dispatch(rev: number, events: WatchEvent[]): void {
    for (const w of this.#watchers) {
      const mine = filterEvents(w.spec, events);
      if (mine.length > 0) {
        w.busy = true;
        w.stream.send({
          kind: "events",
          watchId: w.id,
          revision: rev,
          events: mine,
          prevKv: w.spec.prevKv,
          fragment: w.spec.fragment,
        });
      }
    }
  }
}

function inRange(spec: WatchSpec, key: string): boolean {
  const end = spec.rangeEnd;
  if (end === undefined || end === "") return key === spec.key;
  if (end === "\0") return key >= spec.key;
  return key >= spec.key && key < end;
}

function filterEvents(spec: WatchSpec, events: WatchEvent[]): WatchEvent[] {
  const out: WatchEvent[] = [];
  for (const e of events) {
    if (!inRange(spec, e.kv.key)) continue;
    if (e.type === "PUT" ? spec.noPut : spec.noDelete) continue;
    out.push(e);
  }
  return out;
}

/** The watchers of one client stream. */
export class WatchStream {
  readonly #watchers = new Map<number, Watcher>();
  #nextId = 0;
  #closed = false;

  constructor(private readonly hub: WatchHub, readonly send: (m: WatchMessage) => void) {}

  /** Creates a watcher, replaying history from `startRevision` first when it is in the past. */
  create(spec: WatchSpec): void {
    if (this.#closed) return;
    const store = this.hub.store;
    let id = spec.watchId;
    if (id > 0 && this.#watchers.has(id)) {
      this.send({
        kind: "canceled",
        watchId: id,
        revision: store.revision,
        reason: "etcdserver: duplicate watch ID",
      });
      return;
    }
    if (id <= 0) {
      while (this.#watchers.has(this.#nextId)) this.#nextId++;
      id = this.#nextId++;
    }
    const w: Watcher = { id, stream: this, spec, busy: true };
    this.send({ kind: "created", watchId: id, revision: store.revision });
    if (spec.startRevision > 0 && spec.startRevision <= store.revision) {
      let history: WatchEvent[];
      try {
        history = store.eventsSince(spec.key, spec.rangeEnd, spec.startRevision);
      } catch (e) {
        if (!(e instanceof EtcdError)) throw e;
        this.send({
          kind: "canceled",
          watchId: id,
          revision: 0,
          compactRevision: store.compactRevision,
        });
        return;
      }
      const mine = filterEvents(spec, history);
      if (mine.length > 0) {
        this.send({
          kind: "events",
          watchId: id,
          revision: store.revision,
          events: mine,
          prevKv: spec.prevKv,
          fragment: spec.fragment,
        });
      }
    }
    // Synchronous from the replay to here: no revision can slip between history and live events.
    this.#watchers.set(id, w);
    this.hub.add(w);
  }

  cancel(id: number): void {
    const w = this.#watchers.get(id);
    if (!w) return;
    this.#watchers.delete(id);
    this.hub.remove(w);
    this.send({ kind: "canceled", watchId: id, revision: this.hub.store.revision });
  }

  progress(): void {
    this.send({ kind: "progress", watchId: -1, revision: this.hub.store.revision });
  }

  /** Cancels every watcher of the stream with `reason` (a client too slow to read, ...). */
  cancelAll(reason: string): void {
    for (const w of [...this.#watchers.values()]) {
      this.#watchers.delete(w.id);
      this.hub.remove(w);
      this.send({ kind: "canceled", watchId: w.id, revision: this.hub.store.revision, reason });
    }
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers.values()) this.hub.remove(w);
    this.#watchers.clear();
  }
}
