/**
 * Raft messages over HTTP/1.1.
 *
 * Sending: one queue per peer (bounded: `maxQueueMessages`). By default (`stream: true`) each
 * node keeps one WebSocket per peer (`GET {peer}/raft/stream`, upgraded) and writes every batch
 * of up to `maxBatchBytes` to it as one binary message: no request per batch, and order per peer
 * is the socket's. While the socket connects, messages wait in the queue; if the socket's unsent
 * bytes pass `maxStreamBufferedBytes`, new messages are dropped and reported (Raft probes and
 * retransmits). With `stream: false` the queue is drained by one keep-alive request at a time
 * into `POST {peer}/raft/messages`. A failed request or a closed socket reports the peer
 * unreachable, drops what was queued (Raft retransmits) and backs off (`backoffMsMin` doubling up
 * to `backoffMsMax`); while backing off, messages to that peer are dropped and reported.
 * Snapshots (`MsgSnap`) go separately, one at a time per peer, as a streamed body to
 * `POST {peer}/raft/snapshot`, and end with `snapshotStatus`.
 *
 * Receiving: {@link HttpTransport.handle} serves all three paths (mount it on the peer listener).
 * Body: frames of `uvarint length + encoded message` (see codec.ts). Every request is checked
 * before anything reaches Raft: method (405), cluster id header (412), size (413), framing and
 * message decoding (400), the addressee (400), snapshots only on the snapshot path (400); the
 * body is read incrementally and abandoned as soon as it exceeds its limit. The stream path checks
 * the same (cluster id and addressee as query parameters) before upgrading, then every binary
 * message as a batch; a bad one closes the socket (code 1008) before anything of it reaches Raft.
 *
 * @module
 */

import { CodecError, decodeMessage, encodeMessage, Reader, Writer } from "./codec.ts";
import { type Logger, type Message, silentLogger } from "./types.ts";
import { isSnapshotMessage, type RaftTransport, type TransportHandler } from "./transport.ts";

export const RAFT_MESSAGES_PATH = "/raft/messages";
export const RAFT_SNAPSHOT_PATH = "/raft/snapshot";
export const RAFT_STREAM_PATH = "/raft/stream";
const CLUSTER_HEADER = "x-raft-cluster-id";
const TO_HEADER = "x-raft-to";
const FROM_HEADER = "x-raft-from";
const CONTENT_TYPE = "application/x-raft-batch";

/** Options of {@link HttpTransport}. */
export interface HttpTransportOptions {
  /** This node's id. */
  id: number;
  /** Requests carrying another cluster id are refused (412). Default "default". */
  clusterId?: string;
  /** Peer id → base URL (e.g. `http://10.0.0.2:2380`). */
  peers?: Iterable<[number, string]>;
  /** Send over one WebSocket per peer (default true) instead of a POST per batch. */
  stream?: boolean;
  /** Unsent bytes on a peer's socket above which new messages are dropped (default 16 MiB). */
  maxStreamBufferedBytes?: number;
  /** Messages queued per peer before new ones are dropped (default 4096). */
  maxQueueMessages?: number;
  /** Bytes per outgoing batch (default 4 MiB; a larger single message goes alone). */
  maxBatchBytes?: number;
  /** Largest accepted `/raft/messages` body (default 64 MiB). */
  maxRequestBytes?: number;
  /** Largest accepted snapshot body (default 1 GiB). */
  maxSnapshotBytes?: number;
  /** Deadline of a message batch request (default 5000 ms). */
  requestTimeoutMs?: number;
  /** Deadline of a snapshot request (default 120,000 ms). */
  snapshotTimeoutMs?: number;
  /** Backoff after a failed request (defaults 50 ms doubling to 1000 ms). */
  backoffMsMin?: number;
  backoffMsMax?: number;
  /** Injected for tests (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  logger?: Logger;
}

/** Counters for `/metrics`. */
export interface HttpTransportStats {
  sentMessages: number;
  sentBatches: number;
  sentBytes: number;
  droppedMessages: number;
  failedRequests: number;
  receivedMessages: number;
  receivedBatches: number;
  rejectedRequests: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotsReceived: number;
  streamsOpened: number;
  streamsAccepted: number;
}

class RequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

interface Peer {
  id: number;
  url: string;
  queue: Message[];
  busy: boolean;
  snapshotBusy: boolean;
  /** performance.now() until which sends are dropped (after a failure). */
  downUntil: number;
  backoffMs: number;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Aborts the requests in flight (close, removePeer). */
  abort: AbortController;
  /** The outgoing stream (stream mode), connecting or open. */
  ws: WebSocket | null;
}

/** Encodes messages as a batch body: `uvarint length + message` frames. */
export function encodeBatch(messages: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const m of messages) size += m.length + 5;
  const w = new Writer(size);
  for (const m of messages) w.bytes(m, "batch.frame");
  return w.finish();
}

