import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import {
  BATCH_HEADER_BYTES,
  checkRecord,
  decodeBatches,
  decodeRecords,
  DEFAULT_BATCH_LIMITS,
  encodeBatch,
  type LogRecord,
  readBatchHeader,
  setBaseOffset,
} from "./record_batch.ts";
import {
  BatchTooLargeError,
  CorruptBatchError,
  InvalidRecordError,
  LogError,
  RecordTooLargeError,
} from "./errors.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string) => te.encode(s);

function randomRecords(rng: Prng, n: number): LogRecord[] {
  const out: LogRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      key: rng.chance(0.2) ? null : rng.bytes(rng.nextInt(40)),
      value: rng.chance(0.1) ? null : rng.bytes(rng.nextInt(300)),
      timestamp: rng.chance(0.5) ? undefined : rng.intBetween(0, 2 ** 45),
      headers: rng.chance(0.3)
        ? [{ key: "h" + rng.nextInt(1000), value: rng.chance(0.5) ? null : rng.bytes(5) }, {
          key: "é✓😀",
          value: new Uint8Array(0),
        }]
        : undefined,
    });
  }
  return out;
}

function expectCorrupt(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CorruptBatchError, `expected CorruptBatchError, got ${e}`);
    assert.equal(e.code, "CORRUPT_BATCH");
    return;
  }
  assert.fail("expected CorruptBatchError");
}

Deno.test("encodeBatch and decodeRecords round-trip keys, values, nulls, headers, timestamps", () => {
  const records: LogRecord[] = [
    { key: b("k1"), value: b("v1"), timestamp: 1000 },
    { key: null, value: b("no key"), timestamp: 999 },
    { key: b("k3"), value: null, timestamp: 5000, headers: [{ key: "a", value: b("x") }] },
    { key: new Uint8Array(0), value: new Uint8Array(0), headers: [{ key: "n", value: null }] },
  ];
  const batch = encodeBatch(7, records, { now: 4242 });
  const h = readBatchHeader(batch, 0, batch.length, { verifyCrc: true });
  assert.equal(h.baseOffset, 7);
  assert.equal(h.lastOffset, 10);
  assert.equal(h.recordCount, 4);
  assert.equal(h.sizeBytes, batch.length);
  assert.equal(h.firstTimestamp, 1000);
  assert.equal(h.maxTimestamp, 5000);
  assert.equal(h.timestampType, "create");
  const out = decodeRecords(batch, 0, h);
  assert.deepEqual(out.map((r) => r.offset), [7, 8, 9, 10]);
  assert.deepEqual(out.map((r) => r.timestamp), [1000, 999, 5000, 4242]);
  assert.equal(td.decode(out[0].key!), "k1");
  assert.equal(out[1].key, null);
  assert.equal(out[2].value, null);
  assert.deepEqual(out[2].headers, [{ key: "a", value: b("x") }]);
  assert.deepEqual(out[3].key, new Uint8Array(0));
  assert.deepEqual(out[3].headers, [{ key: "n", value: null }]);
});

Deno.test("encodeBatch with logAppend time stamps every record with now", () => {
  const batch = encodeBatch(0, [{ key: null, value: b("a"), timestamp: 5 }, {
    key: null,
    value: b("b"),
  }], { now: 77, timestampType: "logAppend" });
  const h = readBatchHeader(batch);
  assert.equal(h.timestampType, "logAppend");
  assert.deepEqual(decodeRecords(batch, 0, h).map((r) => r.timestamp), [77, 77]);
});

Deno.test("setBaseOffset restamps the offset without breaking the CRC", () => {
  const batch = encodeBatch(0, [{ key: null, value: b("a") }, { key: null, value: b("b") }], {
    now: 1,
  });
  setBaseOffset(batch, 2 ** 50);
  const h = readBatchHeader(batch, 0, batch.length, { verifyCrc: true });
  assert.equal(h.baseOffset, 2 ** 50);
  assert.deepEqual(decodeRecords(batch).map((r) => r.offset), [2 ** 50, 2 ** 50 + 1]);
});

