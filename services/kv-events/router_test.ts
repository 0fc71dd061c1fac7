import assert from "node:assert/strict";
import { BlockHasher } from "./block_hash.ts";
import type { KvEvent } from "./events.ts";
import { DEFAULT_WEIGHTS, Router } from "./router.ts";
import { CacheMap, PodLimitError } from "./store.ts";
import { hashKey } from "./events.ts";
import { ChainTable } from "./chain.ts";
import { Prng } from "@deno-stores/shared/sim";

const BS = 4;
const hasher = () => new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: BS });
const prompt = (n: number, salt = 0) => Array.from({ length: n * BS }, (_, i) => i * 7 + salt);

/** The BlockStored event an engine sends after caching the first `blocks` blocks of `tokens`. */
function stored(
  tokens: number[],
  blocks: number,
  medium: string | null = null,
): Extract<KvEvent, { type: "BlockStored" }> {
  const digests = hasher().all(tokens.slice(0, blocks * BS));
  return {
    type: "BlockStored",
    blockHashes: digests, // 32-byte form; the int form is tested below
    parentBlockHash: null,
    tokenIds: tokens.slice(0, blocks * BS),
    blockSize: BS,
    loraId: null,
    medium,
  };
}

Deno.test("router: matched prefix per pod, tiers, stop at the first unheld block", () => {
  const map = new CacheMap({ maxPods: 32 });
  const p = prompt(10);
  map.apply("a", "m", [stored(p, 10)]);
  map.apply("b", "m", [stored(p, 4)]);
  map.apply("c", "m", [stored(p, 6, "CPU")]);
  map.apply("d", "other-model", [stored(p, 10)]);
  const router = new Router(map, hasher());
  const r = router.route("m", { tokens: p }, [])!;
  assert.equal(r.pod, "a");
  assert.equal(r.total_blocks, 10);
  assert.equal(r.visited_blocks, 10);
  const byId = Object.fromEntries(r.scores.map((s) => [s.id, s]));
  assert.deepEqual(Object.keys(byId).sort(), ["a", "b", "c"]);
  assert.equal(byId.a.matched_blocks, 10);
  assert.equal(byId.b.matched_blocks, 4);
  assert.equal(byId.c.matched_blocks, 6);
  assert.equal(byId.a.score, 1);
  assert.equal(byId.b.score, 0.4);
  assert.ok(Math.abs(byId.c.score - 0.6 * DEFAULT_WEIGHTS.offloadWeight) < 1e-12);

  // Only b and c as candidates: c's longer prefix wins; matching stops after block 6.
  const r2 = router.route("m", { tokens: p }, [{ id: "b", load: 0 }, { id: "c", load: 0 }])!;
  assert.equal(r2.pod, "c");
  assert.equal(r2.visited_blocks, 7);

  // A different prompt: nobody matches; hashing stops at block 0; an unknown pod is a candidate.
  const r3 = router.route("m", { tokens: prompt(10, 1) }, [{ id: "a", load: 3 }, {
    id: "new",
    load: 1,
  }])!;
  assert.equal(r3.visited_blocks, 1);
  assert.equal(r3.pod, "new");

  // Precomputed hashes give the same answer as tokens.
  const hashes = new Uint32Array(20);
  hasher().all(p).forEach((d, i) => {
    const k: [number, number] = [0, 0];
    hashKey(d, k);
    hashes[i * 2] = k[0];
    hashes[i * 2 + 1] = k[1];
  });
  assert.deepEqual(router.route("m", { hashes }, [{ id: "b", load: 0 }])!.scores, [
    { id: "b", matched_blocks: 4, score: 0.4 },
  ]);
});

Deno.test("router: load against cache, imbalance, round-robin ties", () => {
  const map = new CacheMap({ maxPods: 32 });
  const p = prompt(8);
  map.apply("a", "m", [stored(p, 8)]);
  const router = new Router(map, hasher());
  // a: 1 - 0.5 * 10/10 = 0.5; b: 0 - 0.5 * 0 = 0 -> a.
  assert.equal(
    router.route("m", { tokens: p }, [{ id: "a", load: 10 }, { id: "b", load: 0 }])!
      .pod,
    "a",
  );
  // Out of balance (100 - 0 > 32, 100 > 1.5 * 0): least loaded, whatever the cache.
  const r = router.route("m", { tokens: p }, [{ id: "a", load: 100 }, { id: "b", load: 0 }])!;
  assert.equal(r.pod, "b");
  assert.equal(r.mode, "load");
  // Equal scores and loads: spread over the candidates.
  const picks = new Set<string>();
  for (let i = 0; i < 4; i++) {
    picks.add(
      router.route("m", { tokens: prompt(8, 5) }, [{ id: "x", load: 0 }, {
        id: "y",
        load: 0,
      }])!.pod,
    );
  }
  assert.deepEqual([...picks].sort(), ["x", "y"]);
  assert.equal(router.route("none", { tokens: p }, []), null);
});

