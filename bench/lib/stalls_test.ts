import assert from "node:assert/strict";
import { cpuGaps, gapStats, type Samples, slowShare } from "./stalls.ts";

function samples(rows: [ts: number, at: number, busy: number][]): Samples {
  const ms = (k: number) => Float64Array.from(rows, (r) => r[k] / 1000);
  return { ts: ms(0), at: ms(1), busy: ms(2), n: rows.length };
}

Deno.test("slow batches: a stall with nothing indexed is time not spent on batches", () => {
  // Three batches 0.1 ms apart, all indexed after 3 ms, each 0.05 ms of work.
  const r = slowShare(samples([[0, 3, 0.05], [0.1, 3.05, 0.05], [0.2, 3.1, 0.05]]));
  assert.equal(r.slow, 3);
  // Busy 0.05, 0.10 and 0.15 ms of 3 + 2.95 + 2.9 ms.
  assert.ok(Math.abs(r.busyShare - 0.3 / 8.85) < 1e-12, String(r.busyShare));
});

Deno.test("slow batches: one long batch is all the wait of those queued behind it", () => {
  // Batch 0 takes 2 ms; batch 1, published 0.1 ms in, waits for it, then takes 0.05 ms.
  const r = slowShare(samples([[0, 2, 2], [0.1, 2.05, 0.05], [2.2, 2.3, 0.05]]));
  assert.equal(r.slow, 2);
  assert.ok(Math.abs(r.busyShare - 1) < 1e-12, String(r.busyShare));
  // Only the part of batch 0's work after batch 1 was published counts for batch 1.
  const late = slowShare(samples([[0, 2, 2], [1.5, 2.6, 0.05]]), 500);
  assert.equal(late.slow, 2);
  assert.ok(Math.abs(late.busyShare - (2 + 0.5 + 0.05) / (2 + 1.1)) < 1e-12);
});

Deno.test("slow batches: at or under the bound none are slow", () => {
  assert.deepEqual(slowShare(samples([[0, 1, 0.5], [1, 1.9, 0.1]])), { slow: 0, busyShare: 0 });
  assert.deepEqual(slowShare(samples([])), { slow: 0, busyShare: 0 });
});

Deno.test("slow batches: only batches indexed after a slow one was published count for it", () => {
  // Batch 0 was indexed before batch 1 was published: none of its work is batch 1's wait.
  const r = slowShare(samples([[0, 0.1, 0.1], [0.2, 3, 0.05], [0.3, 3.1, 0.05]]));
  assert.equal(r.slow, 2);
  // Batch 1: its own 0.05 ms; batch 2: batch 1's 0.05 (indexed after 0.3) and its own 0.05.
  assert.ok(Math.abs(r.busyShare - 0.15 / (2.8 + 2.8)) < 1e-12, String(r.busyShare));
});

Deno.test("slow batches: publish times out of order (two publishers) move the window back", () => {
  // Batch 2 was published before batch 1 (another publisher's clock): batch 1's work, indexed
  // after batch 2 was published, is part of batch 2's wait.
  const r = slowShare(samples([[0, 0.5, 0.5], [1, 3, 1.2], [0.1, 3.2, 0.2]]));
  assert.equal(r.slow, 2);
  // Batch 1: its work after 1 ms (1.2 of 2 ms); batch 2: batch 0 clipped to after 0.1 (0.4),
  // batch 1's 1.2, its own 0.2.
  assert.ok(
    Math.abs(r.busyShare - (1.2 + 0.4 + 1.2 + 0.2) / (2 + 3.1)) < 1e-12,
    String(r.busyShare),
  );
});

Deno.test("cpu gaps: rate, median, longest and the share of time they took", () => {
  const g = gapStats([40, 10, 30, 2000], 100);
  assert.equal(g.perMs, 0.04);
  assert.equal(g.p50Us, 30); // the lower middle of 10, 30, 40, 2000
  assert.equal(g.maxUs, 2000);
  assert.ok(Math.abs(g.lostShare - 2080 / 100_000) < 1e-12, String(g.lostShare));
  assert.deepEqual(gapStats([], 100), { perMs: 0, p50Us: 0, maxUs: 0, lostShare: 0 });
  assert.equal(gapStats([5000], 1).lostShare, 1); // never more than all of it
  assert.equal(gapStats([7], 0).perMs, 0);
});

Deno.test("cpu gaps: a loop of a few milliseconds gives figures in range", () => {
  const g = cpuGaps(5);
  assert.ok(g.perMs >= 0 && g.lostShare >= 0 && g.lostShare <= 1 && g.maxUs >= g.p50Us);
});
