import assert from "node:assert/strict";
import { mulberry32 } from "./_contract_test_suite.ts";
import { encodeCursor, InvalidCursorError } from "./cursor.ts";
import {
  ArenaFullError,
  CapacityError,
  KeyTooLongError,
  TableFullError,
  ValueTooLargeError,
} from "./errors.ts";
import { hashString } from "./hash.ts";
import { SharedShardTable } from "./shared_table.ts";

const enc = new TextEncoder();
const small = (o: Parameters<typeof SharedShardTable.create>[0] = {}) =>
  SharedShardTable.create({ shardCount: 4, slotsPerShard: 64, arenaBytes: 1 << 20, ...o });

Deno.test("SharedShardTable: option validation", () => {
  const bad: Parameters<typeof SharedShardTable.create>[0][] = [
    { shardCount: 3 },
    { shardCount: 0 },
    { slotsPerShard: 100 },
    { slotsPerShard: 8 },
    { slotsPerShard: 2 ** 25 },
    { shardCount: 65536, slotsPerShard: 2 ** 13 },
    { maxLoad: 0 },
    { maxLoad: 1 },
    { arenaBytes: 0 },
    { arenaBytes: 2 ** 40 },
    { maxKeyBytes: 0 },
    { maxKeyBytes: 5000 },
    { minBlockBytes: 24 },
    { minBlockBytes: 64, maxBlockBytes: 32 },
    { maxKeyBytes: 1000, maxBlockBytes: 512 },
    { sequenceStart: -1 },
  ];
  for (const o of bad) {
    assert.throws(() => SharedShardTable.create(o), RangeError, JSON.stringify(o));
  }
  const t = SharedShardTable.create();
  assert.equal(t.shardCount, 64);
  assert.equal(t.slotsPerShard, 16384);
  assert.equal(t.maxKeyBytes, 256);
  assert.equal(t.maxBlockBytes, 65536);
  assert.equal(t.maxValueBytes, 65536 - 8 - 256);
  const s = t.stats();
  assert.equal(s.maxEntries, 64 * Math.floor(16384 * 0.8));
  assert.equal(s.slotBytes, 64 * (16384 + 16384 / 8 + 16) * 8);
  assert.equal(s.arenaMaxBytes, 256 * 2 ** 20);
});

Deno.test("SharedShardTable: keys over maxKeyBytes (in UTF-8) are rejected clearly", () => {
  const t = small({ maxKeyBytes: 10 });
  t.set("0123456789", enc.encode("ok"));
  assert.throws(() => t.set("0123456789a", enc.encode("x")), KeyTooLongError);
  // 4 × 3-byte characters = 12 bytes although only 4 UTF-16 units.
  assert.throws(() => t.set("€€€€", enc.encode("x")), (e: unknown) => {
    assert.ok(e instanceof KeyTooLongError && e instanceof RangeError);
    assert.equal(e.keyBytes, 12);
    assert.equal(e.maxKeyBytes, 10);
    assert.match(e.message, /12 bytes.*limit of 10/);
    return true;
  });
  assert.throws(() => t.get("x".repeat(1000)), KeyTooLongError);
  assert.throws(() => t.has("€€€€"), KeyTooLongError);
  assert.throws(() => t.delete("€€€€"), KeyTooLongError);
  t.set("€€€", enc.encode("9 bytes"));
  assert.deepEqual(t.get("€€€"), enc.encode("9 bytes"));
  assert.throws(() => t.set(42 as unknown as string, enc.encode("x")), TypeError);
  assert.equal(t.size, 2);
});

Deno.test("SharedShardTable: values over the largest size class are rejected", () => {
  const t = small({ maxBlockBytes: 1024, maxKeyBytes: 16 });
  assert.equal(t.maxValueBytes, 1000);
  t.set("k", new Uint8Array(1024 - 8 - 1));
  assert.equal(t.get("k")!.length, 1015);
  assert.throws(() => t.set("k", new Uint8Array(1024 - 8)), (e: unknown) => {
    assert.ok(e instanceof ValueTooLargeError && e instanceof RangeError);
    assert.match(e.message, /largest size class of 1024 bytes/);
    return true;
  });
  assert.equal(t.get("k")!.length, 1015, "failed set left the old value");
  assert.throws(() => t.update("k", () => new Uint8Array(5000)), ValueTooLargeError);
  assert.equal(t.get("k")!.length, 1015);
  assert.throws(() => t.set("v", "text" as unknown as Uint8Array), TypeError);
  assert.throws(() => t.update("v", () => "text" as unknown as Uint8Array), TypeError);
  assert.equal(t.has("v"), false);
});

