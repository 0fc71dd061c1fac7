/**
 * docs/benchmarks.md and docs/benchmarks.html from the committed results (docs/results/*.json,
 * written by each service's comparison script): how to run each benchmark, the latest ratio
 * against each peer, latency distributions, and the machine. `deno task bench:doc`. The HTML page
 * is self-contained (inline SVG charts, no script); benchmarks_doc_test.ts renders it in headless
 * Chromium. Nothing in either page is typed by hand.
 *
 * @module
 */
import { fmtFiles } from "./lib/process.ts";
import { escapeHtml, PALETTE } from "./load/svg.ts";
import { BATCH_MS, WARMUP_BATCHES } from "./gate.ts";
import { FLOOR_NS, GATE, MAX_SPREAD } from "./run.ts";

const pctOf = (x: number) => `${Math.round(x * 100)}%`;

const root = new URL("../", import.meta.url);

/** One row of the ratio table. */
export interface RatioRow {
  service: string;
  measure: string;
  ours: string;
  peer: string;
  ratio: number;
  /** Higher is better for us (throughput) or lower (latency, time). */
  better: "higher" | "lower";
  date: string;
  /** Latency percentiles (ms), ours and the peer's, where the script measured them. */
  latency?: { ours: { p50: number; p99: number }; peer: { p50: number; p99: number } };
}

async function readJson(name: string): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(await Deno.readTextFile(new URL(`docs/results/${name}`, root)));
  } catch {
    return null;
  }
}

const fmt = (n: number, d = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });

// deno-lint-ignore no-explicit-any
type Any = any;

/** The ratio rows of every service whose results are present. */
export async function ratioRows(): Promise<RatioRow[]> {
  const rows: RatioRow[] = [];
  const tasks = await readJson("tasks-compare.json") as Any;
  if (tasks !== null) {
    rows.push({
      service: "tasks",
      measure: "GET /tasks/:id req/s (wrk, 50 connections)",
      ours: fmt(tasks.get.ours.rps),
      peer: `${fmt(tasks.get.bare.rps)} (bare Deno.serve)`,
      ratio: tasks.get.ours.rps / tasks.get.bare.rps,
      better: "higher",
      date: tasks.date,
      latency: {
        ours: { p50: tasks.get.ours.p50, p99: tasks.get.ours.p99 },
        peer: { p50: tasks.get.bare.p50, p99: tasks.get.bare.p99 },
      },
    });
  }
  const meta = await readJson("metastore-compare.json") as Any;
  if (meta !== null) {
    for (const r of meta.rows as Any[]) {
      rows.push({
        service: "metastore",
        measure: `${r.op.toUpperCase()} req/s, ${r.nodes} member${r.nodes > 1 ? "s" : ""} (wrk)`,
        ours: fmt(r.metastore.requestsPerSec),
        peer: `${fmt(r.etcd.requestsPerSec)} (${
          meta.etcdVersion.replace("etcd Version: ", "etcd ")
        })`,
        ratio: r.ratio,
        better: "higher",
        date: String(meta.date).slice(0, 10),
        latency: {
          ours: { p50: r.metastore.p50Ms, p99: r.metastore.p99Ms },
          peer: { p50: r.etcd.p50Ms, p99: r.etcd.p99Ms },
        },
      });
    }
  }
  const kv = await readJson("kv.json") as Any;
  if (kv !== null) {
    for (const [mode, title] of [["c50_p1", "-c 50 -P 1"], ["c50_p16", "-c 50 -P 16"]]) {
      for (const test of ["SET", "GET", "INCR"]) {
        const t = kv.redisBenchmark[mode]?.[test];
        if (t === undefined) continue;
        rows.push({
          service: "kv",
          measure: `redis-benchmark ${title} ${test} ops/s`,
          ours: fmt(t.kv.rps),
          peer: `${fmt(t.redis.rps)} (Redis ${kv.redis})`,
          ratio: t.kv.rps / t.redis.rps,
          better: "higher",
          date: kv.date,
          latency: {
            ours: { p50: t.kv.p50, p99: t.kv.p99 },
            peer: { p50: t.redis.p50, p99: t.redis.p99 },
          },
        });
      }
    }
  }
  const log = await readJson("log.json") as Any;
  if (log !== null) {
    const v = (k: string) => log.results[k]?.value as number | undefined;
    const add = (measure: string, ours?: number, peer?: number, peerName = "", ratio?: number) => {
      if (ours === undefined || peer === undefined) return;
      rows.push({
        service: "log",
        measure,
        ours: fmt(ours),
        peer: `${fmt(peer)} (${peerName})`,
        ratio: ratio ?? ours / peer,
        better: "higher",
        date: log.date,
      });
    };
    add(
      "batched 1 KB produce MB/s",
      v("produce.batched_1k_write_mb_s"),
      v("disk.dd_write_mb_s"),
      "dd write",
      v("produce.batched_1k_write_vs_dd"),
    );
    add(
      "sequential fetch MB/s",
      v("fetch.sequential_mb_s"),
      v("disk.dd_read_mb_s"),
      "dd read",
      v("fetch.sequential_vs_dd"),
    );
    add(
      "acks=fsync records/s over HTTP, 64 producers",
      v("http.produce_fsync_64_records_s"),
      v("jetstream.publish_64_records_s"),
      `JetStream ${String(log.nats ?? "").replace("nats-server: ", "")}`,
      v("http.produce_fsync_vs_jetstream"),
    );
  }
  return rows;
}

