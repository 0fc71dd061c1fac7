/**
 * The load engine: ramps virtual users along the scenario's stages, runs
 * iterations with think time, records everything into {@linkcode RunMetrics}
 * and stops gracefully (end of stages, hard duration cap, or an abort signal
 * such as Ctrl-C).
 *
 * @module
 */
import {
  HttpClient,
  metricsRecorder,
  NULL_RECORDER,
  REQUEST_TIMEOUT_MS_DEFAULT,
} from "./http_client.ts";
import { RunMetrics } from "./metrics.ts";
import { DEFAULT_SEED, Prng } from "./prng.ts";
import type { Scenario, SetupContext, VuContext } from "./scenario.ts";
import { thinkTimeMs } from "./scenario.ts";
import {
  resolveStages,
  scaleStages,
  type Stage,
  stagesDurationMs,
  stagesMaxVus,
  vusAt,
} from "./stages.ts";

/** Hard cap on a run's duration, whatever the stages say. */
export const RUN_DURATION_MS_MAX = 30 * 60_000;
/** Hard cap on concurrent virtual users. */
export const VUS_MAX = 5_000;
/** How long running iterations may finish after the stop, before in-flight requests are cut. */
export const GRACEFUL_STOP_MS_DEFAULT = 5_000;
/** How often the scheduler adjusts the VU count. */
export const SCHEDULER_TICK_MS = 50;

/** Options of one run. */
export interface RunOptions {
  baseUrl: string;
  /** Seed of every random choice (VU i uses `seed` forked by i). */
  seed?: number;
  /** Multiplies stage durations and targets (0.1 for a smoke run). */
  scale?: number;
  /** Stops the run early, whatever the stages say (capped by RUN_DURATION_MS_MAX). */
  maxDurationMs?: number;
  requestTimeoutMs?: number;
  gracefulStopMs?: number;
  /** Abort to stop the run gracefully (e.g. on SIGINT). */
  signal?: AbortSignal;
  /** Allow a base URL that is not on the loopback interface. */
  allowRemote?: boolean;
  /** Called about once per second with progress. */
  onProgress?(progress: RunProgress): void;
  /** Called with setup/teardown log lines. */
  log?(message: string): void;
  /** Monotonic clock in ms (default performance.now). */
  now?: () => number;
}

/** A progress report. */
export interface RunProgress {
  elapsedMs: number;
  totalMs: number;
  vus: number;
  requests: number;
  failed: number;
}

