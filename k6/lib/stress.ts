/**
 * The stress mix, shared by `tasks-stress.ts` and `tasks-comparative.ts`.
 *
 * @module
 */
import type { Stage } from "./config.ts";
import { type KeyPicker, pickWeighted, uniformKeys } from "./keys.ts";
import { createTask, getTask, patchTask, replaceTask, type SeedData } from "./tasks.ts";

/** 100 → 500 → 1000 VUs with holds, 90 s in all. */
export const STRESS_STAGES: Stage[] = [
  { duration: "10s", target: 100 },
  { duration: "20s", target: 100 },
  { duration: "10s", target: 500 },
  { duration: "20s", target: 500 },
  { duration: "10s", target: 1000 },
  { duration: "15s", target: 1000 },
  { duration: "5s", target: 0 },
];

let pick: KeyPicker | undefined;

/** One stress iteration: 80% GET by id, 10% POST, 5% PATCH, 5% PUT; no think time. */
export function stressIteration(baseUrl: string, data: SeedData): void {
  pick ??= uniformKeys(data.ids.length);
  const id = data.ids[pick()]!;
  pickWeighted([
    { weight: 80, value: () => getTask(baseUrl, id) },
    { weight: 10, value: () => createTask(baseUrl) },
    { weight: 5, value: () => patchTask(baseUrl, id) },
    { weight: 5, value: () => replaceTask(baseUrl, id) },
  ])();
}
