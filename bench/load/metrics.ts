/**
 * What a run measures: request counts, latency histograms (overall, per
 * `name` tag, per second), failures, checks, iterations and VUs. Memory is
 * bounded: per-second histograms stop at `maxTimelineSeconds`.
 *
 * @module
 */
import { LatencyHistogram } from "./histogram.ts";

/** Per-second histograms are coarser (about 6% bucket width) to keep memory small. */
const TIMELINE_SUB_BUCKET_BITS = 5;

/** Latency and counts for one tag value (or for everything). */
export class RequestStats {
  readonly latency = new LatencyHistogram();
  requests = 0;
  failed = 0;

  record(durationMs: number, failed: boolean): void {
    this.latency.record(durationMs);
    this.requests++;
    if (failed) this.failed++;
  }
}

/** One second of the run. */
export class TimelineSecond {
  readonly latency = new LatencyHistogram(TIMELINE_SUB_BUCKET_BITS);
  requests = 0;
  failed = 0;
  vus = 0;
}

/** Passes and fails of one named check. */
export interface CheckCount {
  passes: number;
  fails: number;
}

/** Collector for one run. */
export class RunMetrics {
  readonly all = new RequestStats();
  readonly byName = new Map<string, RequestStats>();
  readonly checks = new Map<string, CheckCount>();
  /** Transport errors (timeouts, refused connections) by kind. */
  readonly errors = new Map<string, number>();
  readonly timeline: TimelineSecond[] = [];
  readonly maxTimelineSeconds: number;
  iterations = 0;
  /** Iterations that threw (counted, not rethrown). */
  iterationErrors = 0;
  bytesReceived = 0;
  bytesSent = 0;
  vusMax = 0;
  vusMin = Infinity;

  constructor(maxTimelineSeconds = 3_600) {
    this.maxTimelineSeconds = maxTimelineSeconds;
  }

  #second(elapsedMs: number): TimelineSecond | undefined {
    const s = Math.max(0, Math.floor(elapsedMs / 1000));
    if (s >= this.maxTimelineSeconds) return undefined;
    while (this.timeline.length <= s) this.timeline.push(new TimelineSecond());
    return this.timeline[s];
  }

  /** Records one finished request. `elapsedMs` is when it completed, from the run start. */
  recordRequest(
    name: string,
    durationMs: number,
    failed: boolean,
    elapsedMs: number,
  ): void {
    this.all.record(durationMs, failed);
    let stats = this.byName.get(name);
    if (stats === undefined) {
      stats = new RequestStats();
      this.byName.set(name, stats);
    }
    stats.record(durationMs, failed);
    const second = this.#second(elapsedMs);
    if (second !== undefined) {
      second.latency.record(durationMs);
      second.requests++;
      if (failed) second.failed++;
    }
  }

  /** Records a transport error kind (the request itself is recorded as failed too). */
  recordError(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  /** Records a check result. */
  recordCheck(name: string, ok: boolean): void {
    let c = this.checks.get(name);
    if (c === undefined) {
      c = { passes: 0, fails: 0 };
      this.checks.set(name, c);
    }
    if (ok) c.passes++;
    else c.fails++;
  }

  /** Records the VU count at `elapsedMs` (the timeline keeps the maximum per second). */
  recordVus(vus: number, elapsedMs: number): void {
    this.vusMax = Math.max(this.vusMax, vus);
    this.vusMin = Math.min(this.vusMin, vus);
    const second = this.#second(elapsedMs);
    if (second !== undefined) second.vus = Math.max(second.vus, vus);
  }

  /** Total check passes and fails. */
  checkTotals(): CheckCount {
    let passes = 0;
    let fails = 0;
    for (const c of this.checks.values()) {
      passes += c.passes;
      fails += c.fails;
    }
    return { passes, fails };
  }
}
