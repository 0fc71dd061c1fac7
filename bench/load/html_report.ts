/**
 * Self-contained HTML report (inline CSS and SVG, no scripts) for one run or
 * a comparison of several: summary table, thresholds, per-tag breakdown,
 * checks, throughput over time, latency percentiles over time and the
 * latency distribution.
 *
 * @module
 */
import { LatencyHistogram } from "./histogram.ts";
import { barChart, escapeHtml, lineChart, type Series } from "./svg.ts";
import { comparisonRow, type LoadSummary, type MetricValues } from "./summary.ts";

/** Number of log-spaced bins in the distribution chart. */
const DISTRIBUTION_BINS = 40;

const CSS =
  `body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#111;padding:0 12px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}.ok{color:#16a34a}.fail{color:#dc2626;font-weight:600}
.meta{color:#555}svg{max-width:100%;height:auto;margin:8px 0}svg .grid{stroke:#eee}
svg .plot{fill:none;stroke:#999}svg .tick{font-size:11px;fill:#555}svg .label,svg .legend{font-size:12px;fill:#333}
svg .title{font-size:14px;font-weight:600}`;

function n(values: MetricValues | undefined, key: string): number {
  const v = values?.[key];
  return typeof v === "number" ? v : 0;
}

const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

function table(head: string[], rows: (string | number)[][]): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
  return `<table><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

function okCell(ok: boolean): string {
  return ok ? '<span class="ok">pass</span>' : '<span class="fail">FAIL</span>';
}

function runLabel(s: LoadSummary): string {
  return s.meta.label || s.meta.scenario;
}

/** Log-spaced bins of a latency histogram, as [bin upper bound ms, share of requests]. */
export function distribution(
  s: LoadSummary,
  bins = DISTRIBUTION_BINS,
): [number, number][] {
  const h = LatencyHistogram.fromJSON(s.latency_histogram);
  const buckets = h.buckets();
  if (buckets.length === 0) return [];
  const lo = Math.max(0.001, buckets[0]!.lowerMs);
  const hi = Math.max(lo * 1.01, buckets[buckets.length - 1]!.upperMs);
  const ratio = Math.log(hi / lo) / bins;
  const counts = new Array<number>(bins).fill(0);
  for (const b of buckets) {
    const mid = Math.max(lo, (b.lowerMs + b.upperMs) / 2);
    const i = Math.min(
      bins - 1,
      Math.max(0, Math.floor(Math.log(mid / lo) / ratio)),
    );
    counts[i]! += b.count;
  }
  return counts.map((c, i) => [lo * Math.exp(ratio * (i + 1)), c / h.count]);
}

function summaryTable(summaries: readonly LoadSummary[]): string {
  const rows = summaries.map((s) => {
    const r = comparisonRow(s);
    return [
      escapeHtml(r.label),
      r.requests,
      r.rps.toFixed(1),
      f2(n(s.metrics.http_req_duration, "avg")),
      f2(r.p50),
      f2(n(s.metrics.http_req_duration, "p(90)")),
      f2(r.p95),
      f2(r.p99),
      f2(r.max),
      pct(r.failedRate),
      r.vusMax,
      n(s.metrics.iterations, "count"),
      pct(n(s.metrics.checks, "rate")),
      okCell(r.ok),
    ];
  });
  return table(
    [
      "run",
      "requests",
      "req/s",
      "avg ms",
      "p50 ms",
      "p90 ms",
      "p95 ms",
      "p99 ms",
      "max ms",
      "failed",
      "VUs max",
      "iterations",
      "checks",
      "thresholds",
    ],
    rows,
  );
}

function tagTable(s: LoadSummary): string {
  const rows: (string | number)[][] = [];
  for (const key of Object.keys(s.metrics)) {
    const m = /^http_reqs\{name:(.*)\}$/.exec(key);
    if (m === null) continue;
    const tag = `{name:${m[1]}}`;
    const d = s.metrics[`http_req_duration${tag}`];
    rows.push([
      escapeHtml(m[1]!),
      n(s.metrics[key], "count"),
      n(s.metrics[key], "rate").toFixed(1),
      f2(n(d, "avg")),
      f2(n(d, "med")),
      f2(n(d, "p(95)")),
      f2(n(d, "p(99)")),
      f2(n(d, "max")),
      pct(n(s.metrics[`http_req_failed${tag}`], "rate")),
    ]);
  }
  return table(
    [
      "tag name",
      "requests",
      "req/s",
      "avg ms",
      "p50 ms",
      "p95 ms",
      "p99 ms",
      "max ms",
      "failed",
    ],
    rows,
  );
}

function runDetails(s: LoadSummary): string {
  const meta = s.meta;
  const stages = meta.stages.map((st) =>
    `${st.duration}${typeof st.duration === "number" ? "s" : ""}→${st.target}`
  )
    .join(", ");
  const thresholdRows = s.thresholds.map((t) => [
    escapeHtml(t.metric),
    escapeHtml(t.expression),
    t.actual === null ? "missing" : f2(t.actual),
    okCell(t.ok),
  ]);
  const checkRows = s.root_group.checks.map((c) => [
    escapeHtml(c.name),
    c.passes,
    c.fails,
    pct(c.passes / Math.max(1, c.passes + c.fails)),
  ]);
  const errors = Object.entries(s.errors);
  return `<h2 id="run-${escapeHtml(runLabel(s))}">Run: ${escapeHtml(runLabel(s))} (${
    escapeHtml(meta.scenario)
  })</h2>
