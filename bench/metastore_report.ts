/**
 * Renders docs/metastore-performance.md from the result files of bench/metastore_compare.ts and
 * bench/metastore_suite.ts (copied to docs/results/ by their `--doc` flag). Every figure on the
 * page comes from those files.
 *
 *     deno run -A bench/metastore_report.ts    # rewrite the page from docs/results/
 *
 * @module
 */
import { fmtFiles } from "./lib/process.ts";
import type { ScenarioResult } from "./metastore_suite.ts";

const COMPARE = "docs/results/metastore-compare.json";
const SUITE = "docs/results/metastore-suite.json";

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return null;
  }
}

interface CompareRow {
  nodes: number;
  op: string;
  etcd: { requestsPerSec: number; p50Ms: number; p99Ms: number; errors: number };
  metastore: { requestsPerSec: number; p50Ms: number; p99Ms: number; errors: number };
  ratio: number;
}

interface CompareResult {
  date: string;
  etcdVersion: string;
  deno: string;
  cpus: number;
  settings: Record<string, number>;
  rows: CompareRow[];
}

interface SuiteRun {
  results: Record<string, ScenarioResult>;
  memory: { rss: number; peak: number }[];
}

interface SuiteResult {
  date: string;
  etcdVersion: string;
  deno: string;
  cpus: number;
  nodes: number;
  scale: number;
  runs: Record<string, SuiteRun>;
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : "–");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "–");

function compareSection(c: CompareResult | null): string {
  if (c === null) return "_No comparison recorded yet: run `deno task bench:metastore --doc`._\n";
  const s = c.settings;
  const lines = [
    `Measured ${c.date.slice(0, 10)} on this machine (${c.cpus} CPUs), ${c.etcdVersion}, Deno ` +
    `${c.deno}. wrk, ${s.connections} connections, ${s.threads} threads, ${s.durationS} s per ` +
    `run after a 2 s warm-up, median of ${s.rounds} rounds (fresh clusters, alternating order); ` +
    `${s.keyBytes}-byte keys over ${s.keys} keys, ${s.valueBytes}-byte values; both fsync every ` +
    "write. GET is a linearizable range (no `serializable`). All requests go to the leader.",
    "",
    "| nodes | op | etcd req/s | metastore req/s | ratio | etcd p99 ms | metastore p99 ms | errors (etcd / ours) |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of c.rows) {
    lines.push(
      `| ${r.nodes} | ${r.op === "get" ? "GET (linearizable)" : "PUT"} | ` +
        `${f0(r.etcd.requestsPerSec)} | ${f0(r.metastore.requestsPerSec)} | ` +
        `**${f2(r.ratio)}x** | ${f2(r.etcd.p99Ms)} | ${f2(r.metastore.p99Ms)} | ` +
        `${r.etcd.errors} / ${r.metastore.errors} |`,
    );
  }
  return lines.join("\n") + "\n";
}

const SCENARIOS: [string, string][] = [
  ["large-scale", "large-scale: 50 clients × 1,000 ops, 50/50 put/get"],
  ["sustained", "sustained: 20 clients × 100 ops/s, 30 s (open loop)"],
  ["mixed", "mixed: 40% put, 40% get, 10% range, 10% delete, 30 clients, 20 s"],
  ["watch", "watch: 100 watchers × 10 events (deliveries/s; latency from the put)"],
  ["txn", "txn: 10 clients × 1,000 txns"],
  ["micro put 100B", "micro: put, 100 B"],
  ["micro get 100B", "micro: get, 100 B"],
  ["micro txn 100B", "micro: txn (compare + put), 100 B"],
  ["micro range 100 keys", "micro: range of 100 keys"],
  ["micro delete", "micro: delete"],
  ["micro put 1MB", "micro: put, 1 MB"],
  ["micro get 1MB", "micro: get, 1 MB"],
];

