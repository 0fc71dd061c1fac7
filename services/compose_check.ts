/**
 * `deno task compose:test`: brings compose.yaml's whole stack up with podman (there is no Docker
 * engine here), checks every health endpoint and one request per service — including a write to
 * the metastore cluster read back from another member — and tears it down.
 *
 * Podman runs containers on this machine only with `--runtime runc` and explicit ulimits, and
 * cannot pull images: the Dockerfiles' `denoland/deno` base is replaced by a local image built from
 * a Debian root filesystem holding this machine's deno binary (`localhost/deno-base:<version>`,
 * built with debootstrap when missing). Options: `--keep` leaves the stack running,
 * `--no-build` reuses the service images.
 *
 * @module
 */
import { SERVICES } from "./dev.ts";
import { parseArgs } from "node:util";
import { have } from "../bench/lib/process.ts";

const root = new URL("../", import.meta.url).pathname;
const args = parseArgs({
  args: Deno.args,
  options: {
    keep: { type: "boolean", default: false },
    "no-build": { type: "boolean", default: false },
  },
});
const BASE = `localhost/deno-base:${Deno.version.deno}`;
const ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
const td = new TextDecoder();

/** Each service's HTTP address on the host (its port in services/dev.ts, as compose.yaml maps it). */
const at = (name: string) => `http://127.0.0.1:${SERVICES.find((s) => s.name === name)!.port}`;
/** compose.yaml runs three metastore members, published on these host ports. */
const METASTORE_MEMBERS = [2379, 12379, 22379].map((port) => `http://127.0.0.1:${port}`);

async function run(cmd: string, cmdArgs: string[], quiet = false): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = td.decode(out.stdout) + td.decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${cmdArgs.join(" ")} failed:\n${text.slice(-3000)}`);
  if (!quiet && text.trim() !== "") console.log(text.trim().split("\n").slice(-2).join("\n"));
  return text;
}

/** The local stand-in for denoland/deno: a Debian rootfs with this deno binary. */
async function baseImage(): Promise<void> {
  const exists = await new Deno.Command("podman", { args: ["image", "exists", BASE] }).output();
  if (exists.success) return;
  if (!(await have("debootstrap"))) {
    await run("sh", ["-c", "apt-get install -y -qq debootstrap >/dev/null"]);
  }
  const rootfs = await Deno.makeTempDir({ prefix: "deno-rootfs-" });
  console.log(`building ${BASE} from a Debian rootfs in ${rootfs}`);
  await run("debootstrap", [
    "--variant=minbase",
    "bookworm",
    rootfs,
    "http://deb.debian.org/debian",
  ], true);
  await Deno.copyFile(Deno.execPath(), `${rootfs}/usr/local/bin/deno`);
  await Deno.chmod(`${rootfs}/usr/local/bin/deno`, 0o755);
  await run("sh", [
    "-c",
    `cd ${rootfs} && tar -c . | podman import --change 'CMD ["deno"]' - ${BASE}`,
  ]);
  await Deno.remove(rootfs, { recursive: true });
}

const compose = (...rest: string[]) =>
  run("podman-compose", [
    "--podman-args=--runtime runc",
    `--podman-run-args=${ULIMITS.join(" ")}`,
    ...rest,
  ]);

async function waitHealthy(name: string, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${name} (${url}) not healthy: ${last}`);
}

