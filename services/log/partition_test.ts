import assert from "node:assert/strict";
import { ManualClock, Prng, SimDisk } from "@deno-stores/shared/sim";
import {
  crc32cUpdate,
  DenoFileSystem,
  type FileHandle,
  type FileSystem,
} from "@deno-stores/shared/wal";
import {
  decodeBatches,
  type DecodedRecord,
  type LogRecord,
  readBatchHeader,
} from "./record_batch.ts";
import { CLEANER_CHECKPOINT_FILE, Partition, type PartitionConfig } from "./partition.ts";
import { Segment } from "./segment.ts";
import {
  BatchTooLargeError,
  InvalidConfigError,
  InvalidRecordError,
  LogClosedError,
  OffsetOutOfRangeError,
} from "./errors.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const DIR = "/data/topic-0";

function rec(value: string | null, key?: string | null, timestamp?: number): LogRecord {
  return {
    key: key === undefined || key === null ? null : te.encode(key),
    value: value === null ? null : te.encode(value),
    timestamp,
  };
}

function setup(config: PartitionConfig = {}, seed = 1) {
  const disk = new SimDisk({ rand: new Prng(seed) });
  const clock = new ManualClock(1_000_000);
  const warnings: string[] = [];
  const logger = { warn: (msg: string) => warnings.push(msg) };
  const open = (fs: FileSystem = disk.mount(), cfg: PartitionConfig = config) =>
    Partition.open(fs, DIR, cfg, { clock, logger });
  return { disk, clock, warnings, open };
}

/** Reads every record from `from` to the high watermark in small fetches. */
async function readAll(p: Partition, from = p.logStartOffset, maxBytes = 300) {
  const out: DecodedRecord[] = [];
  let at = from;
  while (at < p.highWatermark) {
    const r = await p.read(at, maxBytes);
    if (r.bytes.length === 0) break;
    out.push(...decodeBatches(r.bytes, at, { verifyCrc: true }));
    assert.ok(r.nextOffset > at);
    at = r.nextOffset;
  }
  return out;
}

const macrotask = () => new Promise<void>((r) => setTimeout(r, 0));

const values = (rs: DecodedRecord[]) =>
  rs.map((r) => (r.value === null ? null : td.decode(r.value)));

Deno.test("Partition append and read round-trip with consecutive offsets", async () => {
  const { open } = setup();
  const p = await open();
  const a = await p.append([rec("a"), rec("b"), rec("c")], { acks: "write" });
  const b = await p.append([rec("d")], { acks: "fsync" });
  assert.deepEqual(a, { baseOffset: 0, lastOffset: 2 });
  assert.deepEqual(b, { baseOffset: 3, lastOffset: 3 });
  assert.equal(p.highWatermark, 4);
  assert.equal(p.durableOffset, 4);
  const all = await readAll(p);
  assert.deepEqual(values(all), ["a", "b", "c", "d"]);
  assert.deepEqual(all.map((r) => r.offset), [0, 1, 2, 3]);
  // Reading inside a batch returns the whole batch; the helper filters.
  const mid = await p.read(1, 1 << 20);
  assert.equal(readBatchHeader(mid.bytes).baseOffset, 0);
  assert.deepEqual(values(decodeBatches(mid.bytes, 1)), ["b", "c", "d"]);
  assert.equal(mid.nextOffset, 4);
  const atEnd = await p.read(4, 100);
  assert.equal(atEnd.bytes.length, 0);
  assert.equal(atEnd.highWatermark, 4);
  await assert.rejects(() => p.read(5, 100), OffsetOutOfRangeError);
  await assert.rejects(() => p.read(-1, 100), OffsetOutOfRangeError);
  await p.close();
  await assert.rejects(() => p.append([rec("x")]), LogClosedError);
});

Deno.test("Partition.read returns at least one batch and whole batches within maxBytes", async () => {
  const { open } = setup();
  const p = await open();
  await p.append([rec("x".repeat(500))], { acks: "write" });
  for (let i = 0; i < 5; i++) await p.append([rec(`s${i}`)], { acks: "write" });
  const big = await p.read(0, 10);
  assert.equal(decodeBatches(big.bytes).length, 1); // larger than maxBytes, still returned
  const small = await p.read(1, 200);
  const got = decodeBatches(small.bytes);
  assert.ok(got.length >= 2 && got.length <= 5);
  assert.ok(small.bytes.length <= 200);
  await p.close();
});

Deno.test("Partition rejects over-limit batches without consuming offsets", async () => {
  const { open } = setup({ maxBatchBytes: 256 });
  const p = await open();
  await assert.rejects(() => p.append([rec("x".repeat(300))]), BatchTooLargeError);
  await assert.rejects(() => p.append([]), InvalidRecordError);
  assert.equal((await p.append([rec("ok")])).baseOffset, 0);
  await p.close();
});

Deno.test("Partition rolls by size, writes indexes on seal, and reads across segments", async () => {
  const { open, disk } = setup({ segmentBytes: 1024, indexIntervalBytes: 128 });
  const p = await open();
  for (let i = 0; i < 60; i++) {
    await p.append([rec(`value-${i}-${"p".repeat(40)}`)], { acks: "write" });
  }
  assert.ok(p.segmentCount > 3, `segments: ${p.segmentCount}`);
  const bases = p.segmentBaseOffsets();
  const files = disk.listFiles();
  for (const b of bases.slice(0, -1)) {
    const stem = `${DIR}/${String(b).padStart(20, "0")}`;
    assert.ok(files.includes(stem + ".log") && files.includes(stem + ".index"));
    assert.ok(files.includes(stem + ".timeindex"));
  }
  const all = await readAll(p, 0, 150);
  assert.equal(all.length, 60);
  assert.deepEqual(all.map((r) => r.offset), [...Array(60).keys()]);
  for (let o = 0; o < 60; o += 7) {
    const r = await p.read(o, 1);
    assert.equal(decodeBatches(r.bytes, o)[0].offset, o);
  }
  await p.close();
});

Deno.test("Partition rolls by age using the injected clock", async () => {
  const { open, clock } = setup({ segmentMs: 1000 });
  const p = await open();
  await p.append([rec("a")]);
  clock.advance(500);
  await p.append([rec("b")]);
  assert.equal(p.segmentCount, 1);
  clock.advance(600);
  await p.append([rec("c")]);
  assert.equal(p.segmentCount, 2);
  assert.deepEqual(p.segmentBaseOffsets(), [0, 2]);
  assert.deepEqual(values(await readAll(p)), ["a", "b", "c"]);
  await p.close();
});

