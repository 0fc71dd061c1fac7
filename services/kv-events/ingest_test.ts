import assert from "node:assert/strict";
import { encodeMsgpack } from "./msgpack.ts";
import { Ingest, parseTopic, PublisherStream, readSeq, seqFrame } from "./ingest.ts";
import { decodeEventBatch } from "./events.ts";
import { CacheMap } from "./store.ts";
import { ChainTable } from "./chain.ts";
import { BlockHasher } from "./block_hash.ts";

const enc = new TextEncoder();
const TOPIC = enc.encode("kv@pod-1@llama");

/** A batch storing one block whose hash is `1000 + n` (and removing nothing). */
const payload = (n: number) =>
  encodeMsgpack([1.5, [["BlockStored", [BigInt(1000 + n)], null, [1, 2], 2, null, null]]]);
const live = (n: number, topic = TOPIC) => [topic, seqFrame(n), payload(n)];
const replayed = (n: number) => [new Uint8Array(0), seqFrame(n), payload(n)];
const END = [new Uint8Array(0), seqFrame(-1), new Uint8Array(0)];

function setup(withReplay = true, clock = () => 0) {
  const warnings: string[] = [];
  const map = new CacheMap({ maxPods: 8 });
  const ingest = new Ingest(map, {
    defaultModel: "default",
    hooks: { warn: (m) => warnings.push(m) },
    clock,
  });
  const asked: number[] = [];
  const stream = new PublisherStream(ingest, {
    pod: null,
    requestReplay: withReplay ? (seq) => asked.push(seq) : undefined,
    replayTimeoutMs: 100,
  }, clock);
  const held = () => {
    const ix = map.index("llama");
    return [...Array(40).keys()].filter((n) => ix !== undefined && ix.find(0, 1000 + n) >= 0);
  };
  return { map, ingest, stream, asked, warnings, held };
}

