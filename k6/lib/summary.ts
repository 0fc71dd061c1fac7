/**
 * The comparison table of `tasks-comparative.ts`, built in k6's
 * `handleSummary` from the per-storage sub-metrics.
 *
 * @module
 */

/** The part of k6's handleSummary data this file reads. */
export interface K6SummaryData {
  metrics: Record<string, { values: Record<string, number> } | undefined>;
}

/** One storage's figures. */
export interface ComparisonRow {
  storage: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  failedRate: number;
}

/** Rows and a Markdown table (req/s over the storage's own stage time). */
export function comparisonTable(
  data: K6SummaryData,
  storages: string[],
  runSeconds: number,
): { rows: ComparisonRow[]; markdown: string } {
  const rows = storages.map((storage): ComparisonRow => {
    const tag = `{storage:${storage}}`;
    const reqs = data.metrics[`http_reqs${tag}`]?.values ?? {};
    const dur = data.metrics[`http_req_duration${tag}`]?.values ?? {};
    const failed = data.metrics[`http_req_failed${tag}`]?.values ?? {};
    const requests = reqs.count ?? 0;
    return {
      storage,
      requests,
      rps: runSeconds > 0 ? requests / runSeconds : 0,
      p50: dur.med ?? 0,
      p95: dur["p(95)"] ?? 0,
      p99: dur["p(99)"] ?? 0,
      failedRate: failed.rate ?? 0,
    };
  });
  const lines = [
    "| storage | requests | req/s | p50 ms | p95 ms | p99 ms | failed |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows.map((r) =>
      `| ${r.storage} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.p50.toFixed(2)} | ${
        r.p95.toFixed(2)
      } | ${r.p99.toFixed(2)} | ${(r.failedRate * 100).toFixed(2)}% |`
    ),
  ];
  return { rows, markdown: lines.join("\n") };
}
