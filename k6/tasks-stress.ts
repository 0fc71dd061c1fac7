/**
 * Stress: 80% GET by id / 20% writes (POST, PATCH, PUT), no think time,
 * stages 100 → 500 → 1000 VUs; 90 s.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8001 k6/tasks-stress.ts
 *
 * Same scenario as `deno run -A bench/load/main.ts tasks-stress`.
 */
import type { Options } from "k6/options";
import { BASE_URL, scaled, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";
import { STRESS_STAGES, stressIteration } from "./lib/stress.ts";
import { type SeedData, seedTasks } from "./lib/tasks.ts";

seedRandom();

export const options: Options = {
  stages: scaled(STRESS_STAGES),
  thresholds: {
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(95)<50"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup(): SeedData {
  return seedTasks(BASE_URL, Number(__ENV.SEED_COUNT ?? "1000"));
}

export default function (data: SeedData): void {
  stressIteration(BASE_URL, data);
}
