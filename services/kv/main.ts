/**
 * Entry point of kv: reads the environment, loads the append-only file (APPENDONLY), serves RESP
 * on RESP_PORT and the HTTP API on PORT, runs active expiry, and stops cleanly on SIGINT/SIGTERM
 * (the log fsynced and closed last).
 *
 * @module
 */
import { installGracefulShutdown, type Logger, stdoutLogger } from "@deno-stores/shared/http";
import { startOrExit } from "@deno-stores/shared/config";
import { createKvApp } from "./app.ts";
import { ALL_COMMANDS } from "./commands/mod.ts";
import { type KvConfig, loadKvConfig } from "./config.ts";
import { Engine } from "./engine.ts";
import { Aof } from "./persistence.ts";
import { decodeCommit, encodeCommit, MemoryKvConnectStore } from "./kv_connect/mod.ts";
import { IoThreads } from "./io_threads.ts";
import { RespServer, type RespServerOptions } from "./resp_server.ts";
import { NativeRespServer, NativeUnavailable } from "./native_server.ts";
import { openLibc } from "./libc.ts";

async function run(config: KvConfig): Promise<void> {
  const { logger, flush } = stdoutLogger("kv", config.LOG_LEVEL);
  const engine = new Engine(ALL_COMMANDS, {
    config: {
      requirepass: config.REQUIREPASS,
      databases: config.DATABASES,
      maxclients: config.MAXCLIENTS,
      "proto-max-bulk-len": config.PROTO_MAX_BULK_LEN,
      "client-query-buffer-limit": config.CLIENT_QUERY_BUFFER_LIMIT,
      "active-expire-keys": config.ACTIVE_EXPIRE_KEYS,
    },
    onInternalError: (e, args) => {
      logger.error("internal error", {
        command: args[0]?.slice(0, 64),
        error: e instanceof Error ? (e.stack ?? e.message) : String(e),
      });
    },
  });
  // Deno KV Connect's entries: logged in the same append-only file, as records of their own.
  const kvConnectStore = new MemoryKvConnectStore();
  let aof: Aof | null = null;
  if (config.APPENDONLY) {
    const started = performance.now();
    aof = await Aof.open({
      engine,
      dir: config.DATA_DIR,
      fsync: config.APPENDFSYNC,
      logger,
      autoRewriteMinBytes: config.AOF_REWRITE_MIN_BYTES,
      autoRewritePercentage: config.AOF_REWRITE_PERCENTAGE,
      aux: {
        apply: (payload) => kvConnectStore.applyCommit(decodeCommit(payload)),
        snapshot: () => Array.from(kvConnectStore.commits(Date.now()), encodeCommit),
      },
    });
    engine.writeHook = (w) => aof!.record(w);
    kvConnectStore.onCommit = (c) => aof!.recordAux(encodeCommit(c));
    engine.persistence = aof;
    engine.config.appendonly = "yes";
    engine.config.appendfsync = config.APPENDFSYNC;
    logger.info("append-only file loaded", {
      dir: config.DATA_DIR,
      keys: engine.keyspace.size,
      ms: Math.round(performance.now() - started),
      ...aof.load,
    });
  }
  const commit = () => aof?.commit() ?? null;
  const onConnectionError = (e: unknown) => logger.warn("connection error", { error: String(e) });
  const resp = config.IO_THREADS > 0
    ? await IoThreads.start({
      engine,
      hostname: config.HOST,
      port: config.RESP_PORT,
      threads: config.IO_THREADS,
      commit,
      onError: onConnectionError,
    })
    : startRespServer(config, {
      engine,
      hostname: config.HOST,
      port: config.RESP_PORT,
      commit,
      onConnectionError,
    }, logger);
  const respPort = resp instanceof IoThreads ? resp.port : resp.addr.port;
  const service = createKvApp({
    engine,
    logger,
    token: config.HTTP_TOKEN || config.REQUIREPASS,
    commit,
    kvConnectStore,
    accessLog: config.ACCESS_LOG,
    bodyLimitBytes: config.BODY_LIMIT_BYTES,
    maxInflightRequests: config.MAX_INFLIGHT_REQUESTS,
  });
  service.registry.gauge("kv_keys", "Keys in every database.", [], (g) => {
    g.set(engine.keyspace.size);
  });
  service.registry.gauge("kv_connected_clients", "RESP connections open.", [], (g) => {
    g.set(resp.connections);
  });
  service.registry.gauge("kv_commands_processed", "Commands run (RESP and HTTP).", [], (g) => {
    g.set(engine.stats.commands);
  });

  // Active expiry, ten ticks a second (CONFIG SET active-expire-keys applies at the next one).
  const expiry = setInterval(() => {
    engine.keyspace.activeExpireCycle(
      engine.config["active-expire-keys"],
      config.ACTIVE_EXPIRE_BUDGET_MS,
      () => performance.now(),
    );
  }, 100);

  const server = Deno.serve({
    hostname: config.HOST,
    port: config.PORT,
    onListen: (addr) => {
      logger.info("listening", {
        url: `http://${addr.hostname}:${addr.port}`,
        resp: `redis://${config.HOST}:${respPort}`,
        io_threads: config.IO_THREADS,
        resp_io: resp instanceof NativeRespServer ? "native" : "deno",
        auth: config.REQUIREPASS !== "",
      });
    },
  }, service.fetch);
  service.lifecycle.markStarted();
  installGracefulShutdown({
    // Open KV Connect watch streams never end by themselves: end them before the HTTP drain.
    servers: [{
      shutdown: () => {
        service.kvConnect.close();
        return server.shutdown();
      },
    }, resp],
    lifecycle: service.lifecycle,
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    onShutdown: [() => clearInterval(expiry), async () => await aof?.close()],
    flush,
    exit: Deno.exit,
  });
}

/**
 * The RESP listener RESP_IO asks for: the native epoll loop, or Deno's sockets (`auto` falls
 * back to them, with the reason logged, when the native loop cannot start).
 */
function startRespServer(
  config: KvConfig,
  options: RespServerOptions,
  logger: Logger,
): RespServer | NativeRespServer {
  if (config.RESP_IO !== "deno") {
    const loaded = openLibc();
    try {
      if (!loaded.ok) throw new NativeUnavailable(loaded.reason);
      return new NativeRespServer({
        ...options,
        libc: loaded.libc,
        spinMicros: config.RESP_SPIN_US,
      });
    } catch (e) {
      if (config.RESP_IO === "native" || !(e instanceof NativeUnavailable)) throw e;
      logger.info("native RESP loop unavailable: Deno sockets", { reason: e.message });
    }
  }
  return new RespServer(options);
}

if (import.meta.main) {
  await startOrExit("kv", () => run(loadKvConfig(Deno.env.toObject())));
}
