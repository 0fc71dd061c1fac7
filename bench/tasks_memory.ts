/**
 * Heap held by N tasks in a task store (default: 1,000,000 in `shard`).
 *
 *     deno run -A --v8-flags=--expose-gc bench/tasks_memory.ts [--store shard] [--tasks 1000000]
 *
 * Prints one JSON line: heap before and after, bytes per task.
 *
 * @module
 */
import { createIdGenerator } from "../services/tasks/store/ids.ts";
import { MemoryTaskStore } from "../services/tasks/store/memory_store.ts";
import { ShardTaskStore } from "../services/tasks/store/shard_store.ts";
import type { TaskStore } from "../services/tasks/store/types.ts";

const args = Deno.args;
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1] ?? fallback;
};
const kind = flag("--store", "shard");
const n = Number(flag("--tasks", "1000000"));
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

let seed = 1;
const random30 = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) & 0x3fff_ffff;
const ids = createIdGenerator(random30);
const store: TaskStore = kind === "memory" ? new MemoryTaskStore(ids) : new ShardTaskStore(ids, 32);

gc();
const before = Deno.memoryUsage().heapUsed;
const started = performance.now();
let now = Date.UTC(2026, 0, 1);
for (let i = 0; i < n; i += 10_000) {
  const batch = Array.from({ length: Math.min(10_000, n - i) }, (_, j) => ({
    title: `task number ${i + j}`,
    description: "a typical short description of some work to do",
    status: "todo" as const,
    priority: (i + j) % 6,
  }));
  await store.createMany(batch, now++);
}
const seconds = (performance.now() - started) / 1000;
gc();
const after = Deno.memoryUsage().heapUsed;
const count = await store.count();
console.log(JSON.stringify({
  store: kind,
  tasks: count,
  heapBeforeBytes: before,
  heapAfterBytes: after,
  heapPerTaskBytes: Math.round((after - before) / count),
  heapTotalMiB: Math.round(after / 2 ** 20),
  createSeconds: Math.round(seconds * 100) / 100,
}));
