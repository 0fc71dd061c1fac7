import assert from "node:assert/strict";
import { Prng } from "./prng.ts";

Deno.test("Prng repeats the same sequence for the same seed", () => {
  const a = new Prng(7);
  const b = new Prng(7);
  for (let i = 0; i < 100; i++) assert.equal(a.nextUint32(), b.nextUint32());
});

Deno.test("Prng gives different sequences for different seeds and forks", () => {
  const a = new Prng(7);
  const b = new Prng(8);
  const f1 = a.fork(1);
  const f2 = a.fork(2);
  let same = 0;
  for (let i = 0; i < 100; i++) {
    if (a.nextUint32() === b.nextUint32()) same++;
    if (f1.nextUint32() === f2.nextUint32()) same++;
  }
  assert.ok(same < 3, `too many equal outputs: ${same}`);
});

Deno.test("Prng.next stays in [0, 1) and is roughly uniform", () => {
  const rng = new Prng(123);
  const bins = new Array(10).fill(0);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const x = rng.next();
    assert.ok(x >= 0 && x < 1);
    bins[Math.floor(x * 10)]++;
  }
  for (const count of bins) {
    assert.ok(Math.abs(count - n / 10) < n / 100, `bin ${count}`);
  }
});
