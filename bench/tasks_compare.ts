/**
 * Side-by-side HTTP comparison for the tasks service, with wrk, on loopback:
 *
 * 1. `get`: GET /tasks/:id on `memory` against a bare `Deno.serve` that
 *    returns the same JSON body (the ceiling), 50 connections.
 * 2. `mix`: the stress mix (80% reads, 20% writes) against each storage type.
 *
 * Runs are interleaved (A, B, A, B, ...) and the median of `--rounds` is
 * reported, so the ratio is fair on a noisy machine. Writes a JSON result and,
 * with `--doc`, regenerates docs/tasks-performance.md from it.
 *
 *     deno run -A bench/tasks_compare.ts --rounds 3 --duration 5 --doc
 *
 * @module
 */
import {
  fmtFiles,
  have,
  median,
  runWrk,
  startDeno,
  type Started,
  type WrkResult,
} from "./lib/process.ts";

interface Args {
  rounds: number;
  durationS: number;
  connections: number;
  threads: number;
  storages: string[];
  out: string;
  doc: boolean;
  poolWorkers: number;
  stressConnections: number;
  stressStorages: string[];
  /** Also run the load runner's comparative scenario at this scale (0 = skip). */
  loadScale: number;
  /** Regenerate the report from this result file instead of measuring. */
  from?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    rounds: 3,
    durationS: 5,
    connections: 50,
    threads: 1,
    storages: ["memory", "shard", "pool", "kv"],
    out: "bench/results/tasks-compare.json",
    doc: false,
    poolWorkers: 2,
    stressConnections: 1000,
    stressStorages: ["memory", "pool"],
    loadScale: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === "--rounds") args.rounds = Number(value());
    else if (flag === "--duration") args.durationS = Number(value());
    else if (flag === "--connections") args.connections = Number(value());
    else if (flag === "--threads") args.threads = Number(value());
    else if (flag === "--storages") args.storages = value().split(",");
    else if (flag === "--out") args.out = value();
    else if (flag === "--pool-workers") args.poolWorkers = Number(value());
    else if (flag === "--stress-connections") args.stressConnections = Number(value());
    else if (flag === "--stress-storages") args.stressStorages = value().split(",");
    else if (flag === "--doc") args.doc = true;
    else if (flag === "--load-scale") args.loadScale = Number(value());
    else if (flag === "--from") args.from = value();
    else throw new Error(`unknown flag ${flag}`);
  }
  return args;
}

const TASKS = "services/tasks/main.ts";

/** Bulk-create timings measured while seeding, per storage, in ms. */
const seedMs: Record<string, number> = {};

async function seed(url: string, n: number, label?: string): Promise<string[]> {
  const started = performance.now();
  const ids: string[] = [];
  for (let done = 0; done < n; done += 10_000) {
    const batch = Math.min(10_000, n - done);
    const res = await fetch(`${url}/tasks/bulk`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        tasks: Array.from({ length: batch }, (_, i) => ({
          title: `seeded task ${done + i}`,
          description: "seeded for the benchmark",
          priority: (done + i) % 6,
        })),
      }),
    });
    if (res.status !== 201) throw new Error(`seed failed: ${res.status} ${await res.text()}`);
    ids.push(...(await res.json()).ids);
  }
  if (label !== undefined) seedMs[label] = performance.now() - started;
  return ids;
}