Deno.test("SharedShardTable: arena exhaustion throws ArenaFullError and corrupts nothing", () => {
  const t = small({
    slotsPerShard: 1024,
    arenaBytes: 64 * 1024,
    arenaInitialBytes: 1024,
    maxBlockBytes: 4096,
  });
  const stored = new Map<string, Uint8Array>();
  let err: unknown;
  for (let i = 0; i < 10_000; i++) {
    const v = enc.encode(`value-${i}-`.repeat(1 + (i % 7)));
    try {
      t.set(`k${i}`, v);
      stored.set(`k${i}`, v);
    } catch (e) {
      err = e;
      break;
    }
  }
  assert.ok(err instanceof ArenaFullError, String(err));
  assert.ok(err instanceof CapacityError);
  assert.match((err as Error).message, /arena is full/);
  assert.ok(stored.size > 100);
  assert.equal(t.size, stored.size);
  for (const [k, v] of stored) assert.deepEqual(t.get(k), v, k);
  const stats = t.stats();
  assert.equal(stats.arenaBytes, 64 * 1024, "grew to the limit");
  // Overwriting with a bigger value that does not fit leaves the old one.
  const [k0, v0] = stored.entries().next().value!;
  assert.throws(() => t.set(k0, new Uint8Array(4000)), ArenaFullError);
  assert.deepEqual(t.get(k0), v0);
  // Freed space is reused: delete half, then the same amount fits again.
  let freed = 0;
  for (const k of [...stored.keys()]) {
    if (freed++ % 2 === 0) {
      t.delete(k);
      stored.delete(k);
    }
  }
  const carved = t.stats().arenaCarvedBytes;
  for (let i = 0; i < 50; i++) {
    const v = enc.encode(`again-${i}-`.repeat(1 + (i % 7)));
    t.set(`again${i}`, v);
    stored.set(`again${i}`, v);
  }
  assert.equal(t.stats().arenaCarvedBytes, carved, "no new arena carved: free lists reused");
  for (const [k, v] of stored) assert.deepEqual(t.get(k), v, k);
});

Deno.test("SharedShardTable: larger free blocks are split when a class runs dry", () => {
  const t = small({ arenaBytes: 8192, arenaInitialBytes: 8192, maxBlockBytes: 4096 });
  t.set("big", new Uint8Array(4000)); // one 4096-byte block
  t.set("big2", new Uint8Array(4000)); // arena now full
  assert.throws(() => t.set("small", new Uint8Array(10)), ArenaFullError);
  t.delete("big");
  for (let i = 0; i < 128; i++) t.set(`s${i}`, new Uint8Array(10)); // 32-byte blocks from the split
  assert.throws(() => t.set("one-more", new Uint8Array(10)), ArenaFullError);
  const s = t.stats();
  assert.equal(s.liveBlocks, 129);
  assert.equal(s.arenaLiveBytes, 4096 + 128 * 32);
  for (let i = 0; i < 128; i++) assert.equal(t.get(`s${i}`)!.length, 10);
  assert.equal(t.get("big2")!.length, 4000);
});

Deno.test("SharedShardTable: a full shard throws TableFullError", () => {
  const t = SharedShardTable.create({ shardCount: 1, slotsPerShard: 16, maxLoad: 0.5 });
  for (let i = 0; i < 8; i++) t.set(`k${i}`, Uint8Array.of(i));
  assert.throws(() => t.set("k8", Uint8Array.of(8)), (e: unknown) => {
    assert.ok(e instanceof TableFullError && e instanceof CapacityError);
    assert.match(e.message, /shard 0 is full/);
    return true;
  });
  t.set("k3", Uint8Array.of(33)); // overwrite still works
  t.delete("k0");
  t.set("k8", Uint8Array.of(8));
  assert.equal(t.size, 8);
  assert.deepEqual(t.get("k3"), Uint8Array.of(33));
});

