import { taskStoreContract } from "./contract_suite.ts";
import { createIdGenerator } from "./ids.ts";
import { KvTaskStore } from "./kv_store.ts";
import { seededRandom30 } from "./_testing.ts";

taskStoreContract("kv", async () => {
  const store = await KvTaskStore.open(":memory:", createIdGenerator(seededRandom30(2)));
  return { store, dispose: () => Promise.resolve(store.close()) };
});