Deno.test("Partition rebuilds missing or damaged index files on open", async () => {
  const { open, disk } = setup({ segmentBytes: 2048, indexIntervalBytes: 100 });
  let p = await open();
  const ts0 = 5_000_000;
  for (let i = 0; i < 80; i++) {
    await p.append([rec(`v${i}-${"z".repeat(30)}`, null, ts0 + i * 10)], { acks: "write" });
  }
  await p.close();
  const idx = disk.listFiles().filter((f) => f.endsWith(".index") || f.endsWith(".timeindex"));
  assert.ok(idx.length >= 4);
  await disk.remove(idx[0]);
  disk.flipByte(idx[3], 60);
  p = await open();
  assert.ok(p.stats.indexRebuilds >= 2, `rebuilds ${p.stats.indexRebuilds}`);
  assert.equal((await readAll(p)).length, 80);
  assert.deepEqual(await p.offsetForTimestamp(ts0 + 555), { offset: 56, timestamp: ts0 + 560 });
  await p.close();
  // Reopening after a clean close scans nothing and rebuilds nothing.
  p = await open();
  assert.equal(p.stats.indexRebuilds, 0);
  assert.equal(p.highWatermark, 80);
  await p.close();
});

Deno.test("Partition.offsetForTimestamp finds the first record in log order with ts >= target", async () => {
  const { open } = setup({ segmentBytes: 1024, indexIntervalBytes: 64 });
  const p = await open();
  const rng = new Prng(3);
  const stamps: number[] = [];
  for (let i = 0; i < 120; i++) {
    const ts = 10_000 + i * 100 + rng.intBetween(-250, 250); // not monotonic
    stamps.push(ts);
    await p.append([rec(`r${i}-${"q".repeat(20)}`, null, ts)], { acks: "write" });
  }
  assert.ok(p.segmentCount > 3);
  for (const target of [0, 9_000, 10_000, 12_345, 15_000, 21_000, 21_600, 30_000]) {
    const i = stamps.findIndex((t) => t >= target);
    const got = await p.offsetForTimestamp(target);
    if (i < 0) assert.equal(got, null);
    else assert.deepEqual(got, { offset: i, timestamp: stamps[i] }, `target ${target}`);
  }
  await p.close();
});

Deno.test("Partition.waitForData resolves on append, on timeout, on abort and on close", async () => {
  const { open } = setup();
  const p = await open();
  assert.equal(await p.waitForData(0, 0), false);
  const waiting = p.waitForData(0, 60_000);
  await p.append([rec("x")], { acks: "write" });
  assert.equal(await waiting, true);
  assert.equal(await p.waitForData(0, 10), true); // already there
  assert.equal(await p.waitForData(1, 5), false); // times out (short real timer)
  const ac = new AbortController();
  const aborted = p.waitForData(1, 60_000, ac.signal);
  ac.abort();
  assert.equal(await aborted, false);
  const pending = p.waitForData(1, 60_000);
  await p.close();
  assert.equal(await pending, false);
});

Deno.test("Partition retention by size deletes oldest closed segments, never the active one", async () => {
  const { open, disk } = setup({ segmentBytes: 1024, retentionBytes: 2500, retentionMs: -1 });
  const p = await open();
  for (let i = 0; i < 100; i++) await p.append([rec(`v${i}-${"r".repeat(50)}`)], { acks: "write" });
  const before = p.segmentCount;
  const deleted = await p.enforceRetention();
  assert.ok(deleted > 0 && p.segmentCount === before - deleted);
  assert.ok(p.size >= 2500 - 1024 && p.size < 2500 + 1024, `size ${p.size}`);
  assert.equal(p.logStartOffset, p.segmentBaseOffsets()[0]);
  await assert.rejects(() => p.read(0, 100), OffsetOutOfRangeError);
  const rest = await readAll(p);
  assert.equal(rest[0].offset, p.logStartOffset);
  assert.equal(rest[rest.length - 1].offset, 99);
  assert.equal(p.stats.retentionDeletions, deleted);
  assert.ok(!disk.listFiles().includes(`${DIR}/${"0".repeat(20)}.log`));
  // A second run has nothing to do.
  assert.equal(await p.enforceRetention(), 0);
  await p.close();
  const q = await setup().open(disk.mount(), { segmentBytes: 1024 });
  assert.equal(q.logStartOffset, p.logStartOffset);
  await q.close();
});

Deno.test("Partition retention by time uses each segment's newest timestamp", async () => {
  const { open, clock } = setup({ segmentBytes: 1024, retentionMs: 10_000 });
  const p = await open();
  for (let i = 0; i < 60; i++) {
    await p.append([rec(`v${i}-${"t".repeat(60)}`, null, clock.now())], { acks: "write" });
    clock.advance(1000);
  }
  const n = p.segmentCount;
  assert.ok(n > 3);
  clock.advance(5_000); // records older than 55 s after the start expire
  const deleted = await p.enforceRetention();
  assert.ok(deleted > 0 && deleted < n - 1);
  const first = (await readAll(p))[0];
  assert.ok(first.timestamp < clock.now() - 10_000); // the segment's newest record keeps it
  assert.ok(first.timestamp >= clock.now() - 10_000 - 10_000); // within one segment's span
  clock.advance(1_000_000);
  await p.enforceRetention();
  assert.equal(p.segmentCount, 1); // only the active segment is left
  assert.equal((await readAll(p)).length > 0, true);
  await p.close();
});

Deno.test("Partition with cleanup policy delete ignores compaction and vice versa", async () => {
  const { open } = setup({ segmentBytes: 1024, retentionBytes: 0, cleanupPolicy: "compact" });
  const p = await open();
  for (let i = 0; i < 40; i++) await p.append([rec(`v${i}-${"x".repeat(50)}`, `k${i % 3}`)]);
  assert.equal(await p.enforceRetention(), 0);
  await assert.rejects(() => p.append([rec("no key")]), InvalidRecordError);
  await p.close();
  const d = setup({ segmentBytes: 1024 });
  const q = await d.open();
  await q.append([rec("v", "k")]);
  assert.equal((await q.compact()).segmentsCleaned, 0);
  // reconfigure switches the policy on an open partition (and validates).
  assert.throws(() => q.reconfigure({ segmentBytes: -5 }), InvalidConfigError);
  q.reconfigure({ cleanupPolicy: "compact,delete" });
  assert.equal(q.config.cleanupPolicy, "compact,delete");
  assert.equal(q.config.segmentBytes, 1024);
  await assert.rejects(() => q.append([rec("no key")]), InvalidRecordError);
  await q.close();
});

/** Latest value per key over records, in the compacted-log sense. */
function latestByKey(rs: DecodedRecord[]): Map<string, string | null> {
  const m = new Map<string, string | null>();
  for (const r of rs) m.set(td.decode(r.key!), r.value === null ? null : td.decode(r.value));
  return m;
}