Deno.test("SharedShardTable: backward-shift deletes keep lookups correct under churn", () => {
  const rnd = mulberry32(99);
  const t = SharedShardTable.create({ shardCount: 2, slotsPerShard: 256, arenaBytes: 1 << 20 });
  const ref = new Map<string, number>();
  for (let i = 0; i < 50_000; i++) {
    const k = `k${Math.floor(rnd() * 300)}`;
    const r = rnd();
    if (r < 0.5) {
      if (ref.size < 380 || ref.has(k)) {
        t.set(k, Uint8Array.of(i & 0xff));
        ref.set(k, i & 0xff);
      }
    } else {
      assert.equal(t.delete(k), ref.delete(k));
    }
    if (i % 997 === 0) {
      for (const [rk, rv] of ref) assert.deepEqual(t.get(rk), Uint8Array.of(rv));
      assert.equal(t.size, ref.size);
    }
  }
  for (let i = 0; i < 300; i++) {
    const k = `k${i}`;
    assert.equal(t.has(k), ref.has(k), k);
  }
  t.clear();
  assert.equal(t.size, 0);
  assert.equal(t.stats().liveBlocks, 0);
});

Deno.test("SharedShardTable: attach() shares the same memory", () => {
  const a = small();
  const b = SharedShardTable.attach(structuredClone(a.handle()));
  a.set("x", enc.encode("from a"));
  assert.deepEqual(b.get("x"), enc.encode("from a"));
  b.update("x", () => enc.encode("from b"));
  assert.deepEqual(a.get("x"), enc.encode("from b"));
  assert.equal(b.size, 1);
  assert.equal(a.nextSequence(), 1);
  assert.equal(b.nextSequence(), 2);
  assert.equal(a.nextSequence(), 3);
  assert.throws(() => SharedShardTable.attach({} as never), TypeError);
  assert.throws(
    () =>
      SharedShardTable.attach({
        ...a.handle(),
        header: new SharedArrayBuffer(1024),
      }),
    /bad magic/,
  );
});

Deno.test("SharedShardTable: get returns an unshared copy", () => {
  const t = small();
  const v = enc.encode("abc");
  t.set("k", v);
  v[0] = 0; // the table keeps its own copy
  const got = t.get("k")!;
  assert.deepEqual(got, enc.encode("abc"));
  assert.ok(got.buffer instanceof ArrayBuffer);
  got[0] = 0;
  assert.deepEqual(t.get("k"), enc.encode("abc"));
  // Values from subarrays of bigger buffers are stored by their own bytes.
  const big = enc.encode("..hello..");
  t.set("sub", big.subarray(2, 7));
  assert.deepEqual(t.get("sub"), enc.encode("hello"));
});

Deno.test("SharedShardTable: re-entrant calls from update() throw instead of deadlocking", () => {
  const t = small();
  t.set("a", Uint8Array.of(1));
  assert.throws(() => t.update("a", () => t.get("a")), /re-entrant/);
  assert.throws(() => t.update("a", () => t.get("zzz")), /re-entrant/);
  // The lock was released: the table is usable afterwards.
  assert.deepEqual(t.get("a"), Uint8Array.of(1));
  t.set("a", Uint8Array.of(2));
  assert.deepEqual(t.get("a"), Uint8Array.of(2));
});

Deno.test("SharedShardTable: nextSequence honours sequenceStart", () => {
  const t = small({ sequenceStart: 1000 });
  assert.equal(t.nextSequence(), 1001);
  assert.equal(t.nextSequence(), 1002);
});

Deno.test("SharedShardTable: forged cursors are checked", () => {
  const t = small({ maxKeyBytes: 8 });
  t.set("a", Uint8Array.of(1));
  for (
    const cursor of [
      encodeCursor("t2", 4, { shard: 1, h: 2 ** 32 + 1 }),
      encodeCursor("t2", 4, { shard: 1, h: 5, tie: "much too long for the table" }),
      encodeCursor("m2", 4, { shard: 1, h: 5 }),
    ]
  ) {
    assert.throws(() => t.page({ cursor, limit: 1 }), InvalidCursorError);
  }
  assert.deepEqual(t.page({ cursor: encodeCursor("t2", 4, { shard: 3, h: 2 ** 32 }), limit: 1 }), {
    items: [],
    cursor: null,
  });
  const all = t.page({ cursor: encodeCursor("t2", 4, { shard: 0, h: 0, tie: "" }), limit: 9 });
  assert.ok(all.items.length <= 1);
});

