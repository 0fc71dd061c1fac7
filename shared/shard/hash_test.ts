import assert from "node:assert/strict";
import { fmix32, hashByteRange, hashBytes, hashNumber, hashString } from "./hash.ts";

/** Counts of `keys` hashed onto `buckets` (a power of two) by the low bits. */
function spread(keys: Iterable<number>, buckets: number): number[] {
  const counts = new Array<number>(buckets).fill(0);
  for (const h of keys) counts[h & (buckets - 1)]!++;
  return counts;
}

/** Pearson chi-square statistic against a uniform spread. */
function chiSquare(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
}

function* keyFamily(name: string, n: number): Generator<string> {
  for (let i = 0; i < n; i++) {
    switch (name) {
      case "sequential":
        yield String(i);
        break;
      case "prefixed":
        yield `task:${i}`;
        break;
      case "uuid-like":
        yield `${(i * 2654435761 >>> 0).toString(16).padStart(8, "0")}-4abc-8def-${i}`;
        break;
      case "long-common-prefix":
        yield `${"tenant-0001/projects/alpha/tasks/".repeat(2)}${i}`;
        break;
      case "unicode":
        yield `ключ-${i}-🔑`;
        break;
    }
  }
}

Deno.test("hash values are stable across runs and versions (golden values)", () => {
  assert.equal(hashString(""), 2872998923);
  assert.equal(hashString("a"), 711464985);
  assert.equal(hashString("task:42"), 2253984153);
  assert.equal(hashBytes(new Uint8Array([0xff, 0, 1])), 1968982795);
});

Deno.test("hashes are unsigned 32-bit integers", () => {
  for (const s of ["", "a", "zzzzzzzz", "🔑", "\u0000"]) {
    const h = hashString(s);
    assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, s);
  }
  for (const n of [0, 1, -1, 2 ** 31, 2 ** 32 - 1, 1.5, 2 ** 40, NaN]) {
    const h = hashNumber(n);
    assert.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, String(n));
  }
});

Deno.test("hashString equals hashBytes for ASCII and hashByteRange slices", () => {
  const enc = new TextEncoder();
  for (const s of ["", "abc", "task:123456", "x".repeat(300)]) {
    assert.equal(hashString(s), hashBytes(enc.encode(s)));
  }
  const buf = enc.encode("__hello__");
  assert.equal(hashByteRange(buf, 2, 7), hashBytes(enc.encode("hello")));
  const shared = new Uint8Array(new SharedArrayBuffer(16));
  shared.set(enc.encode("hello"), 3);
  assert.equal(hashByteRange(shared, 3, 8), hashBytes(enc.encode("hello")));
  // Seeds change the hash.
  assert.notEqual(hashString("abc", 1), hashString("abc"));
});

for (const family of ["sequential", "prefixed", "uuid-like", "long-common-prefix", "unicode"]) {
  Deno.test(`hashString spreads ${family} keys evenly over 32 and 1024 shards`, () => {
    const n = 64_000;
    const hashes = [...keyFamily(family, n)].map((k) => hashString(k));
    const counts = spread(hashes, 32);
    const expected = n / 32;
    for (const c of counts) {
      assert.ok(
        Math.abs(c - expected) < expected * 0.08,
        `shard count ${c}, expected ~${expected}`,
      );
    }
    // Chi-square, 31 degrees of freedom: p = 0.0001 is at ~ 67.
    assert.ok(chiSquare(counts) < 67, `chi2 ${chiSquare(counts)}`);
    // High bits too (SharedShardTable places slots by them).
    const high = spread(hashes.map((h) => h >>> 22), 1024);
    assert.ok(chiSquare(high) < 1023 + 6 * Math.sqrt(2 * 1023), `chi2 ${chiSquare(high)}`);
    // No collisions to speak of among 64k keys (birthday bound ~ 0.5 expected).
    assert.ok(new Set(hashes).size >= n - 5);
  });
}

Deno.test("hashBytes spreads random-ish byte strings evenly", () => {
  const n = 32_000;
  const counts = new Array<number>(32).fill(0);
  const buf = new Uint8Array(12);
  let x = 1;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < buf.length; j++) {
      x = Math.imul(x, 1103515245) + 12345 | 0;
      buf[j] = x >>> 24;
    }
    counts[hashBytes(buf) & 31]!++;
  }
  assert.ok(chiSquare(counts) < 67, `chi2 ${chiSquare(counts)}`);
});

Deno.test("hashNumber spreads integer keys", () => {
  const counts = spread(Array.from({ length: 64_000 }, (_, i) => hashNumber(i)), 32);
  assert.ok(chiSquare(counts) < 67, `chi2 ${chiSquare(counts)}`);
  assert.equal(hashNumber(-0), hashNumber(0));
  assert.equal(hashNumber(1.5), hashString("1.5"));
});

Deno.test("fmix32 avalanches: one flipped input bit flips about half the output bits", () => {
  let flips = 0;
  let trials = 0;
  for (let i = 0; i < 2000; i++) {
    const x = Math.imul(i, 2654435761) >>> 0;
    for (let b = 0; b < 32; b++) {
      const d = fmix32(x) ^ fmix32((x ^ (1 << b)) >>> 0);
      let pop = 0;
      for (let v = d >>> 0; v !== 0; v &= v - 1) pop++;
      flips += pop;
      trials++;
    }
  }
  const mean = flips / trials;
  assert.ok(mean > 15.5 && mean < 16.5, `mean flipped bits ${mean}`);
  // Keys differing in the last character land on different shards.
  const shards = new Set(
    Array.from({ length: 26 }, (_, i) => hashString(`k${String.fromCharCode(97 + i)}`) & 31),
  );
  assert.ok(shards.size > 10);
});
