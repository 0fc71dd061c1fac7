/**
 * kv-events' HTTP API: `POST /route`, `POST /events` (JSON or msgpack), `GET /pods`,
 * `DELETE /pods/:id`, `POST /pods/:id/heartbeat`, `GET /stats`, plus the shared `/healthz`,
 * `/readyz` and Prometheus `/metrics`.
 *
 * @module
 */
import {
  Counter,
  createServiceApp,
  HttpError,
  type Logger,
  readBodyBytes,
  readJson,
  type Registry,
  type ServiceApp,
} from "@deno-stores/shared/http";
import { type BlockHash, hashKey, type KvEvent, type KvEventBatch } from "./events.ts";
import type { Ingest } from "./ingest.ts";
import type { Candidate, PromptBlocks, Router } from "./router.ts";
import type { CacheMap } from "./store.ts";

/** Buckets (seconds) of the routing and event-processing histograms: both take microseconds. */
export const MICRO_BUCKETS_SECONDS: readonly number[] = [
  0.000005,
  0.00001,
  0.000025,
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.01,
  0.1,
  1,
];

/** A publisher's state, for /stats and /pods. */
export interface PublisherStatus {
  pod: string | null;
  endpoint: string;
  replay: string | null;
  connected: number;
  lastSeq: number;
  replaying: boolean;
}

export interface KvEventsAppOptions {
  map: CacheMap;
  router: Router;
  ingest: Ingest;
  logger: Logger;
  accessLog?: boolean;
  bodyLimitBytes?: number;
  maxInflightRequests?: number;
  maxRouteTokens?: number;
  /** Publisher connections (ZMQ), for /stats. */
  publishers?: () => PublisherStatus[];
  /** Extra /stats fields (hash cache, rates). */
  extraStats?: () => Record<string, unknown>;
}

const bad = (message: string) => new HttpError(400, "bad_request", message);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A JSON block hash: a safe integer, or a decimal / 0x-hex string (a 64-bit value or digest). */
export function jsonHash(v: unknown, what: string): BlockHash {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) {
      throw bad(`${what}: ${v} is not exact in JSON; send hashes of 2^53 and above as strings`);
    }
    return BigInt.asUintN(64, BigInt(v));
  }
  if (typeof v === "string" && /^(-?[0-9]{1,20}|0x[0-9a-fA-F]{1,64})$/.test(v)) {
    return BigInt.asUintN(64, BigInt(v));
  }
  throw bad(`${what} is not a block hash (integer, decimal string or 0x-hex string)`);
}

function jsonHashes(v: unknown, what: string): BlockHash[] {
  if (!Array.isArray(v)) throw bad(`${what} must be an array`);
  return v.map((h, i) => jsonHash(h, `${what}[${i}]`));
}

function optString(v: unknown, what: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || v.length > 512) throw bad(`${what} must be a string`);
  return v;
}

/** One event of a JSON /events body (the map layout vLLM's structs have, in snake_case). */
function jsonEvent(v: unknown, i: number): KvEvent {
  const at = `events[${i}]`;
  if (!isObject(v)) throw bad(`${at} must be an object`);
  switch (v.type) {
    case "BlockStored": {
      const tokens = v.token_ids ?? [];
      if (!Array.isArray(tokens) || !tokens.every((t) => Number.isSafeInteger(t) && t >= 0)) {
        throw bad(`${at}.token_ids must be an array of token ids`);
      }
      const bs = v.block_size ?? 0;
      if (!Number.isSafeInteger(bs) || (bs as number) < 0) {
        throw bad(`${at}.block_size must be an integer`);
      }
      const loraId = v.lora_id ?? null;
      if (loraId !== null && !Number.isSafeInteger(loraId)) {
        throw bad(`${at}.lora_id must be an integer or null`);
      }
      const loraName = optString(v.lora_name, `${at}.lora_name`);
      return {
        type: "BlockStored",
        blockHashes: jsonHashes(v.block_hashes, `${at}.block_hashes`),
        parentBlockHash: v.parent_block_hash === undefined || v.parent_block_hash === null
          ? null
          : jsonHash(v.parent_block_hash, `${at}.parent_block_hash`),
        tokenIds: tokens as number[],
        blockSize: bs as number,
        loraId: loraId as number | null,
        medium: optString(v.medium, `${at}.medium`),
        ...(loraName !== null ? { loraName } : {}),
        // Hashes that depend on extra keys cannot teach links.
        ...(v.extra_keys !== undefined && v.extra_keys !== null ? { keyed: true } : {}),
      };
    }
    case "BlockRemoved":
      return {
        type: "BlockRemoved",
        blockHashes: jsonHashes(v.block_hashes, `${at}.block_hashes`),
        medium: optString(v.medium, `${at}.medium`),
      };
    case "AllBlocksCleared":
      return { type: "AllBlocksCleared" };
    default:
      throw bad(`${at}.type must be BlockStored, BlockRemoved or AllBlocksCleared`);
  }
}

