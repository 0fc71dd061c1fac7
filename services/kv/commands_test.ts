import assert from "node:assert/strict";
import { harness } from "./_testing/harness.ts";
import { ReplyError } from "./reply.ts";

/** The message of an error reply (fails if the reply is not an error). */
function err(r: unknown): string {
  assert.ok(r instanceof ReplyError, `expected an error, got ${JSON.stringify(r)}`);
  return r.message;
}

const WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value";

Deno.test("strings: SET options, GET, SETNX, GETSET, GETDEL, MSET, MGET, APPEND, ranges", () => {
  const { cmd, advance } = harness();
  assert.equal(cmd("SET", "k", "v"), "OK");
  assert.equal(cmd("GET", "k"), "v");
  assert.equal(cmd("GET", "nope"), null);
  assert.equal(cmd("SET", "k", "w", "NX"), null);
  assert.equal(cmd("SET", "k2", "w", "XX"), null);
  assert.equal(cmd("SET", "k", "w", "XX", "GET"), "v");
  assert.equal(cmd("SET", "new", "x", "NX", "GET"), null);
  assert.equal(cmd("GET", "new"), "x");
  assert.equal(err(cmd("SET", "k", "v", "NX", "XX")), "ERR syntax error");
  assert.equal(err(cmd("SET", "k", "v", "EX", "10", "PX", "5")), "ERR syntax error");
  assert.equal(err(cmd("SET", "k", "v", "EX", "0")), "ERR invalid expire time in 'set' command");
  assert.equal(err(cmd("SET", "k", "v", "EX", "x")), "ERR value is not an integer or out of range");
  assert.equal(err(cmd("SET", "k", "v", "KEEPTTL", "EX", "5")), "ERR syntax error");
  assert.equal(cmd("SET", "t", "1", "PX", "1500"), "OK");
  assert.equal(cmd("PTTL", "t"), 1500);
  assert.equal(cmd("SET", "t", "2", "KEEPTTL"), "OK");
  assert.equal(cmd("PTTL", "t"), 1500);
  assert.equal(cmd("SET", "t", "3"), "OK");
  assert.equal(cmd("TTL", "t"), -1);
  assert.equal(cmd("SETNX", "k", "z"), 0);
  assert.equal(cmd("SETNX", "fresh", "z"), 1);
  assert.equal(cmd("GETSET", "fresh", "y"), "z");
  assert.equal(cmd("GETDEL", "fresh"), "y");
  assert.equal(cmd("EXISTS", "fresh"), 0);
  assert.equal(cmd("MSET", "a", "1", "b", "2"), "OK");
  assert.equal(err(cmd("MSET", "a", "1", "b")), "ERR wrong number of arguments for 'mset' command");
  assert.deepEqual(cmd("MGET", "a", "nope", "b"), ["1", null, "2"]);
  assert.equal(cmd("MSETNX", "a", "9", "c", "3"), 0);
  assert.equal(cmd("MSETNX", "c", "3", "d", "4"), 1);
  assert.equal(cmd("APPEND", "s", "Hello"), 5);
  assert.equal(cmd("APPEND", "s", " World"), 11);
  assert.equal(cmd("STRLEN", "s"), 11);
  assert.equal(cmd("GETRANGE", "s", 0, 4), "Hello");
  assert.equal(cmd("GETRANGE", "s", -5, -1), "World");
  assert.equal(cmd("GETRANGE", "s", 5, 2), "");
  assert.equal(cmd("GETRANGE", "s", 0, 100), "Hello World");
  assert.equal(cmd("SETRANGE", "s", 6, "Redis"), 11);
  assert.equal(cmd("GET", "s"), "Hello Redis");
  assert.equal(cmd("SETRANGE", "pad", 3, "x"), 4);
  assert.equal(cmd("GET", "pad"), "\0\0\0x");
  assert.equal(err(cmd("SETRANGE", "pad", -1, "x")), "ERR offset is out of range");
  assert.equal(cmd("SETRANGE", "absent", 5, ""), 0);
  assert.equal(cmd("EXISTS", "absent"), 0);
  // Binary-safe values.
  assert.equal(cmd("SET", "bin", "\x00\xff\r\n"), "OK");
  assert.equal(cmd("GET", "bin"), "\x00\xff\r\n");
  // GETEX
  assert.equal(cmd("GETEX", "bin", "EX", 10), "\x00\xff\r\n");
  assert.equal(cmd("TTL", "bin"), 10);
  assert.equal(cmd("GETEX", "bin", "PERSIST"), "\x00\xff\r\n");
  assert.equal(cmd("TTL", "bin"), -1);
  advance(1);
});

