/**
 * The server over TCP with real clients: ioredis and node-redis from npm, and Debian's redis-cli
 * and redis-benchmark when they are installed. Every test runs against both RESP listeners
 * (Deno's sockets and the native epoll loop).
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { withEachListener } from "./_testing/listeners.ts";
import { raw } from "./_testing/raw.ts";
import { have } from "../../bench/lib/process.ts";

const te = new TextEncoder(), td = new TextDecoder();

Deno.test({
  name: "ioredis: every command group, pipelines, transactions, errors, binary values",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withEachListener(async (port) => {
      const r = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
      await r.connect();
      try {
        assert.equal(await r.ping(), "PONG");
        assert.equal(await r.set("k", "v", "EX", 100), "OK");
        assert.equal(await r.get("k"), "v");
        assert.equal(await r.ttl("k"), 100);
        assert.equal(await r.incrby("n", 5), 5);
        assert.equal(await r.incrbyfloat("f", 1.5), "1.5");
        assert.deepEqual(await r.mget("k", "n", "none"), ["v", "5", null]);
        assert.equal(await r.rpush("l", "a", "b", "c"), 3);
        assert.deepEqual(await r.lrange("l", 0, -1), ["a", "b", "c"]);
        assert.equal(await r.lpop("l"), "a");
        assert.equal(await r.hset("h", { a: "1", b: "2" }), 2);
        assert.deepEqual(await r.hgetall("h"), { a: "1", b: "2" });
        assert.equal(await r.hincrby("h", "a", 10), 11);
        assert.equal(await r.sadd("s", "x", "y"), 2);
        assert.deepEqual((await r.smembers("s")).sort(), ["x", "y"]);
        assert.equal(await r.zadd("z", 1, "a", 2, "b"), 2);
        assert.deepEqual(await r.zrange("z", 0, -1, "WITHSCORES"), ["a", "1", "b", "2"]);
        assert.deepEqual(await r.zpopmin("z"), ["a", "1"]);
        assert.equal(await r.type("z"), "zset");
        assert.deepEqual((await r.keys("*")).sort(), ["f", "h", "k", "l", "n", "s", "z"]);
        const [cursor, keys] = await r.scan(0, "COUNT", 100);
        assert.equal(cursor, "0");
        assert.equal(keys.length, 7);
        // Binary values round trip as Buffers.
        const bin = new Uint8Array([0, 255, 13, 10, 128, 1]);
        await r.set("bin", Buffer.from(bin));
        assert.deepEqual(new Uint8Array(await r.getBuffer("bin") as Uint8Array), bin);
        // Pipelining: 1,000 commands, one round trip's worth of writes.
        const p = r.pipeline();
        for (let i = 0; i < 1000; i++) p.incr("counter");
        const res = await p.exec();
        assert.equal(res!.length, 1000);
        assert.deepEqual(res![999], [null, 1000]);
        // MULTI / EXEC, WATCH.
        const tx = await r.multi().set("t", "1").incr("t").exec();
        assert.deepEqual(tx, [[null, "OK"], [null, 2]]);
        await r.watch("t");
        await r.set("t", "changed");
        assert.equal(await r.multi().incr("t").exec(), null);
        // Errors come back as ReplyErrors with Redis's text.
        await assert.rejects(() => r.incr("k"), /ERR value is not an integer or out of range/);
        await assert.rejects(() => r.lpush("k", "x"), /WRONGTYPE/);
        await assert.rejects(() => r.call("nosuchcmd", "a"), /ERR unknown command 'nosuchcmd'/);
        assert.equal(await r.dbsize(), 10);
        assert.match(await r.info("keyspace"), /db0:keys=10/);
      } finally {
        r.disconnect();
      }
    }),
});

Deno.test({
  name: "node-redis: RESP2 and RESP3, commands, pipelines, transactions, errors",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withEachListener(async (port) => {
      for (const RESP of [2, 3] as const) {
        const c = createClient({ url: `redis://127.0.0.1:${port}`, RESP });
        c.on("error", () => {});
        await c.connect();
        try {
          await c.flushAll();
          assert.equal(await c.set("k", "v"), "OK");
          assert.equal(await c.get("k"), "v");
          assert.equal(await c.incr("n"), 1);
          assert.equal(await c.hSet("h", { a: "1", b: "2" }), 2);
          const all = await c.hGetAll("h");
          assert.deepEqual({ ...all }, { a: "1", b: "2" });
          assert.equal(await c.sAdd("s", ["x", "y"]), 2);
          assert.equal(await c.sCard("s"), 2);
          assert.equal(await c.zAdd("z", [{ score: 1, value: "a" }, { score: 2, value: "b" }]), 2);
          assert.equal(await c.zScore("z", "b"), 2);
          assert.equal(await c.zRank("z", "b"), 1);
          assert.deepEqual(await c.lRange("none", 0, -1), []);
          const replies = await c.multi().set("t", "1").incr("t").exec();
          assert.deepEqual(replies, ["OK", 2]);
          const piped = await c.multi().incr("p").incr("p").get("p").execAsPipeline();
          assert.deepEqual(piped, [1, 2, "2"]);
          await assert.rejects(() => c.incr("k"), /ERR value is not an integer/);
          assert.equal(await c.dbSize(), 7);
        } finally {
          await c.close();
        }
      }
    }),
});

Deno.test("RESP server: a protocol error closes that connection only, after earlier replies", async () => {
  await withEachListener(async (port) => {
    const other = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const got = await raw(port, "PING\r\n*1\r\n$x\r\n");
      assert.equal(got, "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
      await other.write(te.encode("*1\r\n$4\r\nPING\r\n"));
      const buf = new Uint8Array(64);
      const n = await other.read(buf);
      assert.equal(td.decode(buf.subarray(0, n!)), "+PONG\r\n");
    } finally {
      other.close();
    }
    // Inline and pipelined commands in one write; QUIT closes after its reply.
    const out = await raw(port, "SET a 1\r\nINCR a\r\nGET a\r\nQUIT\r\nGET a\r\n");
    assert.equal(out, "+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n");
  });
});

Deno.test("RESP server: CLIENT KILL closes the other connection at once", async () => {
  await withEachListener(async (port) => {
    const victim = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await victim.write(te.encode("CLIENT ID\r\n"));
      const buf = new Uint8Array(64);
      const n = await victim.read(buf);
      const id = /:(\d+)/.exec(td.decode(buf.subarray(0, n!)))![1];
      assert.equal(await raw(port, `CLIENT KILL ID ${id}\r\nQUIT\r\n`), ":1\r\n+OK\r\n");
      assert.equal(await victim.read(buf), null); // closed by the server, without a request
      assert.equal(
        await raw(port, "CLIENT KILL ID 999999\r\nQUIT\r\n"),
        "-ERR No such client\r\n+OK\r\n",
      );
    } finally {
      try {
        victim.close();
      } catch { /* closed */ }
    }
  });
});

