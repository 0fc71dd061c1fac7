/** Helpers for benchmark scripts that start servers and load tools. */

/**
 * A TCP port free now on 127.0.0.1, for a server the caller starts next, taken below Linux's
 * ephemeral range (32768 and up): a port the kernel gives for port 0 is an ephemeral one, which any
 * client connection (tests run in parallel) may take as its local port before the server binds it.
 */
export function freePort(): number {
  for (let tries = 0;; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse) || tries >= 100) throw e;
    }
  }
}

/** A started server process and how to stop it. */
export interface Started {
  url: string;
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** Starts `deno run -A <script>` with env, waits until `healthPath` answers 2xx. */
export async function startDeno(
  script: string,
  env: Record<string, string>,
  options: { healthPath?: string; timeoutMs?: number; port?: number; denoFlags?: string[] } = {},
): Promise<Started> {
  const port = options.port ?? freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...(options.denoFlags ?? []), script],
    env: { HOST: "127.0.0.1", PORT: String(port), ACCESS_LOG: "false", ...env },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  const health = options.healthPath ?? "/healthz";
  let exited = false;
  child.status.then(() => (exited = true));
  while (true) {
    if (exited) throw new Error(`${script} exited before it was healthy`);
    if (performance.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${script} did not become healthy`);
    }
    try {
      const res = await fetch(url + health);
      await res.body?.cancel();
      if (res.ok) break;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    child,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // gone
        }
      }, 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** True when `cmd` is on the PATH. */
export async function have(cmd: string): Promise<boolean> {
  try {
    const out = await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

/** What one wrk run measured. */
export interface WrkResult {
  requestsPerSec: number;
  latencyMs: { p50: number; p75: number; p90: number; p99: number };
  requests: number;
  errors: number;
  non2xx: number;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case "us":
      return n / 1000;
    case "ms":
      return n;
    case "s":
      return n * 1000;
    case "m":
      return n * 60_000;
  }
  throw new Error(`unknown wrk unit ${unit}`);
}

/** Parses wrk's `--latency` text output. */
export function parseWrk(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (rps === null) throw new Error(`wrk output without Requests/sec:\n${text}`);
  const pct = (p: string) => {
    const m = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s|m)`).exec(text);
    return m === null ? NaN : toMs(m[1]!, m[2]!);
  };
  const total = /(\d+) requests in/.exec(text);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requestsPerSec: Number(rps[1]),
    latencyMs: { p50: pct("50"), p75: pct("75"), p90: pct("90"), p99: pct("99") },
    requests: total === null ? 0 : Number(total[1]),
    errors: errors === null ? 0 : errors.slice(1).reduce((s, v) => s + Number(v), 0),
    non2xx: non2xx === null ? 0 : Number(non2xx[1]),
  };
}

/** Runs wrk against `url` and parses the result. */
export async function runWrk(
  url: string,
  options: {
    connections: number;
    threads: number;
    durationS: number;
    script?: string;
    env?: Record<string, string>;
  },
): Promise<WrkResult> {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.durationS}s`,
    "--latency",
  ];
  if (options.script !== undefined) args.push("-s", options.script);
  args.push(url);
  const out = await new Deno.Command("wrk", {
    args,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  return parseWrk(text);
}

/** Linux's USER_HZ: /proc's times are in hundredths of a second on every architecture. */
const CLK_TCK = 100;

/** CPU seconds (user, system) process `pid` has used so far (/proc/<pid>/stat; throws elsewhere). */
export async function processCpuSeconds(pid: number): Promise<{ user: number; sys: number }> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) in parentheses.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK };
}

/**
 * Milliseconds the hypervisor has taken from this machine's CPUs so far (the `steal` column of
 * /proc/stat, all CPUs); 0 where there is no such file.
 */
export async function stealMs(): Promise<number> {
  try {
    const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0].trim().split(/\s+/);
    return Number(line[8]) * (1000 / CLK_TCK);
  } catch {
    return 0;
  }
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The p-th percentile of sorted samples (nearest rank; NaN when there are none). */
export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Runs `deno <args>` in `cwd` and returns what it printed; throws with the end of its stderr
 * when it fails.
 */
export async function denoOutput(args: string[], cwd?: URL): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).slice(-4000);
    throw new Error(`deno ${args.join(" ").slice(0, 300)} failed:\n${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * `deno fmt` over generated files (paths absolute, or relative to the repository root), so that
 * they are committed as `deno fmt --check` (CI) wants them; throws if fmt fails.
 */
export async function fmtFiles(...paths: string[]): Promise<void> {
  await denoOutput(["fmt", ...paths], new URL("../../", import.meta.url));
}

/**
 * CPU numbers from a Linux CPU list such as /proc's `Cpus_allowed_list` or taskset's `-c`
 * argument ("0-3,6" is 0, 1, 2, 3, 6), ascending and without repeats; throws on anything else.
 */
export function parseCpuList(text: string): number[] {
  const cpus = new Set<number>();
  for (const part of text.trim().split(",")) {
    const m = /^(\d{1,4})(?:-(\d{1,4}))?$/.exec(part);
    if (!m) throw new Error(`bad CPU list ${JSON.stringify(text)}`);
    const lo = Number(m[1]), hi = Number(m[2] ?? m[1]);
    if (hi < lo) throw new Error(`bad CPU range ${part} in ${JSON.stringify(text)}`);
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** The CPUs process `pid` may run on (its main thread's, from /proc); null where /proc has none. */
export function allowedCpus(pid = Deno.pid): number[] | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const line = status.split("\n").find((l) => l.startsWith("Cpus_allowed_list:"));
    return line === undefined ? null : parseCpuList(line.slice(line.indexOf(":") + 1));
  } catch {
    return null;
  }
}

/**
 * Lets every thread of process `pid` run only on `cpus` (`taskset -a -p -c`; threads it starts
 * later inherit it, as do processes it spawns). taskset sets the threads one by one and fails when
 * one has ended meanwhile, having moved the others: it is run again, up to 5 times, until one run
 * sets them all. False where taskset is missing or never gets through.
 */
export async function setCpus(pid: number, cpus: readonly number[]): Promise<boolean> {
  if (cpus.length === 0) return false;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const out = await new Deno.Command("taskset", {
        args: ["-a", "-p", "-c", cpus.join(","), String(pid)],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return true;
    } catch {
      return false; // no taskset
    }
  }
  return false;
}

/**
 * The command and arguments that run `cmd args` on `cpus` only (through taskset); `cmd args`
 * themselves when `cpus` is undefined.
 */
export function onCpus(
  cpus: readonly number[] | undefined,
  cmd: string,
  args: string[],
): { cmd: string; args: string[] } {
  return cpus === undefined
    ? { cmd, args }
    : { cmd: "taskset", args: ["-c", cpus.join(","), cmd, ...args] };
}
