/**
 * The fast path against the reference decoder: on every input, both refuse, or both give the same
 * batch (ts, rank, rejected events) and leave the same index behind.
 */
import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { decodeEventBatch, EventDecodeError, type KvEventBatch, learnable } from "./events.ts";
import { fastReads, ParsedBatch, readEventBatch } from "./fast_events.ts";
import { encodeMsgpack, type MsgpackValue } from "./msgpack.ts";
import { CacheMap } from "./store.ts";
import { hashKey } from "./events.ts";
import { ChainTable, ROOT_HI, ROOT_LO } from "./chain.ts";
import { BlockHasher } from "./block_hash.ts";

const fixtures: { cases: Record<string, string> } = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/msgpack-python.json", import.meta.url)),
);
const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));
const parsed = new ParsedBatch();

function compare(payload: Uint8Array, what: string): "refused" | "accepted" {
  let ref: KvEventBatch | null = null;
  try {
    ref = decodeEventBatch(payload);
  } catch (e) {
    if (!(e instanceof EventDecodeError)) throw e;
  }
  let fastOk = true;
  try {
    readEventBatch(payload, parsed);
  } catch (e) {
    if (!(e instanceof EventDecodeError)) throw e;
    fastOk = false;
  }
  assert.equal(fastOk, ref !== null, `${what}: refused by one path only`);
  if (ref === null) return "refused";
  assert.ok(Object.is(parsed.ts, ref.ts), `${what}: ts`);
  assert.equal(parsed.dataParallelRank, ref.dataParallelRank, `${what}: rank`);
  assert.equal(parsed.rejected.length, ref.rejected.length, `${what}: rejected`);
  assert.equal(parsed.events, ref.events.length, `${what}: events`);
  // Learnable the same way, under the same LoRA.
  ref.events.forEach((e, i) => {
    const want = e.type === "BlockStored" && learnable(e);
    assert.equal(parsed.learnable[i], want ? 1 : 0, `${what}: event ${i} learnable`);
    if (!want) return;
    assert.equal(parsed.loraNames[i], e.loraName ?? null, `${what}: event ${i} LoRA`);
    // The same parent and block size, and token ids (the chain's tags are made of them).
    const parent: [number, number] = [ROOT_HI, ROOT_LO];
    if (e.type === "BlockStored" && e.parentBlockHash !== null) hashKey(e.parentBlockHash, parent);
    assert.deepEqual([parsed.parents[i * 2], parsed.parents[i * 2 + 1]], parent, `${what}: parent`);
    assert.equal(parsed.blockSizes[i], e.type === "BlockStored" ? e.blockSize >>> 0 : -1);
    const from = parsed.tokenStarts[i];
    assert.deepEqual(
      Array.from(parsed.tokens.subarray(from, from + parsed.tokenCounts[i])),
      e.tokenIds,
      `${what}: event ${i} tokens`,
    );
  });
  // The same index afterwards, with a block stored beforehand so removals have work to do.
  // With a hasher, as the service has: chains' first blocks are hashed on arrival.
  const chain = () => ({
    table: new ChainTable(Uint32Array.of(5, 6)),
    blockSize: 2,
    hasher: new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 2 }),
  });
  const a = new CacheMap({ maxPods: 4, chain: chain() });
  const b = new CacheMap({ maxPods: 4, chain: chain() });
  const k: [number, number] = [0, 0];
  const probes: [number, number][] = [];
  for (const e of ref.events) {
    if (e.type === "AllBlocksCleared") continue;
    for (const h of e.blockHashes) {
      hashKey(h, k);
      probes.push([k[0], k[1]]);
    }
  }
  for (const m of [a, b]) {
    m.apply("p", "m", [{
      type: "BlockStored",
      blockHashes: probes.slice(0, 3).map(([hi, lo]) => (BigInt(hi) << 32n) | BigInt(lo)),
      parentBlockHash: null,
      tokenIds: [],
      blockSize: 1,
      loraId: null,
      medium: "CPU",
    }]);
  }
  assert.deepEqual(b.applyParsed("p", "m", parsed), a.apply("p", "m", ref.events), what);
  assert.equal(b.pod("p")!.blocks, a.pod("p")!.blocks, `${what}: pod blocks`);
  assert.deepEqual(b.totals(), a.totals(), `${what}: totals`);
  assert.deepEqual(b.chain!.stats(), a.chain!.stats(), `${what}: chain links learned`);
  const ia = a.index("m"), ib = b.index("m");
  if (ia && ib) {
    const ga = new Uint32Array(1), oa = new Uint32Array(1), gb = new Uint32Array(1);
    const ob = new Uint32Array(1);
    for (const [hi, lo] of probes) {
      const sa: number = ia.find(hi, lo);
      const sb: number = ib.find(hi, lo);
      assert.equal(sa >= 0, sb >= 0, `${what}: block ${hi}:${lo}`);
      if (sa < 0) continue;
      ia.masks(sa, ga, oa);
      ib.masks(sb, gb, ob);
      assert.deepEqual([gb[0], ob[0]], [ga[0], oa[0]], `${what}: masks of ${hi}:${lo}`);
    }
  }
  return "accepted";
}

