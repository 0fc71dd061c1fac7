/**
 * Assembles the log service from a file system and settings: the topic manager over real
 * partitions, the consumer-offsets topic and the group store on it, and the maintenance loop
 * (retention, compaction). main.ts serves it; tests run it on a temporary directory or SimDisk.
 *
 * @module
 */
import type { FileSystem } from "@deno-stores/shared/wal";
import { GroupStore, OFFSETS_TOPIC, type OffsetsLog } from "./groups.ts";
import { Partition, type PartitionConfig } from "./partition.ts";
import { decodeBatches } from "./record_batch.ts";
import type { TopicConfig } from "./schemas.ts";
import { TopicManager } from "./topics.ts";

/** Kafka's topic settings as the storage engine's partition settings. */
export function partitionConfig(c: TopicConfig): PartitionConfig {
  const policy = c["cleanup.policy"];
  return {
    cleanupPolicy: policy === "delete,compact" ? "compact,delete" : policy,
    segmentBytes: c["segment.bytes"],
    segmentMs: c["segment.ms"],
    indexIntervalBytes: c["index.interval.bytes"],
    retentionBytes: c["retention.bytes"],
    retentionMs: c["retention.ms"],
    deleteRetentionMs: c["delete.retention.ms"],
    maxBatchBytes: c["max.message.bytes"],
    maxValueBytes: c["max.message.bytes"],
    timestampType: c["message.timestamp.type"] === "LogAppendTime" ? "logAppend" : "create",
  };
}

export interface LogServiceOptions {
  fs: FileSystem;
  dataDir: string;
  /** Server defaults of topic settings. */
  defaults?: Partial<TopicConfig>;
  /** Partitions of the consumer-offsets topic when it is created. */
  offsetsPartitions?: number;
  clock?: { now(): number };
  /** Newest bytes of each partition kept in memory (PartitionOptions.tailCacheBytes). */
  tailCacheBytes?: number;
  logger?: {
    warn(msg: string, fields?: Record<string, unknown>): void;
    info(msg: string, fields?: Record<string, unknown>): void;
  };
}

/** What maintenance did in one pass. */
export interface MaintenanceResult {
  segmentsDeleted: number;
  segmentsCleaned: number;
  bytesReclaimed: number;
}

/** The running log: topics, groups, maintenance. */
export class LogService {
  private constructor(
    readonly topics: TopicManager<Partition>,
    readonly groups: GroupStore,
    readonly logger: LogServiceOptions["logger"],
  ) {}

  static async open(options: LogServiceOptions): Promise<LogService> {
    const clock = options.clock ?? { now: Date.now };
    const logger = options.logger ?? {
      warn: (m: string, f?: Record<string, unknown>) => console.warn(m, f ?? ""),
      info: () => {},
    };
    await options.fs.mkdir(options.dataDir);
    const topics = await TopicManager.open<Partition>({
      fs: options.fs,
      dataDir: options.dataDir,
      defaults: options.defaults,
      now: () => clock.now(),
      log: (m, f) => logger.warn(m, f),
      open: (dir, config, topic, partition) =>
        Partition.open(options.fs, dir, partitionConfig(config), {
          clock,
          tailCacheBytes: options.tailCacheBytes,
          logger: {
            warn: (m, f) => logger.warn(m, { topic, partition, ...f }),
            info: (m, f) => logger.info(m, { topic, partition, ...f }),
          },
        }),
      reconfigure: (p, config) => p.reconfigure(partitionConfig(config)),
    });
    try {
      const internal = topics.get(OFFSETS_TOPIC) ??
        await topics.create(
          OFFSETS_TOPIC,
          options.offsetsPartitions ?? 4,
          { "cleanup.policy": "compact", "segment.bytes": 100 * 1024 * 1024 },
          true,
        );
      const groups = await GroupStore.open(internal.partitions.map(offsetsLog), () => clock.now());
      if (groups.skipped > 0) {
        logger.warn("undecodable consumer-offset records skipped", { count: groups.skipped });
      }
      return new LogService(topics, groups, logger);
    } catch (e) {
      await topics.close();
      throw e;
    }
  }

  /** Retention then compaction on every partition (one at a time). */
  async maintain(): Promise<MaintenanceResult> {
    const r: MaintenanceResult = { segmentsDeleted: 0, segmentsCleaned: 0, bytesReclaimed: 0 };
    for (const t of this.topics.list()) {
      for (const p of t.partitions) {
        try {
          const before = p.size;
          r.segmentsDeleted += await p.enforceRetention();
          if (p.config.cleanupPolicy.includes("compact")) {
            r.segmentsCleaned += (await p.compact()).segmentsCleaned;
          }
          r.bytesReclaimed += Math.max(0, before - p.size);
        } catch (e) {
          // A partition deleted meanwhile is closed; anything else is worth a warning.
          if (this.topics.get(t.name) === t) {
            this.logger?.warn("maintenance failed", {
              topic: t.name,
              error: (e as Error).message,
            });
          }
        }
      }
    }
    return r;
  }

  close(): Promise<void> {
    return this.topics.close();
  }
}

/** A partition of the offsets topic as the group store uses it. */
function offsetsLog(p: Partition): OffsetsLog {
  return {
    append: async (records) => {
      await p.append(records, { acks: "fsync" });
    },
    records: async function* () {
      let offset = p.logStartOffset;
      while (offset < p.highWatermark) {
        const r = await p.read(offset, 1024 * 1024);
        if (r.bytes.length === 0) break;
        yield* decodeBatches(r.bytes, offset);
        offset = r.nextOffset;
      }
    },
  };
}
