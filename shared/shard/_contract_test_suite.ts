/**
 * The contract both {@link ShardMap} (with `Uint8Array` values) and
 * {@link SharedShardTable} keep. `contract_test.ts` runs it once per container.
 *
 * @module
 */
import assert from "node:assert/strict";
import { InvalidCursorError, type PageOptions, type PageResult } from "./cursor.ts";

/** The common surface of the two containers, as the suite sees it. */
export interface ShardContainer {
  readonly shardCount: number;
  readonly size: number;
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Uint8Array): unknown;
  has(key: string): boolean;
  delete(key: string): boolean;
  clear(): void;
  update(key: string, fn: (old: Uint8Array | undefined) => Uint8Array | undefined): unknown;
  shardOf(key: string): number;
  shardSizes(): number[];
  page(options: PageOptions<string, Uint8Array>): PageResult<[string, Uint8Array]>;
}

/** Makes a fresh, empty container with `shardCount` shards (default when absent). */
export type ContainerFactory = (shardCount?: number) => ShardContainer;

/** A tiny seeded PRNG (mulberry32): returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = new TextEncoder();
const bytes = (s: string) => enc.encode(s);

/** Pages through everything; `between` runs after each non-final page. */
export function pageAll(
  c: ShardContainer,
  options: Omit<PageOptions<string, Uint8Array>, "cursor">,
  between?: (pageNo: number) => void,
): { keys: string[]; pages: number } {
  const keys: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: PageResult<[string, Uint8Array]> = c.page({ ...options, cursor });
    assert.ok(page.items.length <= options.limit, "page over limit");
    for (const [k] of page.items) keys.push(k);
    cursor = page.cursor;
    pages++;
    assert.ok(pages < 1_000_000, "iteration does not terminate");
    if (cursor !== null && between !== undefined) between(pages);
  } while (cursor !== null);
  return { keys, pages };
}

function assertExactlyOnce(returned: string[], expected: Iterable<string>): void {
  const seen = new Set<string>();
  for (const k of returned) {
    assert.ok(!seen.has(k), `key ${k} returned twice`);
    seen.add(k);
  }
  for (const k of expected) assert.ok(seen.has(k), `key ${k} never returned`);
}

