import { taskStoreContract } from "./contract_suite.ts";
import { createIdGenerator } from "./ids.ts";
import { ShardTaskStore } from "./shard_store.ts";
import { seededRandom30 } from "./_testing.ts";

taskStoreContract("shard", () =>
  Promise.resolve({
    store: new ShardTaskStore(createIdGenerator(seededRandom30(3)), 8),
    dispose: () => Promise.resolve(),
  }));