Deno.test("Partition.compact keeps the latest record per key and preserves offsets", async () => {
  const { open, clock } = setup({
    segmentBytes: 1024,
    cleanupPolicy: "compact",
    deleteRetentionMs: 5000,
  });
  const p = await open();
  const rng = new Prng(11);
  for (let i = 0; i < 200; i++) {
    const k = `key-${rng.nextInt(10)}`;
    const tomb = rng.chance(0.1);
    await p.append([rec(tomb ? null : `v${i}`, k)], { acks: "write" });
  }
  await p.roll();
  const before = await readAll(p);
  const expected = latestByKey(before);
  const r1 = await p.compact();
  assert.ok(r1.segmentsCleaned > 0 && r1.recordsRemoved > 0 && r1.bytesAfter < r1.bytesBefore);
  const after = await readAll(p, 0, 100);
  assert.deepEqual(latestByKey(after), expected);
  // Exactly one record per key, each at its original offset.
  assert.equal(after.length, expected.size);
  const byOffset = new Map(before.map((r) => [r.offset, r]));
  for (const r of after) {
    const orig = byOffset.get(r.offset)!;
    assert.deepEqual(r.key, orig.key);
    assert.deepEqual(r.value, orig.value);
  }
  // Every offset up to the high watermark is still readable: reads step over gaps.
  for (let o = 0; o < p.highWatermark; o += 13) {
    const got = decodeBatches((await p.read(o, 1)).bytes, o);
    assert.ok(got.length === 0 || got[0].offset >= o);
  }
  // Tombstones survive until deleteRetentionMs after the first cleaning, then go.
  const tombKeys = [...expected].filter(([, v]) => v === null).map(([k]) => k);
  assert.ok(tombKeys.length > 0, "seed should produce a latest tombstone");
  await p.compact();
  assert.equal(after.filter((r) => r.value === null).length, tombKeys.length);
  assert.equal((await readAll(p)).filter((r) => r.value === null).length, tombKeys.length);
  clock.advance(5000);
  const r3 = await p.compact();
  assert.equal(r3.tombstonesRemoved, tombKeys.length);
  const final = await readAll(p);
  assert.equal(final.filter((r) => r.value === null).length, 0);
  for (const [k, v] of expected) {
    if (v !== null) assert.equal(latestByKey(final).get(k), v);
  }
  // Survives a reopen (indexes rewritten for the cleaned segments).
  await p.close();
  const q = await open();
  assert.deepEqual(values(await readAll(q)), values(final));
  assert.equal(q.stats.indexRebuilds, 0);
  await q.close();
});

Deno.test("Partition.compact runs concurrently with appends and reads", async () => {
  const { open } = setup({ segmentBytes: 4096, cleanupPolicy: "compact" });
  const p = await open();
  for (let i = 0; i < 300; i++) await p.append([rec(`v${i}`, `k${i % 20}`)], { acks: "write" });
  const compaction = p.compact();
  const appends: Promise<unknown>[] = [];
  for (let i = 300; i < 400; i++) appends.push(p.append([rec(`v${i}`, `k${i % 20}`)]));
  const reads = readAll(p, 0, 500);
  const [res] = await Promise.all([compaction, Promise.all(appends), reads]);
  assert.ok(res.segmentsCleaned > 0);
  const all = await readAll(p);
  const m = latestByKey(all);
  for (let k = 0; k < 20; k++) assert.equal(m.get(`k${k}`), `v${380 + k}`);
  for (let i = 1; i < all.length; i++) assert.ok(all[i].offset > all[i - 1].offset);
  await p.close();
});

/**
 * `inner` with its `open` replaced; every other call delegated (so that the methods of a class
 * instance such as `DenoFileSystem` are kept, which a spread would drop).
 */
function withOpen(inner: FileSystem, open: FileSystem["open"]): FileSystem {
  return {
    open,
    readFile: (p) => inner.readFile(p),
    stat: (p) => inner.stat(p),
    readDir: (p) => inner.readDir(p),
    mkdir: (p) => inner.mkdir(p),
    rename: (a, b) => inner.rename(a, b),
    remove: (p) => inner.remove(p),
    syncDir: (p) => inner.syncDir(p),
  };
}

/** `h` with some of its calls replaced (the rest delegated; no `readInto`: reads go through `read`). */
function delegateHandle(h: FileHandle, overrides: Partial<FileHandle> = {}): FileHandle {
  return {
    path: h.path,
    size: () => h.size(),
    read: (o, l) => h.read(o, l),
    writeAt: (o, d) => h.writeAt(o, d),
    append: (d) => h.append(d),
    truncate: (n) => h.truncate(n),
    close: () => h.close(),
    sync: () => h.sync(),
    ...overrides,
  };
}

/** `inner`, with the handles of `.log` files changed by `wrap` (other files untouched). */
function wrapLogHandles(
  inner: FileSystem,
  wrap: (h: FileHandle) => Partial<FileHandle>,
): FileSystem {
  return withOpen(inner, async (path, options) => {
    const h = await inner.open(path, options);
    return path.endsWith(".log") ? delegateHandle(h, wrap(h)) : h;
  });
}

/** A file system whose `.log` fsyncs wait for the test to open a gate. */
function gatedFs(inner: FileSystem) {
  let open: () => void = () => {};
  let gate = new Promise<void>((r) => (open = r));
  let syncs = 0;
  let passThrough = false;
  const fs = wrapLogHandles(inner, (h) => ({
    sync: async () => {
      syncs++;
      if (!passThrough) await gate;
      await h.sync();
    },
  }));
  return {
    fs,
    syncs: () => syncs,
    passThrough: () => {
      passThrough = true;
      open();
    },
    release: () => {
      open();
      gate = new Promise<void>((r) => (open = r));
    },
  };
}

Deno.test("Partition group commit shares fsyncs between concurrent appenders", async () => {
  const { open, disk } = setup();
  const gated = gatedFs(disk.mount());
  const p = await open(gated.fs);
  const writes = p.stats.writes;
  const first = p.append([rec("c0")], { acks: "fsync" });
  await macrotask(); // the first round holds at the gate
  assert.equal(gated.syncs(), 1);
  // 15 more while that fsync is held at the gate: they wait for one more round, which writes
  // them with one write before its fsync.
  const rest = Array.from(
    { length: 15 },
    (_, i) => p.append([rec(`c${i + 1}`)], { acks: "fsync" }),
  );
  await macrotask();
  assert.equal(gated.syncs(), 1);
  assert.equal(p.stats.writes - writes, 1, "only the first is written");
  assert.equal(p.highWatermark, 1, "the 15 are not readable before they are written");
  gated.release();
  await macrotask(); // the next round starts and holds at the gate
  assert.equal(p.stats.writes - writes, 2, "the 15 in one write");
  assert.equal(p.highWatermark, 16);
  gated.release();
  const res = await Promise.all([first, ...rest]);
  assert.equal(gated.syncs(), 2);
  assert.deepEqual(res.map((r) => r.baseOffset).sort((a, b) => a - b), [...Array(16).keys()]);
  assert.equal(p.durableOffset, 16);
  gated.passThrough();
  await p.close();
});