Deno.test("fast events: the Python-encoded fixtures read as the reference decoder reads them", () => {
  for (const [name, h] of Object.entries(fixtures.cases)) compare(hex(h), name);
});

/** One value of each msgpack kind and length class (str8/16, bin8/16, map16, array16, ints). */
function oddValues(): MsgpackValue[] {
  const map = new Map<MsgpackValue, MsgpackValue>();
  for (let i = 0; i < 17; i++) map.set(`k${i}`, i * 1000);
  return [
    "a".repeat(40),
    "b".repeat(300),
    new Uint8Array(20),
    new Uint8Array(300),
    -5,
    -200,
    -40_000,
    -3_000_000_000,
    2n ** 63n,
    -(2n ** 62n),
    1.25,
    true,
    false,
    null,
    map,
    Array.from({ length: 20 }, (_, i) => i * 9000),
    [[1, [2, [3, { x: [4] }]]]],
  ];
}

Deno.test("fast events: every layout, odd types and values agree with the reference", () => {
  const big = 18446744073709551615n;
  const cases: MsgpackValue[] = [
    [1.5, [["BlockStored", [1, 2, big, -1, -(2n ** 63n)], null, [1, 2], 16, null, "GPU"]]],
    [1, [["BlockStored", [1], 7, [1.0, 2], 16.0, 3, "cpu"]], 2],
    [1, [["BlockStored", [1], null, [1], 16, null, "gPu"], ["BlockRemoved", [1], "GPU"]]],
    [1, [["BlockStored", [new Uint8Array(32).fill(9), new Uint8Array(3)], null, [], 1]]],
    [1, [["BlockStored", [new Uint8Array(0)], null, [], 1]]],
    [1, [["BlockStored", [new Uint8Array(65)], null, [], 1]]],
    [1, [["BlockStored", [1.5], null, [], 1]]],
    [1, [["BlockStored", [1e20], null, [], 1]]],
    [1, [["BlockStored", ["1"], null, [], 1]]],
    [1, [["BlockStored", [1], null, [-1], 1]]],
    [1, [["BlockStored", [1], null, [big], 1]]],
    [1, [["BlockStored", [1], null, [1], 0]]],
    [1, [["BlockStored", [1], null, [1], big]]],
    [1, [["BlockStored", [1], null, [1], 16, 1.5]]],
    [1, [["BlockStored", [1], null, [1], 16, null, 5]]],
    [1, [["BlockStored", [1], "x", [1], 16]]],
    [1, [["BlockStored", [1], null, "x", 16]]],
    [1, [["BlockStored", [1]]]],
    [1, [["BlockRemoved", [1, 2]], ["BlockRemoved", 3], ["BlockRemoved"], ["AllBlocksCleared"]]],
    [1, [["Nope"], [], [null], 5, "x", null, { type: 5 }, new Uint8Array(2)]],
    { ts: 2, events: [{ type: "BlockStored", block_hashes: [5], token_ids: [1], block_size: 4 }] },
    // Learnable (block size 2, tokens for every block), and not: LoRA, extra keys, wrong counts.
    [1, [["BlockStored", [1, 2, 3], null, [1, 2, 3, 4, 5, 6], 2, null, "GPU"]]],
    [1, [["BlockStored", [4, 5], 3, [7, 8, 9, 10], 2], ["BlockStored", [6], 5, [11, 12], 2]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, 7, "GPU"]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, null, "GPU", "lora-a"]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, 7, "GPU", "lora-a"]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, 7, "GPU", 5]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, 7, "GPU", null]]],
    // A leading U+FEFF is part of a string: not the lora_name key, and part of a name.
    [1, [{
      type: "BlockStored",
      block_hashes: [1, 2],
      token_ids: [1, 2, 3, 4],
      block_size: 2,
      lora_id: 7,
      "\uFEFFlora_name": "sql",
    }]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, 7, "\uFEFFGPU", "\uFEFFsql"]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, null, "GPU", ""]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, null, "GPU", null, [["salt"], null]]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3], 2, null, "GPU"]]],
    [1, [["BlockStored", [1, 2], null, [1, 2, 3, 2 ** 40], 2, null, "GPU"]]],
    {
      ts: 2,
      events: [{
        type: "BlockStored",
        block_hashes: [8, 9],
        token_ids: [1, 2, 3, 4],
        block_size: 2,
        lora_name: null,
      }],
    },
    { ts: 2, events: [{ type: "BlockRemoved", block_hashes: [5], medium: "CPU" }] },
    { ts: 2, events: [{ type: "AllBlocksCleared", extra: [1, 2] }], data_parallel_rank: 3 },
    { ts: 2, events: [], data_parallel_rank: 1.5 },
    { ts: 2, events: [], data_parallel_rank: null },
    { ts: big, events: [] },
    { ts: "x", events: [] },
    { ts: 1, events: {} },
    { events: [] },
    [1],
    [],
    [1, [], null, "extra", 5],
    "not a batch",
    null,
    // Values of every kind in places the reader passes over (items past those it reads, unknown
    // keys), in events of more and fewer than 9 items and in maps: the events after them must be
    // found where they are.
    [1, [
      ["AllBlocksCleared", ...oddValues()],
      ["BlockRemoved", [7], "CPU"],
      ["AllBlocksCleared", ...oddValues().slice(0, 8)],
      ["BlockRemoved", [8]],
      { type: "BlockRemoved", block_hashes: [9], odd: oddValues(), more: oddValues()[8] },
      [
        "BlockStored",
        [10, 12, 13, 14],
        null,
        [200, 300, 70000, 5],
        1,
        null,
        "GPU",
        null,
        null,
        ...oddValues(),
      ],
      ["BlockRemoved", [11], "GPU"],
    ]],
  ];
  let accepted = 0;
  for (const c of cases) {
    if (
      compare(
        encodeMsgpack(c),
        JSON.stringify(c, (_, v) => typeof v === "bigint" ? `${v}n` : v),
      ) === "accepted"
    ) accepted++;
  }
  assert.ok(accepted > 20, `${accepted} accepted`);
  // Maps with a non-string key, duplicate keys (last wins), unicode in keys and values, depth.
  const raw: number[][] = [
    [0x82, 0xa2, 0x74, 0x73, 0x01, 0x01, 0x90], // {"ts": 1, 1: []}
    [0x83, 0xa2, 0x74, 0x73, 0x01, 0xa6, ...enc("events"), 0x91, 0x90, 0xa2, 0x74, 0x73, 0x02],
    [0x92, 0x01, 0x91, 0x82, 0xa4, ...enc("type"), 0xb0, ...enc("AllBlocksCleared"), 0x05, 0x06],
    [0x92, 0x01, 0x91, 0x93, 0xac, ...enc("BlockRemoved"), 0x91, 0x01, 0xa3, 0xc3, 0xa9, 0x75],
    [0x92, 0x01, 0x91, 0x93, 0xac, ...enc("BlockRemoved"), 0x91, 0x01, 0xa2, 0xff, 0xfe],
    [0x92, 0x01, ...new Array(20).fill(0x91), 0x90],
    [0x92, 0x01, 0x90, 0x00],
    [0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff],
    [0x92, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0x90], // ts NaN
    // Floats holding integers: block_size 16.0, a token 3.0, a hash 5.0, rank 2.0 (accepted).
    [
      0x93,
      0x01,
      0x91,
      0x95,
      0xab,
      ...enc("BlockStored"),
      0x91,
      0xcb,
      0x40,
      0x14,
      0,
      0,
      0,
      0,
      0,
      0,
      0xc0,
      0x91,
      0xcb,
      0x40,
      0x08,
      0,
      0,
      0,
      0,
      0,
      0,
      0xcb,
      0x40,
      0x30,
      0,
      0,
      0,
      0,
      0,
      0,
      0xcb,
      0x40,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
    ],
    // The same with 16.5 as block_size and -0.5 as a token (refused events).
    [
      0x92,
      0x01,
      0x91,
      0x95,
      0xab,
      ...enc("BlockStored"),
      0x91,
      0x01,
      0xc0,
      0x90,
      0xcb,
      0x40,
      0x30,
      0x80,
      0,
      0,
      0,
      0,
      0,
    ],
    [
      0x92,
      0x01,
      0x91,
      0x95,
      0xab,
      ...enc("BlockStored"),
      0x91,
      0x01,
      0xc0,
      0x91,
      0xcb,
      0xbf,
      0xe0,
      0,
      0,
      0,
      0,
      0,
      0,
      0x10,
    ],
  ];
  for (const r of raw) compare(Uint8Array.from(r), r.map((x) => x.toString(16)).join(" "));
});

