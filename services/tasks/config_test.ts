import assert from "node:assert/strict";
import { ConfigError } from "@deno-stores/shared/config";
import { loadTasksConfig } from "./config.ts";

Deno.test("loadTasksConfig defaults to memory storage on port 8001", () => {
  const config = loadTasksConfig({}, 4);
  assert.equal(config.STORAGE_TYPE, "memory");
  assert.equal(config.PORT, 8001);
  assert.equal(config.SHARD_COUNT, 32);
  assert.equal(config.POOL_WORKERS, 4);
});

Deno.test("loadTasksConfig names the variable of a bad value", () => {
  for (
    const [name, value] of [["STORAGE_TYPE", "redis"], ["SHARD_COUNT", "33"], [
      "POOL_WORKERS",
      "0",
    ], ["PORT", "-1"]]
  ) {
    assert.throws(() => loadTasksConfig({ [name!]: value }, 2), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems[0]!.variable, name);
      return true;
    });
  }
});
