/**
 * The service as a process: HTTP and RESP together, and persistence across a kill -9.
 */
import assert from "node:assert/strict";
import { KvConnection } from "./client.ts";
import { freePort, startDeno } from "../../bench/lib/process.ts";

/** The service with `env`, RESP and HTTP on free ports, once it is ready. */
async function start(env: Record<string, string>) {
  const resp = freePort();
  const svc = await startDeno(
    new URL("./main.ts", import.meta.url).pathname,
    { ...env, RESP_PORT: String(resp), LOG_LEVEL: "warn" },
    { healthPath: "/readyz" },
  );
  return { child: svc.child, resp, http: Number(new URL(svc.url).port) };
}

Deno.test("kv process: acknowledged writes survive kill -9 (APPENDFSYNC=always), HTTP sees RESP's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kv-aof-" });
  const env = { APPENDONLY: "yes", APPENDFSYNC: "always", DATA_DIR: dir };
  try {
    const a = await start(env);
    const c = await KvConnection.connect({ port: a.resp });
    // Started with -A on Linux: the native epoll listener serves.
    assert.match(String(await c.command("INFO", "server")), /multiplexing_api:epoll\r\n/);
    let acked = 0;
    for (let i = 0; i < 300; i++) {
      await c.command("SET", `k${i}`, `v${i}`);
      acked++;
    }
    await c.command("RPUSH", "list", "a", "b");
    await c.command("MULTI");
    await c.command("INCRBY", "n", 5);
    await c.command("SADD", "s", "x");
    await c.command("EXEC");
    // The HTTP API runs on the same keyspace.
    const r = await fetch(`http://127.0.0.1:${a.http}/`, { method: "POST", body: '["GET","k7"]' });
    assert.deepEqual(await r.json(), { result: "v7" });
    a.child.kill("SIGKILL");
    await a.child.status;
    c.close();

    const b = await start(env);
    const d = await KvConnection.connect({ port: b.resp });
    try {
      for (let i = 0; i < acked; i++) assert.equal(await d.command("GET", `k${i}`), `v${i}`);
      assert.deepEqual(await d.command("LRANGE", "list", 0, -1), ["a", "b"]);
      assert.equal(await d.command("GET", "n"), "5");
      assert.equal(await d.command("SISMEMBER", "s", "x"), 1);
      assert.match(await d.command("INFO", "persistence") as string, /aof_enabled:1/);
      assert.equal(
        await d.command("BGREWRITEAOF"),
        "Background append only file rewriting started",
      );
    } finally {
      d.close();
      b.child.kill("SIGTERM");
      await b.child.status;
    }
    // A graceful stop after a rewrite: the snapshot plus the log give the same data again.
    const c2 = await start(env);
    const e = await KvConnection.connect({ port: c2.resp });
    try {
      assert.equal(await e.command("DBSIZE"), acked + 3);
      assert.equal(await e.command("GET", "k299"), "v299");
    } finally {
      e.close();
      c2.child.kill("SIGTERM");
      await c2.child.status;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kv process: Deno.openKv works against the service, and its data survives kill -9", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kv-connect-" });
  const env = {
    HTTP_TOKEN: "kv-connect-token",
    APPENDONLY: "yes",
    APPENDFSYNC: "always",
    DATA_DIR: dir,
  };
  Deno.env.set("DENO_KV_ACCESS_TOKEN", "kv-connect-token");
  try {
    const s = await start(env);
    const kv = await Deno.openKv(`http://127.0.0.1:${s.http}/kv`);
    let aliceStamp: string;
    try {
      await kv.set(["users", "alice"], { name: "Alice", age: 44 });
      const r = await kv.get<{ name: string }>(["users", "alice"]);
      assert.equal(r.value?.name, "Alice");
      const ok = await kv.atomic().check(r).set(["users", "alice"], { name: "A" })
        .sum(["visits"], 2n).commit();
      assert.ok(ok.ok);
      aliceStamp = ok.versionstamp;
      const stale = await kv.atomic().check(r).set(["users", "alice"], { name: "B" }).commit();
      assert.equal(stale.ok, false);
      await kv.set(["gone"], 1);
      await kv.delete(["gone"]);
      const list = [];
      for await (const e of kv.list({ prefix: ["users"] })) list.push(e.key);
      assert.deepEqual(list, [["users", "alice"]]);
    } finally {
      kv.close();
      s.child.kill("SIGKILL");
      await s.child.status;
    }
    // Acknowledged writes were in the append-only file: the same entries, the same versionstamps.
    let stamp = aliceStamp!;
    for (const rewriteFirst of [false, true]) {
      const t = await start(env);
      const kv2 = await Deno.openKv(`http://127.0.0.1:${t.http}/kv`);
      try {
        const alice = await kv2.get<{ name: string }>(["users", "alice"]);
        assert.equal(alice.value?.name, "A");
        assert.equal(alice.versionstamp, aliceStamp!);
        assert.equal((await kv2.get<Deno.KvU64>(["visits"])).value?.value, 2n);
        assert.equal((await kv2.get(["gone"])).value, null);
        // New commits continue after the old versions.
        const next = await kv2.set(["more"], rewriteFirst);
        assert.ok(next.versionstamp > stamp);
        stamp = next.versionstamp;
        if (!rewriteFirst) {
          const c = await KvConnection.connect({ port: t.resp });
          assert.equal(
            await c.command("BGREWRITEAOF"),
            "Background append only file rewriting started",
          );
          c.close();
        }
      } finally {
        kv2.close();
        t.child.kill("SIGTERM");
        await t.child.status;
      }
    }
  } finally {
    Deno.env.delete("DENO_KV_ACCESS_TOKEN");
    await Deno.remove(dir, { recursive: true });
  }
});
