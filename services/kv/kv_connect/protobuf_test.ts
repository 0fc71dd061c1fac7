/**
 * Tests of the protobuf wire codec: varints at their edges, skipping unknown fields, and
 * hostile input (truncation, over-long varints, lengths past the end, bad wire types, random
 * bytes) that must fail with a ProtobufError and nothing else.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { MAX_REPEATED_ENTRIES, ProtobufError, Reader, WireType, Writer } from "./protobuf.ts";
import {
  decodeAtomicWrite,
  decodeAtomicWriteOutput,
  decodeSnapshotRead,
  decodeSnapshotReadOutput,
  decodeWatch,
  decodeWatchOutput,
  encodeAtomicWrite,
  encodeSnapshotRead,
  encodeSnapshotReadOutput,
  encodeWatchOutput,
} from "./messages.ts";

const bytes = (...b: number[]) => new Uint8Array(b);

function readVarint(buf: Uint8Array) {
  return new Reader(buf, "Test").varint64();
}

Deno.test("KV Connect protobuf varints round-trip at their edges", () => {
  for (
    const n of [0, 1, 127, 128, 300, 16383, 16384, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]
  ) {
    const buf = new Writer().varint(n).finish();
    const { lo, hi } = readVarint(buf);
    assert.equal(hi * 2 ** 32 + lo, n, `varint ${n}`);
  }
  assert.deepEqual(new Writer().varint(300).finish(), bytes(0xac, 0x02));
  // -1 as int64: ten bytes, all 64 bits set.
  const minusOne = new Writer().varintSigned(-1).finish();
  assert.equal(minusOne.length, 10);
  assert.deepEqual(readVarint(minusOne), { lo: 0xffffffff, hi: 0xffffffff });
  assert.equal(new Reader(minusOne, "T").int32(), -1);
  assert.equal(new Reader(minusOne, "T").int64(), -1);
  const big = new Writer().varintSigned(-(2 ** 40)).finish();
  assert.equal(new Reader(big, "T").int64(), -(2 ** 40));
  assert.throws(() => new Writer().varint(-1), RangeError);
  assert.throws(() => new Writer().varint(1.5), RangeError);
});

Deno.test("KV Connect protobuf int64 beyond 2^53 is refused, not rounded", () => {
  // 2^60: nine bytes.
  const v = bytes(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10);
  assert.deepEqual(readVarint(v), { lo: 0, hi: 0x10000000 });
  assert.throws(() => new Reader(v, "T").int64(), ProtobufError);
});

Deno.test("KV Connect protobuf rejects truncated and over-long varints", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty", bytes(), /truncated varint/],
    ["truncated", bytes(0x80, 0x80), /truncated varint/],
    ["10th byte > 1", bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), /64 bits/],
    [
      "11 bytes",
      bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00),
      /64 bits/,
    ],
  ];
  for (const [name, buf, re] of cases) {
    assert.throws(() => readVarint(buf), (e: unknown) => {
      assert.ok(e instanceof ProtobufError, name);
      assert.match(e.message, re, name);
      return true;
    });
  }
});

Deno.test("KV Connect protobuf rejects lengths past the end, bad tags and wire types", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    // SnapshotRead.ranges (field 1, LEN) claiming 5 bytes, 1 present.
    ["length past end", bytes(0x0a, 0x05, 0x00), /runs past the end/],
    // An absurd length (2^35).
    ["absurd length", bytes(0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), /runs past the end/],
    // Field 1 sent as a varint where a message is expected.
    ["wrong wire type", bytes(0x08, 0x01), /wire type varint, expected length-delimited/],
    // Field number 0.
    ["field 0", bytes(0x02, 0x00), /invalid field number/],
    // Start group (wire type 3) for field 5.
    ["group", bytes(0x2b), /unsupported wire type 3/],
    // Wire type 7 does not exist.
    ["wire type 7", bytes(0x2f), /unsupported wire type 7/],
    // An unknown fixed64 field cut short.
    ["truncated fixed64", bytes(0x29, 0x01, 0x02), /truncated fixed-width/],
    ["truncated fixed32", bytes(0x2d, 0x01), /truncated fixed-width/],
    // A nested ReadRange whose limit varint is cut off inside the nested length.
    ["truncated nested", bytes(0x0a, 0x02, 0x18, 0x80), /ReadRange field 3: truncated varint/],
  ];
  for (const [name, buf, re] of cases) {
    assert.throws(() => decodeSnapshotRead(buf), (e: unknown) => {
      assert.ok(e instanceof ProtobufError, `${name}: ${e}`);
      assert.match(e.message, re, name);
      return true;
    });
  }
});

Deno.test("KV Connect protobuf skips unknown fields of every wire type", () => {
  const w = new Writer();
  w.uint(15, 12345); // varint
  w.uint(2000, 1); // a two-byte tag
  w.bytes(16, bytes(1, 2, 3)); // length-delimited
  const raw = w.finish();
  const fixed64 = bytes((13 << 3) | WireType.FIXED64, 1, 2, 3, 4, 5, 6, 7, 8);
  const fixed32 = bytes((14 << 3) | WireType.FIXED32, 1, 2, 3, 4);
  const known = encodeSnapshotRead({
    ranges: [{ start: bytes(1), end: bytes(2), limit: 7, reverse: true }],
  });
  const all = new Uint8Array([...raw, ...fixed64, ...known, ...fixed32]);
  assert.deepEqual(decodeSnapshotRead(all), {
    ranges: [{ start: bytes(1), end: bytes(2), limit: 7, reverse: true }],
  });
});

Deno.test("KV Connect protobuf reads repeated uint32 packed and unpacked", () => {
  const packed = new Writer().uint(1, 2).packedUint32(4, [0, 3, 300]).finish();
  assert.deepEqual(decodeAtomicWriteOutput(packed).failedChecks, [0, 3, 300]);
  const unpacked = new Writer().uint(4, 5).uint(4, 6).finish();
  assert.deepEqual(decodeAtomicWriteOutput(unpacked).failedChecks, [5, 6]);
  // A packed run cut inside a varint.
  assert.throws(() => decodeAtomicWriteOutput(bytes(0x22, 0x01, 0x80)), ProtobufError);
});

/** Every decoder must either succeed or throw a ProtobufError, whatever it is given. */
const DECODERS = [
  decodeSnapshotRead,
  decodeSnapshotReadOutput,
  decodeAtomicWrite,
  decodeAtomicWriteOutput,
  decodeWatch,
  decodeWatchOutput,
];

