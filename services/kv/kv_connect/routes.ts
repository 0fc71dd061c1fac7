/**
 * The KV Connect HTTP endpoints on a Hono app, so that `Deno.openKv("http://host:port/kv")`
 * (with `DENO_KV_ACCESS_TOKEN` set) uses this server as its database.
 *
 * - `POST <base>`: the metadata exchange (JSON). Checks the bearer token, picks the highest
 *   protocol version both sides speak (1, 2 or 3) and answers with the database id, the
 *   data-path URL, the token to use there and when this answer expires.
 * - `POST <base>/v2/snapshot_read`, `POST <base>/v2/atomic_write`, `POST <base>/v2/watch`:
 *   the data path (protobuf). Each checks the token, the protocol version header and the
 *   database id header, then decodes the request and answers from the store.
 *
 * Errors are plain text, as the protocol asks: 401 for a missing or wrong token, 400 for a bad
 * request (malformed protobuf, a limit exceeded, a type mismatch in a sum), 413 for a body over
 * the limit. 5xx would make Deno's client retry forever, so only real faults produce one.
 *
 * A watch answers with a stream of frames: a 4-byte little-endian length, then a `WatchOutput`
 * message; a zero length is a keepalive, sent every few seconds. Open watch streams keep an
 * HTTP server from finishing a graceful shutdown: call {@link KvConnect.close} first.
 *
 * @module
 */
import type { Hono } from "hono";
import { HttpError, readBodyBytes } from "@deno-stores/shared/http";
import { KvConnectError } from "./limits.ts";
import {
  AtomicWriteStatus,
  decodeAtomicWrite,
  decodeSnapshotRead,
  decodeWatch,
  encodeAtomicWriteOutput,
  encodeSnapshotReadOutput,
  encodeWatchOutput,
  type KvEntry,
  SnapshotReadStatus,
  type WatchKeyOutput,
} from "./messages.ts";
import { ProtobufError } from "./protobuf.ts";
import { type KvConnectStore, MemoryKvConnectStore } from "./store.ts";
import { compareBytes } from "./ordered_map.ts";
import { tokenChecker } from "../bearer.ts";

/** Options of {@link mountKvConnect}. */
export interface KvConnectOptions {
  /**
   * The access token clients must present (`DENO_KV_ACCESS_TOKEN` on their side). The empty
   * string turns authentication off, as the rest of the KV service has it.
   */
  token: string;
  /** Where the metadata exchange lives (default `/kv`); the data path is under `<base>/v2`. */
  basePath?: string;
  /** Wall clock in milliseconds since the epoch (default `Date.now`), for expiry. */
  now?: () => number;
  /** The database's UUID (default the nil UUID). Clients echo it on every data-path call. */
  databaseId?: string;
  /** Where the data lives (default a fresh {@link MemoryKvConnectStore}). */
  store?: KvConnectStore;
  /**
   * The externally visible origin (and optional path prefix) of this server, e.g.
   * `https://kv.example.com`, used to build the absolute data-path URL handed out in the
   * metadata exchange. Default: taken from the request (honouring `X-Forwarded-Proto` and
   * `X-Forwarded-Host`).
   */
  publicUrl?: string;
  /** How long a metadata answer is valid (default 1 hour; Deno refreshes every minute). */
  metadataTtlMs?: number;
  /** Most bytes in a data-path request body (default 1 MiB, above the largest valid write). */
  bodyLimitBytes?: number;
  /** Keepalive interval of watch streams (default 5 s); also when expiries are rechecked. */
  watchPingMs?: number;
  /** Most watch streams open at once (default 1000); past it, 503 and the client retries. */
  maxWatchStreams?: number;
  /**
   * Makes what was written so far durable before a response goes out (persistence); null when
   * there is nothing to wait for. A failure answers 500 and the write is not acknowledged.
   */
  commit?: () => Promise<void> | null;
}

