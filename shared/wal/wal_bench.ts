/**
 * Fsynced 100-byte records per second on the real disk: the raw `Deno.FsFile.write` +
 * `syncData` loop as the baseline, then the WAL with group commit (B records per fsync, and
 * C concurrent `appendAndSync` callers coalescing on their own).
 *
 *     deno run -A shared/wal/wal_bench.ts [--seconds=2] [--dir=/path/on/the/disk/to/test]
 *     deno bench -A shared/wal/wal_bench.ts     # the same cases as Deno.bench (per fsync)
 *
 * The script prints a table; README.md keeps the numbers from the last run.
 *
 * @module
 */

import { DenoFileSystem, type FileHandle, joinPath, type OpenOptions } from "./fs.ts";
import { Wal } from "./wal.ts";

const RECORD = 100;
const record = new Uint8Array(RECORD).map((_, i) => i);

interface Result {
  name: string;
  records: number;
  fsyncs: number;
  seconds: number;
  /** Time each commit (caller-visible wait) took, ms. */
  latencies: number[];
}

/** A DenoFileSystem that counts fsyncs of files (directory fsyncs are not counted). */
class CountingFs extends DenoFileSystem {
  fsyncs = 0;

  override async open(path: string, options?: OpenOptions): Promise<FileHandle> {
    const h = await super.open(path, options);
    const sync = h.sync.bind(h);
    h.sync = () => {
      this.fsyncs++;
      return sync();
    };
    return h;
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Raw baseline: `batch` records concatenated, one write, one syncData. */
async function rawLoop(dir: string, batch: number, seconds: number): Promise<Result> {
  const file = await Deno.open(joinPath(dir, `raw-${batch}.bin`), {
    read: true,
    write: true,
    create: true,
    truncate: true,
  });
  const buf = new Uint8Array(RECORD * batch);
  for (let i = 0; i < batch; i++) buf.set(record, i * RECORD);
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  let fsyncs = 0;
  try {
    while (performance.now() < end) {
      const t = performance.now();
      let n = 0;
      while (n < buf.length) n += await file.write(buf.subarray(n));
      await file.syncData();
      latencies.push(performance.now() - t);
      fsyncs++;
    }
  } finally {
    file.close();
  }
  return {
    name: batch === 1
      ? "baseline: write + syncData"
      : `baseline: ${batch} records per write + syncData`,
    records: fsyncs * batch,
    fsyncs,
    seconds: (performance.now() - start) / 1000,
    latencies,
  };
}

/** WAL: `batch` appends, then one sync. */
async function walBatches(dir: string, batch: number, seconds: number): Promise<Result> {
  const fs = new CountingFs();
  const wal = await Wal.open({ fs, dir: joinPath(dir, `wal-b${batch}`) });
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  const before = fs.fsyncs;
  let records = 0;
  try {
    while (performance.now() < end) {
      const t = performance.now();
      for (let i = 0; i < batch; i++) wal.append(1, record);
      await wal.sync();
      latencies.push(performance.now() - t);
      records += batch;
    }
  } finally {
    await wal.close();
  }
  return {
    name: `wal: ${batch} appends + sync`,
    records,
    fsyncs: fs.fsyncs - before,
    seconds: (performance.now() - start) / 1000,
    latencies,
  };
}

/** WAL: `clients` concurrent callers, each looping `appendAndSync([one record])`. */
async function walConcurrent(dir: string, clients: number, seconds: number): Promise<Result> {
  const fs = new CountingFs();
  const wal = await Wal.open({ fs, dir: joinPath(dir, `wal-c${clients}`) });
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  const before = fs.fsyncs;
  let records = 0;
  const client = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await wal.appendAndSync([{ type: 1, payload: record }]);
      latencies.push(performance.now() - t);
      records++;
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, client));
  } finally {
    await wal.close();
  }
  return {
    name: `wal: ${clients} concurrent appendAndSync callers`,
    records,
    fsyncs: fs.fsyncs - before,
    seconds: (performance.now() - start) / 1000,
    latencies,
  };
}

function row(r: Result): string {
  const s = [...r.latencies].sort((a, b) => a - b);
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  return `| ${r.name} | ${n(r.records / r.seconds)} | ${n(r.fsyncs / r.seconds)} | ${
    (r.records / Math.max(1, r.fsyncs)).toFixed(1)
  } | ${pct(s, 0.5).toFixed(2)} | ${pct(s, 0.99).toFixed(2)} |`;
}

async function report(): Promise<void> {
  const args = new Map(
    Deno.args.map((a) => a.replace(/^--/, "").split("=") as [string, string]),
  );
  const seconds = Number(args.get("seconds") ?? 2);
  const base = args.get("dir");
  const dir = await Deno.makeTempDir({ prefix: "wal_bench_", ...(base ? { dir: base } : {}) });
  console.log(`dir ${dir}, ${seconds}s per case, ${RECORD}-byte records (+9 bytes of framing)`);
  console.log("");
  console.log("| case | records/s | fsyncs/s | records/fsync | commit p50 ms | commit p99 ms |");
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  try {
    for (const b of [1, 10, 100]) console.log(row(await rawLoop(dir, b, seconds)));
    for (const b of [1, 10, 100, 1000]) console.log(row(await walBatches(dir, b, seconds)));
    for (const c of [1, 10, 100]) console.log(row(await walConcurrent(dir, c, seconds)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  await report();
} else {
  // `deno bench`: one iteration = one fsynced commit.
  const dir = await Deno.makeTempDir({ prefix: "wal_bench_" });
  const raw = await Deno.open(joinPath(dir, "raw.bin"), { write: true, create: true });
  const wals = new Map<number, Wal>();
  for (const b of [1, 10, 100]) {
    wals.set(b, await Wal.open({ fs: new DenoFileSystem(), dir: joinPath(dir, `b${b}`) }));
  }
  Deno.bench(
    "baseline: write + syncData (1 record)",
    { group: "fsync", baseline: true },
    async () => {
      await raw.write(record);
      await raw.syncData();
    },
  );
  for (const [b, wal] of wals) {
    Deno.bench(`wal: ${b} records + sync`, { group: "fsync" }, async () => {
      for (let i = 0; i < b; i++) wal.append(1, record);
      await wal.sync();
    });
  }
  globalThis.addEventListener("unload", () => {
    raw.close();
    Deno.removeSync(dir, { recursive: true });
  });
}
