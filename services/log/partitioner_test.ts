import assert from "node:assert/strict";
import { murmur2, Partitioner, partitionForKey } from "./partitioner.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

Deno.test("murmur2: Kafka's published values", () => {
  // The values Kafka's own tests hold its Utils.murmur2 to (every tail length 0-3 appears).
  const cases: [string, number][] = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
    ["1", -1993445489],
    ["12", 126087238],
    ["123", -267702483],
    ["1234", -1614185708],
    ["12345", -1188365604],
  ];
  for (const [s, want] of cases) assert.equal(murmur2(utf8(s)), want, s);
});

Deno.test("partitioner: keys stick to a partition, keyless records go round robin", () => {
  assert.equal(partitionForKey(utf8("21"), 7), (-973932308 & 0x7fffffff) % 7);
  const p = new Partitioner();
  const k = utf8("user-42");
  const first = p.choose(12, k);
  for (let i = 0; i < 5; i++) assert.equal(p.choose(12, k), first);
  assert.deepEqual([0, 1, 2, 3].map(() => p.choose(3, null)), [0, 1, 2, 0]);
  assert.equal(p.choose(3, k, 2), 2);
  assert.equal(murmur2(new Uint8Array(0)), murmur2(new Uint8Array(0)));
});
