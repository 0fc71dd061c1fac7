/**
 * Task API calls for the k6 scripts: each request carries a `name` tag (the
 * per-tag breakdown key, same names as the load runner) and a status check.
 *
 * @module
 */
import { check } from "k6";
import http from "k6/http";
import type { RefinedResponse, ResponseType } from "k6/http";

const STATUSES = ["todo", "in_progress", "done"];
const JSON_HEADERS = { "content-type": "application/json" };
/** Tasks per bulk request while seeding. */
export const SEED_BATCH_SIZE = 1000;

/** Ids this VU created (each k6 VU has its own module instance). */
const ownIds: string[] = [];
const OWN_IDS_MAX = 1000;

/** What setup hands to the VUs. */
export interface SeedData {
  ids: string[];
}

/** A random valid task body. */
export function taskBody(n: number): Record<string, unknown> {
  return {
    title: `k6 task ${n}`,
    description: `created by k6 (${Math.floor(Math.random() * 1e9).toString(16)})`,
    status: STATUSES[Math.floor(Math.random() * STATUSES.length)],
    priority: Math.floor(Math.random() * 6),
  };
}

function expectStatus(
  res: RefinedResponse<ResponseType | undefined>,
  name: string,
  status: number,
): boolean {
  return check(res, {
    [`${name} status ${status}`]: (r) => r.status === status,
  });
}

/** Creates `count` tasks with `POST /tasks/bulk` (call from setup). */
export function seedTasks(baseUrl: string, count: number): SeedData {
  const ids: string[] = [];
  while (ids.length < count) {
    const size = Math.min(SEED_BATCH_SIZE, count - ids.length);
    const tasks = [];
    for (let i = 0; i < size; i++) tasks.push(taskBody(ids.length + i));
    const res = http.post(`${baseUrl}/tasks/bulk`, JSON.stringify({ tasks }), {
      headers: JSON_HEADERS,
      tags: { name: "seed" },
      timeout: "60s",
    });
    if (res.status !== 201) {
      throw new Error(`seeding failed with status ${res.status}`);
    }
    const body = res.json() as { ids: string[] };
    ids.push(...body.ids);
  }
  return { ids };
}

/** GET /tasks/:id (expects 200). */
export function getTask(baseUrl: string, id: string): void {
  const res = http.get(`${baseUrl}/tasks/${id}`, { tags: { name: "get" } });
  expectStatus(res, "get", 200);
}

/** POST /tasks (expects 201) and remember the id for {@linkcode deleteOwnTask}. */
export function createTask(baseUrl: string): void {
  const res = http.post(`${baseUrl}/tasks`, JSON.stringify(taskBody(__ITER)), {
    headers: JSON_HEADERS,
    tags: { name: "create" },
  });
  if (expectStatus(res, "create", 201) && ownIds.length < OWN_IDS_MAX) {
    const id = (res.json() as { id?: string }).id;
    if (typeof id === "string") ownIds.push(id);
  }
}

/** PUT /tasks/:id, a full replace (expects 200). */
export function replaceTask(baseUrl: string, id: string): void {
  const res = http.put(
    `${baseUrl}/tasks/${id}`,
    JSON.stringify(taskBody(__ITER)),
    {
      headers: JSON_HEADERS,
      tags: { name: "replace" },
    },
  );
  expectStatus(res, "replace", 200);
}

/** PATCH /tasks/:id status (expects 200). */
export function patchTask(baseUrl: string, id: string): void {
  const status = STATUSES[Math.floor(Math.random() * STATUSES.length)];
  const res = http.patch(`${baseUrl}/tasks/${id}`, JSON.stringify({ status }), {
    headers: JSON_HEADERS,
    tags: { name: "patch" },
  });
  expectStatus(res, "patch", 200);
}

/** DELETE a task this VU created (expects 204); creates one when it has none. */
export function deleteOwnTask(baseUrl: string): void {
  const id = ownIds.pop();
  if (id === undefined) return createTask(baseUrl);
  const res = http.del(`${baseUrl}/tasks/${id}`, null, {
    tags: { name: "delete" },
  });
  expectStatus(res, "delete", 204);
}

let lastCursor: string | null = null;

/** GET /tasks?limit=50, sometimes following the last cursor or filtering by status. */
export function listTasks(baseUrl: string): void {
  let query = "limit=50";
  if (lastCursor !== null && Math.random() < 0.5) {
    query += `&cursor=${encodeURIComponent(lastCursor)}`;
  } else if (Math.random() < 0.3) {
    query += `&status=${STATUSES[Math.floor(Math.random() * STATUSES.length)]}`;
  }
  const res = http.get(`${baseUrl}/tasks?${query}`, { tags: { name: "list" } });
  if (expectStatus(res, "list", 200)) {
    const next = (res.json() as { nextCursor?: string | null }).nextCursor;
    lastCursor = typeof next === "string" ? next : null;
  }
}