Deno.test("strings: counters are exact int64 and refuse overflow and non-integers", () => {
  const { cmd } = harness();
  assert.equal(cmd("INCR", "n"), 1);
  assert.equal(cmd("INCRBY", "n", 41), 42);
  assert.equal(cmd("DECR", "n"), 41);
  assert.equal(cmd("DECRBY", "n", 50), -9);
  assert.equal(cmd("SET", "big", "9223372036854775806"), "OK");
  assert.equal(cmd("INCR", "big"), 9223372036854775807n);
  assert.equal(err(cmd("INCR", "big")), "ERR increment or decrement would overflow");
  assert.equal(cmd("GET", "big"), "9223372036854775807");
  assert.equal(cmd("SET", "f", "1.5"), "OK");
  assert.equal(err(cmd("INCR", "f")), "ERR value is not an integer or out of range");
  assert.equal(err(cmd("INCRBY", "n", "1x")), "ERR value is not an integer or out of range");
  assert.equal(err(cmd("INCRBY", "n", "01")), "ERR value is not an integer or out of range");
  assert.equal(
    err(cmd("INCRBY", "n", "9223372036854775808")),
    "ERR value is not an integer or out of range",
  );
  assert.equal(cmd("INCRBYFLOAT", "f", "0.1"), "1.6");
  assert.equal(cmd("INCRBYFLOAT", "f", "-1.6"), "0");
  assert.equal(cmd("INCRBYFLOAT", "g", "5.0e3"), "5000");
  assert.equal(err(cmd("INCRBYFLOAT", "f", "abc")), "ERR value is not a valid float");
  assert.equal(err(cmd("INCRBYFLOAT", "f", "inf")), "ERR increment would produce NaN or Infinity");
  cmd("LPUSH", "l", "x");
  assert.equal(err(cmd("INCR", "l")), WRONGTYPE);
  assert.equal(err(cmd("GET", "l")), WRONGTYPE);
  assert.equal(err(cmd("APPEND", "l", "x")), WRONGTYPE);
});

Deno.test("keys: expiry is never visible, TTL/PTTL, EXPIRE options, PERSIST, active expiry", () => {
  const { cmd, advance, engine } = harness();
  cmd("SET", "k", "v");
  assert.equal(cmd("EXPIRE", "k", 10), 1);
  assert.equal(cmd("TTL", "k"), 10);
  assert.equal(cmd("EXPIRE", "k", 20, "NX"), 0);
  assert.equal(cmd("EXPIRE", "k", 5, "GT"), 0);
  assert.equal(cmd("EXPIRE", "k", 30, "GT"), 1);
  assert.equal(cmd("EXPIRE", "k", 40, "LT"), 0);
  assert.equal(cmd("EXPIRE", "k", 15, "LT"), 1);
  assert.equal(
    err(cmd("EXPIRE", "k", 15, "NX", "XX")),
    "ERR NX and XX, GT or LT options at the same time are not compatible",
  );
  assert.equal(
    err(cmd("EXPIRE", "k", 15, "GT", "LT")),
    "ERR GT and LT options at the same time are not compatible",
  );
  assert.equal(err(cmd("EXPIRE", "k", 15, "XY")), "ERR Unsupported option XY");
  assert.equal(cmd("PERSIST", "k"), 1);
  assert.equal(cmd("PERSIST", "k"), 0);
  assert.equal(cmd("TTL", "k"), -1);
  assert.equal(cmd("TTL", "nope"), -2);
  assert.equal(cmd("EXPIRE", "nope", 10), 0);
  cmd("PEXPIRE", "k", 1500);
  assert.equal(cmd("PTTL", "k"), 1500);
  assert.equal(cmd("TTL", "k"), 2); // rounded, as Redis does
  advance(1499);
  assert.equal(cmd("GET", "k"), "v");
  advance(1);
  assert.equal(cmd("GET", "k"), null);
  assert.equal(cmd("EXISTS", "k"), 0);
  // A time in the past deletes at once.
  cmd("SET", "p", "v");
  assert.equal(cmd("EXPIRE", "p", -1), 1);
  assert.equal(cmd("EXISTS", "p"), 0);
  cmd("SET", "at", "v");
  const nowS = Math.floor(engine.now() / 1000);
  assert.equal(cmd("EXPIREAT", "at", nowS + 100), 1);
  assert.equal(cmd("EXPIRETIME", "at"), nowS + 100);
  assert.equal(cmd("PEXPIRETIME", "at"), (nowS + 100) * 1000);
  // Keys nobody reads are reclaimed by active expiry.
  for (let i = 0; i < 1000; i++) cmd("SET", `e${i}`, "v", "PX", 10);
  advance(11);
  assert.equal(engine.keyspace.dbs[0].data.size >= 1000, true);
  while (engine.keyspace.activeExpire(200) > 0) { /* rounds */ }
  assert.equal(cmd("DBSIZE"), 1);
  assert.equal(engine.keyspace.dbs[0].data.size, 1);
  assert.ok(engine.keyspace.expiredKeys >= 1001);
});

