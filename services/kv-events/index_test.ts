import assert from "node:assert/strict";
import {
  BlockIndex,
  CONT,
  LINK_NEW,
  mixedHash,
  SegmentFullError,
  type Tier,
  tierOf,
} from "./index.ts";

/** A model of the index: key -> pod -> set of tiers. */
type Model = Map<string, Map<number, Set<Tier>>>;

function check(index: BlockIndex, model: Model, pods: number): void {
  assert.equal(index.size, model.size);
  const gpu = new Uint32Array(index.words), off = new Uint32Array(index.words);
  for (const [key, holders] of model) {
    const [hi, lo] = key.split(":").map(Number);
    const s = index.find(hi, lo);
    assert.ok(s >= 0, `block ${key} missing`);
    index.masks(s, gpu, off);
    for (let p = 0; p < pods; p++) {
      const tiers = holders.get(p);
      const bit = 1 << (p & 31);
      assert.equal((gpu[p >>> 5] & bit) !== 0, tiers?.has(0) ?? false, `${key} pod ${p} gpu`);
      assert.equal((off[p >>> 5] & bit) !== 0, tiers?.has(1) ?? false, `${key} pod ${p} off`);
    }
  }
}

/** A seeded generator of integers below `n`. */
function lcg(seed: number): (n: number) => number {
  return (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return Math.floor((seed / 2 ** 32) * n);
  };
}

/** Adds block (hi, lo) for `pod` in `tier` to the index and the model; checks "newly held". */
function addBoth(index: BlockIndex, model: Model, hi: number, lo: number, pod: number, tier: Tier) {
  const k = `${hi}:${lo}`;
  const holders = model.get(k) ?? new Map<number, Set<Tier>>();
  const had = holders.has(pod);
  const tiers = holders.get(pod) ?? new Set<Tier>();
  tiers.add(tier);
  holders.set(pod, tiers);
  model.set(k, holders);
  assert.equal(index.add(hi, lo, pod, tier), !had);
}

for (const pods of [32, 70]) {
  Deno.test(`block index: random adds, removes and pod drops agree with a Map (${pods} pods)`, () => {
    const rnd = lcg(12345 + pods);
    const index = new BlockIndex(pods);
    const model: Model = new Map();
    // Few distinct keys, many collisions on purpose: hi varies, lo repeats.
    const key = () => [rnd(50), rnd(4000)] as const;
    for (let step = 0; step < 60000; step++) {
      const op = rnd(100);
      const pod = rnd(pods);
      if (op < 60) {
        const [hi, lo] = key();
        addBoth(index, model, hi, lo, pod, rnd(2) as Tier);
      } else if (op < 97) {
        const [hi, lo] = key();
        const tier = [0, 1, null][rnd(3)] as Tier | null;
        const k = `${hi}:${lo}`;
        const holders = model.get(k);
        const tiers = holders?.get(pod);
        const before = tiers !== undefined;
        if (tiers) {
          if (tier !== 1) tiers.delete(0);
          if (tier !== 0) tiers.delete(1);
          if (tiers.size === 0) holders!.delete(pod);
          if (holders!.size === 0) model.delete(k);
        }
        assert.equal(index.remove(hi, lo, pod, tier), before && !model.get(k)?.has(pod));
      } else {
        let held = 0;
        for (const [k, holders] of model) {
          if (holders.delete(pod)) held++;
          if (holders.size === 0) model.delete(k);
        }
        assert.equal(index.dropPod(pod), held);
      }
      if (step % 5000 === 0) check(index, model, pods);
    }
    check(index, model, pods);
    // Empty it: the table shrinks back.
    for (let p = 0; p < pods; p++) index.dropPod(p);
    assert.equal(index.size, 0);
    index.compact();
    assert.equal(index.records, 0);
    // Back to the smallest tables: 512 segments of 8 slots, one chunk of 1,024 records, 16 links.
    const least = 512 * 8 * 8 + 1024 * index.stride * 4 + 16 * 16;
    assert.ok(index.bytes <= least, `${index.bytes} bytes left`);
  });
}