function enc(s: string): number[] {
  return [...new TextEncoder().encode(s)];
}

Deno.test("fast events: 20,000 random mutations of real payloads agree with the reference", () => {
  const rng = new Prng(5);
  const seeds = [
    ...Object.values(fixtures.cases).map(hex),
    encodeMsgpack([1.5, [["BlockStored", [1, 2, 3], null, [1, 2, 3], 16, null, "GPU"], [
      "BlockRemoved",
      [2],
      "GPU",
    ], ["AllBlocksCleared"]], 0]),
    encodeMsgpack({
      ts: 1,
      events: [{ type: "BlockStored", block_hashes: [9], token_ids: [], block_size: 2 }],
    }),
  ];
  const counts = { refused: 0, accepted: 0 };
  for (let i = 0; i < 20_000; i++) {
    const b = seeds[rng.nextInt(seeds.length)].slice();
    const n = 1 + rng.nextInt(3);
    for (let j = 0; j < n; j++) {
      const op = rng.nextInt(3);
      const at = rng.nextInt(b.length);
      if (op === 0) b[at] = rng.nextInt(256);
      else if (op === 1) b[at] ^= 1 << rng.nextInt(8);
      else {b[at] =
          [0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc1, 0xcf, 0xd3, 0xdc, 0xff][rng.nextInt(11)];}
    }
    const cut = rng.nextInt(10) === 0 ? b.subarray(0, rng.nextInt(b.length + 1)) : b;
    counts[compare(cut, `mutation ${i}`)]++;
  }
  assert.ok(counts.accepted > 1000 && counts.refused > 1000, JSON.stringify(counts));
});

