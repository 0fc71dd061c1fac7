import assert from "node:assert/strict";
import { ChainTable } from "./chain.ts";
import {
  BlockIndex,
  CONT,
  LINK_BLOCKED,
  LINK_CONFLICT,
  LINK_KNOWN,
  LINK_NEW,
  SLACK,
  STOP,
} from "./index.ts";
import { Prng } from "@deno-stores/shared/sim";

const BS = 4;
const toks = (...v: number[]) => Uint32Array.from(v);

/** The tag of `tokens` (one block) as [hi, lo]. */
function tagOf(t: ChainTable, tokens: Uint32Array): [number, number] {
  t.tag(tokens, 0, tokens.length);
  return [t.tagHi, t.tagLo];
}

/** The root key of a first block of `tokens` under the namespace, as [hi, lo]. */
function rootOf(
  t: ChainTable,
  tokens: Uint32Array,
  lora?: string,
  salt?: string,
): [number, number] {
  t.tag(tokens, 0, tokens.length);
  t.rootKey(lora, salt);
  return [t.tagHi, t.tagLo];
}

Deno.test("chain: tags tell blocks apart, fit in 61 bits, are never (0, 0), and depend on the seed", () => {
  const t = new ChainTable(Uint32Array.of(1, 2));
  const seen = new Set<string>();
  const rnd = new Prng(3);
  for (let i = 0; i < 20_000; i++) {
    const b = toks(...Array.from({ length: BS }, () => rnd.nextInt(8)));
    const [hi, lo] = tagOf(t, b);
    assert.ok(hi >= 0 && hi < STOP, "the tag leaves the flags' bits free");
    assert.ok((hi | lo) !== 0);
    seen.add(`${b.join(",")}=${hi}:${lo}`);
  }
  // Each distinct block has one tag, and no two distinct blocks share one.
  const byBlock = new Map<string, string>(), byTag = new Map<string, string>();
  for (const e of seen) {
    const [b, tag] = e.split("=");
    assert.equal(byBlock.get(b) ?? tag, tag);
    assert.equal(byTag.get(tag) ?? b, b);
    byBlock.set(b, tag);
    byTag.set(tag, b);
  }
  assert.ok(byBlock.size > 3000);
  // One token more or less, or the order, gives another tag.
  assert.notDeepEqual(tagOf(t, toks(1, 2, 3, 4)), tagOf(t, toks(1, 2, 3)));
  assert.notDeepEqual(tagOf(t, toks(1, 2, 3, 4)), tagOf(t, toks(2, 1, 3, 4)));
  // Another process's seed gives other tags.
  assert.notDeepEqual(
    tagOf(new ChainTable(Uint32Array.of(1, 3)), toks(1, 2)),
    tagOf(t, toks(1, 2)),
  );
});

Deno.test("chain: the LoRA name and the cache salt key first blocks apart; empty is none", () => {
  const t = new ChainTable(Uint32Array.of(5, 6));
  const b = toks(7, 8, 9, 10);
  const keys = [
    rootOf(t, b),
    rootOf(t, b, "sql"),
    rootOf(t, b, "sql", "s1"),
    rootOf(t, b, undefined, "s1"),
    rootOf(t, b, "sq", "ls1"), // the same characters split otherwise
    rootOf(t, b, "x".repeat(5000)), // longer than the remembered names
  ];
  assert.equal(new Set(keys.map(String)).size, keys.length);
  assert.deepEqual(rootOf(t, b, "", ""), keys[0]);
  assert.deepEqual(rootOf(t, b, "sql"), keys[1]);
  assert.deepEqual(rootOf(t, b, "x".repeat(5000)), keys[5]);
  assert.deepEqual(rootOf(t, b, undefined, "s1"), keys[3]);
  // A root key is not the block's plain tag.
  assert.notDeepEqual(keys[0], tagOf(t, b));
});

