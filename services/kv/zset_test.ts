import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { SortedSet } from "./zset.ts";

type Entry = [string, number];

/** A seeded generator (shared/sim's), so that a failing random case can be replayed. */
function mulberry32(seed: number): () => number {
  const rng = new Prng(seed);
  return () => rng.next();
}

/** The reference: entries kept sorted by (score, member) in a plain array. */
class Model {
  entries: Entry[] = [];

  #index(member: string): number {
    return this.entries.findIndex(([m]) => m === member);
  }

  score(member: string): number | undefined {
    const i = this.#index(member);
    return i < 0 ? undefined : this.entries[i][1];
  }

  add(member: string, score: number): boolean {
    const i = this.#index(member);
    if (i >= 0) {
      // Redis keeps the stored score when the new one compares equal (0 vs -0).
      if (this.entries[i][1] === score) return false;
      this.entries.splice(i, 1);
    }
    this.entries.push([member, score]);
    this.entries.sort((a, b) =>
      a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
    );
    return i < 0;
  }

  remove(member: string): boolean {
    const i = this.#index(member);
    if (i >= 0) this.entries.splice(i, 1);
    return i >= 0;
  }

  rank(member: string, reverse: boolean): number {
    const i = this.#index(member);
    return i < 0 || !reverse ? i : this.entries.length - 1 - i;
  }

  range(start: number, stop: number, reverse: boolean): Entry[] {
    const n = this.entries.length;
    if (start < 0) start += n;
    if (stop < 0) stop += n;
    if (start < 0) start = 0;
    if (start > stop || start >= n) return [];
    if (stop >= n) stop = n - 1;
    const list = reverse ? [...this.entries].reverse() : this.entries;
    return list.slice(start, stop + 1);
  }

  inScore(min: number, minEx: boolean, max: number, maxEx: boolean): Entry[] {
    return this.entries.filter(([, s]) =>
      (minEx ? s > min : s >= min) && (maxEx ? s < max : s <= max)
    );
  }

  rangeByScore(
    min: number,
    minEx: boolean,
    max: number,
    maxEx: boolean,
    reverse: boolean,
    offset: number,
    count: number,
  ): Entry[] {
    let list = this.inScore(min, minEx, max, maxEx);
    if (reverse) list = list.reverse();
    if (offset < 0) return [];
    return list.slice(offset, count < 0 ? undefined : offset + count);
  }

  pop(count: number, max: boolean): Entry[] {
    const n = Math.min(Math.max(count, 0), this.entries.length);
    return max
      ? this.entries.splice(this.entries.length - n, n).reverse()
      : this.entries.splice(0, n);
  }
}

const SCORES = [-Infinity, Infinity, 0, -0, 1, 1.5, -2, 3, 1e300, -1e-300];
const FIXED_MEMBERS = ["", "a", "b", "ab", "a\x00", "\x00a", "\xff", "\xff\xff", "\x00", "zz"];

function randomMember(rnd: () => number): string {
  if (rnd() < 0.3) return FIXED_MEMBERS[Math.floor(rnd() * FIXED_MEMBERS.length)];
  // A tiny alphabet with the byte extremes, so members collide and share prefixes.
  const alphabet = "\x00\x01ab\x7f\x80\xfe\xff";
  let s = "";
  const len = Math.floor(rnd() * 5);
  for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
  return s;
}

function randomScore(rnd: () => number): number {
  if (rnd() < 0.5) return SCORES[Math.floor(rnd() * SCORES.length)];
  return Math.floor(rnd() * 21) - 10;
}

function randomBound(rnd: () => number): number {
  return rnd() < 0.8 ? randomScore(rnd) : Math.floor(rnd() * 21) - 10 + 0.5;
}

function randomIndex(rnd: () => number, size: number): number {
  // Negative, in range and out of range in both directions.
  return Math.floor(rnd() * (2 * size + 10)) - size - 5;
}

