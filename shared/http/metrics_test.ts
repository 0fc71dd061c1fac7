import assert from "node:assert/strict";
import { Histogram, Registry } from "./metrics.ts";

Deno.test("Registry renders counters and gauges in the text format", () => {
  const registry = new Registry();
  const c = registry.counter("jobs_total", "Jobs.", ["kind"]);
  c.inc({ kind: "a" });
  c.inc({ kind: "a" }, 2);
  c.inc({ kind: 'q"u\\o\nte' });
  registry.gauge("temp", "Temperature.").set(-1.5);
  const text = registry.render();
  assert.match(text, /# TYPE jobs_total counter/);
  assert.match(text, /jobs_total\{kind="a"\} 3/);
  assert.ok(text.includes('jobs_total{kind="q\\"u\\\\o\\nte"} 1'));
  assert.match(text, /temp -1.5/);
});

Deno.test("Histogram buckets are cumulative and end with +Inf", () => {
  const h = new Histogram("lat", "Latency.", [], [1, 2, 4]);
  for (const v of [0.5, 1, 1.5, 3, 10]) h.observe(v);
  const out: string[] = [];
  h.render(out);
  assert.deepEqual(out.filter((l) => l.startsWith("lat_bucket")), [
    'lat_bucket{le="1"} 2',
    'lat_bucket{le="2"} 3',
    'lat_bucket{le="4"} 4',
    'lat_bucket{le="+Inf"} 5',
  ]);
  assert.ok(out.includes("lat_count 5"));
  assert.ok(out.includes("lat_sum 16"));
});

Deno.test("Registry refuses duplicate and invalid metric names", () => {
  const registry = new Registry();
  registry.counter("a_total", "A.");
  assert.throws(() => registry.counter("a_total", "A."), /already registered/);
  assert.throws(() => registry.counter("bad-name", "B."), /bad metric name/);
  assert.throws(() => new Histogram("h", "H.", [], [2, 1]), /buckets must increase/);
});

Deno.test("Counter folds label sets past the series limit into other", () => {
  const registry = new Registry();
  const c = registry.counter("many_total", "Many.", ["id"]);
  for (let i = 0; i < 2_100; i++) c.inc({ id: String(i) });
  assert.equal(c.value({ id: "other" }), 100);
});
