import assert from "node:assert/strict";
import { RunMetrics } from "./metrics.ts";
import { distribution, renderHtmlReport } from "./html_report.ts";
import type { RunResult } from "./runner.ts";
import { buildSummary, comparisonMarkdown } from "./summary.ts";
import { Prng } from "./prng.ts";

function fakeResult(label: string, seed: number): RunResult {
  const rng = new Prng(seed);
  const metrics = new RunMetrics();
  for (let i = 0; i < 3_000; i++) {
    const at = (i / 3_000) * 3_000;
    metrics.recordRequest(
      i % 3 === 0 ? "list" : "get",
      rng.range(0.2, 40),
      i % 500 === 0,
      at,
    );
    metrics.recordVus(1 + Math.floor(at / 1000), at);
    metrics.recordCheck("get status 200", i % 500 !== 0);
  }
  metrics.iterations = 3_000;
  return {
    scenario: "fake",
    description: `fake <run> ${label}`,
    baseUrl: "http://127.0.0.1:1",
    seed,
    scale: 1,
    stages: [{ duration: "3s", target: 3 }],
    startedAt: "2025-01-01T00:00:00.000Z",
    durationMs: 3_000,
    aborted: false,
    metrics,
  };
}

Deno.test("renderHtmlReport of one run has every section, inline SVG and no script", () => {
  const summary = buildSummary(fakeResult("memory", 1), {
    http_req_duration: ["p(95)<50"],
  }, "memory");
  const html = renderHtmlReport([summary]);
  for (
    const id of [
      "summary",
      "throughput",
      "latency-over-time",
      "latency-distribution",
      "thresholds",
      "tags",
      "checks",
    ]
  ) {
    assert.ok(html.includes(`id="${id}"`), `missing section ${id}`);
  }
  assert.equal((html.match(/<svg /g) ?? []).length, 4);
  assert.ok(!/<script/i.test(html));
  assert.ok(!/(src|href)="http/i.test(html), "external resource");
  assert.ok(html.includes("fake &lt;run&gt; memory"), "description escaped");
  assert.ok(html.includes("p(95)&lt;50"));
  assert.ok(html.includes("<td>list</td>") && html.includes("<td>get</td>"));
});

Deno.test("renderHtmlReport of several runs is a comparison with every label", () => {
  const a = buildSummary(fakeResult("a", 1), {}, "memory");
  const b = buildSummary(fakeResult("b", 2), {}, "shard");
  const html = renderHtmlReport([a, b]);
  assert.ok(html.includes("Load comparison: memory vs shard"));
  assert.ok(
    html.includes('id="run-memory"') && html.includes('id="run-shard"'),
  );
  assert.equal((html.match(/<svg /g) ?? []).length, 5);
  const md = comparisonMarkdown([a, b]);
  assert.equal(md.split("\n").length, 4);
  assert.ok(md.includes("| memory |") && md.includes("| shard |"));
  assert.throws(() => renderHtmlReport([]));
});

Deno.test("distribution bins add up to all requests", () => {
  const summary = buildSummary(fakeResult("x", 3));
  const bins = distribution(summary);
  assert.equal(bins.length, 40);
  const total = bins.reduce((s, [, share]) => s + share, 0);
  assert.ok(Math.abs(total - 1) < 1e-9, `total ${total}`);
  for (let i = 1; i < bins.length; i++) {
    assert.ok(bins[i]![0] > bins[i - 1]![0]);
  }
});
