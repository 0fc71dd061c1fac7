/**
 * The log's HTTP API, in the shape of the Kafka REST proxy: topics admin, produce, fetch (JSON
 * records or raw batches, long poll), offsets by time, consumer-group offsets; plus the shared
 * `/healthz`, `/readyz` and Prometheus `/metrics`. docs/log.md has the contract.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { Context } from "hono";
import {
  createServiceApp,
  HttpError,
  type Logger,
  parseBody,
  parseQuery,
  type ServiceApp,
  type ServiceEnv,
} from "@deno-stores/shared/http";
import { LogError, OffsetOutOfRangeError } from "./errors.ts";
import type { GroupStore } from "./groups.ts";
import type { Acks } from "./partition.ts";
import {
  BATCH_HEADER_BYTES,
  type BatchLimits,
  checkRecord,
  decodeBatches,
  type DecodedRecord,
  type LogRecord,
  type RecordHeader,
} from "./record_batch.ts";
import {
  CommitBody,
  CreateTopicBody,
  FetchQuery,
  type Format,
  GROUP_ID,
  OffsetsQuery,
  ProduceBody,
  TopicConfigPatch,
} from "./schemas.ts";
import { type PartitionHandle, type Topic, TopicError, type TopicManager } from "./topics.ts";

/** What the API needs of a partition (partition.ts's `Partition`). */
export interface ApiPartition extends PartitionHandle {
  readonly config: Readonly<BatchLimits>;
  append(
    records: LogRecord[],
    options: { acks: Acks },
  ): Promise<{ baseOffset: number; lastOffset: number }>;
  read(offset: number, maxBytes: number, options?: { into?: Uint8Array }): Promise<{
    bytes: Uint8Array;
    highWatermark: number;
    logStartOffset: number;
    nextOffset: number;
  }>;
  waitForData(offset: number, maxWaitMs: number, signal?: AbortSignal): Promise<boolean>;
  offsetForTimestamp(timestamp: number): Promise<{ offset: number; timestamp: number } | null>;
}

export interface LogAppOptions<P extends ApiPartition> {
  topics: TopicManager<P>;
  groups: GroupStore;
  logger: Logger;
  accessLog?: boolean;
  /** Limit of admin and commit bodies. */
  bodyLimitBytes?: number;
  /** Limit of produce bodies. */
  maxRequestBytes?: number;
  maxInflightRequests?: number;
  /** Default acks of a produce that does not say (default fsync). */
  defaultAcks?: Acks;
  fetchMaxWaitMs?: number;
  fetchMaxBytes?: number;
  /** Partitions of a topic created without a count. */
  defaultPartitions?: number;
  /** Aborted when the server stops: long polls answer at once. */
  stopping?: AbortSignal;
}

/** A fetch's default size (Kafka's `max.partition.fetch.bytes`). */
export const FETCH_DEFAULT_BYTES = 1024 * 1024;

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Maps the storage layer's and the topic manager's errors to HTTP errors. */
export function mapLogError(e: Error): HttpError | undefined {
  if (e instanceof OffsetOutOfRangeError) {
    return new HttpError(416, "offset_out_of_range", e.message);
  }
  if (e instanceof TopicError) {
    const status = {
      unknown_topic: 404,
      topic_exists: 409,
      invalid_topic: 400,
      internal_topic: 403,
    };
    return new HttpError(status[e.code], e.code, e.message);
  }
  if (e instanceof LogError) {
    switch (e.code) {
      case "RECORD_TOO_LARGE":
      case "BATCH_TOO_LARGE":
        return new HttpError(413, e.code.toLowerCase(), e.message);
      case "INVALID_RECORD":
        return new HttpError(400, "invalid_record", e.message);
      case "LOG_CLOSED":
        return new HttpError(503, "unavailable", e.message, { headers: { "retry-after": "1" } });
      case "LOG_FAILED":
        return new HttpError(503, "log_failed", e.message);
    }
  }
  return undefined;
}

