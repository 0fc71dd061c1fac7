/**
 * The ZMQ side of ingest: a SUB connection per configured publisher (with its replay DEALER,
 * opened on the first gap), and optionally a bound SUB socket that engines connect to (pod and
 * model from the `kv@<pod>@<model>` topic, no replay).
 *
 * @module
 */
import type { PublisherStatus } from "./app.ts";
import type { PublisherSpec } from "./config.ts";
import { type Ingest, PublisherStream, seqFrame } from "./ingest.ts";
import { zeroZmtpStats, ZmqDealer, ZmqSubscriber, type ZmtpStats } from "./zmtp.ts";
import type { PodState } from "./store.ts";

export interface ZmqSourcesOptions {
  publishers: readonly PublisherSpec[];
  bind?: string;
  /** Topic prefix to subscribe to ("" = all). */
  topic: string;
  maxFrameBytes: number;
  replayTimeoutMs: number;
  maxHeld: number;
}

interface Source {
  spec: PublisherSpec;
  sub: ZmqSubscriber;
  stream: PublisherStream;
  dealer: ZmqDealer | null;
  connected: boolean;
}

const EMPTY = new Uint8Array(0);

/** Every ZMQ connection of the service. */
export class ZmqSources {
  #ingest: Ingest;
  #opts: ZmqSourcesOptions;
  #sources: Source[] = [];
  #bound: ZmqSubscriber | null = null;
  #boundStreams = new Map<string, PublisherStream>();
  /**
   * Pods seen on the bound socket, as the map knew them then (a connection of theirs from 0 again
   * is a restart; a pod the map forgot and knows again from elsewhere is another PodState).
   */
  #boundPods = new Map<string, PodState>();
  #closed = false;

  constructor(ingest: Ingest, options: ZmqSourcesOptions) {
    this.#ingest = ingest;
    this.#opts = options;
  }

