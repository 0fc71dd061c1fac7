/**
 * `deno task dev`: starts every service that exists under `services/` with
 * local defaults, prefixes their log lines with the service name, prints
 * where each listens once it is healthy, and stops them all on Ctrl-C.
 *
 * @module
 */

import { METASTORE_V8_FLAGS } from "./metastore/config.ts";

interface ServiceSpec {
  name: string;
  port: number;
  env?: Record<string, string>;
  /** Extra `deno run` flags (before the script). */
  flags?: string[];
}

/** Every service the project plans, with its default HTTP port (see README). */
export const SERVICES: readonly ServiceSpec[] = [
  { name: "tasks", port: 8001 },
  { name: "metastore", port: 2379, flags: [METASTORE_V8_FLAGS] },
  { name: "kv-events", port: 8003 },
  { name: "log", port: 8004 },
  { name: "kv", port: 8005 },
];

const root = new URL("../", import.meta.url);
const HEALTH_TIMEOUT_MS = 30_000;

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

async function pipeLines(
  stream: ReadableStream<Uint8Array>,
  prefix: string,
  to: { write(p: Uint8Array): Promise<number> },
) {
  const encoder = new TextEncoder();
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop() ?? "";
    if (lines.length > 0) {
      await to.write(encoder.encode(lines.map((l) => `${prefix} ${l}\n`).join("")));
    }
  }
  if (rest !== "") await to.write(encoder.encode(`${prefix} ${rest}\n`));
}

async function waitHealthy(url: string, child: Deno.ChildProcess): Promise<boolean> {
  let exited = false;
  child.status.then(() => (exited = true));
  const deadline = performance.now() + HEALTH_TIMEOUT_MS;
  while (!exited && performance.now() < deadline) {
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

async function main() {
  const present: ServiceSpec[] = [];
  for (const spec of SERVICES) {
    if (await exists(new URL(`services/${spec.name}/main.ts`, root))) present.push(spec);
  }
  const children: Array<{ spec: ServiceSpec; child: Deno.ChildProcess; url: string }> = [];
  const width = Math.max(...present.map((s) => s.name.length));
  for (const spec of present) {
    const port = Deno.env.get(`${spec.name.toUpperCase().replace("-", "_")}_PORT`) ??
      String(spec.port);
    const env = {
      PORT: port,
      HOST: "127.0.0.1",
      DATA_DIR: `.data/${spec.name}`,
      ...spec.env,
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...spec.flags ?? [], `services/${spec.name}/main.ts`],
      cwd: root,
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const prefix = `[${spec.name.padEnd(width)}]`;
    pipeLines(child.stdout, prefix, Deno.stdout);
    pipeLines(child.stderr, prefix, Deno.stderr);
    children.push({ spec, child, url: `http://127.0.0.1:${port}` });
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    console.log("\nstopping every service…");
    for (const { child } of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await Promise.all(children.map(({ child }) => child.status));
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);

  const health = await Promise.all(children.map(({ url, child }) => waitHealthy(url, child)));
  const rows = children.map(({ spec, url }, i) =>
    `  ${spec.name.padEnd(width)}  ${url.padEnd(24)}  ${health[i] ? "healthy" : "NOT HEALTHY"}`
  );
  console.log(`\nservices (Ctrl-C stops all):\n${rows.join("\n")}\n`);
  const statuses = await Promise.all(children.map(({ child }) => child.status));
  if (!stopping) {
    console.error("every service exited", statuses.map((s) => s.code));
    Deno.exit(1);
  }
}

if (import.meta.main) await main();
