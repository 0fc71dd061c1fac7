/**
 * k6-style `stages` for ramping virtual users: each stage moves the VU count
 * linearly from the previous target to its own target over its duration.
 *
 * @module
 */
import { parseDurationMs } from "./duration.ts";

/** One ramp step, as in k6's `ramping-vus` executor. */
export interface Stage {
  /** How long the ramp takes ("10s", "1m", or seconds as a number). */
  duration: string | number;
  /** VU count reached at the end of the stage. */
  target: number;
}

/** A stage with absolute times, in milliseconds from the start of the run. */
export interface ResolvedStage {
  startMs: number;
  endMs: number;
  fromVus: number;
  toVus: number;
}

/** Turns stages into absolute time ranges, starting from `startVus`. */
export function resolveStages(
  stages: readonly Stage[],
  startVus = 0,
): ResolvedStage[] {
  const out: ResolvedStage[] = [];
  let t = 0;
  let from = startVus;
  for (const stage of stages) {
    if (!Number.isInteger(stage.target) || stage.target < 0) {
      throw new Error(
        `stage target must be a non-negative integer, got ${stage.target}`,
      );
    }
    const ms = parseDurationMs(stage.duration);
    out.push({ startMs: t, endMs: t + ms, fromVus: from, toVus: stage.target });
    t += ms;
    from = stage.target;
  }
  return out;
}

/** Total duration of the stages in milliseconds. */
export function stagesDurationMs(stages: readonly Stage[]): number {
  return stages.reduce((sum, s) => sum + parseDurationMs(s.duration), 0);
}

/** The highest VU count the stages ask for. */
export function stagesMaxVus(stages: readonly Stage[], startVus = 0): number {
  return stages.reduce((max, s) => Math.max(max, s.target), startVus);
}

/**
 * The VU count wanted at `elapsedMs` (linear interpolation, rounded down as
 * k6 does; 0 after the last stage).
 *
 * @example
 * ```ts
 * import { resolveStages, vusAt } from "./stages.ts";
 * const stages = resolveStages([{ duration: "10s", target: 100 }]);
 * vusAt(stages, 5_000); // 50
 * ```
 */
export function vusAt(
  stages: readonly ResolvedStage[],
  elapsedMs: number,
): number {
  for (const s of stages) {
    if (elapsedMs < s.endMs) {
      const span = s.endMs - s.startMs;
      const frac = span === 0 ? 1 : (elapsedMs - s.startMs) / span;
      return Math.floor(s.fromVus + (s.toVus - s.fromVus) * Math.max(0, frac));
    }
  }
  return 0;
}

/**
 * Scales durations and targets by `factor` (for smoke runs); a positive target
 * stays at least 1 VU, and a duration at least 100 ms.
 */
export function scaleStages(stages: readonly Stage[], factor: number): Stage[] {
  if (!(factor > 0) || !Number.isFinite(factor)) {
    throw new Error(`bad scale ${factor}`);
  }
  return stages.map((s) => ({
    duration: Math.max(0.1, (parseDurationMs(s.duration) * factor) / 1000),
    target: s.target === 0 ? 0 : Math.max(1, Math.round(s.target * factor)),
  }));
}