/** A horizontal bar per row: ours over the peer, with the parity line at 1x. */
export function ratioChart(rows: readonly RatioRow[]): string {
  const rowH = 22, left = 330, right = 70, top = 30, w = 900;
  const h = top + rows.length * rowH + 30;
  const maxR = Math.max(2, ...rows.map((r) => r.ratio));
  const x = (v: number) => left + (v / maxR) * (w - left - right);
  const parts = [
    `<text x="${
      w / 2
    }" y="18" text-anchor="middle" class="title">Ours over the peer (higher is better)</text>`,
  ];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const color = r.ratio >= 1 ? PALETTE[2] : PALETTE[3];
    parts.push(
      `<text x="${left - 8}" y="${y + 15}" text-anchor="end" class="tick">${
        escapeHtml(`${r.service}: ${r.measure}`)
      }</text>`,
      `<rect x="${left}" y="${y + 3}" width="${(x(r.ratio) - left).toFixed(1)}" height="${
        rowH - 6
      }" fill="${color}"><title>${escapeHtml(`${r.ours} vs ${r.peer}`)}</title></rect>`,
      `<text x="${(x(r.ratio) + 4).toFixed(1)}" y="${y + 15}" class="tick">${
        r.ratio.toFixed(2)
      }x</text>`,
    );
  });
  parts.push(
    `<line x1="${x(1)}" x2="${x(1)}" y1="${top - 4}" y2="${h - 24}" class="parity"/>`,
    `<text x="${x(1)}" y="${h - 10}" text-anchor="middle" class="tick">1x (parity)</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img">${
    parts.join("")
  }</svg>`;
}

