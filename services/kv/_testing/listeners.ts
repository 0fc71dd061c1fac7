/**
 * Both RESP listeners, for tests that must hold for each: Deno's sockets (RespServer) and the
 * native epoll loop (NativeRespServer, which needs Linux and --allow-ffi: the tests fail
 * without them rather than skip).
 *
 * @module
 */
import { ALL_COMMANDS } from "../commands/mod.ts";
import { Engine } from "../engine.ts";
import { type Libc, openLibc } from "../libc.ts";
import { NativeRespServer } from "../native_server.ts";
import { RespServer, type RespServerOptions } from "../resp_server.ts";

export const LISTENER_KINDS = ["deno", "native"] as const;
export type ListenerKind = typeof LISTENER_KINDS[number];

export type Listener = RespServer | NativeRespServer;

/** The C library for the native listener; throws (with the reason) when it cannot load. */
export function testLibc(): Libc {
  const loaded = openLibc();
  if (!loaded.ok) throw new Error(`native listener: ${loaded.reason}`);
  return loaded.libc;
}

/** An engine with every command whose internal errors fail the test. */
export function testEngine(config: ConstructorParameters<typeof Engine>[1] = {}): Engine {
  return new Engine(ALL_COMMANDS, {
    ...config,
    onInternalError: (e) => {
      throw e;
    },
  });
}

export function startListener(kind: ListenerKind, options: RespServerOptions): Listener {
  if (kind === "deno") return new RespServer(options);
  return new NativeRespServer({ ...options, libc: testLibc() });
}

/** Runs `fn` once per listener kind; a failure names the kind. */
export async function forEachListener(fn: (kind: ListenerKind) => Promise<void>): Promise<void> {
  for (const kind of LISTENER_KINDS) {
    try {
      await fn(kind);
    } catch (e) {
      if (e instanceof Error) e.message = `[${kind} listener] ${e.message}`;
      throw e;
    }
  }
}

/** Runs `fn` against a fresh engine behind each listener kind, on 127.0.0.1. */
export function withEachListener(
  fn: (port: number, engine: Engine) => Promise<void>,
  config: ConstructorParameters<typeof Engine>[1] = {},
): Promise<void> {
  return forEachListener(async (kind) => {
    const engine = testEngine(config);
    const server = startListener(kind, { engine, hostname: "127.0.0.1", port: 0 });
    try {
      await fn(server.addr.port, engine);
    } finally {
      await server.close();
    }
  });
}
