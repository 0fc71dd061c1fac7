/**
 * The k6-style summary JSON of a run: flat metric objects as k6's
 * `--summary-export` writes them (`metrics.http_reqs.count`,
 * `metrics.http_req_duration["p(95)"]`, ...), per-tag sub-metrics
 * (`http_req_duration{name:get}`), checks, thresholds, plus what the HTML
 * report needs (per-second timeline and the latency histogram).
 *
 * @module
 */
import type { HistogramJson, LatencyHistogram } from "./histogram.ts";
import type { RequestStats } from "./metrics.ts";
import type { RunResult } from "./runner.ts";
import type { Stage } from "./stages.ts";
import { evaluateThresholds, type ThresholdResult, type Thresholds } from "./thresholds.ts";

/** Version of this JSON layout. */
export const SUMMARY_FORMAT = "deno-stores-load/1";

/** Trend statistics, as k6 prints them (ms). */
export interface TrendValues {
  avg: number;
  min: number;
  med: number;
  max: number;
  "p(90)": number;
  "p(95)": number;
  "p(99)": number;
}

/** One second of the timeline. */
export interface TimelinePoint {
  /** Second since the start of the VU phase. */
  t: number;
  requests: number;
  failed: number;
  vus: number;
  avg: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Flat metric values, keyed by stat name. */
export type MetricValues = Record<
  string,
  number | Record<string, { ok: boolean }>
>;

/** The whole summary. */
export interface LoadSummary {
  format: typeof SUMMARY_FORMAT;
  meta: {
    scenario: string;
    description: string;
    /** Free-form label of the run (e.g. the storage type). */
    label: string;
    baseUrl: string;
    seed: number;
    scale: number;
    stages: Stage[];
    startedAt: string;
    durationMs: number;
    aborted: boolean;
    setupError?: string;
    teardownError?: string;
  };
  state: { testRunDurationMs: number };
  metrics: Record<string, MetricValues>;
  root_group: {
    name: string;
    path: string;
    checks: { name: string; passes: number; fails: number }[];
  };
  thresholds: ThresholdResult[];
  /** True when every threshold passed and setup did not fail. */
  ok: boolean;
  errors: Record<string, number>;
  iterationErrors: number;
  timeline: TimelinePoint[];
  latency_histogram: HistogramJson;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** Trend values of a histogram. */
export function trendValues(h: LatencyHistogram): TrendValues & MetricValues {
  return {
    avg: round(h.mean),
    min: round(h.min),
    med: round(h.percentile(50)),
    max: round(h.max),
    "p(90)": round(h.percentile(90)),
    "p(95)": round(h.percentile(95)),
    "p(99)": round(h.percentile(99)),
  };
}

function rate(part: number, whole: number): number {
  return whole === 0 ? 0 : part / whole;
}

function requestMetrics(
  stats: RequestStats,
  seconds: number,
  suffix: string,
): Record<string, MetricValues> {
  return {
    [`http_reqs${suffix}`]: {
      count: stats.requests,
      rate: round(rate(stats.requests, seconds)),
    },
    [`http_req_duration${suffix}`]: trendValues(stats.latency),
    [`http_req_failed${suffix}`]: {
      rate: rate(stats.failed, stats.requests),
      // As k6: a "pass" of http_req_failed is a failed request.
      passes: stats.failed,
      fails: stats.requests - stats.failed,
      value: rate(stats.failed, stats.requests),
    },
  };
}

/**
 * Builds the summary of a run, evaluating `thresholds` against it.
 *
 * @example
 * ```ts ignore
 * const summary = buildSummary(result, scenario.thresholds, "memory");
 * summary.metrics.http_req_duration["p(95)"];
 * ```
 */
export function buildSummary(
  result: RunResult,
  thresholds: Thresholds = {},
  label = "",
): LoadSummary {
  const m = result.metrics;
  const seconds = Math.max(result.durationMs, 1) / 1000;
  const metrics: Record<string, MetricValues> = {
    ...requestMetrics(m.all, seconds, ""),
  };
  for (
    const [name, stats] of [...m.byName.entries()].sort(([a], [b]) => a.localeCompare(b))
  ) {
    Object.assign(metrics, requestMetrics(stats, seconds, `{name:${name}}`));
  }
  const checks = m.checkTotals();
  metrics.checks = {
    rate: rate(checks.passes, checks.passes + checks.fails),
    passes: checks.passes,
    fails: checks.fails,
    value: rate(checks.passes, checks.passes + checks.fails),
  };
  metrics.iterations = {
    count: m.iterations,
    rate: round(m.iterations / seconds),
  };
  metrics.vus = {
    value: m.timeline.at(-1)?.vus ?? 0,
    min: m.vusMin === Infinity ? 0 : m.vusMin,
    max: m.vusMax,
  };
  metrics.vus_max = { value: m.vusMax, min: m.vusMax, max: m.vusMax };
  metrics.data_received = {
    count: m.bytesReceived,
    rate: round(m.bytesReceived / seconds),
  };
  metrics.data_sent = {
    count: m.bytesSent,
    rate: round(m.bytesSent / seconds),
  };

  const thresholdResults = evaluateThresholds(thresholds, metrics);
  for (const r of thresholdResults) {
    const target = metrics[r.metric];
    if (target === undefined) continue;
    const map = (target.thresholds ?? {}) as Record<string, { ok: boolean }>;
    map[r.expression] = { ok: r.ok };
    target.thresholds = map;
  }

  const timeline: TimelinePoint[] = m.timeline.map((s, t) => ({
    t,
    requests: s.requests,
    failed: s.failed,
    vus: s.vus,
    avg: round(s.latency.mean),
    p50: round(s.latency.percentile(50)),
    p95: round(s.latency.percentile(95)),
    p99: round(s.latency.percentile(99)),
    max: round(s.latency.max),
  }));

  return {
    format: SUMMARY_FORMAT,
    meta: {
      scenario: result.scenario,
      description: result.description,
      label,
      baseUrl: result.baseUrl,
      seed: result.seed,
      scale: result.scale,
      stages: result.stages,
      startedAt: result.startedAt,
      durationMs: Math.round(result.durationMs),
      aborted: result.aborted,
      ...(result.setupError === undefined ? {} : { setupError: result.setupError }),
      ...(result.teardownError === undefined ? {} : { teardownError: result.teardownError }),
    },
    state: { testRunDurationMs: Math.round(result.durationMs) },
    metrics,
    root_group: {
      name: "",
      path: "",
      checks: [...m.checks.entries()].map(([name, c]) => ({ name, ...c })),
    },
    thresholds: thresholdResults,
    ok: result.setupError === undefined && thresholdResults.every((r) => r.ok),
    errors: Object.fromEntries(m.errors),
    iterationErrors: m.iterationErrors,
    timeline,
    latency_histogram: m.all.latency.toJSON(),
  };
}

/** One row of a comparison table. */
export interface ComparisonRow {
  label: string;
  scenario: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  failedRate: number;
  vusMax: number;
  ok: boolean;
}

function num(values: MetricValues | undefined, key: string): number {
  const v = values?.[key];
  return typeof v === "number" ? v : 0;
}

/** The comparison row of a summary. */
export function comparisonRow(s: LoadSummary): ComparisonRow {
  const d = s.metrics.http_req_duration;
  return {
    label: s.meta.label || s.meta.scenario,
    scenario: s.meta.scenario,
    requests: num(s.metrics.http_reqs, "count"),
    rps: num(s.metrics.http_reqs, "rate"),
    p50: num(d, "med"),
    p95: num(d, "p(95)"),
    p99: num(d, "p(99)"),
    max: num(d, "max"),
    failedRate: num(s.metrics.http_req_failed, "rate"),
    vusMax: num(s.metrics.vus_max, "value"),
    ok: s.ok,
  };
}

/** A Markdown table comparing runs (req/s, latency percentiles, failure rate). */
export function comparisonMarkdown(summaries: readonly LoadSummary[]): string {
  const lines = [
    "| run | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | failed | VUs max | thresholds |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ];
  for (const s of summaries) {
    const r = comparisonRow(s);
    lines.push(
      `| ${r.label} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.p50.toFixed(2)} | ${
        r.p95.toFixed(2)
      } | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${
        (r.failedRate * 100).toFixed(2)
      }% | ${r.vusMax} | ${r.ok ? "pass" : "FAIL"} |`,
    );
  }
  return lines.join("\n");
}
