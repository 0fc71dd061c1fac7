/**
 * Comparative: the stress mix against each storage type in turn, in one k6
 * run. k6 cannot start services, so start one tasks service per storage type
 * and pass their URLs (see k6/README.md):
 *
 *   k6 run -e TARGETS=memory=http://127.0.0.1:8001,shard=http://127.0.0.1:8011,pool=http://127.0.0.1:8021,kv=http://127.0.0.1:8031 \
 *     k6/tasks-comparative.ts
 *
 * Each storage gets its own `ramping-vus` scenario (tag `storage`), started
 * after the previous one ends; handleSummary prints one table (req/s,
 * p50/p95/p99, failure rate per storage) and writes it as JSON.
 */
import type { Options, Scenario } from "k6/options";
import { scaled, seedRandom, stagesSeconds, SUMMARY_TREND_STATS } from "./lib/config.ts";
import { STRESS_STAGES, stressIteration } from "./lib/stress.ts";
import { type SeedData, seedTasks } from "./lib/tasks.ts";
import { comparisonTable, type K6SummaryData } from "./lib/summary.ts";

seedRandom();

/** `storage=url` pairs, in run order. */
const TARGETS: [string, string][] = (__ENV.TARGETS ?? "memory=http://127.0.0.1:8001")
  .split(",")
  .filter((pair) => pair.includes("="))
  .map((pair) => {
    const at = pair.indexOf("=");
    return [pair.slice(0, at), pair.slice(at + 1).replace(/\/+$/, "")];
  });

const STAGES = scaled(STRESS_STAGES);
/** Gap between two storages' runs, so one run's tail does not overlap the next. */
const GAP_SECONDS = 5;
const RUN_SECONDS = stagesSeconds(STAGES);

const scenarios: Record<string, Scenario> = {};
const thresholds: Record<string, string[]> = {};
TARGETS.forEach(([storage, url], i) => {
  scenarios[storage] = {
    executor: "ramping-vus",
    startVUs: 0,
    stages: STAGES,
    gracefulRampDown: "2s",
    startTime: `${i * (RUN_SECONDS + GAP_SECONDS)}s`,
    exec: "stress",
    env: { STORAGE: storage, TARGET_URL: url },
    tags: { storage },
  };
  // Thresholds on tagged metrics make k6 keep the per-storage sub-metrics.
  thresholds[`http_reqs{storage:${storage}}`] = ["count>0"];
  thresholds[`http_req_duration{storage:${storage}}`] = ["p(95)<50"];
  thresholds[`http_req_failed{storage:${storage}}`] = ["rate==0"];
});

export const options: Options = {
  scenarios,
  thresholds,
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: "120s",
};

/** Seeded ids per storage. */
export function setup(): Record<string, SeedData> {
  const data: Record<string, SeedData> = {};
  for (const [storage, url] of TARGETS) {
    data[storage] = seedTasks(url, Number(__ENV.SEED_COUNT ?? "1000"));
  }
  return data;
}

export function stress(data: Record<string, SeedData>): void {
  stressIteration(__ENV.TARGET_URL!, data[__ENV.STORAGE!]!);
}

export function handleSummary(data: K6SummaryData): Record<string, string> {
  const storages = TARGETS.map(([storage]) => storage);
  const table = comparisonTable(data, storages, RUN_SECONDS);
  return {
    stdout: `\n${table.markdown}\n`,
    [__ENV.OUT ?? "bench/results/k6/tasks-comparative.json"]: JSON.stringify(
      { rows: table.rows, summary: data },
      null,
      2,
    ),
  };
}
