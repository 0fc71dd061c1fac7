/**
 * Entry point of the tasks service: reads the environment, opens the store
 * and serves HTTP. With `STORAGE_TYPE=pool` this module also runs inside each
 * pool worker (it detects that it is a worker), so that `main.ts` stays the
 * only file that touches `Deno.env` and `Deno.serve`.
 *
 * @module
 */
import { installGracefulShutdown, type Logger, stdoutLogger } from "@deno-stores/shared/http";
import { startOrExit } from "@deno-stores/shared/config";
import { createTasksApp } from "./app.ts";
import { loadTasksConfig, type TasksConfig } from "./config.ts";
import { openStore } from "./store/factory.ts";
import { type PoolTableHandle, PoolTaskStore } from "./store/pool_store.ts";
import type { TaskStore } from "./store/types.ts";

const WORKER_PREFIX = "tasks-pool-";

function serveOptions(config: TasksConfig, logger: Logger, reusePort: boolean) {
  return {
    hostname: config.HOST,
    port: config.PORT,
    reusePort,
    onListen: (addr: Deno.NetAddr) => {
      logger.info("listening", {
        url: `http://${addr.hostname}:${addr.port}`,
        port: addr.port,
        storage: config.STORAGE_TYPE,
      });
    },
  };
}

function randomBits30(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! & 0x3fff_ffff;
}

function appFor(config: TasksConfig, store: TaskStore, logger: Logger, requestIdPrefix?: string) {
  return createTasksApp({
    store,
    logger,
    now: Date.now,
    accessLog: config.ACCESS_LOG,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    bulkBodyLimitBytes: config.BULK_BODY_LIMIT_BYTES,
    maxInflightRequests: config.MAX_INFLIGHT_REQUESTS,
    requestIdPrefix,
  });
}

async function runSingle(config: TasksConfig): Promise<void> {
  const { logger, flush } = stdoutLogger("tasks", config.LOG_LEVEL);
  const store = await openStore(config, randomBits30);
  const service = appFor(config, store, logger);
  const server = Deno.serve(serveOptions(config, logger, false), service.fetch);
  service.lifecycle.markStarted();
  installGracefulShutdown({
    servers: [server],
    lifecycle: service.lifecycle,
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    onShutdown: [() => store.close()],
    flush,
    exit: Deno.exit,
  });
}

/** Picks a free port when PORT=0, since every worker must bind the same one. */
function resolvePort(config: TasksConfig): number {
  if (config.PORT !== 0) return config.PORT;
  const probe = Deno.listen({ hostname: config.HOST, port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

type WorkerMessage =
  | { type: "listening"; port: number }
  | { type: "stopped" }
  | { type: "failed"; message: string };

async function runPool(config: TasksConfig): Promise<void> {
  const { logger, flush } = stdoutLogger("tasks", config.LOG_LEVEL);
  const port = resolvePort(config);
  const handle = PoolTaskStore.createTable(config);
  const workers: Worker[] = [];
  const listening: Promise<void>[] = [];
  const stopped: Promise<void>[] = [];
  for (let i = 0; i < config.POOL_WORKERS; i++) {
    const worker = new Worker(import.meta.url, { type: "module", name: `${WORKER_PREFIX}${i}` });
    let onListening!: () => void;
    let onStopped!: () => void;
    let onFailed!: (error: Error) => void;
    listening.push(
      new Promise((resolve, reject) => {
        onListening = resolve;
        onFailed = reject;
      }),
    );
    stopped.push(new Promise((resolve) => (onStopped = resolve)));
    worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      if (event.data.type === "listening") onListening();
      else if (event.data.type === "stopped") onStopped();
      else onFailed(new Error(`pool worker ${i}: ${event.data.message}`));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      onFailed(new Error(`pool worker ${i}: ${event.message}`));
      onStopped();
    };
    worker.postMessage({ config: { ...config, PORT: port }, handle, index: i });
    workers.push(worker);
  }
  try {
    await Promise.all(listening);
  } catch (error) {
    logger.error("pool failed to start", { error });
    flush();
    Deno.exit(1);
  }
  logger.info("listening", {
    url: `http://${config.HOST}:${port}`,
    port,
    storage: "pool",
    workers: config.POOL_WORKERS,
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    logger.info("shutting down", { workers: workers.length });
    for (const worker of workers) worker.postMessage({ type: "shutdown" });
    const timeout = new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_TIMEOUT_MS));
    await Promise.race([Promise.all(stopped), timeout]);
    for (const worker of workers) worker.terminate();
    logger.info("stopped");
    flush();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}

function runPoolWorker(): void {
  const scope = self as unknown as {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(message: WorkerMessage): void;
  };
  let stop: (() => Promise<void>) | undefined;
  scope.onmessage = async (event: MessageEvent) => {
    const data = event.data as {
      type?: string;
      config: TasksConfig;
      handle: PoolTableHandle;
      index: number;
    };
    if (data.type === "shutdown") {
      await stop?.();
      scope.postMessage({ type: "stopped" });
      return;
    }
    try {
      const config = data.config;
      const { logger, flush } = stdoutLogger("tasks", config.LOG_LEVEL);
      const store = PoolTaskStore.attach(data.handle);
      const service = appFor(config, store, logger, `w${data.index}`);
      const server = Deno.serve(
        { hostname: config.HOST, port: config.PORT, reusePort: true, onListen: () => {} },
        service.fetch,
      );
      service.lifecycle.markStarted();
      stop = async () => {
        service.lifecycle.markDraining();
        await server.shutdown();
        flush();
      };
      scope.postMessage({ type: "listening", port: config.PORT });
    } catch (error) {
      scope.postMessage({ type: "failed", message: (error as Error).message });
    }
  };
}

async function main(): Promise<void> {
  await startOrExit("tasks", async () => {
    const config = loadTasksConfig(Deno.env.toObject(), navigator.hardwareConcurrency);
    if (config.STORAGE_TYPE === "pool") await runPool(config);
    else await runSingle(config);
  });
}

const inWorker = typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !==
    "undefined" && (self as unknown as { name?: string }).name?.startsWith(WORKER_PREFIX);

if (inWorker) runPoolWorker();
else if (import.meta.main) await main();
