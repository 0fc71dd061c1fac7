/**
 * RESP through I/O worker isolates (IO_THREADS): the same answers as with one isolate.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { ALL_COMMANDS } from "./commands/mod.ts";
import { Engine } from "./engine.ts";
import { IoThreads } from "./io_threads.ts";
import { raw } from "./_testing/raw.ts";

Deno.test({
  name: "io threads: two workers on one port, one executor: commands, pipelines, MULTI, errors",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const engine = new Engine(ALL_COMMANDS);
    const io = await IoThreads.start({ engine, hostname: "127.0.0.1", port: 0, threads: 2 });
    try {
      // Many connections: the kernel spreads them over both workers; all see one keyspace.
      const clients = Array.from(
        { length: 8 },
        () => new Redis({ port: io.port, host: "127.0.0.1", lazyConnect: true }),
      );
      await Promise.all(clients.map((c) => c.connect()));
      await Promise.all(clients.map(async (c) => {
        for (let i = 0; i < 50; i++) await c.incr("shared");
      }));
      assert.equal(await clients[0].get("shared"), "400");
      const p = clients[1].pipeline();
      for (let i = 0; i < 500; i++) p.rpush("list", String(i));
      const res = await p.exec();
      assert.deepEqual(res![499], [null, 500]);
      assert.deepEqual(await clients[2].lrange("list", 0, 2), ["0", "1", "2"]);
      assert.deepEqual(await clients[3].multi().set("t", "1").incr("t").exec(), [
        [null, "OK"],
        [null, 2],
      ]);
      await assert.rejects(() => clients[4].incr("list"), /WRONGTYPE/);
      // A 1 MB value crosses the rings in pieces.
      const big = "x".repeat(1 << 20);
      await clients[5].set("big", big);
      assert.equal((await clients[6].get("big"))!.length, 1 << 20);
      for (const c of clients) c.disconnect();
      // Protocol error: earlier replies, then the error, then the connection is closed.
      assert.equal(
        await raw(io.port, "PING\r\n*1\r\n$x\r\n"),
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
      );
      assert.equal(
        await raw(io.port, "SET a 1\r\nINCR a\r\nQUIT\r\nGET a\r\n"),
        "+OK\r\n:2\r\n+OK\r\n",
      );
    } finally {
      await io.close();
    }
  },
});

Deno.test({
  name: "io threads: replies wait for the persistence commit, and a failed commit sends none",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const engine = new Engine(ALL_COMMANDS);
    let release: (() => void) | null = null;
    let fail = false;
    let committed = 0;
    const io = await IoThreads.start({
      engine,
      hostname: "127.0.0.1",
      port: 0,
      threads: 1,
      commit: () => {
        if (fail) return Promise.reject(new Error("disk gone"));
        return new Promise<void>((r) => (release = () => {
          committed++;
          r();
        }));
      },
    });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: io.port });
      await conn.write(new TextEncoder().encode("SET k v\r\n"));
      // The command ran, but its reply is held until the commit resolves.
      while (release === null) await new Promise((r) => setTimeout(r, 5));
      const buf = new Uint8Array(64);
      const reading = conn.read(buf);
      // Nothing may come back before the commit (a reply sent early would be here by then).
      const early = await Promise.race([
        reading.then(() => "reply"),
        new Promise((r) => setTimeout(() => r("nothing"), 100)),
      ]);
      assert.equal(early, "nothing");
      assert.equal(committed, 0);
      (release as () => void)();
      const n = await reading;
      assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "+OK\r\n");
      assert.equal(committed, 1);
      // A failed commit: no reply, the connection is closed.
      fail = true;
      await conn.write(new TextEncoder().encode("SET k w\r\n"));
      assert.equal(await conn.read(buf), null);
      conn.close();
    } finally {
      await io.close();
    }
  },
});