Deno.test("fast events: integer arrays of every width, cut at every byte, nested to the depth limit", () => {
  // Token ids at each width's edges (encodeMsgpack writes them as fixints or uint64s), a negative
  // one and a float.
  const tokens = [5, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 40, -1, 1.5];
  const payload = encodeMsgpack([1, [["BlockStored", [1, 2], null, tokens, 2, null, "GPU"]]]);
  assert.equal(compare(payload, "whole"), "accepted");
  for (let cut = 0; cut < payload.length; cut++) {
    assert.equal(compare(payload.subarray(0, cut), `cut at ${cut}`), "refused");
  }
  // encodeMsgpack writes every integer past 127 as a uint64: the narrower widths (and non-minimal
  // ones: 5 as a uint8, 7 as a uint16, signed widths holding positive ids), written by hand, as
  // Python's msgpack writes them.
  const widths = [
    [0x05],
    [0xcc, 200],
    [0xcc, 5],
    [0xcd, 0x01, 0x2c],
    [0xcd, 0x00, 0x07],
    [0xce, 0x00, 0x01, 0x11, 0x70],
    [0xce, 0xff, 0xff, 0xff, 0xff],
    [0xcf, 0, 0, 0, 0, 0, 0, 0, 9],
    [0xd0, 0x05],
    [0xd1, 0x01, 0x2c],
    [0xd2, 0x00, 0x01, 0x11, 0x70],
    [0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], // 1.0
  ];
  const raw = Uint8Array.from([
    0x92, // [ts, events]
    0x01,
    0x91,
    0x97, // [tag, hashes, parent, tokens, block size, lora id, medium]
    0xab,
    ...enc("BlockStored"),
    0x96, // six hashes (block size 2, twelve tokens: learnable)
    1,
    2,
    3,
    4,
    5,
    6,
    0xc0,
    0x9c, // twelve tokens
    ...widths.flat(),
    0x02,
    0xc0,
    0xa3,
    ...enc("GPU"),
  ]);
  assert.equal(compare(raw, "every width by hand"), "accepted");
  assert.deepEqual(
    Array.from(parsed.tokens.subarray(0, parsed.tokenTotal)),
    [5, 200, 5, 300, 7, 70000, 2 ** 32 - 1, 9, 5, 300, 70000, 1],
  );
  for (let cut = 0; cut < raw.length; cut++) {
    assert.equal(compare(raw.subarray(0, cut), `by hand, cut at ${cut}`), "refused");
  }
  // The 32-bit length forms (and float32, signed ints) where the reader passes over them, in an
  // event of fewer than 9 items and in one of more: the event after each must be read where it is.
  const skipped = [
    [0xc6, 0, 0, 0, 2, 0xff, 0xfe], // bin32
    [0xdb, 0, 0, 0, 2, 0x68, 0x69], // str32 "hi"
    [0xdd, 0, 0, 0, 2, 0x01, 0xcd, 0x01, 0x2c], // array32 [1, 300]
    [0xdf, 0, 0, 0, 1, 0xa1, 0x6b, 0xce, 0, 1, 0x11, 0x70], // map32 {k: 70000}
    [0xca, 0x3f, 0xc0, 0, 0], // float32 1.5
    [0xd0, 0xfb], // int8 -5
    [0xd1, 0xfe, 0xd4], // int16 -300
    [0xd2, 0xff, 0xfe, 0xee, 0x90], // int32 -70000
  ];
  const removed = (h: number) => [0x93, 0xac, ...enc("BlockRemoved"), 0x91, h, 0xa3, ...enc("CPU")];
  const cleared = (items: number[][]) => [
    0x90 + 1 + items.length,
    0xb0,
    ...enc("AllBlocksCleared"),
    ...items.flat(),
  ];
  const passed = Uint8Array.from([
    0x92,
    0x01,
    0x96,
    ...removed(5),
    ...cleared(skipped.slice(0, 4)),
    ...removed(6),
    ...cleared([...skipped, ...skipped.slice(0, 4)]), // 13 items: past the 9 the reader walks
    ...removed(7),
    ...removed(8),
  ]);
  assert.equal(compare(passed, "32-bit forms passed over"), "accepted");
  assert.equal(parsed.events, 6);
  assert.deepEqual(Array.from(parsed.hashes.subarray(0, parsed.hashCount * 2)), [
    0,
    5,
    0,
    6,
    0,
    7,
    0,
    8,
  ]);
  // A batch's ts in every number encoding (the reader's big-endian reads, signed and float).
  const stamps: [number[], number][] = [
    [[0xca, 0x3f, 0xc0, 0, 0], 1.5],
    [[0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18], Math.PI],
    [[0xd0, 0xfb], -5],
    [[0xd1, 0xfe, 0xd4], -300],
    [[0xd2, 0xff, 0xfe, 0xee, 0x90], -70_000],
    [[0xcc, 0xfa], 250],
    [[0xcd, 0x12, 0x34], 0x1234],
    [[0xce, 0x89, 0xab, 0xcd, 0xef], 0x89abcdef],
  ];
  for (const [bytes, want] of stamps) {
    assert.equal(compare(Uint8Array.from([0x92, ...bytes, 0x90]), `ts ${want}`), "accepted");
    assert.equal(parsed.ts, want);
  }
  // Integers in arrays nested near the limit, where the reader only skips them (an extra-keys
  // field): one level under the limit passes on both paths, one past it fails on both.
  const nested = (levels: number): MsgpackValue => {
    // Widths skipArray takes inline (fixint, uint8, uint32, uint16).
    let v: MsgpackValue = [1, 200, 70000, 300];
    for (let i = 0; i < levels; i++) v = [v];
    return v;
  };
  const outcomes = new Set<string>();
  for (let levels = 8; levels <= 20; levels++) {
    const p = encodeMsgpack([
      1,
      [["BlockStored", [1, 2], null, [1, 2, 3, 4], 2, null, "GPU", null, nested(levels)]],
    ]);
    outcomes.add(compare(p, `${levels} levels`));
  }
  assert.deepEqual([...outcomes].sort(), ["accepted", "refused"]);
});