Deno.test("cache map: removal, clear, pod limit, int hashes, expiry", () => {
  let now = 1000;
  const map = new CacheMap({ maxPods: 2, now: () => now });
  const p = prompt(4);
  const ints = hasher().all(p).map((d) => new DataView(d.buffer).getBigUint64(24));
  map.apply("a", "m", [{ ...stored(p, 4), blockHashes: ints }]);
  assert.equal(map.pod("a")!.blocks, 4);
  // The 32-byte and the int form are the same key.
  map.apply("b", "m", [stored(p, 4)]);
  assert.equal(map.index("m")!.size, 4);
  map.apply("a", "m", [{ type: "BlockRemoved", blockHashes: ints.slice(2), medium: null }]);
  assert.equal(map.pod("a")!.blocks, 2);
  const router = new Router(map, hasher());
  const a = router.route("m", { tokens: p }, [{ id: "a", load: 0 }])!;
  assert.equal(a.scores[0].matched_blocks, 2);
  assert.throws(() => map.touch("c", "m"), PodLimitError);
  map.apply("b", "m", [{ type: "AllBlocksCleared" }]);
  assert.equal(map.pod("b")!.blocks, 0);
  assert.equal(map.pod("b")!.resets, 1);
  assert.equal(map.index("m")!.size, 2);
  now += 5000;
  map.touch("b", "m");
  assert.deepEqual(map.expire(1000), ["a"]);
  assert.equal(map.index("m")!.size, 0);
  map.touch("c", "m"); // a's slot is free again
  assert.equal(map.pods().length, 2);
  // A pod that changes model loses its blocks.
  map.apply("c", "m", [stored(p, 3)]);
  map.touch("c", "m2");
  assert.equal(map.pod("c")!.blocks, 0);
  assert.equal(map.index("m")!.size, 0);
});

Deno.test("cache map: MAX_INDEX_BLOCKS bounds the index; known blocks still gain pods", () => {
  const map = new CacheMap({ maxPods: 4, maxBlocks: 3 });
  const p = prompt(5);
  let r = map.apply("a", "m", [stored(p, 5)]);
  assert.deepEqual(r, { stored: 3, removed: 0, cleared: 0, refused: 2 });
  assert.equal(map.totals().blocks, 3);
  r = map.apply("b", "m", [stored(p, 5)]);
  assert.deepEqual(r, { stored: 3, removed: 0, cleared: 0, refused: 2 });
  assert.equal(map.pod("b")!.blocks, 3);
  map.apply("a", "m", [{ type: "AllBlocksCleared" }]);
  map.apply("b", "m", [{ type: "AllBlocksCleared" }]);
  assert.equal(map.totals().blocks, 0);
  r = map.apply("a", "m", [stored(prompt(2, 9), 2)]);
  assert.equal(r.refused, 0);
});

Deno.test("cache map: blocks stored again count once in the pod's blocks", () => {
  const map = new CacheMap({ maxPods: 4 });
  const p = prompt(4);
  assert.deepEqual(map.apply("a", "m", [stored(p, 4)]).stored, 4);
  assert.deepEqual(map.apply("a", "m", [stored(p, 4)]).stored, 4);
  assert.equal(map.pod("a")!.blocks, 4);
  map.apply("b", "m", [stored(p, 2)]);
  assert.deepEqual([map.pod("a")!.blocks, map.pod("b")!.blocks, map.totals().blocks], [4, 2, 4]);
});

Deno.test("cache map: blocks a full index segment cannot take are counted as refused", () => {
  const map = new CacheMap({ maxPods: 4, maxSegmentSlots: 16 }); // 12 blocks a segment at most
  let refused = 0, kept = 0;
  for (let k = 0; k < 40 && refused === 0; k++) {
    const r = map.apply("a", "m", [stored(prompt(500, 1000 + k), 500)]);
    refused += r.refused;
    kept += r.stored;
  }
  assert.ok(refused > 0, "no segment filled up");
  assert.equal(map.totals().blocks, kept);
  assert.equal(map.pod("a")!.blocks, kept);
});

Deno.test("router: learned chains route without hashing, then hand over to the hasher", () => {
  const table = new ChainTable(Uint32Array.of(1, 2));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(10);
  // Engines report with tokens: the first 6 blocks (one event), then 4 more without tokens.
  const first = stored(p, 6);
  map.apply("a", "m", [first]);
  const rest = hasher().all(p).slice(6);
  map.apply("a", "m", [{
    ...stored(p, 10),
    blockHashes: rest,
    tokenIds: [],
    parentBlockHash: null,
  }]);
  assert.equal(table.stats().learned, 6);
  // A router whose own hashing is wrong (another seed) still follows the learned links...
  const wrongSeed = new Router(
    map,
    new BlockHasher({ algo: "sha256_cbor", seed: "other", blockSize: BS }),
  );
  const r1 = wrongSeed.route("m", { tokens: p }, [{ id: "a", load: 0 }])!;
  assert.equal(r1.scores[0].matched_blocks, 6);
  // ...and with the engines' seed, the hasher takes over after the last learned link.
  const right = new Router(map, hasher());
  const r2 = right.route("m", { tokens: p }, [{ id: "a", load: 0 }])!;
  assert.equal(r2.scores[0].matched_blocks, 10);
  // A prompt under a LoRA no event named is hashed (the base model's links are not its).
  const r3 = wrongSeed.route("m", { tokens: p, keys: { loraName: "x" } }, [{ id: "a", load: 0 }])!;
  assert.equal(r3.scores[0].matched_blocks, 0);
  assert.ok(table.hits >= 12);
  // The router taught the links of the blocks it hashed and found held: the wrong seed now
  // follows all ten.
  assert.equal(table.stats().learned, 10);
  assert.equal(
    wrongSeed.route("m", { tokens: p }, [{ id: "a", load: 0 }])!.scores[0].matched_blocks,
    10,
  );
});