/** An index and a chain table, with helpers to add a chain of blocks as an event would. */
function setup(pods = 8) {
  const ix = new BlockIndex(pods);
  const t = new ChainTable(Uint32Array.of(9, 9));
  /** Adds blocks (ids used as hashes) after `parent` (-1: a chain's start); returns records. */
  const store = (parent: number, ids: number[], pod = 0, tokens = ids) => {
    const recs: number[] = [];
    let after = parent;
    for (const id of ids) {
      ix.add(id, id * 7 + 1, pod, 0, after);
      recs.push(after = ix.rec);
    }
    let p = parent < 0 ? 0 : parent;
    const results = ids.map((_, k) => {
      t.tag(toks(tokens[k]), 0, 1);
      if (p === 0) t.rootKey();
      const r = ix.link(p, t.tagHi, t.tagLo, recs[k]);
      p = recs[k];
      return r;
    });
    return { recs, results };
  };
  /** Follows tokens from the chain's start; the records reached. */
  const walk = (tokens: number[]) => {
    const out: number[] = [];
    let p = 0;
    for (const tok of tokens) {
      t.tag(toks(tok), 0, 1);
      if (p === 0) t.rootKey();
      const r = ix.follow(p, t.tagHi, t.tagLo);
      if (r < 0) break;
      out.push(p = r);
    }
    return out;
  };
  return { ix, t, store, walk };
}

Deno.test("chain: an event's blocks lie one after another; a block stored later goes after its parent", () => {
  const { ix, store, walk } = setup();
  const a = store(-1, [1, 2, 3]);
  assert.deepEqual(a.results, [LINK_NEW, LINK_NEW, LINK_NEW]);
  assert.deepEqual(a.recs, [a.recs[0], a.recs[0] + 1, a.recs[0] + 2]);
  // Another chain starts 2 records later (one fewer than the first chain's blocks), leaving room
  // for the first to grow.
  const b = store(-1, [10, 11]);
  assert.equal(b.recs[0], a.recs[2] + 1 + 2);
  // The first chain's next block (decode) lands in that room, right after its parent.
  const c = store(a.recs[2], [4]);
  assert.equal(c.recs[0], a.recs[2] + 1);
  assert.deepEqual(walk([1, 2, 3, 4]), [...a.recs, c.recs[0]]);
  assert.deepEqual(walk([10, 11]), b.recs);
  // Stored again, nothing changes.
  assert.deepEqual(store(-1, [1, 2, 3]).results, [LINK_KNOWN, LINK_KNOWN, LINK_KNOWN]);
  // A prompt that parts after block 2: its block goes elsewhere, reached through a link.
  const links = ix.links;
  const d = store(a.recs[1], [20]);
  assert.notEqual(d.recs[0], a.recs[1] + 1);
  assert.equal(ix.links, links + 1);
  assert.deepEqual(walk([1, 2, 20]), [a.recs[0], a.recs[1], d.recs[0]]);
  assert.deepEqual(walk([1, 2, 3, 4]), [...a.recs, c.recs[0]]);
  // Unknown tokens stop the walk.
  assert.deepEqual(walk([1, 5]), [a.recs[0]]);
  assert.deepEqual(walk([2]), []);
});

Deno.test("chain: a lone first block leaves no free records after it; a run fills its room, then moves on", () => {
  const { store, walk } = setup();
  const a = store(-1, [1]);
  const b = store(-1, [2]);
  assert.equal(b.recs[0], a.recs[0] + 1, "short prompts that never continue waste no records");
  // After a new chain of 3 blocks, 2 free records; of 8 or more, SLACK.
  const c3 = store(-1, [3, 4, 5]);
  const d = store(-1, [6]);
  assert.equal(d.recs[0], c3.recs[2] + 1 + 2);
  const long = store(-1, [7, 8, 9, 10, 11, 12, 13, 14, 15]);
  const e = store(-1, [16]);
  assert.equal(e.recs[0], long.recs[8] + 1 + SLACK);
  // A chain continued block by block (decode), interleaved with another.
  const x = store(-1, [100, 101]);
  const y = store(-1, [200, 201]);
  let px = x.recs[1], py = y.recs[1];
  const xs = [100, 101], ys = [200, 201];
  for (let i = 0; i < 3 * SLACK; i++) {
    px = store(px, [102 + i]).recs[0];
    py = store(py, [202 + i]).recs[0];
    xs.push(102 + i);
    ys.push(202 + i);
  }
  assert.equal(walk(xs).length, xs.length);
  assert.equal(walk(ys).length, ys.length);
  assert.equal(walk(xs).at(-1), px);
});

