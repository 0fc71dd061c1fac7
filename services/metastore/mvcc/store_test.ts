import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { MvccStore } from "./store.ts";
import {
  CompareResult,
  CompareTarget,
  EtcdError,
  SortOrder,
  SortTarget,
  type WatchEvent,
} from "./types.ts";

function keys(s: MvccStore, key: string, rangeEnd?: string) {
  return s.range({ key, rangeEnd }).kvs.map((kv) => `${kv.key}=${kv.value}`);
}

Deno.test("MvccStore: revisions start at 1 and each write makes exactly one", () => {
  const s = new MvccStore();
  assert.equal(s.revision, 1);
  assert.equal(s.put({ key: "a", value: "1" }).revision, 2);
  const p = s.put({ key: "a", value: "2", prevKv: true });
  assert.equal(p.revision, 3);
  assert.deepEqual(p.prevKv, {
    key: "a",
    createRevision: 2,
    modRevision: 2,
    version: 1,
    value: "1",
    lease: "0",
  });
  const kv = s.range({ key: "a" }).kvs[0];
  assert.deepEqual([kv.createRevision, kv.modRevision, kv.version], [2, 3, 2]);
  // Deleting nothing does not make a revision.
  assert.equal(s.deleteRange({ key: "zzz" }).revision, 3);
  assert.equal(s.deleteRange({ key: "a" }).deleted, 1);
  assert.equal(s.revision, 4);
  s.put({ key: "a", value: "3" });
  const again = s.range({ key: "a" }).kvs[0];
  assert.deepEqual([again.createRevision, again.version], [5, 1], "recreated after delete");
});

Deno.test("MvccStore: range ends, limit, count, sort, keys_only and filters", () => {
  const s = new MvccStore();
  for (const k of ["a", "b", "ba", "bb", "c", "\xff"]) s.put({ key: k, value: k.toUpperCase() });
  assert.deepEqual(keys(s, "b", "c"), ["b=B", "ba=BA", "bb=BB"]);
  assert.equal(s.range({ key: "\0", rangeEnd: "\0" }).count, 6);
  assert.deepEqual(keys(s, "c", "\0"), ["c=C", "\xff=" + "\xff".toUpperCase()]);
  const lim = s.range({ key: "a", rangeEnd: "\0", limit: 2 });
  assert.deepEqual(lim.kvs.map((k) => k.key), ["a", "b"]);
  assert.equal(lim.more, true);
  assert.equal(lim.count, 6);
  const desc = s.range({
    key: "a",
    rangeEnd: "c",
    sortOrder: SortOrder.DESCEND,
    sortTarget: SortTarget.KEY,
    limit: 2,
  });
  assert.deepEqual(desc.kvs.map((k) => k.key), ["bb", "ba"]);
  s.put({ key: "a", value: "again" });
  const byMod = s.range({ key: "a", rangeEnd: "\0", sortTarget: SortTarget.MOD, limit: 1 });
  assert.deepEqual(
    byMod.kvs.map((k) => k.key),
    ["b"],
    "NONE order with a non-key target sorts ascending",
  );
  const ko = s.range({ key: "a", keysOnly: true }).kvs[0];
  assert.equal(ko.value, "");
  const co = s.range({ key: "a", rangeEnd: "\0", countOnly: true });
  assert.deepEqual([co.kvs.length, co.count], [0, 6]);
  const f = s.range({ key: "a", rangeEnd: "\0", minModRevision: 7 });
  assert.deepEqual(f.kvs.map((k) => k.key), ["\xff", "a"].sort());
});

Deno.test("MvccStore: historical reads, compaction and its errors", () => {
  const s = new MvccStore();
  s.put({ key: "k", value: "v1" }); // 2
  s.put({ key: "k", value: "v2" }); // 3
  s.deleteRange({ key: "k" }); // 4
  s.put({ key: "other", value: "x" }); // 5
  assert.equal(s.range({ key: "k", revision: 2 }).kvs[0].value, "v1");
  assert.equal(s.range({ key: "k", revision: 3 }).kvs[0].value, "v2");
  assert.equal(s.range({ key: "k", revision: 4 }).kvs.length, 0);
  assert.throws(() => s.range({ key: "k", revision: 6 }), /future revision/);
  s.compact(3);
  assert.equal(
    s.range({ key: "k", revision: 3 }).kvs[0].value,
    "v2",
    "the compact revision itself is readable",
  );
  assert.throws(
    () => s.range({ key: "k", revision: 2 }),
    (e) => e instanceof EtcdError && e.code === 11,
  );
  assert.throws(() => s.compact(3), /compacted/);
  assert.throws(() => s.compact(9), /future/);
  const before = s.sizeBytes;
  s.compact(5);
  assert.ok(s.sizeBytes < before, "history reclaimed");
  assert.throws(() => s.eventsSince("k", undefined, 4), /compacted/);
});