function decodeAllOrProtobufError(buf: Uint8Array, what: string): void {
  for (const decode of DECODERS) {
    try {
      decode(buf);
    } catch (e) {
      if (!(e instanceof ProtobufError)) {
        throw new Error(`${decode.name} threw ${e} on ${what}: [${buf.join(",")}]`);
      }
    }
  }
}

Deno.test("KV Connect protobuf decoders survive random bytes", () => {
  const rng = new Prng(0xc0ffee);
  for (let i = 0; i < 1500; i++) {
    const buf = new Uint8Array(rng.nextInt(40));
    for (let j = 0; j < buf.length; j++) buf[j] = rng.nextInt(256);
    decodeAllOrProtobufError(buf, `random input ${i}`);
  }
});

Deno.test("KV Connect protobuf decoders survive corrupted valid messages", () => {
  const rng = new Prng(42);
  const samples = [
    encodeAtomicWrite({
      checks: [{ key: bytes(2, 0x61, 0), versionstamp: new Uint8Array(10) }],
      mutations: [{
        key: bytes(2, 0x61, 0),
        value: { data: bytes(0xff, 0x10, 0x49, 0x0a), encoding: 1 },
        mutationType: 3,
        expireAtMs: 1_700_000_000_000,
        sumMin: bytes(1),
        sumMax: bytes(2),
        sumClamp: true,
      }],
      enqueues: [{
        payload: bytes(1, 2),
        deadlineMs: 5,
        keysIfUndelivered: [bytes(9)],
        backoffSchedule: [10, 20],
      }],
    }),
    encodeSnapshotReadOutput({
      ranges: [{
        values: [{ key: bytes(1), value: bytes(2), encoding: 3, versionstamp: new Uint8Array(10) }],
      }],
      readDisabled: false,
      readIsStronglyConsistent: true,
      status: 1,
    }),
    encodeWatchOutput({
      status: 1,
      keys: [{ changed: true, entryIfChanged: null }, { changed: false, entryIfChanged: null }],
    }),
  ];
  for (const sample of samples) {
    for (let cut = 0; cut < sample.length; cut++) {
      decodeAllOrProtobufError(sample.subarray(0, cut), `truncated at ${cut}`);
    }
    for (let i = 0; i < 400; i++) {
      const buf = sample.slice();
      const flips = 1 + rng.nextInt(3);
      for (let f = 0; f < flips; f++) buf[rng.nextInt(buf.length)] = rng.nextInt(256);
      decodeAllOrProtobufError(buf, `corrupted sample ${i}`);
    }
  }
});

Deno.test("KV Connect protobuf caps repeated fields before objects pile up", () => {
  // A body of empty Mutation messages (two bytes each): one over the cap is refused.
  const n = MAX_REPEATED_ENTRIES;
  const at = (count: number) => new Uint8Array(count * 2).map((_, i) => i % 2 === 0 ? 0x12 : 0);
  assert.equal(decodeAtomicWrite(at(n)).mutations.length, n);
  assert.throws(() => decodeAtomicWrite(at(n + 1)), /more than 10000 entries/);
  // The same for a packed run of uint32s.
  const packed = new Writer().packedUint32(4, new Array(n + 1).fill(1)).finish();
  assert.throws(() => decodeAtomicWriteOutput(packed), /more than 10000 entries/);
});
