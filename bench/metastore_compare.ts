/**
 * The metastore side by side with etcd 3.4 on loopback, through the v3 JSON API, with wrk:
 * the same node count (1 and 3), both fsyncing, 50 connections, 16-byte keys over a 10k
 * keyspace, 100-byte values. Two workloads against the leader: PUT and linearizable GET
 * (range without `serializable`). Each round starts a fresh cluster of each kind, in
 * alternating order; the median of `--rounds` is reported with the ratio ours/etcd.
 *
 *     deno run -A bench/metastore_compare.ts --nodes 1,3 --rounds 3 --duration 10
 *
 * Needs `etcd` and `wrk` on the PATH (`apt-get install etcd-server wrk`). Writes the raw
 * results to `bench/results/metastore-compare.json`; `--doc` also copies them to
 * `docs/results/` and regenerates docs/metastore-performance.md.
 *
 * @module
 */
import { parseArgs as parseFlags } from "node:util";
import { have, median, runWrk, type WrkResult } from "./lib/process.ts";
import { type EtcdKind, settle, startEtcdCluster } from "./lib/etcd_cluster.ts";
import { writeMetastoreReport } from "./metastore_report.ts";

interface Args {
  nodes: number[];
  rounds: number;
  durationS: number;
  connections: number;
  threads: number;
  keys: number;
  valueBytes: number;
  out: string;
  doc: boolean;
}

function parseArgs(argv: string[]): Args {
  const { values: v } = parseFlags({
    args: argv,
    options: {
      nodes: { type: "string", default: "1,3" },
      rounds: { type: "string", default: "3" },
      duration: { type: "string", default: "10" },
      connections: { type: "string", default: "50" },
      threads: { type: "string", default: "2" },
      keys: { type: "string", default: "10000" },
      "value-bytes": { type: "string", default: "100" },
      out: { type: "string", default: "bench/results/metastore-compare.json" },
      doc: { type: "boolean", default: false },
    },
  });
  return {
    nodes: v.nodes.split(",").map(Number),
    rounds: Number(v.rounds),
    durationS: Number(v.duration),
    connections: Number(v.connections),
    threads: Number(v.threads),
    keys: Number(v.keys),
    valueBytes: Number(v["value-bytes"]),
    out: v.out,
    doc: v.doc,
  };
}

const OPS = ["put", "get"] as const;
type Op = typeof OPS[number];
const script = new URL("./wrk/etcd_kv.lua", import.meta.url).pathname;

/** One round of one kind: a fresh cluster, PUT then GET. */
async function measure(
  kind: EtcdKind,
  nodes: number,
  args: Args,
): Promise<Record<Op, WrkResult>> {
  const cluster = await startEtcdCluster(kind, nodes);
  try {
    const url = await cluster.leaderUrl();
    const out = {} as Record<Op, WrkResult>;
    for (const op of OPS) {
      const env = {
        ...Deno.env.toObject(),
        ETCD_OP: op,
        ETCD_KEYS: String(args.keys),
        ETCD_VALUE_BYTES: String(args.valueBytes),
      };
      // Short warm-up (JIT, connection set-up, keyspace filled before GETs).
      await runWrk(url, {
        connections: args.connections,
        threads: args.threads,
        durationS: 2,
        script,
        env,
      });
      out[op] = await runWrk(url, {
        connections: args.connections,
        threads: args.threads,
        durationS: args.durationS,
        script,
        env,
      });
      console.error(
        `  ${kind} ${nodes}n ${op}: ${out[op].requestsPerSec.toFixed(0)} req/s, ` +
          `p99 ${out[op].latencyMs.p99.toFixed(2)} ms, errors ${out[op].errors + out[op].non2xx}`,
      );
    }
    return out;
  } finally {
    await cluster.stop();
    await settle();
  }
}

/** Median result of a list of wrk runs (each figure on its own). */
function medianOf(runs: WrkResult[]) {
  return {
    requestsPerSec: median(runs.map((r) => r.requestsPerSec)),
    p50Ms: median(runs.map((r) => r.latencyMs.p50)),
    p99Ms: median(runs.map((r) => r.latencyMs.p99)),
    errors: runs.reduce((s, r) => s + r.errors + r.non2xx, 0),
    requests: runs.reduce((s, r) => s + r.requests, 0),
  };
}

/** Runs the comparison and returns the result object (also what is written to disk). */
export async function compare(args: Args) {
  const etcdVersion = new TextDecoder().decode(
    (await new Deno.Command("etcd", { args: ["--version"], stdout: "piped" }).output()).stdout,
  ).split("\n")[0];
  const rows = [];
  for (const nodes of args.nodes) {
    const runs: Record<EtcdKind, Record<Op, WrkResult>[]> = { etcd: [], metastore: [] };
    for (let round = 0; round < args.rounds; round++) {
      const order: EtcdKind[] = round % 2 === 0 ? ["etcd", "metastore"] : ["metastore", "etcd"];
      for (const kind of order) runs[kind].push(await measure(kind, nodes, args));
    }
    for (const op of OPS) {
      const etcd = medianOf(runs.etcd.map((r) => r[op]));
      const ours = medianOf(runs.metastore.map((r) => r[op]));
      rows.push({
        nodes,
        op,
        etcd,
        metastore: ours,
        ratio: ours.requestsPerSec / etcd.requestsPerSec,
        p99Ratio: ours.p99Ms / etcd.p99Ms,
        raw: { etcd: runs.etcd.map((r) => r[op]), metastore: runs.metastore.map((r) => r[op]) },
      });
    }
  }
  return {
    date: new Date().toISOString(),
    etcdVersion,
    deno: Deno.version.deno,
    cpus: navigator.hardwareConcurrency,
    settings: {
      rounds: args.rounds,
      durationS: args.durationS,
      connections: args.connections,
      threads: args.threads,
      keys: args.keys,
      keyBytes: 16,
      valueBytes: args.valueBytes,
    },
    rows,
  };
}

/** The result as a Markdown table. */
export function table(result: Awaited<ReturnType<typeof compare>>): string {
  const lines = [
    "| nodes | op | etcd req/s | metastore req/s | ratio | etcd p99 ms | metastore p99 ms | errors (etcd / ours) |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of result.rows) {
    lines.push(
      `| ${r.nodes} | ${r.op === "get" ? "GET (linearizable)" : "PUT"} | ` +
        `${r.etcd.requestsPerSec.toFixed(0)} | ${r.metastore.requestsPerSec.toFixed(0)} | ` +
        `**${r.ratio.toFixed(2)}x** | ${r.etcd.p99Ms.toFixed(2)} | ${
          r.metastore.p99Ms.toFixed(2)
        } | ` +
        `${r.etcd.errors} / ${r.metastore.errors} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  for (const tool of ["etcd", "wrk"]) {
    if (!(await have(tool))) {
      console.error(`${tool} is not installed (apt-get install etcd-server wrk)`);
      Deno.exit(2);
    }
  }
  const result = await compare(args);
  await Deno.mkdir("bench/results", { recursive: true });
  await Deno.writeTextFile(args.out, JSON.stringify(result, null, 2));
  if (args.doc) {
    await Deno.mkdir("docs/results", { recursive: true });
    await Deno.writeTextFile(
      "docs/results/metastore-compare.json",
      JSON.stringify(result, null, 2),
    );
    await writeMetastoreReport();
  }
  console.log(table(result));
}
