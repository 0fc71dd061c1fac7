import { taskStoreContract } from "./contract_suite.ts";
import { PoolTaskStore } from "./pool_store.ts";

taskStoreContract("pool", () =>
  Promise.resolve({
    store: PoolTaskStore.attach(
      PoolTaskStore.createTable({
        SHARD_COUNT: 8,
        POOL_SLOTS_PER_SHARD: 4096,
        POOL_ARENA_BYTES: 32 << 20,
      }),
    ),
    dispose: () => Promise.resolve(),
  }));
