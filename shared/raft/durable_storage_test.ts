import assert from "node:assert/strict";
import { DurableStorage, DurableStorageCorruptError } from "./durable_storage.ts";
import { bootstrapPersistence, MemoryPersistence, type RaftPersistence } from "./persistence.ts";
import { type Entry, EntryType, type HardState, type Snapshot } from "./types.ts";
import type { MemoryStorage } from "./storage.ts";
import { SimDisk } from "../sim/disk.ts";
import { Prng } from "../sim/prng.ts";
import { DenoFileSystem, type FileSystem, joinPath } from "../wal/fs.ts";
import { segmentName, WalCorruptError, type WalLogger } from "../wal/wal.ts";

const enc = new TextEncoder();
const quiet: WalLogger = { warn() {}, info() {} };

function ent(index: number, term: number, s = `e${index}t${term}`): Entry {
  return { index, term, type: EntryType.Normal, data: enc.encode(s) };
}

function dump(st: MemoryStorage) {
  const first = st.firstIndex();
  const last = st.lastIndex();
  const ents = last >= first ? st.entries(first, last + 1, Number.MAX_SAFE_INTEGER) : [];
  return {
    hs: st.hardState(),
    snap: { ...st.snapshot().metadata, data: [...st.snapshot().data] },
    first,
    last,
    ents: ents.map((e) => ({
      index: e.index,
      term: e.term,
      type: e.type,
      data: new TextDecoder().decode(e.data),
    })),
  };
}

/** File system plus damage helpers, for SimDisk and the real disk. */
interface Env {
  fs(): FileSystem;
  dir: string;
  flipByte(path: string, offset: number): Promise<void>;
  truncate(path: string, size: number): Promise<void>;
  cleanup(): Promise<void>;
}

function simEnv(): Promise<Env> {
  const disk = new SimDisk();
  return Promise.resolve({
    fs: () => disk.mount(),
    dir: "/data/raft",
    flipByte: (p, o) => Promise.resolve(disk.flipByte(p, o, 0x01)),
    truncate: (p, s) => Promise.resolve(disk.truncateFile(p, s)),
    cleanup: () => Promise.resolve(),
  });
}

async function realEnv(): Promise<Env> {
  const root = await Deno.makeTempDir({ prefix: "raft_durable_test_" });
  return {
    fs: () => new DenoFileSystem(),
    dir: joinPath(root, "raft"),
    async flipByte(p, o) {
      const b = await Deno.readFile(p);
      b[o] ^= 0x01;
      await Deno.writeFile(p, b);
    },
    truncate: (p, s) => Deno.truncate(p, s),
    cleanup: () => Deno.remove(root, { recursive: true }),
  };
}

function bothDisks(name: string, fn: (env: Env) => Promise<void>): void {
  for (const make of [simEnv, realEnv]) {
    Deno.test(`durable storage: ${name} (${make === simEnv ? "SimDisk" : "real disk"})`, async () => {
      const env = await make();
      try {
        await fn(env);
      } finally {
        await env.cleanup();
      }
    });
  }
}

/** Byte offsets of the records of a WAL segment (length u32 LE + 9 header bytes each). */
function recordOffsets(bytes: Uint8Array): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  let off = 0;
  while (off + 9 <= bytes.length) {
    out.push(off);
    off += 9 + dv.getUint32(off, true);
  }
  return out;
}

async function open(env: Env, opts = {}): Promise<DurableStorage> {
  return await DurableStorage.open(env.fs(), env.dir, { logger: quiet, ...opts });
}

const hs = (term: number, vote: number, commit: number): HardState => ({ term, vote, commit });

Deno.test("memory persistence: save and compact update the MemoryStorage", async () => {
  const p: RaftPersistence = new MemoryPersistence();
  await bootstrapPersistence(p, [1, 2, 3]);
  assert.equal(p.storage.lastIndex(), 3);
  await p.save({ hardState: hs(2, 1, 3), entries: [ent(4, 2), ent(5, 2)] });
  await p.save({ entries: [ent(5, 3), ent(6, 3)] });
  assert.equal(p.storage.term(5), 3);
  assert.equal(p.storage.lastIndex(), 6);
  const snap = p.storage.createSnapshot(4, { voters: [1, 2, 3], learners: [] }, enc.encode("s"));
  await p.compact(snap);
  assert.equal(p.storage.firstIndex(), 5);
  await p.close();
});

