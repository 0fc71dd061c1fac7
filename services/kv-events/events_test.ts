import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { decodeEventBatch, EventDecodeError } from "./events.ts";
import { encodeMsgpack, type MsgpackValue } from "./msgpack.ts";

const fixtures: { cases: Record<string, string> } = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/msgpack-python.json", import.meta.url)),
);
const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));

Deno.test("events: the long array layout with a data-parallel rank (Python-encoded)", () => {
  const b = decodeEventBatch(hex(fixtures.cases.vllm_long));
  assert.equal(b.ts, 1733000000.5);
  assert.equal(b.dataParallelRank, 0);
  assert.deepEqual(b.rejected, []);
  assert.deepEqual(b.events, [
    {
      type: "BlockStored",
      blockHashes: [18446744073709551615n, 9223372036854775808n, 12345n],
      parentBlockHash: null,
      tokenIds: [1, 2, 3, 4],
      blockSize: 16,
      loraId: null,
      medium: "GPU",
    },
    { type: "BlockRemoved", blockHashes: [18446744073709551615n], medium: "GPU" },
    { type: "AllBlocksCleared" },
  ]);
});

Deno.test("events: the short layout (no medium) and the map layout with byte hashes", () => {
  const short = decodeEventBatch(hex(fixtures.cases.vllm_short));
  assert.equal(short.dataParallelRank, null);
  assert.deepEqual(short.events[0], {
    type: "BlockStored",
    blockHashes: [1n, 2n],
    parentBlockHash: 7n,
    tokenIds: new Array(16).fill(5),
    blockSize: 16,
    loraId: null,
    medium: null,
  });
  const map = decodeEventBatch(hex(fixtures.cases.map_form));
  assert.equal(map.ts, 2);
  assert.deepEqual(map.events[0], {
    type: "BlockStored",
    blockHashes: [new Uint8Array(32).fill(1)],
    parentBlockHash: null,
    tokenIds: [9],
    blockSize: 16,
    loraId: null,
    medium: "CPU",
  });
});

Deno.test("events: signed hashes map to the same u64 key; extra trailing fields are ignored", () => {
  const b = decodeEventBatch(encodeMsgpack([
    3,
    [
      ["BlockStored", [-1, 5], -2n, [1], 16, 3, "GPU", "extra", 42],
      { type: "BlockRemoved", block_hashes: [2n ** 64n - 1n] },
    ],
  ]));
  assert.deepEqual(b.rejected, []);
  const stored = b.events[0] as { blockHashes: bigint[]; parentBlockHash: bigint; loraId: number };
  assert.deepEqual(stored.blockHashes, [2n ** 64n - 1n, 5n]);
  assert.equal(stored.parentBlockHash, 2n ** 64n - 2n);
  assert.equal(stored.loraId, 3);
  assert.deepEqual((b.events[1] as { blockHashes: bigint[] }).blockHashes, [2n ** 64n - 1n]);
});

Deno.test("events: malformed events are skipped and counted; malformed batches throw", () => {
  const events: MsgpackValue[] = [
    ["BlockStored", "nope", null, [1], 16],
    ["BlockStored", [1], null, [1], 0],
    ["BlockStored", [1], null, [-1], 16],
    ["BlockStored", [1], null, [1.5], 16],
    ["BlockStored", [new Uint8Array(0)], null, [1], 16],
    ["BlockRemoved", [1], 7],
    ["Nope"],
    42,
    { type: "BlockRemoved" },
    // Tags no string can name (a msgpack map decodes without a prototype: String() throws).
    [{ k: 1 }],
    [[1]],
    [new Uint8Array(2)],
    [null],
    ["AllBlocksCleared"],
  ];
  const b = decodeEventBatch(encodeMsgpack([1, events]));
  assert.equal(b.events.length, 1);
  assert.equal(b.rejected.length, events.length - 1);
  assert.match(b.rejected[0], /^event 0: block_hashes/);
  assert.deepEqual(b.rejected.slice(-4).map((r) => r.replace(/^event \d+: /, "")), [
    'unknown event type "a map"',
    'unknown event type "an array"',
    'unknown event type "bytes"',
    'unknown event type "null"',
  ]);
  for (
    const bad of [
      encodeMsgpack("x"),
      encodeMsgpack([]),
      encodeMsgpack(["ts", []]),
      encodeMsgpack([1, "events"]),
      encodeMsgpack([1, [], "rank"]),
      encodeMsgpack({ events: [] }),
      Uint8Array.of(0x92, 0x01),
    ]
  ) {
    assert.throws(() => decodeEventBatch(bad), EventDecodeError);
  }
  // Random mutations of real payloads: a batch or an EventDecodeError, nothing else.
  const rnd = new Prng(11);
  for (const h of [fixtures.cases.vllm_long, fixtures.cases.map_form]) {
    const base = hex(h);
    for (let i = 0; i < 5000; i++) {
      const m = base.slice(0, 1 + rnd.nextInt(base.length));
      m[rnd.nextInt(m.length)] = rnd.nextInt(256);
      try {
        decodeEventBatch(m);
      } catch (e) {
        assert.ok(e instanceof EventDecodeError, String(e));
      }
    }
  }
});