/** The field's name (of the record, or of its header `header`), only spelled out for an error. */
const fieldName = (what: string, record: number, header = -1) =>
  `records[${record}].${header < 0 ? "" : `headers[${header}].`}${what}`;

/** A key, value or header value of a produce request, as bytes (null stays null). */
export function toBytes(
  v: unknown,
  format: Format,
  what: string,
  record: number,
  header = -1,
): Uint8Array | null {
  if (v === null || v === undefined) return null;
  switch (format) {
    case "json":
      return encoder.encode(JSON.stringify(v));
    case "string":
      if (typeof v !== "string") {
        throw bad(`${fieldName(what, record, header)}: format string takes strings`);
      }
      return encoder.encode(v);
    case "binary":
      if (typeof v !== "string" || !BASE64.test(v)) {
        throw bad(`${fieldName(what, record, header)}: not base64`);
      }
      return new Uint8Array(Buffer.from(v, "base64"));
  }
}

/** Bytes of a fetched record as the consumer asked for them (`what` names it in an error). */
export function fromBytes(
  b: Uint8Array | null,
  format: Format,
  what: string,
  offset: number,
  header?: string,
): unknown {
  if (b === null) return null;
  if (format === "binary") {
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
  }
  let text: string;
  try {
    text = utf8.decode(b);
  } catch {
    throw new HttpError(
      422,
      "not_decodable",
      `${valueName(what, header)} of offset ${offset} is not UTF-8; fetch with format=binary`,
    );
  }
  if (format === "string") return text;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(
      422,
      "not_decodable",
      `${
        valueName(what, header)
      } of offset ${offset} is not JSON; fetch with format=binary or string`,
    );
  }
}

/** A fetched key, value or header (`header`: its key), named only for an error. */
const valueName = (what: string, header?: string) =>
  header === undefined ? what : `header ${header}`;

const bad = (message: string) => new HttpError(400, "bad_request", message);

function partitionOf<P extends ApiPartition>(t: Topic<P>, raw: string): { p: P; index: number } {
  const index = /^[0-9]{1,9}$/.test(raw) ? Number(raw) : -1;
  if (index < 0 || index >= t.partitions.length) {
    throw new HttpError(
      404,
      "unknown_partition",
      `topic ${t.name} has no partition ${JSON.stringify(raw)} (it has ${t.partitions.length})`,
    );
  }
  return { p: t.partitions[index], index };
}

function describePartition(p: PartitionHandle, index: number) {
  return {
    partition: index,
    log_start_offset: p.logStartOffset,
    high_watermark: p.highWatermark,
    size_bytes: p.size,
    segments: p.segmentCount,
  };
}

function describeTopic<P extends ApiPartition>(t: Topic<P>) {
  return {
    name: t.name,
    id: t.id,
    internal: t.internal,
    partitions: t.partitions.map(describePartition),
    config: t.config,
    overrides: t.overrides,
  };
}

/** A partition's records of one produce request, and where each stood in the request. */
interface Group {
  records: LogRecord[];
  at: number[];
}

/** Where each record of a produce request went, in request order. */
type Offsets = { partition: number; offset: number }[];

/**
 * Fetches of up to the default size read into a pooled buffer (JSON answers). A topic whose
 * `index.interval.bytes` exceeds the pool's slack reads into buffers of its own (the segment
 * uses a lent buffer only when the read fits).
 */
const FETCH_POOLED_BYTES = FETCH_DEFAULT_BYTES;

/**
 * Read buffers lent to JSON fetches and given back once the records are decoded. A new buffer
 * per fetch is memory outside the JS heap that V8 counts towards a full collection: under a
 * few thousand fetches a second it ran one about twice a second, each spreading ~10 ms of
 * marking over the requests of that moment (the fetch latency's p99).
 */
export class BufferPool {
  readonly #free: Uint8Array[] = [];
  #lent = 0;
  /**
   * At most `keep` buffers of `size` plus room for the index interval a read starts before its
   * offset; past that many at once, a fetch reads into exactly what it needs, as without a pool.
   */
  constructor(readonly size: number, readonly keep: number, readonly slack = 64 * 1024) {}

