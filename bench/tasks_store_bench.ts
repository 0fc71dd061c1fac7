/**
 * Micro benchmarks of the task stores: get by id, create, and one list page,
 * each grouped with a plain `Map` doing the same work as the baseline.
 *
 *     deno bench -A bench/tasks_store_bench.ts
 *
 * @module
 */
import type { TaskInput } from "../services/tasks/schemas.ts";
import { createIdGenerator } from "../services/tasks/store/ids.ts";
import { KvTaskStore } from "../services/tasks/store/kv_store.ts";
import { MemoryTaskStore } from "../services/tasks/store/memory_store.ts";
import { PoolTaskStore } from "../services/tasks/store/pool_store.ts";
import { ShardTaskStore } from "../services/tasks/store/shard_store.ts";
import type { TaskStore } from "../services/tasks/store/types.ts";
import type { Task } from "../services/tasks/schemas.ts";
import { newTask } from "../services/tasks/store/types.ts";

const SEEDED = 10_000;
const NOW = Date.UTC(2026, 0, 1);

function random30(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s & 0x3fff_ffff;
  };
}

const input = (i: number): TaskInput => ({
  title: `task ${i}`,
  description: "a task for the benchmark",
  status: i % 3 === 0 ? "done" : "todo",
  priority: i % 6,
});

const stores: TaskStore[] = [
  new MemoryTaskStore(createIdGenerator(random30(1))),
  new ShardTaskStore(createIdGenerator(random30(2)), 32),
  PoolTaskStore.attach(
    PoolTaskStore.createTable({
      SHARD_COUNT: 32,
      POOL_SLOTS_PER_SHARD: 65536,
      POOL_ARENA_BYTES: 512 << 20,
    }),
  ),
  await KvTaskStore.open(":memory:", createIdGenerator(random30(3))),
];
const ids = new Map<TaskStore, string[]>();
for (const store of stores) {
  const created = await store.createMany(Array.from({ length: SEEDED }, (_, i) => input(i)), NOW);
  ids.set(store, created.map((t) => t.id));
}

const baseline = new Map<string, Task>();
const baselineIds: string[] = [];
{
  const gen = createIdGenerator(random30(4));
  for (let i = 0; i < SEEDED; i++) {
    const task = newTask(gen.next(NOW), input(i), NOW);
    baseline.set(task.id, task);
    baselineIds.push(task.id);
  }
}

let cursor = 0;
Deno.bench("Map get", { group: "get", baseline: true }, () => {
  baseline.get(baselineIds[cursor++ % SEEDED]!);
});
for (const store of stores) {
  const list = ids.get(store)!;
  let i = 0;
  // Synchronous stores are timed without an await, like the baseline.
  Deno.bench(`${store.kind} get`, { group: "get" }, async () => {
    const found = store.get(list[i++ % SEEDED]!);
    if (found instanceof Promise) await found;
  });
}

const baselineGen = createIdGenerator(random30(5));
Deno.bench("Map create", { group: "create", baseline: true }, () => {
  const task = newTask(baselineGen.next(NOW), input(1), NOW);
  baseline.set(task.id, task);
});
for (const store of stores) {
  Deno.bench(`${store.kind} create`, { group: "create" }, async () => {
    const created = store.create(input(1), NOW);
    if (created instanceof Promise) await created;
  });
}

Deno.bench("Map list page of 100", { group: "list", baseline: true }, () => {
  let n = 0;
  for (const _ of baseline.values()) if (++n === 100) break;
});
for (const store of stores) {
  Deno.bench(`${store.kind} list page of 100`, { group: "list" }, async () => {
    const page = store.list({ limit: 100 });
    if (page instanceof Promise) await page;
  });
}
