/**
 * Small socket helpers shared by the RESP listeners (resp_server.ts, native_server.ts) and the
 * I/O threads (io_threads.ts, io_worker.ts).
 *
 * @module
 */

/** Writes every byte (`write` may take only part of them). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Closes, ignoring a connection closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** True for the errors of a peer going away (not worth a log line). */
export function isDisconnect(e: unknown): boolean {
  return e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.BrokenPipe ||
    e instanceof Deno.errors.BadResource || e instanceof Deno.errors.ConnectionAborted ||
    e instanceof Deno.errors.Interrupted;
}

/** `host:port` as Redis writes addresses (an IPv6 host in brackets). */
export function formatAddr(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** Redis's refusal past `maxclients`, and the same as a reply. */
export const MAXCLIENTS_ERROR = "ERR max number of clients reached";
export const MAXCLIENTS_REPLY = new TextEncoder().encode(`-${MAXCLIENTS_ERROR}\r\n`);