Deno.test("MvccStore: txn compares, one revision, reads see own writes, nested txns", () => {
  const s = new MvccStore();
  s.put({ key: "a", value: "1" });
  const r = s.txn({
    compare: [{ key: "a", target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: "1" }],
    success: [
      { put: { key: "b", value: "2" } },
      { put: { key: "c", value: "3" } },
      { range: { key: "b" } },
      {
        txn: {
          compare: [{
            key: "zz",
            target: CompareTarget.VERSION,
            result: CompareResult.EQUAL,
            version: 0,
          }],
          success: [{ deleteRange: { key: "a" } }],
          failure: [],
        },
      },
    ],
    failure: [{ put: { key: "f", value: "no" } }],
  });
  assert.equal(r.succeeded, true);
  assert.equal(r.revision, 3);
  assert.equal(s.revision, 3, "one revision for the whole txn");
  const rr = r.responses[2] as { range: { kvs: { value: string }[]; revision: number } };
  assert.equal(rr.range.kvs[0].value, "2");
  assert.equal(rr.range.revision, 3);
  assert.deepEqual(keys(s, "\0", "\0"), ["b=2", "c=3"]);
  // VALUE compare on a missing key fails; VERSION compares as zero.
  const f = s.txn({
    compare: [{
      key: "missing",
      target: CompareTarget.VALUE,
      result: CompareResult.NOT_EQUAL,
      value: "x",
    }],
    success: [],
    failure: [{ range: { key: "b" } }],
  });
  assert.equal(f.succeeded, false);
  assert.equal(s.revision, 3, "a read-only txn makes no revision");
  assert.throws(
    () =>
      s.txn({
        compare: [],
        success: [{ put: { key: "x", value: "" } }, { put: { key: "x", value: "" } }],
        failure: [],
      }),
    /duplicate key/,
  );
  assert.throws(
    () =>
      s.txn({
        compare: [],
        success: [{ deleteRange: { key: "a", rangeEnd: "z" } }, { put: { key: "m", value: "" } }],
        failure: [],
      }),
    /duplicate key/,
  );
  const many = Array.from({ length: 129 }, (_, i) => ({ put: { key: `k${i}`, value: "" } }));
  assert.throws(() => s.txn({ compare: [], success: many, failure: [] }), /too many operations/);
  assert.equal(s.revision, 3, "refused txns change nothing");
});

Deno.test("MvccStore: put validation (ignore_value, leases) happens before any change", () => {
  const s = new MvccStore();
  assert.throws(() => s.put({ key: "a", value: "", ignoreValue: true }), /key not found/);
  assert.throws(() => s.put({ key: "a", value: "1", lease: "77" }), /lease not found/);
  assert.throws(() => s.put({ key: "", value: "1" }), /key is not provided/);
  s.leaseGrant("77", 10);
  s.put({ key: "a", value: "1", lease: "77" });
  s.put({ key: "b", value: "2", lease: "77" });
  s.put({ key: "a", value: "x", ignoreLease: true });
  assert.equal(s.range({ key: "a" }).kvs[0].lease, "77");
  s.put({ key: "b", value: "y", ignoreValue: true, lease: "0" });
  assert.deepEqual([...s.leases.get("77")!.keys], ["a"]);
  assert.equal(s.range({ key: "b" }).kvs[0].value, "2");
  const rev = s.revision;
  assert.equal(s.leaseRevoke("77"), rev + 1, "revoke deletes attached keys in one revision");
  assert.deepEqual(keys(s, "\0", "\0"), ["b=2"]);
  assert.throws(() => s.leaseRevoke("77"), /lease not found/);
  assert.throws(() => s.leaseGrant("5", 1) && s.leaseGrant("5", 1), /already exists/);
});

Deno.test("MvccStore: watch events per revision and replay from history", () => {
  const s = new MvccStore();
  const seen: [number, WatchEvent[]][] = [];
  s.onEvents((rev, evs) => seen.push([rev, evs]));
  s.put({ key: "a", value: "1" });
  s.txn({
    compare: [],
    success: [{ put: { key: "b", value: "2" } }, { deleteRange: { key: "a" } }],
    failure: [],
  });
  assert.equal(seen.length, 2);
  assert.deepEqual(seen[1][1].map((e) => `${e.type}:${e.kv.key}`), ["PUT:b", "DELETE:a"]);
  assert.equal(seen[1][1][1].prevKv?.value, "1");
  const replay = s.eventsSince("\0", "\0", 2);
  assert.deepEqual(replay.map((e) => `${e.type}:${e.kv.key}@${e.kv.modRevision}`), [
    "PUT:a@2",
    "PUT:b@3",
    "DELETE:a@3",
  ]);
});