const MSGPACK_TYPES = new Set([
  "application/msgpack",
  "application/x-msgpack",
  "application/vnd.msgpack",
]);

/** Builds the app. */
export function createKvEventsApp(options: KvEventsAppOptions): ServiceApp {
  const service = createServiceApp({
    service: "kv-events",
    logger: options.logger,
    accessLog: options.accessLog,
    bodyLimitBytes: options.bodyLimitBytes,
    maxInflightRequests: options.maxInflightRequests,
  });
  const { app, registry } = service;
  const { map, router, ingest } = options;
  const maxTokens = options.maxRouteTokens ?? 1_000_000;
  const bodyLimit = options.bodyLimitBytes ?? 8 << 20;

  const routeSeconds = registry.histogram(
    "kv_events_route_seconds",
    "Routing decision time (hashing, matching, scoring), without HTTP and JSON.",
    [],
    MICRO_BUCKETS_SECONDS,
  );
  const routeBlocks = registry.counter(
    "kv_events_route_blocks_total",
    "Prompt blocks visited by routing decisions.",
  );
  registerIngestMetrics(registry, options);

  app.post("/route", async (c) => {
    const body = await readJson(c.req.raw, bodyLimit);
    if (!isObject(body)) throw bad("body must be a JSON object");
    const model = optString(body.model, "model") ?? ingest.defaultModel;
    const keys = {
      loraName: optString(body.lora_name, "lora_name"),
      cacheSalt: optString(body.cache_salt, "cache_salt"),
    };
    let blocks: PromptBlocks;
    if (body.token_ids !== undefined) {
      const t = body.token_ids;
      if (!Array.isArray(t)) throw bad("token_ids must be an array of integers");
      if (t.length > maxTokens) throw bad(`token_ids: more than ${maxTokens} (MAX_ROUTE_TOKENS)`);
      // Checked and copied in one pass: the router takes u32 arrays as they are.
      const u = new Uint32Array(t.length);
      for (let i = 0; i < t.length; i++) {
        const v = t[i];
        if (typeof v !== "number" || !(v >= 0 && v <= 0xffffffff && Math.floor(v) === v)) {
          throw bad(`token_ids[${i}] is not a token id (an integer in [0, 2^32))`);
        }
        u[i] = v;
      }
      blocks = { tokens: u, keys };
    } else if (body.block_hashes !== undefined) {
      const hs = jsonHashes(body.block_hashes, "block_hashes");
      if (hs.length > maxTokens) throw bad(`block_hashes: more than ${maxTokens}`);
      const flat = new Uint32Array(hs.length * 2);
      const k: [number, number] = [0, 0];
      hs.forEach((h, i) => {
        hashKey(h, k);
        flat[i * 2] = k[0];
        flat[i * 2 + 1] = k[1];
      });
      blocks = { hashes: flat };
    } else throw bad("token_ids or block_hashes is required");
    let candidates: Candidate[] = [];
    if (body.pods !== undefined) {
      if (!Array.isArray(body.pods) || body.pods.length > map.maxPods * 4) {
        throw bad("pods must be an array of {id, load?}");
      }
      candidates = body.pods.map((p, i) => {
        if (!isObject(p) || typeof p.id !== "string" || p.id === "") {
          throw bad(`pods[${i}].id must be a non-empty string`);
        }
        const num = (v: unknown, what: string) => {
          if (v === undefined || v === null) return 0;
          if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) {
            throw bad(`pods[${i}].${what} must be a number >= 0`);
          }
          return v;
        };
        const load = p.load !== undefined
          ? num(p.load, "load")
          : num(p.running, "running") + num(p.waiting, "waiting");
        return { id: p.id, load };
      });
      if (candidates.length === 0) throw bad("pods is empty");
    }
    const t0 = performance.now();
    let result;
    try {
      result = router.route(model, blocks, candidates);
    } catch (e) {
      if (e instanceof RangeError) throw bad(e.message);
      throw e;
    }
    routeSeconds.observe((performance.now() - t0) / 1000);
    if (result === null) {
      throw new HttpError(
        404,
        "no_candidates",
        `no pod is known for model "${model}"; pass "pods" to choose among`,
      );
    }
    routeBlocks.inc(undefined, result.visited_blocks);
    return c.json({ model, block_size: router.blockSize, ...result });
  });

  app.post("/events", async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (MSGPACK_TYPES.has(type)) {
      const pod = c.req.query("pod");
      if (!pod) throw bad("a msgpack body needs ?pod=<id> (and optionally &model=)");
      const model = c.req.query("model") || ingest.defaultModel;
      const before = ingest.stats.decodeErrors;
      const bytes = await readBodyBytes(c.req.raw, bodyLimit);
      const ok = ingest.applyPayload(pod, model, bytes);
      if (!ok && ingest.stats.decodeErrors > before) {
        throw bad("body is not a msgpack KVEventBatch");
      }
      if (!ok) throw new HttpError(409, "pod_limit", `no room for pod "${pod}" (MAX_PODS)`);
      return c.json({ applied: true, pod: map.pod(pod) ? podJson(map, pod) : null });
    }
    const body = await readJson(c.req.raw, bodyLimit);
    if (!isObject(body)) throw bad("body must be a JSON object");
    const pod = optString(body.pod, "pod");
    if (pod === null || pod === "") throw bad("pod is required");
    const model = optString(body.model, "model") ?? ingest.defaultModel;
    if (!Array.isArray(body.events)) throw bad("events must be an array");
    const ts = body.ts ?? 0;
    if (typeof ts !== "number" || !Number.isFinite(ts)) throw bad("ts must be a number");
    const batch: KvEventBatch = {
      ts,
      dataParallelRank: null,
      events: body.events.map(jsonEvent),
      rejected: [],
    };
    if (!ingest.applyBatch(pod, model, batch)) {
      throw new HttpError(409, "pod_limit", `no room for pod "${pod}" (MAX_PODS)`);
    }
    return c.json({ applied: batch.events.length, pod: podJson(map, pod) });
  });

  app.get("/pods", (c) => {
    const pubs = options.publishers?.() ?? [];
    return c.json({
      pods: map.pods().map((p) => ({
        ...podJson(map, p.id),
        publisher: pubs.find((s) => s.pod === p.id) ?? null,
      })),
    });
  });

  app.post("/pods/:id/heartbeat", (c) => {
    const id = c.req.param("id");
    const model = c.req.query("model") ?? map.pod(id)?.model ?? ingest.defaultModel;
    try {
      map.touch(id, model);
    } catch (e) {
      throw new HttpError(409, "pod_limit", (e as Error).message);
    }
    return c.json(podJson(map, id));
  });

  app.delete("/pods/:id", (c) => {
    const id = c.req.param("id");
    if (!map.remove(id)) throw new HttpError(404, "not_found", `pod "${id}" is not known`);
    return c.json({ removed: id });
  });

  app.get("/stats", (c) => {
    const totals = map.totals();
    return c.json({
      pods: map.pods().length,
      models: map.models().map((m) => {
        const ix = map.index(m)!;
        return {
          model: m,
          blocks: ix.size,
          table_bytes: ix.bytes,
          records: ix.records,
          links: ix.links,
        };
      }),
      blocks: totals.blocks,
      max_blocks: Number.isFinite(map.maxBlocks) ? map.maxBlocks : null,
      index_bytes: totals.bytes,
      bytes_per_block: totals.blocks > 0 ? Math.round(totals.bytes / totals.blocks * 10) / 10 : 0,
      draining_pods: map.draining,
      ingest: { ...ingest.stats },
      publishers: options.publishers?.() ?? [],
      route: { decisions: routeSeconds.count(), weights: router.weights },
      ...options.extraStats?.(),
    });
  });

  return service;
}

