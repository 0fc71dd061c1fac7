/**
 * Starts a service under test as a child process on a free loopback port,
 * waits until it logs that it listens and answers its health check, and stops
 * it with SIGTERM (SIGKILL after a grace period).
 *
 * @module
 */

/** How long a service may take to become healthy. */
export const START_TIMEOUT_MS_DEFAULT = 60_000;
/** How long a service may take to exit after SIGTERM before it is killed. */
export const STOP_TIMEOUT_MS_DEFAULT = 10_000;
/** Output lines kept for error messages. */
const TAIL_LINES_MAX = 40;

/** A running service. */
export interface RunningService {
  url: string;
  port: number;
  pid: number;
  /** The last lines the service printed. */
  tail(): string[];
  stop(): Promise<void>;
}

/** Options of {@linkcode startService}. */
export interface StartServiceOptions {
  /** Path of the Deno entry point. */
  script: string;
  env?: Record<string, string>;
  /** Text of the log line that says the service listens. */
  readyText?: string;
  healthPath?: string;
  timeoutMs?: number;
  stopTimeoutMs?: number;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function drain(
  stream: ReadableStream<Uint8Array>,
  tail: string[],
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      tail.push(line);
      if (tail.length > TAIL_LINES_MAX) tail.shift();
      onLine(line);
    }
    if (pending.length > 64 * 1024) pending = pending.slice(-1024);
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts `deno run -A <script>` with `HOST=127.0.0.1 PORT=<free port>` and
 * `env`, then waits for the ready log line and a 2xx health check.
 *
 * @example
 * ```ts ignore
 * const svc = await startService({ script: "services/tasks/main.ts", env: { STORAGE_TYPE: "shard" } });
 * try { console.log(svc.url); } finally { await svc.stop(); }
 * ```
 */
export async function startService(
  options: StartServiceOptions,
): Promise<RunningService> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", options.script],
    env: {
      HOST: "127.0.0.1",
      PORT: String(port),
      ACCESS_LOG: "false",
      ...options.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  const readyText = options.readyText ?? "listening";
  let ready = false;
  const onLine = (line: string) => {
    if (line.includes(readyText)) ready = true;
  };
  const drained = Promise.all([
    drain(child.stdout, tail, onLine),
    drain(child.stderr, tail, onLine),
  ]).catch(() => {});
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  const stopTimeoutMs = options.stopTimeoutMs ?? STOP_TIMEOUT_MS_DEFAULT;
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      const killer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, stopTimeoutMs);
      await status;
      clearTimeout(killer);
    }
    await drained;
  };

  const deadline = performance.now() +
    (options.timeoutMs ?? START_TIMEOUT_MS_DEFAULT);
  const healthUrl = url + (options.healthPath ?? "/healthz");
  while (true) {
    if (exited) {
      await drained;
      throw new Error(
        `${options.script} exited before it was ready:\n${tail.join("\n")}`,
      );
    }
    if (performance.now() > deadline) {
      await stop();
      throw new Error(
        `${options.script} was not ready in time:\n${tail.join("\n")}`,
      );
    }
    if (ready) {
      try {
        const res = await fetch(healthUrl, {
          signal: AbortSignal.timeout(2_000),
        });
        await res.body?.cancel();
        if (res.ok) break;
      } catch {
        // not answering yet
      }
    }
    await delay(50);
  }
  return { url, port, pid: child.pid, tail: () => [...tail], stop };
}

/** Path of the tasks service entry point in this repository. */
export const TASKS_MAIN = new URL("../../services/tasks/main.ts", import.meta.url).pathname;

/**
 * Starts the tasks service with `STORAGE_TYPE=storage`; for `kv` the Deno KV
 * file lives in a temporary directory removed on stop.
 */
export async function startTasksService(
  storage: string,
  env: Record<string, string> = {},
): Promise<RunningService> {
  let tempDir: string | undefined;
  const extra: Record<string, string> = { STORAGE_TYPE: storage, ...env };
  if (storage === "kv" && extra.KV_PATH === undefined) {
    tempDir = await Deno.makeTempDir({ prefix: "load-tasks-kv-" });
    extra.KV_PATH = `${tempDir}/tasks.kv`;
  }
  try {
    const svc = await startService({ script: TASKS_MAIN, env: extra });
    return {
      ...svc,
      async stop() {
        await svc.stop();
        if (tempDir !== undefined) {
          await Deno.remove(tempDir, { recursive: true }).catch(() => {});
        }
      },
    };
  } catch (e) {
    if (tempDir !== undefined) {
      await Deno.remove(tempDir, { recursive: true }).catch(() => {});
    }
    throw e;
  }
}

/** Starts another service of this repository (`services/<name>/main.ts`) with a temporary data directory. */
export async function startOtherService(
  name: "log" | "kv" | "metastore" | "kv-events",
  env: Record<string, string> = {},
): Promise<RunningService> {
  const dir = await Deno.makeTempDir({ prefix: `load-${name}-` });
  const script = new URL(`../../services/${name}/main.ts`, import.meta.url).pathname;
  const extra: Record<string, string> = { DATA_DIR: dir, ...env };
  // kv's RESP port is not used by these scenarios: a free one, so that a running Redis is no bother.
  if (name === "kv" && extra.RESP_PORT === undefined) extra.RESP_PORT = String(freePort());
  // The same for the metastore's Raft peer port (one member).
  if (name === "metastore" && extra.PEER_PORT === undefined) extra.PEER_PORT = String(freePort());
  try {
    const svc = await startService({ script, env: extra });
    return {
      ...svc,
      async stop() {
        await svc.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}