Deno.test("chain: blocks reached two ways are ambiguous and never followed", () => {
  const { ix, t, store, walk } = setup();
  const a = store(-1, [1, 2]);
  // Another hash for the same tokens after the same parent (an engine with another seed).
  const b = store(a.recs[0], [3], 0, [2]);
  assert.deepEqual(b.results, [LINK_CONFLICT]);
  assert.deepEqual(walk([1, 2]), [a.recs[0]], "neither block 2 nor 3 is followed");
  // The same chain's first block under another hash: the root is ambiguous.
  const c = store(-1, [4], 0, [1]);
  assert.deepEqual(c.results, [LINK_CONFLICT]);
  assert.deepEqual(walk([1]), []);
  // A block given other tokens than before.
  const d = store(-1, [5, 6]);
  t.tag(toks(99), 0, 1);
  assert.equal(ix.link(d.recs[0], t.tagHi, t.tagLo, d.recs[1]), LINK_CONFLICT);
  assert.deepEqual(walk([5, 6]), [d.recs[0]]);
  // A block that lies after its parent, untagged (its event had no tokens), then another block
  // linked after the same parent with the tokens it gets: two blocks, one place.
  const g = store(-1, [30]);
  ix.add(31, 31 * 7 + 1, 0, 0, g.recs[0]);
  const x = ix.rec;
  assert.equal(x, g.recs[0] + 1);
  const y = store(g.recs[0], [32], 0, [33]); // placed elsewhere: the record after is taken
  assert.deepEqual(y.results, [LINK_NEW]);
  t.tag(toks(33), 0, 1);
  assert.equal(ix.link(g.recs[0], t.tagHi, t.tagLo, x), LINK_CONFLICT);
  assert.deepEqual(walk([30, 33]), [g.recs[0]]);
  // Found ambiguous once, counted once: linking it again says so apart.
  assert.equal(ix.link(g.recs[0], t.tagHi, t.tagLo, x), LINK_BLOCKED);
  assert.equal(ix.link(g.recs[0], t.tagHi, t.tagLo, y.recs[0]), LINK_BLOCKED);
  // A block in order after one parent, linked after another one too.
  const e = store(-1, [7, 8]);
  const f = store(-1, [9]);
  t.tag(toks(8), 0, 1);
  assert.equal(ix.link(f.recs[0], t.tagHi, t.tagLo, e.recs[1]), LINK_CONFLICT);
  assert.equal(ix.chunk(e.recs[1])[ix.at(e.recs[1])] & STOP, STOP);
  assert.deepEqual(walk([7, 8]), [e.recs[0]]);
});

Deno.test("chain: a block no pod holds is not followed; stored again elsewhere, it takes the link over", () => {
  const { ix, store, walk } = setup();
  const a = store(-1, [1, 2, 3]);
  const b = store(a.recs[0], [20, 21]); // a branch: reached through a link
  assert.equal(walk([1, 20, 21]).length, 3);
  ix.remove(20, 20 * 7 + 1, 0, null);
  assert.deepEqual(walk([1, 20, 21]), [a.recs[0]], "a dead block stops the walk");
  // Block 20 stored again (a new record): the link now leads to it, and its child follows it
  // through a link (the child's record is still after the old, dead one).
  const c = store(a.recs[0], [20, 21]);
  assert.notEqual(c.recs[0], b.recs[0]);
  assert.equal(c.recs[1], b.recs[1]);
  assert.deepEqual(c.results, [LINK_NEW, LINK_NEW]);
  assert.deepEqual(walk([1, 20, 21]), [a.recs[0], c.recs[0], b.recs[1]]);
  // In order too: block 2 dies and comes back.
  ix.remove(2, 15, 0, null);
  assert.deepEqual(walk([1, 2, 3]), [a.recs[0]]);
  const d = store(a.recs[0], [2, 3]);
  assert.deepEqual(walk([1, 2, 3]), [a.recs[0], d.recs[0], a.recs[2]]);
});

