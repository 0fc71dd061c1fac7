/**
 * Small socket helpers shared by the RESP listener (resp_server.ts) and the I/O workers
 * (io_worker.ts).
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
