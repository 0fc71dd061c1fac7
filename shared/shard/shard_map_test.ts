import assert from "node:assert/strict";
import { mulberry32 } from "./_contract_test_suite.ts";
import { encodeCursor, InvalidCursorError } from "./cursor.ts";
import { ShardMap } from "./shard_map.ts";

function allKeys<V, K extends string | number>(m: ShardMap<V, K>, limit: number): K[] {
  const out: K[] = [];
  let cursor: string | null = null;
  do {
    const page = m.page({ cursor, limit });
    for (const [k] of page.items) out.push(k);
    cursor = page.cursor;
  } while (cursor !== null);
  return out;
}

Deno.test("ShardMap: constructor forms and defaults", () => {
  assert.equal(new ShardMap().shardCount, 64);
  assert.equal(new ShardMap({ shardCount: 4 }).shardCount, 4);
  assert.equal(new ShardMap({}).shardCount, 64);
  assert.equal(new ShardMap(65536).shardSizes().length, 65536);
  assert.throws(() => new ShardMap({ shardCount: 12 }), /power of two/);
  assert.throws(() => new ShardMap(131072), RangeError);
});

Deno.test("ShardMap: number keys are distinct from string keys", () => {
  const m = new ShardMap<string, string | number>(8);
  m.set(1, "number").set("1", "string").set(-0, "zero").set(2 ** 40, "big").set(0.5, "half");
  assert.equal(m.get(1), "number");
  assert.equal(m.get("1"), "string");
  assert.equal(m.get(0), "zero");
  assert.equal(m.get(2 ** 40), "big");
  assert.equal(m.get(0.5), "half");
  assert.equal(m.size, 5);
  assert.equal(m.shardOf(7), m.shardOf(7));
  assert.equal(new Set(allKeys(m, 2)).size, 5);
});

Deno.test("ShardMap: stores any value, including undefined-free objects and falsy ones", () => {
  const m = new ShardMap<unknown>(2);
  m.set("zero", 0).set("empty", "").set("null", null).set("obj", { a: 1 });
  assert.equal(m.get("zero"), 0);
  assert.equal(m.get("empty"), "");
  assert.equal(m.get("null"), null);
  assert.deepEqual(m.get("obj"), { a: 1 });
  assert.equal(m.has("null"), true);
});

Deno.test("ShardMap: order is shard-major then by hash, whatever the insertion order", () => {
  const keys = Array.from({ length: 500 }, (_, i) => `k${i}`);
  const a = new ShardMap<number>(16);
  const b = new ShardMap<number>(16);
  for (const k of keys) a.set(k, 1);
  for (const k of [...keys].reverse()) b.set(k, 2);
  assert.deepEqual([...a.keys()], [...b.keys()]);
  const shards = [...a.keys()].map((k) => a.shardOf(k));
  assert.deepEqual(shards, [...shards].sort((x, y) => x - y));
  // Overwrite, or delete and re-add: the key keeps its place.
  const before = [...a.keys()];
  a.set("k7", 9);
  a.delete("k100");
  a.set("k100", 3);
  assert.deepEqual([...a.keys()], before);
  assert.deepEqual([...a].find(([k]) => k === "k7"), ["k7", 9]);
});

Deno.test("ShardMap: growing and shrinking shards loses nothing", () => {
  const rnd = mulberry32(7);
  const m = new ShardMap<number>(4);
  const ref = new Map<string, number>();
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 2000; i++) {
      const k = `r${round}:${i}`;
      m.set(k, i);
      ref.set(k, i);
    }
    for (const k of [...ref.keys()]) {
      if (rnd() < 0.7) {
        assert.equal(m.delete(k), true);
        ref.delete(k);
      }
    }
    assert.equal(m.size, ref.size);
  }
  for (const [k, v] of ref) assert.equal(m.get(k), v);
  const keys = allKeys(m, 333);
  assert.equal(keys.length, ref.size);
  assert.equal(new Set(keys).size, ref.size);
  // Deleting everything (tail trims and compactions) leaves an empty, usable map.
  for (const k of ref.keys()) m.delete(k);
  assert.equal(m.size, 0);
  assert.deepEqual(m.shardSizes(), [0, 0, 0, 0]);
  assert.deepEqual(m.page({ limit: 10 }), { items: [], cursor: null });
  m.set("again", 1);
  assert.deepEqual(allKeys(m, 1), ["again"]);
});