/** Registers the contract tests for one container kind. */
export function shardContainerContract(name: string, factory: ContainerFactory): void {
  const test = (title: string, fn: () => void) => Deno.test(`${name}: ${title}`, fn);

  test("rejects shard counts that are not a power of two in [1, 65536]", () => {
    for (const bad of [0, 3, 6, 100, 65536 * 2, -4, 1.5, NaN]) {
      assert.throws(() => factory(bad), RangeError, `shardCount ${bad}`);
    }
    for (const good of [1, 2, 64]) assert.equal(factory(good).shardCount, good);
  });

  test("an empty container has nothing", () => {
    const c = factory(8);
    assert.equal(c.size, 0);
    assert.deepEqual(c.shardSizes(), new Array(8).fill(0));
    assert.equal(c.get("x"), undefined);
    assert.equal(c.has("x"), false);
    assert.equal(c.delete("x"), false);
    assert.deepEqual(c.page({ limit: 10 }), { items: [], cursor: null });
    assert.deepEqual(c.page({ limit: 1, filter: () => true, maxScan: 1 }), {
      items: [],
      cursor: null,
    });
  });

  test("get, set, overwrite, has, delete", () => {
    const c = factory(4);
    c.set("a", bytes("one"));
    c.set("b", bytes(""));
    c.set("", bytes("empty key"));
    c.set("ünï©ødé 🔑", bytes("utf8"));
    assert.equal(c.size, 4);
    assert.deepEqual(c.get("a"), bytes("one"));
    assert.deepEqual(c.get("b"), bytes(""));
    assert.deepEqual(c.get(""), bytes("empty key"));
    assert.deepEqual(c.get("ünï©ødé 🔑"), bytes("utf8"));
    c.set("a", bytes("a much longer value than before ".repeat(20)));
    assert.deepEqual(c.get("a"), bytes("a much longer value than before ".repeat(20)));
    c.set("a", bytes("short"));
    assert.deepEqual(c.get("a"), bytes("short"));
    assert.equal(c.size, 4);
    assert.equal(c.has("a"), true);
    assert.equal(c.delete("a"), true);
    assert.equal(c.delete("a"), false);
    assert.equal(c.has("a"), false);
    assert.equal(c.get("a"), undefined);
    assert.equal(c.size, 3);
    c.set("a", bytes("back"));
    assert.deepEqual(c.get("a"), bytes("back"));
    assert.equal(c.size, 4);
    c.clear();
    assert.equal(c.size, 0);
    assert.equal(c.get("b"), undefined);
    assert.deepEqual(c.page({ limit: 5 }), { items: [], cursor: null });
  });

  test("values round-trip byte for byte, including every byte value", () => {
    const c = factory(2);
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    c.set("all", all);
    assert.deepEqual(c.get("all"), all);
    const { items } = c.page({ limit: 10 });
    assert.deepEqual(items, [["all", all]]);
  });

  test("update reads, writes and deletes atomically", () => {
    const c = factory(4);
    const inc = (old: Uint8Array | undefined) => Uint8Array.of((old?.[0] ?? 0) + 1);
    for (let i = 0; i < 5; i++) c.update("n", inc);
    assert.deepEqual(c.get("n"), Uint8Array.of(5));
    let seen: Uint8Array | undefined = Uint8Array.of(99);
    assert.equal(
      c.update("missing", (old) => {
        seen = old;
        return undefined;
      }),
      undefined,
    );
    assert.equal(seen, undefined);
    assert.equal(c.has("missing"), false);
    assert.deepEqual(c.update("n", () => bytes("replaced")), bytes("replaced"));
    assert.equal(c.update("n", () => undefined), undefined);
    assert.equal(c.has("n"), false);
    assert.equal(c.size, 0);
    assert.throws(() =>
      c.update("x", () => {
        throw new Error("boom");
      }), /boom/);
    assert.equal(c.has("x"), false);
  });

  test("per-shard counts sum to size and follow shardOf", () => {
    const c = factory(16);
    const expected = new Array(16).fill(0);
    for (let i = 0; i < 2000; i++) {
      const k = `key-${i}`;
      c.set(k, bytes(k));
      const s = c.shardOf(k);
      assert.ok(s >= 0 && s < 16 && Number.isInteger(s));
      expected[s]++;
    }
    for (let i = 0; i < 2000; i += 3) {
      const k = `key-${i}`;
      c.delete(k);
      expected[c.shardOf(k)]--;
    }
    const sizes = c.shardSizes();
    assert.deepEqual(sizes, expected);
    assert.equal(sizes.reduce((a, b) => a + b, 0), c.size);
    // Every shard used: the hash spreads keys.
    for (const n of sizes) assert.ok(n > 50, `shard has only ${n} keys`);
  });

  test("pagination returns every key exactly once for any limit", () => {
    const c = factory(8);
    const keys = Array.from({ length: 700 }, (_, i) => `k${i}`);
    for (const k of keys) c.set(k, bytes(k));
    for (const limit of [1, 2, 7, 64, 699, 700, 701, 100_000]) {
      const { keys: got, pages } = pageAll(c, { limit });
      assert.equal(got.length, keys.length, `limit ${limit}`);
      assertExactlyOnce(got, keys);
      assert.ok(pages <= Math.ceil(700 / limit) + 1, `limit ${limit}: ${pages} pages`);
    }
    // Items carry the right values.
    const { items } = c.page({ limit: 50 });
    for (const [k, v] of items) assert.deepEqual(v, bytes(k));
  });

  test("a full last page ends the iteration (cursor null)", () => {
    const c = factory(4);
    for (let i = 0; i < 10; i++) c.set(`k${i}`, bytes("v"));
    const page = c.page({ limit: 10 });
    assert.equal(page.items.length, 10);
    assert.equal(page.cursor, null);
  });

  for (const seed of [1, 2, 3, 42, 1234]) {
    test(`pagination is exactly-once under random churn (seed ${seed})`, () => {
      const rnd = mulberry32(seed);
      const c = factory(4);
      const live = new Set<string>();
      const everPresent = new Set<string>();
      let next = 0;
      const add = () => {
        const k = `key:${next++}:${Math.floor(rnd() * 1e6)}`;
        c.set(k, bytes(k.repeat(1 + Math.floor(rnd() * 4))));
        live.add(k);
        everPresent.add(k);
      };
      for (let i = 0; i < 800; i++) add();
      const stable = new Set(live);
      const liveList = () => [...live];
      const result = pageAll(c, { limit: 1 + Math.floor(rnd() * 25) }, () => {
        const ops = Math.floor(rnd() * 50);
        for (let i = 0; i < ops; i++) {
          const r = rnd();
          if (r < 0.4) add();
          else if (r < 0.8 && live.size > 0) {
            const all = liveList();
            const k = all[Math.floor(rnd() * all.length)]!;
            assert.equal(c.delete(k), true);
            live.delete(k);
            stable.delete(k);
          } else if (live.size > 0) {
            // Overwrite (grow or shrink) a present key: it keeps its place.
            const all = liveList();
            const k = all[Math.floor(rnd() * all.length)]!;
            c.set(k, new Uint8Array(Math.floor(rnd() * 300)).fill(7));
          }
        }
      });
      assertExactlyOnce(result.keys, stable);
      for (const k of result.keys) assert.ok(everPresent.has(k), `phantom key ${k}`);
      assert.equal(c.size, live.size);
      assert.equal(c.shardSizes().reduce((a, b) => a + b, 0), live.size);
    });
  }

  for (const seed of [7, 8, 9]) {
    test(`keys deleted and re-added during iteration are never returned twice (seed ${seed})`, () => {
      const rnd = mulberry32(seed);
      const c = factory(4);
      const pool = Array.from({ length: 300 }, (_, i) => `p${i}`);
      const live = new Set<string>();
      for (const k of pool) {
        if (rnd() < 0.7) {
          c.set(k, bytes(k));
          live.add(k);
        }
      }
      const stable = new Set(live);
      const everPresent = new Set(live);
      const result = pageAll(c, { limit: 1 + Math.floor(rnd() * 10) }, () => {
        for (let i = 0; i < 30; i++) {
          const k = pool[Math.floor(rnd() * pool.length)]!;
          if (live.has(k)) {
            c.delete(k);
            live.delete(k);
            stable.delete(k);
          } else {
            c.set(k, bytes(`${k}!`));
            live.add(k);
            everPresent.add(k);
          }
        }
      });
      assertExactlyOnce(result.keys, stable);
      for (const k of result.keys) assert.ok(everPresent.has(k), `phantom key ${k}`);
    });
  }

  test("keys with colliding hashes page exactly once through tie cursors", () => {
    // Pairs of keys with equal 32-bit hashes (found by brute force; hashString
    // and hashBytes agree on ASCII, so they collide in both containers).
    const pairs = [
      ["c32408", "c1416948"],
      ["c32848", "c1416508"],
      ["c34918", "c1418458"],
      ["c40998", "c702947"],
      ["c109465", "c1362495"],
      ["c109726", "c1362738"],
    ];
    for (const shardCount of [1, 4]) {
      const c = factory(shardCount);
      const all = pairs.flat();
      for (const [a, b] of pairs) assert.equal(c.shardOf(a!), c.shardOf(b!));
      for (const k of all) c.set(k, bytes(k));
      for (const limit of [1, 2, 3]) {
        const { keys } = pageAll(c, { limit });
        assert.equal(keys.length, all.length);
        assertExactlyOnce(keys, all);
      }
      // maxScan stops between the two keys of a pair, too.
      for (const maxScan of [1, 3]) {
        const { keys } = pageAll(c, { limit: 5, maxScan });
        assertExactlyOnce(keys, all);
      }
      // Deleting the first of a pair after the cursor passed it keeps the second.
      const first = c.page({ limit: 1 });
      const [k0] = first.items[0]!;
      const partner = pairs.find((p) => p.includes(k0))!.find((k) => k !== k0)!;
      c.delete(k0);
      const resumed: string[] = [];
      let cursor = first.cursor;
      while (cursor !== null) {
        const p = c.page({ cursor, limit: 1 });
        for (const [k] of p.items) resumed.push(k);
        cursor = p.cursor;
      }
      assert.ok(resumed.includes(partner));
      assert.ok(!resumed.includes(k0));
      assertExactlyOnce(resumed, all.filter((k) => k !== k0));
      for (const k of all) c.delete(k);
      assert.equal(c.size, 0);
    }
  });

  test("delete-everything-then-refill during iteration keeps exactly-once for untouched keys", () => {
    const c = factory(4);
    for (let i = 0; i < 200; i++) c.set(`s${i}`, bytes("x"));
    const stable = new Set<string>();
    for (let i = 0; i < 200; i += 2) stable.add(`s${i}`);
    const { keys } = pageAll(c, { limit: 9 }, (page) => {
      if (page === 1) {
        for (let i = 1; i < 200; i += 2) c.delete(`s${i}`);
        for (let i = 0; i < 300; i++) c.set(`n${i}`, bytes("y"));
      }
    });
    assertExactlyOnce(keys, stable);
  });

  test("filter and maxScan: short pages keep going and stay exactly-once", () => {
    const c = factory(8);
    for (let i = 0; i < 500; i++) c.set(`k${i}`, Uint8Array.of(i % 10));
    const even = (_k: string, v: Uint8Array) => v[0] === 0;
    const expected = Array.from({ length: 50 }, (_, i) => `k${i * 10}`);
    for (const [limit, maxScan] of [[5, 7], [1, 1], [100, 30], [1000, undefined]] as const) {
      let shortPages = 0;
      const keys: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: PageResult<[string, Uint8Array]> = c.page({
          cursor,
          limit,
          filter: even,
          maxScan,
        });
        assert.ok(page.items.length <= limit);
        if (page.items.length < limit && page.cursor !== null) shortPages++;
        for (const [k, v] of page.items) {
          assert.equal(v[0], 0);
          keys.push(k);
        }
        cursor = page.cursor;
        assert.ok(++pages < 10_000);
      } while (cursor !== null);
      assertExactlyOnce(keys, expected);
      assert.equal(keys.length, 50);
      if (maxScan !== undefined && maxScan < limit * 10) assert.ok(shortPages > 0);
    }
    // maxScan bounds the work: nothing matches, each page examines at most maxScan.
    let examined = 0;
    const page = c.page({
      limit: 10,
      maxScan: 25,
      filter: () => {
        examined++;
        return false;
      },
    });
    assert.equal(examined, 25);
    assert.deepEqual(page.items, []);
    assert.notEqual(page.cursor, null);
  });

  test("limit and maxScan bounds", () => {
    const c = factory(2);
    c.set("a", bytes("1"));
    for (const bad of [0, -1, 1.5, NaN, Infinity, "10", undefined]) {
      assert.throws(
        () => c.page({ limit: bad as unknown as number }),
        RangeError,
        `limit ${String(bad)}`,
      );
    }
    for (const bad of [0, -3, 2.5, NaN]) {
      assert.throws(() => c.page({ limit: 1, maxScan: bad }), RangeError, `maxScan ${bad}`);
    }
    assert.equal(c.page({ limit: 1 }).items.length, 1);
    assert.equal(c.page({ limit: Number.MAX_SAFE_INTEGER }).items.length, 1);
    assert.equal(c.page({ limit: 1, maxScan: Infinity }).items.length, 1);
  });

  test("invalid cursors throw InvalidCursorError", () => {
    const c = factory(8);
    for (let i = 0; i < 50; i++) c.set(`k${i}`, bytes("v"));
    const good = c.page({ limit: 3 }).cursor!;
    assert.equal(typeof good, "string");
    assert.equal(c.page({ cursor: good, limit: 3 }).items.length, 3);
    const bad: unknown[] = [
      "",
      "garbage",
      "!!!!",
      "a".repeat(500),
      good.slice(0, -1),
      good.slice(1),
      good + "A",
      good.slice(0, 4) + (good[4] === "x" ? "y" : "x") + good.slice(5),
      btoa("m1.8.0.0"),
      btoa("t1.8.0.0.0"),
      42,
      {},
    ];
    for (const cursor of bad) {
      assert.throws(
        () => c.page({ cursor: cursor as string, limit: 3 }),
        InvalidCursorError,
        `cursor ${String(cursor)}`,
      );
    }
    // A cursor from a container with another shard count is rejected too.
    const other = factory(16);
    for (let i = 0; i < 50; i++) other.set(`k${i}`, bytes("v"));
    const foreign = other.page({ limit: 3 }).cursor!;
    assert.throws(() => c.page({ cursor: foreign, limit: 3 }), InvalidCursorError);
    // The error is an Error with its own name, for HTTP mapping.
    try {
      c.page({ cursor: "garbage", limit: 1 });
      assert.fail("no throw");
    } catch (e) {
      assert.ok(e instanceof Error);
      assert.equal((e as Error).name, "InvalidCursorError");
    }
  });

  test("cursors survive clear()", () => {
    const c = factory(4);
    for (let i = 0; i < 40; i++) c.set(`k${i}`, bytes("v"));
    const cursor = c.page({ limit: 5 }).cursor!;
    c.clear();
    const after = c.page({ cursor, limit: 5 });
    assert.deepEqual(after.items, []);
    assert.equal(after.cursor, null);
  });
}