Deno.test("fast events: a LoRA named by lora_name is learned; a lora_id alone or an empty name is not", () => {
  let refused = 0;
  const learned = (ev: MsgpackValue) => {
    const table = new ChainTable(Uint32Array.of(5, 6));
    const map = new CacheMap({ maxPods: 4, chain: { table, blockSize: 2 } });
    readEventBatch(encodeMsgpack([1, [ev]]), parsed);
    map.applyParsed("p", "m", parsed);
    refused += table.stats().loraRefused;
    return table.stats().learned;
  };
  const ev = (lora: MsgpackValue, ...name: MsgpackValue[]) => [
    "BlockStored",
    [1, 2],
    null,
    [1, 2, 3, 4],
    2,
    lora,
    "GPU",
    ...name,
  ];
  assert.equal(learned(ev(null)), 2);
  assert.equal(learned(ev(7, "sql")), 2);
  assert.equal(learned(ev(null, "sql")), 2);
  assert.equal(learned(ev(7)), 0, "a lora_id does not say which name the hashes used");
  assert.equal(learned(ev(7, null)), 0);
  assert.equal(learned(ev(7, 5)), 0);
  assert.equal(learned(ev(null, "x".repeat(10_000))), 2, "a long name");
  assert.equal(learned(ev(7, "")), 0, "an empty name: no prompt can name it");
  assert.equal(learned(ev(7, "sql", ["salt"])), 0, "extra keys");
  assert.equal(refused, 1, "the empty name is counted");
});

