/**
 * The log service's environment, validated (docs/log.md lists every variable).
 *
 * @module
 */
import { z } from "zod";
import { bool, httpEnvShape, int, parseEnv } from "@deno-stores/shared/config";
import type { Env } from "@deno-stores/shared/config";

/** Default HTTP port. */
export const LOG_PORT_DEFAULT = 8004;

/** The configuration schema. */
export function logConfigSchema() {
  return z.object({
    ...httpEnvShape(LOG_PORT_DEFAULT),
    /** Where topics live. */
    DATA_DIR: z.string().min(1).max(4096).default(".data/log"),
    /**
     * Read and write segment files with synchronous calls (fast from the page cache: a log's
     * tail); `false` goes through the runtime's thread pool (a read from the disk then does not
     * block the event loop). fsync is asynchronous either way.
     */
    SYNC_IO: bool(true),
    /**
     * Bytes of its newest data each partition's active segment keeps in memory: fetches of the
     * tail are answered without a system call. 0 turns it off.
     */
    TAIL_CACHE_BYTES: int(256 * 1024, 0, 1024 * 1024 * 1024),
    /** Produce bodies up to this size (records of up to LOG_MAX_MESSAGE_BYTES each). */
    MAX_REQUEST_BYTES: int(16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    /** Partitions of a topic created without a count. */
    NUM_PARTITIONS: int(1, 1, 10_000),
    /** Defaults of every topic's settings (Kafka's log.* broker settings). */
    LOG_SEGMENT_BYTES: int(1024 * 1024 * 1024, 14 * 1024, 2 ** 31 - 1),
    LOG_SEGMENT_MS: int(7 * 24 * 3600_000, 1, Number.MAX_SAFE_INTEGER),
    LOG_RETENTION_BYTES: int(-1, -1, Number.MAX_SAFE_INTEGER),
    LOG_RETENTION_MS: int(7 * 24 * 3600_000, -1, Number.MAX_SAFE_INTEGER),
    LOG_CLEANUP_POLICY: z.enum(["delete", "compact", "compact,delete"]).default("delete"),
    LOG_DELETE_RETENTION_MS: int(24 * 3600_000, 0, Number.MAX_SAFE_INTEGER),
    LOG_MAX_MESSAGE_BYTES: int(1024 * 1024 + 12, 64, 64 * 1024 * 1024),
    /** How often retention and compaction look at every partition. */
    LOG_CHECK_INTERVAL_MS: int(30_000, 100, 24 * 3600_000),
    /** Partitions of the internal consumer-offsets topic (fixed once created). */
    OFFSETS_TOPIC_PARTITIONS: int(4, 1, 1000),
    /** Longest long poll a fetch may ask for. */
    FETCH_MAX_WAIT_MS: int(30_000, 0, 600_000),
    /** Largest fetch response. */
    FETCH_MAX_BYTES: int(50 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
  });
}

export type LogConfig = z.infer<ReturnType<typeof logConfigSchema>>;

/** Reads the configuration from an environment; throws ConfigError listing every problem. */
export function loadLogConfig(env: Env): LogConfig {
  return parseEnv(logConfigSchema(), env);
}
