import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { decodeMsgpack, encodeMsgpack, MsgpackError, type MsgpackValue } from "./msgpack.ts";

const fixtures: { cases: Record<string, string> } = JSON.parse(
  await Deno.readTextFile(new URL("./testdata/msgpack-python.json", import.meta.url)),
);
/** Objects from the decoder have no prototype; give them one to compare with literals. */
function plain(v: MsgpackValue): MsgpackValue {
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [plain(k), plain(x)]));
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));

Deno.test("msgpack: decodes what Python's msgpack encodes, u64 hashes exact", () => {
  const long = decodeMsgpack(hex(fixtures.cases.vllm_long)) as MsgpackValue[];
  assert.equal(long[0], 1733000000.5);
  const events = long[1] as MsgpackValue[][];
  assert.deepEqual(events[0], [
    "BlockStored",
    [18446744073709551615n, 9223372036854775808n, 12345],
    null,
    [1, 2, 3, 4],
    16,
    null,
    "GPU",
  ]);
  assert.deepEqual(events[2], ["AllBlocksCleared"]);
  assert.equal(long[2], 0);
  const map = decodeMsgpack(hex(fixtures.cases.map_form)) as {
    events: { [k: string]: MsgpackValue }[];
  };
  assert.equal(Object.getPrototypeOf(map), null);
  assert.equal(map.events[0].type, "BlockStored");
  assert.deepEqual(map.events[0].block_hashes, [new Uint8Array(32).fill(1)]);
  assert.deepEqual(decodeMsgpack(hex(fixtures.cases.scalars)), [
    null,
    true,
    false,
    -1,
    -33,
    -129,
    -40000,
    -3000000000,
    128,
    256,
    70000,
    5000000000,
    1.5,
    "",
    "é".repeat(40),
    new Uint8Array(0),
    new Uint8Array(300),
  ]);
});

Deno.test("msgpack: encode and decode round-trip", () => {
  const values: MsgpackValue[] = [
    [1.5, -0.25, 2 ** 53 - 1, -(2 ** 53 - 1), 2n ** 64n - 1n, -(2n ** 63n), "x".repeat(70000)],
    { a: [1, { b: null }], "": new Uint8Array(70000).fill(9) },
    new Map<MsgpackValue, MsgpackValue>([[1, "one"], ["two", 2]]),
    Array.from({ length: 70000 }, (_, i) => i),
  ];
  for (const v of values) assert.deepEqual(plain(decodeMsgpack(encodeMsgpack(v))), v);
  // Re-encoding Python's bytes gives values that decode the same.
  for (const h of Object.values(fixtures.cases)) {
    const v = decodeMsgpack(hex(h));
    assert.deepEqual(plain(decodeMsgpack(encodeMsgpack(v))), plain(v));
  }
});

Deno.test("msgpack: hostile input is refused with MsgpackError, never anything else", () => {
  const bad: [string, Uint8Array][] = [
    ["empty", new Uint8Array()],
    ["reserved", Uint8Array.of(0xc1)],
    ["ext", Uint8Array.of(0xd4, 1, 2)],
    ["array32 of 4 billion", Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0)],
    ["map32 of 4 billion", Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0)],
    ["str32 past the end", Uint8Array.of(0xdb, 0, 0, 1, 0, 0x61)],
    ["bin32 past the end", Uint8Array.of(0xc6, 0x7f, 0xff, 0xff, 0xff)],
    ["bad utf-8", Uint8Array.of(0xa2, 0xc3, 0x28)],
    ["trailing bytes", Uint8Array.of(0x01, 0x02)],
    ["deep nesting", new Uint8Array(200).fill(0x91)],
  ];
  for (const [what, b] of bad) assert.throws(() => decodeMsgpack(b), MsgpackError, what);
  // Every truncation of the fixtures, and random bytes.
  for (const h of Object.values(fixtures.cases)) {
    const full = hex(h);
    for (let n = 0; n < full.length; n++) {
      assert.throws(() => decodeMsgpack(full.subarray(0, n)), MsgpackError);
    }
  }
  const rnd = new Prng(5);
  for (let i = 0; i < 20_000; i++) {
    const b = new Uint8Array(1 + rnd.nextInt(40));
    for (let j = 0; j < b.length; j++) b[j] = rnd.nextInt(256);
    try {
      decodeMsgpack(b);
    } catch (e) {
      assert.ok(e instanceof MsgpackError, String(e));
    }
  }
});