for (const pods of [32, 70]) {
  Deno.test(`block index: pods dropped a step at a time agree with a Map (${pods} pods)`, () => {
    const rnd = lcg(777 + pods);
    const index = new BlockIndex(pods);
    const model: Model = new Map();
    const draining = new Set<number>(); // slots no pod has until their drains end
    const ever = new Set<string>();
    const key = () => [rnd(60), rnd(3000)] as const;
    const gpu = new Uint32Array(index.words), off = new Uint32Array(index.words);
    // Blocks the model has read as it says; blocks it has not (only draining pods hold them, or
    // none) are found by no lookup.
    const agree = () => {
      assert.ok(index.size >= model.size);
      if (draining.size === 0) assert.equal(index.size, model.size);
      for (const k of ever) {
        const [hi, lo] = k.split(":").map(Number);
        const holders = model.get(k);
        const r = index.find(hi, lo);
        if (holders === undefined) {
          assert.equal(r, -1, `block ${k} held by none is found`);
          continue;
        }
        assert.ok(r >= 0, `block ${k} missing`);
        index.masks(r, gpu, off);
        for (let p = 0; p < pods; p++) {
          if (draining.has(p)) continue;
          const bit = 1 << (p & 31);
          const tiers: Set<Tier> | undefined = holders.get(p);
          assert.equal((gpu[p >>> 5] & bit) !== 0, tiers?.has(0) ?? false, `${k} pod ${p}`);
          assert.equal((off[p >>> 5] & bit) !== 0, tiers?.has(1) ?? false, `${k} pod ${p}`);
        }
      }
    };
    // Fills before the first drop, then adds, removes, drops and steps at random.
    for (let step = 0; step < 80000; step++) {
      const op = step < 20000 ? rnd(60) : rnd(100);
      let pod = rnd(pods);
      if (draining.has(pod) && op < 90) continue; // a draining slot is no pod's
      if (op < 60) {
        const [hi, lo] = key();
        ever.add(`${hi}:${lo}`);
        addBoth(index, model, hi, lo, pod, rnd(2) as Tier);
      } else if (op < 90) {
        const [hi, lo] = key();
        const k = `${hi}:${lo}`;
        const holders = model.get(k);
        const had = holders?.delete(pod) ?? false;
        if (had && holders!.size === 0) model.delete(k);
        assert.equal(index.remove(hi, lo, pod, null), had);
      } else if (op < 92) {
        if (draining.size >= 3) continue;
        while (draining.has(pod)) pod = (pod + 1) % pods;
        for (const [k, holders] of model) {
          if (holders.delete(pod) && holders.size === 0) model.delete(k);
        }
        index.beginDrop(pod);
        draining.add(pod);
        assert.throws(() => index.beginDrop(pod), RangeError);
      } else if (op < 93) {
        index.maintain();
      } else if (op < 94 && rnd(20) === 0) {
        index.compact(); // renumbers the records under the sweep
      } else {
        for (const ended of index.drainStep(1 + rnd(5000))) {
          assert.ok(draining.delete(ended), `pod ${ended} was not draining`);
        }
      }
      assert.equal(index.draining, draining.size);
      if (step % 4000 === 0) agree();
    }
    while (index.draining > 0) {
      for (const ended of index.drainStep(1000)) draining.delete(ended);
    }
    assert.equal(draining.size, 0);
    agree();
    check(index, model, pods);
    assert.throws(() => index.beginDrop(pods + 40), RangeError);
    assert.throws(() => index.beginDrop(-1), RangeError);
  });
}

Deno.test("block index: a drain step visits at most its budget, and a drop with none to visit ends", () => {
  const index = new BlockIndex(32);
  for (let i = 1; i <= 3000; i++) index.add(i, i * 7, i % 2, i % 3 === 0 ? 1 : 0);
  const records = index.records; // runs leave free records after them: more than 3,000
  index.beginDrop(0);
  // Blocks only a draining pod holds read as held by none at once; they leave as they are visited.
  for (let i = 2; i <= 3000; i += 2) assert.equal(index.find(i, i * 7), -1);
  let steps = 1, size = index.size;
  while (index.drainStep(1000).length === 0) {
    steps++;
    assert.ok(index.size <= size && index.size >= 1500);
    size = index.size;
  }
  // Every record visited once, 1,000 a step.
  assert.ok(
    steps >= Math.ceil(records / 1000) && steps <= Math.ceil(records / 1000) + 1,
    `${steps}`,
  );
  assert.equal(index.size, 1500);
  for (let i = 1; i <= 3000; i++) {
    assert.equal(index.find(i, i * 7) >= 0, i % 2 === 1, `block ${i}`);
  }
  assert.deepEqual(index.drainStep(1000), []); // none left
  // Two drains begun at different points of the sweep: each ends once it has seen every record.
  index.beginDrop(1);
  index.drainStep(700);
  index.add(1, 7, 0, 0); // pod 0 again (its slot was freed)
  index.beginDrop(0);
  const ends: number[][] = [];
  while (index.draining > 0) ends.push([...index.drainStep(500)]);
  assert.deepEqual(ends.filter((e) => e.length > 0), [[1], [0]]);
  assert.equal(index.size, 0);
  const empty = new BlockIndex(32);
  empty.beginDrop(5);
  assert.deepEqual(empty.drainStep(1), [5]);
});

