/**
 * Tests of the datapath message codecs: round trips of every message, and decoding of bytes
 * captured from the Deno 2.9.6 client (`Deno.openKv` against a logging server), so the field
 * numbers are checked against the real thing and not only against ourselves.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AtomicWrite,
  decodeAtomicWrite,
  decodeAtomicWriteOutput,
  decodeSnapshotRead,
  decodeSnapshotReadOutput,
  decodeWatch,
  decodeWatchOutput,
  encodeAtomicWrite,
  encodeAtomicWriteOutput,
  encodeSnapshotRead,
  encodeSnapshotReadOutput,
  encodeWatch,
  encodeWatchOutput,
  MutationType,
  type SnapshotReadOutput,
  ValueEncoding,
  type WatchOutput,
} from "./messages.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
const bytes = (...b: number[]) => new Uint8Array(b);
const vs = (n: number) => bytes(0, 0, 0, 0, 0, 0, 0, n, 0, 0);

Deno.test("KV Connect messages round-trip", () => {
  const read = {
    ranges: [
      { start: bytes(2, 0x61, 0), end: bytes(2, 0x61, 0, 0), limit: 1, reverse: false },
      { start: bytes(), end: bytes(0xff), limit: 1000, reverse: true },
    ],
  };
  assert.deepEqual(decodeSnapshotRead(encodeSnapshotRead(read)), read);

  const output: SnapshotReadOutput = {
    ranges: [
      { values: [{ key: bytes(1), value: bytes(9, 9), encoding: 1, versionstamp: vs(3) }] },
      { values: [] },
    ],
    readDisabled: false,
    readIsStronglyConsistent: true,
    status: 1,
  };
  assert.deepEqual(decodeSnapshotReadOutput(encodeSnapshotReadOutput(output)), output);

  const write: AtomicWrite = {
    checks: [{ key: bytes(1), versionstamp: vs(1) }, { key: bytes(2), versionstamp: bytes() }],
    mutations: [
      {
        key: bytes(1),
        value: { data: bytes(1, 2), encoding: ValueEncoding.BYTES },
        mutationType: MutationType.SET,
        expireAtMs: 1_796_147_035_060,
        sumMin: bytes(),
        sumMax: bytes(),
        sumClamp: false,
      },
      {
        key: bytes(3),
        value: { data: bytes(0xff, 0x10, 0x49, 2), encoding: ValueEncoding.V8 },
        mutationType: MutationType.SUM,
        expireAtMs: -1,
        sumMin: bytes(0xff, 0x10, 0x49, 0),
        sumMax: bytes(0xff, 0x10, 0x49, 20),
        sumClamp: true,
      },
    ],
    enqueues: [{
      payload: bytes(7),
      deadlineMs: 1000,
      keysIfUndelivered: [bytes(4), bytes(5)],
      backoffSchedule: [100, 1000],
    }],
  };
  assert.deepEqual(decodeAtomicWrite(encodeAtomicWrite(write)), write);

  for (
    const out of [
      { status: 1, versionstamp: vs(7), failedChecks: [] },
      { status: 2, versionstamp: bytes(), failedChecks: [0, 2] },
    ]
  ) {
    assert.deepEqual(decodeAtomicWriteOutput(encodeAtomicWriteOutput(out)), out);
  }

  const watch = { keys: [bytes(1), bytes(2, 3)] };
  assert.deepEqual(decodeWatch(encodeWatch(watch)), watch);
  const watchOut: WatchOutput = {
    status: 1,
    keys: [
      {
        changed: true,
        entryIfChanged: { key: bytes(1), value: bytes(), encoding: 3, versionstamp: vs(1) },
      },
      { changed: true, entryIfChanged: null },
      { changed: false, entryIfChanged: null },
    ],
  };
  assert.deepEqual(decodeWatchOutput(encodeWatchOutput(watchOut)), watchOut);
});

Deno.test("KV Connect messages decode what Deno 2.9.6 sends for get and list", () => {
  // kv.get(["a"])
  assert.deepEqual(decodeSnapshotRead(hex("0a 0d 0a 03 02 61 00 12 04 02 61 00 00 18 01")), {
    ranges: [{ start: bytes(2, 0x61, 0), end: bytes(2, 0x61, 0, 0), limit: 1, reverse: false }],
  });
  // kv.list({ prefix: ["p"] }, { limit: 3, reverse: true })
  assert.deepEqual(
    decodeSnapshotRead(hex("0a 10 0a 04 02 70 00 00 12 04 02 70 00 ff 18 03 20 01")),
    {
      ranges: [{
        start: bytes(2, 0x70, 0, 0),
        end: bytes(2, 0x70, 0, 0xff),
        limit: 3,
        reverse: true,
      }],
    },
  );
});

Deno.test("KV Connect messages decode what Deno 2.9.6 sends for writes", () => {
  // kv.set(["s"], "hello", { expireIn: 1000 })
  const set = decodeAtomicWrite(
    hex(
      "12 1d 0a 03 02 73 00 12 0d 0a 09 ff 10 22 05 68 65 6c 6c 6f " +
        "10 01 18 01 20 b4 f7 d2 95 a3 34",
    ),
  );
  assert.deepEqual(set.mutations, [{
    key: bytes(2, 0x73, 0),
    value: { data: hex("ff 10 22 05 68 65 6c 6c 6f"), encoding: ValueEncoding.V8 },
    mutationType: MutationType.SET,
    expireAtMs: 1_796_147_035_060,
    sumMin: bytes(),
    sumMax: bytes(),
    sumClamp: false,
  }]);

  // kv.atomic().check({ key: ["s"], versionstamp: null })
  //   .check({ key: ["t"], versionstamp: "00000000000000010000" }).delete(["s"])
  const checked = decodeAtomicWrite(hex(
    "0a 05 0a 03 02 73 00 0a 11 0a 03 02 74 00 12 0a 00 00 00 00 00 00 00 01 00 00 " +
      "12 0b 0a 03 02 73 00 12 02 10 03 18 02",
  ));
  assert.deepEqual(checked.checks, [
    { key: bytes(2, 0x73, 0), versionstamp: bytes() },
    { key: bytes(2, 0x74, 0), versionstamp: vs(1) },
  ]);
  assert.equal(checked.mutations[0].mutationType, MutationType.DELETE);
  assert.deepEqual(checked.mutations[0].value, { data: bytes(), encoding: ValueEncoding.BYTES });

  // kv.atomic().sum(["n"], 7n)
  const sum = decodeAtomicWrite(
    hex("12 15 0a 03 02 6e 00 12 0c 0a 08 07 00 00 00 00 00 00 00 10 02 18 03"),
  );
  assert.equal(sum.mutations[0].mutationType, MutationType.SUM);
  assert.deepEqual(sum.mutations[0].value, {
    data: bytes(7, 0, 0, 0, 0, 0, 0, 0),
    encoding: ValueEncoding.LE64,
  });
});

Deno.test("KV Connect messages leave proto3 defaults out of the encoding", () => {
  assert.deepEqual(encodeSnapshotRead({ ranges: [] }), bytes());
  assert.deepEqual(
    encodeAtomicWriteOutput({ status: 0, versionstamp: bytes(), failedChecks: [] }),
    bytes(),
  );
  // Just the status: field 1, varint 1.
  assert.deepEqual(
    encodeAtomicWriteOutput({ status: 1, versionstamp: bytes(), failedChecks: [] }),
    bytes(0x08, 0x01),
  );
  // Empty ranges still appear (one per requested range), as an empty message.
  assert.deepEqual(
    encodeSnapshotReadOutput({
      ranges: [{ values: [] }],
      readDisabled: false,
      readIsStronglyConsistent: true,
      status: 1,
    }),
    bytes(0x0a, 0x00, 0x20, 0x01, 0x40, 0x01),
  );
});