function assertSame(zs: SortedSet, model: Model, what: string): void {
  assert.equal(zs.size, model.entries.length, `size after ${what}`);
  assert.deepEqual([...zs.entries()], model.entries, `entries after ${what}`);
  // Full reverse walk checks the backward pointers and the tail.
  assert.deepEqual(zs.range(0, -1, true), [...model.entries].reverse(), `reverse after ${what}`);
}

function runRandom(seed: number, ops: number, levelRandom: () => number): void {
  const rnd = mulberry32(seed);
  const zs = new SortedSet(levelRandom);
  const model = new Model();
  for (let step = 0; step < ops; step++) {
    let op = Math.floor(rnd() * 12);
    // Alternate growing and shrinking phases, so the set both gets large (several levels) and
    // empties out (level shrinking, arena rebuilds).
    const growing = Math.floor(step / 600) % 2 === 0;
    if (growing && (op === 4 || op === 9 || op === 10) && rnd() < 0.9) op = 0;
    if (!growing && op <= 2 && rnd() < 0.6) op = [4, 9, 10][Math.floor(rnd() * 3)];
    const member = randomMember(rnd);
    const what = `step ${step} (seed ${seed}, op ${op})`;
    switch (op) {
      case 0:
      case 1:
      case 2: {
        const score = randomScore(rnd);
        assert.equal(zs.add(member, score), model.add(member, score), what);
        break;
      }
      case 3: {
        // Update an existing member by a small delta: exercises the in-place path.
        const existing = model.entries[Math.floor(rnd() * model.entries.length)];
        if (existing === undefined) break;
        const score = existing[1] + (rnd() < 0.5 ? -1 : 1) * Math.floor(rnd() * 3);
        if (Number.isNaN(score)) break;
        assert.equal(zs.add(existing[0], score), model.add(existing[0], score), what);
        break;
      }
      case 4:
        assert.equal(zs.remove(member), model.remove(member), what);
        break;
      case 5: {
        const reverse = rnd() < 0.5;
        assert.equal(zs.rank(member, reverse), model.rank(member, reverse), what);
        assert.equal(zs.score(member), model.score(member), what);
        break;
      }
      case 6: {
        const n = model.entries.length;
        const start = randomIndex(rnd, n);
        const stop = randomIndex(rnd, n);
        const reverse = rnd() < 0.5;
        assert.deepEqual(
          zs.range(start, stop, reverse),
          model.range(start, stop, reverse),
          `${what} range(${start}, ${stop}, ${reverse})`,
        );
        break;
      }
      case 7:
      case 8: {
        let min = randomBound(rnd);
        let max = randomBound(rnd);
        if (rnd() < 0.8 && min > max) [min, max] = [max, min];
        const minEx = rnd() < 0.3;
        const maxEx = rnd() < 0.3;
        const reverse = rnd() < 0.5;
        const offset = rnd() < 0.5 ? 0 : Math.floor(rnd() * 8) - 1;
        const count = rnd() < 0.5 ? -1 : Math.floor(rnd() * 8) - 1;
        const args = `${min}, ${minEx}, ${max}, ${maxEx}, ${reverse}, ${offset}, ${count}`;
        assert.deepEqual(
          zs.rangeByScore(min, minEx, max, maxEx, reverse, offset, count),
          model.rangeByScore(min, minEx, max, maxEx, reverse, offset, count),
          `${what} rangeByScore(${args})`,
        );
        assert.equal(
          zs.countByScore(min, minEx, max, maxEx),
          model.inScore(min, minEx, max, maxEx).length,
          `${what} countByScore(${args})`,
        );
        break;
      }
      case 9: {
        const count = Math.floor(rnd() * 4);
        assert.deepEqual(zs.popMin(count), model.pop(count, false), `${what} popMin(${count})`);
        break;
      }
      case 10: {
        const count = Math.floor(rnd() * 4);
        assert.deepEqual(zs.popMax(count), model.pop(count, true), `${what} popMax(${count})`);
        break;
      }
      case 11: {
        // Every member's rank both ways, which checks every span on the search paths.
        model.entries.forEach(([m], i) => {
          assert.equal(zs.rank(m), i, `${what} rank(${JSON.stringify(m)})`);
          assert.equal(zs.rank(m, true), model.entries.length - 1 - i, what);
        });
        break;
      }
    }
    assertSame(zs, model, what);
  }
}