Deno.test("MvccStore: snapshot round-trips and restore rejects garbage", () => {
  const s = new MvccStore();
  s.leaseGrant("9", 30);
  s.put({ key: "bin\x00\xff", value: "\x01\x02", lease: "9" });
  s.put({ key: "k", value: "v" });
  s.put({ key: "k", value: "w" });
  s.deleteRange({ key: "gone" });
  s.compact(3);
  const t = new MvccStore();
  t.restore(s.snapshot());
  assert.equal(t.revision, s.revision);
  assert.equal(t.compactRevision, 3);
  assert.deepEqual(t.range({ key: "\0", rangeEnd: "\0" }), s.range({ key: "\0", rangeEnd: "\0" }));
  assert.deepEqual([...t.leases.get("9")!.keys], ["bin\x00\xff"]);
  assert.equal(t.sizeBytes, s.sizeBytes);
  const enc = new TextEncoder();
  for (
    const bad of [
      "",
      "{",
      "null",
      '{"v":2}',
      '{"v":1,"rev":1,"compact":0,"keys":[["b",[]]],"leases":[]}',
      '{"v":1,"rev":1,"compact":0,"keys":[["b",[[1]]]],"leases":[]}',
      '{"v":1,"rev":1,"compact":0,"keys":[["b",[[2,0,2,1,"v","0",0]]],["a",[[2,0,2,1,"v","0",0]]]],"leases":[]}',
    ]
  ) {
    assert.throws(() => t.restore(enc.encode(bad)), Error, bad);
  }
  assert.equal(t.revision, s.revision, "a failed restore leaves the store unchanged");
});

Deno.test("MvccStore: snapshotAsync holds the state of the call while writes and compaction go on", async () => {
  const s = new MvccStore();
  // Enough history for several slices, so that the writes below land between them.
  const big = "x".repeat(1000);
  for (let i = 0; i < 2000; i++) s.put({ key: `k${i % 500}`, value: `${i}:${big}` });
  const expected = s.snapshot();
  const pending = s.snapshotAsync();
  for (let i = 0; i < 100; i++) s.put({ key: `k${i}`, value: "later" });
  s.put({ key: "a-new-key", value: "1" });
  s.deleteRange({ key: "k1", rangeEnd: "k3" });
  s.compact(s.revision - 5);
  const got = await pending;
  assert.deepEqual(got, expected);
  const t = new MvccStore();
  t.restore(got);
  assert.equal(t.revision, 2001);
  assert.equal(t.range({ key: "k7" }).kvs[0].value, `1507:${big}`);
  assert.equal(t.range({ key: "a-new-key" }).count, 0);
});

Deno.test("MvccStore: ranges at the current revision (counted by binary search) agree with the full scan", () => {
  const rnd = new Prng(2024);
  const key = () => `k${String(rnd.nextInt(60)).padStart(2, "0")}`;
  let s = new MvccStore();
  for (let step = 0; step < 3000; step++) {
    const roll = rnd.nextInt(100);
    if (roll < 50) s.put({ key: key(), value: `v${step}` });
    else if (roll < 70) s.deleteRange({ key: key() });
    else if (roll < 75) {
      const a = key();
      s.deleteRange({ key: a, rangeEnd: a + "5" });
    } else if (roll < 78) {
      const target = s.revision - rnd.nextInt(20);
      if (target > s.compactRevision) s.compact(target);
    } else if (roll < 80) {
      const t = new MvccStore();
      t.restore(s.snapshot());
      s = t;
    } else {
      const a = key();
      const b = rnd.nextInt(4) === 0 ? "\0" : key();
      const limit = rnd.nextInt(3) === 0 ? 0 : rnd.nextInt(8);
      const req = {
        key: a,
        rangeEnd: b,
        limit,
        countOnly: rnd.nextInt(5) === 0,
        keysOnly: rnd.nextInt(3) === 0,
      };
      // minModRevision 1 passes every record but forces the general scan.
      assert.deepEqual(s.range(req), s.range({ ...req, minModRevision: 1 }), JSON.stringify(req));
    }
  }
});
