/**
 * The log's nineteen benchmark categories (the seed's), on the real disk under a temporary
 * directory, synchronous segment I/O as the service runs it:
 *
 *   deno bench -A services/log/log_bench.ts        (bench:log turns the JSON into MB/s, msg/s)
 *
 * Each case's name ends with what one iteration moves, `[bytes=N msgs=M]`, so that a report
 * can turn deno bench's time per iteration into MB/s and msg/s.
 *
 * Storage: 1 write throughput, 2 batch write, 3 produce latency, 4 concurrent producers,
 * 5 read throughput, 6 sequential fetch, 7 random fetch, 8 fetch latency, 9 concurrent
 * consumers, 10 compaction (segment counts, duplicate ratios), 11 mixed workload, 12 segment
 * rollover. Topic manager: 13 produce by partition count, 14 fetch by partition count,
 * 15 concurrent producers, 16 concurrent consumers, 17 partition balance (keyed), 18 multi-topic,
 * 19 compaction through a compacted topic.
 *
 * @module
 */
import { DenoFileSystem } from "@deno-stores/shared/wal";
import { type LogRecord, Partition, type PartitionConfig } from "./mod.ts";
import { LogService } from "./service.ts";

const root = await Deno.makeTempDir({ prefix: "log-bench-" });
globalThis.addEventListener("unload", () => Deno.removeSync(root, { recursive: true }));
const fs = new DenoFileSystem({ syncIo: true });
const clock = { now: () => Date.now() };
const quiet = { warn: () => {}, info: () => {} };
let dirs = 0;
const open = (config: PartitionConfig = {}) =>
  Partition.open(fs, `${root}/p${dirs++}`, { segmentBytes: 64 * 1024 * 1024, ...config }, {
    clock,
    logger: quiet,
  });
const tag = (bytes: number, msgs: number) => `[bytes=${bytes} msgs=${msgs}]`;

const KB = 1024;
const value1k = new Uint8Array(KB).fill(7);
const rec1k: LogRecord = { key: null, value: value1k };
const batchOf = (n: number, size = KB): LogRecord[] =>
  Array.from({ length: n }, () => ({ key: null, value: new Uint8Array(size).fill(7) }));
const enc = new TextEncoder();
const keyed = (n: number, keys: number, seed = 0): LogRecord[] =>
  Array.from({ length: n }, (_, i) => ({
    key: enc.encode(`key-${(i * 7919 + seed) % keys}`),
    value: value1k,
  }));

/** Keeps a partition from growing without bound across iterations. */
async function trim(p: Partition, max = 256 * 1024 * 1024) {
  if (p.size > max) {
    await p.roll();
    await p.enforceRetention();
  }
}

// 1. Write throughput: single 1 KiB records, acks=write.
{
  const p = await open({ retentionBytes: 64 * 1024 * 1024 });
  for (const size of [100, KB, 10 * KB]) {
    const r: LogRecord[] = [{ key: null, value: new Uint8Array(size).fill(1) }];
    Deno.bench({
      name: `append one ${size} B record, acks=write ×1000 ${tag(1000 * size, 1000)}`,
      group: "01 write throughput",
      baseline: size === KB,
      async fn() {
        for (let i = 0; i < 1000; i++) await p.append(r, { acks: "write" });
        await trim(p);
      },
    });
  }
}

// 2. Batch write: batches of 10-1000 records of 1 KiB, 4 MiB per iteration.
{
  const p = await open({ retentionBytes: 64 * 1024 * 1024 });
  for (const n of [10, 100, 1000]) {
    const b = batchOf(n);
    const iters = Math.ceil(4096 / n);
    Deno.bench({
      name: `${iters} batches of ${n} × 1 KiB, acks=write ${tag(iters * n * KB, iters * n)}`,
      group: "02 batch write",
      baseline: n === 100,
      async fn() {
        for (let i = 0; i < iters; i++) await p.append(b, { acks: "write" });
        await trim(p);
      },
    });
  }
}