/** p50 and p99 of ours and the peer, per row that has them (log scale: ms). */
export function latencyChart(rows: readonly RatioRow[]): string {
  const withLat = rows.filter((r) => r.latency !== undefined);
  const rowH = 40, left = 330, right = 90, top = 44, w = 900;
  const h = top + withLat.length * rowH + 34;
  const all = withLat.flatMap((
    r,
  ) => [r.latency!.ours.p99, r.latency!.peer.p99, r.latency!.ours.p50, r.latency!.peer.p50]);
  const lo = Math.log10(Math.max(0.01, Math.min(...all, 1) / 2)),
    hi = Math.log10(Math.max(...all, 1) * 1.5);
  const x = (v: number) =>
    left + ((Math.log10(Math.max(v, 1e-3)) - lo) / (hi - lo)) * (w - left - right);
  const parts = [
    `<text x="${
      w / 2
    }" y="18" text-anchor="middle" class="title">Latency, ms (log scale): p50 mark, bar to p99</text>`,
    `<rect x="${left}" y="26" width="10" height="8" fill="${PALETTE[0]}"/><text x="${
      left + 14
    }" y="34" class="tick">ours</text>`,
    `<rect x="${left + 70}" y="26" width="10" height="8" fill="${PALETTE[1]}"/><text x="${
      left + 84
    }" y="34" class="tick">peer</text>`,
  ];
  withLat.forEach((r, i) => {
    const y = top + i * rowH;
    parts.push(
      `<text x="${left - 8}" y="${y + 20}" text-anchor="end" class="tick">${
        escapeHtml(`${r.service}: ${r.measure}`)
      }</text>`,
    );
    ([["ours", 0], ["peer", 1]] as const).forEach(([who, k]) => {
      const l = r.latency![who];
      const yy = y + 4 + k * 16;
      parts.push(
        `<rect x="${x(l.p50).toFixed(1)}" y="${yy}" width="${
          Math.max(1, x(l.p99) - x(l.p50)).toFixed(1)
        }" height="12" fill="${PALETTE[k]}" opacity="0.7"><title>${
          escapeHtml(`${who}: p50 ${l.p50} ms, p99 ${l.p99} ms`)
        }</title></rect>`,
        `<rect x="${(x(l.p50) - 1).toFixed(1)}" y="${yy - 2}" width="3" height="16" fill="${
          PALETTE[k]
        }"/>`,
        `<text x="${(x(l.p99) + 4).toFixed(1)}" y="${yy + 10}" class="tick">${l.p99} ms</text>`,
      );
    });
  });
  for (const t of [0.1, 1, 10, 100]) {
    if (Math.log10(t) < lo || Math.log10(t) > hi) continue;
    parts.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${top - 4}" y2="${h - 24}" class="grid"/>`,
      `<text x="${x(t)}" y="${h - 10}" text-anchor="middle" class="tick">${t} ms</text>`,
    );
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img">${
    parts.join("")
  }</svg>`;
}

/** The self-contained HTML page (no scripts, no external resources). */
export function renderHtml(rows: readonly RatioRow[], machine: string): string {
  const table = rows.map((r) =>
    `<tr><td>${escapeHtml(r.service)}</td><td>${escapeHtml(r.measure)}</td><td class="n">${
      escapeHtml(r.ours)
    }</td><td class="n">${escapeHtml(r.peer)}</td><td class="n ${r.ratio >= 1 ? "win" : "lose"}">${
      r.ratio.toFixed(2)
    }x</td><td>${escapeHtml(r.date)}</td></tr>`
  ).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deno-stores benchmarks</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #111; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .win { color: #15803d; } .lose { color: #b45309; }
svg .title { font-weight: 600; font-size: 13px; } svg .tick { font-size: 11px; fill: #333; }
svg .grid { stroke: #e5e7eb; } svg .parity { stroke: #111; stroke-dasharray: 4 3; }
</style></head><body>
<h1>deno-stores: each service against the system it must beat</h1>
<p>${
    escapeHtml(machine)
  }. Generated by <code>deno task bench:doc</code> from docs/results/*.json; each
comparison measured ours and the peer in the same run. The ratios are the point, not the absolute
numbers.</p>
<h2 id="ratios">Throughput against the peers</h2>
${ratioChart(rows)}
<h2 id="latency">Latency distributions</h2>
${latencyChart(rows)}
<h2 id="table">Every figure</h2>
<table><thead><tr><th>service</th><th>measure</th><th>ours</th><th>peer</th><th>ratio</th><th>measured</th></tr></thead>
<tbody>
${table}
</tbody></table>
</body></html>
`;
}

