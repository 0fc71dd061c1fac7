/**
 * Talks RESP by hand: sends bytes, returns what the server answers until it closes the
 * connection (the tests end their input with QUIT, or a protocol error).
 *
 * @module
 */
const te = new TextEncoder(), td = new TextDecoder();

export async function raw(
  port: number,
  bytes: string,
  until?: string,
  hostname = "127.0.0.1",
): Promise<string> {
  const conn = await Deno.connect({ hostname, port });
  await conn.write(te.encode(bytes));
  let got = "";
  const buf = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      got += td.decode(buf.subarray(0, n));
      if (until !== undefined && got.includes(until)) break;
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed by the server */ }
  }
  return got;
}
