/**
 * kv's environment, validated (docs/kv.md lists every variable).
 *
 * @module
 */
import { z } from "zod";
import { bool, httpEnvShape, int, parseEnv, port } from "@deno-stores/shared/config";
import type { Env } from "@deno-stores/shared/config";
import { MAX_BULK_BYTES_DEFAULT, MAX_QUERY_BUFFER_BYTES_DEFAULT } from "./resp.ts";

/** Default HTTP port (the HTTP API, health and metrics). */
export const KV_PORT_DEFAULT = 8005;
/** Default RESP port (Redis's). */
export const RESP_PORT_DEFAULT = 6379;

/** The configuration schema. */
export function kvConfigSchema() {
  return z.object({
    ...httpEnvShape(KV_PORT_DEFAULT),
    /** RESP (Redis protocol) port; 0 lets the OS choose. */
    RESP_PORT: port(RESP_PORT_DEFAULT),
    /**
     * Worker isolates doing RESP socket I/O, one isolate running the commands (Redis's
     * `io-threads`); 0: one isolate does both.
     */
    IO_THREADS: int(0, 0, 64),
    /**
     * How RESP sockets are served: `native` (an epoll loop through FFI, Linux, needs
     * --allow-ffi), `deno` (Deno's socket ops), `auto` (native when it can start). IO_THREADS
     * above 0 always uses Deno's sockets.
     */
    RESP_IO: z.enum(["auto", "native", "deno"]).default("auto"),
    /**
     * Native loop: microseconds it keeps polling after the last ready socket before it sleeps
     * (0: at once, as Redis). Under load it then never sleeps, which saves the wake-ups of the
     * server and its clients; the cost is up to this much CPU after each burst.
     */
    RESP_SPIN_US: int(500, 0, 1_000_000),
    /** The password of the default user (Redis's `requirepass`); empty = none. */
    REQUIREPASS: z.string().max(4096).default(""),
    /** Bearer token of the HTTP API; empty = REQUIREPASS (and none if that is empty too). */
    HTTP_TOKEN: z.string().max(4096).default(""),
    DATABASES: int(16, 1, 1024),
    MAXCLIENTS: int(10_000, 1, 1_000_000),
    /** Largest bulk string a client may send (Redis's `proto-max-bulk-len`). */
    PROTO_MAX_BULK_LEN: int(MAX_BULK_BYTES_DEFAULT, 1024, 2 ** 31),
    /** Bytes a client may have buffered unparsed (Redis's `client-query-buffer-limit`). */
    CLIENT_QUERY_BUFFER_LIMIT: int(MAX_QUERY_BUFFER_BYTES_DEFAULT, 1024 * 1024, 2 ** 32),
    /** Keys with a TTL examined per database per active-expiry tick (10 ticks a second). */
    ACTIVE_EXPIRE_KEYS: int(200, 1, 1_000_000),
    /** Most milliseconds one active-expiry tick may take. */
    ACTIVE_EXPIRE_BUDGET_MS: int(25, 1, 1000),
    /** Persistence: an append-only log of the writes under DATA_DIR (Redis's `appendonly`). */
    APPENDONLY: bool(false),
    /** When logged writes are fsynced: `always` (before the reply), `everysec`, `no` (the OS). */
    APPENDFSYNC: z.enum(["always", "everysec", "no"]).default("everysec"),
    /** Where the log and its snapshots live. */
    DATA_DIR: z.string().min(1).max(4096).default(".data/kv"),
    /** Rewrite (compact) the log once it grew by this many bytes... */
    AOF_REWRITE_MIN_BYTES: int(64 * 1024 * 1024, 1024, 2 ** 40),
    /** ...and by this percentage of the last snapshot. */
    AOF_REWRITE_PERCENTAGE: int(100, 1, 100_000),
  });
}

export type KvConfig = z.infer<ReturnType<typeof kvConfigSchema>>;

/** Reads the configuration from an environment; throws ConfigError listing every problem. */
export function loadKvConfig(env: Env): KvConfig {
  return parseEnv(kvConfigSchema(), env);
}
