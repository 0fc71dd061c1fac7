import assert from "node:assert/strict";
import { Prng, SimDisk } from "@deno-stores/shared/sim";
import type { FileSystem } from "@deno-stores/shared/wal";
import { ALL_COMMANDS } from "./commands/mod.ts";
import { Engine } from "./engine.ts";
import { Aof, type AppendFsync } from "./persistence.ts";
import { type Reply, ReplyReader } from "./reply.ts";
import { RespWriter } from "./resp.ts";
import { typeName } from "./keyspace.ts";
import { SortedSet } from "./zset.ts";
import { HashValue, ListValue, SetValue } from "./values.ts";

/** An engine with the append-only file on `fs`, and a connection to it. */
async function open(fs: FileSystem, clock: { t: number }, fsync: AppendFsync = "always") {
  const engine = new Engine(ALL_COMMANDS, {
    now: () => clock.t,
    onInternalError: (e) => {
      throw e;
    },
  });
  const aof = await Aof.open({ engine, fs, dir: "/data/kv", fsync, logger: { warn: () => {} } });
  engine.writeHook = (w) => aof.record(w);
  engine.persistence = aof;
  const client = engine.connect();
  const out = new RespWriter(), replies = new ReplyReader();
  const cmd = (...args: (string | number)[]): Reply => {
    out.reset();
    engine.execute(client, args.map(String), out);
    replies.push(out.bytes());
    return replies.next()!;
  };
  return { engine, aof, cmd, commit: () => aof.commit() ?? Promise.resolve() };
}

/** Every live key of every database, its type, value and expiry, in a comparable form. */
function dump(engine: Engine, now: number): string {
  const out: string[] = [];
  for (const db of engine.keyspace.dbs) {
    for (const k of [...db.data.keys()].sort()) {
      const at = db.expires.get(k);
      if (at !== undefined && at <= now) continue;
      const v = db.data.get(k)!;
      let shown: unknown;
      if (typeof v === "string") shown = v;
      else if (v instanceof ListValue) shown = [...v.slice(0, v.length - 1)];
      else if (v instanceof HashValue) shown = [...v.fields].sort();
      else if (v instanceof SetValue) shown = [...v.values()].sort();
      else if (v instanceof SortedSet) shown = [...v.entries()];
      out.push(
        `${db.id} ${JSON.stringify(k)} ${typeName(v)} ${JSON.stringify(shown)} ${at ?? "-"}`,
      );
    }
  }
  return out.join("\n");
}

/** Writes of every kind, including the ones that must be logged as what they did. */
function workload(cmd: (...a: (string | number)[]) => Reply) {
  cmd("SET", "s", "v");
  cmd("SET", "ttl", "v", "EX", 100);
  cmd("SETEX", "tx", 50, "v");
  cmd("SET", "short", "v", "PX", 500);
  cmd("INCRBY", "n", 41);
  cmd("INCR", "n");
  cmd("INCRBYFLOAT", "f", "0.1");
  cmd("INCRBYFLOAT", "f", "0.2");
  cmd("APPEND", "s", "\x00\xff");
  cmd("RPUSH", "l", "a", "b", "c");
  cmd("LPOP", "l");
  cmd("HSET", "h", "a", "1", "b", "2");
  cmd("HINCRBYFLOAT", "h", "a", "1.5");
  cmd("SADD", "set", "a", "b", "c", "d", "e");
  cmd("SPOP", "set");
  cmd("SPOP", "set", 2);
  cmd("ZADD", "z", 1, "a", 2, "b", "-inf", "lo");
  cmd("ZINCRBY", "z", 5, "a");
  cmd("EXPIRE", "h", 1000);
  cmd("SELECT", 3);
  cmd("SET", "in3", "x");
  cmd("MULTI");
  cmd("SET", "t1", "1");
  cmd("SELECT", 0);
  cmd("INCR", "n");
  cmd("EXEC");
  cmd("GETEX", "s", "PX", 2000);
  cmd("DEL", "nothing");
  cmd("RENAME", "ttl", "ttl2");
}

