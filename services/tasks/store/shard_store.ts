import { ShardMap } from "@deno-stores/shared/shard";
import type { Task, TaskInput, TaskPatchInput } from "../schemas.ts";
import type { IdGenerator } from "./ids.ts";
import {
  LIST_SCAN_MAX,
  type ListOptions,
  newTask,
  patched,
  replaced,
  type TaskPage,
  type TaskStore,
} from "./types.ts";

/**
 * Tasks in a {@link ShardMap} keyed by id. Listing follows the map's stable
 * cursor: shard by shard in hash order (not creation order); every task
 * present for the whole listing is returned exactly once, none twice.
 */
export class ShardTaskStore implements TaskStore {
  readonly kind = "shard" as const;
  readonly #tasks: ShardMap<Task>;
  readonly #ids: IdGenerator;

  constructor(ids: IdGenerator, shardCount: number) {
    this.#ids = ids;
    this.#tasks = new ShardMap<Task>(shardCount);
  }

  /** Tasks per shard (for metrics). */
  shardSizes(): number[] {
    return this.#tasks.shardSizes();
  }

  create(input: TaskInput, nowMs: number): Task {
    const task = newTask(this.#ids.next(nowMs), input, nowMs);
    this.#tasks.set(task.id, task);
    return task;
  }

  createMany(inputs: readonly TaskInput[], nowMs: number): Task[] {
    return inputs.map((input) => this.create(input, nowMs));
  }

  get(id: string): Task | undefined {
    return this.#tasks.get(id);
  }

  replace(id: string, input: TaskInput, nowMs: number): Task | undefined {
    return this.#tasks.update(id, (old) => old && replaced(old, input, nowMs));
  }

  patch(id: string, patch: TaskPatchInput, nowMs: number): Task | undefined {
    return this.#tasks.update(id, (old) => old && patched(old, patch, nowMs));
  }

  delete(id: string): boolean {
    return this.#tasks.delete(id);
  }

  list(options: ListOptions): TaskPage {
    const status = options.status;
    const page = this.#tasks.page({
      cursor: options.cursor,
      limit: options.limit,
      filter: status === undefined ? undefined : (_id, task) => task.status === status,
      maxScan: LIST_SCAN_MAX,
    });
    return { items: page.items.map(([, task]) => task), nextCursor: page.cursor };
  }

  count(): number {
    return this.#tasks.size;
  }

  close(): void {}
}
