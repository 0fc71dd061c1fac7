import assert from "node:assert/strict";
import { SimDisk } from "../sim/disk.ts";
import { Prng } from "../sim/prng.ts";
import { DenoFileSystem, type FileSystem, joinPath } from "./fs.ts";
import {
  RECORD_HEADER_BYTES,
  segmentName,
  Wal,
  WalCorruptError,
  WalFailedError,
  type WalLogger,
  type WalRecord,
} from "./wal.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A logger that remembers what it was told. */
function memoryLogger(): WalLogger & {
  lines: { msg: string; fields?: Record<string, unknown> }[];
} {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (msg, fields) => lines.push({ msg, fields }),
    info: (msg, fields) => lines.push({ msg, fields }),
  };
}

/** A file system plus the damage a test can do to it, for SimDisk and the real disk alike. */
interface Env {
  name: string;
  fs: FileSystem;
  dir: string;
  flipByte(path: string, offset: number): Promise<void>;
  truncate(path: string, size: number): Promise<void>;
  cleanup(): Promise<void>;
}

function simEnv(): Promise<Env> {
  const disk = new SimDisk();
  return Promise.resolve({
    name: "SimDisk",
    fs: disk,
    dir: "/data/wal",
    flipByte: (p, o) => Promise.resolve(disk.flipByte(p, o, 0x01)),
    truncate: (p, s) => Promise.resolve(disk.truncateFile(p, s)),
    cleanup: () => Promise.resolve(),
  });
}

async function realEnv(syncIo = false): Promise<Env> {
  const root = await Deno.makeTempDir({ prefix: "wal_test_" });
  return {
    name: syncIo ? "real disk, synchronous I/O" : "real disk",
    fs: new DenoFileSystem({ syncIo }),
    dir: joinPath(root, "wal"),
    async flipByte(p, o) {
      const b = await Deno.readFile(p);
      b[o] ^= 0x01;
      await Deno.writeFile(p, b);
    },
    async truncate(p, s) {
      await Deno.truncate(p, s);
    },
    cleanup: () => Deno.remove(root, { recursive: true }),
  };
}

/** Runs `fn` once on SimDisk and once on the real file system. */
function bothDisks(name: string, fn: (env: Env) => Promise<void>): void {
  const envs: [string, () => Promise<Env>][] = [
    ["SimDisk", simEnv],
    ["real disk", () => realEnv(false)],
    ["real disk, synchronous I/O", () => realEnv(true)],
  ];
  for (const [label, make] of envs) {
    Deno.test(`wal: ${name} (${label})`, async () => {
      const env = await make();
      try {
        await fn(env);
      } finally {
        await env.cleanup();
      }
    });
  }
}