// 3. Produce latency: one append, acks=write and acks=fsync.
{
  const p = await open({ retentionBytes: 64 * 1024 * 1024 });
  for (const acks of ["write", "fsync"] as const) {
    Deno.bench({
      name: `one 1 KiB record, acks=${acks} ${tag(KB, 1)}`,
      group: "03 produce latency",
      baseline: acks === "write",
      async fn() {
        await p.append([rec1k], { acks });
      },
    });
  }
}

// 4. Concurrent producers: N appenders of one record each, acks=fsync (group commit).
{
  const p = await open({ retentionBytes: 64 * 1024 * 1024 });
  for (const n of [1, 16, 64]) {
    Deno.bench({
      name: `${n} concurrent producers × 8 records, acks=fsync ${tag(n * 8 * KB, n * 8)}`,
      group: "04 concurrent producers",
      baseline: n === 1,
      async fn() {
        await Promise.all(Array.from({ length: n }, async () => {
          for (let i = 0; i < 8; i++) await p.append([rec1k], { acks: "fsync" });
        }));
        await trim(p);
      },
    });
  }
}

// A 64 MiB partition of 1 KiB records in 100-record batches, for the read categories.
const readLog = await open();
for (let i = 0; i < 640; i++) await readLog.append(batchOf(100), { acks: "write" });
await readLog.flush();
const READ_END = readLog.highWatermark;
const into = new Uint8Array(2 * 1024 * 1024);

// 5. Read throughput: the whole 64 MiB, 1 MiB reads, reused buffer vs new buffers.
for (const reuse of [true, false]) {
  Deno.bench({
    name: `read 64 MiB in 1 MiB reads, ${reuse ? "one reused buffer" : "a new buffer each"} ${
      tag(readLog.size, READ_END)
    }`,
    group: "05 read throughput",
    baseline: reuse,
    async fn() {
      for (let at = 0; at < READ_END;) {
        at = (await readLog.read(at, 1024 * 1024, reuse ? { into } : {})).nextOffset;
      }
    },
  });
}

// 6. Sequential fetch: 16 MiB as a consumer fetches, by fetch size.
for (const size of [64 * KB, 256 * KB, 1024 * KB]) {
  Deno.bench({
    name: `fetch 16 MiB in ${size / KB} KiB fetches ${tag(16 * 1024 * KB, 16 * 1024)}`,
    group: "06 sequential fetch",
    baseline: size === 1024 * KB,
    async fn() {
      let bytes = 0;
      for (let at = 0; bytes < 16 * 1024 * KB;) {
        const r = await readLog.read(at, size, { into });
        bytes += r.bytes.length;
        at = r.nextOffset;
      }
    },
  });
}

// 7. Random fetch: 100 fetches of 64 KiB at random offsets.
{
  let x = 7;
  Deno.bench({
    name: `100 random 64 KiB fetches ${tag(100 * 64 * KB, 100 * 64)}`,
    group: "07 random fetch",
    async fn() {
      for (let i = 0; i < 100; i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        await readLog.read(x % READ_END, 64 * KB, { into });
      }
    },
  });
}

// 8. Fetch latency: one small fetch of the tail (cached), one of the head.
for (const where of ["tail", "head"] as const) {
  Deno.bench({
    name: `one 4 KiB fetch at the ${where} ${tag(4 * KB, 4)}`,
    group: "08 fetch latency",
    baseline: where === "tail",
    async fn() {
      await readLog.read(where === "tail" ? READ_END - 4 : 0, 4 * KB);
    },
  });
}

// 9. Concurrent consumers: N readers of 8 MiB each from different places.
for (const n of [1, 4, 16]) {
  const bufs = Array.from({ length: n }, () => new Uint8Array(2 * 1024 * 1024));
  Deno.bench({
    name: `${n} concurrent consumers × 8 MiB ${tag(n * 8 * 1024 * KB, n * 8 * 1024)}`,
    group: "09 concurrent consumers",
    baseline: n === 1,
    async fn() {
      await Promise.all(bufs.map(async (buf, k) => {
        let at = Math.floor((READ_END / n) * k) % (READ_END - 8 * 1024);
        for (let bytes = 0; bytes < 8 * 1024 * KB;) {
          const r = await readLog.read(at, 1024 * KB, { into: buf });
          bytes += r.bytes.length;
          at = r.nextOffset;
        }
      }));
    },
  });
}