async function json(url: string, body?: unknown) {
  const method = body === undefined ? "GET" : "POST";
  const r = await fetch(url, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${url}: ${r.status} ${text}`);
  return text === "" ? null : JSON.parse(text);
}

/** One request per service (besides health), as a user of each would make. */
async function exercise(): Promise<void> {
  // tasks: create, read back.
  const task = await json(`${at("tasks")}/tasks`, { title: "compose check", priority: 1 });
  const got = await json(`${at("tasks")}/tasks/${task.id}`);
  if (got.title !== "compose check") throw new Error(`tasks: read back ${JSON.stringify(got)}`);
  console.log("tasks: created and read back a task");

  // metastore: a write through member 1 read back from member 3 (replicated by Raft).
  await json(`${METASTORE_MEMBERS[0]}/v3/kv/put`, {
    key: btoa("compose/check"),
    value: btoa("ok"),
  });
  const deadline = Date.now() + 10_000;
  while (true) {
    const r = await json(`${METASTORE_MEMBERS[2]}/v3/kv/range`, { key: btoa("compose/check") });
    if (r.kvs?.[0]?.value === btoa("ok")) break;
    if (Date.now() > deadline) throw new Error(`metastore: member 3 answered ${JSON.stringify(r)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const members = await json(`${METASTORE_MEMBERS[1]}/v3/cluster/member/list`, {});
  if ((members.members ?? []).length !== 3) {
    throw new Error(`metastore: ${JSON.stringify(members)}`);
  }
  console.log("metastore: a write through member 1 read back from member 3; 3 members listed");

  // kv-events: a pod's stored blocks over HTTP, then a route that finds them.
  await json(`${at("kv-events")}/events`, {
    pod: "pod-a",
    events: [{ type: "BlockStored", block_hashes: ["11", "12"] }],
  });
  const route = await json(`${at("kv-events")}/route`, { block_hashes: ["11", "12"] });
  if (route.pod !== "pod-a") throw new Error(`kv-events: ${JSON.stringify(route)}`);
  console.log("kv-events: indexed two blocks of pod-a and routed to it");

  // log: a topic, a record produced with acks=fsync, fetched back.
  await json(`${at("log")}/topics`, { name: "compose-check", partitions: 1 }).catch(
    (e) => {
      if (!String(e).includes("409")) throw e;
    },
  );
  const p = await json(`${at("log")}/topics/compose-check`, {
    records: [{ key: "k", value: { ok: true } }],
  });
  const off = p.offsets[0].offset;
  const f = await json(
    `${at("log")}/topics/compose-check/partitions/0/records?offset=${off}`,
  );
  if (f.records[0]?.value?.ok !== true) throw new Error(`log: ${JSON.stringify(f)}`);
  console.log("log: produced a record (acks=fsync) and fetched it back");

  // kv: SET over HTTP, GET over RESP.
  await json(`${at("kv")}/`, ["SET", "compose:check", "ok"]);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: 6379 });
  try {
    await conn.write(new TextEncoder().encode("*2\r\n$3\r\nGET\r\n$13\r\ncompose:check\r\n"));
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    const reply = td.decode(buf.subarray(0, n ?? 0));
    if (reply !== "$2\r\nok\r\n") throw new Error(`kv: RESP GET answered ${JSON.stringify(reply)}`);
  } finally {
    conn.close();
  }
  console.log("kv: SET over HTTP, GET over RESP");
}

async function main(): Promise<void> {
  for (const cmd of ["podman", "podman-compose"]) {
    if (!(await have(cmd))) {
      console.log(`${cmd} not installed (apt-get install podman podman-compose): skipped`);
      return;
    }
  }
  await baseImage();
  if (!args.values["no-build"]) {
    for (const { name: s } of SERVICES) {
      console.log(`building deno-stores/${s}`);
      await run("podman", [
        "--runtime",
        "runc",
        "build",
        ...ULIMITS,
        "--build-arg",
        `DENO_IMAGE=${BASE}`,
        "-f",
        `services/${s}/Dockerfile`,
        "-t",
        `deno-stores/${s}`,
        ".",
      ], true);
    }
  }
  let ok = false;
  try {
    await compose("up", "-d", "--no-build");
    const health: [string, string][] = SERVICES.flatMap(({ name }): [string, string][] =>
      name === "metastore"
        ? METASTORE_MEMBERS.map((url, i) => [`metastore-${i + 1}`, url])
        : [[name, at(name)]]
    );
    for (const [name, url] of health) {
      await waitHealthy(name, `${url}/healthz`);
      console.log(`${name}: healthy`);
    }
    await exercise();
    ok = true;
  } finally {
    if (!ok) {
      console.log("logs of the stack:");
      await compose("logs", "--tail", "20").catch((e) => console.log(String(e)));
    }
    if (!args.values.keep) await compose("down", "-v").catch((e) => console.log(String(e)));
  }
  console.log("compose: every service up, healthy and answering");
}

if (import.meta.main) await main();