Deno.test("chain: a block stored again right after its parent takes over a link to its dead self", () => {
  const { ix, t, store, walk } = setup();
  const a = store(-1, [1, 2, 3]);
  // Block 2 evicted and stored again elsewhere; a route links block 3 after it.
  ix.remove(2, 15, 0, null);
  const p = store(a.recs[0], [2]).recs[0];
  assert.notEqual(p, a.recs[1]);
  t.tag(toks(3), 0, 1);
  assert.equal(ix.link(p, t.tagHi, t.tagLo, a.recs[2]), LINK_NEW);
  assert.deepEqual(walk([1, 2, 3]), [a.recs[0], p, a.recs[2]]);
  // Block 3 evicted (leaves go first) and stored again, now right after block 2's new record:
  // the link to its dead record is no second block.
  ix.remove(3, 22, 0, null);
  const y = store(p, [3]);
  assert.deepEqual(y.results, [LINK_NEW]);
  assert.equal(y.recs[0], p + 1);
  assert.deepEqual(walk([1, 2, 3]), [a.recs[0], p, y.recs[0]]);
});

Deno.test("chain: a one-block run at a chunk's start leaves free records after it too", () => {
  const { ix, store } = setup();
  // Fill chunk 0 with lone first blocks (no room after them), then continue one of them: the
  // record after it is taken, so its block starts a run at record 65,536.
  for (let id = 1; id < 65_536; id++) store(-1, [id]);
  const c = store(5, [70_000]);
  assert.equal(c.recs[0], 65_536);
  const d = store(-1, [70_001]);
  assert.equal(d.recs[0], 65_536 + 1 + SLACK);
  // Its next block lands right after it.
  assert.equal(store(c.recs[0], [70_002]).recs[0], 65_537);
  assert.equal(ix.chunk(65_537)[ix.at(65_537)] & CONT, CONT);
});

Deno.test("chain: findAfter finds the next block of a run by its hash alone, and nothing else", () => {
  const { ix, store } = setup();
  const a = store(-1, [1, 2, 3]);
  // (the helper's hashes are (id, id * 7 + 1))
  assert.equal(ix.findAfter(a.recs[0], 2, 15), a.recs[1]);
  assert.equal(ix.findAfter(a.recs[1], 3, 22), a.recs[2]);
  // Another hash, or the right one after another record, is not there.
  assert.equal(ix.findAfter(a.recs[0], 3, 22), -1);
  assert.equal(ix.findAfter(a.recs[0], 2, 16), -1);
  assert.equal(ix.findAfter(a.recs[1], 2, 15), -1);
  // Past the run: a free record (its hash words are 0: the hash 0 does not find it) and past the
  // chunk's end.
  assert.equal(ix.findAfter(a.recs[2], 4, 29), -1);
  assert.equal(ix.findAfter(a.recs[2], 0, 0), -1);
  assert.equal(ix.findAfter(65_535, 4, 29), -1);
  // All 64 bits: hashes equal to the next block's in either half are not it.
  for (const [hi, lo] of [[3 ^ (1 << 31), 22], [3, 22 ^ (1 << 31)], [3 ^ 1, 22]]) {
    ix.add(hi >>> 0, lo >>> 0, 1, 0, -1);
    assert.ok(ix.find(hi >>> 0, lo >>> 0) > 0);
    assert.equal(ix.findAfter(a.recs[1], hi >>> 0, lo >>> 0), -1);
  }
  assert.equal(ix.findAfter(a.recs[1], 3, 22), a.recs[2]);
  // A block no pod holds keeps its hash in its dead record: not found there, found where it is
  // stored again.
  ix.remove(2, 15, 0, null);
  assert.equal(ix.findAfter(a.recs[0], 2, 15), -1);
  ix.add(2, 15, 1, 0, -1);
  assert.notEqual(ix.rec, a.recs[1]);
  assert.equal(ix.find(2, 15), ix.rec);
  assert.equal(ix.findAfter(a.recs[0], 2, 15), -1);
  // A run over a chunk's end: the first record of the next chunk is no block's next.
  for (let id = 10; id < 65_600; id++) store(-1, [id]);
  let at = 0; // the block in record 65,536 (chunk 1's first), the one before it in 65,535
  for (let id = 10; id < 65_600 && at === 0; id++) if (ix.find(id, id * 7 + 1) === 65_536) at = id;
  assert.equal(ix.find(at - 1, (at - 1) * 7 + 1), 65_535);
  assert.equal(ix.findAfter(65_534, at - 1, (at - 1) * 7 + 1), 65_535);
  assert.equal(ix.findAfter(65_535, at, at * 7 + 1), -1);
});