Deno.test("keys: DEL, EXISTS, TYPE, RENAME, RENAMENX, KEYS, SCAN, RANDOMKEY, SELECT", () => {
  const { cmd, connect } = harness();
  cmd("MSET", "a", "1", "b", "2", "user:1", "x", "user:2", "y");
  cmd("RPUSH", "list", "x");
  assert.equal(cmd("EXISTS", "a", "a", "zz"), 2);
  assert.equal(cmd("TYPE", "list"), "list");
  assert.equal(cmd("TYPE", "a"), "string");
  assert.equal(cmd("TYPE", "zz"), "none");
  assert.equal(cmd("DEL", "a", "zz"), 1);
  assert.deepEqual((cmd("KEYS", "user:*") as string[]).sort(), ["user:1", "user:2"]);
  assert.deepEqual(cmd("KEYS", "user:[1]") as string[], ["user:1"]);
  cmd("SET", "ttl", "v", "EX", 100);
  assert.equal(cmd("RENAME", "ttl", "ttl2"), "OK");
  assert.equal(cmd("TTL", "ttl2"), 100);
  assert.equal(err(cmd("RENAME", "nope", "x")), "ERR no such key");
  assert.equal(cmd("RENAMENX", "b", "ttl2"), 0);
  assert.equal(cmd("RENAMENX", "b", "b2"), 1);
  assert.equal(cmd("GET", "b2"), "2");
  // SCAN: every key once, across calls, with MATCH and TYPE.
  for (let i = 0; i < 100; i++) cmd("SET", `s${i}`, "v");
  const seen = new Set<string>();
  let cursor = "0";
  do {
    const [next, keys] = cmd("SCAN", cursor, "COUNT", 7) as [string, string[]];
    for (const k of keys) {
      assert.ok(!seen.has(k), `${k} twice`);
      seen.add(k);
    }
    cursor = next;
  } while (cursor !== "0");
  assert.equal(seen.size, cmd("DBSIZE"));
  const [, only] = cmd("SCAN", 0, "MATCH", "s1*", "COUNT", 1000) as [string, string[]];
  assert.equal(only.length, 11);
  const [, lists] = cmd("SCAN", 0, "TYPE", "list", "COUNT", 1000) as [string, string[]];
  assert.deepEqual(lists, ["list"]);
  // Past the bound on open scans, the oldest is forgotten: its cursor still ends the scan, and
  // every key is still returned (duplicates allowed).
  const [first, firstKeys] = cmd("SCAN", 0, "COUNT", 3) as [string, string[]];
  for (let i = 0; i < 300; i++) cmd("SCAN", 0, "COUNT", 1);
  const again = new Set(firstKeys);
  let c2 = first;
  while (c2 !== "0") {
    const [next, keys] = cmd("SCAN", c2, "COUNT", 50) as [string, string[]];
    for (const k of keys) again.add(k);
    c2 = next;
  }
  assert.equal(again.size, cmd("DBSIZE"));
  assert.equal(err(cmd("SCAN", "abc")), "ERR invalid cursor");
  assert.equal(err(cmd("SCAN", 0, "COUNT", 0)), "ERR syntax error");
  assert.equal(typeof cmd("RANDOMKEY"), "string");
  // Databases are separate.
  const other = connect();
  assert.equal(other.cmd("SELECT", 1), "OK");
  assert.equal(other.cmd("GET", "b2"), null);
  assert.equal(other.cmd("RANDOMKEY"), null);
  assert.equal(err(other.cmd("SELECT", 16)), "ERR DB index is out of range");
  assert.equal(err(other.cmd("SELECT", "x")), "ERR value is not an integer or out of range");
  assert.equal(other.cmd("FLUSHDB"), "OK");
  assert.ok((cmd("DBSIZE") as number) > 100);
  assert.equal(cmd("FLUSHALL"), "OK");
  assert.equal(cmd("DBSIZE"), 0);
});

