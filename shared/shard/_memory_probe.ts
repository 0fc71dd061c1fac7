/**
 * Measures the heap cost of 1,000,000 task-like entries (~200 bytes of
 * fields each) in a plain array, a `Map`, a {@link ShardMap}, and as JSON
 * bytes in a {@link SharedShardTable}. The README quotes its output.
 *
 * ```sh
 * deno run --v8-flags=--expose-gc,--max-old-space-size=4096 shared/shard/_memory_probe.ts [count]
 * ```
 *
 * @module
 */
import { ShardMap } from "./shard_map.ts";
import { SharedShardTable } from "./shared_table.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("run with --v8-flags=--expose-gc");
  Deno.exit(2);
}
const N = Number(Deno.args[0] ?? 1_000_000);
const MiB = 2 ** 20;

interface Task {
  id: string;
  title: string;
  description: string;
  status: string;
  priority: number;
  createdAt: string;
  updatedAt: string;
}

function makeTask(i: number): Task {
  const at = new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
  return {
    id: String(i + 1),
    title: `Task number ${i} to do`,
    description: `Description of task ${i}: ${"lorem ipsum ".repeat(5)}`.slice(0, 80),
    status: ["todo", "doing", "done"][i % 3]!,
    priority: i % 5,
    createdAt: at,
    updatedAt: at,
  };
}

function heap(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed;
}

function measure(label: string, build: () => unknown): { bytes: number; keep: unknown } {
  const before = heap();
  const t0 = performance.now();
  const keep = build();
  const ms = performance.now() - t0;
  const bytes = heap() - before;
  console.log(
    `${label.padEnd(44)} heap +${(bytes / MiB).toFixed(1).padStart(7)} MiB  ` +
      `${(bytes / N).toFixed(0).padStart(4)} B/entry  built in ${ms.toFixed(0)} ms`,
  );
  return { bytes, keep };
}

const sample = JSON.stringify(makeTask(123_456));
console.log(`${N} entries; a task is ${sample.length} bytes as JSON; deno ${Deno.version.deno}`);

{
  const enc = new TextEncoder();
  const rssBefore = Deno.memoryUsage().rss;
  let table: SharedShardTable | null = SharedShardTable.create({
    shardCount: 64,
    slotsPerShard: 32768,
    arenaBytes: 1024 * MiB,
  });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const id = String(table.nextSequence());
    table.set(id, enc.encode(JSON.stringify(makeTask(i))));
  }
  const ms = performance.now() - t0;
  const s = table.stats();
  const rssAfter = Deno.memoryUsage().rss;
  console.log(
    `SharedShardTable (64 × 32768 slots): ${N} JSON tasks in ${ms.toFixed(0)} ms; ` +
      `slots ${(s.slotBytes / MiB).toFixed(1)} MiB, arena ${(s.arenaBytes / MiB).toFixed(0)} MiB ` +
      `(live blocks ${(s.arenaLiveBytes / MiB).toFixed(1)} MiB, ${
        (s.arenaLiveBytes / N).toFixed(0)
      } B/entry), ` +
      `rss +${((rssAfter - rssBefore) / MiB).toFixed(0)} MiB, JS heap ${
        (heap() / MiB).toFixed(1)
      } MiB`,
  );
  table = null;
  heap();
}

let tasks: Task[] | null = measure("task objects alone (array)", () => {
  const a: Task[] = new Array(N);
  for (let i = 0; i < N; i++) a[i] = makeTask(i);
  return a;
}).keep as Task[];
const objectsBytes = heap();

const map = measure("+ Map<string, Task> over them", () => {
  const m = new Map<string, Task>();
  for (const t of tasks!) m.set(t.id, t);
  return m;
});
const shardMap = measure("+ ShardMap<Task> (64 shards) over them", () => {
  const m = new ShardMap<Task>(64);
  for (const t of tasks!) m.set(t.id, t);
  return m;
});
console.log(
  `  => index overhead: Map ${(map.bytes / N).toFixed(0)} B/entry, ShardMap ${
    (shardMap.bytes / N).toFixed(0)
  } B/entry (keys are shared with the objects)`,
);
tasks = null;
(map as { keep: unknown }).keep = null;
const remaining = heap();
console.log(
  `ShardMap with its 1M tasks, everything else dropped: heap ${(remaining / MiB).toFixed(1)} MiB ` +
    `(objects alone were ${(objectsBytes / MiB).toFixed(1)} MiB)`,
);
(shardMap as { keep: unknown }).keep = null;
heap();