bothDisks("round trip: hard state, entries, overwritten tail", async (env) => {
  const a = await open(env);
  await bootstrapPersistence(a, [1, 2, 3]);
  await a.save({ hardState: hs(2, 1, 3), entries: [ent(4, 2), ent(5, 2), ent(6, 2)] });
  await a.save({ entries: [ent(5, 3), ent(6, 3), ent(7, 3)], hardState: hs(3, 2, 5) });
  await a.save({ entries: [ent(8, 3)] });
  const want = dump(a.storage);
  assert.equal(want.last, 8);
  assert.equal(want.ents[4].term, 3);
  await a.close();
  const b = await open(env);
  assert.deepEqual(dump(b.storage), want);
  assert.equal(b.recovery.wal.truncatedTail, undefined);
  // and it continues from there
  await b.save({ entries: [ent(9, 3)], hardState: hs(3, 2, 9) });
  await b.close();
  const c = await open(env);
  assert.equal(c.storage.lastIndex(), 9);
  assert.deepEqual(c.storage.hardState(), hs(3, 2, 9));
  await c.close();
});

bothDisks("truncated WAL file: recovers to the last good record", async (env) => {
  const a = await open(env);
  for (let i = 1; i <= 10; i++) await a.save({ entries: [ent(i, 1)], hardState: hs(1, 1, i - 1) });
  await a.close();
  const path = joinPath(env.dir, "wal", segmentName(1));
  const bytes = await env.fs().readFile(path);
  const offs = recordOffsets(bytes);
  assert.equal(offs.length, 20);
  await env.truncate(path, offs[19] - 3); // cut into the entries record of index 10
  const b = await open(env);
  assert.ok(b.recovery.wal.truncatedTail);
  assert.equal(b.storage.lastIndex(), 9);
  assert.deepEqual(b.storage.hardState(), hs(1, 1, 8));
  await b.close();
});

bothDisks("flipped byte in the tail: recovers to the last good record", async (env) => {
  const a = await open(env);
  for (let i = 1; i <= 5; i++) await a.save({ entries: [ent(i, 1)] });
  await a.save({ hardState: hs(1, 1, 4), entries: [] });
  await a.close();
  const path = joinPath(env.dir, "wal", segmentName(1));
  const offs = recordOffsets(await env.fs().readFile(path));
  await env.flipByte(path, offs[5] + 10); // the hard state record's payload
  const b = await open(env);
  assert.ok(b.recovery.wal.truncatedTail);
  assert.equal(b.storage.lastIndex(), 5);
  assert.deepEqual(b.storage.hardState(), hs(0, 0, 0));
  await b.close();
});

bothDisks("flipped byte before the tail: refuses to open", async (env) => {
  const a = await open(env);
  for (let i = 1; i <= 5; i++) await a.save({ entries: [ent(i, 1)] });
  await a.close();
  const path = joinPath(env.dir, "wal", segmentName(1));
  const offs = recordOffsets(await env.fs().readFile(path));
  await env.flipByte(path, offs[2] + 11);
  await assert.rejects(() => open(env), (e: unknown) => {
    assert.ok(e instanceof WalCorruptError);
    assert.match(e.message, /WAL corrupt in .*00000000000000000001\.wal at offset/);
    return true;
  });
});

bothDisks("compaction releases segments; reopen sees the snapshot and the rest", async (env) => {
  const a = await open(env, { segmentBytesMax: 400 });
  await bootstrapPersistence(a, [1, 2, 3]);
  for (let i = 4; i <= 60; i++) {
    await a.save({ entries: [ent(i, 2, "x".repeat(20))], hardState: hs(2, 1, i - 1) });
  }
  const before = a.segments().length;
  assert.ok(before > 5, `segments: ${before}`);
  const snap = a.storage.createSnapshot(50, { voters: [1, 2, 3], learners: [] }, enc.encode("S"));
  await a.compact(snap);
  assert.ok(a.segments().length < before / 2, `${a.segments().length} of ${before}`);
  assert.equal(a.storage.firstIndex(), 51);
  await a.save({ entries: [ent(61, 2)] });
  const want = dump(a.storage);
  await a.close();
  const b = await open(env, { segmentBytesMax: 400 });
  assert.deepEqual(dump(b.storage), want);
  assert.equal(b.recovery.snapshotIndex, 50);
  const snaps = await env.fs().readDir(joinPath(env.dir, "snap"));
  assert.deepEqual(snaps, ["snap-00000000000000000050.snap"]);
  await b.close();
});