Deno.test("router: a LoRA's learned links are followed by its prompts only", () => {
  const table = new ChainTable(Uint32Array.of(3, 4));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(8);
  const cands = [{ id: "a", load: 0 }, { id: "b", load: 0 }];
  const sql = hasher().all(p, { loraName: "sql" });
  map.apply("a", "m", [{ ...stored(p, 8), blockHashes: sql, loraId: 1, loraName: "sql" }]);
  // The base model's blocks of the same tokens, on another pod.
  map.apply("b", "m", [stored(p, 8)]);
  assert.equal(table.stats().learned, 16);
  const matched = (r: Router, loraName?: string) =>
    r.route("m", { tokens: p, keys: { loraName } }, cands)!.scores.map((s) => s.matched_blocks);
  // A router that cannot hash (wrong seed) follows each prompt's own links only.
  const wrongSeed = new Router(
    map,
    new BlockHasher({ algo: "sha256_cbor", seed: "other", blockSize: BS }),
  );
  assert.deepEqual(matched(wrongSeed, "sql"), [8, 0]);
  assert.deepEqual(matched(wrongSeed), [0, 8]);
  assert.deepEqual(matched(wrongSeed, "other"), [0, 0]);
  // Hashing every block (links off) agrees.
  const hashing = new Router(map, hasher(), undefined, { learnedChains: false });
  assert.deepEqual(matched(hashing, "sql"), [8, 0]);
  assert.deepEqual(matched(hashing), [0, 8]);
  // Pods' removals reach the LoRA's links too.
  map.apply("a", "m", [{ type: "BlockRemoved", blockHashes: sql.slice(5), medium: null }]);
  assert.deepEqual(matched(wrongSeed, "sql"), [5, 0]);
  assert.deepEqual(matched(hashing, "sql"), [5, 0]);
});

Deno.test("router: salted prompts and LoRAs no event named follow the links their first route taught", () => {
  const table = new ChainTable(Uint32Array.of(3, 5));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(8);
  const cands = [{ id: "a", load: 0 }, { id: "b", load: 0 }];
  // Pod a holds the prompt under cache salt "t1", pod b under LoRA "sql"; neither event can teach
  // links (no salt in events; a lora_id without its name).
  const salted = hasher().all(p, { cacheSalt: "t1" });
  map.apply("a", "m", [{ ...stored(p, 8), blockHashes: salted, tokenIds: [] }]);
  const sql = hasher().all(p, { loraName: "sql" });
  map.apply("b", "m", [{ ...stored(p, 8), blockHashes: sql, loraId: 1 }]);
  assert.equal(table.stats().learned, 0);
  const matched = (r: Router, keys: { cacheSalt?: string; loraName?: string }) =>
    r.route("m", { tokens: p, keys }, cands)!.scores.map((s) => s.matched_blocks);
  // A router that cannot hash (wrong seed) finds nothing before a route taught the links...
  const wrongSeed = new Router(
    map,
    new BlockHasher({ algo: "sha256_cbor", seed: "other", blockSize: BS }),
  );
  assert.deepEqual(matched(wrongSeed, { cacheSalt: "t1" }), [0, 0]);
  assert.deepEqual(matched(wrongSeed, { loraName: "sql" }), [0, 0]);
  // ...a router that can hashes each prompt once, and teaches its links.
  const right = new Router(map, hasher());
  assert.deepEqual(matched(right, { cacheSalt: "t1" }), [8, 0]);
  assert.deepEqual(matched(right, { loraName: "sql" }), [0, 8]);
  assert.equal(table.stats().learned, 16);
  const hits = table.hits;
  assert.deepEqual(matched(wrongSeed, { cacheSalt: "t1" }), [8, 0]);
  assert.deepEqual(matched(wrongSeed, { loraName: "sql" }), [0, 8]);
  assert.equal(table.hits, hits + 16, "followed, not hashed");
  // Each chain is its own: another salt, the salt with the LoRA, the base model find nothing.
  assert.deepEqual(matched(wrongSeed, { cacheSalt: "t2" }), [0, 0]);
  assert.deepEqual(matched(wrongSeed, { cacheSalt: "t1", loraName: "sql" }), [0, 0]);
  assert.deepEqual(matched(wrongSeed, {}), [0, 0]);
  // Removals reach links taught by routes.
  map.apply("a", "m", [{ type: "BlockRemoved", blockHashes: salted.slice(5), medium: null }]);
  assert.deepEqual(matched(wrongSeed, { cacheSalt: "t1" }), [5, 0]);
  // A newer engine naming the LoRA teaches the same chain the routes did (no conflict).
  map.apply("b", "m", [{ ...stored(p, 8), blockHashes: sql, loraId: 1, loraName: "sql" }]);
  assert.equal(table.stats().ambiguous, 0);
  map.apply("b", "m", [{ type: "BlockRemoved", blockHashes: sql.slice(3), medium: null }]);
  assert.deepEqual(matched(wrongSeed, { loraName: "sql" }), [0, 3]);
});

Deno.test("router: a token id past u32 ends the tags; the hasher takes the blocks from it", () => {
  const table = new ChainTable(Uint32Array.of(3, 5));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(8);
  p[3 * BS + 1] = 2 ** 33; // block 3 (vLLM hashes any int; keys are over u32 ids)
  map.apply("a", "m", [stored(p, 8)]);
  assert.equal(table.stats().learned, 0, "the event is not learnable");
  const cands = [{ id: "a", load: 0 }];
  const r = new Router(map, hasher()).route("m", { tokens: p }, cands)!;
  assert.equal(r.scores[0].matched_blocks, 8);
  assert.equal(table.stats().learned, 3, "links taught up to the block with the big id");
  const wrongSeed = new Router(
    map,
    new BlockHasher({ algo: "sha256_cbor", seed: "other", blockSize: BS }),
  );
  assert.equal(wrongSeed.route("m", { tokens: p }, cands)!.scores[0].matched_blocks, 3);
});