Deno.test("ShardMap: a cursor resumes correctly after the shard was resized", () => {
  const m = new ShardMap<number>(1);
  for (let i = 0; i < 1000; i++) m.set(`k${i}`, i);
  const first = m.page({ limit: 500 });
  const firstKeys = new Set(first.items.map(([k]) => k));
  // Shrink (delete most returned keys), then grow (add many): slots move twice.
  for (const k of [...firstKeys].slice(0, 490)) m.delete(k);
  for (let i = 0; i < 5000; i++) m.set(`new${i}`, i);
  for (let i = 0; i < 5000; i++) m.delete(`new${i}`);
  const second = m.page({ cursor: first.cursor, limit: 1000 });
  assert.equal(second.items.length, 500);
  for (const [k] of second.items) assert.ok(!firstKeys.has(k), `${k} returned twice`);
  assert.equal(second.cursor, null);
});

Deno.test("ShardMap: entries() tolerates mutation during iteration", () => {
  const m = new ShardMap<number>(2);
  for (let i = 0; i < 1000; i++) m.set(`k${i}`, i);
  const seen = new Set<string>();
  for (const [k] of m.entries()) {
    assert.ok(!seen.has(k), `dup ${k}`);
    seen.add(k);
    // Delete a batch of odd keys: triggers compactions mid-iteration.
    const n = Number(k.slice(1));
    if (n % 2 === 0) { for (let j = 1; j < 40; j += 2) m.delete(`k${(n + j) % 1000}`); }
  }
  for (let i = 0; i < 1000; i += 2) assert.ok(seen.has(`k${i}`), `missing k${i}`);
});

Deno.test("ShardMap: a filter that mutates the map does not break the page", () => {
  const m = new ShardMap<number>(1);
  for (let i = 0; i < 300; i++) m.set(`k${i}`, i);
  const returned: string[] = [];
  let cursor: string | null = null;
  do {
    const page = m.page({
      cursor,
      limit: 20,
      filter: (k, v) => {
        if (v % 2 === 0 && v + 1 < 300) m.delete(`k${v + 1}`);
        return k.length > 0;
      },
    });
    for (const [k] of page.items) returned.push(k);
    cursor = page.cursor;
  } while (cursor !== null);
  assert.equal(new Set(returned).size, returned.length);
  for (let i = 0; i < 300; i += 2) assert.ok(returned.includes(`k${i}`));
});

Deno.test("ShardMap: forged cursors are checked", () => {
  const m = new ShardMap<number>(4);
  for (let i = 0; i < 10; i++) m.set(`k${i}`, i);
  const bad = [
    encodeCursor("m2", 4, { shard: 4, h: 0 }),
    encodeCursor("m2", 4, { shard: 0, h: 2 ** 32 + 1 }),
    encodeCursor("m2", 4, { shard: 0, h: 5, tie: "xbad-tag" }),
    encodeCursor("m2", 4, { shard: 0, h: 5, tie: "nnot-a-number" }),
    encodeCursor("m2", 4, { shard: 0, h: 2 ** 32, tie: "sk" }),
    encodeCursor("t2", 4, { shard: 0, h: 0 }),
  ];
  for (const cursor of bad) {
    assert.throws(() => m.page({ cursor, limit: 5 }), InvalidCursorError, cursor);
  }
  // Well-formed cursors at any position work, including past the end.
  assert.ok(m.page({ cursor: encodeCursor("m2", 4, { shard: 3, h: 0 }), limit: 5 }));
  assert.ok(m.page({ cursor: encodeCursor("m2", 4, { shard: 1, h: 7, tie: "sk1" }), limit: 5 }));
  assert.ok(m.page({ cursor: encodeCursor("m2", 4, { shard: 1, h: 7, tie: "n1.5" }), limit: 5 }));
  assert.deepEqual(m.page({ cursor: encodeCursor("m2", 4, { shard: 3, h: 2 ** 32 }), limit: 5 }), {
    items: [],
    cursor: null,
  });
});

Deno.test("ShardMap: update sees the current value", () => {
  const m = new ShardMap<{ n: number }>(8);
  for (let i = 0; i < 100; i++) m.update("c", (old) => ({ n: (old?.n ?? 0) + 1 }));
  assert.equal(m.get("c")!.n, 100);
});