Deno.test("encodeBatch enforces limits with typed errors", () => {
  const one = (r: Partial<LogRecord>) => [{ key: null, value: null, ...r }];
  assert.throws(() => encodeBatch(0, []), InvalidRecordError);
  assert.throws(
    () => encodeBatch(0, one({ value: new Uint8Array(2000) }), { limits: { maxBatchBytes: 1000 } }),
    BatchTooLargeError,
  );
  assert.throws(
    () => encodeBatch(0, one({ key: new Uint8Array(11) }), { limits: { maxKeyBytes: 10 } }),
    RecordTooLargeError,
  );
  assert.throws(
    () => encodeBatch(0, one({ value: new Uint8Array(11) }), { limits: { maxValueBytes: 10 } }),
    RecordTooLargeError,
  );
  assert.throws(
    () =>
      encodeBatch(0, [{ key: null, value: null }, { key: null, value: null }], {
        limits: { maxRecordsPerBatch: 1 },
      }),
    BatchTooLargeError,
  );
  assert.throws(
    () =>
      encodeBatch(0, one({ headers: [{ key: "x".repeat(11), value: null }] }), {
        limits: { maxHeaderKeyBytes: 10 },
      }),
    RecordTooLargeError,
  );
  assert.throws(
    () =>
      encodeBatch(0, one({ headers: [{ key: "x", value: null }, { key: "y", value: null }] }), {
        limits: { maxHeadersPerRecord: 1 },
      }),
    RecordTooLargeError,
  );
  assert.throws(() => encodeBatch(0, one({ timestamp: -1 })), InvalidRecordError);
  assert.throws(() => encodeBatch(0, one({ timestamp: 1.5 })), InvalidRecordError);
  assert.throws(() => encodeBatch(-1, one({})), InvalidRecordError);
  assert.throws(() => encodeBatch(0, one({}), { requireKeys: true }), InvalidRecordError);
  assert.throws(() => encodeBatch(0, []), LogError);
});

Deno.test("random batches round-trip (seeded)", () => {
  const rng = new Prng(1234);
  for (let iter = 0; iter < 200; iter++) {
    const recs = randomRecords(rng, rng.intBetween(1, 30));
    const base = rng.intBetween(0, 2 ** 48);
    const now = rng.intBetween(0, 2 ** 45);
    const batch = encodeBatch(base, recs, { now });
    const h = readBatchHeader(batch, 0, batch.length, { verifyCrc: true });
    const out = decodeRecords(batch, 0, h);
    assert.equal(out.length, recs.length);
    for (let i = 0; i < recs.length; i++) {
      assert.equal(out[i].offset, base + i);
      assert.equal(out[i].timestamp, recs[i].timestamp ?? now);
      assert.deepEqual(out[i].key, recs[i].key);
      assert.deepEqual(out[i].value, recs[i].value);
      assert.deepEqual(out[i].headers, recs[i].headers ?? []);
    }
  }
});

Deno.test("decodeBatches walks several batches and skips records below fromOffset", () => {
  const a = encodeBatch(0, [{ key: null, value: b("0") }, { key: null, value: b("1") }], {
    now: 1,
  });
  const c = encodeBatch(2, [{ key: null, value: b("2") }, { key: null, value: b("3") }], {
    now: 1,
  });
  const both = new Uint8Array(a.length + c.length);
  both.set(a);
  both.set(c, a.length);
  assert.deepEqual(decodeBatches(both, 1).map((r) => r.offset), [1, 2, 3]);
  assert.deepEqual(decodeBatches(both, 3, { verifyCrc: true }).map((r) => r.offset), [3]);
});

Deno.test("readBatchHeader rejects every truncation with CorruptBatchError", () => {
  const batch = encodeBatch(0, randomRecords(new Prng(5), 10), { now: 1 });
  for (let len = 0; len < batch.length; len++) {
    expectCorrupt(() => readBatchHeader(batch.subarray(0, len), 0, len, { verifyCrc: true }));
  }
});

Deno.test("readBatchHeader detects any single flipped byte after the offset field", () => {
  const batch = encodeBatch(0, randomRecords(new Prng(6), 5), { now: 1 });
  for (let i = 8; i < batch.length; i++) {
    const bad = batch.slice();
    bad[i] ^= 0x5a;
    expectCorrupt(() => readBatchHeader(bad, 0, bad.length, { verifyCrc: true }));
  }
});

