import assert from "node:assert/strict";
import { SimDisk, StaleHandleError } from "./disk.ts";
import { Prng } from "./prng.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const text = (b: Uint8Array) => dec.decode(b);

Deno.test("disk: reads see writes; a crash keeps only synced data", async () => {
  const disk = new SimDisk();
  await disk.mkdir("/d");
  const f = await disk.open("/d/a", { create: true });
  await disk.syncDir("/d");
  await f.append(enc.encode("hello "));
  await f.sync();
  await f.append(enc.encode("world"));
  assert.equal(text(await f.read(0, 100)), "hello world");
  assert.equal(f.size(), 11);
  assert.ok(disk.hasUnsynced("/d/a"));
  disk.crash();
  assert.equal(text(await disk.readFile("/d/a")), "hello ");
  await assert.rejects(() => f.read(0, 1), StaleHandleError);
  const g = await disk.open("/d/a");
  await g.writeAt(10, enc.encode("!"));
  assert.deepEqual([...(await g.read(6, 10))], [0, 0, 0, 0, 33]);
});

Deno.test("disk: names are durable only after syncDir", async () => {
  const disk = new SimDisk();
  await disk.mkdir("/d");
  const f = await disk.open("/d/new", { create: true });
  await f.append(enc.encode("data"));
  await f.sync(); // data durable, name not
  assert.equal(disk.isNameDurable("/d/new"), false);
  disk.crash();
  assert.equal(await disk.stat("/d/new"), null);

  const g = await disk.open("/d/kept", { create: true });
  await g.append(enc.encode("v1"));
  await g.sync();
  await disk.syncDir("/d");
  // rename and remove without a directory fsync are undone by a crash
  await disk.rename("/d/kept", "/d/renamed");
  assert.deepEqual(await disk.readDir("/d"), ["renamed"]);
  disk.crash();
  assert.deepEqual(await disk.readDir("/d"), ["kept"]);
  await disk.remove("/d/kept");
  disk.crash();
  assert.equal(text(await disk.readFile("/d/kept")), "v1");
  await disk.rename("/d/kept", "/d/renamed");
  await disk.syncDir("/d");
  disk.crash();
  assert.deepEqual(await disk.readDir("/d"), ["renamed"]);
});

Deno.test("disk: rename replaces the target atomically", async () => {
  const disk = new SimDisk();
  await disk.mkdir("/d");
  for (const [name, body] of [["a", "old"], ["b", "new"]]) {
    const f = await disk.open(`/d/${name}`, { create: true });
    await f.append(enc.encode(body));
    await f.sync();
  }
  await disk.syncDir("/d");
  await disk.rename("/d/b", "/d/a");
  await disk.syncDir("/d");
  disk.crash();
  assert.deepEqual(await disk.readDir("/d"), ["a"]);
  assert.equal(text(await disk.readFile("/d/a")), "new");
  await assert.rejects(() => disk.rename("/d/missing", "/d/x"), Deno.errors.NotFound);
  await assert.rejects(() => disk.open("/d/missing"), Deno.errors.NotFound);
  await assert.rejects(() => disk.open("/d/a", { createNew: true }), Deno.errors.AlreadyExists);
});

Deno.test("disk: a torn crash keeps a prefix of the unsynced writes", async () => {
  const sizes = new Set<number>();
  for (let seed = 0; seed < 50; seed++) {
    const disk = new SimDisk({ rand: new Prng(seed) });
    const f = await disk.open("/log", { create: true });
    await disk.syncDir("/");
    await f.append(enc.encode("durable|"));
    await f.sync();
    const full = "durable|" + "abcdefghij".repeat(3);
    for (let i = 0; i < 3; i++) await f.append(enc.encode("abcdefghij"));
    disk.crash({ torn: true });
    const after = text(await disk.readFile("/log"));
    assert.ok(full.startsWith(after) && after.startsWith("durable|"), `seed ${seed}: ${after}`);
    sizes.add(after.length);
  }
  assert.ok(sizes.size > 5, `torn crashes should vary (${[...sizes]})`);
  assert.throws(() => new SimDisk().crash({ torn: true }));
});

Deno.test("disk: truncate, open with truncate, and durability of size changes", async () => {
  const disk = new SimDisk();
  const f = await disk.open("/f", { create: true });
  await disk.syncDir("/");
  await f.append(enc.encode("0123456789"));
  await f.sync();
  await f.truncate(4);
  assert.equal(text(await disk.readFile("/f")), "0123");
  disk.crash();
  assert.equal(text(await disk.readFile("/f")), "0123456789");
  const g = await disk.open("/f", { truncate: true });
  assert.equal(g.size(), 0);
  await g.sync();
  disk.crash();
  assert.equal((await disk.readFile("/f")).length, 0);
});

Deno.test("disk: fault injection (flip, truncate, garbage, failing operations)", async () => {
  const disk = new SimDisk();
  const f = await disk.open("/f", { create: true });
  await f.append(enc.encode("abcdef"));
  await f.sync();
  await disk.syncDir("/");
  disk.flipByte("/f", 0, 0x20);
  assert.equal(text(disk.contents("/f")), "Abcdef");
  disk.crash();
  assert.equal(text(await disk.readFile("/f")), "Abcdef"); // media damage survives crashes
  disk.truncateFile("/f", 3);
  disk.writeGarbage("/f", 1, new Uint8Array([0, 0]));
  assert.deepEqual([...disk.contents("/f")], [65, 0, 0]);
  assert.throws(() => disk.flipByte("/f", 10), RangeError);

  disk.failWith((op) => op.op === "sync" ? new Error("EIO") : undefined);
  const g = await disk.open("/f");
  await g.append(enc.encode("x"));
  await assert.rejects(() => g.sync(), /EIO/);
  disk.failWith(null);
  await g.sync();
  assert.equal(disk.stats.syncs, 2);
  assert.deepEqual(disk.listFiles(), ["/f"]);
});

Deno.test("disk: directories", async () => {
  const disk = new SimDisk();
  await disk.mkdir("/a/b/c");
  assert.deepEqual(await disk.readDir("/a"), ["b"]);
  assert.equal((await disk.stat("/a/b"))?.isDirectory, true);
  await disk.mkdir("/a/b/c"); // exists: fine
  disk.crash();
  assert.equal((await disk.stat("/a/b/c"))?.isDirectory, true);
  await assert.rejects(() => disk.readDir("/nope"), Deno.errors.NotFound);
  await assert.rejects(() => disk.remove("/a"), /not empty/);
  await disk.remove("/a/b/c");
  assert.deepEqual(await disk.readDir("/a/b"), []);
});

Deno.test("disk: a mount dies with the crash, including operations still in flight", async () => {
  const disk = new SimDisk();
  const before = disk.mount();
  await before.mkdir("/d");
  const f = await before.open("/d/x", { create: true });
  const pending = before.syncDir("/d"); // issued, not yet run
  disk.crash();
  await assert.rejects(() => pending, StaleHandleError);
  await assert.rejects(() => before.stat("/d"), StaleHandleError);
  await assert.rejects(() => f.sync(), StaleHandleError);
  assert.equal(await disk.stat("/d/x"), null); // the name never became durable
  const after = disk.mount();
  assert.deepEqual(await after.readDir("/d"), []);
});
