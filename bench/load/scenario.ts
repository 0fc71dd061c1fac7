/**
 * What a scenario is: stages, think time, thresholds, setup/teardown hooks and
 * one iteration function per virtual user. Scenarios live in `scenarios/`; the
 * engine (`runner.ts`) knows nothing about any service.
 *
 * @module
 */
import type { HttpClient } from "./http_client.ts";
import type { Prng } from "./prng.ts";
import type { Stage } from "./stages.ts";
import type { Thresholds } from "./thresholds.ts";

/** Pause between iterations: fixed, or uniform in [minMs, maxMs] from the VU's seeded PRNG. */
export type ThinkTime = { fixedMs: number } | { minMs: number; maxMs: number };

/** What `setup` and `teardown` get. */
export interface SetupContext {
  baseUrl: string;
  /** Requests made here are not counted in the run's metrics. */
  http: HttpClient;
  rng: Prng;
  log(message: string): void;
}

/** What each iteration gets: the VU's id, PRNG, state and HTTP client. */
export interface VuContext<D> {
  /** 0-based VU number. */
  readonly id: number;
  /** 0-based iteration number of this VU. */
  iteration: number;
  readonly rng: Prng;
  /** What `setup` returned, shared read-only by every VU. */
  readonly data: D;
  /** VU-local state kept across iterations (e.g. ids this VU created). */
  readonly state: Record<string, unknown>;
  readonly http: HttpClient;
  /** Records a named check (k6 `check`). */
  check(name: string, ok: boolean): boolean;
  /** Sleeps, waking early when the run stops. */
  sleep(ms: number): Promise<void>;
}

/** A load scenario (k6 `ramping-vus` executor plus `setup`/`teardown`). */
export interface Scenario<D = unknown> {
  name: string;
  description: string;
  stages: Stage[];
  /** VUs at time 0 (default 0). */
  startVus?: number;
  /** Pause after each iteration. */
  thinkTime?: ThinkTime;
  /** k6-style pass/fail criteria, reported in the summary. */
  thresholds?: Thresholds;
  /** Runs once before the VUs start; its result is `VuContext.data`. */
  setup?(ctx: SetupContext): Promise<D>;
  /** One iteration of one VU. Errors are counted, not rethrown. */
  iteration(vu: VuContext<D>): Promise<void>;
  /** Runs once after the VUs stopped. */
  teardown?(ctx: SetupContext, data: D): Promise<void>;
}

/** One weighted entry of a request mix. */
export interface MixEntry<D> {
  /** Tag of the requests this entry makes (also the per-tag breakdown key). */
  name: string;
  weight: number;
  run(vu: VuContext<D>): Promise<void>;
}

/**
 * Builds an iteration function that runs one entry per iteration, chosen by
 * weight with the VU's seeded PRNG.
 *
 * @example
 * ```ts
 * import { weightedMix } from "./scenario.ts";
 * const iteration = weightedMix([
 *   { name: "read", weight: 80, run: async (vu) => void (await vu.http.get("/x", { name: "read" })) },
 *   { name: "write", weight: 20, run: async (vu) => void (await vu.http.post("/x", {}, { name: "write" })) },
 * ]);
 * ```
 */
export function weightedMix<D>(
  entries: readonly MixEntry<D>[],
): (vu: VuContext<D>) => Promise<void> {
  if (entries.length === 0) throw new Error("empty mix");
  const cumulative: number[] = [];
  let total = 0;
  for (const e of entries) {
    if (!(e.weight >= 0) || !Number.isFinite(e.weight)) {
      throw new Error(`bad weight for ${e.name}`);
    }
    total += e.weight;
    cumulative.push(total);
  }
  if (total <= 0) throw new Error("mix weights sum to zero");
  return (vu) => {
    const u = vu.rng.next() * total;
    let i = 0;
    while (i < cumulative.length - 1 && u >= cumulative[i]!) i++;
    return entries[i]!.run(vu);
  };
}

/** The think time in ms for one pause. */
export function thinkTimeMs(think: ThinkTime | undefined, rng: Prng): number {
  if (think === undefined) return 0;
  if ("fixedMs" in think) return Math.max(0, think.fixedMs);
  return Math.max(0, rng.range(think.minMs, think.maxMs));
}