// 10. Compaction: 8 MiB across 2 or 8 segments, 50% and 90% duplicate keys.
for (const [segments, dup] of [[2, 0.5], [8, 0.5], [8, 0.9]] as const) {
  const total = 8 * 1024;
  Deno.bench({
    name: `compact 8 MiB in ${segments} segments, ${dup * 100}% duplicates ${
      tag(total * KB, total)
    }`,
    group: "10 compaction",
    baseline: segments === 2,
    n: 5,
    warmup: 1,
    async fn(b) {
      const p = await open({
        cleanupPolicy: "compact",
        segmentBytes: Math.ceil((total * (KB + 20)) / segments),
      });
      const keys = Math.round(total * (1 - dup));
      for (let i = 0; i < total; i += 256) await p.append(keyed(256, keys, i), { acks: "write" });
      await p.roll();
      b.start();
      await p.compact();
      b.end();
      await p.close();
    },
  });
}

// 11. Mixed workload: a producer and a consumer together, 4 MiB each way.
{
  const p = await open({ retentionBytes: 64 * 1024 * 1024 });
  await p.append(batchOf(100), { acks: "write" });
  const buf = new Uint8Array(2 * 1024 * 1024);
  Deno.bench({
    name: `produce 4 MiB (100-record batches) while consuming from the tail ${
      tag(4 * 1024 * KB, 4096)
    }`,
    group: "11 mixed workload",
    async fn() {
      let at = p.highWatermark;
      const b = batchOf(100);
      const produce = (async () => {
        for (let i = 0; i < 41; i++) await p.append(b, { acks: "write" });
      })();
      let consumed = 0;
      while (consumed < 40 * 100) {
        if (at >= p.highWatermark) await p.waitForData(at, 100);
        const r = await p.read(at, 256 * KB, { into: buf });
        consumed += r.nextOffset - at;
        at = r.nextOffset;
      }
      await produce;
      await trim(p);
    },
  });
}

// 12. Segment rollover: appends that roll every 1 MiB vs every 64 MiB.
for (const segMb of [1, 64]) {
  Deno.bench({
    name: `4 MiB of 100-record batches, ${segMb} MiB segments ${tag(4 * 1024 * KB, 4096)}`,
    group: "12 segment rollover",
    baseline: segMb === 64,
    n: 20,
    async fn() {
      const p = await open({ segmentBytes: segMb * 1024 * 1024 });
      const b = batchOf(100);
      for (let i = 0; i < 41; i++) await p.append(b, { acks: "write" });
      await p.flush();
      await p.close();
    },
  });
}

// Topic manager: a service with its topics on the real disk.
const svc = await LogService.open({ fs, dataDir: `${root}/service`, clock, logger: quiet });
const topics = svc.topics;
for (const n of [1, 4, 8]) await topics.create(`parts-${n}`, n, { "segment.bytes": 64 << 20 });
await topics.create("multi-a", 2);
await topics.create("multi-b", 2);
await topics.create("multi-c", 2);
await topics.create("compacted", 1, { "cleanup.policy": "compact", "segment.bytes": 1 << 20 });

// 13. Produce throughput by partition count: 4 MiB spread over every partition.
for (const n of [1, 4, 8]) {
  const t = topics.require(`parts-${n}`);
  Deno.bench({
    name: `4 MiB over ${n} partition(s), 100-record batches ${tag(4 * 1024 * KB, 4096)}`,
    group: "13 produce by partition count",
    baseline: n === 1,
    async fn() {
      const b = batchOf(100);
      await Promise.all(t.partitions.map(async (p) => {
        for (let i = 0; i < Math.ceil(41 / n); i++) await p.append(b, { acks: "write" });
        await trim(p, 64 * 1024 * 1024);
      }));
    },
  });
}

