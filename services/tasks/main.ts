/**
 * Entry point of the tasks service: reads the environment, opens the store
 * and serves HTTP. With `STORAGE_TYPE=pool` this module also runs inside each
 * pool worker (it detects that it is a worker), so that `main.ts` stays the
 * only file that touches `Deno.env` and `Deno.serve`.
 *
 * @module
 */
import {
  BufferedSink,
  createLogger,
  installGracefulShutdown,
  type Logger,
} from "@deno-stores/shared/http";
import { ConfigError } from "@deno-stores/shared/config";
import { createTasksApp } from "./app.ts";
import { loadTasksConfig, type TasksConfig } from "./config.ts";
import { openStore } from "./store/factory.ts";

const encoder = new TextEncoder();

function writeAll(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}

function makeLogger(config: TasksConfig, name: string) {
  const sink = new BufferedSink(writeAll, (fn) => setTimeout(fn, 20));
  const logger = createLogger({
    service: name,
    level: config.LOG_LEVEL,
    sink: sink.sink,
    now: Date.now,
  });
  return { logger, sink };
}

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

async function runSingle(config: TasksConfig): Promise<void> {
  const { logger, sink } = makeLogger(config, "tasks");
  const store = await openStore(config, randomBits30);
  const service = createTasksApp({
    store,
    logger,
    now: Date.now,
    accessLog: config.ACCESS_LOG,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    bulkBodyLimitBytes: config.BULK_BODY_LIMIT_BYTES,
    maxInflightRequests: config.MAX_INFLIGHT_REQUESTS,
  });
  const server = Deno.serve(serveOptions(config, logger, false), service.fetch);
  service.lifecycle.markStarted();
  installGracefulShutdown({
    servers: [server],
    lifecycle: service.lifecycle,
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    onShutdown: [() => store.close()],
    flush: () => sink.flush(),
    exit: Deno.exit,
  });
}

async function main(): Promise<void> {
  let config: TasksConfig;
  try {
    config = loadTasksConfig(Deno.env.toObject(), navigator.hardwareConcurrency);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`tasks: ${error.message}`);
      Deno.exit(2);
    }
    throw error;
  }
  await runSingle(config);
}

if (import.meta.main) await main();
