/**
 * The log's API schemas (zod): topic configuration with Kafka's setting names, topic creation,
 * produce and fetch requests, consumer-group offset commits.
 *
 * @module
 */
import { z } from "zod";

/** Kafka's legal topic names: ASCII letters, digits, `.`, `_`, `-`; 1-249 characters. */
export const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
/** Consumer group ids: printable ASCII without `/`, 1-255 characters. */
export const GROUP_ID = /^[\x21-\x2e\x30-\x7e]{1,255}$/;

export const TopicName = z.string().regex(TOPIC_NAME, "topic names are 1-249 of [a-zA-Z0-9._-]")
  .refine((s) => s !== "." && s !== "..", "a topic may not be named . or ..");

const ms = z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER);

/**
 * Per-topic settings, Kafka's names. -1 means unlimited for the retention settings. Missing
 * fields take the server's defaults (LOG_* variables).
 */
export const TopicConfigSchema = z.object({
  "cleanup.policy": z.enum(["delete", "compact", "compact,delete", "delete,compact"]),
  "segment.bytes": z.number().int().min(14 * 1024).max(2 ** 31 - 1),
  "segment.ms": z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  "index.interval.bytes": z.number().int().min(1).max(1024 * 1024),
  "retention.bytes": z.number().int().min(-1).max(Number.MAX_SAFE_INTEGER),
  "retention.ms": ms,
  "delete.retention.ms": z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  "max.message.bytes": z.number().int().min(64).max(64 * 1024 * 1024),
  "message.timestamp.type": z.enum(["CreateTime", "LogAppendTime"]),
}).strict();

export type TopicConfig = z.infer<typeof TopicConfigSchema>;

export const CreateTopicBody = z.object({
  name: TopicName,
  partitions: z.number().int().min(1).max(10_000).optional(),
  config: TopicConfigSchema.partial().default({}),
}).strict();

export const TopicConfigPatch = z.object({ config: TopicConfigSchema.partial() }).strict();

/** How keys, values and header values travel in JSON. */
export const Format = z.enum(["json", "binary", "string"]);
export type Format = z.infer<typeof Format>;

const Header = z.object({ key: z.string().min(1).max(1024), value: z.unknown() }).strict();

const ProduceRecord = z.object({
  key: z.unknown().optional(),
  value: z.unknown(),
  partition: z.number().int().min(0).optional(),
  timestamp: z.number().int().min(0).max(2 ** 52 - 1).optional(),
  headers: z.array(Header).max(64).optional(),
}).strict();

export const ProduceBody = z.object({
  /** `json` (default): key and value are any JSON, stored as its text; `binary`: base64. */
  format: Format.default("json"),
  /** `fsync` (default): acknowledged once on disk; `write`: once written to the OS. */
  acks: z.enum(["write", "fsync"]).optional(),
  records: z.array(ProduceRecord).min(1).max(100_000),
}).strict();

export type ProduceBody = z.infer<typeof ProduceBody>;

const intString = (min: number, max: number) =>
  z.string().regex(/^-?[0-9]{1,16}$/, "an integer").transform(Number).pipe(
    z.number().int().min(min).max(max),
  );

export const FetchQuery = z.object({
  offset: intString(0, Number.MAX_SAFE_INTEGER).optional(),
  max_bytes: intString(1, 64 * 1024 * 1024).optional(),
  max_wait_ms: intString(0, 60_000).optional(),
  format: Format.optional(),
}).strict();

export const OffsetsQuery = z.object({
  timestamp: intString(-2, Number.MAX_SAFE_INTEGER).optional(),
}).strict();

export const CommitBody = z.object({
  offsets: z.array(
    z.object({
      topic: TopicName,
      partition: z.number().int().min(0),
      offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
      metadata: z.string().max(4096).optional(),
    }).strict(),
  ).min(1).max(10_000),
}).strict();