Deno.test("block index: a compaction during a drain moves the sweep with the records", () => {
  const index = new BlockIndex(32);
  const n = 400_000; // past 4 chunks of records
  for (let i = 1; i <= n; i++) index.add(i, i, i % 100 === 0 ? 1 : 0, 0);
  index.beginDrop(0);
  let steps = 0;
  while (index.drainStep(20_000).length === 0) {
    // Dead records outnumber the live past 4 chunks' worth long before the end.
    if (steps++ === 14) {
      index.maintain();
      assert.equal(index.compactions, 1);
    }
  }
  assert.equal(index.size, n / 100);
  for (let i = 1; i <= n; i++) assert.equal(index.find(i, i) >= 0, i % 100 === 0, `block ${i}`);
  // No record of pod 0 left: its slot is free for another pod, whose blocks alone it reads.
  index.add(1, 1, 0, 0);
  assert.equal(index.dropPod(0), 1);
});

Deno.test("block index: a block its other pods left before the sweep reached it dies once", () => {
  const index = new BlockIndex(32);
  for (let i = 1; i < 65_536; i++) index.add(i, 1, 1, 0); // records 1-65,535: all of chunk 0
  index.add(1 << 20, 1, 1, 0); // chunk 1 is the one new runs fill now
  index.add(5, 1, 0, 0);
  index.beginDrop(0);
  assert.equal(index.remove(5, 1, 1, null), true); // held by the draining pod alone: dead now
  assert.equal(index.find(5, 1), -1);
  while (index.drainStep(4096).length === 0); // passes the dead record by
  // Every block of chunk 0 but one leaves: the chunk is not recycled while that one lives.
  for (let i = 1; i < 65_536; i++) if (i !== 5 && i !== 7) index.remove(i, 1, 1, null);
  index.maintain();
  const r = index.find(7, 1);
  assert.ok(r > 0);
  assert.equal(index.gpuWord(r, 0), 1 << 1);
  assert.equal(index.size, 2);
});

Deno.test("block index: a block only draining pods hold right after a parent is no block there", () => {
  for (const stepped of [false, true]) {
    const ix = new BlockIndex(8);
    ix.add(1, 1, 0, 0);
    const x = ix.rec;
    ix.add(2, 2, 0, 0, x); // y, right after x, tokens (5, 6)
    const y = ix.rec;
    assert.equal(ix.link(0, 9, 9, x), LINK_NEW);
    assert.equal(ix.link(x, 5, 6, y), LINK_NEW);
    ix.add(1, 1, 1, 0); // pod 1 holds x too
    if (stepped) ix.beginDrop(0);
    else ix.dropPod(0);
    assert.equal(ix.follow(x, 5, 6), -1, `${stepped}: y followed`);
    // Pod 1 stores the same tokens after x under another hash: a new block, not a conflict.
    ix.add(3, 3, 1, 0, x);
    const y2 = ix.rec;
    assert.equal(ix.link(x, 5, 6, y2), LINK_NEW, `${stepped}`);
    while (ix.draining > 0) ix.drainStep(1000);
    assert.equal(ix.follow(x, 5, 6), y2, `${stepped}`);
  }
});

Deno.test("block index: chunks a drain empties are recycled together once the sweep comes round", () => {
  const index = new BlockIndex(32);
  for (let i = 1; i < 5 * 65_536; i++) index.add(i, 1, 0, 0); // chunks 0-4: pod 0's
  // Chunks 5-10, pod 1's: more live records than dead, so no compaction comes first.
  for (let i = 0; i < 6 * 65_536; i++) index.add(i, 2, 1, 0);
  index.beginDrop(0);
  let steps = 0;
  while (index.drainStep(65_536).length === 0) {
    index.maintain();
    assert.equal(index.recycled, 0, `recycled before the sweep came round (step ${steps})`);
    steps++;
  }
  assert.ok(steps >= 4);
  index.maintain();
  assert.equal(index.recycled, 5); // chunks 0-4 at once
  assert.equal(index.compactions, 0);
  assert.equal(index.size, 6 * 65_536);
});

