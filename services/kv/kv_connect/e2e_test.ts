/**
 * End-to-end tests with the real client: `Deno.openKv("http://127.0.0.1:<port>/kv")` against a
 * `Deno.serve`d Hono app with the KV Connect routes mounted, so what is checked is what any
 * Deno program will see.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { type KvConnectOptions, mountKvConnect } from "./routes.ts";

const TOKEN = "e2e-secret-token";

interface Harness {
  kv: Deno.Kv;
  url: string;
  /** Moves the server's clock (for expiry) by this many milliseconds. */
  advance(ms: number): void;
}

async function withKv(
  fn: (h: Harness) => Promise<void>,
  options: Partial<KvConnectOptions> = {},
): Promise<void> {
  let offset = 0;
  const app = new Hono();
  const handle = mountKvConnect(app, {
    token: TOKEN,
    now: () => Date.now() + offset,
    ...options,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}/kv`;
  Deno.env.set("DENO_KV_ACCESS_TOKEN", TOKEN);
  const kv = await Deno.openKv(url);
  try {
    await fn({ kv, url, advance: (ms) => offset += ms });
  } finally {
    kv.close();
    handle.close();
    await server.shutdown();
  }
}

Deno.test("KV Connect serves get, getMany, set and delete to the Deno client", async () => {
  await withKv(async ({ kv }) => {
    assert.deepEqual(await kv.get(["missing"]), {
      key: ["missing"],
      value: null,
      versionstamp: null,
    });
    const value = {
      name: "Ada",
      tags: new Set(["x"]),
      at: new Date(0),
      n: 1n,
      bytes: new Uint8Array([1, 2]),
    };
    const r = await kv.set(["users", 1], value);
    assert.equal(r.ok, true);
    const got = await kv.get(["users", 1]);
    assert.deepEqual(got.value, value);
    assert.equal(got.versionstamp, r.versionstamp);

    // Raw bytes values, a 64 KiB value, and every key part type.
    await kv.set(["bytes"], new Uint8Array([9, 8, 7]));
    assert.deepEqual((await kv.get(["bytes"])).value, new Uint8Array([9, 8, 7]));
    const big = "x".repeat(65_000);
    await kv.set(["big"], big);
    assert.equal((await kv.get(["big"])).value, big);
    const key: Deno.KvKey = ["s", 1.5, 2n, true, new Uint8Array([0, 255])];
    await kv.set(key, "parts");
    assert.equal((await kv.get(key)).value, "parts");

    const many = await kv.getMany<unknown[]>([["users", 1], ["missing"], ["bytes"]]);
    assert.deepEqual(many.map((e) => e.versionstamp === null), [false, true, false]);
    assert.deepEqual(many[0].value, value);

    await kv.delete(["users", 1]);
    assert.equal((await kv.get(["users", 1])).value, null);
    await kv.delete(["never", "there"]);
  });
});

Deno.test("KV Connect serves list with prefix, start/end, reverse, limit and cursor", async () => {
  await withKv(async ({ kv }) => {
    const op = kv.atomic();
    for (let i = 0; i < 10; i++) op.set(["items", i], `v${i}`);
    op.set(["other", 0], "o");
    op.set(["items"], "the prefix itself is not listed");
    await op.commit();

    const ids = async (iter: Deno.KvListIterator<unknown>) =>
      (await Array.fromAsync(iter)).map((e) => e.key[1]);
    assert.deepEqual(await ids(kv.list({ prefix: ["items"] })), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(await ids(kv.list({ prefix: ["items"] }, { reverse: true, limit: 3 })), [
      9,
      8,
      7,
    ]);
    assert.deepEqual(await ids(kv.list({ start: ["items", 3], end: ["items", 6] })), [3, 4, 5]);
    assert.deepEqual(
      await ids(kv.list({ prefix: ["items"], start: ["items", 7] })),
      [7, 8, 9],
    );
    assert.deepEqual(
      await ids(kv.list({ start: ["items", 2], end: ["items", 5] }, { reverse: true })),
      [4, 3, 2],
    );
    // Small batches make the client page through several snapshot reads.
    assert.deepEqual(await ids(kv.list({ prefix: ["items"] }, { batchSize: 3 })), [
      0,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      9,
    ]);

    // Resume from a cursor.
    const first = kv.list({ prefix: ["items"] }, { limit: 4 });
    assert.deepEqual(await ids(first), [0, 1, 2, 3]);
    const rest = kv.list({ prefix: ["items"] }, { cursor: first.cursor });
    assert.deepEqual(await ids(rest), [4, 5, 6, 7, 8, 9]);
  });
});

Deno.test("KV Connect commits atomic operations with checks", async () => {
  await withKv(async ({ kv }) => {
    const created = await kv.atomic()
      .check({ key: ["account", "a"], versionstamp: null })
      .set(["account", "a"], 100)
      .set(["account", "b"], 0)
      .commit();
    assert.equal(created.ok, true);

    // Transfer with both versionstamps checked.
    const [a, b] = await kv.getMany<number[]>([["account", "a"], ["account", "b"]]);
    const ok = await kv.atomic()
      .check(a, b)
      .set(["account", "a"], a.value! - 30)
      .set(["account", "b"], b.value! + 30)
      .commit();
    assert.equal(ok.ok, true);

    // Stale versionstamp: nothing is applied.
    const failed = await kv.atomic()
      .check(a)
      .set(["account", "a"], 0)
      .set(["account", "c"], 1)
      .commit();
    assert.deepEqual(failed, { ok: false });
    assert.equal((await kv.get(["account", "a"])).value, 70);
    assert.equal((await kv.get(["account", "c"])).value, null);

    // "Must not exist" fails once the key exists.
    const exists = await kv.atomic().check({ key: ["account", "a"], versionstamp: null })
      .set(["account", "a"], 1).commit();
    assert.equal(exists.ok, false);

    // Deletes in an atomic operation, and mutate().
    const deleted = await kv.atomic().delete(["account", "b"]).mutate(
      { type: "set", key: ["account", "d"], value: "d" },
      { type: "delete", key: ["account", "a"] },
    ).commit();
    assert.equal(deleted.ok, true);
    const left = (await Array.fromAsync(kv.list({ prefix: ["account"] }))).map((e) => e.key[1]);
    assert.deepEqual(left, ["d"]);

    // Queues are refused (by Deno's KV Connect client itself, before any request).
    await assert.rejects(() => kv.enqueue("job"), /not supported/);
  });
});

Deno.test("KV Connect sums, mins and maxes Deno.KvU64 values", async () => {
  await withKv(async ({ kv }) => {
    const u64 = async (key: Deno.KvKey) => ((await kv.get<Deno.KvU64>(key)).value)!.value;
    await kv.atomic().sum(["hits"], 5n).commit();
    await kv.atomic().sum(["hits"], 7n).sum(["hits"], 1n).commit();
    assert.equal(await u64(["hits"]), 13n);
    // Wraps modulo 2^64.
    await kv.set(["wrap"], new Deno.KvU64(2n ** 64n - 1n));
    await kv.atomic().sum(["wrap"], 2n).commit();
    assert.equal(await u64(["wrap"]), 1n);

    await kv.atomic().max(["hi"], 10n).commit();
    await kv.atomic().max(["hi"], 3n).commit();
    assert.equal(await u64(["hi"]), 10n);
    await kv.atomic().min(["lo"], 10n).min(["lo"], 4n).commit();
    await kv.atomic().min(["lo"], 8n).commit();
    assert.equal(await u64(["lo"]), 4n);
    await kv.atomic().mutate({ type: "sum", key: ["hi"], value: new Deno.KvU64(5n) }).commit();
    assert.equal(await u64(["hi"]), 15n);

    // Numbers can be summed with mutate() too (V8-encoded operands): Deno's typings only
    // admit a KvU64 there, but the runtime sends whatever it is given.
    const number = (n: number) => n as unknown as Deno.KvU64;
    await kv.atomic().mutate({ type: "sum", key: ["score"], value: number(1.5) }).commit();
    await kv.atomic().mutate({ type: "sum", key: ["score"], value: number(2) }).commit();
    assert.equal((await kv.get(["score"])).value, 3.5);

    // A type mismatch is an error, and nothing of the operation is applied.
    await kv.set(["name"], "not a number");
    await assert.rejects(
      () => kv.atomic().set(["side"], 1).sum(["name"], 1n).commit(),
      /status=400.*cannot sum a KvU64 into a stored value/,
    );
    await assert.rejects(() => kv.atomic().max(["score"], 1n).commit(), /not a Deno.KvU64/);
    assert.equal((await kv.get(["side"])).value, null);
  });
});

Deno.test("KV Connect versionstamps increase with every commit", async () => {
  await withKv(async ({ kv }) => {
    const stamps: string[] = [];
    for (let i = 0; i < 5; i++) stamps.push((await kv.set(["v"], i)).versionstamp);
    const c = await kv.atomic().set(["a"], 1).set(["b"], 2).commit();
    assert.ok(c.ok);
    stamps.push(c.versionstamp);
    assert.deepEqual([...stamps].sort(), stamps);
    assert.equal(new Set(stamps).size, stamps.length);
    assert.match(stamps[0], /^[0-9a-f]{16}0000$/);
    // One commit, one versionstamp for every key it wrote.
    const [a, b] = await kv.getMany([["a"], ["b"]]);
    assert.equal(a.versionstamp, c.versionstamp);
    assert.equal(b.versionstamp, c.versionstamp);
  });
});

Deno.test("KV Connect expires entries set with expireIn", async () => {
  await withKv(async ({ kv, advance }) => {
    await kv.set(["session", 1], "short", { expireIn: 1_000 });
    await kv.set(["session", 2], "long", { expireIn: 60_000 });
    await kv.set(["session", 3], "forever");
    assert.equal((await kv.get(["session", 1])).value, "short");
    advance(2_000);
    assert.equal((await kv.get(["session", 1])).value, null);
    const left = (await Array.fromAsync(kv.list({ prefix: ["session"] }))).map((e) => e.value);
    assert.deepEqual(left, ["long", "forever"]);
    // An expired key is absent for checks.
    const r = await kv.atomic().check({ key: ["session", 1], versionstamp: null })
      .set(["session", 1], "again").commit();
    assert.equal(r.ok, true);
    advance(120_000);
    assert.deepEqual(
      (await Array.fromAsync(kv.list({ prefix: ["session"] }))).map((e) => e.value),
      ["again", "forever"],
    );
  });
});

Deno.test("KV Connect streams kv.watch updates", async () => {
  await withKv(async ({ kv, advance }) => {
    await kv.set(["w", "a"], 1);
    const stream = kv.watch([["w", "a"], ["w", "b"]]);
    const reader = stream.getReader();
    const next = async () => {
      const { value, done } = await reader.read();
      assert.equal(done, false);
      return value!.map((e) => e.value);
    };
    assert.deepEqual(await next(), [1, null]);
    await kv.set(["w", "b"], "b1");
    assert.deepEqual(await next(), [1, "b1"]);
    await kv.set(["unrelated"], 0);
    await kv.atomic().set(["w", "a"], 2).delete(["w", "b"]).commit();
    assert.deepEqual(await next(), [2, null]);
    // An expiry shows up without any write (the stream rechecks on its keepalive).
    await kv.set(["w", "b"], "temporary", { expireIn: 1_000 });
    assert.deepEqual(await next(), [2, "temporary"]);
    advance(5_000);
    assert.deepEqual(await next(), [2, null]);
    await reader.cancel();
  }, { watchPingMs: 50 });
});

Deno.test("KV Connect refuses a wrong access token", async () => {
  const app = new Hono();
  const handle = mountKvConnect(app, { token: TOKEN });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  Deno.env.set("DENO_KV_ACCESS_TOKEN", "wrong-token");
  try {
    // Deno 2.9.6 does the metadata exchange in openKv itself, so that is what fails.
    await assert.rejects(
      () => Deno.openKv(`http://127.0.0.1:${server.addr.port}/kv`),
      /status 401.*invalid or missing access token/,
    );
  } finally {
    handle.close();
    Deno.env.set("DENO_KV_ACCESS_TOKEN", TOKEN);
    await server.shutdown();
  }
});
