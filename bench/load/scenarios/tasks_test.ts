import assert from "node:assert/strict";
import { startMock } from "../_testing/mock_tasks.ts";
import { runScenario } from "../runner.ts";
import { stagesDurationMs, stagesMaxVus } from "../stages.ts";
import { buildSummary } from "../summary.ts";
import { tasksBaseline, tasksComparative, tasksReadHeavy, tasksStress } from "./tasks.ts";

Deno.test("tasks scenarios have the seed report's shapes", () => {
  const baseline = tasksBaseline();
  assert.equal(stagesDurationMs(baseline.stages), 40_000);
  assert.equal(stagesMaxVus(baseline.stages), 100);
  assert.deepEqual(baseline.thinkTime, { fixedMs: 1_000 });
  const stress = tasksStress();
  assert.equal(stagesDurationMs(stress.stages), 90_000);
  assert.deepEqual([...new Set(stress.stages.map((s) => s.target))], [
    100,
    500,
    1_000,
    0,
  ]);
  assert.deepEqual(stress.thresholds?.http_req_duration, ["p(95)<50"]);
  assert.equal(stress.thinkTime, undefined);
  const readHeavy = tasksReadHeavy();
  assert.equal(stagesDurationMs(readHeavy.stages), 50_000);
  assert.equal(stagesMaxVus(readHeavy.stages), 800);
  assert.deepEqual(tasksComparative().stages, stress.stages);
});

Deno.test("tasks-read-heavy at a tiny scale seeds, mixes and never fails against the mock", async () => {
  const mock = startMock();
  try {
    const scenario = tasksReadHeavy({ seedCount: 2_500 });
    const result = await runScenario(scenario, {
      baseUrl: mock.url,
      scale: 0.02,
      seed: 3,
    });
    const s = buildSummary(result, scenario.thresholds);
    assert.equal(result.setupError, undefined);
    assert.equal(
      mock.counts.get("POST /tasks"),
      3,
      "2,500 tasks in bulk batches of 1,000",
    );
    const count = (name: string) => (s.metrics[`http_reqs{name:${name}}`]?.count ?? 0) as number;
    const total = s.metrics.http_reqs!.count as number;
    assert.ok(total > 50, `only ${total} requests`);
    assert.equal(count("get") + count("list") + count("patch"), total);
    assert.ok(count("get") / total > 0.55 && count("get") / total < 0.85);
    assert.equal(s.metrics.http_req_failed!.rate, 0);
  } finally {
    await mock.close();
  }
});

Deno.test("tasks-baseline deletes only tasks its VUs created", async () => {
  const mock = startMock();
  try {
    const scenario = {
      ...tasksBaseline({ seedCount: 100 }),
      thinkTime: { fixedMs: 1 },
    };
    const result = await runScenario(scenario, {
      baseUrl: mock.url,
      scale: 0.03,
      seed: 5,
    });
    const s = buildSummary(result, scenario.thresholds);
    assert.ok((s.metrics.http_reqs!.count as number) > 20);
    assert.equal(s.metrics.http_req_failed!.rate, 0);
    assert.ok((s.metrics["http_reqs{name:delete}"]?.count ?? 0) as number > 0);
  } finally {
    await mock.close();
  }
});
