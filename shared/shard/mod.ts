/**
 * Sharded key-value containers with exactly-once paginated iteration.
 *
 * - {@link ShardMap}: an in-isolate map of any values, split into a power of
 *   two number of shards, with low per-entry overhead.
 * - {@link SharedShardTable}: a string → bytes hash table in
 *   `SharedArrayBuffer`s, shared by a pool of Worker isolates, with per-shard
 *   `Atomics` locks, an atomic `update`, and a global sequence counter.
 *
 * Both page with the same contract: across the pages of one iteration, a key
 * present for the whole iteration is returned exactly once; keys added or
 * removed meanwhile may or may not be; none twice. A garbled cursor throws
 * {@link InvalidCursorError}.
 *
 * @example
 * ```ts
 * import { ShardMap } from "@deno-stores/shared/shard";
 *
 * const tasks = new ShardMap<{ title: string }>(64);
 * tasks.set("1", { title: "write docs" });
 * const { items, cursor } = tasks.page({ limit: 50 });
 * // items: [["1", { title: "write docs" }]], cursor: null
 * ```
 *
 * @example
 * ```ts
 * import { SharedShardTable } from "@deno-stores/shared/shard";
 *
 * const table = SharedShardTable.create({ shardCount: 64, slotsPerShard: 32768 });
 * const id = String(table.nextSequence());
 * table.set(id, new TextEncoder().encode(JSON.stringify({ id })));
 * // Send table.handle() to workers; there: SharedShardTable.attach(handle)
 * ```
 *
 * @module
 */
export {
  CURSOR_MAX_LENGTH,
  InvalidCursorError,
  type PageOptions,
  type PageResult,
} from "./cursor.ts";
export {
  ArenaFullError,
  CapacityError,
  KeyTooLongError,
  TableFullError,
  ValueTooLargeError,
} from "./errors.ts";
export { fmix32, hashByteRange, hashBytes, hashNumber, hashString } from "./hash.ts";
export {
  checkShardCount,
  SHARD_COUNT_DEFAULT,
  SHARD_COUNT_MAX,
  SHARD_COUNT_MIN,
  type ShardKey,
  ShardMap,
} from "./shard_map.ts";
export {
  SharedShardTable,
  type SharedShardTableHandle,
  type SharedShardTableOptions,
  type SharedShardTableStats,
} from "./shared_table.ts";