Deno.test("block index: full-range u32 halves, growth, and the tier of a medium", () => {
  const index = new BlockIndex(32);
  const n = 100_000;
  for (let i = 0; i < n; i++) index.add(0xffffffff - i, (i * 2654435761) >>> 0, i % 32, 0);
  assert.equal(index.size, n);
  for (let i = 0; i < n; i++) assert.ok(index.find(0xffffffff - i, (i * 2654435761) >>> 0) >= 0);
  assert.equal(index.find(0, 0), -1);
  // Records of 24 bytes (two chunks, 3/4 used here: 31.5 B a block) and 8-byte slots (segments
  // at least 3/8 full: at most 21.4 B a block).
  assert.ok(index.bytes / n <= 52.9, `${index.bytes / n} bytes per block`);
  assert.equal(tierOf(null), 0);
  assert.equal(tierOf("gpu"), 0);
  assert.equal(tierOf("CPU"), 1);
  assert.throws(() => new BlockIndex(0), RangeError);
});

Deno.test("block index: a segment at its largest size refuses a new block and changes nothing", () => {
  const index = new BlockIndex(32, 64); // segments of at most 64 slots: 48 blocks
  const added: [number, number][] = [];
  let x = 7, full: [number, number] | null = null;
  for (let i = 0; i < 100_000 && full === null; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    const hi = x >>> 0, lo = (Math.imul(x, 0x9e3779b1) ^ i) >>> 0;
    const size = index.size;
    try {
      index.add(hi, lo, i % 31, 0); // pods 0-30: pod 31 comes later
      added.push([hi, lo]);
    } catch (e) {
      assert.ok(e instanceof SegmentFullError, String(e));
      assert.equal(index.size, size);
      assert.equal(index.find(hi, lo), -1);
      full = [hi, lo];
    }
  }
  assert.ok(full !== null, "no segment filled up");
  // Every block added before is still there, and gains pods (those in the full segment too).
  for (const [hi, lo] of added) {
    assert.ok(index.find(hi, lo) >= 0);
    index.add(hi, lo, 31, 1);
  }
  assert.throws(() => index.add(full![0], full![1], 3, 0), SegmentFullError);
  // Dropping a pod from a full segment whose blocks other pods still hold frees no slot: the
  // segment is compacted at its size, not grown past it, and stays full.
  assert.equal(index.dropPod(31), added.length);
  assert.equal(index.size, added.length);
  for (const [hi, lo] of added) {
    const s = index.find(hi, lo);
    assert.ok(s >= 0);
    assert.equal((index.gpuWord(s, 0) | index.offWord(s, 0)) >>> 31, 0, "pod 31 left");
  }
  assert.throws(() => index.add(full![0], full![1], 3, 0), SegmentFullError);
});

Deno.test("block index: hashes made to mix alike under the old unseeded mix spread over segments", () => {
  // The mix was a bijection of lo ^ imul(hi, 0x85ebca6b): these 20,000 hashes all mixed to one
  // value, one segment, one run of slots. Under this process's seed they spread (a segment of at
  // most 4,096 slots takes ~3,000 blocks: one segment would have refused most of them).
  const index = new BlockIndex(4, 4096);
  const v = 0x12345678, n = 20_000;
  for (let i = 0; i < n; i++) {
    const hi = (i * 2654435761) >>> 0;
    index.add(hi, (v ^ Math.imul(hi, 0x85ebca6b)) >>> 0, 0, 0);
  }
  assert.equal(index.size, n);
  for (let i = 0; i < n; i += 97) {
    const hi = (i * 2654435761) >>> 0;
    assert.ok(index.find(hi, (v ^ Math.imul(hi, 0x85ebca6b)) >>> 0) > 0);
  }
});

Deno.test("block index: two blocks whose mixed hashes are equal are told apart by the hash in their records", () => {
  // A slot holds the mixed hash (32 bits) and the record; the record holds the 64-bit hash. Find
  // two blocks that mix alike under this process's seed (a birthday search).
  let x = 99;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  const seen = new Map<number, [number, number]>();
  let a: [number, number] | null = null, b: [number, number] | null = null;
  for (let i = 0; i < 2_000_000 && a === null; i++) {
    const h: [number, number] = [next(), next()];
    const m = mixedHash(h[0], h[1]);
    const other = seen.get(m);
    if (other !== undefined && (other[0] !== h[0] || other[1] !== h[1])) [a, b] = [other, h];
    else seen.set(m, h);
  }
  assert.ok(a !== null && b !== null, "no two hashes mixed alike");
  const index = new BlockIndex(4);
  index.add(a[0], a[1], 0, 0);
  index.add(b[0], b[1], 1, 1);
  const ra = index.find(a[0], a[1]), rb = index.find(b[0], b[1]);
  assert.ok(ra > 0 && rb > 0 && ra !== rb);
  assert.deepEqual([index.gpuWord(ra, 0), index.offWord(ra, 0)], [1, 0]);
  assert.deepEqual([index.gpuWord(rb, 0), index.offWord(rb, 0)], [0, 2]);
  // Removing one leaves the other where the probe finds it, whichever came first.
  assert.equal(index.remove(a[0], a[1], 0, null), true);
  assert.equal(index.find(a[0], a[1]), -1);
  assert.equal(index.find(b[0], b[1]), rb);
  assert.equal(index.remove(a[0], a[1], 0, null), false);
  index.add(a[0], a[1], 2, 0);
  assert.notEqual(index.find(a[0], a[1]), rb);
  assert.equal(index.remove(b[0], b[1], 1, null), true);
  assert.equal(index.find(b[0], b[1]), -1);
  assert.equal(index.gpuWord(index.find(a[0], a[1]), 0), 4);
});

