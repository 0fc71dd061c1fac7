import assert from "node:assert/strict";
import { ConnectionClosedError, KvConnection, KvPool, ReplyError, TimeoutError } from "./client.ts";
import { ALL_COMMANDS } from "./commands/mod.ts";
import { Engine } from "./engine.ts";
import { RespServer } from "./resp_server.ts";

async function withServer(fn: (port: number) => Promise<void>, requirepass = ""): Promise<void> {
  const engine = new Engine(ALL_COMMANDS, { config: { requirepass } });
  const server = new RespServer({ engine, hostname: "127.0.0.1", port: 0 });
  try {
    await fn(server.addr.port);
  } finally {
    await server.close();
  }
}

Deno.test("KvConnection: commands in one tick share a write and come back in order", async () => {
  await withServer(async (port) => {
    const c = await KvConnection.connect({ port, name: "t" });
    try {
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) => c.command("INCRBY", "n", i + 1)),
      );
      // Each reply is the running sum: they ran in the order they were called.
      let sum = 0;
      replies.forEach((r, i) => assert.equal(r, sum += i + 1));
      assert.equal(await c.command("CLIENT", "GETNAME"), "t");
      const piped = await c.pipeline([["SET", "k", "é"], ["GET", "k"], ["LPUSH", "k", "x"]]);
      assert.deepEqual(piped.slice(0, 2), ["OK", "é"]);
      assert.ok(piped[2] instanceof ReplyError && piped[2].code === "WRONGTYPE");
      await assert.rejects(() => c.command("INCR", "k"), ReplyError);
      // Bytes in, bytes out with strings: "binary".
      const b = await KvConnection.connect({ port, strings: "binary" });
      await b.command("SET", "bin", new Uint8Array([0, 255, 10]));
      assert.equal(await b.command("GET", "bin"), "\x00\xff\n");
      b.close();
      await assert.rejects(() => b.command("PING"), ConnectionClosedError);
    } finally {
      c.close();
    }
  });
});

Deno.test("KvConnection: AUTH, RESP3 and SELECT from the options", async () => {
  await withServer(async (port) => {
    await assert.rejects(() => KvConnection.connect({ port, password: "bad" }), /WRONGPASS/);
    const c = await KvConnection.connect({ port, password: "pw", resp: 3, db: 2 });
    try {
      await c.command("HSET", "h", "a", "1");
      assert.deepEqual(await c.command("HGETALL", "h"), new Map([["a", "1"]]));
      assert.match(await c.command("CLIENT", "INFO") as string, / db=2 /);
    } finally {
      c.close();
    }
  }, "pw");
});

Deno.test("KvConnection: a server that stops answering fails pending commands, then closes", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  (async () => {
    for await (const conn of silent) accepted.push(conn);
  })();
  try {
    const c = await KvConnection.connect({ port: silent.addr.port, commandTimeoutMs: 50 });
    await assert.rejects(() => c.command("PING"), TimeoutError);
    assert.ok(c.closed);
  } finally {
    silent.close();
    for (const a of accepted) a.close();
  }
});

Deno.test("KvPool: at most `size` connections, waiters served in turn, acquire times out", async () => {
  await withServer(async (port) => {
    const pool = new KvPool({ port, size: 2, acquireTimeoutMs: 100 });
    try {
      const a = await pool.acquire(), b = await pool.acquire();
      assert.deepEqual(pool.stats(), { open: 2, idle: 0, busy: 2, opening: 0, waiting: 0 });
      await assert.rejects(() => pool.acquire(), TimeoutError);
      const waiting = pool.acquire();
      assert.equal(pool.stats().waiting, 1);
      pool.release(a);
      assert.equal(await waiting, a);
      pool.release(a);
      pool.release(b);
      assert.deepEqual(pool.stats(), { open: 2, idle: 2, busy: 0, opening: 0, waiting: 0 });
      // Many callers, two connections: every command runs.
      const rs = await Promise.all(Array.from({ length: 50 }, () => pool.command("INCR", "c")));
      assert.deepEqual(
        [...rs].sort((x, y) => (x as number) - (y as number)),
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      assert.equal(pool.stats().open, 2);
      // A connection the server closed is dropped, not handed out again.
      const c = await pool.acquire();
      await c.command("QUIT");
      await assert.rejects(() => c.command("PING"), ConnectionClosedError);
      pool.release(c);
      assert.equal(pool.stats().open, 1);
      assert.equal(await pool.command("PING"), "PONG");
      // Idle connections are closed after the idle timeout.
      pool.closeIdle(0);
      assert.equal(pool.stats().open, 0);
      assert.equal(await pool.command("GET", "c"), "50");
    } finally {
      await pool.close();
    }
    await assert.rejects(() => pool.acquire(), ConnectionClosedError);
  });
});