/** Decodes a batch body (throws CodecError on any framing or message error). */
export function decodeBatch(body: Uint8Array): Message[] {
  const r = new Reader(body, "raft batch");
  const out: Message[] = [];
  while (r.remaining > 0) out.push(decodeMessage(r.bytes("batch.frame")));
  return out;
}

/** {@link RaftTransport} over HTTP. */
export class HttpTransport implements RaftTransport {
  readonly id: number;
  readonly clusterId: string;
  readonly stats: HttpTransportStats = {
    sentMessages: 0,
    sentBatches: 0,
    sentBytes: 0,
    droppedMessages: 0,
    failedRequests: 0,
    receivedMessages: 0,
    receivedBatches: 0,
    rejectedRequests: 0,
    snapshotsSent: 0,
    snapshotsFailed: 0,
    snapshotsReceived: 0,
    streamsOpened: 0,
    streamsAccepted: 0,
  };
  readonly #peers = new Map<number, Peer>();
  readonly #stream: boolean;
  readonly #maxStreamBuffered: number;
  /** Incoming streams, closed with the transport. */
  readonly #accepted = new Set<WebSocket>();
  readonly #maxQueue: number;
  readonly #maxBatchBytes: number;
  readonly #maxRequestBytes: number;
  readonly #maxSnapshotBytes: number;
  readonly #requestTimeoutMs: number;
  readonly #snapshotTimeoutMs: number;
  readonly #backoffMin: number;
  readonly #backoffMax: number;
  readonly #fetch: typeof fetch;
  readonly #log: Logger;
  #handler: TransportHandler | null = null;
  #closed = false;
  readonly #inflight = new Set<Promise<void>>();
  /** Fault injection: peers cut off (messages to and from them are dropped); "all" = isolated. */
  #cut: Set<number> | "all" = new Set();

  constructor(options: HttpTransportOptions) {
    this.id = options.id;
    this.clusterId = options.clusterId ?? "default";
    this.#stream = options.stream ?? true;
    this.#maxStreamBuffered = options.maxStreamBufferedBytes ?? 16 << 20;
    this.#maxQueue = options.maxQueueMessages ?? 4096;
    this.#maxBatchBytes = options.maxBatchBytes ?? 4 << 20;
    this.#maxRequestBytes = options.maxRequestBytes ?? 64 << 20;
    this.#maxSnapshotBytes = options.maxSnapshotBytes ?? 1 << 30;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.#snapshotTimeoutMs = options.snapshotTimeoutMs ?? 120_000;
    this.#backoffMin = options.backoffMsMin ?? 50;
    this.#backoffMax = options.backoffMsMax ?? 1000;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#log = options.logger ?? silentLogger;
    for (const [id, url] of options.peers ?? []) this.addPeer(id, url);
  }

  start(handler: TransportHandler): void {
    this.#handler = handler;
  }

