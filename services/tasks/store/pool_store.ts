import { SharedShardTable, type SharedShardTableHandle } from "@deno-stores/shared/shard";
import type { TasksConfig } from "../config.ts";
import type { Task, TaskInput, TaskPatchInput } from "../schemas.ts";
import { encodeId, isTaskId } from "./ids.ts";
import {
  LIST_SCAN_MAX,
  type ListOptions,
  newTask,
  patched,
  replaced,
  type TaskPage,
  type TaskStore,
} from "./types.ts";

/** What the pool's parent sends each worker to open the shared table. */
export type PoolTableHandle = SharedShardTableHandle;

/** Largest block of the pool's arena: a task's JSON can reach ~60 KB (escaped description). */
const POOL_BLOCK_BYTES_MAX = 1 << 17;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(task: Task): Uint8Array {
  return encoder.encode(JSON.stringify(task));
}

function decode(bytes: Uint8Array): Task {
  return JSON.parse(decoder.decode(bytes)) as Task;
}

/**
 * Tasks in a {@link SharedShardTable} on shared memory, as JSON bytes, so that
 * several worker isolates serving the same port see one store: a write
 * acknowledged by one worker is visible to a read on any other. Ids take
 * their sequence from the table's shared counter, so workers never collide.
 * Reads serve the stored JSON without re-encoding. Listing follows the
 * table's stable cursor (hash order).
 */
export class PoolTaskStore implements TaskStore {
  readonly kind = "pool" as const;
  readonly #table: SharedShardTable;

  constructor(table: SharedShardTable) {
    this.#table = table;
  }

  /** Creates the shared table (in the parent) and returns the handle to send to workers. */
  static createTable(
    config: Pick<TasksConfig, "SHARD_COUNT" | "POOL_SLOTS_PER_SHARD" | "POOL_ARENA_BYTES">,
  ): PoolTableHandle {
    return SharedShardTable.create({
      shardCount: config.SHARD_COUNT,
      slotsPerShard: config.POOL_SLOTS_PER_SHARD,
      arenaBytes: config.POOL_ARENA_BYTES,
      maxBlockBytes: POOL_BLOCK_BYTES_MAX,
    }).handle();
  }

  /** Opens the store on a table created by {@link PoolTaskStore.createTable}. */
  static attach(handle: PoolTableHandle): PoolTaskStore {
    return new PoolTaskStore(SharedShardTable.attach(handle));
  }

  create(input: TaskInput, nowMs: number): Task {
    const task = newTask(encodeId(nowMs, this.#table.nextSequence()), input, nowMs);
    this.#table.set(task.id, encode(task));
    return task;
  }

  createMany(inputs: readonly TaskInput[], nowMs: number): Task[] {
    return inputs.map((input) => this.create(input, nowMs));
  }

  // Ids are checked first: the table refuses keys over its length limit.
  get(id: string): Task | undefined {
    if (!isTaskId(id)) return undefined;
    const bytes = this.#table.get(id);
    return bytes === undefined ? undefined : decode(bytes);
  }

  getJson(id: string): Uint8Array | undefined {
    return isTaskId(id) ? this.#table.get(id) : undefined;
  }

  #update(id: string, change: (old: Task) => Task): Task | undefined {
    if (!isTaskId(id)) return undefined;
    let result: Task | undefined;
    this.#table.update(id, (old) => {
      if (old === undefined) return undefined;
      result = change(decode(old));
      return encode(result);
    });
    return result;
  }

  replace(id: string, input: TaskInput, nowMs: number): Task | undefined {
    return this.#update(id, (old) => replaced(old, input, nowMs));
  }

  patch(id: string, patch: TaskPatchInput, nowMs: number): Task | undefined {
    return this.#update(id, (old) => patched(old, patch, nowMs));
  }

  delete(id: string): boolean {
    return isTaskId(id) && this.#table.delete(id);
  }

  list(options: ListOptions): TaskPage {
    const status = options.status;
    const page = this.#table.page({
      cursor: options.cursor,
      limit: options.limit,
      filter: status === undefined ? undefined : (_id, bytes) => decode(bytes).status === status,
      maxScan: LIST_SCAN_MAX,
    });
    return { items: page.items.map(([, bytes]) => decode(bytes)), nextCursor: page.cursor };
  }

  count(): number {
    return this.#table.size;
  }

  close(): void {}
}
