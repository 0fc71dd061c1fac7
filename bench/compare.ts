/**
 * `deno task bench:compare [--quick] [--doc] [--only a,b]`: every peer comparison in one go, each
 * service's own script in turn (ours and the peer measured in the same run, alternating rounds),
 * then docs/benchmarks.md and .html regenerated from their results (`bench:doc`). A peer that is
 * not installed is reported as skipped, never silently dropped; a script that fails is reported
 * and the others still run (exit 1 at the end).
 *
 * | service   | peer                         | script                     |
 * | --------- | ---------------------------- | -------------------------- |
 * | tasks     | a bare `Deno.serve` (wrk)    | bench/tasks_compare.ts     |
 * | metastore | etcd 3.4 (`etcd`, wrk)       | bench/metastore_compare.ts |
 * | kv        | Redis 7 (`redis-server`)     | bench/kv_compare.ts        |
 * | log       | dd, NATS JetStream           | bench/log_compare.ts       |
 * | kv-events | its targets (no peer here)   | bench/kv_events.ts         |
 *
 * With `--doc` each script also rewrites its own docs/<service>-performance.md.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { have } from "./lib/process.ts";

const root = new URL("../", import.meta.url);

interface Comparison {
  service: string;
  /** Commands that must be on the PATH (the peer and the load tool). */
  needs: string[];
  script: string;
  /** Arguments of a quick run (default `--quick`); `--doc` is passed through as it is. */
  quickArgs?: string[];
  denoFlags?: string[];
}

const COMPARISONS: Comparison[] = [
  {
    service: "tasks",
    needs: ["wrk"],
    script: "bench/tasks_compare.ts",
    quickArgs: ["--rounds", "1", "--duration", "3"],
  },
  {
    service: "metastore",
    needs: ["etcd", "wrk"],
    script: "bench/metastore_compare.ts",
    quickArgs: ["--rounds", "1", "--duration", "3", "--nodes", "1"],
  },
  { service: "kv", needs: ["redis-server", "redis-benchmark"], script: "bench/kv_compare.ts" },
  {
    service: "log",
    needs: ["dd", "wrk"],
    denoFlags: ["--v8-flags=--expose-gc"],
    script: "bench/log_compare.ts",
  },
  {
    service: "kv-events",
    needs: [],
    denoFlags: ["--v8-flags=--expose-gc"],
    script: "bench/kv_events.ts",
  },
];

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      doc: { type: "boolean", default: false },
      only: { type: "string" },
    },
  });
  const only = v.only?.split(",");
  const outcome: { service: string; result: string }[] = [];
  for (const c of COMPARISONS) {
    if (only !== undefined && !only.includes(c.service)) continue;
    const missing: string[] = [];
    for (const n of c.needs) if (!(await have(n))) missing.push(n);
    if (missing.length > 0) {
      console.log(`== ${c.service}: skipped, ${missing.join(" and ")} not installed`);
      outcome.push({ service: c.service, result: `skipped (${missing.join(", ")} not installed)` });
      continue;
    }
    console.log(`== ${c.service}`);
    const t0 = performance.now();
    const status = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        ...(c.denoFlags ?? []),
        c.script,
        ...(v.quick ? c.quickArgs ?? ["--quick"] : []),
        ...(v.doc ? ["--doc"] : []),
      ],
      cwd: root,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    outcome.push({
      service: c.service,
      result: status.success ? `done in ${s} s` : `FAILED (exit ${status.code})`,
    });
  }
  if (v.doc) {
    await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "bench/benchmarks_doc.ts"],
      cwd: root,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn().status;
  }
  console.log("\n| service | comparison |\n| --- | --- |");
  for (const o of outcome) console.log(`| ${o.service} | ${o.result} |`);
  if (outcome.some((o) => o.result.startsWith("FAILED"))) Deno.exit(1);
}

if (import.meta.main) await main();