Deno.test("Partition writes a burst of queued appends with one write, in order", async () => {
  const { open } = setup({ segmentBytes: 64 * 1024 });
  const p = await open();
  const writes = p.stats.writes;
  const res = await Promise.all(
    Array.from({ length: 50 }, (_, i) => p.append([rec(`v${i}`), rec(`w${i}`)], { acks: "write" })),
  );
  assert.equal(p.stats.writes - writes, 1);
  assert.deepEqual(res.map((r) => r.baseOffset), Array.from({ length: 50 }, (_, i) => 2 * i));
  assert.equal(p.highWatermark, 100);
  assert.deepEqual(
    values(await readAll(p)),
    Array.from({ length: 50 }, (_, i) => [`v${i}`, `w${i}`]).flat(),
  );
  // One at a time: each append is written at once (nothing waits for a later one).
  const r = await p.append([rec("alone")], { acks: "write" });
  assert.equal(r.baseOffset, 100);
  assert.equal(p.highWatermark, 101);
  assert.equal(p.stats.writes - writes, 2);
  // A burst larger than a segment rolls inside the burst; every batch lands once, in order.
  const big = "x".repeat(3000);
  await Promise.all(Array.from({ length: 60 }, () => p.append([rec(big)], { acks: "write" })));
  assert.ok(p.segmentCount > 1);
  const all = await readAll(p, 0, 1 << 20);
  assert.equal(all.length, 161);
  for (let i = 0; i < all.length; i++) assert.equal(all[i].offset, i);
  await p.close();
  // And it is all there after reopening.
  const again = await open();
  assert.equal((await readAll(again, 0, 1 << 20)).length, 161);
  await again.close();
});

Deno.test("Partition: a failed write rejects every append of its burst, none is readable", async () => {
  const { disk, open } = setup();
  let failing = false;
  const fs = wrapLogHandles(disk.mount(), (h) => ({
    writeAt: (o, d) => failing ? Promise.reject(new Error("disk full")) : h.writeAt(o, d),
  }));
  const p = await open(fs);
  await p.append([rec("before")], { acks: "fsync" });
  failing = true;
  const burst = await Promise.allSettled(
    Array.from({ length: 8 }, (_, i) => p.append([rec(`lost${i}`)], { acks: "write" })),
  );
  assert.ok(
    burst.every((r) => r.status === "rejected"),
    JSON.stringify(burst.map((r) => r.status)),
  );
  assert.equal(p.highWatermark, 1, "nothing of the failed burst is readable");
  await assert.rejects(p.append([rec("after")]), /unusable/);
  await p.close().catch(() => {});
});

Deno.test("Partition: an acks=write append is not held up by acks=fsync batches waiting for a round", async () => {
  const { open, disk } = setup();
  const gated = gatedFs(disk.mount());
  const p = await open(gated.fs);
  const first = p.append([rec("f0")], { acks: "fsync" });
  await macrotask(); // the first round holds at the gate
  // Held at the gate: two acks=fsync appends wait for the next round, unwritten.
  const waiting = [
    p.append([rec("f1")], { acks: "fsync" }),
    p.append([rec("f2")], { acks: "fsync" }),
  ];
  await macrotask();
  assert.equal(p.highWatermark, 1);
  // An acks=write append writes what is queued before it, and resolves while the fsync is held.
  const w = await p.append([rec("w3")], { acks: "write" });
  assert.equal(w.baseOffset, 3);
  assert.equal(p.highWatermark, 4);
  assert.deepEqual(values(await readAll(p)), ["f0", "f1", "f2", "w3"]);
  gated.passThrough();
  await Promise.all([first, ...waiting]);
  assert.equal(p.durableOffset >= 3, true);
  await p.close();
});

Deno.test("Partition: an acks=fsync append whose write failed is not acknowledged by the round that follows", async () => {
  const { open, disk } = setup();
  const gated = gatedFs(disk.mount());
  let failing = false;
  const fs = wrapLogHandles(gated.fs, (h) => ({
    writeAt: (o, d) => failing ? Promise.reject(new Error("disk full")) : h.writeAt(o, d),
  }));
  const p = await open(fs);
  const x = p.append([rec("x")], { acks: "fsync" });
  await macrotask(); // x's round holds at the gate
  assert.equal(gated.syncs(), 1);
  // y waits for the next round, unwritten; z (acks=write) writes y and z, and that write fails.
  // Settled into a value at once: it rejects before the test gets to look at it.
  const y = p.append([rec("y")], { acks: "fsync" }).then(() => null, (e: Error) => e);
  await macrotask();
  failing = true;
  await assert.rejects(p.append([rec("z")], { acks: "write" }));
  gated.passThrough();
  await x;
  assert.ok((await y) instanceof Error, "y was never written: no round may acknowledge it");
  assert.equal(p.highWatermark, 1);
  assert.ok(p.durableOffset <= 1, `durable ${p.durableOffset}`);
  await p.close().catch(() => {});
});

Deno.test("Partition rolls on size counting batches still being written", async () => {
  const { open, disk } = setup({ segmentBytes: 1024 });
  let hold: Promise<void> | null = null;
  let open_: () => void = () => {};
  const fs = wrapLogHandles(disk.mount(), (h) => ({
    writeAt: async (o, d) => {
      if (hold !== null) await hold;
      return h.writeAt(o, d);
    },
  }));
  const p = await open(fs);
  hold = new Promise<void>((r) => (open_ = r));
  // Each append is written alone (no wave), all held in flight: ~300 bytes each.
  const all = [];
  for (let i = 0; i < 8; i++) {
    all.push(p.append([rec("v".repeat(250))], { acks: "write" }));
    await macrotask();
  }
  hold = null;
  open_();
  await Promise.all(all);
  assert.ok(p.segmentCount >= 3, `${p.segmentCount} segments`);
  // No segment past segmentBytes: each roll came before the batch that would overflow.
  const files = disk.mount();
  for (const name of await files.readDir(DIR)) {
    if (!name.endsWith(".log")) continue;
    const h = await files.open(`${DIR}/${name}`);
    assert.ok(h.size() <= 1024, `${name}: ${h.size()} bytes`);
    await h.close();
  }
  assert.equal((await readAll(p, 0, 1 << 20)).length, 8);
  await p.close();
});

Deno.test("Partition fsync count stays below the append count under concurrency", async () => {
  const { open } = setup();
  const p = await open();
  const before = p.stats.fsyncs;
  const res = await Promise.all(
    Array.from({ length: 16 }, (_, i) => p.append([rec(`c${i}`)], { acks: "fsync" })),
  );
  assert.deepEqual(res.map((r) => r.baseOffset).sort((a, b) => a - b), [...Array(16).keys()]);
  const fsyncs = p.stats.fsyncs - before;
  assert.ok(fsyncs <= 17, `fsyncs ${fsyncs}`); // SimDisk fsyncs cost a microtask, like writes
  assert.equal(p.durableOffset, 16);
  await p.close();
});

Deno.test("Partition with logAppend time stamps batches with the clock", async () => {
  const { open, clock } = setup({ timestampType: "logAppend" });
  const p = await open();
  clock.set(2_000_000);
  const r = await p.append([rec("a", null, 5)]);
  assert.equal(r.logAppendTime, 2_000_000);
  assert.equal((await readAll(p))[0].timestamp, 2_000_000);
  await p.close();
});

