/**
 * Command-line parsing and the run/compare/report commands of the load
 * runner. `main.ts` only wires this to `Deno.args`, signals and exit codes.
 *
 * @module
 */
import { parseDurationMs } from "./duration.ts";
import { renderHtmlReport } from "./html_report.ts";
import { runScenario } from "./runner.ts";
import { findScenario, type ScenarioEntry, SCENARIOS } from "./scenarios/mod.ts";
import { type RunningService, startOtherService, startTasksService } from "./service.ts";
import { buildSummary, comparisonMarkdown, type LoadSummary } from "./summary.ts";

/** Default output directory (ignored by git, see the root .gitignore). */
export const OUT_DIR_DEFAULT = new URL("../results/load", import.meta.url).pathname;

/** Parsed command line. */
export interface CliArgs {
  command: "run" | "list" | "report" | "help";
  /** Scenario name (run) or summary files (report). */
  positional: string[];
  url?: string;
  storage: string;
  storages?: string[];
  out?: string;
  scale: number;
  seed?: number;
  maxDurationMs?: number;
  timeoutMs?: number;
  keys?: string;
  seedCount?: number;
  allowRemote: boolean;
  quiet: boolean;
}

/** Usage text. */
export const USAGE = `Usage:
  deno run -A bench/load/main.ts <scenario> [options]     run a scenario
  deno run -A bench/load/main.ts list                      list scenarios
  deno run -A bench/load/main.ts report <a.json>... --out report.html
                                                           HTML comparison of saved summaries
Options:
  --url URL            target (default: start the service on a free port)
  --storage TYPE       STORAGE_TYPE when the runner starts the service (default memory)
  --storages a,b,...   storage types of a comparative scenario (default memory,shard,pool,kv)
  --out PATH           output directory, or a .json/.html file path (default bench/results/load)
  --scale F            multiply stage durations and VU targets (0.1 = smoke run)
  --seed N             PRNG seed (default 24301)
  --max-duration D     hard cap on the VU phase ("30s", "5m"; at most 30m)
  --timeout D          per-request timeout (default 10s)
  --keys SPEC          key distribution: uniform | zipf[:s] | hot[:80/20]
  --seed-count N       tasks created by setup
  --allow-remote       allow a non-loopback --url
  --quiet              no progress lines`;

/** Parses `Deno.args`. Throws with a message on bad input. */
export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = {
    command: "run",
    positional: [],
    storage: "memory",
    scale: 1,
    allowRemote: false,
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const number = () => {
      const v = Number(value());
      if (!Number.isFinite(v)) throw new Error(`${flag} needs a number`);
      return v;
    };
    switch (flag) {
      case "--url":
        args.url = value();
        break;
      case "--storage":
        args.storage = value();
        break;
      case "--storages":
        args.storages = value().split(",").filter((s) => s.length > 0);
        break;
      case "--out":
        args.out = value();
        break;
      case "--scale":
        args.scale = number();
        if (!(args.scale > 0 && args.scale <= 10)) {
          throw new Error("--scale must be in (0, 10]");
        }
        break;
      case "--seed":
        args.seed = number() >>> 0;
        break;
      case "--max-duration":
        args.maxDurationMs = parseDurationMs(value());
        break;
      case "--timeout":
        args.timeoutMs = parseDurationMs(value());
        break;
      case "--keys":
        args.keys = value();
        break;
      case "--seed-count":
        args.seedCount = number();
        break;
      case "--allow-remote":
        args.allowRemote = true;
        break;
      case "--quiet":
        args.quiet = true;
        break;
      case "-h":
      case "--help":
        args.command = "help";
        break;
      default:
        if (flag.startsWith("-")) throw new Error(`unknown option ${flag}`);
        args.positional.push(arg);
    }
  }
  if (args.command !== "help") {
    if (args.positional[0] === "list") args.command = "list";
    else if (args.positional[0] === "report") {
      args.command = "report";
      args.positional.shift();
    } else if (args.positional.length === 0) args.command = "help";
  }
  return args;
}

/** Where a run's files go: `<dir>/<base>.json` and `.html`, or the given file path. */
export function outputPaths(
  out: string | undefined,
  base: string,
): { json: string; html: string } {
  const target = out ?? OUT_DIR_DEFAULT;
  if (/\.(json|html)$/.test(target)) {
    const stem = target.replace(/\.(json|html)$/, "");
    return { json: `${stem}.json`, html: `${stem}.html` };
  }
  return { json: `${target}/${base}.json`, html: `${target}/${base}.html` };
}

async function writeOutputs(
  paths: { json: string; html: string },
  summaries: LoadSummary[],
) {
  for (const p of [paths.json, paths.html]) {
    const dir = p.slice(0, p.lastIndexOf("/"));
    if (dir.length > 0) await Deno.mkdir(dir, { recursive: true });
  }
  await Deno.writeTextFile(
    paths.json,
    JSON.stringify(summaries.length === 1 ? summaries[0] : summaries, null, 2) +
      "\n",
  );
  await Deno.writeTextFile(paths.html, renderHtmlReport(summaries));
}

