/**
 * Both RESP listeners, for tests that must hold for each: Deno's sockets (RespServer) and the
 * native epoll loop (NativeRespServer, which needs Linux and --allow-ffi: the tests fail
 * without them rather than skip).
 *
 * @module
 */
import { openLibc } from "../libc.ts";
import { NativeRespServer } from "../native_server.ts";
import { RespServer, type RespServerOptions } from "../resp_server.ts";

export const LISTENER_KINDS = ["deno", "native"] as const;
export type ListenerKind = typeof LISTENER_KINDS[number];

export type Listener = RespServer | NativeRespServer;

export function startListener(kind: ListenerKind, options: RespServerOptions): Listener {
  if (kind === "deno") return new RespServer(options);
  const loaded = openLibc();
  if (!loaded.ok) throw new Error(`native listener: ${loaded.reason}`);
  return new NativeRespServer({ ...options, libc: loaded.libc });
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
