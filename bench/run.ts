/**
 * Every `deno bench` file of the project, one JSON result and a table, and a regression gate that
 * holds on a noisy shared machine:
 *
 *   deno task bench                   every *_bench.ts, once; bench/results/bench-<time>.json
 *   deno task bench:quick             the quick set (CPU-bound micro benchmarks), 3 runs
 *   deno task bench:gate              the quick set, this tree against the accepted commit
 *                                     (bench/baselines/bench.json); CI runs it
 *   deno task bench:gate:baseline     accepts HEAD: records its commit as the one to compare with
 *                                     (run no benchmark; commit the file)
 *
 * Options: `--quick`, `--runs N`, `--rounds N`, `--check`, `--against REV`, `--baseline`,
 * `--threshold 0.1`, `--files a,b`, `--report` (print verdicts, exit 0).
 *
 * The gate never compares with times stored from another day, nor with another `deno bench` run:
 * on this kind of machine a case's time drifts by tens of percent from one minute to the next,
 * and so do ratios between unlike cases. It checks the accepted commit out in a temporary git
 * worktree and, per bench file, runs bench/gate.ts `--runs` times (default 4): each process loads
 * both trees' version of the file and times every case in batches, the trees alternating, so
 * that what disturbs the machine disturbs both alike; which tree is imported first alternates
 * between processes. {@link judge} says what regressed. Cases under 100 ns an iteration are not
 * judged: the JIT's choices move them by tens of percent. A bench file that runs the same code as
 * the accepted commit ({@link sameCode}) is not run: identical code has come out past the
 * threshold in every process on a noisy day, which only says what the machine did.
 *
 * The table also gives each case's ratio to its group's `baseline: true` case in the same run
 * (ours against a plain `Map`, a raw write, the previous implementation).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Paired } from "./gate.ts";
import { denoOutput, median } from "./lib/process.ts";

const root = new URL("../", import.meta.url);

/** The quick set: CPU-bound micro benchmarks with in-process baselines (stable ratios). */
export const QUICK_FILES: readonly string[] = [
  "shared/shard/shard_bench.ts",
  "bench/load/histogram_bench.ts",
  "bench/tasks_store_bench.ts",
  "services/kv/kv_bench.ts",
  "services/kv-events/kv_events_bench.ts",
];

/** One case of one run. */
export interface Case {
  /** `<file>::<group>::<name>`. */
  key: string;
  file: string;
  group: string;
  name: string;
  baseline: boolean;
  /** Mean time per iteration, ns. */
  avgNs: number;
  /** Fastest iteration, ns. */
  minNs: number;
  /** 99th percentile of the iterations, ns. */
  p99Ns: number;
}

/** What `deno bench --json` prints (the parts read here). */
interface BenchJson {
  runtime: string;
  cpu: string;
  benches: {
    origin: string;
    group: string | null;
    name: string;
    baseline: boolean;
    results: { ok?: { avg: number; min: number; p99: number }; failed?: unknown }[];
  }[];
}

/**
 * Parses `deno bench --json` output. Bench files may print before the JSON document; that text
 * is skipped.
 */