bothDisks("installed snapshot replaces the log, and survives a reopen", async (env) => {
  const a = await open(env, { segmentBytesMax: 300 });
  for (let i = 1; i <= 30; i++) await a.save({ entries: [ent(i, 1)], hardState: hs(1, 0, 0) });
  const snap: Snapshot = {
    data: enc.encode("leader state"),
    metadata: { index: 40, term: 3, confState: { voters: [1, 2, 3], learners: [] } },
  };
  await a.save({ snapshot: snap, entries: [], hardState: hs(3, 0, 40) });
  assert.equal(a.storage.lastIndex(), 40);
  assert.equal(a.segments().length, 1);
  await a.save({ entries: [ent(41, 3), ent(42, 3)], hardState: hs(3, 0, 42) });
  const want = dump(a.storage);
  await a.close();
  const b = await open(env, { segmentBytesMax: 300 });
  assert.deepEqual(dump(b.storage), want);
  await b.close();
});

bothDisks("a snapshot file the log needs is damaged: refuses to open", async (env) => {
  const a = await open(env);
  for (let i = 1; i <= 10; i++) await a.save({ entries: [ent(i, 1)] });
  await a.compact(a.storage.createSnapshot(8, { voters: [1], learners: [] }, enc.encode("S")));
  await a.close();
  await env.flipByte(joinPath(env.dir, "snap", "snap-00000000000000000008.snap"), 35);
  await assert.rejects(() => open(env), (e: unknown) => {
    assert.ok(e instanceof DurableStorageCorruptError);
    assert.match(e.message, /refers to the snapshot at index 8/);
    return true;
  });
});

Deno.test("durable storage: concurrent saves share fsyncs and keep their order", async () => {
  const disk = new SimDisk();
  const a = await DurableStorage.open(disk.mount(), "/r", { logger: quiet });
  disk.resetStats();
  const ps: Promise<void>[] = [];
  for (let i = 1; i <= 50; i++) ps.push(a.save({ entries: [ent(i, 1)], hardState: hs(1, 1, i) }));
  await Promise.all(ps);
  assert.ok(disk.stats.syncs < 10, `syncs: ${disk.stats.syncs}`);
  const b = await (async () => {
    disk.crash();
    return await DurableStorage.open(disk.mount(), "/r", { logger: quiet });
  })();
  assert.equal(b.storage.lastIndex(), 50);
  assert.deepEqual(b.storage.hardState(), hs(1, 1, 50));
});

/**
 * Randomized crashes (torn writes) in the middle of saves, installs and compactions: every
 * acknowledged save must survive, and the recovered state must be one the node passed through.
 */
