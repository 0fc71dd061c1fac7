import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { ChainTable, ROOT_HI, ROOT_LO } from "./chain.ts";

/** Learns `blocks` (one hash per block of 4 tokens) after `parent` the way the cache map does. */
function learn(
  t: ChainTable,
  model: number,
  parent: [number, number] | null,
  tokens: number[],
  blocks: number[],
): boolean {
  if (!t.resume(model, parent?.[0] ?? ROOT_HI, parent?.[1] ?? ROOT_LO)) return false;
  const u = Uint32Array.from(tokens);
  blocks.forEach((h, i) => {
    t.advance(u, i * 4, 4);
    t.learn(model, t.keyHi, t.keyLo, t.stateHi, t.stateLo, h, h + 1);
  });
  return true;
}

/** Follows a prompt from its start: the blocks found, up to the first unknown. */
function follow(t: ChainTable, model: number, tokens: number[]): number[] {
  t.begin(model);
  const out: number[] = [];
  const u = Uint32Array.from(tokens);
  for (let i = 0; i + 4 <= tokens.length; i += 4) {
    t.advance(u, i, 4);
    if (!t.lookup(t.keyHi, t.keyLo)) break;
    assert.equal(t.lo, t.hi + 1);
    out.push(t.hi);
  }
  return out;
}

Deno.test("chain table: learn from a root, extend after a parent, follow by prefix", () => {
  const t = new ChainTable(64, Uint32Array.of(1, 2));
  assert.equal(t.capacity, 64);
  const tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  assert.deepEqual(follow(t, 1, tokens), []);
  // One event stores blocks 0 and 1; a later one block 2 after parent 1.
  assert.ok(learn(t, 1, null, tokens, [100, 101]));
  assert.deepEqual(follow(t, 1, tokens), [100, 101]);
  assert.ok(learn(t, 1, [101, 102], tokens.slice(8), [102]));
  assert.deepEqual(follow(t, 1, tokens), [100, 101, 102]);
  // Another model, or the same blocks' tokens at another position, have other keys.
  assert.deepEqual(follow(t, 2, tokens), []);
  assert.deepEqual(follow(t, 1, tokens.slice(4)), []);
  // A prompt that diverges after block 0 follows block 0 only.
  assert.deepEqual(follow(t, 1, [1, 2, 3, 4, 5, 6, 7, 0]), [100]);
  // A parent whose prefix is unknown teaches nothing.
  assert.ok(!learn(t, 1, [555, 556], tokens, [103]));
  const s = t.stats();
  assert.equal(s.learned, 3);
  assert.ok(s.hits > 0 && s.misses > 0);
});

Deno.test("chain table: engines that disagree make a prefix ambiguous for good", () => {
  const t = new ChainTable(64, Uint32Array.of(1, 2));
  const tokens = [1, 2, 3, 4, 5, 6, 7, 8];
  learn(t, 1, null, tokens, [100, 101]);
  learn(t, 1, null, tokens, [100, 101]); // the same again is fine
  assert.equal(t.stats().ambiguous, 0);
  learn(t, 1, null, tokens, [200, 201]); // another seed: other hashes for the same tokens
  assert.equal(t.stats().ambiguous, 2);
  assert.deepEqual(follow(t, 1, tokens), []);
  learn(t, 1, null, tokens, [100, 101]);
  assert.deepEqual(follow(t, 1, tokens), []);
  assert.equal(t.stats().ambiguous, 2);
});

Deno.test("chain table: a (0, 0) block is not learned", () => {
  const t = new ChainTable(64, Uint32Array.of(1, 2));
  t.begin(1);
  t.advance(Uint32Array.of(1, 2, 3, 4), 0, 4);
  t.learn(1, t.keyHi, t.keyLo, t.stateHi, t.stateLo, 0, 0);
  assert.ok(!t.lookup(t.keyHi, t.keyLo));
  assert.equal(t.stats().learned, 0);
});

