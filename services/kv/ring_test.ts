import assert from "node:assert/strict";
import { Ring } from "./ring.ts";

Deno.test("Ring: frames go through in order, across the wrap-around, until full", () => {
  const ring = Ring.create(256);
  const peer = Ring.attach(ring.handle);
  const got: [number, number, number[]][] = [];
  for (let round = 0; round < 50; round++) {
    const payload = Uint8Array.from({ length: (round * 13) % 60 }, (_, i) => i + round);
    assert.ok(ring.tryWrite(round, round % 3, payload));
    assert.ok(ring.tryWrite(round + 1000, 7, new Uint8Array(0)));
    peer.drain((conn, type, p) => got.push([conn, type, [...p]]));
  }
  assert.equal(got.length, 100);
  for (let round = 0; round < 50; round++) {
    const [conn, type, p] = got[2 * round];
    assert.deepEqual([conn, type], [round, round % 3]);
    assert.deepEqual(p, Array.from({ length: (round * 13) % 60 }, (_, i) => (i + round) & 0xff));
    assert.deepEqual(got[2 * round + 1], [round + 1000, 7, []]);
  }
  // Full: a frame that does not fit is refused whole, then fits once the consumer read.
  let written = 0;
  while (ring.tryWrite(1, 1, new Uint8Array(50))) written++;
  assert.ok(written >= 3 && ring.used > 256 - 59);
  assert.throws(() => ring.tryWrite(1, 1, new Uint8Array(300)), RangeError);
  assert.equal(peer.drain(() => {}), written);
  assert.ok(ring.tryWrite(1, 1, new Uint8Array(50)));
});

Deno.test("Ring: a producer in another isolate fills it faster than it drains", async () => {
  const ring = Ring.create(1024);
  const src = `
    import { Ring } from "${new URL("./ring.ts", import.meta.url).href}";
    self.onmessage = async (e) => {
      const ring = Ring.attach(e.data);
      for (let i = 0; i < 5000; i++) {
        const p = new Uint8Array(1 + (i % 200)).fill(i & 0xff);
        await ring.write(i, 1, p);
        ring.ring();
      }
      self.postMessage("done");
    };`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
    type: "module",
  });
  try {
    const done = new Promise((r) => (w.onmessage = r));
    w.postMessage(ring.handle);
    let next = 0;
    while (next < 5000) {
      ring.drain((conn, _type, p) => {
        assert.equal(conn, next);
        assert.equal(p.length, 1 + (next % 200));
        assert.ok(p.every((b) => b === (next & 0xff)));
        next++;
      });
      await new Promise((r) => setTimeout(r, 0));
    }
    await done;
  } finally {
    w.terminate();
  }
});