/** What {@link mountKvConnect} returns. */
export interface KvConnect {
  /** The store behind the endpoints. */
  readonly store: KvConnectStore;
  /** The metadata exchange path (what follows the origin in the URL given to `Deno.openKv`). */
  readonly metadataPath: string;
  /** The data-path prefix (`<base>/v2`). */
  readonly dataPath: string;
  /** Watch streams open now. */
  watchStreams(): number;
  /** Ends every open watch stream (call before shutting the HTTP server down). */
  close(): void;
}

const NIL_UUID = "00000000-0000-0000-0000-000000000000";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SERVER_VERSIONS = [1, 2, 3];
const METADATA_BODY_LIMIT = 64 * 1024;

function text(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(message, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

function protobuf(body: Uint8Array): Response {
  return new Response(body as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": "application/x-protobuf" },
  });
}

/** The origin (plus prefix) the client reached us at, for the absolute data-path URL. */
function publicBase(req: Request, configured: string | undefined): string {
  if (configured !== undefined) return configured.replace(/\/+$/, "");
  const url = new URL(req.url);
  const proto = req.headers.get("x-forwarded-proto")?.split(",")[0].trim().toLowerCase();
  const host = req.headers.get("x-forwarded-host")?.split(",")[0].trim();
  if (proto === "http" || proto === "https") url.protocol = `${proto}:`;
  if (host !== undefined && host !== "") {
    try {
      url.host = host;
    } catch {
      // A malformed header: keep the request's own host.
    }
  }
  return url.origin;
}

/**
 * Registers the KV Connect endpoints on `app` (see the module documentation) and returns a
 * handle on them. Users then call `Deno.openKv("http://<host>:<port><basePath>")`.
 */
export function mountKvConnect(
  // deno-lint-ignore no-explicit-any
  app: Hono<any>,
  options: KvConnectOptions,
): KvConnect {
  const base = (options.basePath ?? "/kv").replace(/\/+$/, "");
  if (!base.startsWith("/") || base.length < 2) {
    throw new RangeError(`basePath must be a non-root path starting with '/': ${base}`);
  }
  const databaseId = (options.databaseId ?? NIL_UUID).toLowerCase();
  if (!UUID.test(databaseId)) throw new RangeError(`databaseId must be a UUID: ${databaseId}`);
  const store = options.store ?? new MemoryKvConnectStore();
  const now = options.now ?? Date.now;
  const ttl = options.metadataTtlMs ?? 60 * 60 * 1000;
  const bodyLimit = options.bodyLimitBytes ?? 1 << 20;
  const pingMs = options.watchPingMs ?? 5000;
  const maxWatchStreams = options.maxWatchStreams ?? 1000;
  const dataPath = `${base}/v2`;
  // With authentication off the data path still needs a non-empty token to hand out.
  const dataToken = options.token === "" ? "anonymous" : options.token;
  const unauthorized = (why: string) => text(401, why, { "www-authenticate": "Bearer" });
  const watches = new Set<WatchStream>();

  const authorized = tokenChecker(options.token);
  const dataAuthorized = tokenChecker(dataToken);

  const metadataExchange = async (req: Request): Promise<Response> => {
    if (!authorized(req)) return unauthorized("invalid or missing access token");
    let versions: number[] = [1];
    try {
      const body = await readBodyBytes(req, METADATA_BODY_LIMIT);
      if (body.length > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(new TextDecoder().decode(body));
        } catch {
          return text(400, "the metadata exchange body is not JSON");
        }
        const list = (parsed as { supportedVersions?: unknown } | null)?.supportedVersions;
        if (
          typeof parsed !== "object" || parsed === null || !Array.isArray(list) ||
          !list.every((v) => typeof v === "number")
        ) {
          return text(
            400,
            "the metadata exchange body needs supportedVersions, an array of numbers",
          );
        }
        versions = list;
      }
    } catch (e) {
      if (e instanceof HttpError) return text(e.status, e.message);
      throw e;
    }
    const version = Math.max(0, ...SERVER_VERSIONS.filter((v) => versions.includes(v)));
    if (version === 0) {
      return text(
        400,
        `no common protocol version: the client speaks ${versions.join(", ")}, ` +
          `this server ${SERVER_VERSIONS.join(", ")}`,
      );
    }
    return Response.json({
      version,
      databaseId,
      endpoints: [{ url: publicBase(req, options.publicUrl) + dataPath, consistency: "strong" }],
      token: dataToken,
      expiresAt: new Date(now() + ttl).toISOString(),
    });
  };
  // With and without a trailing slash, whichever the user wrote in the URL.
  app.post(base, (c) => metadataExchange(c.req.raw));
  app.post(`${base}/`, (c) => metadataExchange(c.req.raw));

  /** Checks a data-path request's headers; returns its protocol version or an error response. */
  const admit = (req: Request): number | Response => {
    if (!dataAuthorized(req)) return unauthorized("invalid or missing access token");
    const versionHeader = req.headers.get("x-denokv-version");
    let version: number;
    let id: string | null;
    if (versionHeader === null) {
      version = 1;
      id = req.headers.get("x-transaction-domain-id");
    } else {
      version = versionHeader === "2" ? 2 : versionHeader === "3" ? 3 : 0;
      if (version === 0) return text(400, `unsupported protocol version '${versionHeader}'`);
      id = req.headers.get("x-denokv-database-id");
    }
    if (id === null || id.toLowerCase() !== databaseId) {
      return text(400, `unknown database id '${id ?? ""}'`);
    }
    return version;
  };

  /** Reads and decodes a data-path body; maps refusals to plain-text responses. */
  const handle = async (
    req: Request,
    run: (body: Uint8Array, version: number) => Response | Promise<Response>,
  ): Promise<Response> => {
    const version = admit(req);
    if (version instanceof Response) return version;
    try {
      const body = await readBodyBytes(req, bodyLimit);
      return await run(body, version);
    } catch (e) {
      if (e instanceof ProtobufError) return text(400, e.message);
      if (e instanceof KvConnectError) return text(e.status, e.message);
      if (e instanceof HttpError) return text(e.status, e.message);
      throw e;
    }
  };

  app.post(`${dataPath}/snapshot_read`, (c) =>
    handle(c.req.raw, async (body) => {
      const ranges = await store.snapshotRead(decodeSnapshotRead(body), now());
      await options.commit?.();
      return protobuf(encodeSnapshotReadOutput({
        ranges,
        readDisabled: false,
        readIsStronglyConsistent: true,
        status: SnapshotReadStatus.SUCCESS,
      }));
    }));

  app.post(`${dataPath}/atomic_write`, (c) =>
    handle(c.req.raw, async (body) => {
      const result = await store.atomicWrite(decodeAtomicWrite(body), now());
      // Acknowledged only once durable (reads too: they must not show what could be lost).
      await options.commit?.();
      return protobuf(encodeAtomicWriteOutput(
        result.ok
          ? {
            status: AtomicWriteStatus.SUCCESS,
            versionstamp: result.versionstamp,
            failedChecks: [],
          }
          : {
            status: AtomicWriteStatus.CHECK_FAILURE,
            versionstamp: new Uint8Array(0),
            failedChecks: result.failedChecks,
          },
      ));
    }));

  app.post(`${dataPath}/watch`, (c) =>
    handle(c.req.raw, (body, version) => {
      if (version < 3) return text(400, "watch needs protocol version 3");
      if (watches.size >= maxWatchStreams) {
        return text(503, `too many watch streams open (${maxWatchStreams}); retry later`);
      }
      const keys = decodeWatch(body).keys.map((k) => k.slice());
      const stream = new WatchStream(store, keys, now, pingMs, () => watches.delete(stream));
      watches.add(stream);
      return new Response(stream.body, {
        headers: { "content-type": "application/octet-stream", "cache-control": "no-store" },
      });
    }));

  return {
    store,
    metadataPath: base,
    dataPath,
    watchStreams: () => watches.size,
    close() {
      for (const w of [...watches]) w.close();
    },
  };
}

