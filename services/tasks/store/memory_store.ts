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

/**
 * Tasks in one `Map`, listed in creation order.
 *
 * Invariant: `#order` holds every live id in increasing order (ids are
 * time-ordered and only ever appended), plus ids deleted since the last
 * compaction; `#deleted` counts those. A cursor is the last id returned, so
 * resuming is a binary search and survives deletes.
 */
export class MemoryTaskStore implements TaskStore {
  readonly kind = "memory" as const;
  readonly #tasks = new Map<string, Task>();
  /** JSON of tasks read since their last write; a write drops the entry. */
  readonly #json = new Map<string, string>();
  #order: string[] = [];
  #deleted = 0;
  readonly #ids: IdGenerator;

  constructor(ids: IdGenerator) {
    this.#ids = ids;
  }

  #insert(input: TaskInput, nowMs: number): Task {
    const id = this.#ids.next(nowMs);
    const task = newTask(id, input, nowMs);
    this.#tasks.set(id, task);
    const last = this.#order[this.#order.length - 1];
    if (last !== undefined && last >= id) throw new Error("id generator went backwards");
    this.#order.push(id);
    return task;
  }

  create(input: TaskInput, nowMs: number): Task {
    return this.#insert(input, nowMs);
  }

  createMany(inputs: readonly TaskInput[], nowMs: number): Task[] {
    return inputs.map((input) => this.#insert(input, nowMs));
  }

  get(id: string): Task | undefined {
    return this.#tasks.get(id);
  }

  getJson(id: string): string | undefined {
    const cached = this.#json.get(id);
    if (cached !== undefined) return cached;
    const task = this.#tasks.get(id);
    if (task === undefined) return undefined;
    const json = JSON.stringify(task);
    this.#json.set(id, json);
    return json;
  }

  replace(id: string, input: TaskInput, nowMs: number): Task | undefined {
    const old = this.#tasks.get(id);
    if (old === undefined) return undefined;
    const task = replaced(old, input, nowMs);
    this.#tasks.set(id, task);
    this.#json.delete(id);
    return task;
  }

  patch(id: string, patch: TaskPatchInput, nowMs: number): Task | undefined {
    const old = this.#tasks.get(id);
    if (old === undefined) return undefined;
    const task = patched(old, patch, nowMs);
    this.#tasks.set(id, task);
    this.#json.delete(id);
    return task;
  }

  delete(id: string): boolean {
    if (!this.#tasks.delete(id)) return false;
    this.#json.delete(id);
    this.#deleted++;
    if (this.#deleted > 1024 && this.#deleted * 2 > this.#order.length) this.#compact();
    return true;
  }

  #compact(): void {
    this.#order = this.#order.filter((id) => this.#tasks.has(id));
    this.#deleted = 0;
  }

  /** Index of the first id in `#order` greater than `after`. */
  #after(after: string): number {
    let lo = 0;
    let hi = this.#order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#order[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  list(options: ListOptions): TaskPage {
    let start = 0;
    if (options.cursor !== undefined) {
      if (!isTaskId(options.cursor)) throw new BadCursorError();
      start = this.#after(options.cursor);
    }
    const items: Task[] = [];
    const end = Math.min(this.#order.length, start + LIST_SCAN_MAX);
    let i = start;
    while (i < end && items.length < options.limit) {
      const task = this.#tasks.get(this.#order[i++]!);
      if (task === undefined) continue;
      if (options.status !== undefined && task.status !== options.status) continue;
      items.push(task);
    }
    const more = i < this.#order.length;
    return { items, nextCursor: more ? this.#order[i - 1]! : null };
  }

  count(): number {
    return this.#tasks.size;
  }

  close(): void {}
}
