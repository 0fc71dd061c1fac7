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
/** Commands as one pipelined write. */
const pipeline = (cmds: string[][]) => new Uint8Array(cmds.flatMap((c) => [...encodeCommand(c)]));
/** What redis-benchmark sends for -P 16 with -r: 16 SETs of 20-byte keys. */
const batch = pipeline(
  Array.from({ length: 16 }, (_, i) => ["SET", `key:${String(i).padStart(16, "0")}`, "xxx"]),
);

const reader = new RespReader();

/** 16 of one command as redis-benchmark -P 16 sends them, read and run as a connection's. */
function pipelined(args: string[]): () => void {
  const bytes = pipeline(Array.from({ length: 16 }, () => args));
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
  "read and run 16 pipelined GET",
  { group: "pipelined", baseline: true },
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
