import assert from "node:assert/strict";
import { LatencyHistogram } from "./histogram.ts";
import { Prng } from "./prng.ts";

function exactPercentile(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

Deno.test("LatencyHistogram percentiles match an exact sort within 1%", () => {
  const rng = new Prng(2024);
  const h = new LatencyHistogram();
  const values: number[] = [];
  for (let i = 0; i < 50_000; i++) {
    // Log-uniform between 0.05 ms and 5 s, rounded to whole microseconds.
    const ms = Math.round(Math.exp(rng.range(Math.log(0.05), Math.log(5000))) * 1000) /
      1000;
    values.push(ms);
    h.record(ms);
  }
  values.sort((a, b) => a - b);
  for (const p of [1, 50, 90, 95, 99, 99.9, 100]) {
    const exact = exactPercentile(values, p);
    const approx = h.percentile(p);
    const err = Math.abs(approx - exact) / exact;
    assert.ok(err <= 0.01, `p${p}: approx ${approx} exact ${exact} err ${err}`);
  }
  assert.equal(h.count, values.length);
  assert.equal(h.min, values[0]);
  assert.equal(h.max, values[values.length - 1]);
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  assert.ok(Math.abs(h.mean - mean) / mean < 1e-6);
});

Deno.test("LatencyHistogram is exact for small microsecond values", () => {
  const h = new LatencyHistogram();
  for (let us = 1; us <= 100; us++) h.record(us / 1000);
  assert.equal(h.percentile(50), 0.05);
  assert.equal(h.percentile(100), 0.1);
  assert.equal(h.percentile(1), 0.001);
});

Deno.test("LatencyHistogram merge equals recording everything in one", () => {
  const rng = new Prng(9);
  const a = new LatencyHistogram();
  const b = new LatencyHistogram();
  const all = new LatencyHistogram();
  for (let i = 0; i < 5_000; i++) {
    const ms = rng.range(0, 200);
    (i % 2 === 0 ? a : b).record(ms);
    all.record(ms);
  }
  a.merge(b);
  assert.equal(a.count, all.count);
  for (const p of [50, 95, 99]) {
    assert.equal(a.percentile(p), all.percentile(p));
  }
  assert.equal(a.max, all.max);
  assert.equal(a.min, all.min);
});

Deno.test("LatencyHistogram round-trips through JSON", () => {
  const h = new LatencyHistogram();
  for (const ms of [0.3, 4, 4, 17.5, 900, 12_000]) h.record(ms);
  const back = LatencyHistogram.fromJSON(JSON.parse(JSON.stringify(h)));
  assert.equal(back.count, 6);
  assert.equal(back.percentile(50), h.percentile(50));
  assert.equal(back.max, 12_000);
  assert.deepEqual(back.buckets(), h.buckets());
  assert.equal(h.buckets().reduce((s, b) => s + b.count, 0), 6);
});

Deno.test("LatencyHistogram of nothing answers zeros and clamps huge values", () => {
  const h = new LatencyHistogram();
  assert.equal(h.percentile(99), 0);
  assert.equal(h.mean, 0);
  h.record(1e12);
  assert.ok(h.max > 2_000_000 && h.max < 2_200_000);
});