Deno.test("router: a chain's first block the hasher does not reproduce is not learned from a pod whose seed it has", () => {
  const table = new ChainTable(Uint32Array.of(3, 5));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS, hasher: hasher() } });
  const p = prompt(8), q = prompt(8, 1);
  const cands = [{ id: "a", load: 0 }];
  // A router that cannot hash (wrong seed) sees only what the links say.
  const wrongSeed = new Router(
    map,
    new BlockHasher({ algo: "sha256_cbor", seed: "other", blockSize: BS }),
  );
  const matched = (tokens: number[], keys = {}, id = "a") =>
    wrongSeed.route("m", { tokens, keys }, [{ id, load: 0 }])!.scores[0].matched_blocks;
  // Pod a's plain prompt: its first block reproduced, its links learned.
  map.apply("a", "m", [stored(p, 8)]);
  assert.equal(map.pod("a")!.rootsReproduced, 1);
  assert.equal(matched(p), 8);
  // A salted prompt, reported as engines without extra_keys do (as if unsalted): not learned, so
  // the unsalted prompt finds nothing through links (it did before: 4).
  const salted = hasher().all(q, { cacheSalt: "t1" });
  map.apply("a", "m", [{ ...stored(q, 4), blockHashes: salted.slice(0, 4) }]);
  assert.equal(table.stats().rootsRefused, 1);
  assert.equal(matched(q), 0);
  // A salted route teaches the chain's first blocks; the conversation's next event continues it.
  const right = new Router(map, hasher());
  const keys = { cacheSalt: "t1" };
  assert.equal(right.route("m", { tokens: q, keys }, cands)!.scores[0].matched_blocks, 4);
  map.apply("a", "m", [{
    ...stored(q, 8),
    blockHashes: salted.slice(4),
    parentBlockHash: salted[3],
    tokenIds: q.slice(4 * BS),
  }]);
  assert.equal(matched(q, keys), 8);
  assert.equal(matched(q), 0);
  // Clearing its cache does not make pod a's engine another: a hidden salt is still refused.
  map.apply("a", "m", [{ type: "AllBlocksCleared" }]);
  const r = prompt(4, 2);
  map.apply("a", "m", [{ ...stored(r, 4), blockHashes: hasher().all(r, { cacheSalt: "t2" }) }]);
  assert.equal(table.stats().rootsRefused, 2);
  assert.equal(matched(r), 0);
  // A pod whose first blocks the hasher never reproduces (its engine has another seed) teaches
  // nothing...
  const other = new BlockHasher({ algo: "sha256_cbor", seed: "9", blockSize: BS });
  for (let k = 0; k < 12; k++) {
    const t = prompt(8, 10 + k);
    map.apply("b", "m", [{ ...stored(t, 8), blockHashes: other.all(t) }]);
    assert.equal(matched(t, {}, "b"), 0, `root ${k}`);
  }
  assert.deepEqual([map.pod("b")!.rootsReproduced, map.pod("b")!.rootsMismatched], [0, 12]);
  // ...unless the operator lets such pods in unchecked after N of them (CHAIN_UNCHECKED_AFTER).
  const lenient = new CacheMap({
    maxPods: 8,
    chain: {
      table: new ChainTable(Uint32Array.of(3, 5)),
      blockSize: BS,
      hasher: hasher(),
      uncheckedAfter: 3,
    },
  });
  const viaLinks = new Router(
    lenient,
    new BlockHasher({ algo: "sha256_cbor", seed: "other", blockSize: BS }),
  );
  for (let k = 0; k < 5; k++) {
    const t = prompt(8, 10 + k);
    lenient.apply("b", "m", [{ ...stored(t, 8), blockHashes: other.all(t) }]);
    const m = viaLinks.route("m", { tokens: t }, [{ id: "b", load: 0 }])!.scores[0].matched_blocks;
    assert.equal(m, k < 3 ? 0 : 8, `lenient root ${k}`);
  }
  // A restarted engine (its sequence went back) may hash with a new seed: counts start again.
  map.reset("a", true);
  assert.deepEqual([map.pod("a")!.rootsReproduced, map.pod("a")!.rootsMismatched], [0, 0]);
});

Deno.test("cache map: a stored event with no blocks after no parent is no chain's first block", () => {
  const table = new ChainTable(Uint32Array.of(1, 2));
  const map = new CacheMap({ maxPods: 4, chain: { table, blockSize: BS, hasher: hasher() } });
  const p = prompt(2);
  const r = map.apply("a", "m", [
    // Not learnable (tokens for more blocks than it has), but its tokens stay in the batch.
    { ...stored(p, 1), parentBlockHash: 5n, tokenIds: Array.from({ length: 4094 }, (_, i) => i) },
    { ...stored(p, 0), blockHashes: [], tokenIds: [] },
    stored(p, 2),
  ]);
  assert.equal(r.stored, 3);
  assert.deepEqual([map.pod("a")!.rootsReproduced, map.pod("a")!.rootsMismatched], [1, 0]);
  assert.equal(table.stats().learned, 2);
});