Deno.test("chain: compaction keeps every live block, its pods and its chain, and frees the rest (seeded)", () => {
  for (let seed = 1; seed <= 5; seed++) {
    const rnd = new Prng(seed);
    const { ix, store, walk } = setup(40);
    // Prompts as chains of ids; some share prefixes.
    const prompts: number[][] = [];
    let next = 1;
    for (let i = 0; i < 300; i++) {
      const base = i > 0 && rnd.nextInt(3) === 0 ? prompts[rnd.nextInt(prompts.length)] : [];
      const keep = base.slice(0, rnd.nextInt(base.length + 1));
      prompts.push([...keep, ...Array.from({ length: 1 + rnd.nextInt(12) }, () => next++)]);
    }
    const held = new Map<number, Set<number>>(); // id -> pods
    for (let step = 0; step < 3000; step++) {
      const p = prompts[rnd.nextInt(prompts.length)];
      const pod = rnd.nextInt(40);
      if (rnd.nextInt(3) > 0) {
        // Stored from some block on, after its parent (when indexed).
        const from = rnd.nextInt(p.length);
        const parent = from === 0 ? -1 : ix.find(p[from - 1], p[from - 1] * 7 + 1);
        if (from === 0 || parent > 0) {
          store(parent, p.slice(from), pod);
          for (const id of p.slice(from)) held.set(id, (held.get(id) ?? new Set()).add(pod));
        }
      } else {
        for (const id of p.slice(rnd.nextInt(p.length))) {
          ix.remove(id, id * 7 + 1, pod, null);
          held.get(id)?.delete(pod);
          if (held.get(id)?.size === 0) held.delete(id);
        }
      }
      if (step % 500 === 499) {
        // What a walk reaches before and after compaction is the same (records renumbered).
        const before = prompts.map((q) => walk(q).length);
        const records = ix.records;
        ix.compact();
        assert.ok(ix.records <= records);
        assert.equal(ix.records, ix.size, "only live records are left");
        assert.deepEqual(prompts.map((q) => walk(q).length), before, `seed ${seed} step ${step}`);
        // Found by hash along the runs as the hash table finds them (records keep their hash).
        let along = 0;
        for (const q of prompts) {
          for (let k = 0; k + 1 < q.length; k++) {
            const r0 = ix.find(q[k], q[k] * 7 + 1), r1 = ix.find(q[k + 1], q[k + 1] * 7 + 1);
            if (r0 < 0) continue;
            const next = r1 === r0 + 1 && ((r0 + 1) & 0xffff) !== 0;
            assert.equal(ix.findAfter(r0, q[k + 1], q[k + 1] * 7 + 1), next ? r1 : -1);
            if (next) along++;
          }
        }
        assert.ok(along > 0);
      }
    }
    assert.equal(ix.size, held.size);
    const gpu = new Uint32Array(ix.words), off = new Uint32Array(ix.words);
    for (const [id, pods] of held) {
      const r = ix.find(id, id * 7 + 1);
      assert.ok(r > 0);
      ix.masks(r, gpu, off);
      for (let pod = 0; pod < 40; pod++) {
        assert.equal((gpu[pod >>> 5] >>> (pod & 31)) & 1, pods.has(pod) ? 1 : 0);
      }
    }
    // A walk never reaches a block no pod holds.
    for (const q of prompts) {
      for (const r of walk(q)) assert.ok((ix.gpuWord(r, 0) | ix.gpuWord(r, 1)) !== 0);
    }
    assert.equal(ix.compactions, 6);
  }
});