Deno.test("lists: push, pop with counts, ranges, index, set, trim; emptied lists vanish", () => {
  const { cmd } = harness();
  assert.equal(cmd("RPUSH", "l", "a", "b", "c"), 3);
  assert.equal(cmd("LPUSH", "l", "z"), 4);
  assert.deepEqual(cmd("LRANGE", "l", 0, -1), ["z", "a", "b", "c"]);
  assert.deepEqual(cmd("LRANGE", "l", -2, 100), ["b", "c"]);
  assert.deepEqual(cmd("LRANGE", "l", 3, 1), []);
  assert.deepEqual(cmd("LRANGE", "nope", 0, -1), []);
  assert.equal(cmd("LINDEX", "l", -1), "c");
  assert.equal(cmd("LINDEX", "l", 10), null);
  assert.equal(cmd("LSET", "l", 1, "A"), "OK");
  assert.equal(err(cmd("LSET", "l", 10, "A")), "ERR index out of range");
  assert.equal(err(cmd("LSET", "nope", 0, "A")), "ERR no such key");
  assert.equal(cmd("LPOP", "l"), "z");
  assert.deepEqual(cmd("RPOP", "l", 2), ["c", "b"]);
  assert.equal(cmd("LLEN", "l"), 1);
  assert.equal(cmd("LPOP", "nope"), null);
  assert.equal(cmd("LPOP", "nope", 2), null);
  assert.equal(err(cmd("LPOP", "l", -1)), "ERR value is out of range, must be positive");
  assert.deepEqual(cmd("LPOP", "l", 5), ["A"]);
  assert.equal(cmd("EXISTS", "l"), 0);
  assert.equal(cmd("LPUSHX", "l", "x"), 0);
  for (let i = 0; i < 100; i++) cmd("RPUSH", "big", i);
  assert.equal(cmd("LTRIM", "big", 10, -11), "OK");
  assert.deepEqual(cmd("LRANGE", "big", 0, 2), ["10", "11", "12"]);
  assert.equal(cmd("LLEN", "big"), 80);
  assert.equal(cmd("LTRIM", "big", 5, 1), "OK");
  assert.equal(cmd("EXISTS", "big"), 0);
  cmd("SET", "s", "v");
  assert.equal(err(cmd("LPUSH", "s", "x")), WRONGTYPE);
  // A deque: pushes and pops at both ends keep order.
  const model: string[] = [];
  for (let i = 0; i < 500; i++) {
    if (i % 3 === 0) {
      cmd("LPUSH", "d", `v${i}`);
      model.unshift(`v${i}`);
    } else if (i % 3 === 1) {
      cmd("RPUSH", "d", `v${i}`);
      model.push(`v${i}`);
    } else if (i % 5 === 0) {
      assert.equal(cmd("LPOP", "d"), model.shift() ?? null);
    } else assert.equal(cmd("RPOP", "d"), model.pop() ?? null);
  }
  assert.deepEqual(cmd("LRANGE", "d", 0, -1), model);
});