Deno.test("cache map: a pod none of whose first 16 chain roots reproduced is reported once", () => {
  const warnings: string[] = [];
  const map = new CacheMap({
    maxPods: 4,
    chain: { table: new ChainTable(Uint32Array.of(1, 2)), blockSize: BS, hasher: hasher() },
    warn: (m, f) => warnings.push(`${m} ${f.pod}`),
  });
  const other = new BlockHasher({ algo: "sha256_cbor", seed: "9", blockSize: BS });
  for (let k = 0; k < 20; k++) {
    const t = prompt(2, k);
    map.apply("b", "m", [{ ...stored(t, 2), blockHashes: other.all(t) }]);
    assert.equal(warnings.length, k < 15 ? 0 : 1, `root ${k}`);
  }
  assert.match(warnings[0], /none of a pod's chain roots reproduced.* b$/);
  // Once per engine start: a restarted engine is told about again.
  map.reset("b", true);
  for (let k = 0; k < 16; k++) {
    const t = prompt(2, 100 + k);
    map.apply("b", "m", [{ ...stored(t, 2), blockHashes: other.all(t) }]);
  }
  assert.equal(warnings.length, 2);
});

Deno.test("router: a block reported after two prefixes has its pods probed in the index", () => {
  // Hostile input: pod b sends the blocks of a LoRA's prompt as the base model's. The block's
  // prefix turns ambiguous, and its learned entries can no longer be kept in step with removals.
  const table = new ChainTable(Uint32Array.of(8, 9));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(2);
  const sql = hasher().all(p, { loraName: "sql" });
  const cands = [{ id: "a", load: 0 }, { id: "b", load: 0 }];
  map.apply("a", "m", [{ ...stored(p, 2), blockHashes: sql, loraId: 1, loraName: "sql" }]);
  map.apply("b", "m", [{ ...stored(p, 2), blockHashes: sql }]);
  map.apply("a", "m", [{ type: "BlockRemoved", blockHashes: sql, medium: null }]);
  const keys = { loraName: "sql" };
  const learned = new Router(map, hasher()).route("m", { tokens: p, keys }, cands)!;
  const hashing = new Router(map, hasher(), undefined, { learnedChains: false })
    .route("m", { tokens: p, keys }, cands)!;
  assert.deepEqual(hashing.scores.map((s) => s.matched_blocks), [0, 2]);
  assert.deepEqual(learned.scores.map((s) => s.matched_blocks), [0, 2]);
});

Deno.test("router: blocks after a parent with no link, or no parent indexed, are linked once a router hashes them", () => {
  const table = new ChainTable(Uint32Array.of(5, 6));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(8);
  const hs = hasher().all(p);
  // Blocks 0-3 stored with no token ids (not linked); blocks 4-7 after block 3: linked to it,
  // but nothing leads to block 3 yet.
  map.apply("a", "m", [{ ...stored(p, 4), tokenIds: [] }]);
  map.apply("a", "m", [{
    ...stored(p, 8),
    blockHashes: hs.slice(4),
    parentBlockHash: hs[3],
    tokenIds: p.slice(4 * BS, 8 * BS),
  }]);
  assert.equal(table.stats().learned, 4);
  assert.equal(table.stats().orphans, 0);
  const wrongSeed = () =>
    new Router(map, new BlockHasher({ algo: "sha256_cbor", seed: "x", blockSize: BS }))
      .route("m", { tokens: p }, [{ id: "a", load: 0 }])!.scores[0].matched_blocks;
  assert.equal(wrongSeed(), 0);
  assert.equal(
    new Router(map, hasher()).route("m", { tokens: p }, [])!.scores[0].matched_blocks,
    8,
  );
  // The router linked blocks 0-3; 4-7 were linked already.
  assert.equal(table.stats().learned, 8);
  assert.equal(wrongSeed(), 8);
  // An event after a parent no pod holds: an orphan, its blocks indexed but not linked.
  const q = prompt(3, 1);
  const qs = hasher().all(q);
  map.apply("b", "m", [{
    ...stored(q, 3),
    blockHashes: qs.slice(1),
    parentBlockHash: qs[0],
    tokenIds: q.slice(BS, 3 * BS),
  }]);
  assert.equal(table.stats().orphans, 2);
  assert.equal(table.stats().learned, 8);
  map.apply("b", "m", [{ ...stored(q, 1) }]);
  // Its first block linked by its own event; the two after it by the router that hashes them.
  const route = () =>
    new Router(map, hasher()).route("m", { tokens: q }, [{ id: "b", load: 0 }])!.scores[0];
  assert.equal(route().matched_blocks, 3);
  assert.equal(table.stats().learned, 11);
  const hits = table.hits;
  assert.equal(route().matched_blocks, 3);
  assert.equal(table.hits, hits + 3);
});

Deno.test("router: links two engines disagree on are not followed", () => {
  const table = new ChainTable(Uint32Array.of(3, 4));
  const map = new CacheMap({ maxPods: 8, chain: { table, blockSize: BS } });
  const p = prompt(3);
  map.apply("a", "m", [stored(p, 3)]);
  const other = new BlockHasher({ algo: "sha256_cbor", seed: "9", blockSize: BS }).all(p);
  map.apply("b", "m", [{ ...stored(p, 3), blockHashes: other }]);
  // The chain's first block: the same tokens, another hash (the blocks after it are reached
  // through it only).
  assert.equal(table.stats().ambiguous, 1);
  const r = new Router(map, hasher()).route("m", { tokens: p }, [])!;
  const byId = Object.fromEntries(r.scores.map((s) => [s.id, s.matched_blocks]));
  assert.deepEqual(byId, { a: 3, b: 0 });
});

/** Each pod's matched prefix of a prompt's hashes (hi, lo pairs), from the hash table alone. */
function prefixes(map: CacheMap, flat: Uint32Array, pods: string[]): Map<string, number> {
  const ix = map.index("m");
  const out = new Map<string, number>();
  const gpu = new Uint32Array(1), off = new Uint32Array(1);
  for (const id of pods) {
    const slot = map.pod(id)?.slot;
    let n = 0;
    while (ix !== undefined && slot !== undefined && n < flat.length / 2) {
      const r = ix.find(flat[n * 2], flat[n * 2 + 1]);
      if (r < 0) break;
      ix.masks(r, gpu, off);
      if (((gpu[0] | off[0]) & (1 << slot)) === 0) break;
      n++;
    }
    out.set(id, n);
  }
  return out;
}

Deno.test("router: pod masks carried by learned links always equal the index's (randomized)", () => {
  // Two routers over one map: one follows learned links and their pod masks, the other hashes
  // every block and probes the index. Whatever the events, their answers must be the same.
  for (const variant of [0, 1]) {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = new Prng(seed * 100 + variant);
      const table = new ChainTable(Uint32Array.of(seed, 7 + variant));
      const map = new CacheMap({
        maxPods: 8,
        chain: { table, blockSize: BS, hasher: hasher() },
      });
      const learned = new Router(map, hasher());
      const hashed = new Router(map, hasher(), DEFAULT_WEIGHTS, { learnedChains: false });
      // A few families of prompts sharing prefixes.
      const prompts = Array.from({ length: 12 }, (_, i) => {
        const base = prompt(3 + (i % 4), i % 3);
        return [
          ...base,
          ...Array.from({ length: (2 + rnd.nextInt(6)) * BS }, () => rnd.nextInt(50)),
        ];
      });
      const pods = ["a", "b", "c", "d", "e"];
      for (let step = 0; step < 400; step++) {
        const pod = pods[rnd.nextInt(pods.length)];
        const p = prompts[rnd.nextInt(prompts.length)];
        const blocks = p.length / BS;
        const op = rnd.nextInt(10);
        // The base model's blocks or a LoRA's (hashed under its name, learned apart), some under
        // a cache salt (the event says it has extra keys, or, from a pod whose first blocks the
        // map reproduced before, hides them: routes teach those links), some from engines that
        // name the LoRA by id only (routes teach those too).
        const lora = [undefined, "l1", "l2"][rnd.nextInt(3)];
        const salt = [undefined, undefined, "s1"][rnd.nextInt(3)];
        const named = rnd.nextInt(4) !== 0;
        const hideSalt = (map.pod(pod)?.rootsReproduced ?? 0) > 0 && rnd.nextInt(2) === 0;
        const digests = hasher().all(p, { loraName: lora, cacheSalt: salt });
        if (op < 5) {
          // Stored in one or two events (the second after a parent), GPU or offloaded.
          const upTo = 1 + rnd.nextInt(blocks);
          const split = rnd.nextInt(upTo);
          const medium = rnd.nextInt(4) === 0 ? "CPU" : null;
          const ev = (from: number, to: number): KvEvent => ({
            type: "BlockStored",
            blockHashes: digests.slice(from, to),
            parentBlockHash: from === 0 ? null : digests[from - 1],
            tokenIds: p.slice(from * BS, to * BS),
            blockSize: BS,
            loraId: lora ? 1 : null,
            medium,
            ...(lora && named ? { loraName: lora } : {}),
            ...(salt && !hideSalt ? { keyed: true as const } : {}),
          });
          map.apply(pod, "m", split > 0 ? [ev(0, split), ev(split, upTo)] : [ev(0, upTo)]);
        } else if (op < 8) {
          const from = rnd.nextInt(blocks);
          map.apply(pod, "m", [{
            type: "BlockRemoved",
            blockHashes: digests.slice(from, from + 1 + rnd.nextInt(3)),
            medium: rnd.nextInt(3) === 0 ? "CPU" : null,
          }]);
        } else if (op === 8) {
          map.apply(pod, "m", [{ type: "AllBlocksCleared" }]);
        } else map.remove(pod);
        // Records renumbered now and then (the map compacts on its own only past 1,024 free).
        if (step % 40 === 39) map.index("m")?.compact();
        for (let q = 0; q < 3; q++) {
          const probe = prompts[rnd.nextInt(prompts.length)];
          const keys = {
            loraName: [undefined, "l1", "l2", "l3"][rnd.nextInt(4)],
            cacheSalt: [undefined, "s1", "s2"][rnd.nextInt(3)],
          };
          const cands = pods.map((id) => ({ id, load: 0 }));
          const a = learned.route("m", { tokens: probe, keys }, cands)!;
          const b = hashed.route("m", { tokens: probe, keys }, cands)!;
          assert.deepEqual(
            a.scores.map((s) => [s.id, s.matched_blocks, s.score]),
            b.scores.map((s) => [s.id, s.matched_blocks, s.score]),
            `variant ${variant} seed ${seed} step ${step}`,
          );
          // Both routers find hashed blocks along runs of records by key (findAfter): the
          // prompt's hashes sent, and each pod's prefix read off the hash table alone, agree.
          const digests = hasher().all(probe, keys);
          const flat = new Uint32Array(digests.length * 2);
          const k: [number, number] = [0, 0];
          digests.forEach((d, i) => {
            hashKey(d, k);
            flat[i * 2] = k[0];
            flat[i * 2 + 1] = k[1];
          });
          const c = hashed.route("m", { hashes: flat }, cands)!;
          const want = prefixes(map, flat, pods);
          assert.deepEqual(
            c.scores.map((s) => [s.id, s.matched_blocks]),
            pods.map((id) => [id, want.get(id)]),
            `hashes: variant ${variant} seed ${seed} step ${step}`,
          );
          assert.deepEqual(
            b.scores.map((s) => s.matched_blocks),
            c.scores.map((s) => s.matched_blocks),
          );
        }
      }
      assert.ok(table.hits > 0, "the learned path was taken");
    }
  }
});

