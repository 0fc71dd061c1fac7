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
