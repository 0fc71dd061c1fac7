/**
 * kv-events: 90% routing decisions for 125-block prompts that 8 pods hold parts of, 10% event
 * batches (setup stores 200 prompts, each in full on one pod and in part on the next). Ramp to
 * 50 VUs; 40 s.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8003 k6/kv-events-route.ts
 *
 * Same scenario as `deno task load:kv-events` (bench/load/scenarios/services.ts).
 */
import { check } from "k6";
import http from "k6/http";
import type { Options } from "k6/options";
import { rampTo50, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";

seedRandom();

const BASE = (__ENV.BASE_URL ?? "http://127.0.0.1:8003").replace(/\/+$/, "");
const JSON_HEADERS = { headers: { "content-type": "application/json" } };
const PODS = 8;
const PROMPTS = 200;
const promptHashes = (p: number) => Array.from({ length: 125 }, (_, b) => String(p * 1000 + b + 1));

export const options: Options = {
  stages: rampTo50(),
  thresholds: {
    http_req_failed: ["rate==0"],
    "http_req_duration{name:route}": ["p(99)<50"],
    checks: ["rate==1"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup(): void {
  for (let p = 0; p < PROMPTS; p++) {
    const hashes = promptHashes(p);
    const held: [number, number][] = [[p % PODS, 125], [
      (p + 1) % PODS,
      1 + Math.floor(Math.random() * 125),
    ]];
    for (const [pod, upTo] of held) {
      http.post(
        `${BASE}/events`,
        JSON.stringify({
          pod: `pod-${pod}`,
          events: [{ type: "BlockStored", block_hashes: hashes.slice(0, upTo) }],
        }),
        JSON_HEADERS,
      );
    }
  }
}

export default function (): void {
  const p = Math.floor(Math.random() * PROMPTS);
  if (Math.random() < 0.9) {
    const r = http.post(`${BASE}/route`, JSON.stringify({ block_hashes: promptHashes(p) }), {
      ...JSON_HEADERS,
      tags: { name: "route" },
    });
    check(r, { "routed": (x) => x.status === 200 && typeof x.json("pod") === "string" });
  } else {
    const r = http.post(
      `${BASE}/events`,
      JSON.stringify({
        pod: `pod-${p % PODS}`,
        events: [{ type: "BlockStored", block_hashes: promptHashes(p).slice(0, 8) }],
      }),
      { ...JSON_HEADERS, tags: { name: "events" } },
    );
    check(r, { "events taken": (x) => x.status < 300 });
  }
}
