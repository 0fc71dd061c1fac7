/**
 * Runs many simulation seeds: `deno run -A shared/raft/sim/main.ts --seeds N [--start S]
 * [--nodes 3|5] [--duration MS]`. Without `--nodes`, even seeds use 3 nodes and odd seeds 5.
 * Exits 1 after printing every failing seed with its replay command.
 *
 * @module
 */

import { runSimulation, type SimResult } from "./cluster.ts";

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  if (i >= 0) return Deno.args[i + 1];
  const eq = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

const seeds = Number(arg("seeds") ?? "100");
const start = Number(arg("start") ?? "1");
const nodesArg = arg("nodes");
const duration = arg("duration") ? Number(arg("duration")) : undefined;
if (!Number.isSafeInteger(seeds) || seeds < 1 || !Number.isSafeInteger(start)) {
  console.error("usage: main.ts --seeds N [--start S] [--nodes 3|5] [--duration MS]");
  Deno.exit(2);
}
if (nodesArg !== undefined && nodesArg !== "3" && nodesArg !== "5") {
  console.error("--nodes must be 3 or 5");
  Deno.exit(2);
}

const t0 = performance.now();
const failures: SimResult[] = [];
const total = { ops: 0, acked: 0, crashes: 0, midWriteCrashes: 0, snapshotsSent: 0 };
for (let seed = start; seed < start + seeds; seed++) {
  const nodes = nodesArg ? Number(nodesArg) : (seed % 2 === 0 ? 3 : 5);
  const r = await runSimulation({ seed, nodes, durationMs: duration });
  total.ops += r.stats.ops;
  total.acked += r.stats.acked;
  total.crashes += r.stats.crashes;
  total.midWriteCrashes += r.stats.midWriteCrashes;
  total.snapshotsSent += r.stats.snapshotsSent;
  if (!r.ok) {
    failures.push(r);
    console.error(r.error);
  }
  const done = seed - start + 1;
  if (done % 100 === 0 || done === seeds) {
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${done}/${seeds} seeds, ${failures.length} failed, ${s} s`);
  }
}
console.log(
  `seeds ${start}..${start + seeds - 1}: ${
    seeds - failures.length
  } passed, ${failures.length} failed; ` +
    `client ops ${total.ops} (acked ${total.acked}), crashes ${total.crashes} ` +
    `(mid-write ${total.midWriteCrashes}), snapshots sent ${total.snapshotsSent}`,
);
if (failures.length > 0) {
  console.error(`failing seeds: ${failures.map((f) => f.seed).join(", ")}`);
  Deno.exit(1);
}
