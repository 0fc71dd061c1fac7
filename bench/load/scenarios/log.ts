/**
 * The log's main scenario, as `k6/log-produce-consume.ts` runs it for k6 users: two VUs in three
 * produce 10 keyed 1 KiB records with acks=fsync to a 4-partition topic, every third long-polls
 * one partition from where it left off and commits its group's offset. Ramp to 50 VUs; 40 s.
 *
 * @module
 */
import type { Scenario, VuContext } from "../scenario.ts";
import { STAGES } from "./services.ts";

const TOPIC = "load-events";
const PARTITIONS = 4;
const VALUE = "x".repeat(1024);

/** Nothing shared: the topic is created by setup. */
export type LogData = Record<string, never>;

async function produce(vu: VuContext<LogData>): Promise<void> {
  const records = Array.from({ length: 10 }, (_, i) => ({
    key: `user-${vu.rng.int(10_000)}`,
    value: VALUE,
    headers: [{ key: "seq", value: String(i) }],
  }));
  const res = await vu.http.post(`/topics/${TOPIC}`, { format: "string", acks: "fsync", records }, {
    name: "produce",
    expect: 200,
  });
  vu.check("produced", (res.json<{ offsets?: unknown[] }>()?.offsets ?? []).length === 10);
}

async function consume(vu: VuContext<LogData>): Promise<void> {
  const p = vu.id % PARTITIONS;
  const next = (vu.state.next ??= {}) as Record<number, number>;
  const offset = next[p] ?? 0;
  const res = await vu.http.get(
    `/topics/${TOPIC}/partitions/${p}/records?offset=${offset}&max_bytes=65536&max_wait_ms=1000&format=string`,
    { name: "fetch", expect: 200 },
  );
  const got = res.json<{ next_offset?: number }>()?.next_offset;
  if (!vu.check("fetched", typeof got === "number")) return;
  next[p] = got!;
  await vu.http.post(`/consumers/load-${vu.id}/offsets`, {
    offsets: [{ topic: TOPIC, partition: p, offset: got }],
  }, { name: "commit", expect: 200 });
}

/** Producers and long-polling consumers on one topic. */
export function logProduceConsume(): Scenario<LogData> {
  return {
    name: "log-produce-consume",
    description:
      "Log: 2 VUs in 3 produce 10 x 1 KiB (acks=fsync), 1 in 3 long-polls and commits, 50 VUs",
    stages: STAGES,
    thresholds: {
      http_req_failed: ["rate==0"],
      "http_req_duration{name:produce}": ["p(99)<50"],
      "http_req_duration{name:fetch}": ["p(99)<1500"],
      checks: ["rate==1"],
    },
    async setup(ctx) {
      const res = await ctx.http.post("/topics", { name: TOPIC, partitions: PARTITIONS });
      if (res.status !== 201 && res.status !== 409) {
        throw new Error(`creating topic ${TOPIC}: HTTP ${res.status}`);
      }
      return {};
    },
    // Every third VU consumes (so that even a scaled-down run has consumers).
    iteration: (vu) => (vu.id % 3 === 2 ? consume(vu) : produce(vu)),
  };
}