interface Row {
  name: string;
  runs: WrkResult[];
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function summarize(name: string, runs: WrkResult[]): Row {
  return {
    name,
    runs,
    rps: median(runs.map((r) => r.requestsPerSec)),
    p50: median(runs.map((r) => r.latencyMs.p50)),
    p99: median(runs.map((r) => r.latencyMs.p99)),
    errors: runs.reduce((s, r) => s + r.errors + r.non2xx, 0),
  };
}

async function withServers<T>(
  starts: Array<() => Promise<Started>>,
  fn: (s: Started[]) => Promise<T>,
) {
  const started: Started[] = [];
  try {
    for (const start of starts) started.push(await start());
    return await fn(started);
  } finally {
    for (const s of started) await s.stop();
  }
}

async function compareGet(args: Args) {
  const idsFile = await Deno.makeTempFile({ suffix: ".ids" });
  return await withServers([
    () => startDeno("bench/bare_server.ts", {}, { healthPath: "/" }),
    () => startDeno(TASKS, { STORAGE_TYPE: "memory" }),
  ], async ([bare, ours]) => {
    const ids = await seed(ours!.url, 10_000);
    await Deno.writeTextFile(idsFile, ids.join("\n"));
    const id = ids[0]!;
    const wrk = (url: string) =>
      runWrk(url, {
        connections: args.connections,
        threads: args.threads,
        durationS: args.durationS,
      });
    await wrk(`${bare!.url}/tasks/${id}`); // warm-up both
    await wrk(`${ours!.url}/tasks/${id}`);
    const bareRuns: WrkResult[] = [];
    const oursRuns: WrkResult[] = [];
    for (let round = 0; round < args.rounds; round++) {
      bareRuns.push(await wrk(`${bare!.url}/tasks/${id}`));
      oursRuns.push(await wrk(`${ours!.url}/tasks/${id}`));
      console.error(
        `get round ${round + 1}: bare ${bareRuns.at(-1)!.requestsPerSec.toFixed(0)} req/s, ` +
          `tasks ${oursRuns.at(-1)!.requestsPerSec.toFixed(0)} req/s`,
      );
    }
    const randomRuns: WrkResult[] = [];
    for (let round = 0; round < args.rounds; round++) {
      randomRuns.push(
        await runWrk(`${ours!.url}/`, {
          connections: args.connections,
          threads: args.threads,
          durationS: args.durationS,
          script: "bench/wrk/get_random.lua",
          env: { TASK_IDS: idsFile },
        }),
      );
    }
    return {
      bare: summarize("bare Deno.serve", bareRuns),
      ours: summarize("tasks memory GET /tasks/:id", oursRuns),
      oursRandom: summarize("tasks memory GET random id of 10k", randomRuns),
    };
  }).finally(() => Deno.remove(idsFile));
}

async function compareMix(args: Args) {
  const rows: Row[] = [];
  const stress: Row[] = [];
  const servers: Record<string, Started> = {};
  const idsFiles: Record<string, string> = {};
  const dataDir = await Deno.makeTempDir({ prefix: "tasks-bench-" });
  try {
    for (const storage of args.storages) {
      servers[storage] = await startDeno(TASKS, {
        STORAGE_TYPE: storage,
        POOL_WORKERS: String(args.poolWorkers),
        KV_PATH: `${dataDir}/${storage}.kv`,
      });
      const ids = await seed(servers[storage]!.url, 10_000, storage);
      idsFiles[storage] = `${dataDir}/${storage}.ids`;
      await Deno.writeTextFile(idsFiles[storage]!, ids.join("\n"));
    }
    const runs: Record<string, WrkResult[]> = {};
    for (let round = 0; round < args.rounds; round++) {
      for (const storage of args.storages) {
        const result = await runWrk(`${servers[storage]!.url}/`, {
          connections: args.connections,
          threads: args.threads,
          durationS: args.durationS,
          script: "bench/wrk/tasks_mix.lua",
          env: { TASK_IDS: idsFiles[storage]! },
        });
        (runs[storage] ??= []).push(result);
        console.error(
          `mix round ${round + 1} ${storage}: ${result.requestsPerSec.toFixed(0)} req/s`,
        );
      }
    }
    for (const storage of args.storages) rows.push(summarize(storage, runs[storage]!));
    for (const storage of args.stressStorages.filter((s) => servers[s] !== undefined)) {
      const result = await runWrk(`${servers[storage]!.url}/`, {
        connections: args.stressConnections,
        threads: 2,
        durationS: args.durationS * 2,
        script: "bench/wrk/tasks_mix.lua",
        env: { TASK_IDS: idsFiles[storage]! },
      });
      stress.push(summarize(`${storage} @ ${args.stressConnections} connections`, [result]));
      console.error(`stress ${storage}: ${result.requestsPerSec.toFixed(0)} req/s`);
    }
  } finally {
    for (const s of Object.values(servers)) await s.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
  return { rows, stress };
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/** Ratios of runs taken in the same round, and their median. */
function pairedRatios(a: readonly WrkResult[], b: readonly WrkResult[]) {
  const each = a.map((run, i) => run.requestsPerSec / b[i]!.requestsPerSec);
  return { each, median: median(each) };
}

function markdown(result: Awaited<ReturnType<typeof run>>): string {
  const g = result.get;
  const row = (r: Row, extra = "") =>
    `| ${r.name} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${r.errors} |${extra}`;
  const memoryRow = result.mix.rows.find((m) => m.name === "memory");
  const getRatios = pairedRatios(g.ours.runs, g.bare.runs);
  const lines = [
    "# Tasks service performance",
    "",
    "Generated by `deno task bench:tasks --doc` " +
    `(${result.args.rounds} interleaved rounds of ${result.args.durationS} s, ` +
    `${result.args.connections} connections, wrk ${result.args.threads} thread; median shown) ` +
    `on ${result.machine}, ${result.date}. Server, wrk and everything else share the same cores, ` +
    "so absolute numbers are for this machine only; the ratios are the point. Services run " +
    "with `ACCESS_LOG=false` and every other setting at its default. Raw results: " +
    "[results/tasks-compare.json](results/tasks-compare.json) (regenerate this page from it " +
    "with `deno task bench:tasks --from docs/results/tasks-compare.json --doc`).",
    "",
    "## GET /tasks/:id against the ceiling",
    "",
    "The ceiling is a bare `Deno.serve` answering every request with the same JSON body.",
    "",
    "| server | req/s | p50 ms | p99 ms | errors |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...[g.bare, g.ours, g.oursRandom].map((r) => row(r)),
    "",
    `Ratio tasks/bare, median of the per-round ratios: **${fmt(getRatios.median, 3)}** ` +
    `(rounds: ${getRatios.each.map((r) => fmt(r, 2)).join(", ")}; target >= 0.80); ` +
    `p99 ${fmt(g.ours.p99, 2)} ms (target < 5 ms).`,
    "",
    "## Stress mix (80% GET by id, 20% POST/PATCH/PUT) per storage",
    "",
    "10,000 tasks seeded in each store first. `pool` runs " +
    `${result.args.poolWorkers} worker isolates on one port (reusePort).`,
    "",
    'Runs are interleaved round by round; "vs memory" is the median of the per-round ratios ' +
    "(each round's ratio in brackets), which cancels drift in the machine's load.",
    "",
    "| storage | req/s | p50 ms | p99 ms | errors | vs memory |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...result.mix.rows.map((r) => {
      if (memoryRow === undefined) return row(r, " |");
      const ratios = pairedRatios(r.runs, memoryRow.runs);
      return row(
        r,
        ` ${fmt(ratios.median, 2)} (${ratios.each.map((x) => fmt(x, 2)).join(", ")}) |`,
      );
    }),
    "",
    "## Stress: the mix at many connections",
    "",
    "wrk with 2 threads; wrk reports p50/p75/p90/p99, so p99 bounds the p95 target from above.",
    "",
    "| run | req/s | p50 ms | p99 ms | errors (socket + non-2xx) |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...result.mix.stress.map((r) => row(r)),
    "",
    "## Seeding: POST /tasks/bulk with 10,000 tasks",
    "",
    "| storage | ms |",
    "| --- | ---: |",
    ...Object.entries(result.seedMs).map(([storage, ms]) => `| ${storage} | ${fmt(ms)} |`),
    "",
  ];
  if (result.memory !== null) {
    const m = result.memory;
    lines.push(
      "## Memory: 1,000,000 tasks in the shard store",
      "",
      `\`deno task bench:tasks:memory\`: ${fmt(Number(m.tasks))} tasks hold ` +
        `${fmt(Number(m.heapTotalMiB))} MiB of heap after GC ` +
        `(${fmt(Number(m.heapPerTaskBytes))} bytes per task; target: under 1 GB in all).`,
      "",
    );
  }
  if (result.load !== null) {
    lines.push(
      "## The load runner's comparative scenario",
      "",
      `\`deno task load:comparative --scale ${result.loadScale}\`: the stress mix through the ` +
        "Deno load runner, which shares the two cores with the service, so it measures far " +
        "below wrk.",
      "",
      result.load.split("\n").filter((l) => !l.startsWith("# ")).join("\n").trim(),
      "",
    );
  }
  return lines.join("\n");
}

/** Runs the load runner's comparative scenario and returns its Markdown table. */
async function loadRunnerComparative(scale: number): Promise<string | null> {
  if (scale <= 0) return null;
  const out = "bench/results/load/tasks-comparative.json";
  const status = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "bench/load/main.ts",
      "tasks-comparative",
      "--scale",
      String(scale),
      "--out",
      out,
      "--quiet",
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn().status;
  if (status.code !== 0 && status.code !== 99) return null;
  return await Deno.readTextFile(out.replace(/\.json$/, ".md"));
}

/** Heap held by 1,000,000 tasks in the shard store (bench/tasks_memory.ts). */
async function shardMemory(): Promise<Record<string, number | string> | null> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", "bench/tasks_memory.ts", "--store", "shard"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) return null;
  return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
}