Deno.test("chain table: a full table replaces the link reported or followed least recently", () => {
  const t = new ChainTable(4, Uint32Array.of(0, 0)); // one set of 4 ways
  const prompt = (i: number) => [i, i, i, i];
  for (let i = 1; i <= 4; i++) learn(t, 1, null, prompt(i), [100 + 2 * i]);
  assert.deepEqual(follow(t, 1, prompt(1)), [102]); // 1 followed: now the most recent
  learn(t, 1, null, prompt(5), [110]); // replaces 2, the oldest
  assert.deepEqual(follow(t, 1, prompt(2)), []);
  for (const i of [1, 3, 4, 5]) assert.deepEqual(follow(t, 1, prompt(i)), [100 + 2 * i], `${i}`);
  learn(t, 1, null, prompt(3), [106]); // reported again: recent
  learn(t, 1, null, prompt(6), [112]); // replaces 1 (followed before 3, 4, 5)
  assert.deepEqual(follow(t, 1, prompt(1)), []);
  const s = t.stats();
  assert.equal(s.learned, 6);
  assert.equal(s.replaced, 2);
});

Deno.test("chain table: many links in a table twice their number are all kept", () => {
  const t = new ChainTable(2048, Uint32Array.of(9, 9));
  for (let i = 0; i < 1024; i++) learn(t, 1, null, [i, 7, 7, 7], [1000 + 2 * i]);
  for (let i = 0; i < 1024; i++) assert.deepEqual(follow(t, 1, [i, 7, 7, 7]), [1000 + 2 * i]);
  assert.equal(t.stats().replaced, 0);
});

Deno.test("chain table: a prompt's blocks are stored one after another; prompts that part after a shared prefix all stay followable", () => {
  const t = new ChainTable(4096, Uint32Array.of(3, 4));
  const long = Array.from({ length: 4 * 200 }, (_, i) => i + 1);
  assert.ok(learn(t, 1, null, long, Array.from({ length: 200 }, (_, i) => 10 + 2 * i)));
  assert.equal(t.stats().inOrder, 200);
  assert.equal(follow(t, 1, long).length, 200);
  // 300 prompts share the long one's first 8 blocks, then go their own way for 4 blocks.
  const prefix = long.slice(0, 32);
  const hashes = (p: number) => [0, 1, 2, 3].map((b) => 100_000 + 16 * p + 2 * b);
  for (let p = 0; p < 300; p++) {
    const tail = Array.from({ length: 16 }, (_, i) => 1_000_000 + 16 * p + i);
    assert.ok(learn(t, 1, [24, 25], tail, hashes(p))); // parent: the prefix's last block (24)
  }
  for (let p = 0; p < 300; p++) {
    const tail = Array.from({ length: 16 }, (_, i) => 1_000_000 + 16 * p + i);
    const got = follow(t, 1, [...prefix, ...tail]);
    assert.deepEqual(got, [...long.slice(0, 8).map((_, i) => 10 + 2 * i), ...hashes(p)], `${p}`);
  }
  const s = t.stats();
  assert.equal(s.replaced, 0);
  // The sets right after the fork fill up: blocks that find them full go elsewhere, and their
  // children after them.
  assert.ok(s.inOrder > s.learned * 0.75, `${s.inOrder} of ${s.learned}`);
});

Deno.test("chain table: in a full table, prompts that part after a shared prefix do not push each other out", () => {
  const t = new ChainTable(4096, Uint32Array.of(3, 4));
  // Steady state: every set full of unrelated one-block prompts.
  for (let i = 0; i < 20_000; i++) {
    learn(t, 1, null, [9_000_000 + i, 1, 2, 3], [2_000_000 + 2 * i]);
  }
  assert.ok(t.stats().replaced > 10_000);
  // A shared 8-block prefix, then 300 prompts of 4 more blocks each after it. A replacement takes
  // the least recently used of a link's candidate sets, not always the set after the parent
  // (which would make the 300 children of one parent push one another out).
  const prefix = Array.from({ length: 32 }, (_, i) => i + 1);
  assert.ok(learn(t, 1, null, prefix, Array.from({ length: 8 }, (_, i) => 10 + 2 * i)));
  const tail = (p: number) => Array.from({ length: 16 }, (_, i) => 1_000_000 + 16 * p + i);
  const hashes = (p: number) => [0, 1, 2, 3].map((b) => 100_000 + 16 * p + 2 * b);
  for (let p = 0; p < 300; p++) assert.ok(learn(t, 1, [24, 25], tail(p), hashes(p)));
  let whole = 0;
  for (let p = 0; p < 300; p++) {
    if (follow(t, 1, [...prefix, ...tail(p)]).length === 12) whole++;
  }
  assert.equal(whole, 300);
});

