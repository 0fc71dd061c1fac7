import type { Task, TaskInput, TaskPatchInput } from "../schemas.ts";
import type { IdGenerator } from "./ids.ts";
import { isTaskId } from "./ids.ts";
import {
  BadCursorError,
  LIST_SCAN_MAX,
  type ListOptions,
  newTask,
  patched,
  replaced,
  type TaskPage,
  type TaskStore,
} from "./types.ts";

const TASKS = "tasks";
const COUNT_KEY: Deno.KvKey = ["meta", "task_count"];
const ONE = new Deno.KvU64(1n);
/** Adding 2^64 - 1 to a wrapping u64 sum subtracts one. */
const MINUS_ONE = new Deno.KvU64(0xffff_ffff_ffff_ffffn);
/** Most sets one atomic commit of a bulk create carries (Deno KV allows 1000 mutations). */
export const KV_BULK_MUTATIONS_MAX = 500;
/** Most estimated bytes one atomic commit of a bulk create carries (Deno KV allows 800 KiB). */
export const KV_BULK_BYTES_MAX = 512 * 1024;
/** Attempts at an optimistic read-modify-write before giving up. */
const UPDATE_ATTEMPTS_MAX = 16;

/** Thrown when an update keeps losing optimistic races; the app answers 503. */
export class ContentionError extends Error {
  constructor() {
    super("too much write contention on one task; retry");
    this.name = "ContentionError";
  }
}

function estimateBytes(task: Task): number {
  return 64 + task.title.length * 3 + task.description.length * 3;
}

/**
 * Tasks in Deno KV under `["tasks", id]`, durable across restarts, listed in
 * id (creation) order. A counter under `["meta", "task_count"]` moves in the
 * same atomic commit as every create and delete. Updates are optimistic
 * (versionstamp check, retried). A bulk create commits in chunks of at most
 * {@link KV_BULK_MUTATIONS_MAX} tasks, so it is atomic per chunk only.
 */
export class KvTaskStore implements TaskStore {
  readonly kind = "kv" as const;
  readonly #kv: Deno.Kv;
  readonly #ids: IdGenerator;

  constructor(kv: Deno.Kv, ids: IdGenerator) {
    this.#kv = kv;
    this.#ids = ids;
  }

  /** Opens the store at `path` (a file, or `:memory:`). */
  static async open(path: string, ids: IdGenerator): Promise<KvTaskStore> {
    return new KvTaskStore(await Deno.openKv(path), ids);
  }

  async create(input: TaskInput, nowMs: number): Promise<Task> {
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS_MAX; attempt++) {
      const task = newTask(this.#ids.next(nowMs), input, nowMs);
      const key = [TASKS, task.id];
      const result = await this.#kv.atomic().check({ key, versionstamp: null }).set(key, task)
        .sum(COUNT_KEY, ONE.value).commit();
      if (result.ok) return task;
    }
    throw new ContentionError();
  }

  async createMany(inputs: readonly TaskInput[], nowMs: number): Promise<Task[]> {
    const tasks = inputs.map((input) => newTask(this.#ids.next(nowMs), input, nowMs));
    let i = 0;
    while (i < tasks.length) {
      const op = this.#kv.atomic();
      let n = 0;
      let bytes = 0;
      while (i < tasks.length && n < KV_BULK_MUTATIONS_MAX) {
        const task = tasks[i]!;
        const size = estimateBytes(task);
        if (n > 0 && bytes + size > KV_BULK_BYTES_MAX) break;
        op.set([TASKS, task.id], task);
        bytes += size;
        n++;
        i++;
      }
      op.sum(COUNT_KEY, BigInt(n));
      const result = await op.commit();
      if (!result.ok) throw new Error("bulk create commit failed");
    }
    return tasks;
  }

  async get(id: string): Promise<Task | undefined> {
    if (!isTaskId(id)) return undefined;
    const entry = await this.#kv.get<Task>([TASKS, id]);
    return entry.value ?? undefined;
  }

  async #update(id: string, change: (old: Task) => Task): Promise<Task | undefined> {
    if (!isTaskId(id)) return undefined;
    const key = [TASKS, id];
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS_MAX; attempt++) {
      const entry = await this.#kv.get<Task>(key);
      if (entry.value === null) return undefined;
      const task = change(entry.value);
      const result = await this.#kv.atomic().check(entry).set(key, task).commit();
      if (result.ok) return task;
    }
    throw new ContentionError();
  }

  replace(id: string, input: TaskInput, nowMs: number): Promise<Task | undefined> {
    return this.#update(id, (old) => replaced(old, input, nowMs));
  }

  patch(id: string, patch: TaskPatchInput, nowMs: number): Promise<Task | undefined> {
    return this.#update(id, (old) => patched(old, patch, nowMs));
  }

  async delete(id: string): Promise<boolean> {
    if (!isTaskId(id)) return false;
    const key = [TASKS, id];
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS_MAX; attempt++) {
      const entry = await this.#kv.get<Task>(key);
      if (entry.value === null) return false;
      const result = await this.#kv.atomic().check(entry).delete(key).sum(
        COUNT_KEY,
        MINUS_ONE.value,
      ).commit();
      if (result.ok) return true;
    }
    throw new ContentionError();
  }

  async list(options: ListOptions): Promise<TaskPage> {
    const after = options.cursor;
    if (after !== undefined && !isTaskId(after)) throw new BadCursorError();
    const selector: Deno.KvListSelector = after === undefined
      ? { prefix: [TASKS] }
      : { prefix: [TASKS], start: [TASKS, after] };
    const items: Task[] = [];
    let last: string | undefined;
    let scanned = 0;
    let exhausted = true;
    const batchSize = Math.min(500, options.limit + 1);
    for await (const entry of this.#kv.list<Task>(selector, { batchSize })) {
      const task = entry.value;
      if (task.id === after) continue;
      if (items.length === options.limit || scanned === LIST_SCAN_MAX) {
        exhausted = false;
        break;
      }
      scanned++;
      last = task.id;
      if (options.status === undefined || task.status === options.status) items.push(task);
    }
    return { items, nextCursor: exhausted || last === undefined ? null : last };
  }

  async count(): Promise<number> {
    const entry = await this.#kv.get<Deno.KvU64>(COUNT_KEY);
    return entry.value === null ? 0 : Number(entry.value.value);
  }

  close(): void {
    this.#kv.close();
  }
}
