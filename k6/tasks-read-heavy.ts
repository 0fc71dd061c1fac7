/**
 * Read-heavy: seed 10,000 tasks, 70% GET by id with 80/20 hot keys (KEYS env:
 * uniform | zipf[:s] | hot[:80/20]), 25% list, 5% PATCH, 800 VUs; 50 s.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8001 k6/tasks-read-heavy.ts
 *
 * Same scenario as `deno run -A bench/load/main.ts tasks-read-heavy`.
 */
import type { Options } from "k6/options";
import { BASE_URL, scaled, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";
import { type KeyPicker, keyPicker, pickWeighted } from "./lib/keys.ts";
import { getTask, listTasks, patchTask, type SeedData, seedTasks } from "./lib/tasks.ts";

seedRandom();

export const options: Options = {
  stages: scaled([
    { duration: "10s", target: 800 },
    { duration: "35s", target: 800 },
    { duration: "5s", target: 0 },
  ]),
  thresholds: {
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(95)<100"],
    "http_req_duration{name:get}": ["p(95)<50"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: "120s",
};

export function setup(): SeedData {
  return seedTasks(BASE_URL, Number(__ENV.SEED_COUNT ?? "10000"));
}

let pick: KeyPicker | undefined;

export default function (data: SeedData): void {
  pick ??= keyPicker(__ENV.KEYS ?? "hot:80/20", data.ids.length);
  const id = data.ids[pick()]!;
  pickWeighted([
    { weight: 70, value: () => getTask(BASE_URL, id) },
    { weight: 25, value: () => listTasks(BASE_URL) },
    { weight: 5, value: () => patchTask(BASE_URL, id) },
  ])();
}
