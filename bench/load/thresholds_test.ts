import assert from "node:assert/strict";
import { evaluateThresholds, parseThreshold } from "./thresholds.ts";

Deno.test("parseThreshold reads k6 expressions", () => {
  assert.deepEqual(parseThreshold("p(95)<50"), {
    stat: "p(95)",
    op: "<",
    bound: 50,
  });
  assert.deepEqual(parseThreshold("rate==0"), {
    stat: "rate",
    op: "==",
    bound: 0,
  });
  assert.deepEqual(parseThreshold("p(99.9) <= 1.5"), {
    stat: "p(99.9)",
    op: "<=",
    bound: 1.5,
  });
  assert.throws(() => parseThreshold("p95 < x"));
});

Deno.test("evaluateThresholds passes, fails and fails on missing metrics", () => {
  const results = evaluateThresholds(
    {
      http_req_duration: ["p(95)<50", "avg<1"],
      http_req_failed: ["rate==0"],
      "http_req_duration{name:get}": ["p(99)<10"],
    },
    {
      http_req_duration: { "p(95)": 20, avg: 3 },
      http_req_failed: { rate: 0 },
    },
  );
  assert.deepEqual(results.map((r) => r.ok), [true, false, true, false]);
  assert.equal(results[3]!.actual, null);
});