Deno.test("AOF: a reopened engine has the same keyspace, expiry times and random choices", async () => {
  const disk = new SimDisk();
  const clock = { t: 1_700_000_000_000 };
  const a = await open(disk.mount(), clock);
  workload(a.cmd);
  await a.commit();
  const before = dump(a.engine, clock.t);
  assert.ok(before.includes(`"set"`)); // something survived SPOP
  await a.aof.close();
  const b = await open(disk.mount(), clock);
  assert.equal(dump(b.engine, clock.t), before);
  assert.ok(b.aof.load.replayedRecords > 20);
  // Relative expiry was logged as absolute: reopened later, times have passed, not restarted.
  await b.aof.close();
  clock.t += 600;
  const c = await open(disk.mount(), clock);
  assert.equal(c.cmd("EXISTS", "short"), 0);
  assert.equal(c.cmd("TTL", "ttl2"), 99);
  assert.equal(c.cmd("TTL", "tx"), 49);
  await c.aof.close();
});

Deno.test("AOF: a rewrite compacts the log into a snapshot; later writes replay after it", async () => {
  const disk = new SimDisk();
  const clock = { t: 1_700_000_000_000 };
  const a = await open(disk.mount(), clock);
  for (let i = 0; i < 500; i++) a.cmd("INCR", "counter");
  workload(a.cmd);
  await a.commit();
  await a.aof.rewrite();
  a.cmd("SET", "after", "1");
  a.cmd("DEL", "s");
  await a.commit();
  const before = dump(a.engine, clock.t);
  await a.aof.close();
  const b = await open(disk.mount(), clock);
  assert.equal(dump(b.engine, clock.t), before);
  assert.ok(b.aof.load.snapshotIndex !== null);
  assert.ok(b.aof.load.snapshotCommands > 0);
  assert.equal(b.aof.load.replayedRecords, 2); // only what came after the snapshot
  await b.aof.close();
});

Deno.test("AOF: after a crash, every committed write is there and nothing half-done", async () => {
  for (let seed = 1; seed <= 30; seed++) {
    const disk = new SimDisk({ rand: new Prng(seed) });
    const clock = { t: 1_700_000_000_000 };
    const a = await open(disk.mount(), clock);
    let acked = 0;
    for (let i = 0; i < 40; i++) {
      a.cmd("MULTI");
      a.cmd("SET", `k${i}`, `v${i}`);
      a.cmd("INCR", "count");
      a.cmd("EXEC");
      if (i % 7 === 6) {
        await a.commit();
        acked = i + 1;
      }
    }
    // Not committed: may be lost, but never half of a transaction.
    disk.crash({ torn: true });
    const b = await open(disk.mount(), clock);
    const count = Number(b.cmd("GET", "count") ?? 0);
    assert.ok(count >= acked, `seed ${seed}: ${count} < ${acked} acknowledged`);
    for (let i = 0; i < 40; i++) {
      assert.equal(b.cmd("GET", `k${i}`), i < count ? `v${i}` : null, `seed ${seed} key ${i}`);
    }
    await b.aof.close();
  }
});

Deno.test("AOF: a failing disk refuses further writes (MISCONF) and the commit rejects", async () => {
  const disk = new SimDisk();
  const clock = { t: 1_700_000_000_000 };
  const a = await open(disk.mount(), clock);
  a.cmd("SET", "k", "v");
  await a.commit();
  disk.failWith((op) => op.op === "sync" ? new Error("EIO") : undefined);
  a.cmd("SET", "k", "w");
  await assert.rejects(() => a.commit(), /EIO/);
  const r = a.cmd("SET", "k", "x");
  assert.ok(r instanceof Error && r.message.startsWith("MISCONF Errors writing to the AOF file"));
  assert.equal(a.cmd("GET", "k"), "w"); // reads still work
});

Deno.test("AOF: everysec and no write to the OS before replies; always fsyncs", async () => {
  for (const policy of ["everysec", "no", "always"] as const) {
    const disk = new SimDisk();
    const clock = { t: 1_700_000_000_000 };
    const a = await open(disk.mount(), clock, policy);
    disk.resetStats();
    a.cmd("SET", "k", "v");
    assert.ok(a.aof.commit() !== null);
    await a.commit();
    assert.ok(disk.stats.writes >= 1, policy);
    assert.equal(disk.stats.syncs >= 1, policy === "always", policy);
    assert.equal(a.aof.commit(), null); // nothing pending
    await a.aof.close();
  }
});