function payload(i: number, size = 10 + (i % 50)): Uint8Array {
  const b = new Uint8Array(size);
  for (let k = 0; k < size; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

async function readAll(wal: Wal, from?: number): Promise<WalRecord[]> {
  const out: WalRecord[] = [];
  for await (const r of wal.replay(from)) out.push(r);
  return out;
}

bothDisks("round trip of records of many sizes", async ({ fs, dir }) => {
  const log = memoryLogger();
  const wal = await Wal.open({ fs, dir, logger: log });
  assert.equal(wal.firstSeq, 1);
  assert.equal(wal.lastSeq, 0);
  const sizes = [0, 1, 8, 9, 100, 4096, 70_000];
  for (let i = 0; i < sizes.length; i++) {
    assert.equal(wal.append(1 + (i % 255), payload(i, sizes[i])), i + 1);
  }
  await wal.sync();
  assert.equal(wal.durableSeq, sizes.length);
  await wal.close();

  const again = await Wal.open({ fs, dir, logger: log });
  const recs = await readAll(again);
  assert.deepEqual(recs.map((r) => r.seq), sizes.map((_, i) => i + 1));
  recs.forEach((r, i) => {
    assert.equal(r.type, 1 + (i % 255));
    assert.deepEqual(r.payload, payload(i, sizes[i]));
  });
  assert.equal(again.recovery.truncatedTail, undefined);
  assert.deepEqual(log.lines, []);
  // appending after reopen continues the sequence
  assert.equal(again.append(7, enc.encode("more")), sizes.length + 1);
  await again.close();
  const third = await Wal.open({ fs, dir, logger: log });
  const last = (await readAll(third)).at(-1)!;
  assert.equal(dec.decode(last.payload), "more");
  await third.close();
});

bothDisks("segment rotation, replay from a sequence, release", async ({ fs, dir }) => {
  const wal = await Wal.open({ fs, dir, segmentBytesMax: 1000, firstSeq: 100 });
  const n = 200;
  for (let i = 0; i < n; i++) wal.append(1, payload(i, 40)); // 49 bytes each, 20 per segment
  await wal.sync();
  const segs = wal.segments();
  assert.equal(segs.length, 10);
  assert.equal(segs[0].name, "00000000000000000100.wal");
  assert.equal(segs[1].firstSeq, 120);
  for (const s of segs) assert.ok(s.bytes <= 1000);
  assert.deepEqual(await fs.readDir(dir), segs.map((s) => s.name));
  await wal.close();

  const again = await Wal.open({ fs, dir, segmentBytesMax: 1000 });
  assert.equal(again.recovery.records, n);
  const from = await readAll(again, 250);
  assert.deepEqual(from.map((r) => r.seq), Array.from({ length: 50 }, (_, i) => 250 + i));
  assert.deepEqual(from[0].payload, payload(150, 40));

  // release: segments whose records are all <= 139 -> the first two
  assert.deepEqual(await again.releaseUpTo(139), [segmentName(100), segmentName(120)]);
  assert.equal(again.firstSeq, 140);
  assert.deepEqual(await again.releaseUpTo(141), []); // 140..159 still needed
  assert.deepEqual(await again.truncateBefore(segmentName(180)), [
    segmentName(140),
    segmentName(160),
  ]);
  await assert.rejects(() => again.truncateBefore("nope.wal"));
  // the last segment is never released
  const all = await again.releaseUpTo(1_000_000);
  assert.equal(all.length, 5);
  assert.equal(again.segments().length, 1);
  assert.equal(again.firstSeq, 280);
  await again.close();
  const third = await Wal.open({ fs, dir, segmentBytesMax: 1000 });
  assert.deepEqual(
    (await readAll(third)).map((r) => r.seq),
    Array.from({ length: 20 }, (_, i) => 280 + i),
  );
  // rotate starts a fresh segment; rotating an empty one does nothing
  await third.rotate();
  await third.rotate();
  assert.deepEqual(third.segments().map((s) => s.name), [segmentName(280), segmentName(300)]);
  third.append(2, enc.encode("x"));
  await third.close();
  const fourth = await Wal.open({ fs, dir });
  assert.equal(fourth.lastSeq, 300);
  await fourth.close();
});

bothDisks(
  "a record larger than the segment limit gets a segment of its own",
  async ({ fs, dir }) => {
    const wal = await Wal.open({ fs, dir, segmentBytesMax: 100 });
    wal.append(1, payload(1, 10));
    wal.append(1, payload(2, 500));
    wal.append(1, payload(3, 10));
    await wal.close();
    const again = await Wal.open({ fs, dir, segmentBytesMax: 100 });
    assert.deepEqual(again.segments().map((s) => s.count), [1, 1, 1]);
    assert.deepEqual((await readAll(again))[1].payload, payload(2, 500));
    assert.throws(() => again.append(0, payload(1)), RangeError);
    assert.throws(() => again.append(256, payload(1)), RangeError);
    await again.close();
    const small = await Wal.open({ fs, dir: `${dir}-small`, maxRecordBytes: 64 });
    assert.throws(() => small.append(1, new Uint8Array(65)), RangeError);
    await small.close();
  },
);

bothDisks("truncated last record: recovers to the last good record", async (env) => {
  const { fs, dir } = env;
  const wal = await Wal.open({ fs, dir });
  for (let i = 0; i < 10; i++) wal.append(1, payload(i, 20));
  await wal.close();
  const path = joinPath(dir, segmentName(1));
  const size = 10 * (RECORD_HEADER_BYTES + 20);
  for (const cut of [size - 1, size - 20, size - 25, size - 29 + 3]) {
    await env.truncate(path, cut);
    const log = memoryLogger();
    const again = await Wal.open({ fs, dir, logger: log });
    assert.equal(again.lastSeq, 9);
    assert.deepEqual((await readAll(again)).map((r) => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(again.recovery.truncatedTail?.offset, 9 * 29);
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0].msg, /truncating torn or corrupt tail/);
    assert.equal(log.lines[0].fields?.file, path);
    assert.equal((await fs.stat(path))?.size, 9 * 29);
    // the log continues from there
    again.append(1, payload(9, 20));
    await again.close();
  }
});

bothDisks("flipped byte in the last record: recovers", async (env) => {
  const { fs, dir } = env;
  const wal = await Wal.open({ fs, dir });
  for (let i = 0; i < 5; i++) wal.append(1, payload(i, 20));
  await wal.close();
  const path = joinPath(dir, segmentName(1));
  // flip in the payload, the crc, and the type of the last record
  for (const off of [4 * 29 + 15, 4 * 29 + 5, 4 * 29 + 8]) {
    await env.flipByte(path, off);
    const log = memoryLogger();
    const again = await Wal.open({ fs, dir, logger: log });
    assert.equal(again.lastSeq, 4);
    assert.match(String(log.lines[0]?.fields?.reason), /crc mismatch/);
    again.append(1, payload(4, 20));
    await again.close();
  }
});

bothDisks("flipped byte before the tail: refuses to open", async (env) => {
  const { fs, dir } = env;
  const wal = await Wal.open({ fs, dir });
  for (let i = 0; i < 5; i++) wal.append(1, payload(i, 20));
  await wal.close();
  const path = joinPath(dir, segmentName(1));
  await env.flipByte(path, 2 * 29 + 12); // payload of record 3
  await assert.rejects(() => Wal.open({ fs, dir }), (e: unknown) => {
    assert.ok(e instanceof WalCorruptError);
    assert.equal(e.file, path);
    assert.equal(e.offset, 2 * 29);
    assert.match(e.message, /crc mismatch .*; a valid record follows at offset 87/);
    return true;
  });
  // A damaged length field: the next record is found by scanning.
  await env.flipByte(path, 2 * 29 + 12); // repair
  await env.flipByte(path, 1 * 29 + 1); // length of record 2 += 256
  await assert.rejects(() => Wal.open({ fs, dir }), (e: unknown) => {
    assert.ok(e instanceof WalCorruptError);
    assert.equal(e.offset, 29);
    assert.match(e.reason, /short payload|crc mismatch/);
    assert.match(e.reason, /valid record follows/);
    return true;
  });
  // The file is left untouched.
  assert.equal((await fs.stat(path))?.size, 5 * 29);
});

bothDisks("damage in a segment that is not the last: refuses to open", async (env) => {
  const { fs, dir } = env;
  const wal = await Wal.open({ fs, dir, segmentBytesMax: 100 });
  for (let i = 0; i < 9; i++) wal.append(1, payload(i, 20)); // 3 per segment
  await wal.close();
  // Corrupting the LAST record of a middle segment is still fatal: later segments exist.
  const mid = joinPath(dir, segmentName(4));
  await env.flipByte(mid, 2 * 29 + 10);
  await assert.rejects(() => Wal.open({ fs, dir }), (e: unknown) => {
    assert.ok(e instanceof WalCorruptError);
    assert.equal(e.file, mid);
    assert.equal(e.offset, 58);
    assert.match(e.message, /not the last segment/);
    return true;
  });
  await env.flipByte(mid, 2 * 29 + 10);
  // A truncated middle segment too.
  await env.truncate(mid, 70);
  await assert.rejects(() => Wal.open({ fs, dir }), WalCorruptError);
});

bothDisks("a missing middle segment is a gap", async ({ fs, dir }) => {
  const wal = await Wal.open({ fs, dir, segmentBytesMax: 100 });
  for (let i = 0; i < 9; i++) wal.append(1, payload(i, 20));
  await wal.close();
  await fs.remove(joinPath(dir, segmentName(4)));
  await assert.rejects(() => Wal.open({ fs, dir }), /sequence gap/);
});

bothDisks("zeroed tail (preallocated or lost blocks) is a torn tail", async (env) => {
  const { fs, dir } = env;
  const wal = await Wal.open({ fs, dir });
  for (let i = 0; i < 3; i++) wal.append(1, payload(i, 20));
  await wal.close();
  const path = joinPath(dir, segmentName(1));
  const h = await fs.open(path);
  await h.writeAt(3 * 29, new Uint8Array(4096));
  await h.sync();
  await h.close();
  const again = await Wal.open({ fs, dir, logger: memoryLogger() });
  assert.equal(again.lastSeq, 3);
  assert.equal(again.recovery.truncatedTail?.droppedBytes, 4096);
  await again.close();
});

bothDisks("group commit: concurrent appendAndSync calls share fsyncs", async ({ fs, dir }) => {
  const wal = await Wal.open({ fs, dir });
  const calls = Array.from(
    { length: 200 },
    (_, i) =>
      wal.appendAndSync([{ type: 1, payload: payload(i, 100) }, {
        type: 2,
        payload: payload(i, 5),
      }]),
  );
  const results = await Promise.all(calls);
  results.forEach((r, i) => assert.deepEqual(r, { first: 2 * i + 1, last: 2 * i + 2 }));
  assert.equal(wal.durableSeq, 400);
  if (fs instanceof SimDisk) {
    // one fsync for the first caller, one for everyone who arrived while it ran
    assert.ok(fs.stats.syncs <= 3, `syncs: ${fs.stats.syncs}`);
    assert.ok(fs.stats.writes <= 3, `writes: ${fs.stats.writes}`);
  }
  await wal.close();
  const again = await Wal.open({ fs, dir });
  assert.equal((await readAll(again)).length, 400);
  await again.close();
});

Deno.test("wal: sync with nothing new does no I/O; a sync in flight covers later callers", async () => {
  const disk = new SimDisk();
  const wal = await Wal.open({ fs: disk, dir: "/w" });
  const base = disk.stats.syncs;
  await wal.sync();
  assert.equal(disk.stats.syncs, base);
  wal.append(1, payload(1));
  const a = wal.sync();
  const b = wal.sync(); // joins the queued sync
  assert.equal(a, b);
  await a;
  assert.equal(disk.stats.syncs, base + 1);
  // Appends during a running fsync get exactly one more.
  wal.append(1, payload(2));
  const c = wal.sync();
  await Promise.resolve();
  await Promise.resolve();
  wal.append(1, payload(3));
  const d = wal.sync();
  await Promise.all([c, d]);
  assert.equal(wal.durableSeq, 3);
  assert.ok(disk.stats.syncs <= base + 3);
  await wal.close();
});

Deno.test("wal: a crash loses only what was not synced", async () => {
  const disk = new SimDisk();
  const dir = "/data/wal";
  const wal = await Wal.open({ fs: disk, dir, segmentBytesMax: 300 });
  for (let i = 0; i < 20; i++) wal.append(1, payload(i, 20));
  await wal.sync();
  for (let i = 20; i < 25; i++) wal.append(1, payload(i, 20));
  await wal.flush(); // written, not synced
  for (let i = 25; i < 30; i++) wal.append(1, payload(i, 20)); // only buffered
  disk.crash();
  const again = await Wal.open({ fs: disk, dir, logger: memoryLogger() });
  const recs = await readAll(again);
  assert.deepEqual(recs.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i + 1));
  recs.forEach((r, i) => assert.deepEqual(r.payload, payload(i, 20)));
  await again.close();
});

Deno.test("wal: a new segment whose directory entry was not synced vanishes in a crash", async () => {
  const disk = new SimDisk();
  const wal = await Wal.open({ fs: disk, dir: "/w", segmentBytesMax: 100 });
  for (let i = 0; i < 3; i++) wal.append(1, payload(i, 20));
  await wal.sync();
  wal.append(1, payload(3, 20)); // goes to a new segment
  await wal.flush(); // old segment sealed (synced); new file created, not synced
  assert.equal(disk.isNameDurable(`/w/${segmentName(4)}`), false);
  disk.crash();
  const again = await Wal.open({ fs: disk, dir: "/w" });
  assert.equal(again.lastSeq, 3);
  assert.deepEqual(again.segments().map((s) => s.name), [segmentName(1)]);
  await again.close();
});

Deno.test("wal: after a failed fsync the log refuses work; reopening recovers synced data", async () => {
  const disk = new SimDisk();
  const wal = await Wal.open({ fs: disk, dir: "/w" });
  await wal.appendAndSync([{ type: 1, payload: payload(1) }]);
  disk.failWith((op) => op.op === "sync" ? new Error("EIO: fsync failed") : undefined);
  await assert.rejects(() => wal.appendAndSync([{ type: 1, payload: payload(2) }]), /EIO/);
  assert.throws(() => wal.append(1, payload(3)), WalFailedError);
  await assert.rejects(() => wal.sync(), WalFailedError);
  await assert.rejects(() => wal.flush(), WalFailedError);
  disk.failWith(null);
  await wal.close();
  disk.crash();
  const again = await Wal.open({ fs: disk, dir: "/w" });
  assert.equal(again.lastSeq, 1);
  await again.close();
});

Deno.test("wal: torn crashes never surface a damaged record (randomized)", async () => {
  let tornTails = 0;
  let crashes = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const rand = new Prng(seed);
    const disk = new SimDisk({ rand: rand.fork() });
    const dir = "/data/wal";
    const segmentBytesMax = rand.pick([120, 400, 4096]);
    /** Every record ever appended, by seq; `acked` = highest seq whose sync resolved. */
    const appended = new Map<number, Uint8Array>();
    let acked = 0;
    let firstNeeded = 1;
    let wal = await Wal.open({ fs: disk, dir, segmentBytesMax, logger: memoryLogger() });
    for (let step = 0; step < 60; step++) {
      const action = rand.weighted(
        [
          ["append", 5],
          ["sync", 2],
          ["appendAndSync", 2],
          ["flush", 2],
          ["rotate", 0.3],
          ["release", 0.3],
          ["crash", 0.6],
        ] as const,
      );
      if (action === "append" || action === "appendAndSync") {
        const n = 1 + rand.nextInt(4);
        const batch = Array.from({ length: n }, () => ({
          type: 1 + rand.nextInt(3),
          payload: rand.bytes(rand.nextInt(60)),
        }));
        if (action === "append") {
          for (const r of batch) appended.set(wal.append(r.type, r.payload), r.payload);
        } else {
          const first = wal.lastSeq + 1;
          batch.forEach((r, i) => appended.set(first + i, r.payload));
          const { last } = await wal.appendAndSync(batch);
          acked = Math.max(acked, last);
        }
      } else if (action === "sync") {
        const upTo = wal.lastSeq;
        await wal.sync();
        acked = Math.max(acked, upTo);
      } else if (action === "flush") {
        await wal.flush();
      } else if (action === "rotate") {
        const upTo = wal.lastSeq;
        await wal.rotate();
        acked = Math.max(acked, upTo);
      } else if (action === "release") {
        const upTo = wal.firstSeq + rand.nextInt(Math.max(1, wal.lastSeq - wal.firstSeq + 1));
        await wal.releaseUpTo(Math.min(upTo, acked));
        firstNeeded = wal.firstSeq;
      } else {
        disk.crash({ torn: rand.chance(0.7) });
        crashes++;
        wal = await Wal.open({ fs: disk, dir, segmentBytesMax, logger: memoryLogger() });
        if (wal.recovery.truncatedTail !== undefined) tornTails++;
        // Everything acknowledged survived; anything after it is a prefix of what was appended.
        const recs = await readAll(wal);
        assert.ok(wal.firstSeq <= firstNeeded, `seed ${seed}: released too much`);
        assert.ok(wal.lastSeq >= acked, `seed ${seed}: lost acked ${acked}, have ${wal.lastSeq}`);
        for (const r of recs) {
          assert.deepEqual(r.payload, appended.get(r.seq), `seed ${seed}: seq ${r.seq} differs`);
        }
        assert.deepEqual(
          recs.map((r) => r.seq),
          Array.from({ length: recs.length }, (_, i) => wal.firstSeq + i),
        );
        // Unacknowledged records that were lost may be appended again with new content.
        for (const seq of [...appended.keys()]) if (seq > wal.lastSeq) appended.delete(seq);
        acked = wal.lastSeq; // what survived a crash is durable now (the open truncated and synced)
      }
    }
    await wal.close();
  }
  assert.ok(
    crashes > 500 && tornTails > 20,
    `crashes ${crashes}, torn tails repaired ${tornTails}`,
  );
});

