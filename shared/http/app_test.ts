import assert from "node:assert/strict";
import { z } from "zod";
import { createLogger, createServiceApp, parseBody, parseQuery } from "./mod.ts";

function setup(options: { maxInflightRequests?: number; bodyLimitBytes?: number } = {}) {
  const lines: string[] = [];
  const logger = createLogger({ service: "test", sink: (l) => lines.push(l), now: () => 0 });
  const service = createServiceApp({ service: "test", logger, ...options });
  const schema = z.strictObject({ name: z.string().min(1), age: z.number().int().optional() });
  service.app.post("/people", async (c) => c.json(await parseBody(c, schema), 201));
  service.app.get("/items/:id", (c) => c.json({ id: c.req.param("id") }));
  service.app.get(
    "/search",
    (c) => c.json(parseQuery(c, z.object({ limit: z.coerce.number().int().max(10) }))),
  );
  service.app.get("/boom", () => {
    throw new Error("kaput");
  });
  return { ...service, lines };
}

Deno.test("createServiceApp answers unknown routes with a 404 JSON body", async () => {
  const { request } = setup();
  const res = await request("/nope");
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), {
    error: { code: "not_found", message: "no route for GET /nope" },
  });
});

Deno.test("createServiceApp maps zod issues to 400 naming each field", async () => {
  const { request } = setup();
  const res = await request("/people", {
    method: "POST",
    body: JSON.stringify({ name: "", age: 1.5, extra: true }),
    headers: { "content-type": "application/json" },
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, "validation_failed");
  const paths = body.error.issues.map((i: { path: string }) => i.path).sort();
  assert.deepEqual(paths, ["age", "extra", "name"]);
  assert.equal(
    body.error.issues.find((i: { path: string }) => i.path === "extra").message,
    "unknown field",
  );
});

Deno.test("createServiceApp rejects bad JSON, empty bodies and invalid UTF-8 with 400", async () => {
  const { request } = setup();
  for (const body of ["{not json", "", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])]) {
    const res = await request("/people", { method: "POST", body });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error.code, "invalid_json");
  }
});

Deno.test("createServiceApp answers 413 past the body limit, with or without Content-Length", async () => {
  const { request } = setup({ bodyLimitBytes: 1024 });
  const big = JSON.stringify({ name: "x".repeat(2000) });
  const declared = await request("/people", { method: "POST", body: big });
  assert.equal(declared.status, 413);
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < 10; i++) controller.enqueue(new Uint8Array(200).fill(0x20));
      controller.close();
    },
  });
  const chunked = await request("/people", { method: "POST", body: stream });
  assert.equal(chunked.status, 413);
  assert.equal((await chunked.json()).error.code, "payload_too_large");
});

Deno.test("createServiceApp rejects a malformed Content-Length", async () => {
  const { request } = setup();
  const req = new Request("http://x/people", {
    method: "POST",
    body: "{}",
    headers: { "content-length": "-5" },
  });
  const res = await request(req);
  assert.equal(res.status, 400);
});

Deno.test("createServiceApp validates query parameters", async () => {
  const { request } = setup();
  assert.equal((await request("/search?limit=5")).status, 200);
  const res = await request("/search?limit=50");
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error.issues[0].path, "limit");
});

Deno.test("createServiceApp hides internal errors behind a 500 and logs them", async () => {
  const { request, lines } = setup();
  const res = await request("/boom");
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), {
    error: { code: "internal", message: "internal server error" },
  });
  assert.ok(lines.some((l) => l.includes("kaput")));
});

Deno.test("createServiceApp answers 503 with Retry-After when too many requests are in flight", async () => {
  const { app, request } = setup({ maxInflightRequests: 1 });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  app.get("/slow", async (c) => {
    await gate;
    return c.json({ ok: true });
  });
  const first = request("/slow");
  const second = await request("/items/1");
  assert.equal(second.status, 503);
  assert.equal(second.headers.get("retry-after"), "1");
  assert.equal((await second.json()).error.code, "overloaded");
  release();
  assert.equal((await first).status, 200);
  assert.equal((await request("/items/1")).status, 200);
});

Deno.test("createServiceApp echoes a sane x-request-id and sends a generated one on errors", async () => {
  const { request, lines } = setup();
  const echoed = await request("/items/1", { headers: { "x-request-id": "abc-123" } });
  assert.equal(echoed.headers.get("x-request-id"), "abc-123");
  const hostile = await request("/nope", { headers: { "x-request-id": "a b\tc" } });
  assert.equal(hostile.status, 404);
  assert.match(hostile.headers.get("x-request-id") ?? "", /^req-/);
  const plain = await request("/items/1");
  assert.equal(plain.headers.get("x-request-id"), null);
  const entry = JSON.parse(lines.find((l) => l.includes("abc-123"))!);
  assert.equal(entry.route, "/items/:id");
  assert.equal(entry.status, 200);
  assert.equal(entry.msg, "request");
});

Deno.test("createServiceApp readiness follows the lifecycle and its checks", async () => {
  const { request, lifecycle } = setup();
  assert.equal((await request("/readyz")).status, 503);
  lifecycle.markStarted();
  assert.equal((await request("/readyz")).status, 200);
  let leader = false;
  lifecycle.addCheck("leader", () => leader);
  const res = await request("/readyz");
  assert.equal(res.status, 503);
  assert.deepEqual((await res.json()).reasons, ["leader"]);
  leader = true;
  assert.equal((await request("/readyz")).status, 200);
  lifecycle.markDraining();
  assert.equal((await request("/readyz")).status, 503);
  assert.equal((await request("/healthz")).status, 200);
});

Deno.test("createServiceApp counts requests per route pattern and status in /metrics", async () => {
  const { request } = setup();
  await request("/items/1");
  await request("/items/2");
  await request("/nope");
  const text = await (await request("/metrics")).text();
  assert.match(text, /http_requests_total\{method="GET",route="\/items\/:id",status="200"\} 2/);
  assert.match(text, /http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
  assert.match(
    text,
    /http_request_duration_seconds_count\{method="GET",route="\/items\/:id",status="200"\} 2/,
  );
});

Deno.test("fastGet answers before Hono and falls through when it declines or fails", async () => {
  const service = setup();
  const seen: string[] = [];
  service.fastGet("/items/", "/items/:id", (id) => {
    seen.push(id);
    if (id === "boom") throw new Error("fast path failed");
    if (id === "later") return Promise.resolve(new Response("async"));
    return id === "fast" ? new Response("from fast path") : undefined;
  });
  assert.equal(await (await service.request("/items/fast")).text(), "from fast path");
  assert.equal(await (await service.request("/items/later")).text(), "async");
  assert.deepEqual(await (await service.request("/items/slow")).json(), { id: "slow" });
  assert.deepEqual(await (await service.request("/items/boom")).json(), { id: "boom" });
  // Segments with a query, a slash or an escape always go to Hono.
  assert.deepEqual(await (await service.request("/items/fast?x=1")).json(), { id: "fast" });
  assert.deepEqual(await (await service.request("/items/fa%73t")).json(), { id: "fast" });
  assert.deepEqual(seen, ["fast", "later", "slow", "boom"]);
  const text = await (await service.request("/metrics")).text();
  assert.match(text, /http_requests_total\{method="GET",route="\/items\/:id",status="200"\} 6/);
});

Deno.test("fastGet refuses a prefix that is not a path segment", () => {
  const service = setup();
  assert.throws(() => service.fastGet("items/", "x", () => undefined), RangeError);
  assert.throws(() => service.fastGet("/items", "x", () => undefined), RangeError);
});