<p class="meta">${escapeHtml(meta.description)}<br>target ${escapeHtml(meta.baseUrl)} · started ${
    escapeHtml(meta.startedAt)
  } · ${(meta.durationMs / 1000).toFixed(1)} s · seed ${meta.seed} · scale ${meta.scale} · stages ${
    escapeHtml(stages)
  }${meta.aborted ? ' · <span class="fail">stopped early</span>' : ""}${
    meta.setupError
      ? ` · <span class="fail">setup failed: ${escapeHtml(meta.setupError)}</span>`
      : ""
  }</p>
<h3 id="thresholds">Thresholds</h3>${
    thresholdRows.length
      ? table(["metric", "threshold", "actual", "result"], thresholdRows)
      : "<p>none</p>"
  }
<h3 id="tags">Per tag</h3>${tagTable(s)}
<h3 id="checks">Checks</h3>${
    checkRows.length ? table(["check", "passes", "fails", "rate"], checkRows) : "<p>none</p>"
  }
${
    errors.length
      ? `<h3 id="errors">Transport errors</h3>${
        table(["kind", "count"], errors.map(([k, v]) => [escapeHtml(k), v]))
      }`
      : ""
  }`;
}

function singleCharts(s: LoadSummary): string {
  const tl = s.timeline;
  const throughput = lineChart({
    title: "Throughput",
    xLabel: "time (s)",
    yLabel: "requests / s",
    series: [
      { name: "req/s", points: tl.map((p) => [p.t, p.requests]) },
      { name: "failed/s", points: tl.map((p) => [p.t, p.failed]) },
    ],
  });
  const vus = lineChart({
    title: "Virtual users",
    xLabel: "time (s)",
    yLabel: "VUs",
    height: 200,
    series: [{ name: "VUs", points: tl.map((p) => [p.t, p.vus]) }],
  });
  const latency = lineChart({
    title: "Latency percentiles per second",
    xLabel: "time (s)",
    yLabel: "ms",
    series: [
      {
        name: "p50",
        points: tl.filter((p) => p.requests > 0).map((p) => [p.t, p.p50]),
      },
      {
        name: "p95",
        points: tl.filter((p) => p.requests > 0).map((p) => [p.t, p.p95]),
      },
      {
        name: "p99",
        points: tl.filter((p) => p.requests > 0).map((p) => [p.t, p.p99]),
      },
    ],
  });
  const dist = barChart({
    title: "Latency distribution",
    xLabel: "latency (ms, log bins, upper bound)",
    yLabel: "% of requests",
    bars: distribution(s).map(([upper, share]) => ({
      label: upper >= 10 ? upper.toFixed(0) : upper.toPrecision(2),
      value: share * 100,
    })),
  });
  return `<h2 id="throughput">Throughput over time</h2>${throughput}${vus}
<h2 id="latency-over-time">Latency percentiles over time</h2>${latency}
<h2 id="latency-distribution">Latency distribution</h2>${dist}`;
}

function comparisonCharts(summaries: readonly LoadSummary[]): string {
  const throughput = lineChart({
    title: "Throughput per run",
    xLabel: "time (s)",
    yLabel: "requests / s",
    series: summaries.map((s): Series => ({
      name: runLabel(s),
      points: s.timeline.map((p) => [p.t, p.requests]),
    })),
  });
  const p95 = lineChart({
    title: "p95 latency per run",
    xLabel: "time (s)",
    yLabel: "ms",
    series: summaries.map((s): Series => ({
      name: runLabel(s),
      points: s.timeline.filter((p) => p.requests > 0).map((p) => [p.t, p.p95]),
    })),
  });
  const p99 = lineChart({
    title: "p99 latency per run",
    xLabel: "time (s)",
    yLabel: "ms",
    series: summaries.map((s): Series => ({
      name: runLabel(s),
      points: s.timeline.filter((p) => p.requests > 0).map((p) => [p.t, p.p99]),
    })),
  });
  const dist = lineChart({
    title: "Latency distribution per run",
    xLabel: "latency (ms, log)",
    yLabel: "% of requests",
    xLog: true,
    series: summaries.map((s): Series => ({
      name: runLabel(s),
      points: distribution(s).map(([x, share]) => [x, share * 100]),
    })),
  });
  const rps = barChart({
    title: "Requests per second",
    xLabel: "run",
    yLabel: "req/s",
    bars: summaries.map((s) => ({
      label: runLabel(s),
      value: comparisonRow(s).rps,
    })),
  });
  return `<h2 id="throughput">Throughput over time</h2>${rps}${throughput}
<h2 id="latency-over-time">Latency percentiles over time</h2>${p95}${p99}
<h2 id="latency-distribution">Latency distribution</h2>${dist}`;
}

/**
 * Renders one run (one summary) or a comparison (several) as a standalone
 * HTML page.
 *
 * @example
 * ```ts ignore
 * const html = renderHtmlReport([summary]);
 * await Deno.writeTextFile("report.html", html);
 * ```
 */
export function renderHtmlReport(
  summaries: readonly LoadSummary[],
  title?: string,
): string {
  if (summaries.length === 0) throw new Error("nothing to report");
  const heading = title ??
    (summaries.length === 1
      ? `Load run: ${runLabel(summaries[0]!)}`
      : `Load comparison: ${summaries.map(runLabel).join(" vs ")}`);
  const charts = summaries.length === 1 ? singleCharts(summaries[0]!) : comparisonCharts(summaries);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(heading)}</title>
<style>${CSS}</style></head><body>
<h1>${escapeHtml(heading)}</h1>
<h2 id="summary">${summaries.length === 1 ? "Summary" : "Comparison"}</h2>
${summaryTable(summaries)}
${charts}
${summaries.map(runDetails).join("\n")}
<p class="meta">Latencies are measured from request start to the last body byte (k6 http_req_duration
plus connection time on a fresh connection); percentiles come from a log-linear histogram (&lt;1% error).</p>
</body></html>
`;
}
