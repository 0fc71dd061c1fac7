/**
 * From publisher messages to the index: frame checks, sequence tracking, gap repair through the
 * publisher's replay socket, decoding, and counters. Transport-free: the ZMQ wiring (main.ts,
 * zmq_source.ts) and the HTTP route call in here, and tests drive it with plain frames.
 *
 * Sequences, per publisher connection (vLLM numbers its batches from 0 per engine start):
 * - `seq = last + 1`: applied.
 * - `seq > last + 1`: a gap (the publisher's high-water mark dropped messages). With a replay
 *   endpoint, live messages are held (copied, up to a bound) while `[seq_from]` is asked of the
 *   replay socket; replayed messages in the gap are applied in order; at the end marker (seq -1),
 *   or when the replay has reached the held messages, those are applied and live traffic resumes.
 *   A replay that cannot fill the gap (the buffer no longer has it, a timeout, too much held)
 *   leaves the gap unrepaired: counted and logged, the pod's other entries kept.
 * - `seq <= last`: the engine restarted (its numbering began again): the pod's blocks are
 *   dropped, then the message is applied.
 * - The first message from a publisher with `seq > 0`: what it published before is asked of the
 *   replay socket the same way (a catch-up, not counted as a gap: its buffer may no longer hold
 *   the start).
 * - A reconnection keeps the sequence: what was published meanwhile is a gap, repaired.
 *
 * @module
 */
import { EventDecodeError, type KvEventBatch } from "./events.ts";
import { eventsToBatch, ParsedBatch, readEventBatch } from "./fast_events.ts";
import { MsgpackError } from "./msgpack.ts";
import { type CacheMap, PodLimitError } from "./store.ts";

/** Counters of the ingest path (exported as metrics, shown by /stats). */
export class IngestStats {
  messages = 0;
  bytes = 0;
  batches = 0;
  blocksStored = 0;
  blocksRemoved = 0;
  cleared = 0;
  /** Payloads that were not a batch. */
  decodeErrors = 0;
  /** Events skipped inside good batches. */
  rejectedEvents = 0;
  /** Messages with the wrong frame count or sequence frame. */
  badFrames = 0;
  /** Batches refused because MAX_PODS pods are known. */
  podLimit = 0;
  /** New blocks not indexed: the index held MAX_INDEX_BLOCKS, or their segment was full. */
  indexFull = 0;
  gaps = 0;
  gapsRepaired = 0;
  gapsUnrepaired = 0;
  /** Messages a gap skipped, and how many the replays brought back. */
  missedMessages = 0;
  replays = 0;
  /** Replays asked on the first message of a publisher (history from before we listened). */
  catchups = 0;
  replayedMessages = 0;
  restarts = 0;
  /** Live messages held during replays, now. */
  held = 0;
}

/** Where ingest reports problems and timings. */
export interface IngestHooks {
  warn(message: string, fields?: Record<string, unknown>): void;
  /** Receive-to-indexed time of one message, in seconds. */
  observeApply?(seconds: number): void;
  /** Publish (the batch's `ts`) to indexed time, in seconds. */
  observePublishToIndex?(seconds: number): void;
}

/** Applies decoded batches to the cache map. */
export class Ingest {
  readonly stats = new IngestStats();
  readonly map: CacheMap;
  readonly defaultModel: string;
  #hooks: IngestHooks;
  #clock: () => number;
  #wall: () => number;
  /** Both clocks the defaults: the wall time after a batch is read off the monotonic one. */
  #oneClock: boolean;
  #parsed = new ParsedBatch();

  constructor(
    map: CacheMap,
    options: {
      defaultModel: string;
      hooks: IngestHooks;
      /** Monotonic ms (default performance.now). */
      clock?: () => number;
      /** Wall clock in ms, sub-ms precision (default performance.timeOrigin + now). */
      wall?: () => number;
    },
  ) {
    this.map = map;
    this.defaultModel = options.defaultModel;
    this.#hooks = options.hooks;
    this.#clock = options.clock ?? (() => performance.now());
    this.#wall = options.wall ?? (() => performance.timeOrigin + performance.now());
    this.#oneClock = options.clock === undefined && options.wall === undefined;
  }

  get hooks(): IngestHooks {
    return this.#hooks;
  }

