import assert from "node:assert/strict";
import { SimDisk } from "@deno-stores/shared/sim";
import { writeFileAtomic } from "./fs.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("writeFileAtomic: replaced whole, durable with the directory synced", async () => {
  const disk = new SimDisk();
  const fs = disk.mount();
  await fs.mkdir("/d");
  await writeFileAtomic(fs, "/d/f", bytes("first"));
  await writeFileAtomic(fs, "/d/f", bytes("second, longer"));
  assert.equal(text(await fs.readFile("/d/f")), "second, longer");
  assert.equal(await fs.stat("/d/f.tmp"), null);
  disk.crash();
  assert.equal(text(await disk.mount().readFile("/d/f")), "second, longer");
});

Deno.test("writeFileAtomic: a crash at any step leaves the old or the new content", async () => {
  for (let failAt = 0; failAt < 8; failAt++) {
    const disk = new SimDisk();
    const fs = disk.mount();
    await fs.mkdir("/d");
    await writeFileAtomic(fs, "/d/f", bytes("old"));
    let ops = 0;
    disk.failWith(() => (ops++ === failAt ? new Error("power cut") : undefined));
    await writeFileAtomic(fs, "/d/f", bytes("new!"), { tmpPath: "/d/f.x.tmp" }).catch(() => {});
    disk.failWith(null);
    disk.crash();
    const after = text(await disk.mount().readFile("/d/f"));
    assert.ok(after === "old" || after === "new!", `failing op ${failAt}: ${after}`);
  }
});

Deno.test("writeFileAtomic: without the directory sync a crash may bring the old file back", async () => {
  const disk = new SimDisk();
  const fs = disk.mount();
  await fs.mkdir("/d");
  await writeFileAtomic(fs, "/d/f", bytes("old"));
  await writeFileAtomic(fs, "/d/f", bytes("new"), { syncDir: false });
  disk.crash();
  assert.equal(text(await disk.mount().readFile("/d/f")), "old");
});
