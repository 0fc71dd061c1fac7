import assert from "node:assert/strict";
import { outputPaths, parseArgs } from "./cli.ts";
import { findScenario, SCENARIOS } from "./scenarios/mod.ts";

Deno.test("parseArgs reads a scenario and its options", () => {
  const a = parseArgs([
    "tasks-stress",
    "--url",
    "http://127.0.0.1:8001",
    "--storage=shard",
    "--scale",
    "0.1",
    "--seed",
    "7",
    "--max-duration",
    "30s",
    "--keys",
    "zipf:1.1",
  ]);
  assert.equal(a.command, "run");
  assert.deepEqual(a.positional, ["tasks-stress"]);
  assert.equal(a.url, "http://127.0.0.1:8001");
  assert.equal(a.storage, "shard");
  assert.equal(a.scale, 0.1);
  assert.equal(a.seed, 7);
  assert.equal(a.maxDurationMs, 30_000);
  assert.equal(a.keys, "zipf:1.1");
});

Deno.test("parseArgs knows list, report and help, and rejects bad input", () => {
  assert.equal(parseArgs(["list"]).command, "list");
  const r = parseArgs(["report", "a.json", "b.json", "--out", "x.html"]);
  assert.equal(r.command, "report");
  assert.deepEqual(r.positional, ["a.json", "b.json"]);
  assert.equal(parseArgs([]).command, "help");
  assert.throws(() => parseArgs(["x", "--bogus"]));
  assert.throws(() => parseArgs(["x", "--scale", "0"]));
  assert.throws(() => parseArgs(["x", "--url"]));
});

Deno.test("outputPaths puts files in a directory or at a given path", () => {
  assert.deepEqual(outputPaths("out", "run"), {
    json: "out/run.json",
    html: "out/run.html",
  });
  assert.deepEqual(outputPaths("out/r.json", "run"), {
    json: "out/r.json",
    html: "out/r.html",
  });
});

Deno.test("every scenario is registered and findable by short name", () => {
  assert.deepEqual(SCENARIOS.map((s) => s.name), [
    "tasks-baseline",
    "tasks-stress",
    "tasks-read-heavy",
    "tasks-comparative",
    "log-produce-consume",
    "kv-http",
    "metastore-kv",
    "kv-events-route",
  ]);
  assert.equal(findScenario("stress")?.name, "tasks-stress");
  assert.equal(findScenario("log-produce-consume")?.service, "log");
  assert.deepEqual(findScenario("tasks-comparative")?.storages, [
    "memory",
    "shard",
    "pool",
    "kv",
  ]);
  assert.equal(findScenario("nope"), undefined);
});
