import assert from "node:assert/strict";
import { Prng, seedFromString } from "./prng.ts";

Deno.test("prng: xoshiro128** matches the reference C code from state [1, 2, 3, 4]", () => {
  // Output of prng.di.unimi.it/xoshiro128starstar.c compiled with gcc, seeded s = {1, 2, 3, 4}.
  const p = Prng.fromState(1, 2, 3, 4);
  assert.deepEqual(
    Array.from({ length: 6 }, () => p.nextU32()),
    [11520, 0, 5927040, 70819200, 2031721883, 1637235492],
  );
  assert.deepEqual(p.state(), [1110993931, 286554632, 2431677446, 2165318166]);
});

Deno.test("prng: same seed, same stream; pinned values guard against accidental changes", () => {
  const a = new Prng(42);
  const b = new Prng(42);
  const xs = Array.from({ length: 1000 }, () => a.nextU32());
  const ys = Array.from({ length: 1000 }, () => b.nextU32());
  assert.deepEqual(xs, ys);
  const c = new Prng(43);
  assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c.nextU32()));
  // Golden: if these change, every recorded failing simulation seed changes meaning.
  const g = new Prng(1);
  assert.deepEqual(Array.from({ length: 4 }, () => g.nextU32()), GOLDEN_SEED_1);
  const z = new Prng(0); // seed 0 must work (splitmix seeding)
  assert.notEqual(z.nextU32() | z.nextU32() | z.nextU32(), 0);
});

const GOLDEN_SEED_1 = [2442144158, 3238099751, 3819917871, 2104621829];

Deno.test("prng: next() in [0, 1), nextInt bounds and uniformity", () => {
  const p = new Prng(7);
  for (let i = 0; i < 10_000; i++) {
    const x = p.next();
    assert.ok(x >= 0 && x < 1);
  }
  const buckets = new Array<number>(10).fill(0);
  const N = 100_000;
  for (let i = 0; i < N; i++) buckets[p.nextInt(10)]++;
  const expected = N / 10;
  const chi = buckets.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
  assert.ok(chi < 30, `chi-square ${chi} (9 dof; 30 is p < 0.001)`);
  assert.equal(p.nextInt(1), 0);
  for (let i = 0; i < 1000; i++) {
    const v = p.nextInt(2 ** 40);
    assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 40);
    const w = p.intBetween(-3, 3);
    assert.ok(w >= -3 && w <= 3);
  }
  assert.throws(() => p.nextInt(0), RangeError);
  assert.throws(() => p.nextInt(1.5), RangeError);
  assert.throws(() => p.nextInt(-1), RangeError);
});

Deno.test("prng: chance, pick, weighted, shuffle, bytes, fork", () => {
  const p = new Prng(99);
  assert.equal(p.chance(0), false);
  assert.equal(p.chance(1), true);
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (p.chance(0.3)) hits++;
  assert.ok(hits > 2700 && hits < 3300, `chance(0.3) hit ${hits}/10000`);
  const items = ["a", "b", "c"];
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add(p.pick(items));
  assert.deepEqual([...seen].sort(), items);
  assert.throws(() => p.pick([]), RangeError);
  let heavy = 0;
  for (let i = 0; i < 1000; i++) if (p.weighted([["x", 1], ["y", 9], ["z", 0]]) === "y") heavy++;
  assert.ok(heavy > 850, `weighted picked y ${heavy}/1000`);

  const arr = Array.from({ length: 50 }, (_, i) => i);
  const s1 = new Prng(5).shuffle([...arr]);
  const s2 = new Prng(5).shuffle([...arr]);
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1, arr);
  assert.deepEqual([...s1].sort((a, b) => a - b), arr);

  const b = new Prng(3).bytes(7);
  assert.equal(b.length, 7);
  assert.deepEqual(b, new Prng(3).bytes(7));

  const parent1 = new Prng(11);
  const parent2 = new Prng(11);
  const f1 = parent1.fork();
  const f2 = parent2.fork();
  assert.deepEqual([f1.nextU32(), f1.nextU32()], [f2.nextU32(), f2.nextU32()]);
  assert.notEqual(f1.nextU32(), parent1.nextU32());
});

Deno.test("prng: state round trip and string seeds", () => {
  const p = new Prng(123);
  p.nextU32();
  const [a, b, c, d] = p.state();
  const q = Prng.fromState(a, b, c, d);
  assert.deepEqual(
    Array.from({ length: 5 }, () => p.next()),
    Array.from({ length: 5 }, () => q.next()),
  );
  assert.equal(seedFromString("vopr-1"), seedFromString("vopr-1"));
  assert.notEqual(seedFromString("vopr-1"), seedFromString("vopr-2"));
  assert.throws(() => Prng.fromState(0, 0, 0, 0), RangeError);
});