Deno.test("hashes: set, get, getall, delete, counters; emptied hashes vanish", () => {
  const { cmd } = harness();
  assert.equal(cmd("HSET", "h", "a", "1", "b", "2"), 2);
  assert.equal(cmd("HSET", "h", "a", "9", "c", "3"), 1);
  assert.equal(err(cmd("HSET", "h", "a")), "ERR wrong number of arguments for 'hset' command");
  assert.equal(cmd("HGET", "h", "a"), "9");
  assert.deepEqual(cmd("HMGET", "h", "a", "x", "c"), ["9", null, "3"]);
  assert.deepEqual(cmd("HGETALL", "h"), ["a", "9", "b", "2", "c", "3"]);
  assert.deepEqual(cmd("HKEYS", "h"), ["a", "b", "c"]);
  assert.deepEqual(cmd("HVALS", "h"), ["9", "2", "3"]);
  assert.equal(cmd("HLEN", "h"), 3);
  assert.equal(cmd("HEXISTS", "h", "b"), 1);
  assert.equal(cmd("HSTRLEN", "h", "a"), 1);
  assert.equal(cmd("HSETNX", "h", "a", "x"), 0);
  assert.equal(cmd("HSETNX", "h", "d", "x"), 1);
  assert.equal(cmd("HINCRBY", "h", "a", 1), 10);
  assert.equal(err(cmd("HINCRBY", "h", "d", 1)), "ERR hash value is not an integer");
  assert.equal(cmd("HINCRBYFLOAT", "h", "f", "2.5"), "2.5");
  assert.equal(cmd("HMSET", "h", "x", "1"), "OK");
  assert.equal(cmd("HDEL", "h", "a", "b", "c", "d", "f", "x", "nope"), 6);
  assert.equal(cmd("EXISTS", "h"), 0);
  assert.deepEqual(cmd("HGETALL", "h"), []);
});

Deno.test("sets: add, remove, members, pop and random members", () => {
  const { cmd } = harness();
  assert.equal(cmd("SADD", "s", "a", "b", "c", "a"), 3);
  assert.equal(cmd("SCARD", "s"), 3);
  assert.equal(cmd("SISMEMBER", "s", "a"), 1);
  assert.deepEqual(cmd("SMISMEMBER", "s", "a", "x"), [1, 0]);
  assert.deepEqual((cmd("SMEMBERS", "s") as string[]).sort(), ["a", "b", "c"]);
  assert.equal(cmd("SREM", "s", "a", "x"), 1);
  const r = cmd("SRANDMEMBER", "s", 5) as string[];
  assert.deepEqual(r.sort(), ["b", "c"]);
  assert.equal((cmd("SRANDMEMBER", "s", -5) as string[]).length, 5);
  const popped = cmd("SPOP", "s") as string;
  assert.ok(popped === "b" || popped === "c");
  assert.equal(cmd("SCARD", "s"), 1);
  assert.equal((cmd("SPOP", "s", 3) as string[]).length, 1);
  assert.equal(cmd("EXISTS", "s"), 0);
  assert.equal(cmd("SPOP", "s"), null);
  assert.equal(err(cmd("SPOP", "s", -1)), "ERR value is out of range, must be positive");
});