// 14. Fetch throughput by partition count: read 4 MiB from every partition's head.
for (const n of [1, 4, 8]) {
  const t = topics.require(`parts-${n}`);
  const bufs = t.partitions.map(() => new Uint8Array(2 * 1024 * 1024));
  Deno.bench({
    name: `fetch 4 MiB over ${n} partition(s) ${tag(4 * 1024 * KB, 4096)}`,
    group: "14 fetch by partition count",
    baseline: n === 1,
    async fn() {
      await Promise.all(t.partitions.map(async (p, k) => {
        let at = p.logStartOffset, bytes = 0;
        while (bytes < (4 * 1024 * KB) / n && at < p.highWatermark) {
          const r = await p.read(at, 512 * KB, { into: bufs[k] });
          bytes += r.bytes.length;
          at = r.nextOffset;
        }
      }));
    },
  });
}

// 15. Concurrent producers on a topic: N producers, keyless records spread by round robin.
{
  const t = topics.require("parts-4");
  for (const n of [1, 8, 32]) {
    Deno.bench({
      name: `${n} producers × 4 records, acks=fsync, 4 partitions ${tag(n * 4 * KB, n * 4)}`,
      group: "15 topic concurrent producers",
      baseline: n === 1,
      async fn() {
        await Promise.all(Array.from({ length: n }, async () => {
          for (let i = 0; i < 4; i++) {
            const p = t.partitions[t.partitioner.choose(4, null)];
            await p.append([rec1k], { acks: "fsync" });
          }
        }));
      },
    });
  }
}

// 16. Concurrent consumers on a topic: one consumer per partition.
{
  const t = topics.require("parts-8");
  const bufs = t.partitions.map(() => new Uint8Array(2 * 1024 * 1024));
  Deno.bench({
    name: `8 consumers, one per partition, 1 MiB each ${tag(8 * 1024 * KB, 8 * 1024)}`,
    group: "16 topic concurrent consumers",
    async fn() {
      await Promise.all(t.partitions.map(async (p, k) => {
        let at = p.logStartOffset, bytes = 0;
        while (bytes < 1024 * KB && at < p.highWatermark) {
          const r = await p.read(at, 256 * KB, { into: bufs[k] });
          bytes += r.bytes.length;
          at = r.nextOffset;
        }
      }));
    },
  });
}

// 17. Partition balance: 10,000 keyed records chosen by murmur2 over 8 partitions.
{
  const t = topics.require("parts-8");
  const ks = Array.from({ length: 10_000 }, (_, i) => enc.encode(`user-${i}`));
  Deno.bench({
    name: `partition 10,000 keys over 8 partitions (murmur2) ${tag(0, 10_000)}`,
    group: "17 partition balance",
    fn() {
      const counts = new Array(8).fill(0);
      for (const k of ks) counts[t.partitioner.choose(8, k)]++;
      // Kafka's partitioner spreads keys within a few percent of even.
      if (Math.max(...counts) > 1.2 * (10_000 / 8)) throw new Error(`skewed: ${counts}`);
    },
  });
}

// 18. Multi-topic: three topics written at once.
{
  const ts = ["multi-a", "multi-b", "multi-c"].map((n) => topics.require(n));
  Deno.bench({
    name: `3 topics × 2 partitions, 1 MiB each ${tag(3 * 1024 * KB, 3 * 1024)}`,
    group: "18 multi-topic",
    async fn() {
      const b = batchOf(128);
      await Promise.all(ts.flatMap((t) =>
        t.partitions.map(async (p) => {
          for (let i = 0; i < 4; i++) await p.append(b, { acks: "write" });
          await trim(p, 32 * 1024 * 1024);
        })
      ));
    },
  });
}

// 19. Compaction through a compacted topic: 4 MiB of updates to 1,024 keys, then compact.
{
  const t = topics.require("compacted");
  const p = t.partitions[0];
  Deno.bench({
    name: `4 MiB of updates to 1,024 keys, compact ${tag(4 * 1024 * KB, 4096)}`,
    group: "19 topic compaction",
    n: 10,
    warmup: 1,
    async fn(b) {
      for (let i = 0; i < 4096; i += 256) await p.append(keyed(256, 1024, i), { acks: "write" });
      await p.roll();
      b.start();
      await p.compact();
      b.end();
    },
  });
}