Deno.test("SortedSet matches a sorted-array model over random operations", () => {
  for (const seed of [1, 2, 3, 42, 1234]) runRandom(seed, 3000, mulberry32(seed ^ 0x9e3779b9));
});

Deno.test("SortedSet stays correct when every node has the maximum level", () => {
  runRandom(7, 1000, () => 0);
});

Deno.test("SortedSet stays correct when every node has level 1", () => {
  runRandom(8, 1000, () => 0.99);
});

Deno.test("SortedSet keeps ranks and ranges right with many entries", () => {
  const rnd = mulberry32(99);
  const zs = new SortedSet(mulberry32(100));
  const model = new Model();
  for (let i = 0; i < 3000; i++) {
    const member = `m${Math.floor(rnd() * 5000)}`;
    const score = Math.floor(rnd() * 100);
    assert.equal(zs.add(member, score), model.add(member, score));
  }
  for (let i = 0; i < 500; i++) assert.equal(zs.remove(`m${i}`), model.remove(`m${i}`));
  assertSame(zs, model, "bulk");
  model.entries.forEach(([m], i) => assert.equal(zs.rank(m), i));
  for (let i = 0; i < 200; i++) {
    const start = randomIndex(rnd, model.entries.length);
    const stop = randomIndex(rnd, model.entries.length);
    assert.deepEqual(zs.range(start, stop), model.range(start, stop, false));
    assert.deepEqual(zs.range(start, stop, true), model.range(start, stop, true));
  }
  assert.deepEqual(
    zs.rangeByScore(10, false, 20, true, false, 5, 7),
    model.rangeByScore(10, false, 20, true, false, 5, 7),
  );
  assert.equal(zs.countByScore(10, true, 90, false), model.inScore(10, true, 90, false).length);
});

Deno.test("SortedSet adds, updates and removes members", () => {
  const zs = new SortedSet();
  assert.equal(zs.size, 0);
  assert.equal(zs.add("a", 1), true);
  assert.equal(zs.add("b", 2), true);
  assert.equal(zs.add("a", 3), false);
  assert.equal(zs.score("a"), 3);
  assert.equal(zs.score("missing"), undefined);
  assert.equal(zs.size, 2);
  assert.deepEqual([...zs.entries()], [["b", 2], ["a", 3]]);
  assert.equal(zs.remove("a"), true);
  assert.equal(zs.remove("a"), false);
  assert.deepEqual([...zs.entries()], [["b", 2]]);
  assert.equal(zs.rank("a"), -1);
  assert.equal(zs.rank("a", true), -1);
});

Deno.test("SortedSet orders equal scores by member bytes", () => {
  const zs = new SortedSet();
  for (const m of ["b", "\xff", "a\x00", "a", "\x00a", ""]) zs.add(m, 5);
  assert.deepEqual([...zs.entries()].map(([m]) => m), ["", "\x00a", "a", "a\x00", "b", "\xff"]);
  assert.equal(zs.rank("a"), 2);
  assert.equal(zs.rank("a", true), 3);
});

Deno.test("SortedSet updates a score in place or moves the member", () => {
  const zs = new SortedSet();
  zs.add("a", 1);
  zs.add("b", 2);
  zs.add("c", 3);
  zs.add("b", 2.5); // same position
  assert.deepEqual([...zs.entries()], [["a", 1], ["b", 2.5], ["c", 3]]);
  zs.add("b", 3); // ties with c, sorts before it by member
  assert.deepEqual([...zs.entries()], [["a", 1], ["b", 3], ["c", 3]]);
  zs.add("a", 3); // ties, a < b
  assert.deepEqual([...zs.entries()], [["a", 3], ["b", 3], ["c", 3]]);
  zs.add("c", -Infinity);
  assert.deepEqual([...zs.entries()], [["c", -Infinity], ["a", 3], ["b", 3]]);
  zs.add("c", Infinity);
  assert.deepEqual([...zs.entries()], [["a", 3], ["b", 3], ["c", Infinity]]);
  assert.equal(zs.rank("c"), 2);
});