export function parseBenchJson(
  text: string,
  rootPath: string,
): { cases: Case[]; meta: { runtime: string; cpu: string } } {
  const start = text.indexOf('{\n  "version"');
  if (start < 0) throw new Error("no deno bench JSON document in the output");
  const json = JSON.parse(text.slice(start)) as BenchJson;
  const cases: Case[] = [];
  for (const b of json.benches) {
    const r = b.results[0];
    if (r?.ok === undefined) throw new Error(`bench failed: ${b.name}`);
    const file = b.origin.replace(/^file:\/\//, "").replace(rootPath, "");
    const group = b.group ?? "";
    cases.push({
      key: `${file}::${group}::${b.name}`,
      file,
      group,
      name: b.name,
      baseline: b.baseline,
      avgNs: r.ok.avg,
      minNs: r.ok.min,
      p99Ns: r.ok.p99,
    });
  }
  return { cases, meta: { runtime: json.runtime, cpu: json.cpu } };
}

/**
 * Each case's fastest iteration over its group's baseline's in the same run (undefined: no
 * baseline). The fastest iteration, not the mean: on a shared machine noise only ever adds time,
 * and the minimum of many iterations is the figure it disturbs least.
 */
export function ratios(cases: readonly Case[]): Map<string, number | undefined> {
  const base = new Map<string, number>();
  for (const c of cases) {
    if (c.baseline && c.group !== "") base.set(`${c.file}::${c.group}`, c.minNs);
  }
  const out = new Map<string, number | undefined>();
  for (const c of cases) {
    const b = base.get(`${c.file}::${c.group}`);
    out.set(c.key, b === undefined || c.baseline ? undefined : c.minNs / b);
  }
  return out;
}

/** The gate's defaults: threshold, processes per bench file, alternating rounds per process. */
export const GATE = { threshold: 0.1, processes: 4, rounds: 20 } as const;

/** Cases faster than this per iteration are not judged by the gate. */
export const FLOOR_NS = 100;

/** A case whose processes' median ratios lie further apart than this is too noisy to judge. */
export const MAX_SPREAD = 1.5;

/** One case as one gate process measured it: ns per iteration of each batch, per tree. */
export type PairedCase = Pick<Paired, "current" | "accepted"> & { key: string };

/** The verdict on one case. */
export interface Verdict {
  key: string;
  /** Median over every round of every process of (this tree's batch / the accepted commit's). */
  median: number;
  /** Each process's median ratio. */
  processes: number[];
  /** The accepted commit's median time per iteration, ns. */
  acceptedNs: number;
  status: "ok" | "regressed" | "improved" | "noisy";
}

/**
 * Judges each case from the gate's processes (`processes[p]`: what process p measured).
 * Regressed: the median ratio over all rounds is above 1 + threshold and every process's own
 * median says this tree is slower by at least half the threshold (a process can carry a bias
 * of its own: which tree's data was allocated first, where the heap put it); improved: the
 * mirror image; noisy: past the threshold but some process disagrees, or the processes lie more
 * than {@link MAX_SPREAD} apart. Cases measured by fewer than two
 * processes, or faster than {@link FLOOR_NS}, are not judged.
 */
export function judge(processes: readonly PairedCase[][], threshold: number): Verdict[] {
  const byKey = Map.groupBy(processes.flat(), (c) => c.key);
  const n = Math.min(2, processes.length);
  // Every process must see at least half the threshold: identical code has come out a few
  // percent apart in every process of a run (a bias of where each copy landed), never that.
  const half = threshold / 2;
  const out: Verdict[] = [];
  for (const [key, cs] of [...byKey.entries()].sort((a, b) => a[0] < b[0] ? -1 : 1)) {
    if (cs.length < n) continue;
    const acceptedNs = median(cs.flatMap((c) => c.accepted));
    if (!(acceptedNs >= FLOOR_NS)) continue;
    const per = cs.map((c) => c.current.map((x, i) => x / c.accepted[i]));
    const m = median(per.flat());
    const ms = per.map((r) => median(r));
    // Processes that disagree by more than MAX_SPREAD measured noise, whatever the direction
    // (a Deno KV call, a round trip through the runtime's thread pool, swings 0.3-2x).
    const steady = Math.max(...ms) / Math.min(...ms) <= MAX_SPREAD;
    let status: Verdict["status"] = "ok";
    if (m > 1 + threshold) {
      status = steady && ms.every((r) => r > 1 + half) ? "regressed" : "noisy";
    } else if (m < 1 - threshold) {
      status = steady && ms.every((r) => r < 1 - half) ? "improved" : "noisy";
    }
    out.push({ key, median: m, processes: ms, acceptedNs, status });
  }
  return out;
}

async function benchFiles(quick: boolean, only?: string): Promise<string[]> {
  if (only !== undefined) return only.split(",").filter((f) => f !== "");
  if (quick) return [...QUICK_FILES];
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.name === "node_modules" || e.name.startsWith(".")) continue;
      const path = `${dir}${e.name}`;
      if (e.isDirectory) await walk(`${path}/`);
      else if (e.name.endsWith("_bench.ts")) found.push(path);
    }
  };
  for (const d of ["shared/", "services/", "bench/"]) await walk(d);
  return found.sort();
}

/** One `deno bench --json` run of `files` from the tree at `dir`. */
export async function runOnce(
  files: string[],
  dir: URL = root,
): Promise<ReturnType<typeof parseBenchJson>> {
  const text = await denoOutput(["bench", "-A", "--json", ...files], dir);
  return parseBenchJson(text, dir.pathname);
}

