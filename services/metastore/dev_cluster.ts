/**
 * `deno task dev:cluster`: three metastore members on this machine (clients on 2379, 12379,
 * 22379; peers on 2380, 12380, 22380; data under .data/metastore-cluster/), logs prefixed with
 * the member name, all stopped on Ctrl-C.
 *
 * @module
 */

import { METASTORE_V8_FLAGS } from "./config.ts";

const members = [
  { name: "m1", port: 2379, peerPort: 2380 },
  { name: "m2", port: 12379, peerPort: 12380 },
  { name: "m3", port: 22379, peerPort: 22380 },
];
const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(",");
const main = new URL("./main.ts", import.meta.url).pathname;
const enc = new TextEncoder();

async function prefixed(stream: ReadableStream<Uint8Array>, prefix: string): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const lines = rest.split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) await Deno.stdout.write(enc.encode(`[${prefix}] ${l}\n`));
  }
}

const children = members.map((m) => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", METASTORE_V8_FLAGS, main],
    env: {
      NAME: m.name,
      PORT: String(m.port),
      PEER_PORT: String(m.peerPort),
      INITIAL_CLUSTER: initial,
      DATA_DIR: `.data/metastore-cluster/${m.name}`,
    },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  prefixed(child.stdout, m.name);
  prefixed(child.stderr, m.name);
  console.log(`${m.name}: http://127.0.0.1:${m.port} (peer ${m.peerPort})`);
  return child;
});

Deno.addSignalListener("SIGINT", () => {
  for (const c of children) c.kill("SIGTERM");
});
await Promise.all(children.map((c) => c.status));