Deno.test("chain: maintain() recycles a chunk whose blocks all died, and its links go with it", () => {
  const { ix, store, walk } = setup();
  const n = 70_000; // lone first blocks, one record each: chunk 0 fills, then chunk 1
  for (let id = 1; id <= n; id++) store(-1, [id]);
  assert.equal(ix.records, n);
  assert.equal(ix.links, n);
  // (the records' memory: the hash table's segments depend on where this process's seed puts
  // the blocks)
  const bytes = ix.recordBytes;
  assert.equal(ix.maintain(), false);
  // The blocks of chunk 0 (records 1-65,535) die: the chunk is zeroed for reuse.
  for (let id = 1; id < 65_536; id++) ix.remove(id, id * 7 + 1, 0, null);
  assert.equal(ix.maintain(), true);
  assert.equal(ix.recycled, 1);
  assert.equal(ix.records, n - 65_535);
  assert.equal(ix.links, n - 65_535, "the dead blocks' links are gone");
  assert.deepEqual(walk([1]), []);
  assert.equal(walk([n]).length, 1);
  // New blocks fill chunk 1, then go to chunk 0 again: no memory is added.
  for (let id = n + 1; id <= n + 65_000; id++) store(-1, [id]);
  assert.equal(ix.recordBytes, bytes);
  assert.equal(walk([n + 65_000]).length, 1);
  assert.equal(walk([70_000]).length, 1);
  assert.equal(ix.compactions, 0);
});

Deno.test("chain: recycling a chunk deletes its links in place and keeps every other (random, crowded tables)", () => {
  for (const seed of [1, 2, 3, 4]) {
    const { ix, store, walk } = setup();
    const rnd = new Prng(seed);
    // Chains of 40-300 blocks (one link each: its first block's) fill chunk 0 and part of chunk
    // 1: a few hundred links, so the table is small and its runs of entries wrap past its end.
    let next = 1;
    const chains: { tokens: number[]; ids: number[]; recs: number[] }[] = [];
    while (ix.records < 65_536 + 3_000) {
      const ids = Array.from({ length: 40 + rnd.nextInt(261) }, () => next++);
      chains.push({ tokens: ids, ids, recs: store(-1, ids).recs });
    }
    // Blocks stored later after a block inside a chain: links from a parent to a record further
    // on (a chain's next block is right after its parent: these cannot be).
    const branches: { chain: number; at: number; id: number }[] = [];
    for (let k = 0; k < 150; k++) {
      const chain = rnd.nextInt(chains.length);
      const c = chains[chain];
      const at = rnd.nextInt(c.ids.length - 1);
      const id = next++;
      const r = store(c.recs[at], [id], 0, [1_000_000 + id]);
      assert.equal(r.results[0], LINK_NEW);
      branches.push({ chain, at, id });
    }
    // A chain's links: its first block's, and one where its records jump or start a chunk (of
    // 65,536 records: a chunk's first record is reached by a link).
    const links = (c: { recs: number[] }) =>
      1 + c.recs.filter((r, k) => k > 0 && (r !== c.recs[k - 1] + 1 || r % 65_536 === 0)).length;
    const sum = (cs: { recs: number[] }[]) => cs.reduce((n, c) => n + links(c), 0);
    assert.equal(ix.links, sum(chains) + branches.length);
    // Every chain with a block in chunk 0 leaves, with the branches after its blocks.
    const dead = (c: { recs: number[] }) => c.recs[0] < 65_536;
    for (const c of chains.filter(dead)) for (const id of c.ids) ix.remove(id, id * 7 + 1, 0, null);
    for (const b of branches) {
      if (dead(chains[b.chain])) ix.remove(b.id, b.id * 7 + 1, 0, null);
    }
    assert.equal(ix.maintain(), true);
    assert.equal(ix.recycled, 1, `seed ${seed}`);
    const live = chains.filter((c) => !dead(c));
    const liveBranches = branches.filter((b) => !dead(chains[b.chain]));
    assert.equal(ix.links, sum(live) + liveBranches.length, `seed ${seed}: links kept`);
    // New chains fill chunk 0 again, at the records the dead ones had: a link left to one of
    // those records would lead a walk of a dead chain, or of a dead branch, into them.
    const fresh: number[][] = [];
    while (ix.records < 2 * 65_536 - 100) {
      const ids = Array.from({ length: 40 + rnd.nextInt(261) }, () => next++);
      store(-1, ids);
      fresh.push(ids);
    }
    for (const c of live) assert.equal(walk(c.tokens).length, c.ids.length, `seed ${seed}`);
    for (const b of liveBranches) {
      const path = [...chains[b.chain].tokens.slice(0, b.at + 1), 1_000_000 + b.id];
      assert.equal(walk(path).length, b.at + 2, `seed ${seed}: branch`);
    }
    for (const c of chains.filter(dead)) assert.deepEqual(walk(c.tokens), [], `seed ${seed}`);
    for (const ids of fresh) assert.equal(walk(ids).length, ids.length, `seed ${seed}: fresh`);
  }
});

