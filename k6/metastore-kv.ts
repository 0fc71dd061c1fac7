/**
 * The metastore's etcd v3 JSON API: 70% linearizable range / 30% put over 10,000 keys (1,000
 * written by setup). Ramp to 50 VUs; 40 s. Works against etcd's JSON gateway too.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:2379 k6/metastore-kv.ts
 *
 * Same scenario as `deno task load:metastore` (bench/load/scenarios/services.ts).
 */
import encoding from "k6/encoding";
import { check, sleep } from "k6";
import http from "k6/http";
import type { Options } from "k6/options";
import { rampTo50, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";

seedRandom();

const BASE = (__ENV.BASE_URL ?? "http://127.0.0.1:2379").replace(/\/+$/, "");
const JSON_HEADERS = { headers: { "content-type": "application/json" } };
const KEYS = 10_000;
const VALUE = encoding.b64encode("v".repeat(100));
const key = (i: number) => encoding.b64encode(`key:${i}`);

export const options: Options = {
  stages: rampTo50(),
  thresholds: {
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(99)<250"],
    checks: ["rate==1"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup(): void {
  // A new member serves before it has a leader ("no leader", 503): wait for it.
  for (let i = 0; i < 300; i++) {
    const r = http.post(
      `${BASE}/v3/kv/put`,
      JSON.stringify({ key: key(0), value: VALUE }),
      JSON_HEADERS,
    );
    if (r.status === 200) break;
    sleep(0.1);
  }
  for (let i = 0; i < 1000; i++) {
    http.post(`${BASE}/v3/kv/put`, JSON.stringify({ key: key(i), value: VALUE }), JSON_HEADERS);
  }
}

export default function (): void {
  const k = key(Math.floor(Math.random() * (Math.random() < 0.7 ? 1000 : KEYS)));
  if (Math.random() < 0.7) {
    const r = http.post(`${BASE}/v3/kv/range`, JSON.stringify({ key: k }), {
      ...JSON_HEADERS,
      tags: { name: "range" },
    });
    check(r, { "range answered": (x) => x.status === 200 });
  } else {
    const r = http.post(`${BASE}/v3/kv/put`, JSON.stringify({ key: k, value: VALUE }), {
      ...JSON_HEADERS,
      tags: { name: "put" },
    });
    check(r, { "put answered": (x) => x.status === 200 });
  }
}