Deno.test("SortedSet keeps the stored score when an equal one is added", () => {
  const zs = new SortedSet();
  zs.add("z", 0);
  assert.equal(zs.add("z", -0), false);
  assert.ok(Object.is(zs.score("z"), 0));
});

Deno.test("SortedSet rejects NaN scores", () => {
  const zs = new SortedSet();
  assert.throws(() => zs.add("a", NaN), RangeError);
  assert.equal(zs.size, 0);
});

Deno.test("SortedSet increments scores and refuses a NaN result", () => {
  const zs = new SortedSet();
  assert.equal(zs.incrBy("a", 2), 2);
  assert.equal(zs.incrBy("a", 1.5), 3.5);
  zs.add("b", 3);
  assert.deepEqual([...zs.entries()], [["b", 3], ["a", 3.5]]);
  zs.add("inf", Infinity);
  assert.throws(() => zs.incrBy("inf", -Infinity), RangeError);
  assert.equal(zs.score("inf"), Infinity);
});

Deno.test("SortedSet ranges by index with Redis rules", () => {
  const zs = new SortedSet();
  ["one", "two", "three"].forEach((m, i) => zs.add(m, i + 1));
  assert.deepEqual(zs.range(0, -1), [["one", 1], ["two", 2], ["three", 3]]);
  assert.deepEqual(zs.range(2, 3), [["three", 3]]);
  assert.deepEqual(zs.range(-2, -1), [["two", 2], ["three", 3]]);
  assert.deepEqual(zs.range(-100, 100), [["one", 1], ["two", 2], ["three", 3]]);
  assert.deepEqual(zs.range(3, 10), []);
  assert.deepEqual(zs.range(2, 1), []);
  assert.deepEqual(zs.range(-1, -2), []);
  assert.deepEqual(zs.range(0, 0, true), [["three", 3]]);
  assert.deepEqual(zs.range(1, -1, true), [["two", 2], ["one", 1]]);
  assert.deepEqual(new SortedSet().range(0, -1), []);
});

Deno.test("SortedSet ranges and counts by score", () => {
  const zs = new SortedSet();
  zs.add("ninf", -Infinity);
  zs.add("a", 1);
  zs.add("b", 2);
  zs.add("c", 2);
  zs.add("d", 3);
  zs.add("pinf", Infinity);
  const all = [...zs.entries()];
  assert.deepEqual(zs.rangeByScore(-Infinity, false, Infinity, false), all);
  assert.deepEqual(zs.rangeByScore(-Infinity, true, Infinity, true), all.slice(1, -1));
  assert.deepEqual(zs.rangeByScore(2, false, 2, false), [["b", 2], ["c", 2]]);
  assert.deepEqual(zs.rangeByScore(1, true, 3, false), [["b", 2], ["c", 2], ["d", 3]]);
  assert.deepEqual(zs.rangeByScore(1, false, 3, true, true), [["c", 2], ["b", 2], ["a", 1]]);
  assert.deepEqual(zs.rangeByScore(1, false, 3, false, false, 1, 2), [["b", 2], ["c", 2]]);
  assert.deepEqual(zs.rangeByScore(1, false, 3, false, true, 1, 2), [["c", 2], ["b", 2]]);
  assert.deepEqual(zs.rangeByScore(1, false, 3, false, false, 10, 2), []);
  assert.deepEqual(zs.rangeByScore(1, false, 3, false, false, -1, 2), []);
  assert.deepEqual(zs.rangeByScore(1, false, 3, false, false, 0, 0), []);
  assert.deepEqual(zs.rangeByScore(3, false, 1, false), []);
  assert.deepEqual(zs.rangeByScore(2, true, 2, false), []);
  assert.equal(zs.countByScore(-Infinity, false, Infinity, false), 6);
  assert.equal(zs.countByScore(2, false, 2, false), 2);
  assert.equal(zs.countByScore(2, true, 3, false), 1);
  assert.equal(zs.countByScore(3, false, 1, false), 0);
  assert.equal(zs.countByScore(Infinity, false, Infinity, false), 1);
});