Deno.test("fast events: an unknown event tag is named as the reference decoder names it", () => {
  const tags: MsgpackValue[] = [
    "Nope",
    "x".repeat(60),
    null,
    true,
    false,
    5,
    -7,
    1.5,
    2n ** 63n,
    -(2n ** 62n),
    [1],
    new Uint8Array(2),
    { k: 1 },
  ];
  const payload = encodeMsgpack([1, [...tags.map((t) => [t]), [], [1, 2]]]);
  const ref = decodeEventBatch(payload);
  readEventBatch(payload, parsed);
  assert.equal(ref.rejected.length, tags.length + 2);
  assert.deepEqual(parsed.rejected, ref.rejected);
});

Deno.test("fast events: batches in the engines' layout take the one pass and agree with the reference, mutated too", () => {
  const rng = new Prng(23);
  // An unsigned integer in a width that holds it, at random (Python's msgpack picks the smallest).
  const uint = (v: number, hi = 0, widest = 5): number[] => {
    const w = hi > 0 ? 8 : [0, 1, 2, 4, 8][rng.nextInt(widest)];
    if (hi > 0 || w === 8) {
      return [0xcf, hi >>> 24, (hi >>> 16) & 255, (hi >>> 8) & 255, hi & 255, ...be32(v)];
    }
    if (w === 0 && v <= 0x7f) return [v];
    if (w <= 1 && v <= 0xff) return [0xcc, v];
    if (w <= 2 && v <= 0xffff) return [0xcd, v >>> 8, v & 255];
    return [0xce, ...be32(v)];
  };
  const be32 = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  const str = (s: string) => [0xa0 | s.length, ...enc(s)];
  const arr = (n: number) => n < 16 ? [0x90 | n] : [0xdc, n >>> 8, n & 255];
  const hashList = (n: number) => {
    const out = arr(n);
    for (let i = 0; i < n; i++) {
      out.push(
        ...(rng.nextInt(4) === 0
          ? uint(rng.nextInt(1000))
          : uint(rng.nextU32(), 0x80000000 | rng.nextInt(1 << 20))),
      );
    }
    return out;
  };
  const medium = () => [[0xc0], str("GPU"), str("cpu"), str("gPu"), str("DISK")][rng.nextInt(5)];
  const event = (): number[] => {
    const k = rng.nextInt(10);
    if (k < 6) {
      const blocks = rng.nextInt(5), bs = 1 + rng.nextInt(4);
      const tokens = Array.from(
        { length: blocks * bs },
        () => rng.nextInt(4) === 0 ? rng.nextInt(128) : rng.nextU32() % 200_000,
      );
      const nine = rng.nextInt(3) === 0;
      return [
        nine ? 0x99 : 0x97,
        ...str("BlockStored"),
        ...hashList(blocks),
        ...(rng.nextInt(2) === 0 ? [0xc0] : uint(rng.nextU32(), rng.nextInt(2) ? 0x80000001 : 0)),
        ...arr(tokens.length),
        ...tokens.flatMap((t) => uint(t, 0, 4)), // (token ids as uint64: the general reader's)
        ...uint(bs),
        0xc0,
        ...medium(),
        ...(nine ? [0xc0, 0xc0] : []),
      ];
    }
    if (k < 9) {
      const three = rng.nextInt(2) === 0;
      return [
        three ? 0x93 : 0x92,
        ...str("BlockRemoved"),
        ...hashList(1 + rng.nextInt(4)),
        ...(three ? medium() : []),
      ];
    }
    return [0x91, ...str("AllBlocksCleared")];
  };
  let fast = 0, accepted = 0;
  for (let i = 0; i < 1000; i++) {
    const n = rng.nextInt(20);
    const events = Array.from({ length: n }, event);
    const rank = rng.nextInt(3);
    const ts = rng.nextInt(2) === 0
      ? [0xcb, ...Array.from({ length: 8 }, (_, j) => j === 0 ? 0x41 : rng.nextInt(256))]
      : uint(rng.nextInt(1 << 30));
    const bytes = Uint8Array.from([
      rank === 0 ? 0x92 : 0x93,
      ...ts,
      ...arr(n),
      ...events.flat(),
      ...(rank === 0 ? [] : rank === 1 ? [0xc0] : [rng.nextInt(8)]),
    ]);
    const before = fastReads;
    assert.equal(compare(bytes, `batch ${i}`), "accepted");
    if (fastReads > before) fast++;
    // Mutated: both readers still agree (the one pass gives way to the general reader).
    for (let j = 0; j < 4; j++) {
      const m = bytes.slice();
      const at = rng.nextInt(m.length);
      if (j === 0) m[at] ^= 1 << rng.nextInt(8);
      else if (j === 1) {
        m[at] =
          [0x00, 0x7f, 0x90, 0x9a, 0xa3, 0xc0, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xff][rng.nextInt(12)];
      }
      if (compare(j === 2 ? m.subarray(0, at) : m, `batch ${i} mutation ${j}`) === "accepted") {
        accepted++;
      }
    }
  }
  assert.equal(fast, 1000, "every batch in the engines' layout took the one pass");
  assert.ok(accepted > 300, `${accepted} mutations accepted`);
});

Deno.test("fast events: a block size past 32 bits teaches no link; an event bad in two fields is named as the reference names it", () => {
  // 2^32 + 2 kept in 32 bits would be 2: the block size the chain table learns with.
  const big = encodeMsgpack([1, [[
    "BlockStored",
    [1, 2],
    null,
    [1, 2, 3, 4],
    2 ** 32 + 2,
    null,
    "GPU",
  ]]]);
  assert.equal(compare(big, "block size 2^32 + 2"), "accepted");
  assert.equal(parsed.learnable[0], 0);
  const ev = decodeEventBatch(big).events[0];
  assert.ok(ev.type === "BlockStored" && !learnable(ev));
  // Hashes [nil] and parent "x": both decoders name the hashes (checked first).
  const bad = Uint8Array.from([
    0x92,
    0x01,
    0x91,
    0x97,
    0xab,
    ...enc("BlockStored"),
    0x91,
    0xc0,
    0xa1,
    0x78,
    0x90,
    0x01,
    0xc0,
    0xc0,
  ]);
  readEventBatch(bad, parsed);
  assert.deepEqual(parsed.rejected, decodeEventBatch(bad).rejected);
  assert.match(parsed.rejected[0], /block_hashes/);
});
