/**
 * Where the publish-to-indexed time of slow batches went (bench/kv_events.ts).
 *
 * @module
 */
import { pct } from "./process.ts";

/** Batches of one publisher, in the order they were indexed. */
export interface Samples {
  /** Publish time of each measured batch (s, the publisher's clock). */
  ts: Float64Array;
  /** When it was indexed (s). */
  at: Float64Array;
  /** How long the service worked on it: its message read to indexed (s). */
  busy: Float64Array;
  n: number;
}

/**
 * Where the slow batches' time went: of the batches indexed more than `overUs` after they were
 * published, their count, and the share of their publish-to-indexed time the service spent
 * decoding and indexing batches, from each message read to indexed (theirs and those queued
 * before them). The rest it was working on none: its thread not running, the message still on its
 * way, or the runtime reading the socket or collecting garbage.
 */
export function slowShare(s: Samples, overUs = 1000): { slow: number; busyShare: number } {
  const end = new Float64Array(s.n + 1); // end[k]: busy time of batches 0..k-1
  for (let k = 0; k < s.n; k++) end[k + 1] = end[k] + s.busy[k];
  let slow = 0, waited = 0, busy = 0;
  for (let i = 0, j = 0; i < s.n; i++) {
    const lat = s.at[i] - s.ts[i];
    if (lat * 1e6 <= overUs) continue;
    slow++;
    waited += lat;
    // First batch indexed after batch i was published; its work counted from that moment on.
    while (j < i && s.at[j] <= s.ts[i]) j++;
    while (j > 0 && s.at[j - 1] > s.ts[i]) j--;
    const first = Math.min(s.busy[j], s.at[j] - s.ts[i]);
    busy += first + (end[i + 1] - end[j + 1]);
  }
  return { slow, busyShare: slow === 0 ? 0 : busy / waited };
}

/** How a busy loop lost its CPU: see {@link cpuGaps}. */
export interface CpuGaps {
  /** Gaps a millisecond. */
  perMs: number;
  /** Their median and longest (µs). */
  p50Us: number;
  maxUs: number;
  /** The share of the loop's time the gaps took. */
  lostShare: number;
}

/** {@link CpuGaps} of `gaps` (µs, unsorted) seen over `ms` milliseconds. */
export function gapStats(gaps: ArrayLike<number>, ms: number): CpuGaps {
  const sorted = Float64Array.from(gaps).sort();
  let lost = 0;
  for (const g of sorted) lost += g;
  const n = sorted.length;
  return {
    perMs: ms > 0 ? n / ms : 0,
    p50Us: n === 0 ? 0 : pct(sorted, 50),
    maxUs: n === 0 ? 0 : sorted[n - 1],
    lostShare: ms > 0 ? Math.min(1, lost / 1000 / ms) : 0,
  };
}

/**
 * Spins for `ms` milliseconds reading the clock: a step between two reads longer than `overUs` is
 * time this thread was off its CPU (an interrupt, another thread, or the host taking the vCPU,
 * which this VM's steal time does not show). Allocates nothing while it spins.
 */
export function cpuGaps(ms = 500, overUs = 5): CpuGaps {
  const gaps = new Float64Array(1 << 16);
  let n = 0;
  const start = performance.now(), end = start + ms;
  let prev = start;
  for (;;) {
    const t = performance.now();
    const step = (t - prev) * 1000;
    if (step > overUs && n < gaps.length) gaps[n++] = step;
    prev = t;
    if (t >= end) break;
  }
  return gapStats(gaps.subarray(0, n), prev - start);
}
