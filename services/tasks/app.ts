import type { Context } from "hono";
import {
  createServiceApp,
  HttpError,
  type Logger,
  parseBody,
  parseQuery,
  type ServiceApp,
  type ServiceEnv,
} from "@deno-stores/shared/http";
import { openApiDocument } from "./openapi.ts";
import { TaskBulk, TaskCreate, TaskListQuery, TaskPatch, TaskReplace } from "./schemas.ts";
import { ContentionError } from "./store/kv_store.ts";
import { BadCursorError, type TaskStore } from "./store/types.ts";
import type { Task } from "./schemas.ts";

/** What {@link createTasksApp} needs. */
export interface TasksAppDeps {
  store: TaskStore;
  logger: Logger;
  /** Wall clock in ms (timestamps of tasks). */
  now: () => number;
  accessLog?: boolean;
  bodyLimitBytes?: number;
  /** Body limit of `POST /tasks/bulk`, which carries up to 10,000 tasks. */
  bulkBodyLimitBytes?: number;
  maxInflightRequests?: number;
  requestIdPrefix?: string;
}

/** Default body limit of `POST /tasks/bulk`. */
export const BULK_BODY_BYTES_MAX_DEFAULT = 64 << 20;

/** Translates store errors into HTTP errors. */
export function mapStoreError(error: Error): HttpError | undefined {
  if (error instanceof BadCursorError) return new HttpError(400, "bad_cursor", error.message);
  if (error instanceof ContentionError) {
    return new HttpError(503, "contention", error.message, { headers: { "retry-after": "1" } });
  }
  switch (error.name) {
    case "ValueTooLargeError":
      return new HttpError(413, "task_too_large", error.message);
    case "ArenaFullError":
    case "TableFullError":
      return new HttpError(507, "storage_full", error.message);
    case "InvalidCursorError":
      return new HttpError(400, "bad_cursor", error.message);
  }
  return undefined;
}

function notFound(id: string): HttpError {
  return new HttpError(404, "task_not_found", `task ${JSON.stringify(id)} not found`);
}

/**
 * The tasks HTTP app: CRUD, cursor listing and bulk create over any
 * {@link TaskStore}, on top of the shared service app (health, metrics,
 * error mapping).
 */
export function createTasksApp(deps: TasksAppDeps): ServiceApp {
  const { store, now } = deps;
  const service = createServiceApp({
    service: "tasks",
    logger: deps.logger,
    accessLog: deps.accessLog,
    bodyLimitBytes: deps.bodyLimitBytes,
    maxInflightRequests: deps.maxInflightRequests,
    requestIdPrefix: deps.requestIdPrefix,
    mapError: mapStoreError,
  });
  const { app, registry } = service;
  const bulkLimit = deps.bulkBodyLimitBytes ?? BULK_BODY_BYTES_MAX_DEFAULT;
  registry.gauge("tasks_stored", "Tasks held by the store.", ["storage"], (g) => {
    const n = store.count();
    if (typeof n === "number") g.set(n, { storage: store.kind });
  });
  const openapi = JSON.stringify(openApiDocument());

  app.get("/openapi.json", (c) => c.body(openapi, 200, { "content-type": "application/json" }));

  app.post("/tasks", async (c) => {
    const input = await parseBody(c, TaskCreate);
    const task = await store.create(input, now());
    return c.json(task, 201, { location: `/tasks/${task.id}` });
  });

  app.post("/tasks/bulk", async (c: Context<ServiceEnv>) => {
    if (c.env !== undefined) c.env.bodyLimitBytes = bulkLimit;
    const { tasks } = await parseBody(c, TaskBulk);
    const created = await store.createMany(tasks, now());
    return c.json({ count: created.length, ids: created.map((t) => t.id) }, 201);
  });

  app.get("/tasks", async (c) => {
    const query = parseQuery(c, TaskListQuery);
    return c.json(await store.list(query));
  });

  const JSON_HEADERS = { "content-type": "application/json" };
  // The hottest route also gets the kit's fast path (no Hono context or
  // router); misses fall through to the Hono route below, which answers 404.
  const fastResponse = (found: string | Uint8Array | undefined) =>
    found === undefined
      ? undefined
      : new Response(found as string | Uint8Array<ArrayBuffer>, { headers: JSON_HEADERS });
  const getJson = store.getJson?.bind(store);
  if (getJson !== undefined) {
    service.fastGet("/tasks/", "/tasks/:id", (id) => {
      const found = getJson(id);
      return found instanceof Promise ? found.then(fastResponse) : fastResponse(found);
    });
  }
  // The hottest route: synchronous when the store is, and no serialization
  // when the store keeps tasks encoded.
  app.get("/tasks/:id", (c): Response | Promise<Response> => {
    const id = c.req.param("id");
    const respond = (found: string | Uint8Array | Task | undefined): Response => {
      if (found === undefined) throw notFound(id);
      if (typeof found === "string") return c.body(found, 200, JSON_HEADERS);
      if (found instanceof Uint8Array) {
        return c.body(found as Uint8Array<ArrayBuffer>, 200, JSON_HEADERS);
      }
      return c.json(found);
    };
    const found = store.getJson !== undefined ? store.getJson(id) : store.get(id);
    return found instanceof Promise ? found.then(respond) : respond(found);
  });

  app.put("/tasks/:id", async (c) => {
    const id = c.req.param("id");
    const { id: bodyId, createdAt: _c, updatedAt: _u, ...input } = await parseBody(c, TaskReplace);
    if (bodyId !== undefined && bodyId !== id) {
      throw new HttpError(
        400,
        "id_mismatch",
        `body id ${JSON.stringify(bodyId)} differs from the path`,
      );
    }
    const task = await store.replace(id, input, now());
    if (task === undefined) throw notFound(id);
    return c.json(task);
  });

  app.patch("/tasks/:id", async (c) => {
    const id = c.req.param("id");
    const patch = await parseBody(c, TaskPatch);
    const task = await store.patch(id, patch, now());
    if (task === undefined) throw notFound(id);
    return c.json(task);
  });

  app.delete("/tasks/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await store.delete(id))) throw notFound(id);
    return c.body(null, 204);
  });

  return service;
}