Deno.test("durable storage: random torn crashes never lose an acknowledged save", async () => {
  for (let seed = 1; seed <= 150; seed++) {
    const rand = new Prng(seed);
    const disk = new SimDisk({ rand: rand.fork() });
    const opts = { logger: quiet, segmentBytesMax: 200 + rand.nextInt(400) };
    let st = await DurableStorage.open(disk.mount(), "/r", opts);
    // Model: the states the storage passed through; `acked` = index of the last acknowledged.
    const states = [dump(st.storage)];
    let acked = 0;
    let term = 1;
    for (let round = 0; round < 6; round++) {
      const ops = 1 + rand.nextInt(12);
      const pending: Promise<void>[] = [];
      for (let k = 0; k < ops; k++) {
        const s = st.storage;
        const r = rand.next();
        let p: Promise<void>;
        if (r < 0.1 && s.hardState().commit > s.snapshot().metadata.index) {
          const idx = s.snapshot().metadata.index + 1 +
            rand.nextInt(s.hardState().commit - s.snapshot().metadata.index);
          p = st.compact({
            data: enc.encode(`c${idx}`),
            metadata: { index: idx, term: s.term(idx), confState: { voters: [1], learners: [] } },
          });
        } else if (r < 0.15) {
          const idx = s.lastIndex() + 1 + rand.nextInt(5);
          term++;
          p = st.save({
            snapshot: {
              data: enc.encode(`i${idx}`),
              metadata: { index: idx, term, confState: { voters: [1], learners: [] } },
            },
            entries: [],
            hardState: hs(term, 0, idx),
          });
        } else {
          // append, sometimes overwriting an uncommitted tail
          const commit = s.hardState().commit;
          let from = s.lastIndex() + 1;
          if (rand.chance(0.3) && s.lastIndex() > commit) {
            from = commit + 1 + rand.nextInt(s.lastIndex() - commit);
            term++;
          }
          const n = 1 + rand.nextInt(4);
          const ents: Entry[] = [];
          for (let i = 0; i < n; i++) ents.push(ent(from + i, term, `v${seed}.${round}.${k}.${i}`));
          const last = from + n - 1;
          const newCommit = Math.min(last, commit + rand.nextInt(3));
          p = st.save({ entries: ents, hardState: hs(term, 1, Math.max(commit, newCommit)) });
        }
        const plain = r >= 0.15 || p === undefined;
        // Installs and compactions change the MemoryStorage later: let them finish first.
        if (!plain) await p.catch(() => {});
        states.push(dump(st.storage));
        const at = states.length - 1;
        pending.push(p.then(() => {
          if (at > acked) acked = at;
        }, () => {}));
        if (rand.chance(0.5)) await p.catch(() => {});
      }
      if (rand.chance(0.6)) {
        // crash with saves in flight
        for (let i = rand.nextInt(4); i > 0; i--) await Promise.resolve();
        disk.crash({ torn: true });
        await Promise.all(pending);
      } else {
        await Promise.all(pending);
        disk.crash({ torn: rand.chance(0.5) });
      }
      try {
        st = await DurableStorage.open(disk.mount(), "/r", opts);
      } catch (e) {
        throw new Error(`seed ${seed} round ${round}: ${e} files ${disk.listFiles()}`);
      }
      const got = dump(st.storage);
      // The recovered state is one of the states from the last acknowledged one on, up to the
      // snapshot and hard-state fix-ups (the log content must match exactly).
      const match = states.slice(acked).findIndex((w) =>
        JSON.stringify(w.ents.filter((e) => e.index > got.snap.index)) ===
          JSON.stringify(got.ents) &&
        w.last === got.last && w.snap.index <= got.snap.index
      );
      assert.ok(
        match >= 0,
        `seed ${seed} round ${round}: recovered ${
          JSON.stringify(got)
        } is no state from #${acked}: ${
          states.map((s, i) => `#${i} ${JSON.stringify({ ...s, snap: s.snap.index })}`).join("\n")
        }`,
      );
      assert.ok(got.hs.commit >= states[acked].hs.commit, `seed ${seed}: commit went back`);
      assert.ok(got.hs.term >= states[acked].hs.term, `seed ${seed}: term went back`);
      states.length = 0;
      states.push(got);
      acked = 0;
      term = Math.max(term, got.hs.term);
    }
  }
});

Deno.test("durable storage: a commit-only save (mustSync false) is not synced; the next sync covers it", async () => {
  const disk = new SimDisk();
  const a = await DurableStorage.open(disk.mount(), "/r", { logger: quiet });
  await a.save({ entries: [ent(1, 1), ent(2, 1)], hardState: hs(1, 1, 0) });
  disk.resetStats();
  await a.save({ entries: [], hardState: hs(1, 1, 2), mustSync: false });
  assert.equal(disk.stats.syncs, 0, "no fsync for a commit index");
  assert.deepEqual(a.storage.hardState(), hs(1, 1, 2), "the storage has it at once");
  // A crash now may lose the commit index (Raft recovers it), never the entries.
  disk.crash();
  const b = await DurableStorage.open(disk.mount(), "/r", { logger: quiet });
  assert.equal(b.storage.lastIndex(), 2);
  assert.equal(b.storage.hardState().term, 1);
  // A synced save after it makes both durable.
  await b.save({ entries: [], hardState: hs(1, 1, 1), mustSync: false });
  await b.save({ entries: [ent(3, 1)], hardState: hs(1, 1, 1) });
  disk.crash();
  const c = await DurableStorage.open(disk.mount(), "/r", { logger: quiet });
  assert.equal(c.storage.lastIndex(), 3);
  assert.deepEqual(c.storage.hardState(), hs(1, 1, 1));
});