  addPeer(id: number, address: string): void {
    if (id === this.id) return;
    const url = address.replace(/\/+$/, "");
    const existing = this.#peers.get(id);
    if (existing) {
      existing.url = url;
      return;
    }
    this.#peers.set(id, {
      id,
      url,
      queue: [],
      busy: false,
      snapshotBusy: false,
      downUntil: 0,
      backoffMs: this.#backoffMin,
      retryTimer: undefined,
      abort: new AbortController(),
      ws: null,
    });
  }

  removePeer(id: number): void {
    const p = this.#peers.get(id);
    if (!p) return;
    this.#peers.delete(id);
    clearTimeout(p.retryTimer);
    p.abort.abort(new Error("peer removed"));
    p.queue = [];
    closeSocket(p.ws);
    p.ws = null;
  }

  /** The peers and their base URLs. */
  peers(): Map<number, string> {
    return new Map([...this.#peers].map(([id, p]) => [id, p.url]));
  }

  /**
   * Fault injection for tests: cut this node off from `peers` (or from every peer) until
   * {@link heal}. Outgoing messages to them are dropped and reported unreachable; incoming ones
   * from them are dropped on arrival. Connections stay up, as when a network drops packets.
   */
  cut(peers: readonly number[] | "all"): void {
    this.#cut = peers === "all" ? "all" : new Set(peers);
  }

  /** Ends {@link cut}. */
  heal(): void {
    this.#cut = new Set();
  }

  #isCut(peer: number): boolean {
    return this.#cut === "all" || this.#cut.has(peer);
  }

  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    const touched = new Set<Peer>();
    for (const m of messages) {
      const p = this.#peers.get(m.to);
      if (!p || this.#isCut(m.to)) {
        this.#dropped(m);
        continue;
      }
      if (isSnapshotMessage(m)) {
        this.#sendSnapshot(p, m);
        continue;
      }
      if (
        p.downUntil > performance.now() || p.queue.length >= this.#maxQueue ||
        (p.ws !== null && p.ws.bufferedAmount > this.#maxStreamBuffered)
      ) {
        this.#dropped(m);
        continue;
      }
      p.queue.push(m);
      touched.add(p);
    }
    for (const p of touched) this.#pump(p);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#peers.values()) {
      clearTimeout(p.retryTimer);
      p.abort.abort(new Error("transport closed"));
      p.queue = [];
      closeSocket(p.ws);
      p.ws = null;
    }
    for (const ws of this.#accepted) closeSocket(ws);
    this.#accepted.clear();
    await Promise.allSettled([...this.#inflight]);
    this.#handler = null;
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  #dropped(m: Message): void {
    this.stats.droppedMessages++;
    const h = this.#handler;
    if (!h) return;
    if (isSnapshotMessage(m)) h.snapshotStatus(m.to, false);
    else h.unreachable(m.to);
  }

  #track(p: Promise<void>): void {
    this.#inflight.add(p);
    p.finally(() => this.#inflight.delete(p));
  }

  /** Takes the next batch (up to `maxBatchBytes`, at least one message) off the queue. */
  #nextBatch(p: Peer): { batch: Message[]; body: Uint8Array } {
    const frames: Uint8Array[] = [];
    let bytes = 0;
    let n = 0;
    for (; n < p.queue.length; n++) {
      const f = encodeMessage(p.queue[n]);
      if (n > 0 && bytes + f.length > this.#maxBatchBytes) break;
      frames.push(f);
      bytes += f.length;
    }
    return { batch: p.queue.splice(0, n), body: encodeBatch(frames) };
  }

  #pump(p: Peer): void {
    if (p.queue.length === 0 || this.#closed) return;
    if (this.#stream) {
      this.#pumpStream(p);
      return;
    }
    if (p.busy) return;
    const { batch, body } = this.#nextBatch(p);
    p.busy = true;
    this.#track(
      this.#post(p, RAFT_MESSAGES_PATH, body, this.#requestTimeoutMs).then(
        () => {
          this.stats.sentMessages += batch.length;
          this.stats.sentBatches++;
          this.stats.sentBytes += body.length;
          p.backoffMs = this.#backoffMin;
        },
        (e) => {
          if (this.#closed || !this.#peers.has(p.id)) return;
          this.stats.failedRequests++;
          this.#log.debug(`raft transport: sending to ${p.id} failed: ${(e as Error)?.message}`);
          this.#down(p, batch.concat(p.queue.splice(0)));
        },
      ).finally(() => {
        p.busy = false;
        this.#pump(p);
      }),
    );
  }

  #pumpStream(p: Peer): void {
    const ws = p.ws;
    if (ws === null) {
      if (p.downUntil <= performance.now()) this.#connect(p);
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) return; // drained by onopen
    while (p.queue.length > 0) {
      const { batch, body } = this.#nextBatch(p);
      ws.send(body);
      this.stats.sentMessages += batch.length;
      this.stats.sentBatches++;
      this.stats.sentBytes += body.length;
    }
  }

  #connect(p: Peer): void {
    const url = new URL(p.url + RAFT_STREAM_PATH);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("cluster", this.clusterId);
    url.searchParams.set("from", String(this.id));
    url.searchParams.set("to", String(p.id));
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.stats.failedRequests++;
      this.#log.warn(`raft transport: cannot open a stream to ${p.id}: ${(e as Error)?.message}`);
      this.#down(p, p.queue.splice(0));
      return;
    }
    ws.binaryType = "arraybuffer";
    p.ws = ws;
    ws.onopen = () => {
      if (p.ws !== ws) return;
      this.stats.streamsOpened++;
      p.backoffMs = this.#backoffMin;
      this.#pump(p);
    };
    ws.onmessage = () => {
      // Streams carry messages one way; the peer answers on its own stream to us.
    };
    ws.onclose = (ev) => {
      if (p.ws !== ws) return;
      p.ws = null;
      if (this.#closed || !this.#peers.has(p.id)) return;
      this.stats.failedRequests++;
      this.#log.debug(`raft transport: stream to ${p.id} closed (${ev.code} ${ev.reason})`);
      this.#down(p, p.queue.splice(0), true);
    };
  }

  /** Marks `p` down for its backoff and reports the lost messages (once per peer). */
  #down(p: Peer, lost: Message[], always = false): void {
    p.downUntil = performance.now() + p.backoffMs;
    clearTimeout(p.retryTimer);
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      p.downUntil = 0;
    }, p.backoffMs);
    p.backoffMs = Math.min(p.backoffMs * 2, this.#backoffMax);
    this.stats.droppedMessages += lost.length;
    // A closed stream may have taken messages sent into it along: report even with none queued.
    if (lost.length > 0 || always) this.#handler?.unreachable(p.id);
  }

  #sendSnapshot(p: Peer, m: Message): void {
    if (p.snapshotBusy) {
      // The leader sends one snapshot per follower at a time; a second one is a stale retry.
      this.#dropped(m);
      return;
    }
    p.snapshotBusy = true;
    let body: Uint8Array;
    try {
      body = encodeMessage(m);
    } catch (e) {
      p.snapshotBusy = false;
      this.#log.error(`raft transport: cannot encode snapshot for ${p.id}: ${e}`);
      this.#dropped(m);
      return;
    }
    this.#track(
      this.#post(p, RAFT_SNAPSHOT_PATH, chunked(body, 256 << 10), this.#snapshotTimeoutMs)
        .then(
          () => {
            this.stats.snapshotsSent++;
            this.#handler?.snapshotStatus(p.id, true);
          },
          (e) => {
            this.stats.snapshotsFailed++;
            this.#log.warn(`raft transport: snapshot to ${p.id} failed: ${(e as Error)?.message}`);
            this.#handler?.snapshotStatus(p.id, false);
          },
        ).finally(() => {
          p.snapshotBusy = false;
        }),
    );
  }

  async #post(
    p: Peer,
    path: string,
    body: Uint8Array | ReadableStream<Uint8Array>,
    timeoutMs: number,
  ): Promise<void> {
    const signal = AbortSignal.any([p.abort.signal, AbortSignal.timeout(timeoutMs)]);
    const res = await this.#fetch(p.url + path, {
      method: "POST",
      headers: {
        "content-type": CONTENT_TYPE,
        [CLUSTER_HEADER]: this.clusterId,
        [TO_HEADER]: String(p.id),
        [FROM_HEADER]: String(this.id),
      },
      body: body as BodyInit,
      signal,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  /**
   * Serves `POST /raft/messages` and `POST /raft/snapshot`; answers 404 for other paths. Mount it
   * on the peer listener (`Deno.serve(transport.handle)`) or route to it from an app.
   */
  handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname;
    if (path === RAFT_STREAM_PATH) return this.#accept(req, url);
    const snapshot = path === RAFT_SNAPSHOT_PATH;
    if (!snapshot && path !== RAFT_MESSAGES_PATH) {
      return jsonError(404, "not_found", `no raft endpoint at ${path}`);
    }
    try {
      if (req.method !== "POST") throw new RequestError(405, `${req.method} not allowed`);
      this.#checkAddress(req.headers.get(CLUSTER_HEADER), req.headers.get(TO_HEADER), true);
      const handler = this.#handler;
      if (!handler || this.#closed) throw new RequestError(503, "raft node not running");
      const limit = snapshot ? this.#maxSnapshotBytes : this.#maxRequestBytes;
      const body = await readBody(req, limit);
      let msgs: Message[];
      try {
        msgs = snapshot ? [decodeMessage(body)] : decodeBatch(body);
      } catch (e) {
        if (e instanceof CodecError) throw new RequestError(400, e.message);
        throw e;
      }
      for (const m of msgs) {
        if (m.to !== this.id) {
          throw new RequestError(400, `message for node ${m.to} reached node ${this.id}`);
        }
        if (isSnapshotMessage(m) !== snapshot) {
          throw new RequestError(
            400,
            snapshot ? "snapshot path carries a non-snapshot message" : "snapshot on batch path",
          );
        }
      }
      if (snapshot) this.stats.snapshotsReceived++;
      else this.stats.receivedBatches++;
      this.stats.receivedMessages += msgs.length;
      for (const m of msgs) if (!this.#isCut(m.from)) handler.receive(m);
      return new Response(null, { status: 204 });
    } catch (e) {
      this.stats.rejectedRequests++;
      if (e instanceof RequestError) {
        return jsonError(e.status, httpErrorName(e.status), e.message);
      }
      this.#log.error(`raft transport: request failed: ${(e as Error)?.stack ?? e}`);
      return jsonError(500, "internal", "internal error");
    }
  };

  /** Refuses a foreign cluster id (412) or another addressee (400; `to` may be optional). */
  #checkAddress(cluster: string | null, to: string | null, toOptional: boolean): void {
    if (cluster !== this.clusterId) {
      throw new RequestError(
        412,
        `cluster id mismatch: got ${JSON.stringify(cluster)}, this node is in ${
          JSON.stringify(this.clusterId)
        }`,
      );
    }
    if ((to !== null || !toOptional) && to !== String(this.id)) {
      throw new RequestError(400, `request for node ${to} reached node ${this.id}`);
    }
  }

  /** Checks and upgrades `GET /raft/stream`; each binary message is then a batch. */
  #accept(req: Request, url: URL): Response {
    try {
      if (req.method !== "GET") throw new RequestError(405, `${req.method} not allowed`);
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        throw new RequestError(400, "the stream path needs a WebSocket upgrade");
      }
      this.#checkAddress(url.searchParams.get("cluster"), url.searchParams.get("to"), false);
      if (!this.#handler || this.#closed) throw new RequestError(503, "raft node not running");
    } catch (e) {
      this.stats.rejectedRequests++;
      const err = e as RequestError;
      return jsonError(err.status, httpErrorName(err.status), err.message);
    }
    const { socket, response } = Deno.upgradeWebSocket(req, {
      idleTimeout: 0,
    });
    socket.binaryType = "arraybuffer";
    this.#accepted.add(socket);
    this.stats.streamsAccepted++;
    socket.onmessage = (ev) => {
      const handler = this.#handler;
      if (!handler || this.#closed) return;
      const reject = (reason: string) => {
        this.stats.rejectedRequests++;
        this.#log.warn(
          `raft transport: closing a stream from ${url.searchParams.get("from")}: ${reason}`,
        );
        socket.close(1008, reason.slice(0, 120));
      };
      if (!(ev.data instanceof ArrayBuffer)) return reject("text message on a raft stream");
      if (ev.data.byteLength > this.#maxRequestBytes) return reject("batch too large");
      let msgs: Message[];
      try {
        msgs = decodeBatch(new Uint8Array(ev.data));
      } catch (e) {
        return reject((e as Error).message);
      }
      for (const m of msgs) {
        if (m.to !== this.id) return reject(`message for node ${m.to} reached node ${this.id}`);
        if (isSnapshotMessage(m)) return reject("snapshot on the stream");
      }
      this.stats.receivedBatches++;
      this.stats.receivedMessages += msgs.length;
      for (const m of msgs) if (!this.#isCut(m.from)) handler.receive(m);
    };
    socket.onclose = () => this.#accepted.delete(socket);
    return response;
  }
}

function closeSocket(ws: WebSocket | null): void {
  if (ws === null) return;
  try {
    ws.close(1001, "closing");
  } catch {
    // already closed
  }
}

function httpErrorName(status: number): string {
  switch (status) {
    case 400:
      return "bad_request";
    case 405:
      return "method_not_allowed";
    case 412:
      return "cluster_mismatch";
    case 413:
      return "payload_too_large";
    case 503:
      return "unavailable";
    default:
      return "error";
  }
}

function jsonError(status: number, error: string, message: string): Response {
  return Response.json({ error, message }, { status });
}

/** Reads the whole body, refusing (413) as soon as it exceeds `limit` bytes. */
async function readBody(req: Request, limit: number): Promise<Uint8Array> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await req.body?.cancel();
    throw new RequestError(413, `body of ${declared} bytes exceeds ${limit}`);
  }
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw new RequestError(413, `body exceeds ${limit} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Streams `data` in chunks (large snapshots are not handed to fetch as one buffer). */
function chunked(data: Uint8Array, chunkBytes: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream<Uint8Array>({
    pull(ctrl) {
      if (off >= data.length) {
        ctrl.close();
        return;
      }
      const end = Math.min(off + chunkBytes, data.length);
      ctrl.enqueue(data.subarray(off, end));
      off = end;
    },
  });
}
