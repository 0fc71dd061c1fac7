import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { decodeSnapshot, isBinarySnapshot } from "./snapshot_codec.ts";
import { MvccStore } from "./store.ts";

function sample(): MvccStore {
  const s = new MvccStore();
  s.leaseGrant("12345678901234", 9_000_000_000);
  s.put({ key: "bin\x00\xff\x80", value: "\x00\x01\xfe\xff", lease: "12345678901234" });
  for (let i = 0; i < 300; i++) s.put({ key: `k${i % 40}`, value: "v".repeat(i % 25) });
  s.deleteRange({ key: "k3" });
  s.txn({
    compare: [],
    success: [{ put: { key: "t1", value: "a" } }, { put: { key: "t2", value: "b" } }],
    failure: [],
  });
  s.compact(50);
  return s;
}

Deno.test("snapshot codec: binary snapshots round-trip every byte, revision and lease", () => {
  const s = sample();
  const data = s.snapshot();
  assert.ok(isBinarySnapshot(data));
  const t = new MvccStore();
  t.restore(data);
  assert.equal(t.revision, s.revision);
  assert.equal(t.compactRevision, 50);
  const all = { key: "\0", rangeEnd: "\0" };
  assert.deepEqual(t.range(all), s.range(all));
  assert.deepEqual(t.range({ ...all, revision: 60 }), s.range({ ...all, revision: 60 }));
  assert.deepEqual(t.eventsSince("\0", "\0", 51), s.eventsSince("\0", "\0", 51));
  assert.deepEqual([...t.leases.get("12345678901234")!.keys], ["bin\x00\xff\x80"]);
  assert.equal(t.leases.get("12345678901234")!.ttl, 9_000_000_000);
  assert.equal(t.sizeBytes, s.sizeBytes);
  assert.deepEqual(t.snapshot(), data, "encoding is deterministic");
});

Deno.test("snapshot codec: truncated, corrupted and random input is refused with an Error", () => {
  const data = sample().snapshot();
  // Every truncation.
  for (let n = 0; n < data.length; n++) {
    assert.throws(() => decodeSnapshot(data.subarray(0, n)), Error, `truncated to ${n}`);
  }
  // Trailing garbage.
  const longer = new Uint8Array(data.length + 1);
  longer.set(data);
  assert.throws(() => decodeSnapshot(longer), /after the end/);
  // Random bit flips: an Error or a snapshot that decodes; never anything else, never a hang.
  const rnd = new Prng(99);
  for (let i = 0; i < 2000; i++) {
    const bad = data.slice();
    for (let f = 0; f < 1 + rnd.nextInt(4); f++) {
      bad[rnd.nextInt(bad.length)] ^= 1 << rnd.nextInt(8);
    }
    try {
      decodeSnapshot(bad);
    } catch (e) {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^metastore snapshot: /);
    }
  }
  // Random bodies behind the magic, including huge declared counts and lengths.
  for (let i = 0; i < 2000; i++) {
    const bad = new Uint8Array(4 + rnd.nextInt(64));
    bad.set([0x4d, 0x56, 0x53, 0x32]);
    for (let j = 4; j < bad.length; j++) bad[j] = rnd.nextInt(256);
    assert.throws(() => decodeSnapshot(bad), /^Error: metastore snapshot: /);
  }
  // A store refuses them and stays as it was.
  const t = new MvccStore();
  t.put({ key: "x", value: "y" });
  assert.throws(() => t.restore(data.subarray(0, data.length - 3)));
  assert.equal(t.range({ key: "x" }).kvs[0].value, "y");
});

Deno.test("snapshot codec: the JSON snapshots of earlier versions still restore", () => {
  const v1 = JSON.stringify({
    v: 1,
    rev: 4,
    compact: 0,
    leases: [["7", 60]],
    keys: [
      ["a", [[2, 0, 2, 1, "one", "7", 0], [3, 0, 2, 2, "two", "7", 0]]],
      ["b", [[4, 0, 4, 1, "\u00ff\u0000", "0", 0]]],
    ],
  });
  const t = new MvccStore();
  t.restore(new TextEncoder().encode(v1));
  assert.equal(t.revision, 4);
  assert.equal(t.range({ key: "a" }).kvs[0].value, "two");
  assert.equal(t.range({ key: "a", revision: 2 }).kvs[0].value, "one");
  assert.equal(t.range({ key: "b" }).kvs[0].value, "\u00ff\u0000");
  assert.deepEqual([...t.leases.get("7")!.keys], ["a"]);
});
