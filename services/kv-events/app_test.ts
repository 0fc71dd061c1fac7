import assert from "node:assert/strict";
import { createLogger } from "@deno-stores/shared/http";
import { createKvEventsApp } from "./app.ts";
import { BlockHasher } from "./block_hash.ts";
import { Ingest } from "./ingest.ts";
import { encodeMsgpack } from "./msgpack.ts";
import { Router } from "./router.ts";
import { CacheMap } from "./store.ts";
import { loadKvEventsConfig, parsePublishers } from "./config.ts";
import { ChainTable } from "./chain.ts";

function setup(maxPods = 8, chain?: ChainTable) {
  const logger = createLogger({ service: "kv-events", sink: () => {}, now: () => 0 });
  const newHasher = () => new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 4 });
  const map = new CacheMap({
    maxPods,
    chain: chain && { table: chain, blockSize: 4, hasher: newHasher() },
    onDrain: () => {}, // as the service: removed pods drain (map.drain here)
  });
  const hasher = newHasher();
  const router = new Router(map, hasher);
  const ingest = new Ingest(map, { defaultModel: "default", hooks: { warn: () => {} } });
  const service = createKvEventsApp({ map, router, ingest, logger, accessLog: false });
  service.lifecycle.markStarted();
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    service.request(path, {
      method: "POST",
      body: body instanceof Uint8Array
        ? body.slice() as Uint8Array<ArrayBuffer>
        : JSON.stringify(body),
      headers: { "content-type": "application/json", ...headers },
    });
  return { service, post, map, hasher };
}

const tokens = Array.from({ length: 40 }, (_, i) => 100 + i);
const toDec = (d: Uint8Array) => new DataView(d.buffer).getBigUint64(24).toString();

Deno.test("http: events as JSON and msgpack, then /route picks the pod with the prefix", async () => {
  const { post, hasher, service, map } = setup();
  const digests = hasher.all(tokens);
  let r = await post("/events", {
    pod: "a",
    model: "m",
    events: [{ type: "BlockStored", block_hashes: digests.map(toDec), block_size: 4 }],
  });
  assert.equal(r.status, 200, await r.clone().text());
  assert.equal((await r.json()).pod.blocks, 10);
  const batch = encodeMsgpack([0, [[
    "BlockStored",
    digests.slice(0, 3).map((d) => new DataView(d.buffer).getBigUint64(24)),
    null,
    [],
    4,
    null,
    "CPU",
  ]]]);
  r = await post("/events?pod=b&model=m", batch, { "content-type": "application/msgpack" });
  assert.equal(r.status, 200, await r.clone().text());
  r = await post("/route", { token_ids: tokens, model: "m" });
  const body = await r.json();
  assert.equal(r.status, 200);
  assert.equal(body.pod, "a");
  assert.equal(body.total_blocks, 10);
  assert.deepEqual(
    body.scores.map((s: { id: string; matched_blocks: number }) => [s.id, s.matched_blocks]),
    [["a", 10], ["b", 3]],
  );
  // Precomputed hashes as hex strings; candidates with load.
  r = await post("/route", {
    block_hashes: digests.map((d) =>
      "0x" + [...d].map((x) => x.toString(16).padStart(2, "0")).join("")
    ),
    model: "m",
    pods: [{ id: "b", load: 0 }, { id: "c", running: 1, waiting: 2 }],
  });
  const b2 = await r.json();
  assert.equal(b2.pod, "b");
  assert.equal(b2.scores[1].matched_blocks, 0);

  const pods = await (await service.request("/pods")).json();
  assert.deepEqual(pods.pods.map((p: { id: string }) => p.id), ["a", "b"]);
  const stats = await (await service.request("/stats")).json();
  assert.equal(stats.blocks, 10);
  assert.equal(stats.ingest.blocksStored, 13);
  assert.ok(stats.bytes_per_block > 0);
  // One run of 10 records (the event's blocks in order); no chain learned, so no link.
  assert.deepEqual(
    stats.models.map((m: Record<string, unknown>) => [m.model, m.blocks, m.records, m.links]),
    [["m", 10, 10, 0]],
  );
  const metrics = await (await service.request("/metrics")).text();
  assert.match(metrics, /kv_events_blocks_stored_total 13/);
  assert.match(metrics, /kv_events_route_seconds_count 2/);
  assert.match(metrics, /kv_events_index_blocks 10/);
  assert.match(metrics, /kv_events_draining_pods 0/);
  assert.equal((await service.request("/pods/a", { method: "DELETE" })).status, 200);
  assert.equal((await service.request("/pods/a", { method: "DELETE" })).status, 404);
  const after = await (await service.request("/metrics")).text();
  assert.match(after, /kv_events_draining_pods 1/);
  assert.equal((await (await service.request("/stats")).json()).draining_pods, 1);
  while (map.drain(4));
  assert.match(await (await service.request("/metrics")).text(), /kv_events_draining_pods 0/);
  assert.equal(map.totals().blocks, 3); // b's
});