  /**
   * Decodes and applies one msgpack payload (through the fast reader, fast_events.ts, which accepts
   * exactly what decodeEventBatch does); false when it was refused.
   */
  applyPayload(pod: string, model: string, payload: Uint8Array, receivedAt?: number): boolean {
    const start = receivedAt ?? this.#clock();
    const b = this.#parsed;
    try {
      readEventBatch(payload, b);
    } catch (e) {
      if (!(e instanceof EventDecodeError || e instanceof MsgpackError)) throw e;
      this.stats.decodeErrors++;
      this.#hooks.warn("undecodable event batch", { pod, error: (e as Error).message });
      return false;
    }
    return this.#apply(pod, model, b, start);
  }

  /** Applies a decoded batch; false when refused (pod limit). */
  applyBatch(pod: string, model: string, batch: KvEventBatch, receivedAt?: number): boolean {
    const start = receivedAt ?? this.#clock();
    const b = this.#parsed;
    eventsToBatch(batch.events, b);
    b.ts = batch.ts;
    // A copy: the reader keeps an empty list from batch to batch and fills it (never the caller's).
    if (batch.rejected.length > 0) b.rejected = batch.rejected.slice();
    return this.#apply(pod, model, b, start);
  }

  #apply(pod: string, model: string, b: ParsedBatch, start: number): boolean {
    const s = this.stats;
    if (b.rejected.length > 0) {
      s.rejectedEvents += b.rejected.length;
      this.#hooks.warn("events skipped", { pod, reasons: b.rejected.slice(0, 3) });
    }
    try {
      const r = this.map.applyParsed(pod, model, b);
      s.batches++;
      s.blocksStored += r.stored;
      s.blocksRemoved += r.removed;
      s.cleared += r.cleared;
      if (r.refused > 0) {
        if (s.indexFull === 0) this.#hooks.warn("index full: new blocks not indexed", { pod });
        s.indexFull += r.refused;
      }
    } catch (e) {
      if (!(e instanceof PodLimitError)) throw e;
      s.podLimit++;
      this.#hooks.warn("batch refused", { pod, error: e.message });
      return false;
    }
    const hooks = this.#hooks;
    if (hooks.observeApply === undefined && hooks.observePublishToIndex === undefined) return true;
    // One clock read for both (performance.now() is a call into the runtime).
    const end = this.#clock();
    hooks.observeApply?.((end - start) / 1000);
    if (b.ts > 0 && hooks.observePublishToIndex !== undefined) {
      const wall = this.#oneClock ? performance.timeOrigin + end : this.#wall();
      hooks.observePublishToIndex(wall / 1000 - b.ts);
    }
    return true;
  }
}

const dec = new TextDecoder("utf-8", { fatal: false });

/** `kv@<pod>@<model>` (llm-d's convention) split into pod and model, else null. */
export function parseTopic(topic: Uint8Array): { pod: string; model: string } | null {
  if (topic.length < 5 || topic[0] !== 0x6b || topic[1] !== 0x76 || topic[2] !== 0x40) return null;
  const s = dec.decode(topic);
  const at = s.indexOf("@", 3);
  if (at < 0) return null;
  const pod = s.slice(3, at), model = s.slice(at + 1);
  return pod !== "" && model !== "" ? { pod, model } : null;
}

