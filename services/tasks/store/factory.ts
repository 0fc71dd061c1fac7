import type { TasksConfig } from "../config.ts";
import { createIdGenerator } from "./ids.ts";
import { KvTaskStore } from "./kv_store.ts";
import { MemoryTaskStore } from "./memory_store.ts";
import { ShardTaskStore } from "./shard_store.ts";
import type { TaskStore } from "./types.ts";

/** Opens the store `config.STORAGE_TYPE` names (not `pool`: see main.ts). */
export async function openStore(config: TasksConfig, random30: () => number): Promise<TaskStore> {
  const ids = createIdGenerator(random30);
  switch (config.STORAGE_TYPE) {
    case "memory":
      return new MemoryTaskStore(ids);
    case "shard":
      return new ShardTaskStore(ids, config.SHARD_COUNT);
    case "kv": {
      const path = config.KV_PATH ?? `${config.DATA_DIR}/tasks.kv`;
      if (path !== ":memory:") {
        await Deno.mkdir(path.slice(0, Math.max(0, path.lastIndexOf("/"))) || ".", {
          recursive: true,
        });
      }
      return await KvTaskStore.open(path, ids);
    }
    default:
      throw new Error(`storage ${config.STORAGE_TYPE} is not opened here`);
  }
}
