/**
 * kv's HTTP API: 80% GET / 20% SET of 10,000 keys with 100-byte values (setup writes them all
 * through `/pipeline`). Ramp to 50 VUs; 40 s.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8005 k6/kv-http.ts
 *
 * Same scenario as `deno task load:kv` (bench/load/scenarios/services.ts).
 */
import { check } from "k6";
import http from "k6/http";
import type { Options } from "k6/options";
import { rampTo50, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";

seedRandom();

const BASE = (__ENV.BASE_URL ?? "http://127.0.0.1:8005").replace(/\/+$/, "");
const JSON_HEADERS = { headers: { "content-type": "application/json" } };
const KEYS = 10_000;
const VALUE = "v".repeat(100);

export const options: Options = {
  stages: rampTo50(),
  thresholds: {
    http_req_failed: ["rate==0"],
    http_req_duration: ["p(99)<100"],
    checks: ["rate==1"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup(): void {
  for (let i = 0; i < KEYS; i += 1000) {
    const cmds = Array.from({ length: 1000 }, (_, k) => ["SET", `key:${i + k}`, VALUE]);
    http.post(`${BASE}/pipeline`, JSON.stringify(cmds), JSON_HEADERS);
  }
}

export default function (): void {
  const key = `key:${Math.floor(Math.random() * KEYS)}`;
  if (Math.random() < 0.8) {
    const r = http.post(`${BASE}/`, JSON.stringify(["GET", key]), {
      ...JSON_HEADERS,
      tags: { name: "get" },
    });
    check(r, { "value read": (x) => x.status === 200 && x.json("result") === VALUE });
  } else {
    const r = http.post(`${BASE}/`, JSON.stringify(["SET", key, VALUE]), {
      ...JSON_HEADERS,
      tags: { name: "set" },
    });
    check(r, { "stored": (x) => x.status === 200 && x.json("result") === "OK" });
  }
}