/** git's output (trimmed) for `args`, run in `cwd`; throws when git fails. */
async function git(args: string[], cwd: string | URL = root): Promise<string> {
  const out = await new Deno.Command("git", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** A temporary worktree of `rev` sharing this tree's node_modules. */
async function worktree(rev: string): Promise<{ dir: URL; remove(): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "bench-gate-" });
  await Deno.remove(path);
  await git(["worktree", "add", "--detach", path, rev]);
  try {
    await Deno.symlink(new URL("node_modules", root).pathname, `${path}/node_modules`);
  } catch {
    // no node_modules here: the worktree resolves its own
  }
  return {
    dir: new URL(`file://${path}/`),
    remove: async () => {
      await git(["worktree", "remove", "--force", path]).catch(() =>
        Deno.remove(path, { recursive: true })
      );
    },
  };
}

/**
 * Whether bench `file` runs the same code in the tree at `dir` as at commit `rev`: the modules of
 * its graph that lie in the tree (`deno info`), every deno.json and the lock file are unchanged,
 * and git tracks them all. Identical code cannot have regressed (what differs between two timings
 * of it is the machine), so the gate does not run it. Only what the graph shows counts: a graph
 * with a module that may reach code or data outside it (a worker, a subprocess, a dynamic
 * import, a path from `import.meta`, a file read or fetch: {@link REACHES_OUT}), a symlinked
 * module, or no module in the tree is never taken for the same.
 */
export async function sameCode(file: string, rev: string, dir: URL = root): Promise<boolean> {
  const info = JSON.parse(await denoOutput(["info", "--json", file], dir)) as {
    modules: { specifier: string }[];
  };
  // deno info gives real paths; the tree may be reached through a symlink.
  const top = `${await Deno.realPath(fileURLToPath(dir))}/`;
  const modules: string[] = [];
  for (const m of info.modules) {
    if (!m.specifier.startsWith("file:")) continue; // npm: and jsr: modules: the lock file
    const path = fileURLToPath(m.specifier);
    if (!path.startsWith(top) || path.includes("/node_modules/")) continue;
    // A symlinked module (or folder): git compares the link, not what it points to.
    if (await Deno.realPath(path) !== path) return false;
    if (reachesOut(await Deno.readTextFile(path))) return false;
    modules.push(`:(literal)${path.slice(top.length)}`);
  }
  if (modules.length === 0) return false;
  const configs = [":(literal)deno.lock", ":(glob)**/deno.json"];
  if (await git(["diff", "--name-only", rev, "--", ...configs, ...modules], top) !== "") {
    return false;
  }
  // git diff does not see files git does not track: a new module (even in an ignored folder), a
  // new lock file or deno.json (ignored ones, as under node_modules, are not the project's).
  return await git(["ls-files", "--others", "--", ...modules], top) === "" &&
    await git(["ls-files", "--others", "--exclude-standard", "--", ...configs], top) === "";
}

/**
 * What in a module's code may run or read what its module graph does not show: workers,
 * subprocesses, dynamic imports, `import.meta` (but `.main`: paths built from a module's own
 * place), `Deno` file reads, fetches.
 */
export const REACHES_OUT =
  /\bWorker\b|\bDeno\.(Command|run|readFile|readTextFile|open|openSync|readFileSync|readTextFileSync)\b|\bstartDeno\b|\bimport\s*\(|\bimport\.meta\b(?!\.main\b)|\bfetch\s*\(/;

/**
 * Whether a module's code (its JSDoc blocks left out: examples there do not run) matches
 * {@link REACHES_OUT}. Line comments and everything else count: a false "reaches out" only
 * makes the gate run the file.
 */
function reachesOut(src: string): boolean {
  let inDoc = false;
  for (const line of src.split("\n")) {
    let code = line;
    const t = line.trim();
    if (inDoc) {
      const end = t.indexOf("*/");
      if (!t.startsWith("*")) inDoc = false; // not a JSDoc line after all: read it as code
      else if (end < 0) continue;
      else {
        inDoc = false;
        code = t.slice(end + 2); // what follows the block on its last line is code
      }
    } else if (t.startsWith("/**") && !t.includes("*/")) {
      inDoc = true;
      continue;
    }
    if (REACHES_OUT.test(code)) return true;
  }
  return false;
}

/** A workspace member's package name and exports (its deno.json). */
interface MemberConfig {
  name: string;
  exports: string | Record<string, string>;
}

/**
 * What the workspace's package names (`@deno-stores/shared/shard`, ...) resolve to in the tree
 * at `dir`, read from its deno.json files.
 */
export async function workspaceImports(dir: URL): Promise<Record<string, string>> {
  const rootConfig = JSON.parse(await Deno.readTextFile(new URL("deno.json", dir))) as {
    workspace: string[];
  };
  const out: Record<string, string> = {};
  for (const member of rootConfig.workspace) {
    const base = new URL(`${member.replace(/^\.\//, "").replace(/\/?$/, "/")}`, dir);
    const cfg = JSON.parse(await Deno.readTextFile(new URL("deno.json", base))) as MemberConfig;
    const exports = typeof cfg.exports === "string" ? { ".": cfg.exports } : cfg.exports;
    for (const [sub, target] of Object.entries(exports)) {
      out[sub === "." ? cfg.name : `${cfg.name}${sub.slice(1)}`] = new URL(target, base).href;
    }
  }
  return out;
}

/**
 * An import map for a gate process: this tree's imports, and for modules of the accepted
 * commit's worktree its own workspace packages. Without it, the worktree's
 * `@deno-stores/shared/...` imports would load this tree's shared code, and a regression there
 * would be compared with itself.
 */
export async function gateImportMap(
  tree: URL,
): Promise<{ imports: Record<string, string>; scopes: Record<string, Record<string, string>> }> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))) as {
    imports?: Record<string, string>;
  };
  return {
    imports: { ...config.imports, ...(await workspaceImports(root)) },
    scopes: { [tree.href]: await workspaceImports(tree) },
  };
}

