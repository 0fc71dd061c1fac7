/**
 * kv against Redis, side by side on this machine, in one run.
 *
 * Starts `redis-server` (no persistence) and our server (services/kv/main.ts) on loopback, then:
 * 1. `redis-benchmark -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,
 *    mset -n 200000` at `-c 50 -P 1` and `-c 50 -P 16`, and `-c 1 -P 1` (20,000 requests: it is
 *    latency-bound), against each, in three rounds with the servers alternating (this machine
 *    drifts, so each figure is the median of its rounds; SET, GET and INCR at -c 50, the
 *    targets, in seven): ops/s, p50, p99, and the ratio. SET, GET and INCR run on their own
 *    in every round, with the server's CPU time per request (/proc/<pid>/stat); at -c 50 a third
 *    server takes its turn in each round: ours with RESP_IO=deno (Deno's socket ops instead of
 *    the default native epoll loop);
 * 2. the seed's own tests through our TypeScript client (services/kv/client.ts), against each:
 *    one client doing 10,000 SET / GET / mixed / INCR; a pool of 10 workers; the pool's overhead
 *    (acquire + release per command against a held connection); the latency distribution;
 * 3. SET, GET and INCR at `-c 50 -P 1` and `-P 16` against our server with IO_THREADS=2 (worker
 *    isolates for socket I/O), one round, beside the medians above;
 * 4. memory per key, on freshly started servers: 1,000,000 keys of 16-byte names and 100-byte
 *    values, `used_memory` after minus before (ours after a full GC: `MEMORY PURGE` with
 *    --expose-gc), and RSS growth.
 *
 * Writes docs/results/kv.json and, with --doc, docs/kv-performance.md (ratios against the
 * issue's targets).
 *
 * Run: `deno task bench:kv [--quick] [--doc]`
 *
 * @module
 */
import { parseArgs } from "node:util";
import { KvConnection, KvPool } from "../services/kv/client.ts";
import { fmtFiles, freePort, median, pct, processCpuSeconds, startDeno } from "./lib/process.ts";

const args = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    doc: { type: "boolean", default: false },
    render: { type: "boolean", default: false },
  },
});
const QUICK = args.values.quick;
const root = new URL("../", import.meta.url);
const td = new TextDecoder();

const TESTS = "set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset";
/** The tests the issue sets targets for. */
const TARGET_TESTS = "set,get,incr";
const OTHER_TESTS = TESTS.split(",").filter((t) => !TARGET_TESTS.split(",").includes(t)).join(",");
const N = QUICK ? 20_000 : 200_000;

interface Row {
  rps: number;
  p50: number;
  p99: number;
  /** The server's CPU µs per request (user + system) over the run of the target tests. */
  cpuUs?: number;
}
/**
 * Per mode and test: the medians, and each round's kv/Redis ratio (the two ran back to back in
 * the round), which shows how far one round moves.
 */
type Table = Record<string, Record<string, { kv: Row; redis: Row; roundRatios?: number[] }>>;

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

interface Server {
  /** `kv` and `redis` fill the main tables; other kv variants their own section. */
  name: string;
  port: number;
  stop(): Promise<void>;
  pid: number;
}