Deno.test("cache map: under 64 bytes a block with the learned links, prompts stored as engines send them, and every one followed", () => {
  // 200,000 blocks of 16 tokens: prompts of 125 blocks (2,000 tokens) in one event each, a third
  // also on a second pod as an offloaded prefix with no token ids; then conversations that go on a
  // block at a time (decode), interleaved.
  const bs = 16;
  const table = new ChainTable(Uint32Array.of(8, 9));
  const map = new CacheMap({ maxPods: 32, chain: { table, blockSize: bs } });
  const rnd = new Prng(11);
  const prompts: number[][] = [];
  const hashes: bigint[][] = [];
  let next = 1n;
  for (let p = 0; p < 1600; p++) {
    const tokens = Array.from({ length: 125 * bs }, () => rnd.nextInt(150_000));
    const hs = Array.from({ length: 125 }, () => (next++ * 0x9e3779b97f4a7c15n) & (2n ** 64n - 1n));
    prompts.push(tokens);
    hashes.push(hs);
    map.apply(`pod-${p % 32}`, "m", [{
      type: "BlockStored",
      blockHashes: hs,
      parentBlockHash: null,
      tokenIds: tokens,
      blockSize: bs,
      loraId: null,
      medium: null,
    }]);
    if (p % 3 === 0) {
      map.apply(`pod-${(p + 7) % 32}`, "m", [{
        type: "BlockStored",
        blockHashes: hs.slice(0, 1 + rnd.nextInt(125)),
        parentBlockHash: null,
        tokenIds: [],
        blockSize: bs,
        loraId: null,
        medium: "CPU",
      }]);
    }
  }
  for (let step = 0; step < 10; step++) {
    for (let p = 0; p < 64; p++) {
      const tokens = Array.from({ length: bs }, () => rnd.nextInt(150_000));
      const h = (next++ * 0x9e3779b97f4a7c15n) & (2n ** 64n - 1n);
      map.apply(`pod-${p % 32}`, "m", [{
        type: "BlockStored",
        blockHashes: [h],
        parentBlockHash: hashes[p].at(-1)!,
        tokenIds: tokens,
        blockSize: bs,
        loraId: null,
        medium: null,
      }]);
      prompts[p].push(...tokens);
      hashes[p].push(h);
    }
  }
  const { blocks, bytes } = map.totals();
  assert.equal(blocks, 1600 * 125 + 640);
  assert.ok(bytes / blocks < 64, `${(bytes / blocks).toFixed(1)} bytes a block`);
  // Every prompt is followed through its links to its last block, with no hashing.
  const router = new Router(
    map,
    new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: bs }),
  );
  for (const p of [0, 1, 63, 64, 799, 1599]) {
    const misses = table.misses;
    const r = router.route("m", { tokens: prompts[p] }, [{ id: `pod-${p % 32}`, load: 0 }])!;
    assert.equal(r.scores[0].matched_blocks, hashes[p].length, `prompt ${p}`);
    assert.equal(table.misses, misses, `prompt ${p} followed its links only`);
  }
});

