import assert from "node:assert/strict";
import { serveWithConnectionLimit } from "./conn_limit.ts";

/** A raw keep-alive connection: send one GET, read one whole response. */
async function connect(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buf = new Uint8Array(4096);
  const dec = new TextDecoder();
  return {
    async get(): Promise<string> {
      await conn.write(new TextEncoder().encode("GET /x HTTP/1.1\r\nhost: x\r\n\r\n"));
      let text = "";
      while (!/\r\n\r\n[\s\S]*\}$/.test(text) && !text.endsWith("ok")) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n));
      }
      return text;
    },
    /** Everything until the server closes the connection. */
    async rest(): Promise<string> {
      let text = "";
      for (;;) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return text;
        text += dec.decode(buf.subarray(0, n));
      }
    },
    close: () => conn.close(),
  };
}

Deno.test("serveWithConnectionLimit refuses connections over the cap with 503, then takes new ones", async () => {
  const server = serveWithConnectionLimit(
    { hostname: "127.0.0.1", port: 0, maxConnections: 2 },
    (req) => new Response(`${new URL(req.url).pathname} ok`),
  );
  const port = server.addr.port;
  const a = await connect(port);
  const b = await connect(port);
  assert.match(await a.get(), /200 OK[\s\S]*\/x ok$/);
  assert.match(await b.get(), /ok$/);
  assert.equal(server.connections, 2);
  const c = await connect(port);
  const refused = await c.rest();
  assert.match(refused, /^HTTP\/1\.1 503/);
  assert.match(refused, /too_many_connections/);
  assert.equal(server.refused, 1);
  // The first two still work (keep-alive), then one goes and a new connection is taken.
  assert.match(await a.get(), /ok$/);
  b.close();
  const end = performance.now() + 5000;
  while (server.connections > 1 && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(server.connections, 1);
  const d = await connect(port);
  assert.match(await d.get(), /ok$/);
  a.close();
  d.close();
  await server.shutdown();
});