Deno.test("sorted sets: ZADD options, ranges by index and score, ranks, pops", () => {
  const { cmd } = harness();
  assert.equal(cmd("ZADD", "z", 1, "a", 2, "b", 3, "c"), 3);
  assert.equal(cmd("ZADD", "z", "XX", "CH", 10, "a", 5, "new"), 1);
  assert.equal(cmd("ZSCORE", "z", "new"), null);
  assert.equal(cmd("ZADD", "z", "NX", 0, "a", 4, "d"), 1);
  assert.equal(cmd("ZADD", "z", "GT", 5, "a"), 0);
  assert.equal(cmd("ZSCORE", "z", "a"), "10");
  assert.equal(cmd("ZADD", "z", "LT", "CH", 0.5, "a"), 1);
  assert.equal(cmd("ZADD", "z", "INCR", 2, "a"), "2.5");
  assert.equal(cmd("ZADD", "z", "NX", "INCR", 2, "a"), null);
  assert.equal(
    err(cmd("ZADD", "z", "NX", "XX", 1, "a")),
    "ERR XX and NX options at the same time are not compatible",
  );
  assert.equal(
    err(cmd("ZADD", "z", "GT", "LT", 1, "a")),
    "ERR GT, LT, and/or NX options at the same time are not compatible",
  );
  assert.equal(
    err(cmd("ZADD", "z", "INCR", 1, "a", 2, "b")),
    "ERR INCR option supports a single increment-element pair",
  );
  assert.equal(err(cmd("ZADD", "z", "x", "a")), "ERR value is not a valid float");
  assert.equal(err(cmd("ZADD", "z", 1)), "ERR wrong number of arguments for 'zadd' command");
  assert.equal(err(cmd("ZADD", "z", "NX", 1)), "ERR syntax error");
  assert.deepEqual(cmd("ZRANGE", "z", 0, -1, "WITHSCORES"), [
    "b",
    "2",
    "a",
    "2.5",
    "c",
    "3",
    "d",
    "4",
  ]);
  assert.deepEqual(cmd("ZRANGE", "z", 0, 1, "REV"), ["d", "c"]);
  assert.deepEqual(cmd("ZREVRANGE", "z", 0, 0), ["d"]);
  assert.deepEqual(cmd("ZRANGE", "z", "(2", "+inf", "BYSCORE", "LIMIT", 1, 2), ["c", "d"]);
  assert.deepEqual(cmd("ZRANGE", "z", 3, "-inf", "BYSCORE", "REV"), ["c", "a", "b"]);
  assert.deepEqual(cmd("ZRANGEBYSCORE", "z", 2.5, 3), ["a", "c"]);
  assert.equal(
    err(cmd("ZRANGE", "z", 0, 1, "LIMIT", 0, 1)),
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
  );
  assert.equal(err(cmd("ZRANGE", "z", "x", 1, "BYSCORE")), "ERR min or max is not a float");
  assert.equal(cmd("ZCOUNT", "z", "(2", 4), 3);
  assert.equal(cmd("ZCARD", "z"), 4);
  assert.equal(cmd("ZRANK", "z", "c"), 2);
  assert.equal(cmd("ZREVRANK", "z", "c"), 1);
  assert.deepEqual(cmd("ZRANK", "z", "c", "WITHSCORE"), [2, "3"]);
  assert.equal(cmd("ZRANK", "z", "nope"), null);
  assert.equal(cmd("ZINCRBY", "z", 10, "b"), "12");
  assert.deepEqual(cmd("ZMSCORE", "z", "b", "nope"), ["12", null]);
  assert.deepEqual(cmd("ZPOPMIN", "z"), ["a", "2.5"]);
  assert.deepEqual(cmd("ZPOPMAX", "z", 2), ["b", "12", "d", "4"]);
  assert.equal(cmd("ZREM", "z", "c", "nope"), 1);
  assert.equal(cmd("EXISTS", "z"), 0);
  assert.deepEqual(cmd("ZPOPMIN", "z"), []);
  cmd("ZADD", "lex", 0, "a", 0, "b", 0, "c", 0, "d");
  assert.deepEqual(cmd("ZRANGE", "lex", "[b", "(d", "BYLEX"), ["b", "c"]);
  assert.deepEqual(cmd("ZRANGE", "lex", "+", "-", "BYLEX", "REV", "LIMIT", 0, 2), ["d", "c"]);
  assert.equal(cmd("ZADD", "inf", "-inf", "lo", "+inf", "hi"), 2);
  assert.deepEqual(cmd("ZRANGE", "inf", 0, -1, "WITHSCORES"), ["lo", "-inf", "hi", "inf"]);
  assert.equal(
    err(cmd("ZADD", "inf", "INCR", "-inf", "hi")),
    "ERR resulting score is not a number (NaN)",
  );
});

