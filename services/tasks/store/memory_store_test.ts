import { taskStoreContract } from "./contract_suite.ts";
import { createIdGenerator } from "./ids.ts";
import { MemoryTaskStore } from "./memory_store.ts";
import { seededRandom30 } from "./_testing.ts";

taskStoreContract("memory", () =>
  Promise.resolve({
    store: new MemoryTaskStore(createIdGenerator(seededRandom30(1))),
    dispose: () => Promise.resolve(),
  }));
