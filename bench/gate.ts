/**
 * The regression gate's measuring harness: one bench file of this tree and the same file of the
 * accepted commit, loaded side by side in one process, each case timed in interleaved batches.
 *
 *   deno run -A --v8-flags=--expose-gc bench/gate.ts --current <file URL> --accepted <file URL> [--rounds N]
 *                             [--batch-ms 10] [--accepted-first]
 *
 * prints one JSON document: for each case both trees define, the time per iteration of every
 * batch of either tree, batches of the two trees alternating (A B, B A, A B ...).
 *
 * Why in one process: on a shared machine a `deno bench` run of unchanged code lands tens of
 * percent away from the run a minute earlier (measured here: the fastest iteration of the same
 * case moved up to 2.6x across five runs, and so did ratios to an in-file baseline). Whatever
 * slows the machine down for a few hundred milliseconds slows both trees' batches of that moment
 * alike, so the ratio of adjacent batches cancels it, where the ratio of two runs a minute apart
 * does not. Each tree's modules are separate copies (separate URLs), compiled separately.
 *
 * The bench files are imported with `Deno.bench` replaced by a collector; nothing else of
 * `deno bench` is needed (`ignore`/`only` are honoured, `b.start()`/`b.end()` time a region).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GATE } from "./run.ts";

/** Milliseconds a batch of iterations takes, about (the iterations per batch are calibrated). */
export const BATCH_MS = 10;

/** What a bench file registers (the parts the harness uses). */
export interface BenchDef {
  name: string;
  group: string;
  baseline: boolean;
  ignore: boolean;
  only: boolean;
  fn: (b: BenchContext) => unknown;
}

/** The subset of `Deno.BenchContext` bench files may use. */
export interface BenchContext {
  name: string;
  origin: string;
  start(): void;
  end(): void;
}

type Fn = (b: BenchContext) => unknown;
type Options = {
  name?: string;
  group?: string;
  baseline?: boolean;
  ignore?: boolean;
  only?: boolean;
  fn?: Fn;
};

/**
 * Normalises the forms `Deno.bench` accepts: `(def)`, `(fn)`, `(name, fn)`, `(name, options,
 * fn)`, `(options, fn)`.
 */
export function normalizeBench(a: unknown, b?: unknown, c?: unknown): BenchDef {
  let name: string | undefined, opts: Options = {}, fn: Fn | undefined;
  if (typeof a === "string") {
    name = a;
    if (typeof b === "function") fn = b as Fn;
    else {
      opts = (b ?? {}) as Options;
      fn = c as Fn;
    }
  } else if (typeof a === "function") {
    fn = a as Fn;
    name = fn.name;
  } else if (a !== null && typeof a === "object") {
    opts = a as Options;
    fn = typeof b === "function" ? b as Fn : opts.fn;
    name = opts.name ?? fn?.name;
  }
  if (typeof fn !== "function") throw new TypeError("Deno.bench: no bench function");
  if (name === undefined || name === "") throw new TypeError("Deno.bench: the bench has no name");
  return {
    name,
    group: opts.group ?? "",
    baseline: opts.baseline ?? false,
    ignore: opts.ignore ?? false,
    only: opts.only ?? false,
    fn,
  };
}

/** Imports `url` with `Deno.bench` collecting instead of running; returns what it registered. */
export async function collect(url: string): Promise<BenchDef[]> {
  const defs: BenchDef[] = [];
  const d = Deno as unknown as { bench: unknown };
  const saved = d.bench;
  d.bench = (a: unknown, b?: unknown, c?: unknown) => {
    defs.push(normalizeBench(a, b, c));
  };
  try {
    await import(url);
  } finally {
    d.bench = saved;
  }
  const only = defs.some((x) => x.only);
  return defs.filter((x) => !x.ignore && (!only || x.only));
}

/** V8's collector when the process runs with `--expose-gc` (the gate starts it so). */
const gc = (globalThis as { gc?: (o?: { type: "minor" | "major" }) => void }).gc;

