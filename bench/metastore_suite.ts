/**
 * The metastore's load suite, run side by side against etcd 3.4 through the v3 JSON API with the
 * same node count (both fsyncing), from one Deno client process:
 *
 * - large-scale: 50 clients × 1,000 ops, 50/50 put/get (linearizable);
 * - sustained: 20 clients at 100 ops/s each for 30 s (open loop: latency counts from the
 *   scheduled start, so a stall is not hidden by the client waiting);
 * - mixed: 40% put, 40% get, 10% range (prefix, limit 10), 10% delete, 30 clients, 20 s;
 * - watch scalability: 100 watch streams on one prefix, 10 events written: every event must
 *   reach every watcher; delivery latency from the moment its put was sent;
 * - txn throughput: 10 clients × 1,000 txns (compare on the key's version, put on success);
 * - micro benchmarks: one client, sequential, per operation (put, get, delete, txn, range of 100
 *   keys) with 100 B values, and put/get with 1 MB values;
 * - memory (peak and final RSS of every member) and CPU (user + system seconds of every
 *   member per scenario, from /proc).
 *
 *     deno run -A bench/metastore_suite.ts --nodes 1 [--scale 0.2] [--doc]
 *
 * `--scale` shrinks op counts and durations (CI smoke runs). Results go to
 * `bench/results/metastore-suite.json`; `--doc` also copies them to `docs/results/` and
 * regenerates docs/metastore-performance.md from both result files (this and
 * bench/metastore_compare.ts).
 *
 * @module
 */
import { parseArgs as parseFlags } from "node:util";
import { have, processCpuSeconds } from "./lib/process.ts";
import { type EtcdCluster, type EtcdKind, settle, startEtcdCluster } from "./lib/etcd_cluster.ts";
import { openEtcdStream } from "./lib/etcd_stream.ts";
import { Prng } from "../shared/sim/prng.ts";
import { writeMetastoreReport } from "./metastore_report.ts";

interface Args {
  nodes: number;
  scale: number;
  out: string;
  doc: boolean;
  kinds: EtcdKind[];
}

function parseArgs(argv: string[]): Args {
  const { values: v } = parseFlags({
    args: argv,
    options: {
      nodes: { type: "string", default: "1" },
      scale: { type: "string", default: "1" },
      out: { type: "string", default: "bench/results/metastore-suite.json" },
      doc: { type: "boolean", default: false },
      kinds: { type: "string", default: "etcd,metastore" },
    },
  });
  return {
    nodes: Number(v.nodes),
    scale: Number(v.scale),
    out: v.out,
    doc: v.doc,
    kinds: v.kinds.split(",") as EtcdKind[],
  };
}

