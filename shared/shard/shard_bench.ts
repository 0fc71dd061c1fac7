/**
 * `deno bench -A shared/shard/shard_bench.ts`
 *
 * ShardMap and SharedShardTable against a plain `Map` baseline, 65,536 keys
 * holding 256-byte values (the Map and ShardMap hold references; the table
 * copies bytes in and out of shared memory, taking its shard lock each time).
 *
 * @module
 */
import { ShardMap } from "./shard_map.ts";
import { SharedShardTable } from "./shared_table.ts";

const N = 1 << 16;
const keys = Array.from({ length: N }, (_, i) => `task:${(i * 2654435761) >>> 0}`);
const value = new Uint8Array(256).fill(42);
const other = new Uint8Array(256).fill(7);

const map = new Map<string, Uint8Array>();
const shardMap = new ShardMap<Uint8Array>(64);
const table = SharedShardTable.create({ shardCount: 64, slotsPerShard: 2048 });
for (const k of keys) {
  map.set(k, value);
  shardMap.set(k, value);
  table.set(k, value);
}

let i = 0;
const nextKey = () => keys[i++ & (N - 1)]!;
let sink = 0;

// ---- get
Deno.bench("Map.get", { group: "get", baseline: true }, () => {
  sink += map.get(nextKey())!.length;
});
Deno.bench("ShardMap.get", { group: "get" }, () => {
  sink += shardMap.get(nextKey())!.length;
});
Deno.bench("SharedShardTable.get (copy out)", { group: "get" }, () => {
  sink += table.get(nextKey())!.length;
});
Deno.bench("SharedShardTable.read (zero-copy view)", { group: "get" }, () => {
  sink += table.read(nextKey(), (b) => b.length)!;
});
Deno.bench("Map.get miss", { group: "get miss", baseline: true }, () => {
  sink += map.get(`${nextKey()}x`) === undefined ? 1 : 0;
});
Deno.bench("ShardMap.get miss", { group: "get miss" }, () => {
  sink += shardMap.get(`${nextKey()}x`) === undefined ? 1 : 0;
});
Deno.bench("SharedShardTable.get miss", { group: "get miss" }, () => {
  sink += table.get(`${nextKey()}x`) === undefined ? 1 : 0;
});

// ---- set (overwrite existing keys)
Deno.bench("Map.set overwrite", { group: "set", baseline: true }, () => {
  map.set(nextKey(), i & 1 ? value : other);
});
Deno.bench("ShardMap.set overwrite", { group: "set" }, () => {
  shardMap.set(nextKey(), i & 1 ? value : other);
});
Deno.bench("SharedShardTable.set overwrite (copy in)", { group: "set" }, () => {
  table.set(nextKey(), i & 1 ? value : other);
});
Deno.bench("SharedShardTable.update (read-modify-write)", { group: "set" }, () => {
  table.update(nextKey(), (old) => old);
});

// ---- insert + delete (churn)
let j = 0;
Deno.bench("Map insert+delete", { group: "insert+delete", baseline: true }, () => {
  const k = `new:${j++ & 1023}`;
  map.set(k, value);
  map.delete(k);
});
Deno.bench("ShardMap insert+delete", { group: "insert+delete" }, () => {
  const k = `new:${j++ & 1023}`;
  shardMap.set(k, value);
  shardMap.delete(k);
});
Deno.bench("SharedShardTable insert+delete", { group: "insert+delete" }, () => {
  const k = `new:${j++ & 1023}`;
  table.set(k, value);
  table.delete(k);
});

// ---- page of 100 (resuming where the last one stopped)
let mapIter = map.entries();
Deno.bench("Map iterator, 100 entries", { group: "page 100", baseline: true }, () => {
  for (let n = 0; n < 100; n++) {
    const r = mapIter.next();
    if (r.done) mapIter = map.entries();
    else sink += r.value[1].length;
  }
});
let smCursor: string | null = null;
Deno.bench("ShardMap.page limit 100", { group: "page 100" }, () => {
  const p = shardMap.page({ cursor: smCursor, limit: 100 });
  smCursor = p.cursor;
  sink += p.items.length;
});
let tCursor: string | null = null;
Deno.bench("SharedShardTable.page limit 100", { group: "page 100" }, () => {
  const p = table.page({ cursor: tCursor, limit: 100 });
  tCursor = p.cursor;
  sink += p.items.length;
});
Deno.bench("ShardMap.page limit 100, filter 1 in 10", { group: "page 100 filtered" }, () => {
  const p = shardMap.page({
    cursor: smCursor,
    limit: 100,
    filter: (k) => k.charCodeAt(k.length - 1) === 55,
    maxScan: 10_000,
  });
  smCursor = p.cursor;
  sink += p.items.length;
});
Deno.bench(
  "SharedShardTable.page limit 100, filter 1 in 10",
  { group: "page 100 filtered" },
  () => {
    const p = table.page({
      cursor: tCursor,
      limit: 100,
      filter: (k) => k.charCodeAt(k.length - 1) === 55,
      maxScan: 10_000,
    });
    tCursor = p.cursor;
    sink += p.items.length;
  },
);

// ---- id generation
let plain = 0;
Deno.bench("plain counter", { group: "sequence", baseline: true }, () => {
  sink += ++plain;
});
Deno.bench("SharedShardTable.nextSequence", { group: "sequence" }, () => {
  sink += table.nextSequence();
});

globalThis.addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
