import assert from "node:assert/strict";
import { createLogger } from "@deno-stores/shared/http";
import { createTasksApp } from "../app.ts";
import type { Task } from "../schemas.ts";
import type { TaskStore } from "./types.ts";

/** Makes a fresh, empty store for one test and disposes of it. */
export type StoreFactory = () => Promise<{ store: TaskStore; dispose: () => Promise<void> }>;

const JSON_HEADERS = { "content-type": "application/json" };

class Harness {
  nowMs = Date.UTC(2026, 0, 1);
  readonly app;
  constructor(readonly store: TaskStore) {
    const logger = createLogger({ service: "tasks", level: "off", sink: () => {}, now: () => 0 });
    this.app = createTasksApp({ store, logger, now: () => this.nowMs, accessLog: false });
  }
  async call(method: string, path: string, body?: unknown) {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers = JSON_HEADERS;
    }
    const res = await this.app.request(path, init);
    const text = await res.text();
    return { status: res.status, body: text === "" ? undefined : JSON.parse(text) };
  }
  async create(body: unknown): Promise<Task> {
    const res = await this.call("POST", "/tasks", body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body;
  }
  async bulk(n: number, make: (i: number) => Record<string, unknown>): Promise<string[]> {
    const res = await this.call("POST", "/tasks/bulk", {
      tasks: Array.from({ length: n }, (_, i) => make(i)),
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.count, n);
    return res.body.ids;
  }
  async listAll(query = "", limit = 37, between?: (page: number) => Promise<void>) {
    const seen: Task[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q = new URLSearchParams(query);
      q.set("limit", String(limit));
      if (cursor !== null) q.set("cursor", cursor);
      const res = await this.call("GET", `/tasks?${q}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(res.body.items.length <= limit);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
      pages++;
      assert.ok(pages < 10_000, "listing does not terminate");
      if (between !== undefined && cursor !== null) await between(pages);
    } while (cursor !== null);
    return seen;
  }
}

/**
 * The contract every {@link TaskStore} keeps, exercised through the HTTP app
 * so that the API and the store are tested together. Run it once per store.
 */
export function taskStoreContract(name: string, factory: StoreFactory): void {
  const test = (title: string, fn: (h: Harness) => Promise<void>) =>
    Deno.test(`tasks API on ${name} store ${title}`, async () => {
      const { store, dispose } = await factory();
      try {
        await fn(new Harness(store));
      } finally {
        await dispose();
      }
    });

  test("creates a task with defaults and reads it back", async (h) => {
    const created = await h.create({ title: "write tests" });
    assert.equal(created.title, "write tests");
    assert.equal(created.description, "");
    assert.equal(created.status, "todo");
    assert.equal(created.priority, 0);
    assert.equal(created.createdAt, "2026-01-01T00:00:00.000Z");
    assert.equal(created.updatedAt, created.createdAt);
    const got = await h.call("GET", `/tasks/${created.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, created);
  });

  test("gives every task a distinct id", async (h) => {
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) ids.add((await h.create({ title: `t${i}` })).id);
    for (const id of await h.bulk(200, (i) => ({ title: `b${i}` }))) ids.add(id);
    assert.equal(ids.size, 250);
  });

  test("rejects invalid bodies naming the field, and stores nothing", async (h) => {
    const cases: Array<[unknown, string]> = [
      [{ title: "" }, "title"],
      [{ title: "x".repeat(201) }, "title"],
      [{ title: "ok", description: "d".repeat(10_001) }, "description"],
      [{ title: "ok", status: "blocked" }, "status"],
      [{ title: "ok", priority: 6 }, "priority"],
      [{ title: "ok", priority: 1.5 }, "priority"],
      [{ title: "ok", owner: "me" }, "owner"],
      [{ title: 42 }, "title"],
      [{}, "title"],
    ];
    for (const [body, field] of cases) {
      const res = await h.call("POST", "/tasks", body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, "validation_failed");
      assert.ok(
        res.body.error.issues.some((i: { path: string }) => i.path === field),
        `${JSON.stringify(body)} → ${JSON.stringify(res.body)}`,
      );
    }
    for (const raw of ["{", "[1,2", "null", "[]", '"title"']) {
      const res = await h.call("POST", "/tasks", raw);
      assert.equal(res.status, 400, raw);
    }
    assert.equal((await h.listAll()).length, 0);
  });

  test("replaces a task with PUT, keeping id and creation time", async (h) => {
    const created = await h.create({ title: "a", description: "d", status: "done", priority: 3 });
    h.nowMs += 5_000;
    const res = await h.call("PUT", `/tasks/${created.id}`, { title: "b" });
    assert.equal(res.status, 200);
    assert.equal(res.body.id, created.id);
    assert.equal(res.body.title, "b");
    assert.equal(res.body.description, "");
    assert.equal(res.body.status, "todo");
    assert.equal(res.body.priority, 0);
    assert.equal(res.body.createdAt, created.createdAt);
    assert.equal(res.body.updatedAt, "2026-01-01T00:00:05.000Z");
    const roundTrip = await h.call("PUT", `/tasks/${created.id}`, res.body);
    assert.equal(roundTrip.status, 200);
    const mismatch = await h.call("PUT", `/tasks/${created.id}`, { ...res.body, id: "other" });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.body.error.code, "id_mismatch");
    assert.equal((await h.call("GET", `/tasks/${created.id}`)).body.title, "b");
  });

  test("patches only the fields given", async (h) => {
    const created = await h.create({ title: "a", description: "keep", priority: 2 });
    h.nowMs += 1;
    const res = await h.call("PATCH", `/tasks/${created.id}`, { status: "in_progress" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      ...created,
      status: "in_progress",
      updatedAt: "2026-01-01T00:00:00.001Z",
    });
    const empty = await h.call("PATCH", `/tasks/${created.id}`, {});
    assert.equal(empty.status, 400);
    const bad = await h.call("PATCH", `/tasks/${created.id}`, { priority: "high" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.issues[0].path, "priority");
    const readOnly = await h.call("PATCH", `/tasks/${created.id}`, { createdAt: "x" });
    assert.equal(readOnly.status, 400);
  });

  test("deletes a task once, then answers 404 everywhere", async (h) => {
    const created = await h.create({ title: "gone soon" });
    assert.equal((await h.call("DELETE", `/tasks/${created.id}`)).status, 204);
    for (
      const [method, body] of [["GET"], ["DELETE"], ["PUT", { title: "x" }], [
        "PATCH",
        { title: "x" },
      ]] as const
    ) {
      const res = await h.call(method, `/tasks/${created.id}`, body);
      assert.equal(res.status, 404, method);
      assert.equal(res.body.error.code, "task_not_found");
    }
  });

  test("answers 404 for ids that cannot exist", async (h) => {
    for (const id of ["nope", "0000000000000000", "%00", "a".repeat(300), "ZZZZZZZZZZZZZZZZ"]) {
      assert.equal((await h.call("GET", `/tasks/${id}`)).status, 404, id);
    }
  });

  test("lists every task exactly once across pages", async (h) => {
    const ids = await h.bulk(
      250,
      (i) => ({ title: `t${i}`, status: i % 3 === 0 ? "done" : "todo" }),
    );
    const all = await h.listAll();
    assert.equal(all.length, 250);
    assert.deepEqual(new Set(all.map((t) => t.id)), new Set(ids));
    const done = await h.listAll("status=done", 10);
    assert.equal(done.length, 84);
    assert.ok(done.every((t) => t.status === "done"));
    const one = await h.call("GET", "/tasks?limit=1000");
    assert.equal(one.body.items.length, 250);
    assert.equal(one.body.nextCursor, null);
  });

  test("keeps listing stable while tasks are deleted and created", async (h) => {
    const ids = await h.bulk(300, (i) => ({ title: `t${i}` }));
    const doomed = new Set(ids.filter((_, i) => i % 4 === 1));
    const keep = ids.filter((id) => !doomed.has(id));
    const doomedList = [...doomed];
    const seen = await h.listAll("", 25, async (page) => {
      for (const id of doomedList.splice(0, 10)) {
        assert.equal((await h.call("DELETE", `/tasks/${id}`)).status, 204);
      }
      await h.create({ title: `new during page ${page}` });
    });
    const seenIds = seen.map((t) => t.id);
    assert.equal(new Set(seenIds).size, seenIds.length, "a task was listed twice");
    const seenSet = new Set(seenIds);
    for (const id of keep) assert.ok(seenSet.has(id), `task ${id} was skipped`);
  });

  test("rejects bad list queries and cursors", async (h) => {
    await h.bulk(5, (i) => ({ title: `t${i}` }));
    for (
      const q of ["limit=0", "limit=1001", "limit=abc", "status=blocked", "cursor=%25%25%25", "x=1"]
    ) {
      const res = await h.call("GET", `/tasks?${q}`);
      assert.equal(res.status, 400, q);
    }
  });

  test("bulk create validates every task and creates none when one is bad", async (h) => {
    const res = await h.call("POST", "/tasks/bulk", {
      tasks: [{ title: "ok" }, { title: "ok" }, { title: "ok" }, { title: "" }],
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.issues[0].path, "tasks[3].title");
    const tooMany = await h.call("POST", "/tasks/bulk", {
      tasks: Array.from({ length: 10_001 }, () => ({ title: "x" })),
    });
    assert.equal(tooMany.status, 400);
    assert.equal((await h.call("POST", "/tasks/bulk", { tasks: [] })).status, 400);
    assert.equal((await h.listAll()).length, 0);
  });

  test("bulk creates 10,000 tasks in one call", async (h) => {
    const ids = await h.bulk(10_000, (i) => ({ title: `seed ${i}`, priority: i % 6 }));
    assert.equal(new Set(ids).size, 10_000);
    const sample = await h.call("GET", `/tasks/${ids[9_999]}`);
    assert.equal(sample.body.title, "seed 9999");
    assert.equal(sample.body.priority, 9_999 % 6);
  });
}