Deno.test("router: a block hash sent is matched on all 64 bits, whatever a hostile pod stores next to it", () => {
  // Pods a and evil hold P0..P7; evil stores, right after P7, a hash equal to H in its low 32
  // bits; then a stores H after P7 (elsewhere).
  const map = new CacheMap({ maxPods: 4 });
  const P = Array.from({ length: 8 }, (_, i) => [0x1000 + i, 0x2000 + i] as const);
  const H = [0x1234, 0x5678] as const;
  const X = [H[0] ^ 1, H[1]] as const;
  const big = ([hi, lo]: readonly [number, number]) => (BigInt(hi) << 32n) | BigInt(lo);
  const stored = (hs: (readonly [number, number])[], parent: bigint | null): KvEvent => ({
    type: "BlockStored",
    blockHashes: hs.map(big),
    parentBlockHash: parent,
    tokenIds: [],
    blockSize: BS,
    loraId: null,
    medium: null,
  });
  for (const pod of ["a", "evil"]) map.apply(pod, "m", [stored(P, null)]);
  map.apply("evil", "m", [stored([X], big(P[7]))]);
  map.apply("a", "m", [stored([H], big(P[7]))]);
  const flat = Uint32Array.from([...P, H].flat());
  const router = new Router(map, hasher(), DEFAULT_WEIGHTS, { learnedChains: false });
  const r = router.route("m", { hashes: flat }, [{ id: "a", load: 0 }, { id: "evil", load: 0 }])!;
  assert.deepEqual(r.scores.map((s) => [s.id, s.matched_blocks]), [["a", 9], ["evil", 8]]);
  const want = prefixes(map, flat, ["a", "evil"]);
  assert.deepEqual([want.get("a"), want.get("evil")], [9, 8]);
});

Deno.test("cache map: pods dropped a step at a time: routes never see them, slots come back", () => {
  let kicks = 0;
  const map = new CacheMap({ maxPods: 3, onDrain: () => kicks++ });
  const router = new Router(map, hasher());
  const p = prompt(10), q = prompt(10, 1);
  map.apply("a", "m", [stored(p, 10)]);
  map.apply("b", "m", [stored(p, 6), stored(q, 10)]);
  const matched = (id: string, t = p) =>
    router.route("m", { tokens: t }, [{ id, load: 0 }])!.scores[0].matched_blocks;
  assert.equal(map.totals().blocks, 20);

  // AllBlocksCleared: b goes on under another slot at once; its old one drains.
  const slotB = map.pod("b")!.slot;
  assert.equal(map.apply("b", "m", [{ type: "AllBlocksCleared" }]).cleared, 1);
  assert.notEqual(map.pod("b")!.slot, slotB);
  assert.equal(kicks, 1);
  assert.equal(map.draining, 1);
  assert.equal(map.pod("b")!.blocks, 0);
  assert.equal(matched("b"), 0); // before a single step: none of its old blocks
  assert.equal(matched("b", q), 0);
  assert.equal(matched("a"), 10);
  map.apply("b", "m", [stored(p, 3)]);
  assert.equal(matched("b"), 3);
  assert.equal(map.totals().blocks, 20); // q's 10 blocks still counted until visited

  // The third slot is b's old one, held until its drain ends: a new pod ends it and takes it.
  map.apply("c", "m", [stored(q, 2)]);
  assert.equal(map.draining, 0);
  assert.equal(map.pod("c")!.slot, slotB);
  assert.equal(matched("c", q), 2); // not 10: b's old bits went before c got the slot
  assert.equal(map.totals().blocks, 12);

  // A removed pod's slot is held until the drain ends, then handed out again.
  const slotA = map.pod("a")!.slot;
  assert.ok(map.remove("a"));
  assert.equal(map.draining, 1);
  assert.equal(map.pod("a"), undefined);
  while (map.drain(4)); // steps of 4 records
  assert.equal(map.draining, 0);
  assert.equal(map.totals().blocks, 3 + 2); // b's 3 (p's first, a shared none) and c's 2 (of q)
  map.apply("d", "m", []);
  assert.equal(map.pod("d")!.slot, slotA);
  assert.equal(matched("d"), 0);

  // No free slot: a reset drops the pod's blocks at once, as without steps.
  assert.equal(map.reset("b"), 3);
  assert.equal(map.draining, 0);
  assert.equal(matched("b"), 0);
  assert.equal(map.totals().blocks, 2);
  assert.throws(() => map.apply("e", "m", []), PodLimitError);
});