Deno.test("http: learned chain links are counted in /metrics", async () => {
  const { post, hasher, service } = setup(8, new ChainTable(Uint32Array.of(1, 2)));
  const digests = hasher.all(tokens);
  let r = await post("/events", {
    pod: "a",
    model: "m",
    events: [{
      type: "BlockStored",
      block_hashes: digests.map(toDec),
      token_ids: tokens,
      block_size: 4,
    }],
  });
  assert.equal(r.status, 200, await r.clone().text());
  // The prompt is followed through its 10 links (no hashing), then one unknown block.
  r = await post("/route", { token_ids: [...tokens, 1, 2, 3, 4], model: "m" });
  assert.equal((await r.json()).pod, "a");
  const metrics = await (await service.request("/metrics")).text();
  assert.match(metrics, /kv_events_chain_learned_total 10\n/);
  // The first block is a chain's start (found by its root key), the 9 others right after it.
  assert.match(metrics, /kv_events_chain_in_order_total 9\n/);
  assert.match(metrics, /kv_events_chain_hits_total 10\n/);
  assert.match(metrics, /kv_events_chain_misses_total 1\n/);
  assert.match(metrics, /kv_events_chain_ambiguous_total 0\n/);
  assert.match(metrics, /kv_events_chain_orphans_total 0\n/);
  assert.match(metrics, /kv_events_chain_roots_refused_total 0\n/);
  const pods = await (await service.request("/pods")).json();
  assert.equal(pods.pods[0].roots_reproduced, 1, "the service's hasher agrees with the engine");
  assert.equal(pods.pods[0].roots_mismatched, 0);
  // A LoRA's blocks sent as JSON are learned under the LoRA; extra keys teach nothing.
  r = await post("/events", {
    pod: "a",
    model: "m",
    events: [{
      type: "BlockStored",
      block_hashes: hasher.all(tokens, { loraName: "sql" }).map(toDec),
      token_ids: tokens,
      block_size: 4,
      lora_id: 3,
      lora_name: "sql",
    }, {
      type: "BlockStored",
      block_hashes: [toDec(digests[0].map((b) => b ^ 1))],
      token_ids: tokens.slice(0, 4),
      block_size: 4,
      extra_keys: [["mm-hash"]],
    }, {
      // An empty LoRA name (the engine hashed it; no prompt can name it) teaches nothing.
      type: "BlockStored",
      block_hashes: [toDec(digests[0].map((b) => b ^ 2))],
      token_ids: tokens.slice(0, 4),
      block_size: 4,
      lora_id: 4,
      lora_name: "",
    }],
  });
  assert.equal(r.status, 200, await r.clone().text());
  const after = await (await service.request("/metrics")).text();
  assert.match(after, /kv_events_chain_learned_total 20\n/);
  assert.match(after, /kv_events_chain_lora_refused_total 1\n/);
  r = await post("/route", { token_ids: tokens, model: "m", lora_name: "sql" });
  assert.deepEqual((await r.json()).scores, [{ id: "a", matched_blocks: 10, score: 1 }]);
  // Without a chain table there is nothing to count.
  const plain = await (await setup().service.request("/metrics")).text();
  assert.doesNotMatch(plain, /kv_events_chain_/);
});