/** What one scenario measured against one system. */
export interface ScenarioResult {
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** user + system CPU seconds of all members during the scenario. */
  cpuSeconds: number;
  /** Scenario-specific figures (watch deliveries, ...). */
  extra?: Record<string, number>;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

const b64 = (s: string) => btoa(s);
const key16 = (i: number) => b64(String(i).padStart(16, "0"));

/** Keep-alive JSON POST; throws on non-2xx. */
async function call(url: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** user + system CPU seconds of a process (Linux /proc). */
async function cpuSeconds(pid: number): Promise<number> {
  try {
    const { user, sys } = await processCpuSeconds(pid);
    return user + sys;
  } catch {
    return 0;
  }
}

/** Current and peak resident set size of a process in MiB. */
async function rssMiB(pid: number): Promise<{ rss: number; peak: number }> {
  try {
    const s = await Deno.readTextFile(`/proc/${pid}/status`);
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
    return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

async function clusterCpu(c: EtcdCluster): Promise<number> {
  let total = 0;
  for (const m of c.members) total += await cpuSeconds(m.child.pid);
  return total;
}

/** Runs `op` per client in a closed loop (count per client or until the deadline). */
async function measure(
  cluster: EtcdCluster,
  clients: number,
  plan: { opsPerClient?: number; durationMs?: number; ratePerClient?: number },
  op: (client: number, i: number) => Promise<void>,
): Promise<ScenarioResult> {
  const lat: number[] = [];
  let errors = 0;
  const cpu0 = await clusterCpu(cluster);
  const t0 = performance.now();
  const deadline = plan.durationMs === undefined ? Infinity : t0 + plan.durationMs;
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const interval = plan.ratePerClient ? 1000 / plan.ratePerClient : 0;
    // Open loop: op i is due at start + i * interval (spread over clients).
    const start = t0 + (interval * c) / clients;
    for (let i = 0; i < (plan.opsPerClient ?? Infinity); i++) {
      const due = interval > 0 ? start + i * interval : performance.now();
      if (due >= deadline) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      try {
        await op(c, i);
        lat.push(performance.now() - due);
      } catch {
        errors++;
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await clusterCpu(cluster)) - cpu0;
  lat.sort((a, b) => a - b);
  return {
    ops: lat.length,
    errors,
    seconds,
    opsPerSec: lat.length / seconds,
    p50Ms: pct(lat, 0.5),
    p99Ms: pct(lat, 0.99),
    maxMs: lat.length > 0 ? lat[lat.length - 1] : NaN,
    cpuSeconds: cpu,
  };
}

/** The watch scenario: `watchers` streams on one prefix, `events` puts, every delivery timed. */
async function watchScenario(
  cluster: EtcdCluster,
  url: string,
  watchers: number,
  events: number,
): Promise<ScenarioResult> {
  const prefix = "watch/";
  const written = new Map<string, number>(); // value → when its put was sent
  const lat: number[] = [];
  let delivered = 0;
  let created = 0;
  const streams = [];
  const cpu0 = await clusterCpu(cluster);
  const t0 = performance.now();
  for (let w = 0; w < watchers; w++) {
    const s = await openEtcdStream(url, "/v3/watch", (line, at) => {
      const r = JSON.parse(line).result ?? {};
      if (r.created) created++;
      for (const e of r.events ?? []) {
        const sentAt = written.get(atob(e.kv?.value ?? ""));
        if (sentAt !== undefined) {
          delivered++;
          lat.push(at - sentAt);
        }
      }
    });
    await s.send({ create_request: { key: b64(prefix), range_end: b64("watch0") } });
    streams.push(s);
  }
  const deadline = performance.now() + 10_000;
  while (created < watchers && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  let errors = 0;
  for (let i = 0; i < events; i++) {
    const value = `event-${i}`;
    written.set(value, performance.now());
    try {
      await call(url, "/v3/kv/put", { key: b64(`${prefix}${i}`), value: b64(value) });
    } catch {
      errors++;
    }
  }
  const expected = watchers * events;
  const end = performance.now() + 10_000;
  while (delivered < expected && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const seconds = (performance.now() - t0) / 1000;
  for (const s of streams) s.close();
  const cpu = (await clusterCpu(cluster)) - cpu0;
  lat.sort((a, b) => a - b);
  return {
    ops: delivered,
    errors,
    seconds,
    opsPerSec: delivered / seconds,
    p50Ms: pct(lat, 0.5),
    p99Ms: pct(lat, 0.99),
    maxMs: lat.length > 0 ? lat[lat.length - 1] : NaN,
    cpuSeconds: cpu,
    extra: { watchers, events, expected, delivered, created },
  };
}

/** Every scenario against one fresh cluster of `kind`. */
async function suite(kind: EtcdKind, args: Args) {
  const s = args.scale;
  const n = (x: number) => Math.max(1, Math.round(x * s));
  const cluster = await startEtcdCluster(kind, args.nodes);
  const results: Record<string, ScenarioResult> = {};
  try {
    const url = await cluster.leaderUrl();
    const v100 = b64("v".repeat(100));
    const put = async (i: number) => {
      await call(url, "/v3/kv/put", { key: key16(i % 10_000), value: v100 });
    };
    const get = async (i: number) => {
      await call(url, "/v3/kv/range", { key: key16(i % 10_000) });
    };
    const log = (name: string) =>
      console.error(
        `  ${kind} ${name}: ${results[name].opsPerSec.toFixed(0)} ops/s, p99 ${
          results[name].p99Ms.toFixed(2)
        } ms, errors ${results[name].errors}`,
      );

    results["large-scale"] = await measure(
      cluster,
      50,
      { opsPerClient: n(1000) },
      (c, i) => (i % 2 === 0 ? put(c * 1000 + i) : get(c * 1000 + i - 1)),
    );
    log("large-scale");
    results["sustained"] = await measure(
      cluster,
      20,
      { durationMs: n(30_000), ratePerClient: 100 },
      (c, i) => (i % 2 === 0 ? put(c * 7919 + i) : get(c * 7919 + i)),
    );
    log("sustained");
    const rnd = new Prng(42);
    results["mixed"] = await measure(cluster, 30, { durationMs: n(20_000) }, async () => {
      const k = rnd.nextInt(10_000);
      const roll = rnd.nextInt(10);
      if (roll < 4) await put(k);
      else if (roll < 8) await get(k);
      else if (roll < 9) {
        await call(url, "/v3/kv/range", { key: key16(k), range_end: b64("\x00"), limit: 10 });
      } else await call(url, "/v3/kv/deleterange", { key: key16(k) });
    });
    log("mixed");
    results["watch"] = await watchScenario(cluster, url, 100, 10);
    log("watch");
    results["txn"] = await measure(cluster, 10, { opsPerClient: n(1000) }, async (c) => {
      await call(url, "/v3/kv/txn", {
        compare: [{ key: key16(c), target: "VERSION", result: "GREATER", version: -1 }],
        success: [{ request_put: { key: key16(c), value: v100 } }],
        failure: [{ request_range: { key: key16(c) } }],
      });
    });
    log("txn");

    // Micro benchmarks: one client, sequential.
    const micro = async (name: string, count: number, op: (i: number) => Promise<unknown>) => {
      results[name] = await measure(cluster, 1, { opsPerClient: count }, async (_, i) => {
        await op(i);
      });
      log(name);
    };
    const microN = n(2000);
    await micro("micro put 100B", microN, (i) => put(i));
    await micro("micro get 100B", microN, (i) => get(i));
    await micro("micro txn 100B", microN, (i) =>
      call(url, "/v3/kv/txn", {
        compare: [{ key: key16(i % 100), target: "MOD", result: "GREATER", mod_revision: 0 }],
        success: [{ request_put: { key: key16(i % 100), value: v100 } }],
      }));
    await micro("micro range 100 keys", n(500), (i) =>
      call(url, "/v3/kv/range", {
        key: key16((i * 100) % 9_900),
        range_end: key16((i * 100) % 9_900 + 100),
      }));
    await micro("micro delete", microN, (i) => call(url, "/v3/kv/deleterange", { key: key16(i) }));
    const mb = b64("m".repeat(1 << 20));
    await micro(
      "micro put 1MB",
      n(50),
      (i) => call(url, "/v3/kv/put", { key: b64(`big/${i % 10}`), value: mb }),
    );
    await micro(
      "micro get 1MB",
      n(50),
      (i) => call(url, "/v3/kv/range", { key: b64(`big/${i % 10}`) }),
    );

    const memory = [];
    for (const m of cluster.members) memory.push(await rssMiB(m.child.pid));
    return { results, memory };
  } finally {
    await cluster.stop();
    await settle();
  }
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  if (args.kinds.includes("etcd") && !(await have("etcd"))) {
    console.error("etcd is not installed (apt-get install etcd-server)");
    Deno.exit(2);
  }
  const runs: Record<string, Awaited<ReturnType<typeof suite>>> = {};
  for (const kind of args.kinds) runs[kind] = await suite(kind, args);
  const etcdVersion = args.kinds.includes("etcd")
    ? new TextDecoder().decode(
      (await new Deno.Command("etcd", { args: ["--version"], stdout: "piped" }).output()).stdout,
    ).split("\n")[0]
    : "";
  const result = {
    date: new Date().toISOString(),
    etcdVersion,
    deno: Deno.version.deno,
    cpus: navigator.hardwareConcurrency,
    nodes: args.nodes,
    scale: args.scale,
    runs,
  };
  await Deno.mkdir("bench/results", { recursive: true });
  await Deno.writeTextFile(args.out, JSON.stringify(result, null, 2));
  if (args.doc) {
    await Deno.mkdir("docs/results", { recursive: true });
    await Deno.writeTextFile("docs/results/metastore-suite.json", JSON.stringify(result, null, 2));
    await writeMetastoreReport();
  }
  console.log(`wrote ${args.out}`);
}