Deno.test("wal: crash while concurrent group commits are in flight (randomized)", async () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rand = new Prng(seed);
    const disk = new SimDisk({ rand: rand.fork() });
    const dir = "/w";
    // One mount per incarnation: what the dead process still does after the crash fails.
    const wal = await Wal.open({ fs: disk.mount(), dir, segmentBytesMax: rand.pick([150, 1000]) });
    const payloads = new Map<number, Uint8Array>();
    const acked: number[] = [];
    const inflight: Promise<void>[] = [];
    for (let c = 0; c < 20; c++) {
      const batch = Array.from({ length: 1 + rand.nextInt(3) }, () => ({
        type: 1,
        payload: rand.bytes(1 + rand.nextInt(40)),
      }));
      const first = wal.lastSeq + 1;
      batch.forEach((r, i) => payloads.set(first + i, r.payload));
      inflight.push(
        wal.appendAndSync(batch).then(({ last }) => void acked.push(last), () => {}),
      );
      // let some I/O happen between callers
      for (let k = rand.nextInt(4); k > 0; k--) await Promise.resolve();
    }
    for (let k = rand.nextInt(30); k > 0; k--) await Promise.resolve();
    disk.crash({ torn: rand.chance(0.5) });
    await Promise.all(inflight); // the rest fail on stale handles
    const again = await Wal.open({ fs: disk.mount(), dir, logger: memoryLogger() });
    const maxAcked = Math.max(0, ...acked);
    assert.ok(
      again.lastSeq >= maxAcked,
      `seed ${seed}: acked ${maxAcked}, recovered ${again.lastSeq}`,
    );
    for await (const r of again.replay()) assert.deepEqual(r.payload, payloads.get(r.seq));
    await again.close();
  }
});