async function run(args: Args) {
  const memory = await shardMemory();
  const get = await compareGet(args);
  const mix = await compareMix(args);
  const load = await loadRunnerComparative(args.loadScale);
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
    /model name\s*:\s*(.*)/,
  )?.[1] ?? "unknown CPU";
  return {
    args,
    machine: `${navigator.hardwareConcurrency} cores (${cpu}), Deno ${Deno.version.deno}`,
    date: new Date().toISOString().slice(0, 10),
    get,
    mix,
    seedMs,
    load,
    loadScale: args.loadScale,
    memory,
  };
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  if (args.from === undefined && !(await have("wrk"))) {
    console.error("tasks_compare: wrk is not installed (apt-get install wrk); skipped");
    Deno.exit(0);
  }
  const result: Awaited<ReturnType<typeof run>> = args.from !== undefined
    ? JSON.parse(await Deno.readTextFile(args.from))
    : await run(args);
  await Deno.mkdir(args.out.slice(0, args.out.lastIndexOf("/")), { recursive: true });
  if (args.from === undefined) await Deno.writeTextFile(args.out, JSON.stringify(result, null, 2));
  const md = markdown(result);
  console.log(md);
  if (args.doc) {
    // The page and the measurements it was made from are committed together.
    await Deno.mkdir("docs/results", { recursive: true });
    await Deno.writeTextFile("docs/results/tasks-compare.json", JSON.stringify(result, null, 2));
    await Deno.writeTextFile("docs/tasks-performance.md", md);
    // The page passes `deno fmt --check` (CI) as written (docs/results is not formatted).
    await fmtFiles("docs/tasks-performance.md");
  }
}