/** The sequence number in an 8-byte big-endian frame (-1 for the end marker), or null. */
export function readSeq(f: Uint8Array): number | null {
  if (f.length !== 8) return null;
  const hi = ((f[0] << 24) | (f[1] << 16) | (f[2] << 8) | f[3]) >>> 0;
  const lo = ((f[4] << 24) | (f[5] << 16) | (f[6] << 8) | f[7]) >>> 0;
  if (hi === 0xffffffff && lo === 0xffffffff) return -1;
  if (hi >= 0x200000) return null; // beyond 2^53: not a sequence a publisher reaches
  return hi * 0x100000000 + lo;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An 8-byte big-endian sequence frame. */
export function seqFrame(seq: number): Uint8Array {
  const f = new Uint8Array(8);
  new DataView(f.buffer).setBigInt64(0, BigInt(seq));
  return f;
}

/** Options of a {@link PublisherStream}. */
export interface StreamOptions {
  /** The pod id (configured), or null to take it from each message's topic. */
  pod: string | null;
  /** Asks the replay socket for messages from `seq` on; absent: gaps cannot be repaired. */
  requestReplay?: (seq: number) => void;
  /** Live messages held while a replay runs, at most. */
  maxHeld?: number;
  /** A replay not finished after this long is abandoned. */
  replayTimeoutMs?: number;
  /**
   * Whether a connection's first message with sequence 0 is a restart of the pod's engine: a pod
   * connecting to the bound socket comes back on a new connection, whose numbering starts over
   * only if the engine did.
   */
  restartsAtZero?: (pod: string) => boolean;
}

interface Held {
  seq: number;
  pod: string;
  model: string;
  payload: Uint8Array;
  at: number;
}

/** The sequence state of one publisher connection. */
export class PublisherStream {
  #ingest: Ingest;
  #opts: Required<Omit<StreamOptions, "requestReplay" | "pod" | "restartsAtZero">> & StreamOptions;
  #clock: () => number;
  /** Last applied sequence (-1: none yet). */
  last = -1;
  #replaying = false;
  #replayFrom = 0;
  #replayUntil = 0;
  #replayStarted = 0;
  #catchup = false;
  #held: Held[] = [];

  constructor(
    ingest: Ingest,
    options: StreamOptions,
    clock: () => number = () => performance.now(),
  ) {
    this.#ingest = ingest;
    this.#opts = { maxHeld: 100_000, replayTimeoutMs: 2_000, ...options };
    this.#clock = clock;
  }

  get replaying(): boolean {
    return this.#replaying;
  }

  /** The pod of the last live message (null before one). */
  get pod(): string | null {
    return this.#lastWho?.pod ?? null;
  }

  /** Pod and model of the last live message (for replies that carry no topic). */
  #lastWho: { pod: string; model: string } | null = null;

  #topic: Uint8Array | null = null;
  #topicWho: { pod: string; model: string } | null = null;

  #who(topic: Uint8Array): { pod: string; model: string } | null {
    // Publishers send the same topic every time: decode it once.
    const last = this.#topic;
    if (last !== null && last.length === topic.length && sameBytes(last, topic)) {
      return this.#topicWho;
    }
    const who = this.#parseWho(topic);
    this.#topic = topic.slice();
    this.#topicWho = who;
    return who;
  }

  #parseWho(topic: Uint8Array): { pod: string; model: string } | null {
    const t = parseTopic(topic);
    const pod = this.#opts.pod ?? t?.pod;
    if (pod === undefined) return null;
    return { pod, model: t?.model ?? this.#ingest.defaultModel };
  }

  /** A live message: `[topic, seq, payload]`. Frames may be views: copied when kept. */
  onLive(frames: Uint8Array[]): void {
    const now = this.#clock();
    const s = this.#ingest.stats;
    s.messages++;
    const seq = frames.length === 3 ? readSeq(frames[1]) : null;
    const who = frames.length === 3 ? this.#who(frames[0]) : null;
    if (seq === null || seq < 0 || who === null) {
      s.badFrames++;
      this.#ingest.hooks.warn("bad message frames", {
        frames: frames.length,
        reason: who === null && seq !== null ? "topic names no pod" : "not [topic, seq, payload]",
      });
      return;
    }
    s.bytes += frames[2].length;
    this.#lastWho = who;
    if (this.#replaying) {
      this.#hold(seq, who.pod, who.model, frames[2], now);
      return;
    }
    this.#accept(seq, who.pod, who.model, frames[2], now, false);
  }

  #accept(
    seq: number,
    pod: string,
    model: string,
    payload: Uint8Array,
    at: number,
    fromHeld: boolean,
  ): void {
    const s = this.#ingest.stats;
    const wentBack = this.last >= 0 && seq <= this.last;
    if (wentBack || (this.last < 0 && seq === 0 && this.#opts.restartsAtZero?.(pod))) {
      if (fromHeld) return; // already applied from the replay
      s.restarts++;
      this.#ingest.hooks.warn(
        wentBack
          ? "publisher sequence went back: engine restart, pod reset"
          : "engine connected again from sequence 0: engine restart, pod reset",
        { pod, last: this.last, seq },
      );
      this.#ingest.map.reset(pod, true);
    } else if (seq > this.last + 1) {
      const catchup = this.last === -1;
      if (!catchup) {
        s.gaps++;
        s.missedMessages += seq - this.last - 1;
      }
      if (this.#opts.requestReplay !== undefined && !fromHeld) {
        this.#startReplay(this.last + 1, seq - 1, catchup);
        this.#hold(seq, pod, model, payload, at);
        return;
      }
      if (!catchup) {
        s.gapsUnrepaired++;
        this.#ingest.hooks.warn("sequence gap not repaired", {
          pod,
          from: this.last + 1,
          to: seq - 1,
          reason: fromHeld ? "a second gap during a replay" : "no replay endpoint",
        });
      }
    }
    this.last = seq;
    this.#ingest.applyPayload(pod, model, payload, at);
  }

  #hold(seq: number, pod: string, model: string, payload: Uint8Array, at: number): void {
    if (this.#held.length >= this.#opts.maxHeld) {
      this.#finishReplay("too many live messages held");
      this.#accept(seq, pod, model, payload, at, false);
      return;
    }
    this.#held.push({ seq, pod, model, payload: payload.slice(), at });
    this.#ingest.stats.held++;
  }

  #startReplay(from: number, until: number, catchup: boolean): void {
    this.#replaying = true;
    this.#catchup = catchup;
    this.#replayFrom = from;
    this.#replayUntil = until;
    this.#replayStarted = this.#clock();
    if (catchup) this.#ingest.stats.catchups++;
    else this.#ingest.stats.replays++;
    this.#opts.requestReplay!(from);
  }

  /**
   * A message from the replay socket: `["", (topic,)? seq, payload]`, seq -1 ending the replay.
   */
  onReplay(frames: Uint8Array[]): void {
    if (!this.#replaying) return; // late answer to an abandoned replay
    let f = frames;
    if (f.length >= 3 && f[0].length === 0) f = f.slice(1);
    const seq = f.length >= 2 ? readSeq(f[f.length - 2]) : null;
    if (seq === null) {
      this.#ingest.stats.badFrames++;
      this.#ingest.hooks.warn("bad replay frames", { frames: frames.length });
      return;
    }
    if (seq === -1) {
      this.#finishReplay(this.last >= this.#replayUntil ? null : "replay ended short of the gap");
      return;
    }
    if (seq <= this.last) return; // before the gap, or a duplicate
    if (seq > this.last + 1) {
      // The replay buffer no longer holds the start of the gap.
      this.#finishReplay(`replay starts at ${seq}, after ${this.last + 1}`);
      return;
    }
    const who = f.length >= 3 ? this.#who(f[f.length - 3]) : this.#lastWho;
    if (who === null) {
      this.#ingest.stats.badFrames++;
      return;
    }
    this.#ingest.stats.replayedMessages++;
    this.last = seq;
    this.#ingest.applyPayload(who.pod, who.model, f[f.length - 1], this.#clock());
    if (this.last >= this.#replayUntil) this.#finishReplay(null);
  }

  /** Abandons a replay past its timeout (call now and then). */
  tick(): void {
    if (this.#replaying && this.#clock() - this.#replayStarted > this.#opts.replayTimeoutMs) {
      this.#finishReplay("replay timed out");
    }
  }

  /** Ends the replay (`failure` null when the gap is filled) and applies the held messages. */
  #finishReplay(failure: string | null): void {
    if (!this.#replaying) return;
    this.#replaying = false;
    const s = this.#ingest.stats;
    if (this.#catchup) {
      if (failure !== null) {
        this.#ingest.hooks.warn("history before the first message only partly replayed", {
          from: this.#replayFrom,
          to: this.#replayUntil,
          reason: failure,
        });
      }
    } else if (failure === null) s.gapsRepaired++;
    else {
      s.gapsUnrepaired++;
      this.#ingest.hooks.warn("sequence gap not repaired", {
        from: this.#replayFrom,
        to: this.#replayUntil,
        reason: failure,
      });
    }
    const held = this.#held;
    this.#held = [];
    s.held -= held.length;
    // The first held message closes the replayed gap whatever the replay brought.
    if (held.length > 0 && held[0].seq > this.last + 1) this.last = held[0].seq - 1;
    let prev = -1;
    for (const h of held) {
      // Held messages came in order over one connection (a publisher never sends a number twice):
      // one numbered at or below the one before it is an engine restart, not a message the replay
      // already brought. Accepted as live, it takes the restart branch (last >= prev >= its seq),
      // never a gap or a new replay.
      this.#accept(h.seq, h.pod, h.model, h.payload, h.at, h.seq > prev);
      prev = h.seq;
    }
  }

  /** The connection to the publisher was lost: a replay in flight is abandoned. */
  disconnected(): void {
    this.#finishReplay("connection lost during replay");
  }
}