Deno.test("transactions: MULTI/EXEC/DISCARD, queueing errors abort, WATCH", () => {
  const h = harness();
  const { cmd } = h;
  assert.equal(err(cmd("EXEC")), "ERR EXEC without MULTI");
  assert.equal(err(cmd("DISCARD")), "ERR DISCARD without MULTI");
  assert.equal(cmd("MULTI"), "OK");
  assert.equal(err(cmd("MULTI")), "ERR MULTI calls can not be nested");
  assert.equal(cmd("SET", "a", "1"), "QUEUED");
  assert.equal(cmd("INCR", "a"), "QUEUED");
  assert.equal(cmd("LPUSH", "a", "x"), "QUEUED"); // fails at EXEC time, the rest still runs
  const r = cmd("EXEC") as unknown[];
  assert.equal(r[0], "OK");
  assert.equal(r[1], 2);
  assert.equal(err(r[2]), WRONGTYPE);
  cmd("MULTI");
  cmd("SET", "b", "1");
  assert.equal(err(cmd("NOPE")), "ERR unknown command 'NOPE', with args beginning with: ");
  assert.equal(err(cmd("GET")), "ERR wrong number of arguments for 'get' command");
  assert.equal(err(cmd("EXEC")), "EXECABORT Transaction discarded because of previous errors.");
  assert.equal(cmd("EXISTS", "b"), 0);
  cmd("MULTI");
  cmd("SET", "b", "1");
  assert.equal(cmd("DISCARD"), "OK");
  assert.equal(cmd("EXISTS", "b"), 0);
  // WATCH: another connection's write makes EXEC fail; our own unwatched writes do not.
  const other = h.connect();
  assert.equal(cmd("WATCH", "w"), "OK");
  other.cmd("SET", "w", "theirs");
  cmd("MULTI");
  cmd("SET", "w", "mine");
  assert.equal(cmd("EXEC"), null);
  assert.equal(cmd("GET", "w"), "theirs");
  cmd("WATCH", "w");
  cmd("MULTI");
  assert.equal(err(cmd("WATCH", "x")), "ERR WATCH inside MULTI is not allowed");
  cmd("SET", "w", "mine");
  assert.deepEqual(cmd("EXEC"), ["OK"]);
  // A watched key that expires makes EXEC fail; FLUSHALL too.
  cmd("SET", "e", "1", "PX", 10);
  cmd("WATCH", "e");
  h.advance(11);
  cmd("MULTI");
  cmd("SET", "x", "1");
  assert.equal(cmd("EXEC"), null);
  cmd("WATCH", "x");
  other.cmd("FLUSHALL");
  cmd("MULTI");
  assert.equal(cmd("EXEC"), null);
  cmd("WATCH", "x");
  assert.equal(cmd("UNWATCH"), "OK");
  other.cmd("SET", "x", "2");
  cmd("MULTI");
  assert.deepEqual(cmd("EXEC"), []);
});

Deno.test("connection: AUTH and NOAUTH, HELLO 3 maps, CLIENT, SELECT, PING, ECHO, QUIT", () => {
  const h = harness({ requirepass: "secret" });
  const { cmd } = h;
  assert.equal(err(cmd("GET", "k")), "NOAUTH Authentication required.");
  assert.equal(
    err(cmd("AUTH", "wrong")),
    "WRONGPASS invalid username-password pair or user is disabled.",
  );
  assert.equal(
    err(cmd("AUTH", "other", "secret")),
    "WRONGPASS invalid username-password pair or user is disabled.",
  );
  assert.ok(err(cmd("HELLO", 3)).startsWith("NOAUTH HELLO must be called"));
  const hello = cmd("HELLO", 3, "AUTH", "default", "secret", "SETNAME", "me") as Map<
    string,
    unknown
  >;
  assert.equal(hello.get("proto"), 3);
  assert.equal(hello.get("server"), "redis");
  assert.equal(cmd("CLIENT", "GETNAME"), "me");
  cmd("HSET", "h", "a", "1");
  assert.deepEqual(cmd("HGETALL", "h"), new Map([["a", "1"]]));
  assert.equal(cmd("GET", "nope"), null);
  assert.equal(err(cmd("HELLO", 4)), "NOPROTO unsupported protocol version");
  assert.equal(cmd("PING"), "PONG");
  assert.equal(cmd("PING", "hi"), "hi");
  assert.equal(cmd("ECHO", "x"), "x");
  assert.equal(typeof cmd("CLIENT", "ID"), "number");
  assert.equal(
    err(cmd("CLIENT", "SETNAME", "a b")),
    "ERR Client names cannot contain spaces, newlines or special characters.",
  );
  assert.equal(cmd("CLIENT", "SETINFO", "LIB-NAME", "ioredis"), "OK");
  assert.match(cmd("CLIENT", "LIST") as string, /name=me .*lib-name=ioredis/);
  assert.ok(err(cmd("CLIENT", "BOGUS")).includes("Try CLIENT HELP"));
  assert.equal(cmd("QUIT"), "OK");
  assert.equal(h.client.closing, true);
  const noPass = harness();
  assert.ok(
    err(noPass.cmd("AUTH", "x")).startsWith("ERR AUTH <password> called without any password"),
  );
});