/** What the caller needs to print and exit with. */
export interface CommandOutcome {
  summaries: LoadSummary[];
  files: string[];
  /** True when every threshold of every run passed. */
  ok: boolean;
}

async function startFor(
  entry: ScenarioEntry,
  storage: string,
): Promise<RunningService> {
  switch (entry.service) {
    case "tasks":
      return await startTasksService(storage);
    default:
      return await startOtherService(entry.service);
  }
}

/** Runs one scenario (or, for a comparative one, one run per storage type). */
export async function runCommand(
  args: CliArgs,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<CommandOutcome> {
  const name = args.positional[0]!;
  const entry = findScenario(name);
  if (entry === undefined) {
    throw new Error(
      `unknown scenario "${name}"; try: ${SCENARIOS.map((s) => s.name).join(", ")}`,
    );
  }
  const storages = args.url !== undefined
    ? [args.storage]
    : entry.storages !== undefined
    ? (args.storages ?? [...entry.storages])
    : [args.storage];
  // Several runs with a file --out: each run's files go beside it, the comparison into it.
  const runOut = storages.length > 1 && args.out !== undefined &&
      /\.(json|html)$/.test(args.out)
    ? args.out.slice(0, Math.max(0, args.out.lastIndexOf("/"))) || "."
    : args.out;
  const summaries: LoadSummary[] = [];
  const files: string[] = [];
  for (const storage of storages) {
    if (signal.aborted) break;
    const scenario = entry.build({
      ...(args.keys === undefined ? {} : { keys: args.keys }),
      ...(args.seedCount === undefined ? {} : { seedCount: args.seedCount }),
    });
    let service: RunningService | undefined;
    let url = args.url;
    if (url === undefined) {
      const how = entry.service === "tasks" ? ` with STORAGE_TYPE=${storage}` : "";
      log(`starting ${entry.service}${how} ...`);
      service = await startFor(entry, storage);
      url = service.url;
      log(
        `${entry.service} (${storage}) listening on ${url}, pid ${service.pid}`,
      );
    }
    try {
      const result = await runScenario(scenario, {
        baseUrl: url,
        scale: args.scale,
        ...(args.seed === undefined ? {} : { seed: args.seed }),
        ...(args.maxDurationMs === undefined ? {} : { maxDurationMs: args.maxDurationMs }),
        ...(args.timeoutMs === undefined ? {} : { requestTimeoutMs: args.timeoutMs }),
        allowRemote: args.allowRemote,
        signal,
        log,
        onProgress: args.quiet ? undefined : (p) => {
          if (Math.floor(p.elapsedMs / 1000) % 5 !== 0) return;
          log(
            `[${storage}] ${(p.elapsedMs / 1000).toFixed(0)}/${
              (p.totalMs / 1000).toFixed(0)
            } s  vus ${p.vus}  requests ${p.requests}  failed ${p.failed}`,
          );
        },
      });
      const summary = buildSummary(result, scenario.thresholds, storage);
      summaries.push(summary);
      if (summary.meta.setupError !== undefined) {
        log(`setup failed: ${summary.meta.setupError}`);
      }
      const paths = outputPaths(runOut, `${scenario.name}-${storage}`);
      await writeOutputs(paths, [summary]);
      files.push(paths.json, paths.html);
      log(comparisonMarkdown([summary]));
    } finally {
      if (service !== undefined) {
        await service.stop();
        log(`${entry.service} (${storage}) stopped`);
      }
    }
  }
  if (summaries.length > 1) {
    const paths = outputPaths(args.out, entry.name);
    await writeOutputs(paths, summaries);
    const md = paths.json.replace(/\.json$/, ".md");
    await Deno.writeTextFile(
      md,
      `# ${entry.name}\n\n${comparisonMarkdown(summaries)}\n`,
    );
    files.push(paths.json, paths.html, md);
  }
  return {
    summaries,
    files,
    ok: summaries.length > 0 && summaries.every((s) => s.ok),
  };
}

/** Reads saved summaries (single or arrays) and writes one comparison report. */
export async function reportCommand(args: CliArgs): Promise<CommandOutcome> {
  if (args.positional.length === 0) {
    throw new Error("report needs summary .json files");
  }
  const summaries: LoadSummary[] = [];
  for (const file of args.positional) {
    const parsed = JSON.parse(await Deno.readTextFile(file)) as
      | LoadSummary
      | LoadSummary[];
    summaries.push(...(Array.isArray(parsed) ? parsed : [parsed]));
  }
  const paths = outputPaths(args.out, "comparison");
  await writeOutputs(paths, summaries);
  return {
    summaries,
    files: [paths.json, paths.html],
    ok: summaries.every((s) => s.ok),
  };
}
