import assert from "node:assert/strict";
import { createLogger } from "@deno-stores/shared/http";
import { createTasksApp } from "./app.ts";
import { createIdGenerator } from "./store/ids.ts";
import { MemoryTaskStore } from "./store/memory_store.ts";
import { seededRandom30 } from "./store/_testing.ts";

function app() {
  const logger = createLogger({ service: "tasks", level: "off", sink: () => {}, now: () => 0 });
  const store = new MemoryTaskStore(createIdGenerator(seededRandom30(9)));
  return createTasksApp({ store, logger, now: () => 0, accessLog: false });
}

Deno.test("tasks app serves an OpenAPI document describing every route", async () => {
  const res = await app().request("/openapi.json");
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(Object.keys(doc.paths).sort(), ["/tasks", "/tasks/bulk", "/tasks/{id}"]);
  assert.deepEqual(Object.keys(doc.paths["/tasks/{id}"]).sort(), [
    "delete",
    "get",
    "parameters",
    "patch",
    "put",
  ]);
  const task = doc.components.schemas.TaskCreate;
  assert.equal(task.properties.title.maxLength, 200);
  assert.deepEqual(task.properties.status.enum, ["todo", "in_progress", "done"]);
  assert.equal(task.additionalProperties, false);
});

Deno.test("tasks app counts stored tasks in /metrics", async () => {
  const service = app();
  await service.request("/tasks", { method: "POST", body: JSON.stringify({ title: "a" }) });
  const text = await (await service.request("/metrics")).text();
  assert.match(text, /tasks_stored\{storage="memory"\} 1/);
  assert.match(text, /http_requests_total\{method="POST",route="\/tasks",status="201"\} 1/);
});

Deno.test("tasks app answers a bulk body over its own limit with 413", async () => {
  const logger = createLogger({ service: "tasks", level: "off", sink: () => {}, now: () => 0 });
  const store = new MemoryTaskStore(createIdGenerator(seededRandom30(10)));
  const service = createTasksApp({ store, logger, now: () => 0, bulkBodyLimitBytes: 2048 });
  const body = JSON.stringify({ tasks: Array.from({ length: 300 }, () => ({ title: "x" })) });
  const res = await service.request("/tasks/bulk", { method: "POST", body });
  assert.equal(res.status, 413);
  assert.equal(await store.count(), 0);
});
