import assert from "node:assert/strict";
import {
  decodeOffsetKey,
  decodeOffsetValue,
  encodeOffsetKey,
  encodeOffsetValue,
  GroupStore,
  type OffsetsLog,
} from "./groups.ts";
import type { DecodedRecord, LogRecord } from "./record_batch.ts";

/** An offsets partition in memory (the store's contract: append durable, replay everything). */
class MemLog implements OffsetsLog {
  rows: DecodedRecord[] = [];
  append(records: LogRecord[]): Promise<void> {
    for (const r of records) {
      this.rows.push({
        offset: this.rows.length,
        timestamp: r.timestamp ?? 0,
        key: r.key,
        value: r.value,
        headers: [],
      });
    }
    return Promise.resolve();
  }
  async *records(): AsyncIterable<DecodedRecord> {
    for (const r of this.rows) yield await Promise.resolve(r);
  }
}

Deno.test("groups: keys and values round trip", () => {
  const k = encodeOffsetKey("billing-é", "orders.v2", 4_000_000_000);
  assert.deepEqual(decodeOffsetKey(k), {
    group: "billing-é",
    topic: "orders.v2",
    partition: 4_000_000_000,
  });
  const v = encodeOffsetValue(2 ** 53 - 1, 1_700_000_000_000, "consumer-7");
  assert.deepEqual(decodeOffsetValue(v), {
    offset: 2 ** 53 - 1,
    timestamp: 1_700_000_000_000,
    metadata: "consumer-7",
  });
});

Deno.test("groups: damaged keys and values decode to null, never throw", () => {
  const k = encodeOffsetKey("g", "t", 1);
  for (let n = 0; n < k.length; n++) assert.equal(decodeOffsetKey(k.subarray(0, n)), null);
  assert.equal(decodeOffsetKey(Uint8Array.of(2, ...k.subarray(1))), null, "unknown version");
  const longer = new Uint8Array(k.length + 1);
  longer.set(k);
  assert.equal(decodeOffsetKey(longer), null, "trailing bytes");
  const lying = k.slice();
  lying[2] = 200; // group length past the end
  assert.equal(decodeOffsetKey(lying), null);
  const badUtf8 = encodeOffsetKey("ab", "t", 1);
  badUtf8[3] = 0xff;
  assert.equal(decodeOffsetKey(badUtf8), null);
  const v = encodeOffsetValue(5, 6, "m");
  for (let n = 0; n < v.length; n++) assert.equal(decodeOffsetValue(v.subarray(0, n)), null);
  const huge = v.slice();
  huge[1] = 0xff; // offset beyond 2^53
  assert.equal(decodeOffsetValue(huge), null);
});

Deno.test("groups: commit, read back, delete; rebuilt from the topic on open", async () => {
  const logs = [new MemLog(), new MemLog(), new MemLog()];
  let now = 1000;
  const s = await GroupStore.open(logs, () => now);
  await s.commit("a", [{ topic: "t", partition: 1, offset: 10 }, {
    topic: "t",
    partition: 0,
    offset: 3,
  }]);
  now = 2000;
  await s.commit("a", [{ topic: "t", partition: 1, offset: 12, metadata: "x" }]);
  await s.commit("b", [{ topic: "u", partition: 0, offset: 7 }]);
  assert.deepEqual(s.offsets("a").map((o) => [o.topic, o.partition, o.offset, o.metadata]), [
    ["t", 0, 3, ""],
    ["t", 1, 12, "x"],
  ]);
  assert.equal(s.offsets("a")[1].timestamp, 2000);
  assert.deepEqual(s.groups(), ["a", "b"]);
  assert.deepEqual(s.offsets("a", "u"), []);
  assert.deepEqual(s.offsets("nobody"), []);

  // A group's records all go to one partition of the topic.
  const holding = logs.filter((l) => l.rows.some((r) => decodeOffsetKey(r.key!)?.group === "a"));
  assert.equal(holding.length, 1);

  assert.equal(await s.deleteGroup("b"), true);
  assert.equal(await s.deleteGroup("b"), false);
  await s.forgetTopic("nothing");

  // Junk in the topic is skipped and counted.
  logs[0].rows.push({ offset: 99, timestamp: 0, key: Uint8Array.of(9), value: null, headers: [] });
  const again = await GroupStore.open(logs);
  assert.deepEqual(again.groups(), ["a"]);
  assert.deepEqual(again.offsets("a"), s.offsets("a"));
  assert.equal(again.skipped, 1);

  await again.forgetTopic("t");
  assert.deepEqual(again.groups(), []);
  assert.deepEqual((await GroupStore.open(logs)).groups(), []);
});
