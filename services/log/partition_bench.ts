/**
 * Partition benchmarks on the real disk (a temp dir from `Deno.makeTempDir`):
 * `deno bench -A services/log/partition_bench.ts`.
 *
 * - append: 4 MiB per iteration as 40 batches of 100 × 1 KiB records, acks=write, up to 4
 *   batches in flight; baseline: the same bytes written with `FsFile.write` (what `dd` does).
 * - fsync: 16 concurrent appenders of one 1 KiB record with acks=fsync (group commit);
 *   baseline: one 16 KiB write + fdatasync.
 * - read: sequential 1 MiB fetches over 16 MiB, and 64 random 64 KiB fetches.
 * - compaction: 4 MiB of 1 KiB records over 2,000 keys (50% duplicates).
 *
 * @module
 */

import { ManualClock } from "@deno-stores/shared/sim";
import { DenoFileSystem } from "@deno-stores/shared/wal";
import { type LogRecord, Partition } from "./mod.ts";

const root = await Deno.makeTempDir({ prefix: "log-bench-" });
const fs = new DenoFileSystem();
const clock = new ManualClock(Date.now());
let dirs = 0;
const open = (config = {}) =>
  Partition.open(fs, `${root}/p${dirs++}`, { segmentBytes: 64 * 1024 * 1024, ...config }, {
    clock,
  });

const value = new Uint8Array(1024).fill(7);
const batch: LogRecord[] = Array.from({ length: 100 }, () => ({ key: null, value }));
const BATCHES_PER_ITER = 40;
const IN_FLIGHT = 4;

globalThis.addEventListener("unload", () => {
  Deno.removeSync(root, { recursive: true });
});

// ---------------------------------------------------------------------------------------------
// append

const raw = await Deno.open(`${root}/raw.bin`, { write: true, create: true, truncate: true });
const rawChunk = new Uint8Array(100 * (1024 + 12) + 43).fill(7);
let rawBytes = 0;
Deno.bench({
  name: "raw FsFile.write, 4 MiB in 100 KiB writes",
  group: "append",
  baseline: true,
  n: 40,
  warmup: 5,
  async fn() {
    for (let i = 0; i < BATCHES_PER_ITER; i++) {
      let n = 0;
      while (n < rawChunk.length) n += await raw.write(rawChunk.subarray(n));
      rawBytes += rawChunk.length;
    }
    if (rawBytes > 256 * 1024 * 1024) {
      await raw.truncate(0);
      await raw.seek(0, Deno.SeekMode.Start);
      rawBytes = 0;
    }
  },
});

const appendLog = await open({ retentionBytes: 128 * 1024 * 1024 });
Deno.bench({
  name: "partition append acks=write, 4 MiB as 40 × 100 × 1 KiB",
  group: "append",
  n: 40,
  warmup: 5,
  async fn() {
    const inflight: Promise<unknown>[] = [];
    for (let i = 0; i < BATCHES_PER_ITER; i++) {
      inflight.push(appendLog.append(batch, { acks: "write" }));
      if (inflight.length >= IN_FLIGHT) await inflight.shift();
    }
    await Promise.all(inflight);
    if (appendLog.size > 256 * 1024 * 1024) await appendLog.enforceRetention();
  },
});

// ---------------------------------------------------------------------------------------------
// fsync

const syncRaw = await Deno.open(`${root}/sync.bin`, { write: true, create: true, truncate: true });
const sixteen = new Uint8Array(16 * 1024).fill(1);
Deno.bench({
  name: "raw 16 KiB write + fdatasync",
  group: "fsync",
  baseline: true,
  n: 200,
  async fn() {
    await syncRaw.write(sixteen);
    await syncRaw.syncData();
  },
});

const syncLog = await open();
const one: LogRecord[] = [{ key: null, value }];
Deno.bench({
  name: "partition append acks=fsync, 16 concurrent appenders of 1 KiB",
  group: "fsync",
  n: 200,
  async fn() {
    await Promise.all(Array.from({ length: 16 }, () => syncLog.append(one, { acks: "fsync" })));
  },
});

// ---------------------------------------------------------------------------------------------
// read

const readLog = await open();
while (readLog.size < 16 * 1024 * 1024) await readLog.append(batch, { acks: "write" });
await readLog.flush();
const end = readLog.highWatermark;
Deno.bench({
  name: "sequential read, 1 MiB fetches over 16 MiB",
  group: "read",
  baseline: true,
  n: 20,
  async fn() {
    let at = 0;
    while (at < end) at = (await readLog.read(at, 1024 * 1024)).nextOffset;
  },
});

let seed = 12345;
const nextRand = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 4294967296;
};
Deno.bench({
  name: "random read, 64 fetches of 64 KiB",
  group: "read",
  n: 20,
  async fn() {
    for (let i = 0; i < 64; i++) await readLog.read(Math.floor(nextRand() * end), 64 * 1024);
  },
});

// ---------------------------------------------------------------------------------------------
// compaction

const te = new TextEncoder();
Deno.bench({
  name: "compact 4 MiB, 1 KiB records, 50% duplicate keys",
  group: "compaction",
  n: 5,
  async fn(b) {
    const p = await open({ cleanupPolicy: "compact", segmentBytes: 1024 * 1024 });
    const recs: LogRecord[] = [];
    for (let i = 0; i < 4000; i++) {
      recs.push({ key: te.encode(`key-${i % 2000}`), value });
      if (recs.length === 100) await p.append(recs.splice(0), { acks: "write" });
    }
    await p.roll();
    b.start();
    await p.compact();
    b.end();
    await p.close();
  },
});