// ---------------------------------------------------------------------------------------------
// Crashes (SimDisk)

Deno.test("Partition crash keeps fsync-acked records and never reuses lost write-acked offsets", async () => {
  const { open, disk } = setup({ offsetReserveStep: 50 });
  const p = await open();
  await p.append([rec("durable-1"), rec("durable-2")], { acks: "fsync" });
  let lastHanded = -1;
  for (let i = 0; i < 120; i++) {
    lastHanded = (await p.append([rec(`w${i}`)], { acks: "write" })).lastOffset;
  }
  disk.crash();
  const q = await open();
  const all = await readAll(q);
  assert.deepEqual(values(all).slice(0, 2), ["durable-1", "durable-2"]);
  assert.ok(q.highWatermark > lastHanded, `hw ${q.highWatermark} <= ${lastHanded}`);
  const next = await q.append([rec("after")], { acks: "fsync" });
  assert.ok(next.baseOffset > lastHanded);
  // A reader parked inside the lost range steps over the gap batch.
  const parked = await q.read(5, 1000);
  assert.ok(parked.bytes.length > 0);
  assert.ok(decodeBatches(parked.bytes, 5).every((r) => r.offset > lastHanded));
  assert.deepEqual(values(await readAll(q, 5)), ["after"]);
  await q.close();
});

Deno.test("Partition truncates a CRC-corrupted batch in the active segment's tail", async () => {
  const { open, disk, warnings } = setup();
  const p = await open();
  const sizes: number[] = [];
  for (let i = 0; i < 10; i++) {
    await p.append([rec(`v${i}`)], { acks: "write" });
    sizes.push(p.size);
  }
  await p.flush();
  const file = `${DIR}/${"0".repeat(20)}.log`;
  disk.crash();
  disk.flipByte(file, sizes[6] + 30); // inside the 8th batch (offset 7)
  const q = await open();
  assert.deepEqual(values(await readAll(q)), ["v0", "v1", "v2", "v3", "v4", "v5", "v6"]);
  assert.equal(q.stats.truncatedBytes, sizes[9] - sizes[6]);
  assert.ok(warnings.some((w) => w.includes("truncating")));
  // Offsets 7..9 were handed out before: they are not reused.
  assert.ok((await q.append([rec("new")])).baseOffset >= 10);
  await q.close();
});

Deno.test("Partition survives randomized torn crashes with concurrent appenders (seeded)", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rng = new Prng(seed);
    const { open, disk } = setup({
      segmentBytes: 2048,
      indexIntervalBytes: 256,
      offsetReserveStep: 20,
    }, seed);
    const acked: { offset: number; value: string }[] = [];
    let maxHanded = -1;
    let p = await open();
    for (let round = 0; round < 3; round++) {
      const inflight: Promise<void>[] = [];
      const n = rng.intBetween(5, 40);
      for (let i = 0; i < n; i++) {
        const value = `s${seed}-r${round}-${i}-${"x".repeat(rng.nextInt(80))}`;
        const count = rng.intBetween(1, 3);
        const acks = rng.chance(0.5) ? "fsync" : "write";
        const recs = Array.from({ length: count }, (_, j) => rec(`${value}/${j}`));
        inflight.push(
          p.append(recs, { acks }).then((r) => {
            maxHanded = Math.max(maxHanded, r.lastOffset);
            if (acks === "fsync") {
              for (let j = 0; j < count; j++) {
                acked.push({ offset: r.baseOffset + j, value: `${value}/${j}` });
              }
            }
          }, () => {}),
        );
        if (rng.chance(0.3)) await inflight[inflight.length - 1];
      }
      // Crash at a random moment while appends are in flight.
      for (let k = rng.nextInt(20); k > 0; k--) await Promise.resolve();
      disk.crash({ torn: true });
      await Promise.allSettled(inflight);
      p = await open();
      const all = await readAll(p, 0, 4096);
      const byOffset = new Map(all.map((r) => [r.offset, td.decode(r.value!)]));
      for (const a of acked) {
        assert.equal(
          byOffset.get(a.offset),
          a.value,
          `seed ${seed}: acked offset ${a.offset} lost`,
        );
      }
      for (let i = 1; i < all.length; i++) assert.ok(all[i].offset > all[i - 1].offset);
      assert.ok(p.highWatermark > maxHanded, `seed ${seed}: offsets may be reused`);
    }
    await p.close();
  }
});

