/**
 * deno-kv-compat: the KV Connect protocol, so that any Deno program can use this server as
 * its `Deno.Kv` with `Deno.openKv("http://<host>:<port>/kv")` and `DENO_KV_ACCESS_TOKEN` set.
 *
 * {@link mountKvConnect} adds the endpoints to a Hono app; {@link MemoryKvConnectStore} is the
 * default store; the codec and message modules are exported for tests and tools.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { mountKvConnect } from "./mod.ts";
 *
 * const app = new Hono();
 * const kvConnect = mountKvConnect(app, { token: "secret-token" });
 * // Deno.serve({ port: 8005 }, app.fetch); then, in any Deno program:
 * // DENO_KV_ACCESS_TOKEN=secret-token → await Deno.openKv("http://127.0.0.1:8005/kv")
 * kvConnect.close(); // on shutdown: ends open watch streams
 * ```
 *
 * @module
 */
export { type KvConnect, type KvConnectOptions, mountKvConnect } from "./routes.ts";
export {
  type AtomicWriteResult,
  decodeCommit,
  encodeCommit,
  type KvCommit,
  type KvConnectStore,
  MemoryKvConnectStore,
  type MemoryKvConnectStoreOptions,
  versionstampOf,
} from "./store.ts";
export { KV_CONNECT_LIMITS, KvConnectError } from "./limits.ts";
export { ProtobufError } from "./protobuf.ts";
export * from "./messages.ts";
