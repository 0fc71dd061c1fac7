/**
 * End to end: the service process against a real libzmq publisher (pyzmq, as vLLM's publisher
 * binds it), a forced sequence gap repaired through the replay socket, and an engine restart.
 */
import assert from "node:assert/strict";
import { freePort, startDeno } from "../../bench/lib/process.ts";
import { FakeEngine, hasPyzmq } from "./_testing/fake_engine.ts";

const hasZmq = await hasPyzmq();
const TOPIC = "kv@pod-1@llama";

async function stats(url: string) {
  const r = await fetch(url + "/stats");
  return await r.json();
}

/** Polls /stats until `ok` holds (bounded: a stuck service fails the test, not hangs it). */
// deno-lint-ignore no-explicit-any
type Stats = Record<string, any>;

async function until(url: string, ok: (s: Stats) => boolean, what: string) {
  const deadline = Date.now() + 20_000;
  let s = await stats(url);
  while (!ok(s)) {
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 50));
    s = await stats(url);
  }
  return s;
}

Deno.test({
  name: "e2e: libzmq publisher, a forced gap repaired by replay, an engine restart",
  ignore: !hasZmq,
  async fn() {
    const pubPort = freePort(), replayPort = freePort();
    let engine = new FakeEngine(TOPIC, { pub: pubPort, replay: replayPort });
    assert.equal(await engine.line(), "ready");
    const svc = await startDeno(new URL("./main.ts", import.meta.url).pathname, {
      PUBLISHERS: `pod-1=tcp://127.0.0.1:${pubPort}|tcp://127.0.0.1:${replayPort}`,
      LOG_LEVEL: "error",
    });
    try {
      await until(svc.url, (s) => s.publishers[0].connected === 1, "connected");
      // Batches 0..199; 50..89 are never sent live, only kept for replay.
      await engine.send("publish 0 200 50 89");
      assert.equal(await engine.line(), "published");
      const s = await until(svc.url, (s) => s.blocks === 200, "every block indexed");
      assert.equal(s.ingest.gapsUnrepaired, 0);
      assert.ok(s.ingest.gaps + s.ingest.catchups >= 1, JSON.stringify(s.ingest));
      assert.ok(s.ingest.replayedMessages >= 40, JSON.stringify(s.ingest));
      assert.equal(s.publishers[0].lastSeq, 199);
      assert.equal(s.models[0].model, "llama");

      // Routing by the hashes the engine reported (u64 >= 2^63, as decimal strings).
      const hashes = [0, 1, 2, 60, 61].map((n) => (2n ** 63n + BigInt(n)).toString());
      const r = await fetch(svc.url + "/route", {
        method: "POST",
        body: JSON.stringify({ block_hashes: hashes, model: "llama" }),
      });
      const route = await r.json();
      assert.equal(route.pod, "pod-1");
      assert.equal(route.scores[0].matched_blocks, 5);

      const metrics = await (await fetch(svc.url + "/metrics")).text();
      assert.match(metrics, /kv_events_gaps_unrepaired_total 0/);
      assert.match(metrics, /kv_events_blocks_stored_total 200/);

      // The engine restarts: its numbering starts again at 0, so the pod's blocks are dropped.
      await engine.stop();
      engine = new FakeEngine(TOPIC, { pub: pubPort, replay: replayPort });
      assert.equal(await engine.line(), "ready");
      await until(svc.url, (s) => s.publishers[0].connected === 1, "reconnected");
      await engine.send("publish 0 5");
      assert.equal(await engine.line(), "published");
      // (The old blocks leave a step at a time: the drain the service schedules ends by itself.)
      const after = await until(svc.url, (s) => s.ingest.restarts === 1 && s.blocks === 5, "reset");
      assert.equal(after.publishers[0].lastSeq, 4);
      assert.equal(after.draining_pods, 0);
    } finally {
      await engine.stop();
      await svc.stop();
    }
  },
});