function podJson(map: CacheMap, id: string) {
  const p = map.pod(id)!;
  return {
    id: p.id,
    model: p.model,
    blocks: p.blocks,
    events: p.events,
    resets: p.resets,
    roots_reproduced: p.rootsReproduced,
    roots_mismatched: p.rootsMismatched,
    last_seen: new Date(p.lastSeen).toISOString(),
  };
}

/** A counter read from a source of truth at scrape time. */
class ReadCounter extends Counter {
  #read: () => number;
  constructor(name: string, help: string, read: () => number) {
    super(name, help);
    this.#read = read;
  }
  override render(out: string[]): void {
    this.stateFor().value = this.#read();
    super.render(out);
  }
}

/** Counters and gauges of the ingest path and the index, read at scrape time. */
function registerIngestMetrics(registry: Registry, options: KvEventsAppOptions): void {
  const { ingest, map } = options;
  const s = ingest.stats;
  const counters: [string, string, () => number][] = [
    ["kv_events_messages_total", "Publisher messages received (ZMQ).", () => s.messages],
    ["kv_events_batches_total", "Event batches applied (ZMQ and HTTP).", () => s.batches],
    ["kv_events_blocks_stored_total", "Block hashes stored (BlockStored).", () => s.blocksStored],
    ["kv_events_blocks_removed_total", "Block hashes removed.", () => s.blocksRemoved],
    ["kv_events_cleared_total", "AllBlocksCleared events.", () => s.cleared],
    [
      "kv_events_decode_errors_total",
      "Payloads that were not an event batch.",
      () => s.decodeErrors,
    ],
    [
      "kv_events_rejected_events_total",
      "Malformed events skipped in good batches.",
      () => s.rejectedEvents,
    ],
    ["kv_events_bad_frames_total", "Messages with bad frames or no pod.", () => s.badFrames],
    ["kv_events_pod_limit_total", "Batches refused at MAX_PODS.", () => s.podLimit],
    [
      "kv_events_index_full_total",
      "New blocks not indexed: MAX_INDEX_BLOCKS reached, or their index segment at its largest size.",
      () => s.indexFull,
    ],
    ["kv_events_gaps_total", "Sequence gaps detected.", () => s.gaps],
    ["kv_events_gaps_repaired_total", "Gaps filled by a replay.", () => s.gapsRepaired],
    ["kv_events_gaps_unrepaired_total", "Gaps left open.", () => s.gapsUnrepaired],
    ["kv_events_missed_messages_total", "Messages skipped by gaps.", () => s.missedMessages],
    ["kv_events_replays_total", "Replays asked for gaps.", () => s.replays],
    [
      "kv_events_replayed_messages_total",
      "Messages applied from replays.",
      () => s.replayedMessages,
    ],
    ["kv_events_restarts_total", "Publisher sequence restarts (pod reset).", () => s.restarts],
  ];
  const chain = map.chain;
  if (chain !== null) {
    const c = () => chain.stats();
    counters.push(
      ["kv_events_chain_learned_total", "Chain links learned.", () => c().learned],
      [
        "kv_events_chain_in_order_total",
        "Chain links learned right after their parent's record (read in memory order).",
        () => c().inOrder,
      ],
      [
        "kv_events_chain_ambiguous_total",
        "Blocks or chain links found ambiguous (never followed).",
        () => c().ambiguous,
      ],
      ["kv_events_chain_hits_total", "Route lookups that found a learned link.", () => c().hits],
      ["kv_events_chain_misses_total", "Route lookups that found none.", () => c().misses],
      [
        "kv_events_chain_orphans_total",
        "Stored blocks not linked: their parent was not indexed.",
        () => c().orphans,
      ],
      [
        "kv_events_chain_lora_refused_total",
        "Stored events not learned: their LoRA name was empty.",
        () => c().loraRefused,
      ],
      [
        "kv_events_chain_roots_refused_total",
        "Chain first blocks not learned: the service's hasher gave another hash (a cache salt or " +
        "keys the event did not show, or an engine hashing with another seed).",
        () => c().rootsRefused,
      ],
    );
  }
  for (const [name, help, read] of counters) registry.register(new ReadCounter(name, help, read));
  registry.gauge("kv_events_index_blocks", "Blocks indexed (all models).", [], (g) => {
    g.set(map.totals().blocks);
  });
  registry.gauge("kv_events_index_bytes", "Bytes of the index tables.", [], (g) => {
    g.set(map.totals().bytes);
  });
  registry.gauge("kv_events_pods", "Pods known.", [], (g) => g.set(map.pods().length));
  registry.gauge(
    "kv_events_draining_pods",
    "Pods whose blocks are still being dropped a step at a time (their slots held until done).",
    [],
    (g) => g.set(map.draining),
  );
  registry.gauge("kv_events_held_messages", "Live messages held during replays.", [], (g) => {
    g.set(s.held);
  });
  const apply = registry.histogram(
    "kv_events_apply_seconds",
    "Receive-to-indexed time of an event batch.",
    [],
    MICRO_BUCKETS_SECONDS,
  );
  const e2e = registry.histogram(
    "kv_events_publish_to_index_seconds",
    "From the batch's timestamp (publisher clock) to indexed.",
    [],
    MICRO_BUCKETS_SECONDS,
  );
  ingest.hooks.observeApply = (v) => apply.observe(v);
  ingest.hooks.observePublishToIndex = (v) => e2e.observe(Math.max(0, v));
}
