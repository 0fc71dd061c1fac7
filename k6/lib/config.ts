/**
 * Settings shared by the k6 scripts, read from k6 environment variables
 * (`k6 run -e BASE_URL=... script.ts`).
 *
 * @module
 */
import { randomSeed } from "k6";

/** Target of the scripts; loopback by default, as the load runner. */
export const BASE_URL: string = (__ENV.BASE_URL ?? "http://127.0.0.1:8001")
  .replace(/\/+$/, "");

/** Seed of `Math.random` (k6 `randomSeed`), so a run's choices repeat. */
export const SEED: number = Number(__ENV.SEED ?? "24301");

/** Multiplies stage durations and VU targets, like the load runner's `--scale`. */
export const SCALE: number = Number(__ENV.SCALE ?? "1");

/** Seeds `Math.random` per VU (call in the init context). */
export function seedRandom(): void {
  // __VU is 0 in the init context of setup/teardown and 1.. for VUs.
  randomSeed(SEED + __VU * 7919);
}

/** A k6 ramping stage. */
export interface Stage {
  duration: string;
  target: number;
}

function parseSeconds(duration: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(m[1]) * units[m[2]!]!;
  }
  return total;
}

/** Applies SCALE to stage durations and targets (a positive target stays at least 1). */
export function scaled(stages: Stage[]): Stage[] {
  if (SCALE === 1) return stages;
  return stages.map((s) => ({
    duration: `${Math.max(0.1, parseSeconds(s.duration) * SCALE).toFixed(1)}s`,
    target: s.target === 0 ? 0 : Math.max(1, Math.round(s.target * SCALE)),
  }));
}

/** Total seconds of some stages. */
export function stagesSeconds(stages: Stage[]): number {
  return stages.reduce((sum, s) => sum + parseSeconds(s.duration), 0);
}

/** Trend stats printed in the summary (p(99) is needed by the comparison table). */
export const SUMMARY_TREND_STATS = [
  "avg",
  "min",
  "med",
  "max",
  "p(90)",
  "p(95)",
  "p(99)",
];

/** The ramp the service scripts share: to 50 VUs in 10 s, 25 s there, down in 5 s (scaled). */
export function rampTo50(): Stage[] {
  return scaled([
    { duration: "10s", target: 50 },
    { duration: "25s", target: 50 },
    { duration: "5s", target: 0 },
  ]);
}