/**
 * One watch: a byte stream of frames. It is pulled, so a slow reader holds at most one frame
 * here: changes while it is not reading collapse into the next frame, which always shows the
 * keys' current state (the protocol allows that). A frame goes out first, then whenever the
 * versionstamp of a watched key moved (a write, a delete, an expiry); otherwise keepalives.
 */
class WatchStream {
  readonly body: ReadableStream<Uint8Array>;
  readonly #store: KvConnectStore;
  readonly #keys: Uint8Array[];
  readonly #now: () => number;
  readonly #onEnd: () => void;
  #sent: (Uint8Array | null)[] | undefined;
  #dirty = true;
  #pingDue = false;
  #closed = false;
  #wake: (() => void) | undefined;
  #unsubscribe: () => void;
  #timer: ReturnType<typeof setInterval>;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;

  constructor(
    store: KvConnectStore,
    keys: Uint8Array[],
    now: () => number,
    pingMs: number,
    onEnd: () => void,
  ) {
    this.#store = store;
    this.#keys = keys;
    this.#now = now;
    this.#onEnd = onEnd;
    // Subscribing validates the keys (count, sizes): a bad watch throws before any stream.
    this.#unsubscribe = store.watch({ keys }, () => this.#poke(false));
    // Each keepalive also re-reads the keys, so that expiries show up without a write.
    this.#timer = setInterval(() => this.#poke(true), pingMs);
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#end(),
    }, { highWaterMark: 0 });
  }

  #poke(ping: boolean): void {
    this.#dirty = true;
    if (ping) this.#pingDue = true;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (!this.#closed) {
      if (this.#dirty) {
        this.#dirty = false;
        const frame = await this.#frame();
        if (this.#closed) return;
        if (frame !== undefined) {
          this.#pingDue = false;
          controller.enqueue(frame);
          return;
        }
      }
      if (this.#pingDue) {
        this.#pingDue = false;
        controller.enqueue(new Uint8Array(4));
        return;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** The next frame, or undefined when no key's versionstamp moved. */
  async #frame(): Promise<Uint8Array | undefined> {
    const ranges = await this.#store.snapshotRead({
      ranges: this.#keys.map((key) => {
        const end = new Uint8Array(key.length + 1);
        end.set(key);
        return { start: key, end, limit: 1, reverse: false };
      }),
    }, this.#now());
    const entries: (KvEntry | null)[] = ranges.map((r) => r.values[0] ?? null);
    const previous = this.#sent;
    const moved = previous === undefined || entries.some((entry, i) => {
      const before = previous[i];
      return before === null
        ? entry !== null
        : entry === null || compareBytes(before, entry.versionstamp) !== 0;
    });
    if (!moved) return undefined;
    this.#sent = entries.map((e) => e?.versionstamp ?? null);
    // Every key goes out as changed, with its current entry, as denokv's own server does:
    // Deno 2.9.6 turns a `changed: false` key into a null value instead of keeping the last
    // one, and it drops entries whose versionstamp it has already seen anyway.
    const outputs: WatchKeyOutput[] = entries.map((entry) => ({
      changed: true,
      entryIfChanged: entry,
    }));
    const message = encodeWatchOutput({ status: SnapshotReadStatus.SUCCESS, keys: outputs });
    const frame = new Uint8Array(4 + message.length);
    new DataView(frame.buffer).setUint32(0, message.length, true);
    frame.set(message, 4);
    return frame;
  }

  #end(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unsubscribe();
    this.#onEnd();
    this.#poke(false);
  }

  /** Ends the stream from the server side. */
  close(): void {
    this.#end();
    try {
      this.#controller?.close();
    } catch {
      // Already closed or errored by the reader.
    }
  }
}
