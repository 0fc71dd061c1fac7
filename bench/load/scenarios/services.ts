/**
 * One main scenario for each of the other HTTP services, as the k6 scripts `k6/kv-http.ts`,
 * `k6/metastore-kv.ts` and `k6/kv-events-route.ts` run them for k6 users:
 *
 * - kv: 80% GET / 20% SET of 10,000 keys through the HTTP API (`POST /` command arrays);
 * - metastore: 70% linearizable range / 30% put of 10,000 keys through the etcd v3 JSON API;
 * - kv-events: 90% routing decisions for prompts 8 pods hold parts of, 10% event batches.
 *
 * Each ramps to 50 VUs over 10 s, holds 25 s, ramps down in 5 s.
 *
 * @module
 */
import type { Scenario } from "../scenario.ts";
import type { Stage } from "../stages.ts";

/** Ramp to 50 VUs over 10 s, hold 25 s, ramp down in 5 s (every scenario of this file, and the log's). */
export const STAGES: Stage[] = [
  { duration: "10s", target: 50 },
  { duration: "25s", target: 50 },
  { duration: "5s", target: 0 },
];
const KEYS = 10_000;
const VALUE = "v".repeat(100);

/** Nothing shared between VUs. */
export type NoData = Record<string, never>;

/** kv's HTTP API: GET and SET of 10,000 keys with 100-byte values. */
export function kvHttp(): Scenario<NoData> {
  return {
    name: "kv-http",
    description: "kv HTTP API: 80% GET / 20% SET of 10,000 keys (100-byte values), 50 VUs",
    stages: STAGES,
    thresholds: {
      http_req_failed: ["rate==0"],
      http_req_duration: ["p(99)<100"],
      checks: ["rate==1"],
    },
    async setup(ctx) {
      // Every key exists before the reads start.
      for (let i = 0; i < KEYS; i += 1000) {
        const cmds = Array.from({ length: 1000 }, (_, k) => ["SET", `key:${i + k}`, VALUE]);
        const r = await ctx.http.post("/pipeline", cmds);
        if (r.status !== 200) throw new Error(`seeding kv: HTTP ${r.status}`);
      }
      return {};
    },
    async iteration(vu) {
      const key = `key:${vu.rng.int(KEYS)}`;
      if (vu.rng.next() < 0.8) {
        const r = await vu.http.post("/", ["GET", key], { name: "get", expect: 200 });
        vu.check("value read", r.json<{ result?: string }>()?.result === VALUE);
      } else {
        const r = await vu.http.post("/", ["SET", key, VALUE], { name: "set", expect: 200 });
        vu.check("stored", r.json<{ result?: string }>()?.result === "OK");
      }
    },
  };
}

const b64 = (s: string) => btoa(s);

/** The metastore's etcd v3 JSON API: linearizable ranges and puts. */
export function metastoreKv(): Scenario<NoData> {
  return {
    name: "metastore-kv",
    description: "metastore v3 JSON API: 70% range / 30% put of 10,000 keys, 50 VUs",
    stages: STAGES,
    thresholds: {
      http_req_failed: ["rate==0"],
      http_req_duration: ["p(99)<250"],
      checks: ["rate==1"],
    },
    async setup(ctx) {
      // A new member serves before it has elected itself leader ("no leader", 503): wait for it.
      const deadline = Date.now() + 30_000;
      while (
        (await ctx.http.post("/v3/kv/put", { key: b64("key:0"), value: b64(VALUE) })).status !== 200
      ) {
        if (Date.now() > deadline) throw new Error("the metastore elected no leader in 30 s");
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 1000; i++) {
        const r = await ctx.http.post("/v3/kv/put", { key: b64(`key:${i}`), value: b64(VALUE) });
        if (r.status !== 200) {
          throw new Error(`seeding the metastore: HTTP ${r.status} ${r.body.slice(0, 200)}`);
        }
      }
      return {};
    },
    async iteration(vu) {
      const key = b64(`key:${vu.rng.int(vu.rng.next() < 0.7 ? 1000 : KEYS)}`);
      if (vu.rng.next() < 0.7) {
        const r = await vu.http.post("/v3/kv/range", { key }, { name: "range", expect: 200 });
        vu.check("range answered", r.json<{ header?: unknown }>()?.header !== undefined);
      } else {
        const r = await vu.http.post("/v3/kv/put", { key, value: b64(VALUE) }, {
          name: "put",
          expect: 200,
        });
        vu.check("put answered", r.json<{ header?: unknown }>()?.header !== undefined);
      }
    },
  };
}

const PODS = 8;
const PROMPTS = 200;
/** Blocks of prompt `p` (125 blocks: a 2,000-token prompt at 16 tokens a block). */
const promptHashes = (p: number) => Array.from({ length: 125 }, (_, b) => String(p * 1000 + b + 1));

/** kv-events: routing decisions against prompts the pods hold parts of, and event batches. */
export function kvEventsRoute(): Scenario<NoData> {
  return {
    name: "kv-events-route",
    description: "kv-events: 90% POST /route (125-block prompts, 8 pods), 10% POST /events, 50 VUs",
    stages: STAGES,
    thresholds: {
      http_req_failed: ["rate==0"],
      "http_req_duration{name:route}": ["p(99)<50"],
      checks: ["rate==1"],
    },
    async setup(ctx) {
      // Each prompt held by one pod in full and by the next one up to a random block.
      for (let p = 0; p < PROMPTS; p++) {
        const hashes = promptHashes(p);
        for (const [pod, upTo] of [[p % PODS, 125], [(p + 1) % PODS, 1 + ctx.rng.int(125)]]) {
          const r = await ctx.http.post("/events", {
            pod: `pod-${pod}`,
            events: [{ type: "BlockStored", block_hashes: hashes.slice(0, upTo) }],
          });
          if (r.status >= 300) throw new Error(`seeding kv-events: HTTP ${r.status}`);
        }
      }
      return {};
    },
    async iteration(vu) {
      const p = vu.rng.int(PROMPTS);
      if (vu.rng.next() < 0.9) {
        const r = await vu.http.post("/route", { block_hashes: promptHashes(p) }, {
          name: "route",
          expect: 200,
        });
        vu.check("routed", typeof r.json<{ pod?: string }>()?.pod === "string");
      } else {
        // A pod stores the prompt again (refreshing it), as engines report reuse.
        const r = await vu.http.post("/events", {
          pod: `pod-${p % PODS}`,
          events: [{ type: "BlockStored", block_hashes: promptHashes(p).slice(0, 8) }],
        }, { name: "events" });
        vu.check("events taken", r.status < 300);
      }
    },
  };
}