Deno.test("block index: each process draws its own placement seed", async () => {
  // The same hash mixes differently in two processes (equal once in 2^32 by chance).
  const url = new URL("./index.ts", import.meta.url).href;
  const mixed = async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", `import { mixedHash } from "${url}"; console.log(mixedHash(1, 2));`],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(out.success);
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  const [a, b] = [await mixed(), await mixed()];
  assert.ok(Number.isInteger(a) && Number.isInteger(b));
  assert.notEqual(a, b);
  assert.notEqual(a, mixedHash(1, 2));
});

Deno.test("block index: a run's refused blocks are -1 and the next new block starts a run of its own", () => {
  // Segments of at most 16 slots (12 blocks); hashes made to land in chosen segments.
  const index = new BlockIndex(4, 16);
  const inSegment = (seg: number, n: number, from: number): number[] => {
    const out: number[] = [];
    for (let lo = from; out.length < n; lo++) if (mixedHash(7, lo) >>> 23 === seg) out.push(lo);
    return out;
  };
  const full = inSegment(5, 13, 1); // 12 fill segment 5, the 13th finds it full
  for (const lo of full.slice(0, 12)) index.add(7, lo, 0, 0);
  assert.throws(() => index.add(7, full[12], 0, 0), SegmentFullError);
  const [a, b] = inSegment(9, 2, 1), [c] = inSegment(11, 1, 1);
  const hs = Uint32Array.of(7, a, 7, full[12], 7, c, 7, full[0]);
  const recs = new Int32Array(4);
  index.addRun(hs, 0, 4, 1, 0, -1, 1000, recs);
  assert.deepEqual(
    [index.runStored, index.runRefused, index.runNewlyHeld],
    [3, 1, 3],
    "a, c and the held block stored; the full segment's new block refused",
  );
  assert.equal(recs[1], -1);
  assert.equal(recs[0], index.find(7, a));
  assert.equal(recs[2], index.find(7, c));
  assert.equal(recs[3], index.find(7, full[0]));
  // c follows a refused block: it is not laid out as a's next block (no CONT flag: "my parent is
  // the record before me").
  const cont = (rec: number) => (index.chunk(rec)[index.at(rec)] & CONT) !== 0;
  assert.equal(cont(recs[2]), false);
  // Blocks the pod holds already are stored, not newly held.
  index.addRun(hs, 0, 1, 1, 0, -1, 1000, recs);
  assert.deepEqual([index.runStored, index.runRefused, index.runNewlyHeld], [1, 0, 0]);
  // No room: a new block is refused (-1), a known one still gains the pod.
  const known = Uint32Array.of(7, b, 7, a);
  index.addRun(known, 0, 2, 2, 0, -1, 0, recs);
  assert.deepEqual([...recs.subarray(0, 2)], [-1, index.find(7, a)]);
  assert.deepEqual([index.runStored, index.runRefused, index.runNewlyHeld], [1, 1, 1]);
  assert.equal(index.find(7, b), -1);
  // A run: each block right after the one before it (the first goes elsewhere: the record after
  // its parent, a's, is c's).
  const run = inSegment(13, 3, 1).flatMap((lo) => [7, lo]);
  index.addRun(Uint32Array.from(run), 0, 3, 3, 0, recs[1], 1000, recs);
  assert.deepEqual([recs[1] - recs[0], recs[2] - recs[1]], [1, 1]);
  assert.deepEqual([cont(recs[0]), cont(recs[1]), cont(recs[2])], [false, true, true]);
  // removeRun: how many the pod held and no longer holds.
  assert.equal(index.removeRun(hs, 0, 4, 1, null), 3);
  assert.equal(index.removeRun(hs, 0, 4, 1, null), 0);
});
