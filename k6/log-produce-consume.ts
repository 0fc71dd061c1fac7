/**
 * The log's main scenario: two VUs in three post 10 records of 1 KiB with acks=fsync to a
 * 4-partition topic, keyed by user; every third VU long-polls a partition from where it left off
 * and commits its offset for a group. Ramp to 50 VUs; 40 s.
 *
 *   k6 run -e BASE_URL=http://127.0.0.1:8004 k6/log-produce-consume.ts
 *
 * Same workload as `bench/log_compare.ts`'s HTTP phase, with consumers beside the producers.
 */
import { check } from "k6";
import http from "k6/http";
import type { Options } from "k6/options";
import { rampTo50, seedRandom, SUMMARY_TREND_STATS } from "./lib/config.ts";

seedRandom();

const BASE = (__ENV.BASE_URL ?? "http://127.0.0.1:8004").replace(/\/+$/, "");
const TOPIC = __ENV.TOPIC ?? "k6-events";
const PARTITIONS = 4;
const JSON_HEADERS = { headers: { "content-type": "application/json" } };
const VALUE = "x".repeat(1024);

export const options: Options = {
  stages: rampTo50(),
  thresholds: {
    http_req_failed: ["rate==0"],
    "http_req_duration{name:produce}": ["p(99)<50"],
    "http_req_duration{name:fetch}": ["p(99)<1500"],
    checks: ["rate==1"],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export function setup(): void {
  // 409 when it exists from an earlier run is fine.
  http.post(
    `${BASE}/topics`,
    JSON.stringify({ name: TOPIC, partitions: PARTITIONS }),
    JSON_HEADERS,
  );
}

/** Where each consumer VU is, per partition (VU-local state). */
const next: number[] = [];

export default function (): void {
  // Every third VU consumes (__VU counts from 1), the others produce.
  if (__VU % 3 !== 0) {
    const records = Array.from({ length: 10 }, (_, i) => ({
      key: `user-${Math.floor(Math.random() * 10_000)}`,
      value: VALUE,
      headers: [{ key: "seq", value: String(i) }],
    }));
    const res = http.post(
      `${BASE}/topics/${TOPIC}`,
      JSON.stringify({ format: "string", acks: "fsync", records }),
      { ...JSON_HEADERS, tags: { name: "produce" } },
    );
    check(res, {
      "produced": (r) => r.status === 200 && (r.json("offsets") as unknown[]).length === 10,
    });
    return;
  }
  const p = __VU % PARTITIONS;
  const offset = next[p] ?? 0;
  const res = http.get(
    `${BASE}/topics/${TOPIC}/partitions/${p}/records?offset=${offset}&max_bytes=65536&max_wait_ms=1000&format=string`,
    { tags: { name: "fetch" } },
  );
  check(res, { "fetched": (r) => r.status === 200 });
  if (res.status === 200) {
    next[p] = res.json("next_offset") as number;
    const commit = http.post(
      `${BASE}/consumers/k6-${__VU}/offsets`,
      JSON.stringify({ offsets: [{ topic: TOPIC, partition: p, offset: next[p] }] }),
      { ...JSON_HEADERS, tags: { name: "commit" } },
    );
    check(commit, { "committed": (r) => r.status === 200 });
  }
}