/** What a run produced. */
export interface RunResult {
  scenario: string;
  description: string;
  baseUrl: string;
  seed: number;
  scale: number;
  stages: Stage[];
  startedAt: string;
  /** Time of the VU phase (setup and teardown excluded). */
  durationMs: number;
  /** True when stopped by the signal or the duration cap before the stages ended. */
  aborted: boolean;
  metrics: RunMetrics;
  setupError?: string;
  teardownError?: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** Throws unless `url` points at the loopback interface (or `allowRemote`). */
export function assertLoopback(url: string, allowRemote = false): void {
  const host = new URL(url).hostname;
  if (!allowRemote && !LOOPBACK.test(host)) {
    throw new Error(
      `refusing to load ${host}: only loopback targets unless allowRemote is set`,
    );
  }
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Runs a scenario to the end of its stages and returns what was measured.
 * Setup and teardown requests are not counted.
 *
 * @example
 * ```ts ignore
 * import { runScenario } from "./runner.ts";
 * const result = await runScenario(myScenario, { baseUrl: "http://127.0.0.1:8001", scale: 0.1 });
 * console.log(result.metrics.all.requests);
 * ```
 */
export async function runScenario<D>(
  scenario: Scenario<D>,
  options: RunOptions,
): Promise<RunResult> {
  assertLoopback(options.baseUrl, options.allowRemote);
  const now = options.now ?? (() => performance.now());
  const seed = options.seed ?? DEFAULT_SEED;
  const scale = options.scale ?? 1;
  const stages = scale === 1 ? scenario.stages : scaleStages(scenario.stages, scale);
  const startVus = Math.round(
    (scenario.startVus ?? 0) * (scale === 1 ? 1 : scale),
  );
  if (stagesMaxVus(stages, startVus) > VUS_MAX) {
    throw new Error(`scenario asks for more than ${VUS_MAX} VUs`);
  }
  const resolved = resolveStages(stages, startVus);
  const capMs = Math.min(
    options.maxDurationMs ?? RUN_DURATION_MS_MAX,
    RUN_DURATION_MS_MAX,
  );
  const totalMs = Math.min(stagesDurationMs(stages), capMs);
  const timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT;
  const gracefulStopMs = options.gracefulStopMs ?? GRACEFUL_STOP_MS_DEFAULT;
  const log = options.log ?? (() => {});
  const rootRng = new Prng(seed);
  const metrics = new RunMetrics(Math.ceil(RUN_DURATION_MS_MAX / 1000) + 60);

  const setupCtx: SetupContext = {
    baseUrl: options.baseUrl,
    http: new HttpClient(options.baseUrl, NULL_RECORDER, {
      timeoutMs: Math.max(timeoutMs, 60_000),
    }),
    rng: rootRng.fork(0x5e7),
    log,
  };
  const result: RunResult = {
    scenario: scenario.name,
    description: scenario.description,
    baseUrl: options.baseUrl,
    seed,
    scale,
    stages,
    startedAt: new Date().toISOString(),
    durationMs: 0,
    aborted: false,
    metrics,
  };

  let data: D;
  try {
    data = scenario.setup === undefined ? (undefined as D) : await scenario.setup(setupCtx);
  } catch (e) {
    result.setupError = describeError(e);
    return result;
  }

  // Stop phases: `stopping` lets iterations finish; `hardStop` cuts requests and sleeps.
  let stopping = false;
  const hardStop = new AbortController();
  const stopWaiters = new Set<() => void>();
  const beginStop = () => {
    if (stopping) return;
    stopping = true;
    for (const wake of stopWaiters) wake();
    stopWaiters.clear();
  };
  const onSignal = () => {
    result.aborted = true;
    beginStop();
  };
  if (options.signal?.aborted) onSignal();
  options.signal?.addEventListener("abort", onSignal, { once: true });

  const start = now();
  const elapsed = () => now() - start;
  const recorder = metricsRecorder(
    metrics,
    elapsed,
    () => hardStop.signal.aborted,
  );
  const http = new HttpClient(options.baseUrl, recorder, {
    timeoutMs,
    stopSignal: hardStop.signal,
    now,
  });

  const sleep = (ms: number): Promise<void> => {
    if (ms <= 0 || stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stopWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stopWaiters.add(done);
    });
  };

  let wantedVus = 0;
  let activeVus = 0;
  const running: boolean[] = [];
  const vuDone: Promise<void>[] = [];

  const vuLoop = async (id: number) => {
    const vu: VuContext<D> = {
      id,
      iteration: 0,
      rng: rootRng.fork(id + 1),
      data,
      state: {},
      http,
      check(name, ok) {
        metrics.recordCheck(name, ok);
        return ok;
      },
      sleep,
    };
    while (!stopping && id < wantedVus) {
      try {
        await scenario.iteration(vu);
        if (!hardStop.signal.aborted) metrics.iterations++;
      } catch {
        metrics.iterationErrors++;
      }
      vu.iteration++;
      if (!stopping) await sleep(thinkTimeMs(scenario.thinkTime, vu.rng));
    }
    running[id] = false;
    activeVus--;
  };

  let lastProgressS = -1;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const t = elapsed();
      if (t >= totalMs) {
        if (t < stagesDurationMs(stages)) result.aborted = true;
        beginStop();
      }
      if (stopping) {
        clearInterval(interval);
        resolve();
        return;
      }
      wantedVus = vusAt(resolved, t);
      for (let id = 0; id < wantedVus; id++) {
        if (running[id]) continue;
        running[id] = true;
        activeVus++;
        vuDone.push(vuLoop(id));
      }
      metrics.recordVus(activeVus, t);
      const s = Math.floor(t / 1000);
      if (s !== lastProgressS && options.onProgress !== undefined) {
        lastProgressS = s;
        options.onProgress({
          elapsedMs: t,
          totalMs,
          vus: activeVus,
          requests: metrics.all.requests,
          failed: metrics.all.failed,
        });
      }
    };
    const interval = setInterval(tick, SCHEDULER_TICK_MS);
    stopWaiters.add(() => {
      // Wake the scheduler promptly on Ctrl-C instead of at the next tick.
      queueMicrotask(tick);
    });
    tick();
  });
  result.durationMs = elapsed();

  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((
    resolve,
  ) => (graceTimer = setTimeout(resolve, gracefulStopMs)));
  await Promise.race([Promise.all(vuDone), grace]);
  clearTimeout(graceTimer);
  hardStop.abort();
  await Promise.all(vuDone);
  options.signal?.removeEventListener("abort", onSignal);

  if (scenario.teardown !== undefined) {
    try {
      await scenario.teardown(setupCtx, data);
    } catch (e) {
      result.teardownError = describeError(e);
    }
  }
  return result;
}
