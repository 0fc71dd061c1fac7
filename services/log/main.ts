/**
 * Entry point of the log service: reads the environment, opens (recovering) every topic under
 * DATA_DIR, serves the HTTP API on PORT, runs retention and compaction every
 * LOG_CHECK_INTERVAL_MS, and stops cleanly on SIGINT/SIGTERM (long polls end, partitions are
 * fsynced and closed).
 *
 * @module
 */
import { installGracefulShutdown, stdoutLogger } from "@deno-stores/shared/http";
import { startOrExit } from "@deno-stores/shared/config";
import { DenoFileSystem } from "@deno-stores/shared/wal";
import { createLogApp } from "./app.ts";
import { loadLogConfig, type LogConfig } from "./config.ts";
import { LogService } from "./service.ts";

async function run(config: LogConfig): Promise<void> {
  const { logger, flush } = stdoutLogger("log", config.LOG_LEVEL);
  const started = performance.now();
  const log = await LogService.open({
    fs: new DenoFileSystem({ syncIo: config.SYNC_IO }),
    dataDir: config.DATA_DIR,
    offsetsPartitions: config.OFFSETS_TOPIC_PARTITIONS,
    tailCacheBytes: config.TAIL_CACHE_BYTES,
    defaults: {
      "cleanup.policy": config.LOG_CLEANUP_POLICY,
      "segment.bytes": config.LOG_SEGMENT_BYTES,
      "segment.ms": config.LOG_SEGMENT_MS,
      "retention.bytes": config.LOG_RETENTION_BYTES,
      "retention.ms": config.LOG_RETENTION_MS,
      "delete.retention.ms": config.LOG_DELETE_RETENTION_MS,
      "max.message.bytes": config.LOG_MAX_MESSAGE_BYTES,
    },
    logger,
  });
  const stopping = new AbortController();
  const service = createLogApp({
    topics: log.topics,
    groups: log.groups,
    logger,
    accessLog: config.ACCESS_LOG,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    maxRequestBytes: config.MAX_REQUEST_BYTES,
    maxInflightRequests: config.MAX_INFLIGHT_REQUESTS,
    fetchMaxWaitMs: config.FETCH_MAX_WAIT_MS,
    fetchMaxBytes: config.FETCH_MAX_BYTES,
    defaultPartitions: config.NUM_PARTITIONS,
    stopping: stopping.signal,
  });

  // Retention and compaction, one pass at a time.
  let pass: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    pass = pass.then(() => log.maintain()).then((r) => {
      if (r.segmentsDeleted + r.segmentsCleaned > 0) logger.info("maintenance", { ...r });
    }).catch((e) => logger.warn("maintenance failed", { error: (e as Error).message }));
  }, config.LOG_CHECK_INTERVAL_MS);

  const server = Deno.serve({
    hostname: config.HOST,
    port: config.PORT,
    onListen: (addr) => {
      logger.info("listening", {
        url: `http://${addr.hostname}:${addr.port}`,
        data_dir: config.DATA_DIR,
        topics: log.topics.list().length,
        recovery_ms: Math.round(performance.now() - started),
      });
    },
  }, service.fetch);
  service.lifecycle.markStarted();
  for (const s of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(s, () => stopping.abort()); // long polls answer now
  }
  installGracefulShutdown({
    servers: [server],
    lifecycle: service.lifecycle,
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    onShutdown: [async () => {
      clearInterval(timer);
      await pass;
      await log.close();
    }],
    flush,
    exit: Deno.exit,
  });
}

if (import.meta.main) {
  await startOrExit("log", () => run(loadLogConfig(Deno.env.toObject())));
}
