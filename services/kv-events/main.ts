/**
 * Entry point of kv-events: reads the environment, connects to the configured ZMQ publishers
 * (and binds ZMQ_BIND), serves the HTTP API on PORT, and stops cleanly on SIGINT/SIGTERM.
 *
 * @module
 */
import { installGracefulShutdown, stdoutLogger } from "@deno-stores/shared/http";
import { ConfigError, startOrExit } from "@deno-stores/shared/config";
import { createKvEventsApp } from "./app.ts";
import { BlockHasher } from "./block_hash.ts";
import { type KvEventsConfig, loadKvEventsConfig } from "./config.ts";
import { Ingest } from "./ingest.ts";
import { Router } from "./router.ts";
import { CacheMap } from "./store.ts";
import { ChainTable } from "./chain.ts";
import { chooseSha256 } from "./sha256.ts";
import { ZmqSources } from "./zmq_source.ts";

/** The configured SHA-256; `HASH_IMPL=native` that cannot load is a configuration error. */
function sha256Impl(config: KvEventsConfig) {
  try {
    return chooseSha256(config.HASH_IMPL);
  } catch (e) {
    throw new ConfigError([{ variable: "HASH_IMPL", message: (e as Error).message }]);
  }
}

function run(config: KvEventsConfig): void {
  const { logger, flush } = stdoutLogger("kv-events", config.LOG_LEVEL);
  const newHasher = () =>
    new BlockHasher({
      algo: config.HASH_ALGO,
      seed: config.HASH_SEED,
      blockSize: config.BLOCK_SIZE,
      sha256: sha256Impl(config),
    });
  // Warnings from the event path are rate-limited: a broken publisher must not flood the log.
  let warned = 0, windowStart = 0, suppressed = 0;
  const warn = (message: string, fields: Record<string, unknown>) => {
    const now = Date.now();
    if (now - windowStart > 1000) {
      if (suppressed > 0) logger.warn("warnings suppressed", { count: suppressed });
      windowStart = now;
      warned = 0;
      suppressed = 0;
    }
    if (++warned <= 20) logger.warn(message, fields);
    else suppressed++;
  };
  // A removed or reset pod's blocks leave the index a step at a time between other work (at 1.4 M
  // blocks p50 0.05 ms, p99 0.2-0.3 ms a step, cut at DRAIN_STEP_MS), not in one sweep that would
  // hold events and routes up (27-55 ms).
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  const drainSoon = () => {
    drainTimer ??= setTimeout(() => {
      drainTimer = undefined;
      if (map.serviceStep()) drainSoon();
    }, 1);
  };
  const map = new CacheMap({
    warn,
    onDrain: drainSoon,
    maxPods: config.MAX_PODS,
    maxBlocks: config.MAX_INDEX_BLOCKS,
    chain: config.LEARN_CHAINS === "on"
      ? {
        table: new ChainTable(),
        blockSize: config.BLOCK_SIZE,
        // Chains' first blocks are checked with the hasher routes use (an instance of its own).
        hasher: newHasher(),
        uncheckedAfter: config.CHAIN_UNCHECKED_AFTER,
      }
      : undefined,
  });
  const hasher = newHasher();
  const router = new Router(map, hasher, {
    cacheWeight: config.ROUTE_CACHE_WEIGHT,
    loadWeight: config.ROUTE_LOAD_WEIGHT,
    offloadWeight: config.ROUTE_OFFLOAD_WEIGHT,
    imbalanceAbs: config.ROUTE_IMBALANCE_ABS,
    imbalanceRel: config.ROUTE_IMBALANCE_REL,
  });
  const ingest = new Ingest(map, {
    defaultModel: config.DEFAULT_MODEL,
    hooks: { warn },
  });
  const zmq = new ZmqSources(ingest, {
    publishers: config.PUBLISHERS,
    bind: config.ZMQ_BIND,
    topic: config.TOPIC,
    maxFrameBytes: config.ZMQ_MAX_FRAME_BYTES,
    replayTimeoutMs: config.REPLAY_TIMEOUT_MS,
    maxHeld: config.REPLAY_MAX_HELD,
  });

  // Events per second over the last second, for /stats.
  let rate = { batches: 0, blocks: 0 };
  let last = { batches: 0, blocks: 0 };
  const sample = () => {
    const s = ingest.stats;
    const now = { batches: s.batches, blocks: s.blocksStored + s.blocksRemoved };
    rate = { batches: now.batches - last.batches, blocks: now.blocks - last.blocks };
    last = now;
  };

  const service = createKvEventsApp({
    map,
    router,
    ingest,
    logger,
    accessLog: config.ACCESS_LOG,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    maxInflightRequests: config.MAX_INFLIGHT_REQUESTS,
    maxRouteTokens: config.MAX_ROUTE_TOKENS,
    publishers: () => zmq.statuses(),
    extraStats: () => ({
      per_second: { batches: rate.batches, blocks: rate.blocks },
      hash: {
        algo: hasher.algo,
        block_size: hasher.blockSize,
        sha256: hasher.sha256Impl,
        learned_chains: map.chain?.stats() ?? null,
      },
      zmq: zmq.transport(),
    }),
  });

  const bound = zmq.start();
  const timers = [
    setInterval(() => zmq.tick(), 100),
    setInterval(sample, 1000),
  ];
  if (config.POD_TIMEOUT_MS > 0) {
    timers.push(setInterval(() => {
      for (const id of map.expire(config.POD_TIMEOUT_MS, (pod) => zmq.isConnected(pod))) {
        logger.info("pod dropped: no event or heartbeat", { pod: id });
      }
    }, Math.max(100, Math.floor(config.POD_TIMEOUT_MS / 4))));
  }

  const server = Deno.serve({
    hostname: config.HOST,
    port: config.PORT,
    onListen: (addr) => {
      logger.info("listening", {
        url: `http://${addr.hostname}:${addr.port}`,
        publishers: config.PUBLISHERS.length,
        zmq_bind: bound ? `tcp://${bound.hostname}:${bound.port}` : null,
        hash_algo: hasher.algo,
        sha256: hasher.sha256Impl,
        block_size: hasher.blockSize,
      });
    },
  }, service.fetch);
  service.lifecycle.markStarted();
  installGracefulShutdown({
    servers: [server],
    lifecycle: service.lifecycle,
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    onShutdown: [() => {
      for (const t of timers) clearInterval(t);
      clearTimeout(drainTimer);
      return zmq.close();
    }],
    flush,
    exit: Deno.exit,
  });
}

if (import.meta.main) {
  await startOrExit("kv-events", () => run(loadKvEventsConfig(Deno.env.toObject())));
}