async function startRedis(): Promise<Server> {
  const port = freePort();
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitPort(port);
  return {
    name: "redis",
    port,
    pid: child.pid,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** Our server; `env` picks a variant (RESP_IO, IO_THREADS), named `name`. */
async function startKv(name = "kv", env: Record<string, string> = {}): Promise<Server> {
  const port = freePort();
  const svc = await startDeno(new URL("services/kv/main.ts", root).pathname, {
    RESP_PORT: String(port),
    LOG_LEVEL: "warn",
    ...env,
  }, { denoFlags: ["--v8-flags=--expose-gc"] });
  return { name, port, pid: svc.child.pid, stop: svc.stop };
}

async function redisBenchmark(
  port: number,
  extra: string[],
  tests = TESTS,
): Promise<Record<string, Row>> {
  const r = await new Deno.Command("redis-benchmark", {
    args: ["-p", String(port), "-t", tests, "-n", String(N), "--csv", ...extra],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(`redis-benchmark failed: ${td.decode(r.stderr)}`);
  const out: Record<string, Row> = {};
  for (const line of td.decode(r.stdout).split("\n").slice(1)) {
    const f = line.split(",").map((x) => x.replaceAll('"', ""));
    if (f.length < 7) continue;
    out[f[0]] = { rps: Number(f[1]), p50: Number(f[4]), p99: Number(f[6]) };
  }
  return out;
}

/** Per field, the median over rounds. */
function medianRow(rounds: Record<string, Row>[], test: string): Row {
  const have = rounds.filter((r) => r[test] !== undefined);
  const med = (f: (r: Row) => number) => median(have.map((r) => f(r[test])));
  const row: Row = { rps: med((r) => r.rps), p50: med((r) => r.p50), p99: med((r) => r.p99) };
  const cpu = have.map((r) => r[test].cpuUs).filter((x) => x !== undefined);
  if (cpu.length > 0) row.cpuUs = median(cpu);
  return row;
}

/**
 * One round's redis-benchmark runs against `s`: the target tests on their own, with the server's
 * CPU time per request measured over them, then (when `all`) the other tests.
 */
async function benchRound(s: Server, extra: string[], all: boolean): Promise<Record<string, Row>> {
  const before = await processCpuSeconds(s.pid);
  const r = await redisBenchmark(s.port, extra, TARGET_TESTS);
  const after = await processCpuSeconds(s.pid);
  const requests = Object.keys(r).length * requestsOf(extra);
  const cpuUs = (after.user + after.sys - before.user - before.sys) / requests * 1e6;
  for (const row of Object.values(r)) row.cpuUs = cpuUs;
  if (!all) return r;
  return { ...r, ...await redisBenchmark(s.port, extra, OTHER_TESTS) };
}

/** Requests per test of a redis-benchmark run (its -n, or ours). */
function requestsOf(extra: string[]): number {
  const i = extra.indexOf("-n");
  return i >= 0 ? Number(extra[i + 1]) : N;
}

/** The seed's client-side tests through our client. */
async function clientSuite(port: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const OPS = QUICK ? 2_000 : 10_000;
  const c = await KvConnection.connect({ port });
  try {
    await c.command("FLUSHALL");
    const time = async (name: string, op: (i: number) => Promise<unknown>) => {
      const lat = new Float64Array(OPS);
      const t0 = performance.now();
      for (let i = 0; i < OPS; i++) {
        const s = performance.now();
        await op(i);
        lat[i] = (performance.now() - s) * 1000;
      }
      const el = performance.now() - t0;
      lat.sort();
      out[`${name}.ops_per_s`] = OPS / (el / 1000);
      out[`${name}.p50_us`] = pct(lat, 50);
      out[`${name}.p99_us`] = pct(lat, 99);
      if (name === "mixed") {
        out["latency.p90_us"] = pct(lat, 90);
        out["latency.p99_9_us"] = pct(lat, 99.9);
      }
    };
    const value = "v".repeat(100);
    await time("set", (i) => c.command("SET", `key:${i}`, value));
    await time("get", (i) => c.command("GET", `key:${i}`));
    await time(
      "mixed",
      (i) => i % 2 === 0 ? c.command("SET", `key:${i}`, value) : c.command("GET", `key:${i - 1}`),
    );
    await time("incr", () => c.command("INCR", "counter"));
  } finally {
    c.close();
  }
  // A pool of 10 workers, each doing OPS / 10 SET+GET pairs.
  const pool = new KvPool({ port, size: 10 });
  try {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 10 }, (_, w) =>
      pool.with(async (conn) => {
        for (let i = 0; i < OPS / 10; i++) {
          await conn.command("SET", `w${w}:${i}`, "x");
          await conn.command("GET", `w${w}:${i}`);
        }
      })));
    out["pool10.ops_per_s"] = (2 * OPS) / ((performance.now() - t0) / 1000);
    // Overhead: the same commands, acquiring and releasing per command vs holding one.
    const held = await pool.acquire();
    let t = performance.now();
    for (let i = 0; i < OPS; i++) await held.command("PING");
    const heldUs = ((performance.now() - t) * 1000) / OPS;
    pool.release(held);
    t = performance.now();
    for (let i = 0; i < OPS; i++) await pool.command("PING");
    const pooledUs = ((performance.now() - t) * 1000) / OPS;
    out["pool.overhead_us_per_command"] = pooledUs - heldUs;
  } finally {
    await pool.close();
  }
  return out;
}

/** used_memory and RSS growth per key for 1,000,000 keys of 16-byte names, 100-byte values. */
async function memoryPerKey(server: Server): Promise<Record<string, number>> {
  const KEYS = QUICK ? 100_000 : 1_000_000;
  const c = await KvConnection.connect({ port: server.port });
  try {
    await c.command("FLUSHALL");
    const used = async () => {
      if (server.name === "kv") await c.command("MEMORY", "PURGE");
      const info = await c.command("INFO", "memory") as string;
      return Number(/used_memory:(\d+)/.exec(info)![1]);
    };
    const rss = async () => {
      const status = await Deno.readTextFile(`/proc/${server.pid}/status`);
      return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
    };
    const u0 = await used(), r0 = await rss();
    const value = "x".repeat(100);
    const BATCH = 1000;
    for (let i = 0; i < KEYS; i += BATCH) {
      const cmds: string[][] = [];
      for (let j = i; j < i + BATCH; j++) {
        cmds.push(["SET", `key:${String(j).padStart(12, "0")}`, value]);
      }
      await c.pipeline(cmds);
    }
    const u1 = await used(), r1 = await rss();
    return {
      used_bytes_per_key: (u1 - u0) / KEYS,
      rss_bytes_per_key: (r1 - r0) / KEYS,
      keys: KEYS,
    };
  } finally {
    c.close();
  }
}

/** Our variants beside the default, in the -c 50 rounds (target tests only). */
const VARIANTS: Record<string, Record<string, string>> = {
  kv_resp_io_deno: { RESP_IO: "deno" },
};

async function main(): Promise<void> {
  const table: Table = {};
  const client: Record<string, Record<string, number>> = {};
  const memory: Record<string, Record<string, number>> = {};
  const ioThreads: Record<string, Row> = {};
  /** Variant name -> `mode.test` -> the median row. */
  const variants: Record<string, Record<string, Row>> = {};
  const ROUNDS = QUICK ? 1 : 3;
  /**
   * SET, GET and INCR at -c 50 (the targets) run more rounds: their ratios sit near the
   * thresholds, and one round moves by tens of percent.
   */
  const TARGET_ROUNDS = QUICK ? 1 : 7;
  let servers = [await startKv(), await startRedis()];
  const extras = await Promise.all(
    Object.entries(VARIANTS).map(([name, env]) => startKv(name, env)),
  );
  try {
    // Mode, redis-benchmark arguments, rounds (the first ROUNDS run every test, the rest only
    // the target tests), whether the variants run too.
    const modes: [string, string[], number, boolean][] = [
      ["c50_p1", ["-c", "50", "-P", "1"], TARGET_ROUNDS, true],
      ["c50_p16", ["-c", "50", "-P", "16"], TARGET_ROUNDS, true],
      ["c1_p1", ["-c", "1", "-P", "1", "-n", String(QUICK ? 5_000 : 20_000)], ROUNDS, false],
    ];
    for (const [mode, extra, rounds, withVariants] of modes) {
      table[mode] = {};
      // Rounds, the servers taking turns at going first; each figure is the median of its
      // rounds (this machine drifts by tens of percent from one minute to the next).
      const all = withVariants ? [...servers, ...extras] : servers;
      const runs: Record<string, Record<string, Row>[]> = {};
      for (let round = 0; round < rounds; round++) {
        const k = round % all.length;
        for (const s of [...all.slice(k), ...all.slice(0, k)]) {
          const c = await KvConnection.connect({ port: s.port });
          await c.command("FLUSHALL");
          c.close();
          const primary = s.name === "kv" || s.name === "redis";
          const r = await benchRound(s, extra, primary && round < ROUNDS);
          (runs[s.name] ??= []).push(r);
          console.log(`${mode} round ${round + 1} ${s.name}: SET ${r.SET?.rps} GET ${r.GET?.rps}`);
        }
      }
      for (const test of Object.keys(runs.redis[0])) {
        if (runs.kv[0][test] === undefined) continue;
        const roundRatios = runs.kv.flatMap((r, i) => {
          const redis = runs.redis[i]?.[test];
          return r[test] === undefined || redis === undefined ? [] : [r[test].rps / redis.rps];
        });
        table[mode][test] = {
          kv: medianRow(runs.kv, test),
          redis: medianRow(runs.redis, test),
          roundRatios,
        };
      }
      for (const s of withVariants ? extras : []) {
        for (const test of Object.keys(runs[s.name][0])) {
          (variants[s.name] ??= {})[`${mode}.${test}`] = medianRow(runs[s.name], test);
        }
      }
    }
    for (const s of extras) await s.stop();
    extras.length = 0;
    for (const s of servers) client[s.name] = await clientSuite(s.port);
    // IO_THREADS=2 (worker isolates for socket I/O), SET/GET/INCR, against the same Redis.
    const io = await startKv("kv_io_threads", { IO_THREADS: "2" });
    try {
      for (const [mode, extra] of modes.slice(0, 2)) {
        const r = await benchRound(io, extra, false);
        for (const [test, row] of Object.entries(r)) ioThreads[`${mode}.${test}`] = row;
      }
    } finally {
      await io.stop();
    }
    // Memory on fresh servers: no garbage from the other phases in the baseline.
    for (const s of servers) await s.stop();
    servers = [await startKv(), await startRedis()];
    for (const s of servers) {
      memory[s.name] = await memoryPerKey(s);
      console.log(`${s.name}: memory ${JSON.stringify(memory[s.name])}`);
    }
  } finally {
    for (const s of [...servers, ...extras]) await s.stop();
  }
  const result = {
    date: new Date().toISOString().slice(0, 10),
    deno: Deno.version.deno,
    redis: await redisVersion(),
    quick: QUICK,
    requests: N,
    rounds: ROUNDS,
    targetRounds: TARGET_ROUNDS,
    redisBenchmark: table,
    variants,
    ioThreads,
    client,
    memory,
  };
  await Deno.mkdir(new URL("docs/results/", root), { recursive: true });
  await Deno.writeTextFile(
    new URL("docs/results/kv.json", root),
    JSON.stringify(result, null, 2) + "\n",
  );
  console.log("wrote docs/results/kv.json");
  if (args.values.doc) await render();
}

async function redisVersion(): Promise<string> {
  const r = await new Deno.Command("redis-server", { args: ["--version"], stdout: "piped" })
    .output();
  return /v=([0-9.]+)/.exec(td.decode(r.stdout))?.[1] ?? "unknown";
}

const fmt = (n: number, d = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

/** docs/kv-performance.md from docs/results/kv.json. */
async function render(): Promise<void> {
  const r = JSON.parse(await Deno.readTextFile(new URL("docs/results/kv.json", root)));
  const t: Table = r.redisBenchmark;
  const lines: string[] = [
    "# kv performance",
    "",
    `Generated by \`deno task bench:kv --doc\` (bench/kv_compare.ts) on ${r.date}, Deno ${r.deno}, ` +
    `Redis ${r.redis} (\`redis-server --save "" --appendonly no\`), this 2-core machine, ` +
    `redis-benchmark sharing the cores with the server. Both servers run in the same run, in ` +
    `rounds with the servers alternating; each figure is the median of its rounds (${
      r.rounds ?? 3
    }; SET, GET and INCR at -c 50: ${r.targetRounds ?? 3}). Do not edit by hand: rerun the script.${
      r.quick ? " **Quick run** (fewer requests)." : ""
    }`,
    "",
    "## Against the issue's targets",
    "",
    "The last column is the lowest and the highest kv/Redis ratio of a single round (the two " +
    "servers run back to back in a round): how far one round moves on this machine.",
    "",
    "| target | measured | met | one round's ratio, lowest-highest |",
    "| --- | --- | --- | --- |",
  ];
  const ratio = (mode: string, test: string) =>
    t[mode]?.[test] ? t[mode][test].kv.rps / t[mode][test].redis.rps : NaN;
  const spread = (mode: string, test: string) => {
    const rs = t[mode]?.[test]?.roundRatios ?? [];
    return rs.length === 0 ? "" : `${fmt(Math.min(...rs), 2)}-${fmt(Math.max(...rs), 2)}x`;
  };
  for (const test of ["SET", "GET", "INCR"]) {
    const x = ratio("c50_p1", test);
    lines.push(
      `| ${test} ops/s >= Redis at -c 50 -P 1 | ${fmt(x, 3)}x | ${x >= 1 ? "yes" : "**no**"} | ${
        spread("c50_p1", test)
      } |`,
    );
  }
  for (const test of ["SET", "GET", "INCR"]) {
    const x = ratio("c50_p16", test);
    lines.push(
      `| ${test} ops/s >= 0.7x Redis at -c 50 -P 16 | ${fmt(x, 3)}x | ${
        x >= 0.7 ? "yes" : "**no**"
      } | ${spread("c50_p16", test)} |`,
    );
  }
  // The target's p99 is for the commands it names (LRANGE_600 replies are 600 elements long).
  const p99 = Math.max(...["SET", "GET", "INCR"].map((k) => t.c50_p1?.[k]?.kv.p99 ?? NaN));
  lines.push(
    `| p99 < 2 ms at -c 50 -P 1 (worst of SET, GET, INCR) | ${fmt(p99, 3)} ms | ${
      p99 < 2 ? "yes" : "**no**"
    } | |`,
  );
  const mem = r.memory.kv.used_bytes_per_key / r.memory.redis.used_bytes_per_key;
  lines.push(
    `| memory per key <= 2x Redis (used_memory) | ${fmt(mem, 2)}x | ${
      mem <= 2 ? "yes" : "**no**"
    } | |`,
  );
  for (
    const [mode, title] of [["c50_p1", "-c 50 -P 1"], ["c50_p16", "-c 50 -P 16"], [
      "c1_p1",
      "-c 1 -P 1",
    ]]
  ) {
    lines.push(
      "",
      `## redis-benchmark ${title}`,
      "",
      "| test | kv ops/s | Redis ops/s | ratio | kv p50 / p99 ms | Redis p50 / p99 ms |",
      "| --- | --- | --- | --- | --- | --- |",
    );
    for (const [test, v] of Object.entries(t[mode] ?? {})) {
      lines.push(
        `| ${test} | ${fmt(v.kv.rps)} | ${fmt(v.redis.rps)} | ${
          fmt(v.kv.rps / v.redis.rps, 2)
        }x | ${fmt(v.kv.p50, 3)} / ${fmt(v.kv.p99, 3)} | ${fmt(v.redis.p50, 3)} / ${
          fmt(v.redis.p99, 3)
        } |`,
      );
    }
  }
  const deno = r.variants?.kv_resp_io_deno as Record<string, Row> | undefined;
  if (deno !== undefined) {
    lines.push(
      "",
      `## The RESP listeners at -c 50 (median of ${r.targetRounds} rounds, all three servers taking turns)`,
      "",
      "kv's default listener is the native epoll loop (`RESP_IO=auto`); `RESP_IO=deno` serves the " +
        "same engine through Deno's socket ops (docs/kv.md). Server CPU is user + system time of " +
        "the server process per request, over the SET, GET and INCR runs of a round (the native " +
        "loop's includes its polling between requests, up to RESP_SPIN_US after each).",
      "",
      "| mode | test | kv native ops/s | kv RESP_IO=deno ops/s | Redis ops/s | server CPU µs/request: native / deno / Redis |",
      "| --- | --- | --- | --- | --- | --- |",
    );
    for (const [k, v] of Object.entries(deno)) {
      const [mode, test] = k.split(".");
      const base = t[mode]?.[test];
      lines.push(
        `| ${mode} | ${test} | ${fmt(base?.kv.rps ?? NaN)} | ${fmt(v.rps)} | ${
          fmt(base?.redis.rps ?? NaN)
        } | ${fmt(base?.kv.cpuUs ?? NaN, 1)} / ${fmt(v.cpuUs ?? NaN, 1)} / ${
          fmt(base?.redis.cpuUs ?? NaN, 1)
        } |`,
      );
    }
  }
  if (r.ioThreads !== undefined && Object.keys(r.ioThreads).length > 0) {
    lines.push(
      "",
      "## IO_THREADS=2 (two I/O worker isolates, one executor), one round",
      "",
      "| mode | test | kv IO_THREADS=2 ops/s | kv one isolate ops/s (median) | Redis ops/s (median) |",
      "| --- | --- | --- | --- | --- |",
    );
    for (const [k, v] of Object.entries(r.ioThreads as Record<string, Row>)) {
      const [mode, test] = k.split(".");
      const base = t[mode]?.[test];
      lines.push(
        `| ${mode} | ${test} | ${fmt(v.rps)} | ${fmt(base?.kv.rps ?? NaN)} | ${
          fmt(base?.redis.rps ?? NaN)
        } |`,
      );
    }
  }
  lines.push(
    "",
    "## The seed's tests, through our TypeScript client",
    "",
    "| measure | kv | Redis | ratio |",
    "| --- | --- | --- | --- |",
  );
  for (const k of Object.keys(r.client.kv)) {
    const a = r.client.kv[k], b = r.client.redis[k];
    lines.push(
      `| ${k} | ${fmt(a, 1)} | ${fmt(b, 1)} | ${
        k.includes("ops_per_s") ? fmt(a / b, 2) + "x" : ""
      } |`,
    );
  }
  lines.push(
    "",
    `## Memory per key (${fmt(r.memory.kv.keys)} keys, 16-byte names, 100-byte values)`,
    "",
    "| | kv | Redis | ratio |",
    "| --- | --- | --- | --- |",
  );
  for (const k of ["used_bytes_per_key", "rss_bytes_per_key"]) {
    lines.push(
      `| ${k} | ${fmt(r.memory.kv[k], 1)} | ${fmt(r.memory.redis[k], 1)} | ${
        fmt(r.memory.kv[k] / r.memory.redis[k], 2)
      }x |`,
    );
  }
  lines.push(
    "",
    "`used_memory` is Redis's own count of its allocations; ours is the V8 heap in use plus external memory after a full GC. RSS growth includes allocator and heap slack on both sides.",
    "",
  );
  const doc = new URL("docs/kv-performance.md", root);
  await Deno.writeTextFile(doc, lines.join("\n"));
  await fmtFiles(doc.pathname);
  console.log("wrote docs/kv-performance.md");
}

if (args.values.render) await render();
else await main();