Deno.test("RESP server: maxclients refuses new connections with Redis's error", async () => {
  await withEachListener(async (port, engine) => {
    engine.config.maxclients = 1;
    const first = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await first.write(te.encode("PING\r\n"));
      await first.read(new Uint8Array(16));
      assert.equal(await raw(port, ""), "-ERR max number of clients reached\r\n");
      assert.equal(engine.stats.rejectedConnections, 1);
    } finally {
      first.close();
    }
  });
});

Deno.test("RESP server: before AUTH, Redis's tight limits; after, the normal ones", async () => {
  await withEachListener(async (port) => {
    const big = "x".repeat(20_000);
    const refused = await raw(port, `*2\r\n$3\r\nGET\r\n$${big.length}\r\n${big}\r\n`);
    assert.equal(refused, "-ERR Protocol error: invalid bulk length\r\n");
    const ok = await raw(
      port,
      `AUTH pw\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${big.length}\r\n${big}\r\nSTRLEN k\r\nQUIT\r\n`,
    );
    assert.equal(ok, "+OK\r\n+OK\r\n:20000\r\n+OK\r\n");
  }, { config: { requirepass: "pw" } });
});

Deno.test({
  name: "redis-cli and redis-benchmark (Debian's) work against the server",
  ignore: !(await have("redis-cli")) || !(await have("redis-benchmark")),
  fn: () =>
    withEachListener(async (port) => {
      const cli = async (...args: string[]) => {
        const r = await new Deno.Command("redis-cli", {
          args: ["-p", String(port), ...args],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(r.success, td.decode(r.stderr));
        return td.decode(r.stdout).trim();
      };
      assert.equal(await cli("PING"), "PONG");
      assert.equal(await cli("SET", "k", "hello world"), "OK");
      assert.equal(await cli("GET", "k"), "hello world");
      assert.equal(await cli("INCRBY", "n", "7"), "7");
      assert.equal(await cli("RPUSH", "l", "a", "b"), "2");
      assert.equal(await cli("LRANGE", "l", "0", "-1"), "a\nb");
      assert.match(await cli("INFO", "server"), /redis_version:7\.2\.0/);
      assert.equal(await cli("NOSUCH"), "ERR unknown command 'NOSUCH', with args beginning with:");
      const tests = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset";
      const bench = await new Deno.Command("redis-benchmark", {
        args: [
          "-p",
          String(port),
          "-t",
          tests,
          "-n",
          "2000",
          "-c",
          "10",
          "-P",
          "8",
          "-r",
          "100",
          "-q",
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(bench.success, td.decode(bench.stderr));
      const out = td.decode(bench.stdout).replaceAll("\r", "\n");
      for (
        const t of [
          "SET",
          "GET",
          "INCR",
          "LPUSH",
          "RPUSH",
          "LPOP",
          "RPOP",
          "SADD",
          "HSET",
          "SPOP",
          "ZADD",
          "ZPOPMIN",
          "LRANGE_100",
          "MSET",
        ]
      ) {
        assert.match(out, new RegExp(`^${t}[^\\n]*: [0-9.]+ requests per second`, "m"), t);
      }
      // -r 100 keys per kind: the keyspace holds what the benchmark wrote and no more.
      const size = Number(await cli("DBSIZE"));
      assert.ok(size > 100 && size < 1000, `dbsize ${size}`);
    }),
});