  /** Connects to every publisher and binds; returns the bound address, if any. */
  start(): Deno.NetAddr | null {
    const topics = [new TextEncoder().encode(this.#opts.topic)];
    const warn = this.#ingest.hooks.warn;
    for (const spec of this.#opts.publishers) {
      const source: Source = {
        spec,
        dealer: null,
        connected: false,
        stream: null as unknown as PublisherStream,
        sub: null as unknown as ZmqSubscriber,
      };
      source.stream = new PublisherStream(this.#ingest, {
        pod: spec.pod,
        requestReplay: spec.replay === null ? undefined : (seq) => this.#replay(source, seq),
        replayTimeoutMs: this.#opts.replayTimeoutMs,
        maxHeld: this.#opts.maxHeld,
      });
      source.sub = new ZmqSubscriber({
        topics,
        maxFrameBytes: this.#opts.maxFrameBytes,
        onMessage: (frames) => source.stream.onLive(frames),
        onConnect: () => source.connected = true,
        onDisconnect: (_peer, reason) => {
          source.connected = false;
          source.stream.disconnected();
          warn("publisher connection lost", { pod: spec.pod, reason });
        },
        onError: (err) => warn("publisher connection error", { pod: spec.pod, error: err.message }),
      });
      source.sub.connect(spec.endpoint);
      this.#sources.push(source);
    }
    if (this.#opts.bind === undefined) return null;
    const bound = new ZmqSubscriber({
      topics,
      maxFrameBytes: this.#opts.maxFrameBytes,
      onMessage: (frames, peer) => {
        let stream = this.#boundStreams.get(peer);
        if (stream === undefined) {
          const self: PublisherStream = stream = new PublisherStream(this.#ingest, {
            pod: null,
            // An engine seen on this socket before, on no other connection (data-parallel ranks
            // each have one, numbered from 0 each), starting from 0 again: it restarted.
            restartsAtZero: (pod) => {
              const known = this.#ingest.map.pod(pod);
              return known !== undefined && this.#boundPods.get(pod) === known &&
                !this.#boundConnected(pod, self);
            },
          });
          this.#boundStreams.set(peer, stream);
        }
        stream.onLive(frames);
        const known = stream.pod === null ? undefined : this.#ingest.map.pod(stream.pod);
        if (known !== undefined) this.#seenBound(known);
      },
      onDisconnect: (peer) => this.#boundStreams.delete(peer),
      onError: (err, peer) => warn("engine connection error", { peer, error: err.message }),
    });
    this.#bound = bound;
    return bound.bind(this.#opts.bind);
  }

  /** Remembers a pod seen on the bound socket; forgets pods the map no longer has (bounded). */
  #seenBound(p: PodState): void {
    const seen = this.#boundPods;
    if (seen.get(p.id) === p) return;
    seen.set(p.id, p);
    if (seen.size > 2 * this.#ingest.map.maxPods) {
      for (const [id, q] of seen) if (this.#ingest.map.pod(id) !== q) seen.delete(id);
    }
  }

  #replay(source: Source, seq: number): void {
    const warn = this.#ingest.hooks.warn;
    const ask = async () => {
      let dealer = source.dealer;
      if (dealer === null || !dealer.connected) {
        await dealer?.close();
        dealer = new ZmqDealer({
          maxFrameBytes: this.#opts.maxFrameBytes,
          onMessage: (frames) => source.stream.onReplay(frames),
          onError: (err) =>
            warn("replay socket error", { pod: source.spec.pod, error: err.message }),
        });
        source.dealer = dealer;
        await dealer.connect(source.spec.replay!);
      }
      if (this.#closed) return;
      await dealer.send([EMPTY, seqFrame(seq)]);
    };
    // A failure leaves the replay to time out (counted as an unrepaired gap).
    ask().catch((e) => warn("replay request failed", { pod: source.spec.pod, error: String(e) }));
  }

  /** Abandons replays past their timeout. */
  tick(): void {
    for (const s of this.#sources) s.stream.tick();
  }

  /** Pods with a live publisher connection, either way (kept past the heartbeat timeout). */
  isConnected(pod: string): boolean {
    return this.#sources.some((s) => s.spec.pod === pod && s.connected) ||
      this.#boundConnected(pod, null);
  }

  /** Whether a bound-socket connection other than `except` has named `pod` in its messages. */
  #boundConnected(pod: string, except: PublisherStream | null): boolean {
    for (const s of this.#boundStreams.values()) if (s !== except && s.pod === pod) return true;
    return false;
  }

  /**
   * Each configured publisher; then the bound socket (pod null, `connected`: its connections) and
   * each of its connections, by the pod its messages name (one per data-parallel rank).
   */
  statuses(): PublisherStatus[] {
    const out: PublisherStatus[] = this.#sources.map((s) => ({
      pod: s.spec.pod,
      endpoint: s.spec.endpoint,
      replay: s.spec.replay,
      connected: s.connected ? 1 : 0,
      lastSeq: s.stream.last,
      replaying: s.stream.replaying,
    }));
    if (this.#bound !== null) {
      out.push({
        pod: null,
        endpoint: this.#opts.bind!,
        replay: null,
        connected: this.#boundStreams.size,
        lastSeq: -1,
        replaying: false,
      });
      for (const s of this.#boundStreams.values()) {
        if (s.pod === null) continue;
        out.push({
          pod: s.pod,
          endpoint: this.#opts.bind!,
          replay: null,
          connected: 1,
          lastSeq: s.last,
          replaying: s.replaying,
        });
      }
    }
    return out;
  }

  /** Transport counters summed over every socket. */
  transport(): ZmtpStats {
    const sum = zeroZmtpStats();
    const socks = [...this.#sources.map((s) => s.sub), ...(this.#bound ? [this.#bound] : [])];
    for (const s of socks) {
      const st = s.stats;
      for (const k of Object.keys(sum) as (keyof ZmtpStats)[]) sum[k] += st[k];
    }
    return sum;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([
      ...this.#sources.flatMap((s) => [s.sub.close(), s.dealer?.close()]),
      this.#bound?.close(),
    ]);
  }
}