Deno.test("http: bad input gets a 4xx JSON error that says why", async () => {
  const { post } = setup(1);
  const cases: [unknown, number, RegExp][] = [
    [[], 400, /object/],
    [{}, 400, /token_ids or block_hashes/],
    [{ token_ids: [1, -2] }, 400, /token_ids\[1\]/],
    [{ token_ids: [1.5] }, 400, /token_ids\[0\]/],
    [{ token_ids: "1,2" }, 400, /array/],
    [{ block_hashes: [2 ** 60] }, 400, /strings/],
    [{ block_hashes: ["zz"] }, 400, /block hash/],
    [{ token_ids: [1], pods: [] }, 400, /empty/],
    [{ token_ids: [1], pods: [{ id: "" }] }, 400, /pods\[0\]\.id/],
    [{ token_ids: [1], pods: [{ id: "x", load: -1 }] }, 400, /load/],
    [{ token_ids: [1], model: 7 }, 400, /model/],
    [{ token_ids: [1, 2, 3, 4] }, 404, /no pod is known/],
  ];
  for (const [body, status, message] of cases) {
    const r = await post("/route", body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match((await r.json()).error.message, message, JSON.stringify(body));
  }
  const ev: [unknown, number, RegExp][] = [
    [{ events: [] }, 400, /pod is required/],
    [{ pod: "a", events: {} }, 400, /events must be an array/],
    [{ pod: "a", events: [{ type: "Nope" }] }, 400, /events\[0\]\.type/],
    [
      { pod: "a", events: [{ type: "BlockStored", block_hashes: [1], token_ids: [-1] }] },
      400,
      /token_ids/,
    ],
    [{ pod: "a", events: [{ type: "BlockRemoved", block_hashes: "x" }] }, 400, /block_hashes/],
    [
      { pod: "a", events: [{ type: "BlockStored", block_hashes: [1], lora_id: "x" }] },
      400,
      /lora_id/,
    ],
    [
      { pod: "a", events: [{ type: "BlockStored", block_hashes: [1], lora_name: 5 }] },
      400,
      /lora_name/,
    ],
    [{ pod: "a", events: [{ type: "AllBlocksCleared" }] }, 200, /./],
    [{ pod: "b", events: [{ type: "AllBlocksCleared" }] }, 409, /MAX_PODS/],
  ];
  for (const [body, status, message] of ev) {
    const r = await post("/events", body);
    assert.equal(r.status, status, JSON.stringify(body));
    if (status !== 200) assert.match((await r.json()).error.message, message);
    else await r.body?.cancel();
  }
  let r = await post("/events", "{not json", {});
  assert.equal(r.status, 400);
  await r.body?.cancel();
  r = await post("/events?pod=a", Uint8Array.of(0xc1), { "content-type": "application/msgpack" });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /msgpack/);
  r = await post("/events", Uint8Array.of(0x90), { "content-type": "application/msgpack" });
  assert.equal(r.status, 400);
  await r.body?.cancel();
});

Deno.test("config: publishers, endpoints and defaults", () => {
  assert.deepEqual(parsePublishers("p1=tcp://10.0.0.1:5557|tcp://10.0.0.1:5558, p2=tcp://h:1"), [
    { pod: "p1", endpoint: "tcp://10.0.0.1:5557", replay: "tcp://10.0.0.1:5558" },
    { pod: "p2", endpoint: "tcp://h:1", replay: null },
  ]);
  for (const bad of ["p1", "=tcp://h:1", "p=http://h:1", "p=tcp://h:0", "p=tcp://h:1|x|y"]) {
    assert.throws(() => parsePublishers(bad), Error, bad);
  }
  assert.throws(() => parsePublishers("p=tcp://h:1,p=tcp://h:2"), /twice/);
  const c = loadKvEventsConfig({});
  assert.equal(c.PORT, 8003);
  assert.equal(c.HASH_ALGO, "sha256_cbor");
  assert.equal(c.BLOCK_SIZE, 16);
  assert.throws(() => loadKvEventsConfig({ HASH_ALGO: "md5" }));
  assert.throws(() => loadKvEventsConfig({ ZMQ_BIND: "udp://x" }));
  assert.equal(loadKvEventsConfig({ ZMQ_BIND: "tcp://*:5557" }).ZMQ_BIND, "tcp://*:5557");
  assert.equal(c.LEARN_CHAINS, "on");
  assert.equal(loadKvEventsConfig({ LEARN_CHAINS: "off" }).LEARN_CHAINS, "off");
  assert.throws(() => loadKvEventsConfig({ LEARN_CHAINS: "0" }), /LEARN_CHAINS/);
  // The variable it replaced is refused with what to set instead (CHAIN_BLOCKS=0 turned them off).
  assert.throws(() => loadKvEventsConfig({ CHAIN_BLOCKS: "0" }), /CHAIN_BLOCKS.*LEARN_CHAINS/s);
});