Deno.test("chain table: under pressure, links are lost but a followed link is never wrong (seeded)", () => {
  const rnd = new Prng(2024);
  const t = new ChainTable(512, Uint32Array.of(7, 8));
  // Prompts of 4-token blocks over a small alphabet, many sharing prefixes. A block's hash is a
  // function of its whole prefix, as an engine's is.
  const hashOf = new Map<string, number>();
  const hash = (prefix: number[]) => {
    const k = prefix.join(",");
    let h = hashOf.get(k);
    if (h === undefined) hashOf.set(k, h = 2 * (hashOf.size + 1));
    return h;
  };
  const prompts: number[][] = [];
  for (let i = 0; i < 400; i++) {
    const base = prompts.length > 0 && rnd.chance(0.6) ? prompts[rnd.nextInt(prompts.length)] : [];
    const keep = 4 * rnd.nextInt(base.length / 4 + 1);
    const extra = Array.from({ length: 4 * (1 + rnd.nextInt(12)) }, () => rnd.nextInt(6));
    prompts.push([...base.slice(0, keep), ...extra]);
  }
  for (const p of prompts) {
    // Stored as events of 1-4 blocks each, after their parent, as engines report them.
    for (let b = 0; b < p.length / 4;) {
      const n = Math.min(p.length / 4 - b, 1 + rnd.nextInt(4));
      const parent = b === 0 ? null : hash(p.slice(0, 4 * b));
      learn(
        t,
        1,
        parent === null ? null : [parent, parent + 1],
        p.slice(4 * b, 4 * (b + n)),
        Array.from({ length: n }, (_, k) => hash(p.slice(0, 4 * (b + k + 1)))),
      );
      b += n;
    }
  }
  let followed = 0;
  for (const p of prompts) {
    const got = follow(t, 1, p);
    got.forEach((h, i) => assert.equal(h, hash(p.slice(0, 4 * (i + 1))), `block ${i}`));
    followed += got.length;
  }
  const s = t.stats();
  assert.ok(s.replaced > 0, "the table was under pressure");
  assert.ok(followed > 0);
});

Deno.test("chain: the LoRA name and the cache salt seed apart chains; empty is none", () => {
  const t = new ChainTable(64, Uint32Array.of(1, 2));
  const start = (lora?: string | null, salt?: string | null, model = 1) => {
    t.begin(model, lora, salt);
    return `${t.stateHi},${t.stateLo}`;
  };
  const base = start();
  assert.equal(start(null, null), base);
  assert.equal(start("", ""), base, "empty strings are no keys, as to the hasher");
  const starts = [
    base,
    start("sql"),
    start("sqm"),
    start(null, "sql"),
    start("sql", "s"),
    start("sq", "ls"),
    start("sql", null, 2),
    start("x".repeat(10_000)),
    start("\u0000"),
  ];
  assert.equal(new Set(starts).size, starts.length, starts.join(" "));
  // The same keys give the same start, whatever came between.
  assert.equal(start("sql"), starts[1]);
  // Another process (seed) starts elsewhere.
  const other = new ChainTable(64, Uint32Array.of(7, 8));
  other.begin(1, "sql");
  assert.notEqual(`${other.stateHi},${other.stateLo}`, starts[1]);
});

Deno.test("chain: events continue a chain a route began under a salt, under its LoRA only", () => {
  const t = new ChainTable(256, Uint32Array.of(1, 2));
  const tokens = Uint32Array.of(1, 2, 3, 4);
  // A route teaches block 0 under LoRA "x" and salt "s".
  t.begin(1, "x", "s");
  t.advance(tokens, 0, 4);
  t.learn(1, t.keyHi, t.keyLo, t.stateHi, t.stateLo, 10, 11);
  const salted = [t.stateHi, t.stateLo];
  // An event after block (10, 11) names the LoRA, never the salt: it continues that chain.
  assert.ok(t.resume(1, 10, 11, "x"));
  assert.deepEqual([t.stateHi, t.stateLo], salted);
  assert.ok(!t.resume(1, 10, 11, null), "the base model's event");
  assert.ok(!t.resume(1, 10, 11, "y"), "another LoRA's event");
  // Names longer than the scratch are told apart to their last unit.
  const long = "n".repeat(700);
  const start = (lora: string) => {
    t.begin(1, lora);
    return `${t.stateHi},${t.stateLo}`;
  };
  assert.notEqual(start(long), start(long.slice(0, 699) + "m"));
  assert.equal(start(long), start("n".repeat(700)));
});
