/**
 * `deno bench` for kv's hot paths (the comparison with Redis is bench/kv_compare.ts): reading a
 * pipelined batch of commands, running them, writing the replies.
 */
import { ALL_COMMANDS } from "./commands/mod.ts";
import { Engine } from "./engine.ts";
import { encodeCommand } from "./reply.ts";
import { RespReader, RespWriter } from "./resp.ts";

const engine = new Engine(ALL_COMMANDS);
const client = engine.connect();
const out = new RespWriter();
/** What redis-benchmark sends for -P 16: 16 SETs of a 20-byte key. */
const batch = new Uint8Array(
  Array.from(
    { length: 16 },
    (_, i) => [...encodeCommand(["SET", `key:${String(i).padStart(16, "0")}`, "xxx"])],
  )
    .flat(),
);

const reader = new RespReader();

/** 16 pipelined commands as redis-benchmark -P 16 sends them, read and run as a connection's. */
function pipelined(args: string[]): () => void {
  const bytes = new Uint8Array(Array.from({ length: 16 }, () => [...encodeCommand(args)]).flat());
  const r = new RespReader();
  return () => {
    r.push(bytes);
    if (engine.runBatch(client, r, out, 1 << 20)) throw new Error("batch not run whole");
    out.reset();
  };
}

Deno.bench("parse 16 pipelined SETs", { group: "batch", baseline: true }, () => {
  const r = reader;
  r.push(batch);
  while (r.next() !== null) { /* every command */ }
});
Deno.bench("parse and run 16 pipelined SETs", { group: "batch" }, () => {
  const r = reader;
  r.push(batch);
  for (let args = r.next(); args !== null; args = r.next()) engine.execute(client, args, out);
  out.reset();
});
Deno.bench("run INCR", { group: "command" }, () => {
  engine.execute(client, ["INCR", "counter:__rand_int__"], out);
  out.reset();
});
Deno.bench("run GET", { group: "command", baseline: true }, () => {
  engine.execute(client, ["GET", "key:0000000000000001"], out);
  out.reset();
});
Deno.bench(
  "read and run 16 pipelined SET",
  { group: "pipelined", baseline: true },
  pipelined([
    "SET",
    "key:__rand_int__",
    "xxx",
  ]),
);
Deno.bench(
  "read and run 16 pipelined GET",
  { group: "pipelined" },
  pipelined([
    "GET",
    "key:__rand_int__",
  ]),
);
Deno.bench(
  "read and run 16 pipelined INCR",
  { group: "pipelined" },
  pipelined([
    "INCR",
    "counter:__rand_int__",
  ]),
);