Deno.test("server: INFO sections, COMMAND, CONFIG GET/SET, DBSIZE, unknown commands, arity", () => {
  const { cmd, engine } = harness();
  cmd("SET", "k", "v", "EX", 100);
  const info = cmd("INFO") as string;
  for (const s of ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"]) {
    assert.ok(info.includes(s), s);
  }
  assert.match(info, /redis_version:7\.2\.0/);
  assert.match(info, /db0:keys=1,expires=1/);
  assert.match(cmd("INFO", "keyspace") as string, /^# Keyspace\r\ndb0:keys=1/);
  assert.ok(!(cmd("INFO", "keyspace") as string).includes("# Server"));
  assert.equal(cmd("COMMAND", "COUNT"), [...engine.commands].length);
  const [get] = cmd("COMMAND", "INFO", "get") as unknown[][];
  assert.deepEqual(get.slice(0, 2), ["get", 2]);
  const docs = cmd("COMMAND", "DOCS", "set") as unknown[];
  assert.equal(docs[0], "set");
  assert.deepEqual(cmd("CONFIG", "GET", "save"), ["save", ""]);
  assert.deepEqual(cmd("CONFIG", "GET", "appendonly"), ["appendonly", "no"]);
  assert.deepEqual(cmd("CONFIG", "GET", "maxcli*"), ["maxclients", "10000"]);
  assert.equal(cmd("CONFIG", "SET", "maxclients", "50"), "OK");
  assert.equal(engine.config.maxclients, 50);
  assert.ok(err(cmd("CONFIG", "SET", "nope", "1")).startsWith("ERR Unknown option"));
  assert.ok(
    err(cmd("CONFIG", "SET", "appendfsync", "sometimes")).startsWith("ERR CONFIG SET failed"),
  );
  assert.equal(cmd("DBSIZE"), 1);
  assert.equal(
    err(cmd("FOO", "a", "b")),
    "ERR unknown command 'FOO', with args beginning with: 'a' 'b' ",
  );
  assert.equal(err(cmd("get", "a", "b")), "ERR wrong number of arguments for 'get' command");
  assert.equal(cmd("gEt", "k"), "v"); // any case
  assert.equal((cmd("TIME") as string[]).length, 2);
});

Deno.test("keys: an active-expiry tick repeats rounds while a quarter of a round expired", () => {
  const { cmd, advance, engine } = harness();
  for (let i = 0; i < 1000; i++) cmd("SET", `e${i}`, "v", "PX", 10);
  for (let i = 0; i < 1000; i++) cmd("SET", `keep${i}`, "v", "EX", 1000);
  advance(11);
  // Rounds of 100 keys: the expired ones go, round after round, until rounds find few.
  const removed = engine.keyspace.activeExpireCycle(100, Infinity, () => 0);
  assert.ok(removed >= 900, `${removed}`);
  assert.equal(cmd("DBSIZE"), 1000 + (1000 - removed));
  // A time budget already spent: one round per database at most.
  for (let i = 0; i < 1000; i++) cmd("SET", `f${i}`, "v", "PX", 10);
  advance(11);
  let t = 0;
  assert.ok(engine.keyspace.activeExpireCycle(100, 0, () => t++) <= 100);
  assert.equal(engine.keyspace.size, cmd("DBSIZE"));
});

Deno.test("engine: command lookup by any spelling, again and in turn, finds the same command", () => {
  const { engine } = harness();
  const get = engine.command("get");
  assert.ok(get !== undefined);
  // The same name again (the kept last lookup), an equal string made anew, other cases.
  const names = ["GET", "GET", "get", ["G", "E", "T"].join(""), "GeT", "gEt", "GET"];
  for (const n of names) assert.equal(engine.command(n), get, n);
  // In turn with another command and with unknown names: none answers for another.
  const set = engine.command("SET");
  assert.ok(set !== undefined && set !== get);
  for (const n of ["GET", "nosuch", "GET", "", "SET", "set", "GET", "gett", "GE"]) {
    const lower = n.toLowerCase();
    const want: unknown = lower === "get" ? get : lower === "set" ? set : undefined;
    assert.equal(engine.command(n), want, JSON.stringify(n));
  }
});