Deno.test("SharedShardTable: full clusters at the end of a shard spill into the overflow area", () => {
  // One shard, 16 home slots (+18 overflow), every key homed on the last slot.
  const t = SharedShardTable.create({ shardCount: 1, slotsPerShard: 16, maxLoad: 0.95 });
  const keys: string[] = [];
  for (let i = 0; keys.length < 15; i++) {
    const k = `x${i}`;
    if (hashString(k) >>> 28 === 15) keys.push(k);
  }
  for (const k of keys) t.set(k, new TextEncoder().encode(k));
  for (const k of keys) assert.deepEqual(t.get(k), new TextEncoder().encode(k));
  const listed = t.page({ limit: 100 }).items.map(([k]) => k);
  assert.deepEqual([...listed].sort(), [...keys].sort());
  // Delete from the middle of the pile: the rest shift back and stay findable.
  for (const k of keys.slice(5)) assert.equal(t.delete(k), true);
  for (const k of keys.slice(0, 5)) assert.deepEqual(t.get(k), new TextEncoder().encode(k));
  for (const k of keys.slice(0, 5)) assert.equal(t.delete(k), true);
  assert.equal(t.size, 0);
});

Deno.test("SharedShardTable: growable arena grows on demand", () => {
  const t = SharedShardTable.create({
    shardCount: 8,
    slotsPerShard: 4096,
    arenaBytes: 32 * 2 ** 20,
    arenaInitialBytes: 4096,
  });
  const s0 = t.stats();
  assert.equal(s0.growable, true);
  assert.equal(s0.arenaBytes, 4096);
  for (let i = 0; i < 20_000; i++) t.set(`key-${i}`, new Uint8Array(200).fill(i & 0xff));
  const s1 = t.stats();
  assert.ok(s1.arenaBytes >= 20_000 * 256 && s1.arenaBytes <= 32 * 2 ** 20, String(s1.arenaBytes));
  for (let i = 0; i < 20_000; i += 101) {
    assert.deepEqual(t.get(`key-${i}`), new Uint8Array(200).fill(i & 0xff));
  }
  const fixed = SharedShardTable.create({ growable: false, arenaBytes: 1 << 20 });
  assert.equal(fixed.stats().growable, false);
  assert.equal(fixed.stats().arenaBytes, 1 << 20);
});

Deno.test("SharedShardTable: page copies values and decodes unicode keys", () => {
  const t = small();
  const keys = ["plain", "ünïcödé", "🔑".repeat(20), "x".repeat(100)];
  for (const k of keys) t.set(k, enc.encode(k));
  const got = new Map(t.page({ limit: 100 }).items);
  assert.equal(got.size, keys.length);
  for (const k of keys) assert.deepEqual(got.get(k), enc.encode(k));
});

Deno.test("SharedShardTable: each entry takes the smallest size class that fits", () => {
  for (const steps of [1, 2, 4, 8]) {
    const t = small({ sizeClassSteps: steps, minBlockBytes: 64, maxBlockBytes: 8192 });
    const sizes = t.stats().sizeClasses;
    assert.equal(sizes[0], 64);
    assert.equal(sizes.at(-1), 8192);
    assert.equal(sizes.length, 7 * steps + 1);
    for (let i = 1; i < sizes.length; i++) {
      assert.ok(sizes[i]! > sizes[i - 1]! && sizes[i]! % 8 === 0);
      assert.ok(sizes[i]! <= sizes[i - 1]! * (1 + 1 / steps) + 1e-9, `slack bound at ${sizes[i]}`);
    }
    for (let len = 0; len <= 8192 - 9; len += steps === 8 ? 1 : 7) {
      t.set("k", new Uint8Array(len));
      const total = 8 + 1 + len;
      const live = t.stats().arenaLiveBytes;
      const expected = sizes.find((c) => c >= total)!;
      assert.equal(live, expected, `steps ${steps}, total ${total}`);
    }
    assert.throws(() => t.set("k", new Uint8Array(8192 - 8)), ValueTooLargeError);
  }
  assert.throws(() => small({ sizeClassSteps: 3 }), RangeError);
  assert.throws(() => small({ sizeClassSteps: 8, minBlockBytes: 32 }), RangeError);
});

Deno.test("SharedShardTable: read() gives a zero-copy view under the lock", () => {
  const t = small();
  t.set("k", enc.encode('{"a":1}'));
  const dec = new TextDecoder();
  assert.deepEqual(t.read("k", (b) => JSON.parse(dec.decode(b))), { a: 1 });
  assert.equal(t.read("missing", () => assert.fail("called")), undefined);
  assert.equal(t.read("k", (b) => b.buffer instanceof SharedArrayBuffer), true);
  assert.throws(() => t.read("k", () => t.get("k")), /re-entrant/);
  assert.deepEqual(t.get("k"), enc.encode('{"a":1}'));
});