Deno.test("cache map: an engine restarted with another hash seed takes its learned links over at once", () => {
  // Roots learned unchecked (no hasher), as for a pod past CHAIN_UNCHECKED_AFTER.
  const table = new ChainTable(Uint32Array.of(1, 2));
  const map = new CacheMap({ maxPods: 4, chain: { table, blockSize: BS }, onDrain: () => {} });
  const router = new Router(map, hasher());
  const t = prompt(6);
  const seeded = (seed: string) => ({
    ...stored(t, 6),
    blockHashes: new BlockHasher({ algo: "sha256_cbor", seed, blockSize: BS }).all(t),
  });
  const matched = () => router.route("m", { tokens: t }, [{ id: "a", load: 0 }])!.scores[0];
  map.apply("a", "m", [seeded("11")]);
  assert.equal(matched().matched_blocks, 6);
  map.reset("a", true); // its old blocks drain; the restarted engine stores them under new hashes
  map.apply("a", "m", [seeded("22")]);
  assert.equal(matched().matched_blocks, 6); // not ambiguous: the old records are gone already
  while (map.drain(3));
  assert.equal(matched().matched_blocks, 6);
  assert.equal(map.totals().blocks, 6);
});

Deno.test("cache map: pods cleared faster than a sweep takes do not pile up or stop compaction", () => {
  const map = new CacheMap({ maxPods: 64, onDrain: () => {} });
  const h = (i: number) => BigInt(i);
  const block = (hashes: bigint[]) => ({
    type: "BlockStored" as const,
    blockHashes: hashes,
    parentBlockHash: null,
    tokenIds: [],
    blockSize: BS,
    loraId: null,
    medium: null,
  });
  let next = 1, oldest = 1, most = 0, records = 0;
  for (let tick = 1; tick <= 400; tick++) {
    // Pod a keeps 20,000 blocks, evicting its oldest; pod b clears its cache every 4 ticks, and
    // one step of 4,096 records runs a tick: far less than a sweep of the ~20,000 records.
    map.apply("a", "m", [block(Array.from({ length: 1000 }, () => h(next++)))]);
    if (next - oldest > 20_000) {
      map.apply("a", "m", [{
        type: "BlockRemoved",
        blockHashes: Array.from({ length: 1000 }, () => h(oldest++)),
        medium: null,
      }]);
    }
    map.apply("b", "m", [block([h(1e9 + tick)])]);
    if (tick % 4 === 0) map.apply("b", "m", [{ type: "AllBlocksCleared" }]);
    map.drain(4096);
    most = Math.max(most, map.draining);
    if (tick > 200) records = Math.max(records, map.index("m")!.records);
  }
  // One sweep serves every drain: each ends one sweep after it began (not one sweep after those
  // before it), and records stay bounded as eviction recycles their chunks.
  // (Drains queued one after another would grow by one every 5 ticks here, to 63.)
  assert.ok(
    most <= Math.ceil(records / 4096 / 4) + 1,
    `${most} drains at once, ${records} records`,
  );
  assert.ok(records < 5 * 65_536 + 40_000, `${records} records`);
  assert.ok(map.index("m")!.compactions + map.index("m")!.recycled > 0);
});

Deno.test("cache map: a drain step stops at the first slice once told it has run long enough", () => {
  const map = new CacheMap({ maxPods: 4, onDrain: () => {} });
  const hashes = Array.from({ length: 5000 }, (_, i) => BigInt(i + 1));
  map.apply("a", "m", [{ ...stored(prompt(1), 1), blockHashes: hashes, tokenIds: [] }]);
  map.remove("a");
  let asked = 0;
  assert.equal(map.drain(1 << 20, () => ++asked > 0), true); // one slice of 1,024 records
  assert.equal(asked, 1);
  assert.equal(map.totals().blocks, 5000 - 1024); // records 1-1,024
  assert.equal(map.drain(1 << 20), false);
  assert.equal(map.totals().blocks, 0);
});

Deno.test("cache map: a step that has run long enough stops for every model; models take turns", () => {
  const map = new CacheMap({ maxPods: 4, onDrain: () => {} });
  const block = (n: number, base: number) => ({
    ...stored(prompt(1), 1),
    blockHashes: Array.from({ length: n }, (_, i) => BigInt(base + i)),
    tokenIds: [],
  });
  map.apply("a", "m1", [block(5000, 1)]);
  map.apply("b", "m2", [block(5000, 100_000)]);
  map.remove("a");
  map.remove("b");
  const size = () => [map.index("m1")!.size, map.index("m2")!.size];
  assert.equal(map.drain(1 << 20, () => true), true);
  assert.deepEqual(size(), [5000 - 1024, 5000]); // one slice, one model
  assert.equal(map.drain(1 << 20, () => true), true);
  assert.deepEqual(size(), [5000 - 1024, 5000 - 1024]); // the other model's turn
  while (map.drain(1 << 20));
  assert.deepEqual(size(), [0, 0]);
  assert.equal(map.draining, 0);
});