Deno.test("hostile lengths, counts and deltas give CorruptBatchError without huge allocations", () => {
  const good = encodeBatch(0, [{ key: b("k"), value: b("v") }], { now: 1 });
  // batch length beyond the buffer / above the limit
  const long = good.slice();
  new DataView(long.buffer).setUint32(8, 0xfffffff0);
  expectCorrupt(() => readBatchHeader(long));
  expectCorrupt(() => readBatchHeader(good, 0, good.length, { maxBatchBytes: 20 }));
  // record count lies (too many for the bytes, too few)
  const lie = good.slice();
  new DataView(lie.buffer).setInt32(39, 0x7fffffff);
  expectCorrupt(() => readBatchHeader(lie));
  const few = good.slice();
  new DataView(few.buffer).setInt32(39, 0);
  expectCorrupt(() => decodeRecords(few, 0, readBatchHeader(few)));
  const neg = good.slice();
  new DataView(neg.buffer).setInt32(39, -5);
  expectCorrupt(() => readBatchHeader(neg));
  // negative last offset delta, base offset beyond 2^53
  const nd = good.slice();
  new DataView(nd.buffer).setInt32(19, -1);
  expectCorrupt(() => readBatchHeader(nd));
  const big = good.slice();
  new DataView(big.buffer).setUint32(0, 0xffffffff);
  expectCorrupt(() => readBatchHeader(big));
  // bad magic, unknown attributes
  const mg = good.slice();
  mg[12] = 9;
  expectCorrupt(() => readBatchHeader(mg));
  const at = good.slice();
  at[18] = 0x01;
  expectCorrupt(() => readBatchHeader(at));
  // a record whose varint length is huge / never ends / negative
  for (
    const bytes of [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0x80, 0x80], [
      0x03,
    ]]
  ) {
    const r = new Uint8Array(BATCH_HEADER_BYTES + bytes.length);
    r.set(good.subarray(0, BATCH_HEADER_BYTES));
    r.set(bytes, BATCH_HEADER_BYTES);
    new DataView(r.buffer).setUint32(8, r.length - 12);
    new DataView(r.buffer).setInt32(39, 0);
    // count 0 with stray bytes, then count 1 (the record itself is bad)
    expectCorrupt(() => decodeRecords(r, 0, readBatchHeader(r)));
  }
  // offset delta beyond lastOffsetDelta
  const od = encodeBatch(0, [{ key: null, value: null }, { key: null, value: null }], { now: 1 });
  new DataView(od.buffer).setInt32(19, 0); // lastOffsetDelta 0 but the second record says 1
  new DataView(od.buffer).setInt32(39, 1);
  expectCorrupt(() => decodeRecords(od, 0, readBatchHeader(od)));
});

Deno.test("random mutations never crash the decoder (seeded fuzz)", () => {
  const rng = new Prng(99);
  let decoded = 0;
  let rejected = 0;
  for (let iter = 0; iter < 3000; iter++) {
    const src = encodeBatch(rng.intBetween(0, 1000), randomRecords(rng, rng.intBetween(1, 6)), {
      now: 5,
    });
    const bad = src.slice();
    const flips = rng.intBetween(1, 4);
    for (let f = 0; f < flips; f++) bad[rng.nextInt(bad.length)] = rng.nextInt(256);
    const cut = rng.chance(0.2) ? rng.nextInt(bad.length) : bad.length;
    const buf = bad.subarray(0, cut);
    try {
      // No CRC check: exercise the record parser on hostile bytes.
      const h = readBatchHeader(buf, 0, buf.length);
      decodeRecords(buf, 0, h);
      decoded++;
    } catch (e) {
      if (!(e instanceof CorruptBatchError)) throw e;
      rejected++;
    }
  }
  assert.ok(rejected > 0 && decoded + rejected === 3000);
  // Pure garbage
  for (let iter = 0; iter < 2000; iter++) {
    const g = rng.bytes(rng.intBetween(0, 200));
    try {
      decodeBatches(g);
    } catch (e) {
      if (!(e instanceof CorruptBatchError)) throw e;
    }
  }
});

Deno.test("checkRecord: the same refusals as encodeBatch, and a bound on a record's bytes anywhere in a batch", () => {
  const limits = { ...DEFAULT_BATCH_LIMITS, maxKeyBytes: 8, maxHeadersPerRecord: 2 };
  const bad: LogRecord[] = [
    { key: new Uint8Array(9), value: null },
    {
      key: null,
      value: null,
      headers: [{ key: "a", value: null }, { key: "b", value: null }, { key: "c", value: null }],
    },
    { key: null, value: null, timestamp: -5 },
  ];
  for (const r of bad) {
    assert.throws(() => checkRecord(r, limits), LogError);
    assert.throws(() => encodeBatch(0, [r], { limits }), LogError);
  }
  assert.throws(() => checkRecord({ key: null, value: null }, limits, true), InvalidRecordError);
  const rng = new Prng(5);
  for (let i = 0; i < 200; i++) {
    const records: LogRecord[] = Array.from({ length: 1 + rng.nextInt(300) }, () => ({
      key: rng.chance(0.5) ? rng.bytes(rng.nextInt(8)) : null,
      value: rng.bytes(rng.nextInt(3000)),
      timestamp: 1_000 + rng.nextInt(1_000_000_000),
    }));
    const bound = records.reduce((n, r) => n + checkRecord(r, limits), BATCH_HEADER_BYTES);
    assert.ok(
      encodeBatch(0, records, { limits: { ...limits, maxBatchBytes: 64 << 20 } }).length <= bound,
    );
  }
});
