import { LatencyHistogram } from "./histogram.ts";
import { Prng } from "./prng.ts";

const rng = new Prng(1);
const samples = Float64Array.from(
  { length: 10_000 },
  () => rng.range(0.05, 500),
);

Deno.bench({
  name: "array push + sort (exact percentiles)",
  group: "latency recording, 10k samples",
  baseline: true,
  fn() {
    const values: number[] = [];
    for (const v of samples) values.push(v);
    values.sort((a, b) => a - b);
    if (values[Math.floor(values.length * 0.99)]! < 0) {
      throw new Error("unreachable");
    }
  },
});

Deno.bench({
  name: "LatencyHistogram.record + percentile",
  group: "latency recording, 10k samples",
  fn() {
    const h = new LatencyHistogram();
    for (const v of samples) h.record(v);
    if (h.percentile(99) < 0) throw new Error("unreachable");
  },
});
