/**
 * `deno bench` for kv-events' hot paths (the full report with percentiles and peers is
 * bench/kv_events.ts).
 */
import { BlockHasher, intBlockHash } from "./block_hash.ts";
import { ParsedBatch, readEventBatch } from "./fast_events.ts";
import { BlockIndex } from "./index.ts";
import { encodeMsgpack } from "./msgpack.ts";
import { Router } from "./router.ts";
import { CacheMap } from "./store.ts";
import { ChainTable } from "./chain.ts";

const tokens = Array.from({ length: 2000 }, (_, i) => (i * 7919) % 150_000);
// As POST /route hands them to the router.
const u32 = Uint32Array.from(tokens);
const map = new CacheMap({ maxPods: 32 });
const ints = new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 16 }).all(tokens)
  .map((d) => intBlockHash(d));
map.apply("pod-1", "m", [{
  type: "BlockStored",
  blockHashes: ints,
  parentBlockHash: null,
  tokenIds: [],
  blockSize: 16,
  loraId: null,
  medium: null,
}]);
const candidates = Array.from({ length: 32 }, (_, i) => ({ id: `pod-${i}`, load: i % 4 }));
const cold = new Router(map, new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 16 }));
// The same prompt through the links its stored event taught.
const chained = new CacheMap({
  maxPods: 32,
  chain: { table: new ChainTable(Uint32Array.of(1, 2)), blockSize: 16 },
});
chained.apply("pod-1", "m", [{
  type: "BlockStored",
  blockHashes: ints,
  parentBlockHash: null,
  tokenIds: tokens.slice(0, ints.length * 16),
  blockSize: 16,
  loraId: null,
  medium: null,
}]);
const learned = new Router(
  chained,
  new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 16 }),
);
const batch = encodeMsgpack([0, [[
  "BlockStored",
  Array.from({ length: 8 }, (_, i) => (1n << 63n) + BigInt(i)),
  null,
  Array.from({ length: 128 }, (_, i) => i),
  16,
  null,
  "GPU",
]]]);

Deno.bench("route 2,000 tokens, every block hashed", { group: "route" }, () => {
  cold.route("m", { tokens: u32 }, candidates);
});
Deno.bench("route 2,000 tokens, learned links", { group: "route", baseline: true }, () => {
  learned.route("m", { tokens: u32 }, candidates);
});
const parsed = new ParsedBatch();
Deno.bench("read + index a batch of 8 blocks", () => {
  readEventBatch(batch, parsed);
  map.applyParsed("pod-2", "m", parsed);
});
// Growing from empty: every segment resizes on the way (the pauses that puts on events).
Deno.bench("index 100,000 new blocks into an empty table", { n: 20, warmup: 2 }, () => {
  const ix = new BlockIndex(32);
  let x = 1, y = 2;
  for (let i = 0; i < 100_000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    y = (Math.imul(y ^ (y >>> 13), 0x5bd1e995) + i) | 0;
    ix.add(x >>> 0, y >>> 0, i & 31, 0);
  }
});