Deno.test("ingest: in order; a gap repaired from the replay socket, live messages held", () => {
  const { ingest, stream, asked, held } = setup();
  for (let n = 0; n < 3; n++) stream.onLive(live(n));
  stream.onLive(live(6)); // 3..5 dropped by the publisher
  assert.deepEqual(asked, [3]);
  assert.ok(stream.replaying);
  stream.onLive(live(7));
  assert.deepEqual(held(), [0, 1, 2]); // 6 and 7 wait for the replay
  stream.onReplay(replayed(2)); // before the gap: ignored
  for (const n of [3, 4, 5]) stream.onReplay(replayed(n));
  assert.ok(!stream.replaying, "the replay ends once it reaches the held messages");
  stream.onReplay(replayed(6));
  stream.onReplay(END);
  stream.onLive(live(8));
  assert.deepEqual(held(), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  const s = ingest.stats;
  assert.equal(s.gaps, 1);
  assert.equal(s.gapsRepaired, 1);
  assert.equal(s.gapsUnrepaired, 0);
  assert.equal(s.missedMessages, 3);
  assert.equal(s.replayedMessages, 3);
  assert.equal(s.held, 0);
  assert.equal(stream.last, 8);
});

Deno.test("ingest: replies with a topic frame, the end marker, a replay that starts late", () => {
  const { ingest, stream, held } = setup();
  stream.onLive(live(0));
  stream.onLive(live(4));
  stream.onReplay([new Uint8Array(0), TOPIC, seqFrame(1), payload(1)]);
  stream.onReplay(END); // 2 and 3 never came
  assert.deepEqual(held(), [0, 1, 4]);
  assert.equal(ingest.stats.gapsUnrepaired, 1);
  // The buffer no longer holds the gap's start.
  stream.onLive(live(9));
  stream.onReplay(replayed(7));
  assert.ok(!stream.replaying);
  assert.equal(ingest.stats.gapsUnrepaired, 2);
  assert.deepEqual(held(), [0, 1, 4, 9]);
});

Deno.test("ingest: without a replay endpoint, a timeout, too much held", () => {
  const a = setup(false);
  a.stream.onLive(live(0));
  a.stream.onLive(live(2));
  assert.equal(a.ingest.stats.gapsUnrepaired, 1);
  assert.deepEqual(a.held(), [0, 2]);

  let t = 0;
  const b = setup(true, () => t);
  b.stream.onLive(live(0));
  b.stream.onLive(live(5));
  t = 50;
  b.stream.tick();
  assert.ok(b.stream.replaying);
  t = 200;
  b.stream.tick();
  assert.ok(!b.stream.replaying);
  assert.equal(b.ingest.stats.gapsUnrepaired, 1);
  assert.deepEqual(b.held(), [0, 5]);
  b.stream.onReplay(replayed(1)); // late: ignored
  assert.deepEqual(b.held(), [0, 5]);

  const c = setup();
  const stream = new PublisherStream(c.ingest, { pod: null, requestReplay: () => {}, maxHeld: 3 });
  stream.onLive(live(0));
  for (let n = 2; n < 8; n++) stream.onLive(live(n));
  assert.ok(!stream.replaying);
  assert.equal(c.ingest.stats.gapsUnrepaired, 1);
  assert.deepEqual(c.held(), [0, 2, 3, 4, 5, 6, 7]);
});

Deno.test("ingest: a restarted engine resets its pod; catch-up on the first message", () => {
  const { ingest, stream, map, asked, held } = setup();
  stream.onLive(live(5)); // first message: history asked, not a gap
  assert.deepEqual(asked, [0]);
  for (let n = 0; n < 5; n++) stream.onReplay(replayed(n));
  assert.deepEqual(held(), [0, 1, 2, 3, 4, 5]);
  assert.equal(ingest.stats.gaps, 0);
  assert.equal(ingest.stats.catchups, 1);
  stream.onLive(live(0)); // numbering starts over
  assert.equal(ingest.stats.restarts, 1);
  assert.deepEqual(held(), [0]);
  assert.equal(map.pod("pod-1")!.resets, 1);
});

Deno.test("ingest: an engine restart starts its pod's root counts over; over the bound socket too", () => {
  const map = new CacheMap({
    maxPods: 8,
    chain: {
      table: new ChainTable(Uint32Array.of(1, 2)),
      blockSize: 2,
      hasher: new BlockHasher({ algo: "sha256_cbor", seed: "0", blockSize: 2 }),
    },
  });
  const ingest = new Ingest(map, { defaultModel: "default", hooks: { warn: () => {} } });
  const counts = () => [map.pod("pod-1")!.rootsReproduced, map.pod("pod-1")!.rootsMismatched];
  // A configured publisher: the sequence going back is the restart.
  const stream = new PublisherStream(ingest, { pod: null });
  for (let n = 0; n < 3; n++) stream.onLive(live(n)); // hashes the service does not reproduce
  assert.deepEqual(counts(), [0, 3]);
  stream.onLive(live(0));
  assert.equal(ingest.stats.restarts, 1);
  assert.deepEqual(counts(), [0, 1]);
  // The bound socket: each connection has a stream of its own; a known pod's engine on a new
  // connection from 0, with no other connection of the pod, restarted.
  const streams: PublisherStream[] = [];
  const connect = () => {
    const st: PublisherStream = new PublisherStream(ingest, {
      pod: null,
      restartsAtZero: (pod) =>
        map.pod(pod) !== undefined && !streams.some((o) => o !== st && o.pod === pod),
    });
    streams.push(st);
    return st;
  };
  const first = connect();
  first.onLive(live(1));
  streams.splice(streams.indexOf(first), 1); // disconnected
  assert.equal(ingest.stats.restarts, 1, "a new connection past 0 is no restart");
  connect().onLive(live(0));
  assert.equal(ingest.stats.restarts, 2);
  assert.equal(map.pod("pod-1")!.resets, 2);
  // A second data-parallel rank's connection from 0, while the first is connected: no restart.
  connect().onLive(live(0));
  assert.equal(ingest.stats.restarts, 2);
});

Deno.test("ingest: an engine restart among the messages held during a replay resets its pod", () => {
  const { ingest, stream, held, map } = setup();
  for (let n = 0; n < 3; n++) stream.onLive(live(n));
  stream.onLive(live(5)); // 3..4 dropped: a replay, 5 held
  stream.onLive(live(6));
  // The engine restarts while the replay runs: its new 0 and 1 are held too.
  stream.onLive(live(0));
  stream.onLive(live(1));
  for (const n of [3, 4]) stream.onReplay(replayed(n));
  assert.ok(!stream.replaying);
  assert.equal(ingest.stats.restarts, 1);
  assert.equal(map.pod("pod-1")!.resets, 1);
  // What the restarted engine holds: only its new blocks (they were dropped as replayed ones).
  assert.deepEqual(held(), [0, 1]);
  stream.onLive(live(2));
  assert.deepEqual(held(), [0, 1, 2]);
  // A restarted engine whose first message seen repeats the last held number (its earlier ones
  // were lost before the subscription reached it): a publisher never sends a number twice.
  const b = setup();
  for (let n = 0; n < 3; n++) b.stream.onLive(live(n));
  b.stream.onLive(live(5));
  b.stream.onLive(live(6));
  b.stream.onLive(live(6, TOPIC)); // the new engine's 6
  b.stream.onLive(live(7));
  for (const n of [3, 4]) b.stream.onReplay(replayed(n));
  assert.equal(b.ingest.stats.restarts, 1);
  assert.deepEqual(b.held(), [6, 7]);
});

Deno.test("ingest: hostile frames and payloads are counted, never thrown", () => {
  const { ingest, stream, warnings } = setup(false);
  const bad: Uint8Array[][] = [
    [],
    [TOPIC],
    [TOPIC, seqFrame(0)],
    [TOPIC, new Uint8Array(7), payload(0)],
    [TOPIC, Uint8Array.of(0xff, 0xff, 0xff, 0, 0, 0, 0, 0), payload(0)],
    [TOPIC, seqFrame(0), payload(0), payload(0)],
    [enc.encode("other-topic"), seqFrame(0), payload(0)], // no pod configured or in the topic
  ];
  for (const f of bad) stream.onLive(f);
  assert.equal(ingest.stats.badFrames, bad.length);
  stream.onLive([TOPIC, seqFrame(0), Uint8Array.of(0x93, 0x01)]); // truncated msgpack
  stream.onLive([TOPIC, seqFrame(1), encodeMsgpack({ ts: 1, events: "no" })]);
  stream.onLive([TOPIC, seqFrame(2), encodeMsgpack([1, [["BlockStored", "x"], ["Nope"]]])]);
  assert.equal(ingest.stats.decodeErrors, 2);
  assert.equal(ingest.stats.rejectedEvents, 2);
  stream.onReplay([seqFrame(3)]); // not replaying: ignored
  assert.ok(warnings.length >= bad.length + 3);
  for (let i = 0; i < 2000; i++) {
    const junk = Uint8Array.from({ length: (i * 7) % 40 }, (_, j) => (i * 31 + j * 17) & 0xff);
    stream.onLive([TOPIC, seqFrame(3 + i), junk]);
  }
});

Deno.test("ingest: topics, sequence frames", () => {
  assert.deepEqual(parseTopic(enc.encode("kv@pod-a@meta/llama@v2")), {
    pod: "pod-a",
    model: "meta/llama@v2",
  });
  for (const t of ["", "kv@", "kv@@m", "kv@pod@", "xx@pod@m", "kv-pod-m"]) {
    assert.equal(parseTopic(enc.encode(t)), null, t);
  }
  assert.equal(readSeq(seqFrame(0)), 0);
  assert.equal(readSeq(seqFrame(2 ** 40 + 5)), 2 ** 40 + 5);
  assert.equal(readSeq(seqFrame(-1)), -1);
  assert.equal(readSeq(new Uint8Array(9)), null);
});

Deno.test("ingest: apply time and publish-to-indexed time from the clocks given, or from one clock read", () => {
  const batch = (ts: number) =>
    encodeMsgpack([ts, [["BlockStored", [7n], null, [1, 2], 2, null, null]]]);
  // Injected clocks: the monotonic one for the apply time, the wall one for publish-to-indexed.
  const applied: number[] = [], e2e: number[] = [];
  let mono = 1000;
  const ingest = new Ingest(new CacheMap({ maxPods: 2 }), {
    defaultModel: "m",
    hooks: {
      warn: () => {},
      observeApply: (s) => applied.push(s),
      observePublishToIndex: (s) => e2e.push(s),
    },
    clock: () => (mono += 2),
    wall: () => 50_000,
  });
  ingest.applyPayload("p", "m", batch(42), 1000);
  assert.deepEqual(applied, [0.002]); // received at 1000 ms, indexed at 1002 ms
  assert.deepEqual(e2e, [8]); // published at 42 s, indexed at 50 s
  // A batch with no ts (0) has no publish-to-indexed time.
  ingest.applyPayload("p", "m", batch(0), 1000);
  assert.deepEqual(e2e, [8]);
  // The defaults: the wall time is read off the same clock read (the epoch's, in seconds).
  const seen: number[] = [];
  const plain = new Ingest(new CacheMap({ maxPods: 2 }), {
    defaultModel: "m",
    hooks: { warn: () => {}, observePublishToIndex: (s) => seen.push(s) },
  });
  const before = Date.now() / 1000;
  plain.applyPayload("p", "m", batch(before - 5));
  assert.equal(seen.length, 1);
  // Five seconds and whatever the two clocks disagree on (under a minute), never a clock base
  // off by the process's start or the epoch.
  assert.ok(seen[0] > 4 && seen[0] < 65, `${seen[0]}`);
});

Deno.test("ingest: a decoded batch's list of skipped events stays the caller's, never written to", () => {
  const ingest = new Ingest(new CacheMap({ maxPods: 2 }), {
    defaultModel: "m",
    hooks: { warn: () => {} },
  });
  const mine = decodeEventBatch(encodeMsgpack([1, [["Nope"], ["BlockRemoved", [1]]]]));
  const empty = decodeEventBatch(encodeMsgpack([1, [["BlockRemoved", [1]]]]));
  assert.deepEqual([mine.rejected.length, empty.rejected.length], [1, 0]);
  ingest.applyBatch("p", "m", mine);
  ingest.applyPayload("p", "m", encodeMsgpack([1, [["Nope"], ["Nope2"]]]));
  ingest.applyBatch("p", "m", empty);
  ingest.applyPayload("p", "m", encodeMsgpack([1, [["Nope"]]]));
  assert.deepEqual([mine.rejected.length, empty.rejected.length], [1, 0]);
  assert.equal(ingest.stats.rejectedEvents, 4);
});
