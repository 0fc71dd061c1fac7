/**
 * Baseline CRUD: 40% GET, 30% POST, 20% PUT, 10% DELETE (of tasks the VU
 * created), 1 s think time, ramp to 100 VUs; 40 s.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8001 k6/tasks-baseline.ts
 *
 * Same scenario as `deno run -A bench/load/main.ts tasks-baseline`.
 */
import { sleep } from "k6";
import type { Options } from "k6/options";
import { BASE_URL, scaled, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";
import { pickWeighted, uniformKeys } from "./lib/keys.ts";
import {
  createTask,
  deleteOwnTask,
  getTask,
  replaceTask,
  type SeedData,
  seedTasks,
} from "./lib/tasks.ts";

seedRandom();

export const options: Options = {
  stages: scaled([
    { duration: "10s", target: 100 },
    { duration: "25s", target: 100 },
    { duration: "5s", target: 0 },
  ]),
  thresholds: {
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(95)<100", "p(99)<250"],
    checks: ["rate==1"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup(): SeedData {
  return seedTasks(BASE_URL, Number(__ENV.SEED_COUNT ?? "1000"));
}

let pick: (() => number) | undefined;

export default function (data: SeedData): void {
  pick ??= uniformKeys(data.ids.length);
  const id = data.ids[pick()]!;
  pickWeighted([
    { weight: 40, value: () => getTask(BASE_URL, id) },
    { weight: 30, value: () => createTask(BASE_URL) },
    { weight: 20, value: () => replaceTask(BASE_URL, id) },
    { weight: 10, value: () => deleteOwnTask(BASE_URL) },
  ])();
  sleep(1);
}
