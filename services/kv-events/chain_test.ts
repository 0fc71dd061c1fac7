import assert from "node:assert/strict";
import { ChainTable } from "./chain.ts";

Deno.test("chain table: learn, follow, ambiguity, bad tokens", () => {
  const t = new ChainTable(64, Uint32Array.of(1, 2));
  assert.equal(t.capacity, 64);
  const tokens = [1, 2, 3, 4, 5, 6, 7, 8];
  assert.ok(t.key(1, 10, 20, tokens, 0, 4));
  const [kh, kl] = [t.keyHi, t.keyLo];
  assert.ok(!t.lookup(kh, kl));
  t.learn(kh, kl, 111, 222);
  assert.ok(t.lookup(kh, kl));
  assert.deepEqual([t.hi, t.lo], [111, 222]);
  // Other parent, other tokens, other model: other keys.
  for (const [m, ph, pl, from] of [[1, 10, 21, 0], [1, 10, 20, 4], [2, 10, 20, 0]]) {
    assert.ok(t.key(m, ph, pl, tokens, from, 4));
    assert.notDeepEqual([t.keyHi, t.keyLo], [kh, kl]);
  }
  // The same link again is fine; a different block for it makes it ambiguous for good.
  t.learn(kh, kl, 111, 222);
  assert.equal(t.ambiguous, 0);
  t.learn(kh, kl, 111, 223);
  assert.equal(t.ambiguous, 1);
  assert.ok(!t.lookup(kh, kl));
  t.learn(kh, kl, 111, 222);
  assert.ok(!t.lookup(kh, kl));
  assert.equal(t.ambiguous, 1);
  // Token ids beyond u32 make no key; a (0, 0) block is not learned.
  assert.ok(!t.key(1, 0, 0, [1, 2 ** 32, 3, 4], 0, 4));
  assert.ok(!t.key(1, 0, 0, [1, -1, 3, 4], 0, 4));
  t.key(1, 5, 5, tokens, 0, 4);
  t.learn(t.keyHi, t.keyLo, 0, 0);
  assert.ok(!t.lookup(t.keyHi, t.keyLo));
});

Deno.test("chain table: a full set replaces the link reported or followed least recently", () => {
  const t = new ChainTable(4, Uint32Array.of(0, 0)); // one set of 4 ways
  for (let i = 1; i <= 4; i++) t.learn(i, i, 100 + i, 1);
  assert.ok(t.lookup(1, 1)); // 1 followed: now the most recent
  t.learn(5, 5, 105, 1); // evicts 2, the oldest
  assert.ok(!t.lookup(2, 2));
  for (const k of [1, 3, 4, 5]) assert.ok(t.lookup(k, k), `key ${k}`);
  t.learn(3, 3, 103, 1); // reported again: recent
  t.learn(6, 6, 106, 1); // evicts 1 (followed before 3, 4, 5)
  assert.ok(!t.lookup(1, 1));
  assert.deepEqual(t.stats().learned, 6);
});
