import assert from "node:assert/strict";
import { SimDisk } from "../sim/disk.ts";
import { Prng } from "../sim/prng.ts";
import { DenoFileSystem, type FileSystem, joinPath } from "./fs.ts";
import {
  decodeSnapshot,
  encodeSnapshot,
  SNAPSHOT_HEADER_BYTES,
  SnapshotFiles,
  snapshotName,
} from "./snapshot_file.ts";
import type { WalLogger } from "./wal.ts";

const enc = new TextEncoder();

function memoryLogger(): WalLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (msg, fields) => lines.push(`${msg} ${JSON.stringify(fields)}`) };
}

async function withDisks(fn: (fs: FileSystem, dir: string) => Promise<void>): Promise<void> {
  await fn(new SimDisk(), "/data/snap");
  const root = await Deno.makeTempDir({ prefix: "snap_test_" });
  try {
    await fn(new DenoFileSystem(), joinPath(root, "snap"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("snapshot: encode/decode and every kind of damage", () => {
  const data = enc.encode("state machine bytes");
  const file = encodeSnapshot(42, data);
  assert.equal(file.length, SNAPSHOT_HEADER_BYTES + data.length);
  assert.deepEqual(decodeSnapshot(file), { index: 42, data });
  assert.deepEqual(decodeSnapshot(encodeSnapshot(0, new Uint8Array())).data, new Uint8Array());
  const damaged = (at: number) => {
    const c = file.slice();
    c[at] ^= 0x10;
    return c;
  };
  assert.throws(() => decodeSnapshot(damaged(0)), /bad magic/);
  assert.throws(() => decodeSnapshot(damaged(9)), /header crc/);
  assert.throws(() => decodeSnapshot(damaged(SNAPSHOT_HEADER_BYTES + 3)), /payload crc/);
  assert.throws(() => decodeSnapshot(file.subarray(0, file.length - 1)), /header says/);
  assert.throws(() => decodeSnapshot(file.subarray(0, 10)), /short header/);
  assert.throws(() => encodeSnapshot(-1, data), RangeError);
});

Deno.test("snapshot: write, load newest, delete older (SimDisk and real disk)", async () => {
  await withDisks(async (fs, dir) => {
    const snaps = new SnapshotFiles({ fs, dir, logger: memoryLogger() });
    assert.equal(await snaps.loadNewest(), null);
    assert.deepEqual(await snaps.list(), []);
    await snaps.write(5, enc.encode("five"));
    await snaps.write(12, enc.encode("twelve"));
    await snaps.write(9, enc.encode("nine"));
    const newest = await snaps.loadNewest();
    assert.equal(newest?.index, 12);
    assert.deepEqual(newest?.data, enc.encode("twelve"));
    assert.deepEqual((await snaps.list()).map((s) => s.index), [12, 9, 5]);
    assert.deepEqual(await snaps.deleteOlderThan(12), [snapshotName(9), snapshotName(5)]);
    assert.deepEqual(await fs.readDir(dir), [snapshotName(12)]);
    // rewriting the same index replaces it
    await snaps.write(12, enc.encode("twelve again"));
    assert.deepEqual((await snaps.loadNewest())?.data, enc.encode("twelve again"));
  });
});

Deno.test("snapshot: a corrupt newest snapshot is skipped, a stale temp file removed", async () => {
  await withDisks(async (fs, dir) => {
    const log = memoryLogger();
    const snaps = new SnapshotFiles({ fs, dir, logger: log });
    await snaps.write(1, enc.encode("one"));
    await snaps.write(2, enc.encode("two"));
    // damage snapshot 2's payload
    const path2 = joinPath(dir, snapshotName(2));
    const bytes = await fs.readFile(path2);
    bytes[SNAPSHOT_HEADER_BYTES] ^= 0xff;
    const h = await fs.open(path2);
    await h.writeAt(0, bytes);
    await h.close();
    // a half-written temp file of snapshot 3
    const tmp = await fs.open(joinPath(dir, `${snapshotName(3)}.tmp`), { create: true });
    await tmp.writeAt(0, encodeSnapshot(3, enc.encode("three")).subarray(0, 20));
    await tmp.close();
    const loaded = await snaps.loadNewest();
    assert.equal(loaded?.index, 1);
    assert.deepEqual(loaded?.data, enc.encode("one"));
    assert.ok(log.lines.some((l) => /skipping corrupt snapshot/.test(l) && /payload crc/.test(l)));
    assert.ok(log.lines.some((l) => /removing incomplete temp file/.test(l)));
    assert.deepEqual(await fs.readDir(dir), [snapshotName(1), snapshotName(2)]);
    // a snapshot whose name disagrees with its header is not trusted
    const moved = await fs.open(joinPath(dir, snapshotName(7)), { create: true });
    await moved.writeAt(0, encodeSnapshot(6, enc.encode("six")));
    await moved.close();
    assert.equal((await snaps.loadNewest())?.index, 1);
  });
});

Deno.test("snapshot: a crash at any point leaves the old or the new snapshot, whole", async () => {
  let sawOld = 0;
  let sawNew = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const rand = new Prng(seed);
    const disk = new SimDisk({ rand: rand.fork() });
    const dir = "/data/snap";
    const oldData = rand.bytes(100 + rand.nextInt(200));
    const newData = rand.bytes(100 + rand.nextInt(200));
    await new SnapshotFiles({ fs: disk.mount(), dir }).write(1, oldData);
    // the process writing snapshot 2 dies after a random number of steps
    const writer = new SnapshotFiles({ fs: disk.mount(), dir });
    let done = false;
    const writing = writer.write(2, newData).then(() => (done = true), () => {});
    for (let k = rand.nextInt(25); k > 0; k--) await Promise.resolve();
    disk.crash({ torn: rand.chance(0.5) });
    await writing;
    const loaded = await new SnapshotFiles({ fs: disk.mount(), dir, logger: memoryLogger() })
      .loadNewest();
    assert.ok(loaded !== null, `seed ${seed}: no snapshot at all`);
    if (loaded.index === 2) {
      assert.deepEqual(loaded.data, newData);
      sawNew++;
    } else {
      assert.ok(!done, `seed ${seed}: write resolved but snapshot 2 was lost`);
      assert.equal(loaded.index, 1);
      assert.deepEqual(loaded.data, oldData);
      sawOld++;
    }
  }
  assert.ok(sawOld > 20 && sawNew > 20, `old ${sawOld}, new ${sawNew}`);
});
