import assert from "node:assert/strict";
import { ManualClock } from "./clock.ts";
import { type Envelope, SimNetwork } from "./network.ts";
import { Prng } from "./prng.ts";

function run(net: SimNetwork<string, number>, untilMs: number, stepMs = 1) {
  const out: Envelope<string, number>[] = [];
  for (let t = 0; t <= untilMs; t += stepMs) out.push(...net.step(t));
  return out;
}

Deno.test("network: delivers within the latency range, in delivery-time order", () => {
  const net = new SimNetwork<string, number>({ rand: new Prng(1), latencyMs: [5, 15] });
  for (let i = 0; i < 100; i++) net.send(1, 2, `m${i}`);
  assert.equal(net.inFlight(), 100);
  assert.deepEqual(net.step(4), []);
  const got = run(net, 20);
  assert.equal(got.length, 100);
  for (const e of got) assert.ok(e.deliverAt >= 5 && e.deliverAt <= 15);
  for (let i = 1; i < got.length; i++) assert.ok(got[i - 1].deliverAt <= got[i].deliverAt);
  // Random latencies reorder a datagram network.
  assert.notDeepEqual(got.map((e) => e.msg), Array.from({ length: 100 }, (_, i) => `m${i}`));
  assert.equal(net.stats().delivered, 100);
});

Deno.test("network: fifo links keep send order", () => {
  const net = new SimNetwork<string, number>({
    rand: new Prng(2),
    latencyMs: [1, 50],
    fifo: true,
    reorderProbability: 0.5,
  });
  for (let i = 0; i < 200; i++) {
    net.send(1, 2, `a${i}`);
    net.send(3, 2, `b${i}`);
  }
  const got = run(net, 1000);
  const a = got.filter((e) => e.from === 1).map((e) => e.msg);
  const b = got.filter((e) => e.from === 3).map((e) => e.msg);
  assert.deepEqual(a, Array.from({ length: 200 }, (_, i) => `a${i}`));
  assert.deepEqual(b, Array.from({ length: 200 }, (_, i) => `b${i}`));
});

Deno.test("network: drop and duplicate probabilities", () => {
  const net = new SimNetwork<number, number>({
    rand: new Prng(3),
    dropProbability: 0.2,
    duplicateProbability: 0.1,
  });
  const N = 10_000;
  for (let i = 0; i < N; i++) net.send(1, 2, i);
  const got = net.step(1_000);
  const s = net.stats();
  assert.ok(s.dropped > 1700 && s.dropped < 2300, `dropped ${s.dropped}`);
  assert.ok(s.duplicated > 600 && s.duplicated < 1000, `duplicated ${s.duplicated}`);
  assert.equal(got.length, N - s.dropped + s.duplicated);
  assert.equal(got.filter((e) => e.duplicate).length, s.duplicated);
});

Deno.test("network: partition, isolate, cut and heal", () => {
  const net = new SimNetwork<string, number>({ rand: new Prng(4), latencyMs: [1, 1] });
  net.partition([1, 2], [3]);
  assert.equal(net.send(1, 3, "x"), "blocked");
  assert.equal(net.send(3, 2, "x"), "blocked");
  assert.equal(net.send(1, 2, "ok"), "sent");
  assert.deepEqual(net.step(1).map((e) => e.msg), ["ok"]);
  net.heal();
  assert.equal(net.send(1, 3, "healed"), "sent");
  // A link cut while a message is in flight loses it.
  net.isolate(3);
  assert.deepEqual(net.step(2), []);
  assert.equal(net.stats().blocked, 3);
  assert.equal(net.send(99, 3, "x"), "blocked"); // isolation covers nodes not seen before
  net.heal();
  net.cut(1, 2);
  assert.equal(net.send(1, 2, "x"), "blocked");
  assert.equal(net.send(2, 1, "back"), "sent");
  net.uncut(1, 2);
  assert.equal(net.send(1, 2, "fwd"), "sent");
  assert.deepEqual(net.step(10).map((e) => e.msg).sort(), ["back", "fwd"]);
});

Deno.test("network: crash drops in-flight messages to and from the node until restart", () => {
  const net = new SimNetwork<string, number>({ rand: new Prng(5), latencyMs: [10, 10] });
  net.send(1, 2, "to2");
  net.send(2, 3, "from2");
  net.send(1, 3, "other");
  net.crash(2);
  assert.equal(net.inFlight(), 1);
  assert.equal(net.send(1, 2, "x"), "crashed");
  assert.ok(net.isDown(2));
  net.restart(2);
  net.send(1, 2, "after");
  assert.deepEqual(net.step(100).map((e) => e.msg), ["other", "after"]);
});

Deno.test("network: a filter drops chosen messages; popNext drives event-style loops", () => {
  const clock = new ManualClock();
  const net = new SimNetwork<string, number>({ rand: new Prng(6), latencyMs: [1, 9], clock });
  net.setFilter((e) => !e.msg.startsWith("drop"));
  assert.equal(net.send(1, 2, "drop-me"), "filtered");
  for (let i = 0; i < 5; i++) net.send(1, 2, `m${i}`);
  const seen: number[] = [];
  for (let e = net.popNext(); e !== undefined; e = net.popNext()) seen.push(e.deliverAt);
  assert.equal(seen.length, 5);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
  clock.advance(100);
  net.send(1, 2, "late");
  assert.equal(net.pending()[0].sentAt, 100);
  assert.equal(net.nextDeliveryAt()! >= 101, true);
});

Deno.test("network: the same seed gives the same trace", () => {
  const trace = (seed: number) => {
    const rand = new Prng(seed);
    const net = new SimNetwork<number, number>({
      rand,
      latencyMs: [1, 30],
      dropProbability: 0.1,
      duplicateProbability: 0.05,
      reorderProbability: 0.2,
    });
    const out: string[] = [];
    for (let t = 0; t < 500; t++) {
      if (t % 50 === 0) net.partition([rand.nextInt(3)], [rand.nextInt(3)]);
      if (t % 70 === 0) net.heal();
      net.send(rand.nextInt(3), rand.nextInt(3), t);
      for (const e of net.step(t)) {
        out.push(`${e.deliverAt.toFixed(3)}:${e.from}->${e.to}:${e.msg}`);
      }
    }
    return out;
  };
  assert.deepEqual(trace(77), trace(77));
  assert.notDeepEqual(trace(77), trace(78));
});