/** Times `n` iterations of `def`; returns ns per iteration. */
async function batch(def: BenchDef, origin: string, n: number): Promise<number> {
  let regionStart = 0, region = 0, regions = 0;
  const ctx: BenchContext = {
    name: def.name,
    origin,
    start() {
      regionStart = performance.now();
    },
    end() {
      region += performance.now() - regionStart;
      regions++;
    },
  };
  const fn = def.fn;
  // The young garbage of the batch before (maybe the other tree's) is collected before this
  // batch, not during it.
  gc?.({ type: "minor" });
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = fn(ctx);
    if (r instanceof Promise) await r;
  }
  const total = performance.now() - t0;
  return ((regions > 0 ? region : total) * 1e6) / n;
}

/** Iterations per batch so that one batch takes about `targetMs` (at least one). */
async function calibrate(def: BenchDef, origin: string, targetMs: number): Promise<number> {
  let n = 1;
  for (;;) {
    const ms = ((await batch(def, origin, n)) * n) / 1e6;
    if (ms >= targetMs / 2 || n >= 1 << 24) {
      return Math.max(1, Math.round((n * targetMs) / Math.max(ms, 1e-3)));
    }
    n = ms < targetMs / 64 ? n * 16 : n * 2;
  }
}

/**
 * Warm-up batches per tree before a case's rounds. Calibration runs only the accepted tree's
 * version; with one warm-up batch each, a function that takes longer to reach V8's optimising
 * tiers was measured in them for the first rounds (seen: a router case 10x slower in its first
 * round, 1.5x in its 10th, then faster than the accepted version for the 40 rounds after), and
 * the gate judged that as a regression in every process. Fifteen batches of about 10 ms each.
 */
export const WARMUP_BATCHES = 15;

/** One case measured in both trees: ns per iteration of each batch, in round order. */
export interface Paired {
  group: string;
  name: string;
  current: number[];
  accepted: number[];
}

/**
 * Measures every case both lists define (matched by group and name): calibrates on the
 * accepted tree's version, warms both up (`warmup` batches each, at least 1, alternating this
 * tree's and the accepted one's: default {@link WARMUP_BATCHES}), then `rounds` rounds of one
 * batch each, the order alternating from round to round.
 */
export async function measurePaired(
  current: readonly BenchDef[],
  accepted: readonly BenchDef[],
  opts: { rounds: number; batchMs: number; origins: [string, string]; warmup?: number },
): Promise<Paired[]> {
  const warmup = Math.max(1, opts.warmup ?? WARMUP_BATCHES);
  const byKey = new Map(accepted.map((d) => [`${d.group}::${d.name}`, d]));
  const out: Paired[] = [];
  for (const a of current) {
    const b = byKey.get(`${a.group}::${a.name}`);
    if (b === undefined) continue;
    const n = await calibrate(b, opts.origins[1], opts.batchMs);
    for (let w = 0; w < warmup; w++) {
      await batch(a, opts.origins[0], n);
      await batch(b, opts.origins[1], n);
    }
    const cur: number[] = [], acc: number[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      if (r % 2 === 0) {
        cur.push(await batch(a, opts.origins[0], n));
        acc.push(await batch(b, opts.origins[1], n));
      } else {
        acc.push(await batch(b, opts.origins[1], n));
        cur.push(await batch(a, opts.origins[0], n));
      }
    }
    out.push({ group: a.group, name: a.name, current: cur, accepted: acc });
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      current: { type: "string" },
      accepted: { type: "string" },
      rounds: { type: "string", default: String(GATE.rounds) },
      "batch-ms": { type: "string", default: String(BATCH_MS) },
      /** Which tree's file is imported (and so allocates its module state) first. */
      "accepted-first": { type: "boolean", default: false },
    },
  });
  if (values.current === undefined || values.accepted === undefined) {
    throw new Error("usage: bench/gate.ts --current <file URL> --accepted <file URL>");
  }
  let cur: BenchDef[], acc: BenchDef[];
  if (values["accepted-first"]) {
    acc = await collect(values.accepted);
    cur = await collect(values.current);
  } else {
    cur = await collect(values.current);
    acc = await collect(values.accepted);
  }
  const cases = await measurePaired(cur, acc, {
    rounds: Number(values.rounds),
    batchMs: Number(values["batch-ms"]),
    origins: [values.current, values.accepted],
  });
  console.log(JSON.stringify({ cases }));
}

if (import.meta.main) {
  await main();
  // Bench files may leave workers, timers or open stores behind.
  Deno.exit(0);
}