Deno.test("SortedSet pops from both ends", () => {
  const zs = new SortedSet();
  ["a", "b", "c", "d", "e"].forEach((m, i) => zs.add(m, i));
  assert.deepEqual(zs.popMin(0), []);
  assert.deepEqual(zs.popMin(2), [["a", 0], ["b", 1]]);
  assert.deepEqual(zs.popMax(2), [["e", 4], ["d", 3]]);
  assert.deepEqual(zs.popMax(5), [["c", 2]]);
  assert.deepEqual(zs.popMin(1), []);
  assert.equal(zs.size, 0);
  assert.equal(zs.bytes, new SortedSet().bytes);
  // Still usable once emptied.
  zs.add("x", 1);
  assert.deepEqual(zs.range(0, -1), [["x", 1]]);
  assert.equal(zs.rank("x", true), 0);
});

Deno.test("SortedSet estimates its memory from members and entries", () => {
  const zs = new SortedSet();
  zs.add("abc", 1);
  zs.add("de", 2);
  const two = zs.bytes;
  assert.ok(two >= 5);
  zs.add("abc", 7); // an update adds no bytes
  assert.equal(zs.bytes, two);
  zs.remove("de");
  assert.ok(zs.bytes < two && zs.bytes > 0);
  zs.popMin(1);
  assert.equal(zs.bytes, new SortedSet().bytes);
});

Deno.test("SortedSet gives memory back when it shrinks", () => {
  const rnd = mulberry32(5);
  const zs = new SortedSet(mulberry32(6));
  const empty = zs.bytes;
  const n = 20000;
  for (let i = 0; i < n; i++) zs.add(`member:${i}`, Math.floor(rnd() * 1000));
  const full = zs.bytes;
  assert.ok(full > n * 40);
  const sorted = [...zs.entries()];
  // Remove every other member, then pop from both ends: several rebuilds on the way down.
  for (let i = 0; i < n; i += 2) assert.equal(zs.remove(`member:${i}`), true);
  const left = sorted.filter(([m]) => Number(m.slice(7)) % 2 === 1);
  assert.deepEqual(zs.popMin(4000), left.slice(0, 4000));
  assert.deepEqual(zs.popMax(4000), left.slice(-4000).reverse());
  const kept = left.slice(4000, -4000);
  assert.deepEqual([...zs.entries()], kept);
  assert.deepEqual(zs.range(0, -1, true), [...kept].reverse());
  kept.forEach(([m, score], i) => {
    assert.equal(zs.rank(m), i);
    assert.equal(zs.score(m), score);
  });
  assert.ok(zs.bytes < full / 4, `${zs.bytes} of ${full}`);
  zs.popMin(Infinity);
  assert.ok(zs.bytes <= 2 * empty, `${zs.bytes} empty, ${empty} new`);
  // Still usable after the rebuilds.
  zs.add("a", 1);
  zs.add("b", 0);
  assert.deepEqual(zs.range(0, -1), [["b", 0], ["a", 1]]);
});

Deno.test("SortedSet uses the injected random source for levels", () => {
  let calls = 0;
  const zs = new SortedSet(() => {
    calls++;
    return 0.99;
  });
  zs.add("a", 1);
  zs.add("b", 2);
  assert.equal(calls, 2); // level 1 each: one draw per insert
  zs.add("a", 1.5); // in place: no new node, no draw
  assert.equal(calls, 2);
});
