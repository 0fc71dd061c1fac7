/**
 * kv: a Redis-compatible key-value server (RESP2/RESP3 over TCP).
 *
 * @module
 */
export { ALL_COMMANDS } from "./commands/mod.ts";
export { Client, type Command, CommandError, Engine, type EngineOptions } from "./engine.ts";
export { RespServer, type RespServerOptions } from "./resp_server.ts";
export { binaryToBytes, bytesToBinary, RespProtocolError, RespReader, RespWriter } from "./resp.ts";
export {
  NativeRespServer,
  type NativeRespServerOptions,
  NativeUnavailable,
  SyscallError,
} from "./native_server.ts";
export { type Libc, openLibc } from "./libc.ts";