const fmtNs = (ns: number) =>
  ns >= 1e6
    ? `${(ns / 1e6).toFixed(2)} ms`
    : ns >= 1e3
    ? `${(ns / 1e3).toFixed(2)} µs`
    : `${ns.toFixed(0)} ns`;

async function main(): Promise<void> {
  const args = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      runs: { type: "string" },
      /** Gate: alternating batches per process. */
      rounds: { type: "string", default: String(GATE.rounds) },
      baseline: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
      threshold: { type: "string", default: String(GATE.threshold) },
      files: { type: "string" },
      against: { type: "string" },
      /** Print the verdicts but exit 0 even on a regression (to look at a run by hand). */
      report: { type: "boolean", default: false },
    },
  });
  const v = args.values;
  const quick = v.quick || v.baseline || v.check;
  const runsWanted = Number(v.runs ?? (quick ? 3 : 1));
  const threshold = Number(v.threshold);
  if (v.baseline) {
    const commit = await git(["rev-parse", "HEAD"]);
    await Deno.writeTextFile(
      new URL("bench/baselines/bench.json", root),
      JSON.stringify({ commit, date: new Date().toISOString() }, null, 2) + "\n",
    );
    console.log(`accepted ${commit}: bench:gate now compares with it (commit the file)`);
    return;
  }
  const files = await benchFiles(quick, v.files);
  if (v.check) {
    const ok = await gate(
      files,
      Number(v.runs ?? GATE.processes),
      Number(v.rounds),
      threshold,
      v.against,
    );
    // 3 for a regression, 2 when there is nothing to compare with, 1 for any other failure.
    if (!ok && !v.report) Deno.exit(3);
    return;
  }
  console.log(`deno bench over ${files.length} files, ${runsWanted} run(s)`);
  const runs: { cases: Case[]; ratios: Map<string, number | undefined> }[] = [];
  let meta = { runtime: "", cpu: "" };
  for (let i = 0; i < runsWanted; i++) {
    const t0 = performance.now();
    const r = await runOnce(files);
    meta = r.meta;
    runs.push({ cases: r.cases, ratios: ratios(r.cases) });
    console.log(
      `run ${i + 1}: ${r.cases.length} cases in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
  }

  // Medians across runs, per case.
  const byKey = Map.groupBy(runs.flatMap((r) => r.cases), (c) => c.key);
  const rows = [...byKey.entries()].map(([key, cs]) => {
    const rs = runs.map((r) => r.ratios.get(key)).filter((x): x is number => x !== undefined);
    return {
      key,
      file: cs[0].file,
      group: cs[0].group,
      name: cs[0].name,
      baseline: cs[0].baseline,
      avgNs: median(cs.map((c) => c.avgNs)),
      ratio: rs.length > 0 ? median(rs) : undefined,
    };
  });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  await Deno.mkdir(new URL("bench/results/", root), { recursive: true });
  const result = {
    date: new Date().toISOString(),
    runtime: meta.runtime,
    cpu: meta.cpu,
    cores: navigator.hardwareConcurrency,
    quick,
    runs: runsWanted,
    files,
    cases: rows,
  };
  const out = new URL(`bench/results/bench-${stamp}${quick ? "-quick" : ""}.json`, root);
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");

  // The table.
  let lastFile = "";
  for (const r of rows) {
    if (r.file !== lastFile) console.log(`\n${r.file}`);
    lastFile = r.file;
    const ratio = r.baseline ? "baseline" : r.ratio === undefined ? "" : `${r.ratio.toFixed(3)}x`;
    console.log(
      `  ${r.group.slice(0, 28).padEnd(28)} ${r.name.slice(0, 58).padEnd(58)} ${
        fmtNs(r.avgNs).padStart(11)
      } ${ratio.padStart(9)}`,
    );
  }
  console.log(`\nwrote ${new URL(out).pathname.replace(new URL(root).pathname, "")}`);
}

/**
 * The gate: for each bench file, `processes` runs of bench/gate.ts, each loading this tree's and
 * the accepted commit's version of the file side by side and timing their cases in alternating
 * batches; which tree is imported first alternates from process to process.
 */
async function gate(
  files: string[],
  processes: number,
  rounds: number,
  threshold: number,
  against?: string,
): Promise<boolean> {
  const baselinePath = new URL("bench/baselines/bench.json", root);
  let rev: string, tree: Awaited<ReturnType<typeof worktree>>;
  try {
    rev = against ?? JSON.parse(await Deno.readTextFile(baselinePath)).commit as string;
    tree = await worktree(rev);
  } catch (e) {
    // No accepted commit to compare with (no baseline file, a shallow clone): exit 2, which CI
    // reports without failing. Anything that fails later (a bench file that throws) is fatal.
    console.error(`bench gate: no accepted commit to compare with: ${(e as Error).message}`);
    Deno.exit(2);
  }
  try {
    const importMap = new URL("bench-gate-import-map.json", tree.dir).pathname;
    await Deno.writeTextFile(importMap, JSON.stringify(await gateImportMap(tree.dir)));
    const measured: PairedCase[][] = [];
    for (const f of files) {
      try {
        await Deno.stat(new URL(f, tree.dir));
      } catch {
        console.log(`${f}: not in ${rev.slice(0, 12)}, skipped`);
        continue;
      }
      if (await sameCode(f, rev)) {
        console.log(`${f}: the same code as ${rev.slice(0, 12)}, not run`);
        continue;
      }
      const t0 = performance.now();
      for (let p = 0; p < processes; p++) {
        const args = [
          "run",
          "-A",
          "--v8-flags=--expose-gc",
          `--import-map=${importMap}`,
          new URL("bench/gate.ts", root).pathname,
          "--current",
          new URL(f, root).href,
          "--accepted",
          new URL(f, tree.dir).href,
          "--rounds",
          String(rounds),
        ];
        if (p % 2 === 1) args.push("--accepted-first");
        const text = await denoOutput(args, root);
        const doc = JSON.parse(text.slice(text.lastIndexOf('{"cases":'))) as { cases: Paired[] };
        measured[p] ??= [];
        for (const c of doc.cases) {
          measured[p].push({
            key: `${f}::${c.group}::${c.name}`,
            current: c.current,
            accepted: c.accepted,
          });
        }
      }
      console.log(`${f}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    // The raw batches, for whoever wants to look at the noise behind a verdict.
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    await Deno.mkdir(new URL("bench/results/", root), { recursive: true });
    await Deno.writeTextFile(
      new URL(`bench/results/gate-${stamp}.json`, root),
      JSON.stringify({
        date: new Date().toISOString(),
        against: rev,
        threshold,
        rounds,
        processes: measured,
      }) + "\n",
    );
    const verdicts = judge(measured, threshold);
    for (const x of verdicts.filter((x) => x.status !== "ok")) {
      const per = x.processes.map((r) => r.toFixed(2)).join(", ");
      console.log(
        `${x.status.toUpperCase().padEnd(9)} ${x.key}: ${((x.median - 1) * 100).toFixed(1)}% ` +
          `(${fmtNs(x.acceptedNs)} before; per process ${per})`,
      );
    }
    const count = (s: Verdict["status"]) => verdicts.filter((x) => x.status === s).length;
    console.log(
      `gate against ${rev.slice(0, 12)}: ${verdicts.length} cases, threshold ${
        (threshold * 100).toFixed(0)
      }%: ${count("regressed")} regressed, ${count("noisy")} too noisy to judge, ${
        count("improved")
      } improved`,
    );
    return count("regressed") === 0;
  } finally {
    await tree.remove();
  }
}

if (import.meta.main) await main();