  /** A buffer for a read of `maxBytes`, or undefined past the pooled size or count. */
  take(maxBytes: number): Uint8Array | undefined {
    if (maxBytes > this.size) return undefined;
    const buf = this.#free.pop() ??
      (this.#lent < this.keep ? new Uint8Array(this.size + this.slack) : undefined);
    if (buf !== undefined) this.#lent++;
    return buf;
  }

  /** Gives back a buffer from {@link take} (undefined: nothing was lent). */
  give(buf: Uint8Array | undefined): void {
    if (buf === undefined) return;
    this.#lent--;
    this.#free.push(buf);
  }

  /** Buffers waiting to be lent. */
  get idle(): number {
    return this.#free.length;
  }
}

/** The log service's app. */
export function createLogApp<P extends ApiPartition>(options: LogAppOptions<P>): ServiceApp {
  const { topics, groups } = options;
  const service = createServiceApp({
    service: "log",
    logger: options.logger,
    accessLog: options.accessLog,
    bodyLimitBytes: options.bodyLimitBytes,
    maxInflightRequests: options.maxInflightRequests,
    mapError: mapLogError,
  });
  const { app, registry } = service;
  const maxRequestBytes = options.maxRequestBytes ?? 16 * 1024 * 1024;
  const defaultAcks = options.defaultAcks ?? "fsync";
  const fetchMaxWait = options.fetchMaxWaitMs ?? 30_000;
  const fetchMaxBytes = options.fetchMaxBytes ?? 50 * 1024 * 1024;
  const stopping = options.stopping;

  const produced = registry.counter("log_produced_records_total", "Records appended.", ["topic"]);
  const producedBytes = registry.counter(
    "log_produced_bytes_total",
    "Key, value and header bytes appended.",
    ["topic"],
  );
  const fetched = registry.counter("log_fetched_records_total", "Records returned by fetches.", [
    "topic",
  ]);
  const fetchedBytes = registry.counter(
    "log_fetched_bytes_total",
    "Batch bytes read by fetches.",
    ["topic"],
  );
  registry.gauge("log_topic_size_bytes", "Bytes on disk per topic.", ["topic"], (g) => {
    for (const t of topics.list()) {
      g.set(t.partitions.reduce((n, p) => n + p.size, 0), { topic: t.name });
    }
  });
  registry.gauge(
    "log_topic_records",
    "High watermark minus log start, per topic.",
    ["topic"],
    (g) => {
      for (const t of topics.list()) {
        g.set(t.partitions.reduce((n, p) => n + p.highWatermark - p.logStartOffset, 0), {
          topic: t.name,
        });
      }
    },
  );

  // ---- topics admin
  app.get("/topics", (c) =>
    c.json({
      topics: topics.list().map((t) => ({
        name: t.name,
        partitions: t.partitions.length,
        internal: t.internal,
      })),
    }));
  app.post("/topics", async (c) => {
    const body = await parseBody(c, CreateTopicBody);
    const t = await topics.create(
      body.name,
      body.partitions ?? options.defaultPartitions ?? 1,
      body.config,
    );
    return c.json(describeTopic(t), 201);
  });
  app.get("/topics/:topic", (c) => c.json(describeTopic(topics.require(c.req.param("topic")))));
  app.patch("/topics/:topic/config", async (c) => {
    const body = await parseBody(c, TopicConfigPatch);
    const t = topics.require(c.req.param("topic"));
    if (t.internal) throw new HttpError(403, "internal_topic", `${t.name} is internal`);
    return c.json({ config: await topics.reconfigure(t.name, body.config) });
  });
  app.delete("/topics/:topic", async (c) => {
    const name = c.req.param("topic");
    await topics.delete(name);
    await groups.forgetTopic(name);
    return c.body(null, 204);
  });

  // ---- produce
  /**
   * Every record to one partition (a single record, a sticky or fixed partition): one batch,
   * which the partition checks whole before writing anything. Undefined past a limit: the
   * general path then names the offending record, or cuts the records into several batches.
   */
  const appendWhole = async (
    t: Topic<P>,
    groups: Map<number, Group>,
    acks: Acks,
    /** Bytes of the records' keys and values: past the batch limit, it certainly is too large. */
    bytes: number,
  ): Promise<Offsets | undefined> => {
    const [[p, g]] = groups;
    const part = t.partitions[p];
    if (g.records.length > part.config.maxRecordsPerBatch) return undefined;
    if (bytes + BATCH_HEADER_BYTES > part.config.maxBatchBytes) return undefined;
    try {
      const { baseOffset } = await part.append(g.records, { acks });
      return g.at.map((_, k) => ({ partition: p, offset: baseOffset + k }));
    } catch (e) {
      const status = e instanceof LogError ? mapLogError(e)?.status : undefined;
      if (status === 400 || status === 413) return undefined;
      throw e;
    }
  };

  /** Checks every record, cuts each partition's records into batches, then appends them all. */
  const appendPlanned = async (
    t: Topic<P>,
    groups: Map<number, Group>,
    acks: Acks,
    count: number,
  ): Promise<Offsets> => {
    // Every record is checked and each partition's records are cut into batches under its size
    // limit before anything is written: a refused request writes nothing.
    const plans: { p: number; g: Group; cuts: number[] }[] = [];
    for (const [p, g] of groups) {
      const limits = t.partitions[p].config;
      const room = limits.maxBatchBytes - BATCH_HEADER_BYTES;
      const cuts: number[] = [];
      let start = 0, size = 0;
      g.records.forEach((r, k) => {
        let n: number;
        try {
          n = checkRecord(r, limits, t.compacted);
        } catch (e) {
          const mapped = e instanceof LogError ? mapLogError(e) : undefined;
          if (mapped === undefined) throw e;
          throw new HttpError(
            mapped.status,
            mapped.code,
            `records[${g.at[k]}]: ${(e as Error).message}`,
          );
        }
        if (n > room) {
          throw new HttpError(
            413,
            "record_too_large",
            `records[${
              g.at[k]
            }] takes up to ${n} bytes; topic ${t.name} takes batches of ${limits.maxBatchBytes}`,
          );
        }
        if (k > start && (size + n > room || k - start >= limits.maxRecordsPerBatch)) {
          cuts.push(k);
          start = k;
          size = 0;
        }
        size += n;
      });
      plans.push({ p, g, cuts: [...cuts, g.records.length] });
    }
    // All appended before any is awaited: the partition serializes appends in call order, so a
    // partition's batches get consecutive offsets and share one fsync.
    const offsets: Offsets = new Array(count);
    const appends: Promise<void>[] = [];
    for (const { p, g, cuts } of plans) {
      let start = 0;
      for (const end of cuts) {
        const at = g.at.slice(start, end);
        appends.push(
          t.partitions[p].append(g.records.slice(start, end), { acks }).then(({ baseOffset }) => {
            at.forEach((i, k) => offsets[i] = { partition: p, offset: baseOffset + k });
          }),
        );
        start = end;
      }
    }
    await Promise.all(appends);
    return offsets;
  };

  const produce = async (c: Context<ServiceEnv>, fixed?: string) => {
    const t = topics.require(c.req.param("topic")!);
    if (t.internal) {
      throw new HttpError(403, "internal_topic", `${t.name} is written by the server`);
    }
    c.env.bodyLimitBytes = Math.max(c.env.bodyLimitBytes, maxRequestBytes);
    const body = await parseBody(c, ProduceBody);
    const acks = body.acks ?? defaultAcks;
    const n = t.partitions.length;
    const forced = fixed === undefined ? undefined : partitionOf(t, fixed).index;
    // Records without key or partition all go to one partition per request (Kafka's sticky
    // partitioner: one batch rather than one per record).
    let sticky = -1;
    const groups = new Map<number, Group>();
    let bytes = 0;
    body.records.forEach((r, i) => {
      const key = toBytes(r.key, body.format, "key", i);
      const value = toBytes(r.value, body.format, "value", i);
      const headers: RecordHeader[] | undefined = r.headers?.map((h, j) => ({
        key: h.key,
        value: toBytes(h.value, body.format, "value", i, j),
      }));
      if (forced !== undefined && r.partition !== undefined && r.partition !== forced) {
        throw bad(`records[${i}].partition ${r.partition} differs from the path's ${forced}`);
      }
      if (r.partition !== undefined && r.partition >= n) {
        throw new HttpError(
          404,
          "unknown_partition",
          `topic ${t.name} has no partition ${r.partition}`,
        );
      }
      let p = forced ?? r.partition ?? -1;
      if (p < 0) {
        if (key !== null) p = t.partitioner.choose(n, key);
        else p = sticky >= 0 ? sticky : (sticky = t.partitioner.choose(n, null));
      }
      let g = groups.get(p);
      if (g === undefined) groups.set(p, g = { records: [], at: [] });
      g.records.push({ key, value, headers, timestamp: r.timestamp });
      g.at.push(i);
      bytes += (key?.length ?? 0) + (value?.length ?? 0);
    });
    const offsets = (groups.size === 1 ? await appendWhole(t, groups, acks, bytes) : undefined) ??
      await appendPlanned(t, groups, acks, body.records.length);
    produced.inc({ topic: t.name }, body.records.length);
    producedBytes.inc({ topic: t.name }, bytes);
    return c.json({ offsets });
  };
  app.post("/topics/:topic", (c) => produce(c));
  app.post("/topics/:topic/partitions/:partition", (c) => produce(c, c.req.param("partition")));

  // ---- partitions, fetch, offsets by time
  const readBuffers = new BufferPool(FETCH_POOLED_BYTES, 8);
  app.get("/topics/:topic/partitions", (c) => {
    const t = topics.require(c.req.param("topic"));
    return c.json({ partitions: t.partitions.map(describePartition) });
  });
  app.get("/topics/:topic/partitions/:partition", (c) => {
    const t = topics.require(c.req.param("topic"));
    const { p, index } = partitionOf(t, c.req.param("partition"));
    return c.json(describePartition(p, index));
  });
  app.get("/topics/:topic/partitions/:partition/records", async (c) => {
    const q = parseQuery(c, FetchQuery);
    const t = topics.require(c.req.param("topic"));
    const { p } = partitionOf(t, c.req.param("partition"));
    const offset = q.offset ?? p.logStartOffset;
    const maxBytes = Math.min(q.max_bytes ?? FETCH_DEFAULT_BYTES, fetchMaxBytes);
    const wait = Math.min(q.max_wait_ms ?? 0, fetchMaxWait);
    // Out of range (416) is the read's to say; at the high watermark the read waits first.
    if (offset === p.highWatermark && wait > 0) {
      const signal = stopping === undefined
        ? c.req.raw.signal
        : AbortSignal.any([c.req.raw.signal, stopping]);
      await p.waitForData(offset, wait, signal);
    }
    const raw = q.format === undefined && c.req.header("accept") === "application/octet-stream";
    // A JSON fetch is done with its read buffer once the records are decoded: it borrows one.
    const into = raw ? undefined : readBuffers.take(maxBytes);
    // One try: the buffer goes back whether the read or the decoding fails (raw: none taken).
    try {
      const r = await p.read(offset, maxBytes, into === undefined ? {} : { into });
      const next = r.nextOffset;
      fetchedBytes.inc({ topic: t.name }, r.bytes.length);
      const meta = {
        "x-high-watermark": String(r.highWatermark),
        "x-log-start-offset": String(r.logStartOffset),
        "x-next-offset": String(next),
      };
      if (raw) {
        return c.body(r.bytes as Uint8Array<ArrayBuffer>, 200, {
          ...meta,
          "content-type": "application/octet-stream",
        });
      }
      const format = q.format ?? "json";
      let jsonNext = next;
      // As the Kafka REST proxy does, max_bytes counts the keys and values answered: records
      // stop after the one that reaches it (one at least), even inside a batch.
      const decoded = decodeBatches(r.bytes, offset);
      let n = 0, bytes = 0;
      while (n < decoded.length && (n === 0 || bytes < maxBytes)) {
        const rec = decoded[n++];
        bytes += (rec.key?.length ?? 0) + (rec.value?.length ?? 0);
      }
      if (n < decoded.length) jsonNext = decoded[n - 1].offset + 1;
      decoded.length = n;
      const records = decoded.map((rec: DecodedRecord) => ({
        offset: rec.offset,
        timestamp: rec.timestamp,
        key: fromBytes(rec.key, format, "key", rec.offset),
        value: fromBytes(rec.value, format, "value", rec.offset),
        headers: rec.headers.map((h) => ({
          key: h.key,
          value: fromBytes(h.value, format, "value", rec.offset, h.key),
        })),
      }));
      fetched.inc({ topic: t.name }, records.length);
      return c.json({
        records,
        high_watermark: r.highWatermark,
        log_start_offset: r.logStartOffset,
        next_offset: jsonNext,
      });
    } finally {
      // Keys, values and headers are strings or JSON values now: nothing points into it.
      readBuffers.give(into);
    }
  });
  app.get("/topics/:topic/partitions/:partition/offsets", async (c) => {
    const q = parseQuery(c, OffsetsQuery);
    const t = topics.require(c.req.param("topic"));
    const { p, index } = partitionOf(t, c.req.param("partition"));
    const ts = q.timestamp;
    // Kafka's ListOffsets: -1 latest, -2 earliest, else the first offset at or after the time.
    let found: { offset: number; timestamp: number } | null;
    if (ts === undefined || ts === -1) found = { offset: p.highWatermark, timestamp: -1 };
    else if (ts === -2) found = { offset: p.logStartOffset, timestamp: -1 };
    else found = await p.offsetForTimestamp(ts);
    return c.json({
      partition: index,
      // The first offset whose timestamp is at or after the time asked, and that timestamp;
      // null when every record is older.
      offset: found?.offset ?? null,
      timestamp: found?.timestamp ?? null,
      log_start_offset: p.logStartOffset,
      high_watermark: p.highWatermark,
    });
  });

  // ---- consumer groups
  app.get("/consumers", (c) => c.json({ groups: groups.groups() }));
  app.post("/consumers/:group/offsets", async (c) => {
    const group = groupId(c.req.param("group"));
    const body = await parseBody(c, CommitBody);
    for (const o of body.offsets) {
      const t = topics.require(o.topic);
      if (o.partition >= t.partitions.length) {
        throw new HttpError(
          404,
          "unknown_partition",
          `topic ${o.topic} has no partition ${o.partition}`,
        );
      }
    }
    await groups.commit(group, body.offsets);
    return c.json({ committed: body.offsets.length });
  });
  app.get("/consumers/:group/offsets", (c) => {
    const group = groupId(c.req.param("group"));
    const topic = c.req.query("topic");
    return c.json({
      group,
      offsets: groups.offsets(group, topic).map((o) => {
        const p = topics.get(o.topic)?.partitions[o.partition];
        return {
          topic: o.topic,
          partition: o.partition,
          offset: o.offset,
          metadata: o.metadata,
          committed_at: o.timestamp,
          lag: p === undefined ? null : Math.max(0, p.highWatermark - o.offset),
        };
      }),
    });
  });
  app.delete("/consumers/:group", async (c) => {
    const group = groupId(c.req.param("group"));
    if (!(await groups.deleteGroup(group))) {
      throw new HttpError(404, "unknown_group", `group ${JSON.stringify(group)} has no offsets`);
    }
    return c.body(null, 204);
  });

  return service;
}

function groupId(raw: string): string {
  if (!GROUP_ID.test(raw)) throw bad("group ids are 1-255 printable ASCII characters but /");
  return raw;
}
