import assert from "node:assert/strict";
import { createLogger } from "@deno-stores/shared/http";
import { createKvApp } from "./app.ts";
import { ALL_COMMANDS } from "./commands/mod.ts";
import { Engine } from "./engine.ts";

function app(token = "", bodyLimitBytes = 1 << 20, requirepass = "") {
  const engine = new Engine(ALL_COMMANDS, { config: { requirepass } });
  const logger = createLogger({ service: "kv", sink: () => {}, now: () => 0 });
  const svc = createKvApp({ engine, logger, token, accessLog: false, bodyLimitBytes });
  const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await svc.request(path, {
      method: "POST",
      body: typeof body === "string" ? body : JSON.stringify(body),
      headers,
    });
    return { status: res.status, body: await res.json() };
  };
  return { engine, post, svc };
}

Deno.test("HTTP API: POST / runs one command, errors are 400 with Redis's text", async () => {
  const { post } = app();
  assert.deepEqual(await post("/", ["SET", "k", "héllo"]), { status: 200, body: { result: "OK" } });
  assert.deepEqual(await post("/", ["GET", "k"]), { status: 200, body: { result: "héllo" } });
  assert.deepEqual(await post("/", ["INCRBY", "n", 5]), { status: 200, body: { result: 5 } });
  assert.deepEqual(await post("/", ["GET", "none"]), { status: 200, body: { result: null } });
  await post("/", ["SET", "big", "9223372036854775806"]);
  assert.deepEqual(await post("/", ["INCR", "big"]), {
    status: 200,
    body: { result: "9223372036854775807" }, // beyond 2^53: a decimal string, exact
  });
  await post("/", ["HSET", "h", "a", "1"]);
  assert.deepEqual(await post("/", ["HGETALL", "h"]), {
    status: 200,
    body: { result: ["a", "1"] },
  });
  assert.deepEqual(await post("/", ["INCR", "k"]), {
    status: 400,
    body: { error: "ERR value is not an integer or out of range" },
  });
  assert.deepEqual(await post("/", ["NOPE"]), {
    status: 400,
    body: { error: "ERR unknown command 'NOPE', with args beginning with: " },
  });
});

Deno.test("HTTP API: /pipeline answers each command, /multi-exec runs them atomically", async () => {
  const { post } = app();
  const p = await post("/pipeline", [["INCR", "c"], ["INCR", "c"], ["LPUSH", "c", "x"], [
    "GET",
    "c",
  ]]);
  assert.equal(p.status, 200);
  assert.deepEqual(p.body, [
    { result: 1 },
    { result: 2 },
    { error: "WRONGTYPE Operation against a key holding the wrong kind of value" },
    { result: "2" },
  ]);
  const t = await post("/multi-exec", [["SET", "a", "1"], ["INCR", "a"], ["LPUSH", "a", "x"]]);
  assert.equal(t.status, 200);
  assert.deepEqual(t.body[0], { result: "OK" });
  assert.deepEqual(t.body[1], { result: 2 });
  assert.match(t.body[2].error, /^WRONGTYPE/);
  // A command refused while queueing aborts the whole transaction.
  const aborted = await post("/multi-exec", [["SET", "b", "1"], ["GET"]]);
  assert.equal(aborted.status, 400);
  assert.match(aborted.body.error, /^EXECABORT/);
  assert.deepEqual((await post("/", ["EXISTS", "b"])).body, { result: 0 });
});

Deno.test("HTTP API: bearer token, base64 results, bad bodies and refused commands", async () => {
  const { post } = app("s3cret", 4096);
  const auth = { authorization: "Bearer s3cret" };
  assert.deepEqual(await post("/", ["PING"]), { status: 401, body: { error: "Unauthorized" } });
  assert.equal((await post("/", ["PING"], { authorization: "Bearer nope" })).status, 401);
  assert.deepEqual(await post("/", ["PING"], auth), { status: 200, body: { result: "PONG" } });
  await post("/", ["SET", "bin", "\u00ff\u0000"], auth);
  assert.deepEqual(await post("/?encoding=base64", ["GET", "bin"], auth), {
    status: 200,
    body: { result: btoa(String.fromCharCode(0xc3, 0xbf, 0)) }, // the bytes of the UTF-8 text
  });
  assert.deepEqual(
    await post("/", ["GET", "bin"], { ...auth, "upstash-encoding": "base64" }),
    { status: 200, body: { result: "w78A" } },
  );
  assert.deepEqual(await post("/", "{not json", auth), {
    status: 400,
    body: { error: "the body is not JSON" },
  });
  assert.equal((await post("/", [], auth)).status, 400);
  assert.equal((await post("/", [{ a: 1 }], auth)).status, 400);
  assert.match((await post("/", ["MULTI"], auth)).body.error, /MULTI is not available over HTTP/);
  assert.equal((await post("/pipeline", [["PING"], "x"], auth)).status, 400);
  assert.equal((await post("/", ["SET", "k", "x".repeat(5000)], auth)).status, 413);
});

Deno.test("HTTP API: with REQUIREPASS, the bearer token is the authentication (no NOAUTH)", async () => {
  const { post, engine } = app("pw", 1 << 20, "pw");
  const auth = { authorization: "Bearer pw" };
  assert.deepEqual(await post("/", ["SET", "k", "v"], auth), {
    status: 200,
    body: { result: "OK" },
  });
  assert.deepEqual(await post("/", ["GET", "k"], auth), { status: 200, body: { result: "v" } });
  assert.equal((await post("/", ["GET", "k"])).status, 401);
  // HTTP requests are not client connections.
  assert.equal(engine.clients.size, 0);
  assert.equal(engine.stats.connectionsReceived, 0);
});
