/**
 * Tests of the bytewise-ordered skiplist against a sorted-array model, with seeded random
 * operations (replayable from the seed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { compareBytes, OrderedBytesMap } from "./ordered_map.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

Deno.test("KV Connect ordered map compares bytewise with prefixes first", () => {
  assert.ok(compareBytes(bytes(), bytes(0)) < 0);
  assert.ok(compareBytes(bytes(1, 2), bytes(1, 2, 0)) < 0);
  assert.ok(compareBytes(bytes(1, 0xff), bytes(2)) < 0);
  assert.equal(compareBytes(bytes(5, 6), bytes(5, 6)), 0);
  assert.ok(compareBytes(bytes(0x80), bytes(0x7f, 0xff)) > 0);
});

Deno.test("KV Connect ordered map scans ranges both ways", () => {
  const m = new OrderedBytesMap<number>();
  for (const k of [5, 1, 3, 9, 7]) m.set(bytes(k), k);
  const scan = (start: number[], end: number[], reverse: boolean, limit = Infinity) => {
    const out: number[] = [];
    m.scan(new Uint8Array(start), new Uint8Array(end), reverse, (_, v) => {
      out.push(v);
      return out.length < limit;
    });
    return out;
  };
  assert.deepEqual(scan([], [0xff], false), [1, 3, 5, 7, 9]);
  assert.deepEqual(scan([3], [9], false), [3, 5, 7]);
  assert.deepEqual(scan([3], [9], true), [7, 5, 3]);
  assert.deepEqual(scan([2], [8], true, 2), [7, 5]);
  assert.deepEqual(scan([9], [3], false), []);
  assert.deepEqual(scan([4], [4], true), []);
  assert.equal(m.delete(bytes(5)), true);
  assert.equal(m.delete(bytes(5)), false);
  assert.deepEqual(scan([], [0xff], true), [9, 7, 3, 1]);
  assert.equal(m.size, 4);
});

Deno.test("KV Connect ordered map matches a sorted-array model under random operations", () => {
  const rng = new Prng(20240611);
  const m = new OrderedBytesMap<number>(() => rng.next());
  let model: [Uint8Array, number][] = [];
  const key = () => {
    const k = new Uint8Array(rng.nextInt(4));
    for (let i = 0; i < k.length; i++) k[i] = rng.nextInt(6);
    return k;
  };
  const find = (k: Uint8Array) => model.findIndex(([mk]) => compareBytes(mk, k) === 0);
  for (let step = 0; step < 4000; step++) {
    const op = rng.nextInt(10);
    const k = key();
    if (op < 5) {
      m.set(k, step);
      const i = find(k);
      if (i >= 0) model[i][1] = step;
      else {model = [...model, [k, step] as [Uint8Array, number]].sort((a, b) =>
          compareBytes(a[0], b[0])
        );}
    } else if (op < 7) {
      const i = find(k);
      assert.equal(m.delete(k), i >= 0, `delete at step ${step}`);
      if (i >= 0) model.splice(i, 1);
    } else if (op < 8) {
      const i = find(k);
      assert.equal(m.get(k), i >= 0 ? model[i][1] : undefined, `get at step ${step}`);
    } else {
      const a = key();
      const b = key();
      const reverse = rng.nextInt(2) === 1;
      const limit = 1 + rng.nextInt(5);
      const got: number[] = [];
      m.scan(a, b, reverse, (_, v) => {
        got.push(v);
        return got.length < limit;
      });
      let want = model.filter(([mk]) => compareBytes(mk, a) >= 0 && compareBytes(mk, b) < 0)
        .map(([, v]) => v);
      if (reverse) want = want.reverse();
      assert.deepEqual(got, want.slice(0, limit), `scan at step ${step}`);
    }
    assert.equal(m.size, model.length);
  }
});