Deno.test("Partition crash at any step of compaction leaves a consistent log", async () => {
  // Count the disk operations of one compaction, then crash before each of them in turn.
  const build = async (disk: SimDisk, open: () => Promise<Partition>) => {
    const p = await open();
    for (let i = 0; i < 120; i++) {
      await p.append([rec(i % 7 === 0 ? null : `v${i}`, `k${i % 9}`)], { acks: "write" });
    }
    await p.roll();
    await p.flush();
    const expected = latestByKey(await readAll(p));
    disk.resetStats();
    return { p, expected };
  };
  const cfg: PartitionConfig = { segmentBytes: 1500, cleanupPolicy: "compact" };
  const probe = setup(cfg);
  let ops = 0;
  const { p: p0 } = await build(probe.disk, () => probe.open());
  probe.disk.failWith(() => {
    ops++;
    return undefined;
  });
  await p0.compact();
  probe.disk.failWith(null);
  await p0.close();
  assert.ok(ops > 10);
  for (let k = 0; k < ops; k += Math.max(1, Math.floor(ops / 25))) {
    const { disk, open } = setup(cfg, k + 1);
    const { p, expected } = await build(disk, () => open());
    let n = 0;
    disk.failWith(() => (n++ === k ? new Error("power cut") : undefined));
    await p.compact().catch(() => {});
    disk.failWith(null);
    disk.crash({ torn: true });
    const q = await open();
    const all = await readAll(q);
    assert.deepEqual(latestByKey(all), expected, `crash before op ${k}`);
    for (let i = 1; i < all.length; i++) assert.ok(all[i].offset > all[i - 1].offset);
    assert.ok(!disk.listFiles().some((f) => f.endsWith(".cleaned")));
    // And compaction completes after recovery.
    await q.compact();
    assert.deepEqual(latestByKey(await readAll(q)), expected);
    await q.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Real disk

for (const syncIo of [false, true]) {
  Deno.test(`Partition on the real file system (syncIo ${syncIo}): append, roll, reopen, read, read into a buffer`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "log-partition-" });
    try {
      const fs = new DenoFileSystem({ syncIo });
      const clock = new ManualClock(1_000);
      const cfg: PartitionConfig = { segmentBytes: 4096 };
      let p = await Partition.open(fs, `${dir}/p0`, cfg, { clock });
      const appends = [];
      for (let i = 0; i < 200; i++) {
        appends.push(
          p.append([rec(`value-${i}`, `k${i}`)], { acks: i % 10 === 0 ? "fsync" : "write" }),
        );
      }
      await Promise.all(appends);
      assert.ok(p.segmentCount > 1);
      const reads = await Promise.all([readAll(p), readAll(p, 100)]);
      assert.equal(reads[0].length, 200);
      assert.equal(reads[1][0].offset, 100);
      await p.close();
      p = await Partition.open(fs, `${dir}/p0`, cfg, { clock });
      assert.equal(p.highWatermark, 200);
      assert.deepEqual(values(await readAll(p)).slice(198), ["value-198", "value-199"]);
      // Reading through one reused buffer gives the same records; the bytes are views of it.
      const into = new Uint8Array(64 * 1024);
      const seen: string[] = [];
      for (let at = 0; at < p.highWatermark;) {
        const r = await p.read(at, 1024, { into });
        assert.equal(r.bytes.buffer, into.buffer);
        for (const d of decodeBatches(r.bytes, at)) seen.push(td.decode(d.value!));
        at = r.nextOffset;
      }
      assert.deepEqual(seen, Array.from({ length: 200 }, (_, i) => `value-${i}`));
      // A buffer too small for the read is not used.
      const tiny = new Uint8Array(8);
      const small = await p.read(0, 1024, { into: tiny });
      assert.notEqual(small.bytes.length, 0);
      assert.notEqual(small.bytes.buffer, tiny.buffer);
      assert.ok(small.bytes.length > tiny.length);
      await p.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Regressions

/**
 * A FileSystem wrapper (delegating every method explicitly, so class instances work) that
 * counts open handles, records writes per path, can hold reads at a gate and reports opens.
 */
function trackedFs(inner: FileSystem) {
  const state = {
    openHandles: 0,
    /** Largest single write per path. */
    maxWrite: new Map<string, number>(),
    /** Paths written to (any write). */
    written: new Set<string>(),
    onOpen: (_path: string) => {},
    /** While set, reads of `.log` files wait for it. */
    readGate: null as Promise<void> | null,
    /** Reads that reached a file. */
    reads: 0,
  };
  const wrap = (h: FileHandle): FileHandle => {
    let closed = false;
    const note = (n: number) => {
      state.written.add(h.path);
      state.maxWrite.set(h.path, Math.max(state.maxWrite.get(h.path) ?? 0, n));
    };
    return delegateHandle(h, {
      read: async (o, l) => {
        state.reads++;
        if (state.readGate !== null && h.path.endsWith(".log")) await state.readGate;
        return h.read(o, l);
      },
      writeAt: (o, d) => {
        note(d.length);
        return h.writeAt(o, d);
      },
      append: (d) => {
        note(d.length);
        return h.append(d);
      },
      close: () => {
        if (!closed) state.openHandles--;
        closed = true;
        return h.close();
      },
    });
  };
  const fs = withOpen(inner, async (path, options) => {
    const h = await inner.open(path, options);
    state.openHandles++;
    state.onOpen(path);
    return wrap(h);
  });
  return { fs, state };
}

/** `n` records with distinct keys `k<from>..` and values of `valueBytes` bytes. */
function distinct(from: number, n: number, valueBytes: number, tag = "v"): LogRecord[] {
  const out: LogRecord[] = [];
  for (let i = from; i < from + n; i++) {
    out.push(rec(tag + "-" + "x".repeat(valueBytes), `k${i}`));
  }
  return out;
}

Deno.test("Partition.compact yields to the event loop while building the key map (syncIo)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "log-compact-yield-" });
  try {
    const { fs, state } = trackedFs(new DenoFileSystem({ syncIo: true }));
    const p = await Partition.open(fs, `${dir}/p0`, { cleanupPolicy: "compact" }, {
      clock: new ManualClock(1_000),
      logger: { warn: () => {} },
    });
    // ~9 MiB of distinct keys (phase 1 long enough for several turns of a timer chain, which
    // Deno slows to ~4 ms a link once nested); the last record repeats the first key, so
    // phase 2 changes the first batch and opens the `.cleaned` file in its first slice.
    for (let b = 0; b < 90; b++) await p.append(distinct(b * 100, 100, 1000), { acks: "write" });
    await p.append([rec("again", "k0")], { acks: "write" });
    await p.roll();
    await p.flush();
    assert.ok(p.size > 8 * 1024 * 1024);
    let ticks = 0;
    let running = true;
    const tick = () => {
      ticks++;
      if (running) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    let ticksBeforePhase2 = -1;
    state.onOpen = (path) => {
      if (path.endsWith(".cleaned") && ticksBeforePhase2 < 0) ticksBeforePhase2 = ticks;
    };
    const r = await p.compact();
    running = false;
    await macrotask();
    assert.equal(r.recordsRemoved, 1);
    // Phase 1 alone (9 MiB, read synchronously) let the event loop turn several times.
    assert.ok(ticksBeforePhase2 >= 4, `event-loop turns during phase 1: ${ticksBeforePhase2}`);
    await p.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Partition.compact copies an unchanged prefix in bounded writes and leaves unchanged segments alone", async () => {
  const { disk, open } = setup({ cleanupPolicy: "compact" });
  const { fs, state } = trackedFs(disk.mount());
  const p = await open(fs);
  // ~3 MiB of distinct keys, then the last key again: only the second to last batch changes,
  // everything before it is an unchanged prefix of ~3 MiB.
  for (let b = 0; b < 30; b++) await p.append(distinct(b * 100, 100, 1000), { acks: "write" });
  await p.append([rec("new", "k2999")], { acks: "write" }); // supersedes the previous batch's last
  await p.roll();
  await p.flush();
  const seg0 = `${DIR}/00000000000000000000`;
  const r1 = await p.compact();
  assert.equal(r1.recordsRemoved, 1);
  assert.equal(r1.segmentsCleaned, 1);
  // The 3 MiB prefix was copied in ~1 MiB writes, never buffered whole.
  const biggest = state.maxWrite.get(`${seg0}.cleaned`) ?? 0;
  // (a slice is ~1 MiB plus the batch that crosses it; before the fix one write of ~3 MiB)
  assert.ok(biggest > 0 && biggest <= 1.5 * 1024 * 1024, `write of ${biggest}`);
  const m = latestByKey(await readAll(p, 0, 1 << 20));
  assert.equal(m.size, 3000);
  assert.equal(m.get("k2999"), "new");
  // A second pass with new keys elsewhere: the first segment is scanned, nothing is dropped and
  // no segment file is written (the new segment is unchanged too).
  await p.append(distinct(5000, 50, 10), { acks: "write" });
  await p.roll();
  await p.flush();
  state.written.clear();
  const logBefore = disk.contents(`${seg0}.log`);
  const r2 = await p.compact();
  assert.equal(r2.recordsRemoved, 0);
  assert.equal(r2.segmentsCleaned, 0);
  assert.deepEqual([...state.written].filter((f) => /\.(log|cleaned)$/.test(f)), []);
  assert.deepEqual(disk.contents(`${seg0}.log`), logBefore);
  assert.ok(!disk.listFiles().some((f) => f.endsWith(".cleaned")));
  await p.close();
});

Deno.test("Partition.compact gets past a full key map with a cleaner checkpoint", async () => {
  const { open, warnings, disk } = setup({
    cleanupPolicy: "compact",
    compactionMapBytesMax: 64 * 1024,
  });
  const p = await open();
  // Six full rounds of updates of the same 600 keys, one segment each: 3600 records.
  for (let round = 0; round < 6; round++) {
    for (let k = 0; k < 600; k += 100) {
      const recs: LogRecord[] = [];
      for (let i = k; i < k + 100; i++) recs.push(rec(`r${round}`, `key${i}`));
      await p.append(recs, { acks: "write" });
    }
    await p.roll();
  }
  await p.flush();
  const before = p.size;
  let passes = 0;
  let sawFull = false;
  for (; passes < 30; passes++) {
    const r = await p.compact();
    if (r.mapFull) sawFull = true;
    if (!r.mapFull && r.recordsRemoved === 0) break;
  }
  const all = await readAll(p, 0, 1 << 20);
  assert.equal(all.length, 600, `after ${passes} passes`);
  assert.ok(sawFull, "the tiny map should fill");
  assert.ok(warnings.some((w) => w.includes("key map full")));
  assert.ok(all.every((r) => td.decode(r.value!) === "r5"));
  assert.deepEqual(all.map((r) => r.offset), [...Array(600).keys()].map((i) => 3000 + i));
  assert.ok(p.size < before / 3);
  assert.equal(p.cleanerCheckpoint, 3600);
  // The checkpoint survives a reopen; a damaged one only makes compaction start over.
  await p.close();
  let q = await open();
  assert.equal(q.cleanerCheckpoint, 3600);
  for (let k = 0; k < 100; k++) await q.append([rec("late", `key${k}`)], { acks: "write" });
  await q.roll();
  await q.close();
  disk.flipByte(`${DIR}/${CLEANER_CHECKPOINT_FILE}`, 10);
  q = await open();
  assert.equal(q.cleanerCheckpoint, 0);
  assert.ok(warnings.some((w) => w.includes("cleaner checkpoint unreadable")));
  for (let i = 0; i < 30; i++) {
    const r = await q.compact();
    if (!r.mapFull && r.recordsRemoved === 0) break;
  }
  const m = latestByKey(await readAll(q, 0, 1 << 20));
  assert.equal(m.size, 600);
  for (let k = 0; k < 600; k++) assert.equal(m.get(`key${k}`), k < 100 ? "late" : "r5");
  assert.equal((await readAll(q, 0, 1 << 20)).length, 600);
  await q.close();
});

Deno.test("Partition with an unreadable reservation checkpoint and no segment keeps acked data", async () => {
  const { disk, open } = setup({ offsetReserveStep: 100 });
  await disk.mkdir(DIR);
  const h = await disk.open(`${DIR}/offsets.reserved`, { create: true });
  await h.writeAt(0, new Uint8Array(48));
  await h.sync();
  await h.close();
  await disk.syncDir(DIR);
  const p = await open();
  assert.deepEqual(p.segmentBaseOffsets(), [100]);
  assert.equal(p.recovery.recoveredEnd, 100);
  assert.equal(p.highWatermark, 100);
  const r = await p.append([rec("acked")], { acks: "fsync" });
  assert.equal(r.baseOffset, 100);
  disk.crash();
  const q = await open();
  assert.equal(q.recovery.truncations, 0);
  const got = await readAll(q);
  assert.deepEqual(got.map((x) => [x.offset, td.decode(x.value!)]), [[100, "acked"]]);
  await q.close();
});

Deno.test("Partition.offsetForTimestamp survives segments deleted while it runs", async () => {
  const { open } = setup({ retentionBytes: -1, retentionMs: -1 });
  const p = await open();
  for (let s = 0; s < 4; s++) {
    for (let i = 0; i < 5; i++) {
      await p.append([rec("x".repeat(100), null, 5000)], { acks: "write" });
    }
    await p.roll();
  }
  await p.flush();
  assert.deepEqual(p.segmentBaseOffsets(), [0, 5, 10, 15, 20]);
  p.reconfigure({ retentionBytes: 1 });
  const q = p.offsetForTimestamp(5000);
  const deleted = p.enforceRetention();
  assert.deepEqual(await q, { offset: 15, timestamp: 5000 });
  assert.equal(await deleted, 3);
  assert.equal(p.logStartOffset, 15);
  await p.close();
});

Deno.test("Partition reads cut by close() fail with LogClosedError", async () => {
  const { disk, open } = setup({});
  const { fs, state } = trackedFs(disk.mount());
  const p = await open(fs);
  // A closed segment of ~1.5 MiB: finding the last timestamp takes two reads.
  for (let b = 0; b < 15; b++) {
    const recs: LogRecord[] = [];
    for (let i = 0; i < 100; i++) recs.push(rec("x".repeat(1000), null, 1000));
    await p.append(recs, { acks: "write" });
  }
  await p.append([rec("late", null, 9000)], { acks: "write" });
  await p.roll();
  await p.flush();
  let openGate = () => {};
  state.readGate = new Promise((r) => (openGate = r));
  const found = p.offsetForTimestamp(9000).then((v) => v, (e) => e);
  await macrotask(); // the first read waits at the gate
  const closing = p.close();
  await macrotask(); // close() waits for the segment's queued read
  state.readGate = null;
  openGate();
  await closing;
  const r = await found;
  assert.ok(r instanceof LogClosedError, `got ${r}`);
});

Deno.test("Partition.read moves past offsets that no segment holds any more", async () => {
  const { disk, open } = setup({});
  let p = await open();
  for (let i = 0; i < 5; i++) await p.append([rec(`a${i}`), rec(`b${i}`)], { acks: "write" });
  await p.roll();
  await p.close();
  // Lose the closed segment's last batch (offsets 8-9) while its index still says it ends at
  // 10: the index is re-signed for the shorter log, so it is trusted at open.
  const stem = `${DIR}/00000000000000000000`;
  const size = disk.contents(`${stem}.log`).length;
  const cut = size - size / 5;
  disk.truncateFile(`${stem}.log`, cut);
  for (const suffix of [".index", ".timeindex"]) {
    const b = disk.contents(stem + suffix);
    new DataView(b.buffer).setUint32(16, cut);
    new DataView(b.buffer).setUint32(4, crc32cUpdate(0, b, 8, b.length));
    disk.writeGarbage(stem + suffix, 0, b);
  }
  p = await open();
  assert.equal(p.highWatermark, 10);
  assert.equal(p.recovery.indexRebuilds, 0);
  const r = await p.read(8, 1 << 20);
  assert.equal(r.bytes.length, 0);
  assert.equal(r.nextOffset, 10); // not 8: the consumer moves on
  assert.equal(r.highWatermark, 10);
  assert.equal((await p.read(10, 100)).nextOffset, 10);
  await p.close();
});

Deno.test("Partition.close acknowledges acks=fsync appends written before it", async () => {
  const { disk, open } = setup();
  const gated = gatedFs(disk.mount());
  const p = await open(gated.fs);
  const results: string[] = [];
  const note = (pr: Promise<{ baseOffset: number }>) =>
    pr.then((r) => results.push(`ok ${r.baseOffset}`), (e) => results.push(`err ${e.name}`));
  const all = [note(p.append([rec("a0")], { acks: "fsync" }))];
  await macrotask(); // the first round holds at the gate
  for (let i = 1; i < 4; i++) all.push(note(p.append([rec(`a${i}`)], { acks: "fsync" })));
  await macrotask(); // written, waiting for the next round
  const closing = p.close();
  await assert.rejects(() => p.append([rec("late")]), LogClosedError);
  await macrotask();
  gated.passThrough();
  await Promise.all(all);
  await closing;
  assert.deepEqual(results.sort(), ["ok 0", "ok 1", "ok 2", "ok 3"]);
  assert.equal(p.close(), closing); // a second call returns the same promise
  disk.crash();
  const q = await open();
  assert.deepEqual(values(await readAll(q)), ["a0", "a1", "a2", "a3"]);
  await q.close();
});

Deno.test("Partition keeps a bounded number of files open however many segments it has", async () => {
  const { disk, open } = setup({ segmentBytes: 1024, cleanupPolicy: "compact,delete" });
  const { fs, state } = trackedFs(disk.mount());
  // Idle sealed segments keep their files open up to this many (the most recently read).
  const idleMax = Segment.idleHandlesMax;
  Segment.idleHandlesMax = 2;
  try {
    await boundedHandles(fs, state, open);
  } finally {
    Segment.idleHandlesMax = idleMax;
  }
});

async function boundedHandles(
  fs: FileSystem,
  state: { openHandles: number; onOpen: (path: string) => void },
  open: (fs?: FileSystem) => Promise<Partition>,
) {
  const IDLE = 2;
  let p = await open(fs);
  for (let i = 0; i < 300; i++) {
    await p.append([rec(`value-${i}-${"p".repeat(60)}`, `k${i % 40}`)], { acks: "write" });
  }
  await p.flush();
  await macrotask();
  assert.ok(p.segmentCount > 30, `segments: ${p.segmentCount}`);
  // The active segment (write + fsync handle) and the reservation checkpoint.
  assert.ok(state.openHandles <= 4 + IDLE, `open handles after rolls: ${state.openHandles}`);
  // Closed segments are still readable (reopened on demand), then closed again.
  const all = await readAll(p, 0, 200);
  assert.equal(all.length, 300);
  assert.equal((await p.offsetForTimestamp(0))?.offset, 0);
  await macrotask();
  // An old segment read again and again keeps its file open meanwhile (no reopen per read).
  let opens = 0;
  state.onOpen = () => opens++;
  for (let i = 0; i < 5; i++) await p.read(0, 100);
  assert.ok(opens <= 1, `opens for 5 reads of one old segment: ${opens}`);
  state.onOpen = () => {};
  assert.ok(state.openHandles <= 4 + IDLE, `open handles after reads: ${state.openHandles}`);
  // Compaction and retention close what they open.
  const r = await p.compact();
  assert.ok(r.segmentsCleaned > 0);
  p.reconfigure({ retentionBytes: 4096 });
  assert.ok((await p.enforceRetention()) > 0);
  await macrotask();
  assert.ok(state.openHandles <= 4 + IDLE, `open handles after maintenance: ${state.openHandles}`);
  assert.equal(latestByKey(await readAll(p, p.logStartOffset, 500)).size > 0, true);
  await p.close();
  assert.equal(state.openHandles, 0);
  // Reopened: closed segments are not kept open either.
  p = await open(fs);
  await macrotask();
  assert.ok(state.openHandles <= 4 + IDLE, `open handles after reopen: ${state.openHandles}`);
  await p.close();
  assert.equal(state.openHandles, 0);
}

Deno.test("Partition keeps the newest bytes of a burst larger than its tail cache", async () => {
  const { disk, clock } = setup({}, 4);
  const { fs, state } = trackedFs(disk.mount());
  const p = await Partition.open(fs, DIR, {}, { clock, tailCacheBytes: 32 * 1024 });
  const writes = p.stats.writes;
  // 40 appends of 1 KB queued together: one write of ~41 KB, more than the cache holds.
  await Promise.all(
    Array.from(
      { length: 40 },
      (_, i) => p.append([rec(`${i}`.padEnd(1024, "x"))], { acks: "write" }),
    ),
  );
  assert.equal(p.stats.writes - writes, 1);
  const reads = state.reads;
  const r = await p.read(p.highWatermark - 1, 2048);
  assert.equal(decodeBatches(r.bytes, p.highWatermark - 1)[0].offset, 39);
  assert.equal(state.reads, reads, "the newest batches are read from memory");
  await p.close();
});

Deno.test("Partition reads from the in-memory tail give the file's bytes (differential, seeded)", async () => {
  let reference: string[] | null = null;
  const fileReads: number[] = [];
  for (const cap of [0, 700, 4096, 64 * 1024]) {
    const { disk, clock } = setup({}, 3);
    // Counts reads that reach the files.
    const { fs, state } = trackedFs(disk.mount());
    const p = await Partition.open(fs, DIR, { segmentBytes: 16 * 1024 }, {
      clock,
      tailCacheBytes: cap,
    });
    const rnd = new Prng(99);
    const seen: string[] = [];
    for (let i = 0; i < 400; i++) {
      const n = 1 + rnd.nextInt(5);
      const recs = Array.from(
        { length: n },
        (_, k) => rec(`v${i}-${k}-${"t".repeat(rnd.nextInt(300))}`),
      );
      await p.append(recs, { acks: rnd.chance(0.1) ? "fsync" : "write" });
      // A read near the tail, one from the start, one in the middle.
      for (const at of [p.highWatermark - 1 - rnd.nextInt(20), 0, rnd.nextInt(p.highWatermark)]) {
        const from = Math.max(0, at);
        const r = await p.read(from, 1 + rnd.nextInt(3000));
        seen.push(
          decodeBatches(r.bytes, from).map((d) => `${d.offset}:${td.decode(d.value!)}`).join("|"),
        );
      }
    }
    seen.push(values(await readAll(p)).join("|"));
    await p.close();
    fileReads.push(state.reads);
    if (reference === null) reference = seen;
    else assert.deepEqual(seen, reference, `tail cache of ${cap} bytes`);
  }
  // The biggest tail answers most reads near the end without touching the file.
  assert.ok(fileReads[3] < fileReads[0] * 0.8, `file reads by cache size: ${fileReads}`);
});
