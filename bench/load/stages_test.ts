import assert from "node:assert/strict";
import { resolveStages, scaleStages, stagesDurationMs, stagesMaxVus, vusAt } from "./stages.ts";

const stages = [
  { duration: "10s", target: 100 },
  { duration: "20s", target: 100 },
  { duration: "10s", target: 0 },
];

Deno.test("vusAt interpolates linearly within a stage", () => {
  const r = resolveStages(stages);
  assert.equal(vusAt(r, 0), 0);
  assert.equal(vusAt(r, 2_500), 25);
  assert.equal(vusAt(r, 5_000), 50);
  assert.equal(vusAt(r, 9_999), 99);
  assert.equal(vusAt(r, 10_000), 100);
  assert.equal(vusAt(r, 25_000), 100);
  assert.equal(vusAt(r, 35_000), 50);
  assert.equal(vusAt(r, 40_000), 0);
  assert.equal(vusAt(r, 99_000), 0);
});

Deno.test("vusAt starts from startVus and handles zero-length stages", () => {
  const r = resolveStages([{ duration: 0, target: 10 }, {
    duration: "10s",
    target: 30,
  }], 5);
  assert.equal(vusAt(r, 0), 10);
  assert.equal(vusAt(r, 5_000), 20);
});

Deno.test("stage totals and max VUs", () => {
  assert.equal(stagesDurationMs(stages), 40_000);
  assert.equal(stagesMaxVus(stages), 100);
});

Deno.test("scaleStages shrinks durations and targets but keeps positive targets", () => {
  const scaled = scaleStages(stages, 0.1);
  assert.equal(stagesDurationMs(scaled), 4_000);
  assert.deepEqual(scaled.map((s) => s.target), [10, 10, 0]);
  assert.equal(
    scaleStages([{ duration: "1s", target: 3 }], 0.01)[0]!.target,
    1,
  );
  assert.throws(() => scaleStages(stages, 0));
});

Deno.test("resolveStages rejects negative targets", () => {
  assert.throws(() => resolveStages([{ duration: "1s", target: -1 }]));
});