Deno.test("chain: a compaction that reaches a recycled chunk which gave its memory back keeps every chain", () => {
  const { ix, store, walk } = setup();
  // 10 chunks of chains of 1,000 blocks.
  let next = 1;
  const chains: { ids: number[]; recs: number[] }[] = [];
  while (ix.records < 10 * 65_536 - 1_000) {
    const ids = Array.from({ length: 1_000 }, () => next++);
    chains.push({ ids, recs: store(-1, ids).recs });
  }
  const chunkOf = (r: number) => r >>> 16;
  const kill = (c: { ids: number[] }) => {
    for (const id of c.ids) ix.remove(id, id * 7 + 1, 0, null);
  };
  // Chunks 1 and 2 empty and are recycled: the second spare gives its memory back.
  const inSpare = (c: { recs: number[] }) =>
    c.recs.some((r) => chunkOf(r) === 1 || chunkOf(r) === 2);
  chains.filter(inSpare).forEach(kill);
  assert.equal(ix.maintain(), true);
  assert.equal(ix.recycled, 2);
  assert.equal(ix.compactions, 0);
  // Two chains in three leave the other chunks: no chunk empties, and the third left is more
  // than two chunks' worth, so the compaction copies records into chunks 1 and 2 again.
  const others = chains.filter((c) => !inSpare(c));
  others.filter((_, i) => i % 3 !== 0).forEach(kill);
  const kept = others.filter((_, i) => i % 3 === 0);
  assert.ok(kept.length * 1_000 > 2 * 65_536);
  assert.equal(ix.maintain(), true);
  assert.equal(ix.compactions, 1);
  assert.equal(ix.records, ix.size);
  for (const c of kept) assert.equal(walk(c.ids).length, c.ids.length);
  for (const c of chains.filter(inSpare)) assert.deepEqual(walk(c.ids), []);
  // New chains go after the last record kept, into places the compaction left free.
  const fresh = Array.from({ length: 50 }, () => Array.from({ length: 1_000 }, () => next++));
  for (const ids of fresh) store(-1, ids);
  for (const ids of fresh) assert.equal(walk(ids).length, ids.length);
  for (const c of kept) assert.equal(walk(c.ids).length, c.ids.length);
});

Deno.test("chain: compaction after the first chunk was recycled as a spare that gave its memory back", () => {
  const ix = new BlockIndex(8);
  const n = 3 * 65_536 + 100; // lone blocks, one record each: chunks 0 to 3
  for (let id = 1; id <= n; id++) ix.add(id, id, 0, 0);
  const inChunk = (c: number) => {
    const ids: number[] = [];
    for (let id = 1; id <= n; id++) {
      if (ix.find(id, id) >>> 16 === c && ix.find(id, id) >= 0) ids.push(id);
    }
    return ids;
  };
  for (const id of inChunk(1)) ix.remove(id, id, 0, null);
  assert.equal(ix.maintain(), true); // chunk 1: the spare kept
  const gone = inChunk(0);
  for (const id of gone) ix.remove(id, id, 0, null);
  assert.equal(ix.maintain(), true); // chunk 0: a second spare, its memory given back
  assert.equal(ix.recycled, 2);
  ix.compact(); // copies records into chunk 0 again
  assert.equal(ix.records, ix.size);
  for (const id of gone) assert.equal(ix.find(id, id), -1);
  let found = 0;
  for (let id = 1; id <= n; id++) if (ix.find(id, id) >= 0) found++;
  assert.equal(found, ix.size);
});