function suiteSection(s: SuiteResult | null): string {
  if (s === null) {
    return "_No suite run recorded yet: run `deno task bench:metastore:suite --doc`._\n";
  }
  const etcd = s.runs.etcd;
  const ours = s.runs.metastore;
  const lines = [
    `Measured ${s.date.slice(0, 10)}, ${s.nodes} node(s), ${s.etcdVersion}, Deno ${s.deno}, ` +
    `${s.cpus} CPUs, scale ${s.scale}. One Deno client process drives both systems in turn ` +
    "(fresh cluster each) through the JSON API; latencies are per operation as the client saw " +
    "them; CPU is user + system seconds of the server processes during the scenario.",
    "",
    "| scenario | etcd ops/s | metastore ops/s | ratio | etcd p50 / p99 ms | metastore p50 / p99 ms | errors (etcd / ours) | CPU s (etcd / ours) |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const [id, label] of SCENARIOS) {
    const a = etcd?.results[id];
    const b = ours?.results[id];
    if (!a || !b) continue;
    lines.push(
      `| ${label} | ${f0(a.opsPerSec)} | ${f0(b.opsPerSec)} | **${
        f2(b.opsPerSec / a.opsPerSec)
      }x** | ` +
        `${f2(a.p50Ms)} / ${f2(a.p99Ms)} | ${f2(b.p50Ms)} / ${f2(b.p99Ms)} | ` +
        `${a.errors} / ${b.errors} | ${f2(a.cpuSeconds)} / ${f2(b.cpuSeconds)} |`,
    );
  }
  const w = [etcd?.results.watch?.extra, ours?.results.watch?.extra];
  if (w[0] && w[1]) {
    lines.push(
      "",
      `Watch deliveries: etcd ${w[0].delivered} of ${w[0].expected}, metastore ${w[1].delivered} ` +
        `of ${w[1].expected}.`,
    );
  }
  if (etcd && ours) {
    const mem = (r: SuiteRun) =>
      r.memory.map((m) => `${f0(m.rss)} MiB (peak ${f0(m.peak)} MiB)`).join(", ");
    lines.push("", `Memory after the suite: etcd ${mem(etcd)}; metastore ${mem(ours)}.`);
  }
  return lines.join("\n") + "\n";
}

/** The whole page. */
export async function renderMetastoreReport(): Promise<string> {
  const compare = await readJson<CompareResult>(COMPARE);
  const suite = await readJson<SuiteResult>(SUITE);
  return `# Metastore performance

Side by side with etcd 3.4 on the same machine, through the same v3 JSON API, with the same number
of members, both fsyncing every write. Generated by \`bench/metastore_report.ts\` from
[results/metastore-compare.json](results/metastore-compare.json) and
[results/metastore-suite.json](results/metastore-suite.json); nothing here is typed in by hand.

## Throughput against etcd (\`deno task bench:metastore\`)

Goal: PUT and linearizable GET at least 1.5x etcd's, p99 no worse, zero errors, 1 and 3 nodes.

${compareSection(compare)}
## Load suite (\`deno task bench:metastore:suite\`)

${suiteSection(suite)}
## How to reproduce

\`\`\`sh
apt-get install -y etcd-server wrk
deno task bench:metastore --nodes 1,3 --rounds 5 --duration 10 --doc
deno task bench:metastore:suite --nodes 1 --doc
\`\`\`

Both start their own clusters on loopback (free ports, temporary data directories) and stop them
afterwards, with a \`sync\` and a pause between clusters. On a 2-CPU machine the three members of a
3-node cluster, the load generator and the kernel share two cores, so 3-node figures measure CPU
efficiency as much as replication.

## Reading the figures

- p99 moves from run to run on this shared 2-CPU machine, for etcd as for us: the raw figures of
  every round are in the result files, and the tables give medians of rounds.
- Write tails come mostly from V8's young-generation collections (history records and log entries
  survive and are copied out): the metastore runs with \`--max-semi-space-size=4\`, which shortens
  those pauses.
- The metastore keeps the MVCC history in memory (etcd keeps it in bbolt on disk), so it holds more
  resident memory for the same history; \`AUTO_COMPACTION_RETENTION\` and \`QUOTA_BACKEND_BYTES\`
  bound it.
`;
}

/** Writes the page and formats it as `deno fmt` would (so `deno fmt --check` stays green). */
export async function writeMetastoreReport(): Promise<void> {
  const path = "docs/metastore-performance.md";
  await Deno.writeTextFile(path, await renderMetastoreReport());
  await fmtFiles(path);
}

if (import.meta.main) {
  await writeMetastoreReport();
  console.log("wrote docs/metastore-performance.md");
}
