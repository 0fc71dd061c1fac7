import type { Task, TaskInput, TaskPatchInput, TaskStatus } from "../schemas.ts";

/** The storage backends, chosen by `STORAGE_TYPE`. */
export const STORAGE_TYPES = ["memory", "shard", "pool", "kv"] as const;
/** A storage backend name. */
export type StorageType = (typeof STORAGE_TYPES)[number];

/** A value or a promise of it: memory stores answer synchronously. */
export type MaybePromise<T> = T | Promise<T>;

/** One page of `list`. `nextCursor` is null once the listing is complete. */
export interface TaskPage {
  items: Task[];
  nextCursor: string | null;
}

/** What `list` takes. */
export interface ListOptions {
  limit: number;
  cursor?: string | undefined;
  status?: TaskStatus | undefined;
}

/** Thrown for a cursor the store cannot read; the app answers 400. */
export class BadCursorError extends Error {
  constructor(message = "cursor is malformed or from another listing") {
    super(message);
    this.name = "BadCursorError";
  }
}

/**
 * The contract every task store keeps (see `store_contract_test.ts`):
 * ids are unique; a write returns the stored task; `list` returns every task
 * present for the whole listing exactly once across pages, never one twice,
 * and may stop a page short of `limit` (with a cursor) when a filter skips
 * many tasks, to bound the work of one request.
 */
export interface TaskStore {
  readonly kind: StorageType;
  create(input: TaskInput, nowMs: number): MaybePromise<Task>;
  createMany(inputs: readonly TaskInput[], nowMs: number): MaybePromise<Task[]>;
  get(id: string): MaybePromise<Task | undefined>;
  /**
   * The task already encoded as JSON, for stores that keep (or cache) it that
   * way, so that a read costs no serialization. Optional.
   */
  getJson?(id: string): MaybePromise<string | Uint8Array | undefined>;
  replace(id: string, input: TaskInput, nowMs: number): MaybePromise<Task | undefined>;
  patch(id: string, patch: TaskPatchInput, nowMs: number): MaybePromise<Task | undefined>;
  delete(id: string): MaybePromise<boolean>;
  list(options: ListOptions): MaybePromise<TaskPage>;
  /** Number of tasks stored. */
  count(): MaybePromise<number>;
  close(): MaybePromise<void>;
}

/** Most entries one `list` call examines when a filter skips tasks. */
export const LIST_SCAN_MAX = 10_000;

/** Builds a new task from validated input. */
export function newTask(id: string, input: TaskInput, nowMs: number): Task {
  const at = new Date(nowMs).toISOString();
  return {
    id,
    title: input.title,
    description: input.description,
    status: input.status,
    priority: input.priority,
    createdAt: at,
    updatedAt: at,
  };
}

/** The task after a full replace: same id and creation time. */
export function replaced(old: Task, input: TaskInput, nowMs: number): Task {
  return {
    id: old.id,
    title: input.title,
    description: input.description,
    status: input.status,
    priority: input.priority,
    createdAt: old.createdAt,
    updatedAt: new Date(nowMs).toISOString(),
  };
}

/** The task after a partial update. */
export function patched(old: Task, patch: TaskPatchInput, nowMs: number): Task {
  return {
    id: old.id,
    title: patch.title ?? old.title,
    description: patch.description ?? old.description,
    status: patch.status ?? old.status,
    priority: patch.priority ?? old.priority,
    createdAt: old.createdAt,
    updatedAt: new Date(nowMs).toISOString(),
  };
}