/**
 * Puts a lone block P at chunk 1's start (record 65,536), a block X right after it linked with
 * tokens (5, 6), and one dead record before P: compaction then moves P to chunk 0's end and X to
 * chunk 1's start, where a route reaches X only by a link.
 */
function cutAfterCompaction() {
  const ix = new BlockIndex(8);
  for (let id = 1; id <= 65_535; id++) ix.add(id, id, 1, 0);
  ix.add(100_000, 1, 1, 0);
  const p = ix.rec;
  assert.equal(p, 65_536);
  ix.add(100_001, 1, 0, 0, p);
  const x = ix.rec;
  assert.equal(x, p + 1);
  assert.equal(ix.link(p, 5, 6, x), LINK_NEW);
  const compact = () => {
    ix.remove(10, 10, 1, null);
    ix.compact();
    return { p: ix.find(100_000, 1), x: ix.find(100_001, 1), y: ix.find(100_002, 1) };
  };
  return { ix, p, x, compact };
}

Deno.test("chain: compaction links a block a chunk's start cuts from its parent", () => {
  const { ix, compact } = cutAfterCompaction();
  const links = ix.links;
  const after = compact();
  assert.equal(after.x, 65_536);
  assert.equal(ix.follow(after.p, 5, 6), after.x);
  assert.equal(ix.links, links + 1);
});

Deno.test("chain: compaction links no cut block that is ambiguous or leaving, and keeps a link there", () => {
  for (const why of ["ambiguous", "draining"]) {
    for (const other of [false, true]) {
      const what = `${why}${other ? ", another block linked after its parent" : ""}`;
      const { ix, p, x, compact } = cutAfterCompaction();
      if (why === "ambiguous") assert.equal(ix.link(p, 7, 8, x), LINK_CONFLICT); // X gets STOP
      else ix.beginDrop(0); // only X's pod leaves: X is no block any more
      // Another block after P with X's tokens, elsewhere: linked, and followed.
      if (other) {
        ix.add(100_002, 1, 1, 0);
        assert.equal(ix.link(p, 5, 6, ix.rec), LINK_NEW, what);
      }
      const links = ix.links;
      const after = compact();
      assert.equal(ix.follow(after.p, 5, 6), other ? after.y : -1, what);
      assert.equal(ix.links, links, what);
    }
  }
});

Deno.test("chain: compaction makes no link for a cut run stored without tokens", () => {
  const ix = new BlockIndex(8);
  for (let id = 1; id <= 65_535; id++) ix.add(id, id, 1, 0);
  let after = -1;
  for (let id = 100_000; id < 100_010; id++) {
    ix.add(id, 1, 1, 0, after);
    after = ix.rec;
  }
  ix.remove(10, 10, 1, null);
  ix.compact();
  assert.equal(ix.links, 0);
  for (let id = 100_000; id < 100_010; id++) assert.ok(ix.find(id, 1) > 0);
});

Deno.test("chain: maintain() compacts when dead and free records outnumber the live past 4 chunks", () => {
  const { ix, store, walk } = setup();
  const n = 5 * 65_536;
  let parent = -1;
  for (let id = 1; id <= n; id++) parent = store(parent, [id]).recs[0];
  // Every 1,000th block lives on: no chunk empties.
  for (let id = 1; id <= n; id++) if (id % 1000 !== 0) ix.remove(id, id * 7 + 1, 0, null);
  assert.equal(ix.maintain(), true);
  assert.equal(ix.recycled, 0);
  assert.equal(ix.compactions, 1);
  assert.equal(ix.records, ix.size);
  assert.equal(ix.size, Math.floor(n / 1000));
  // The survivors lost their parents: nothing leads to them, and nothing is wrongly followed.
  assert.deepEqual(walk([1000]), []);
  // A chain stored after compaction is followed, in order.
  const a = store(-1, [n + 1, n + 2, n + 3]);
  assert.deepEqual(walk([n + 1, n + 2, n + 3]), a.recs);
  assert.equal(ix.chunk(a.recs[2])[ix.at(a.recs[2])] & CONT, CONT);
});