async function render(): Promise<void> {
  const rows = await ratioRows();
  const kve = await readJson("kv-events.json") as Any;
  // The machine the results were measured on, as the log's results record it (else this one).
  const log = await readJson("log.json") as Any;
  const cpu = log?.cpu ?? (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(
    /model name\s*:\s*(.*)/,
  )?.[1] ?? "unknown";
  const cores = log?.cores ?? navigator.hardwareConcurrency;
  const machine = `${cores} cores (${cpu}), Deno ${log?.deno ?? Deno.version.deno}, ` +
    "a virtual machine shared with other tenants; the load generator, the peer and our service " +
    "share the cores";
  const lines = [
    "# Benchmarks",
    "",
    "Generated by `deno task bench:doc` (bench/benchmarks_doc.ts) from the committed results in",
    "[docs/results/](results/), with charts in [benchmarks.html](benchmarks.html); every figure",
    "comes from a script, none is typed in. Each service's",
    "comparison script starts the peer and ours on loopback and measures both in the same run, in",
    "alternating rounds where the script says so, because this machine drifts by tens of percent",
    "from one minute to the next: the ratios are the point, not the absolute numbers.",
    "",
    "## The machine",
    "",
    `${machine}.`,
    "",
    "## Latest ratios against the peers",
    "",
    "| service | measure | ours | peer | ratio | measured |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) =>
      `| ${r.service} | ${r.measure} | ${r.ours} | ${r.peer} | ${r.ratio.toFixed(2)}x | ${r.date} |`
    ),
    "",
    kve === null
      ? ""
      : `kv-events has no peer to run here (Dynamo, llm-d and AIBrix routers are not ` +
        `installable); its figures against the issue's targets are in ` +
        `[kv-events-performance.md](kv-events-performance.md).`,
    "",
    "## Running them",
    "",
    "| command | what | report |",
    "| --- | --- | --- |",
    "| `deno task bench:compare [--quick] [--doc]` | every peer comparison below in turn (a missing peer is reported as skipped), then this page | this page and each service's report |",
    "| `deno task bench` | every `*_bench.ts` (`deno bench --json`), one JSON in `bench/results/` and a table with each case's ratio to its group's baseline | the terminal |",
    "| `deno task bench:quick` | the quick set (CPU-bound micro benchmarks), 3 runs | the terminal |",
    "| `deno task bench:gate` | regression gate: this tree against the accepted commit (`bench/baselines/bench.json`), both loaded in one process and timed in alternating batches, " +
    pctOf(GATE.threshold) +
    " threshold; `bench:gate:baseline` accepts HEAD | the terminal; CI fails on a regression |",
    "| `deno task bench:tasks --doc` | tasks vs a bare `Deno.serve` (wrk) | [tasks-performance.md](tasks-performance.md) |",
    "| `deno task bench:metastore` (+ `bench:metastore:suite`) | metastore vs etcd 3.4 | [metastore-performance.md](metastore-performance.md) |",
    "| `deno task bench:kv --doc` | kv vs Redis 7 (redis-benchmark, clients, memory) | [kv-performance.md](kv-performance.md) |",
    "| `deno task bench:kv-events --doc` | kv-events' seven measurements | [kv-events-performance.md](kv-events-performance.md) |",
    "| `deno task bench:log --doc` (`bench:log:quick`) | the log vs dd and NATS JetStream, the 19 categories | [log-performance.md](log-performance.md) |",
    "",
    "## The regression gate",
    "",
    "Stored times are useless here: the same code measures tens of percent apart minutes later,",
    "even as the fastest of many iterations, and so do ratios to an in-file baseline measured in",
    "the same run (`bench/results/gate-*.json` keep the raw batches). The gate therefore never compares",
    "with a stored figure. It checks the accepted commit out in a temporary git worktree and, for",
    "each file of the quick set, starts bench/gate.ts, which imports this tree's and the accepted",
    "commit's version of the file side by side in one process (`Deno.bench` replaced by a",
    "collector; each tree's workspace packages resolve inside that tree) and times each case in",
    `batches of about ${BATCH_MS} ms, the two trees alternating (A B, B A, ...), ${GATE.rounds} rounds, young`,
    "garbage collected before each batch, after",
    `${WARMUP_BATCHES} warm-up batches of each tree's case, alternating (calibration runs only the`,
    "accepted tree's version: with one warm-up batch each, a function slower to reach V8's",
    "optimising tiers was still in them during the first rounds, and was judged slower in every",
    "process). Whatever disturbs the machine for a moment disturbs both",
    "trees' adjacent batches alike, so their ratio cancels it.",
    `Each file gets ${GATE.processes} such processes, the tree imported first alternating (a process has biases of`,
    "its own: which copy's data was allocated first). A case regressed when the median ratio over",
    `all rounds is more than ${
      pctOf(GATE.threshold)
    } slower and every process's own median says at least`,
    `${pctOf(GATE.threshold / 2)} slower; otherwise past ${
      pctOf(GATE.threshold)
    } it is "too noisy to judge", and so is a`,
    `case whose processes lie more than ${MAX_SPREAD}x apart (a Deno KV call, a round trip through the`,
    `runtime's thread pool, can). Cases under ${FLOOR_NS} ns an iteration are not judged. A file`,
    "whose code is the accepted commit's (the modules of its graph that lie in the tree, none of",
    "them symlinked, and the project's deno.json files and lock file unchanged and tracked by git;",
    "no module that may reach code or data the graph does not show: a worker, a subprocess, a",
    "dynamic import, a path from `import.meta`, a `Deno` file read, a fetch) is not run: identical",
    "code has come out past the threshold in every process of a CI run, which only says what the",
    "machine did.",
    "`--files a,b` narrows it, `--against REV` compares with another commit, `--runs` and",
    "`--rounds` set processes and rounds, and the raw batches go to",
    "`bench/results/gate-<time>.json`. CI runs it on every change and fails on a regression;",
    "after an intended slowdown, `deno task bench:gate:baseline` accepts HEAD (commit the file).",
    "",
  ];
  await Deno.writeTextFile(new URL("docs/benchmarks.md", root), lines.join("\n"));
  await Deno.writeTextFile(new URL("docs/benchmarks.html", root), renderHtml(rows, machine));
  await fmtFiles("docs/benchmarks.md", "docs/benchmarks.html");
  console.log("wrote docs/benchmarks.md");
}

if (import.meta.main) await render();
