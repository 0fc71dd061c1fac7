import assert from "node:assert/strict";
import { Prng } from "@deno-stores/shared/sim";
import { KeyOffsetMap } from "./key_offset_map.ts";

const te = new TextEncoder();

Deno.test("KeyOffsetMap keeps the latest offset per key", () => {
  const m = new KeyOffsetMap();
  const k = (s: string) => te.encode(s);
  const a = k("alpha"), b = k("beta");
  assert.ok(m.put(a, 0, a.length, 3));
  assert.ok(m.put(b, 0, b.length, 4));
  assert.ok(m.put(a, 0, a.length, 9));
  assert.ok(m.put(a, 0, a.length, 5)); // older offsets never win
  assert.equal(m.get(a, 0, a.length), 9);
  assert.equal(m.get(b, 0, b.length), 4);
  assert.equal(m.get(k("gamma"), 0, 5), -1);
  const empty = new Uint8Array(0);
  assert.ok(m.put(empty, 0, 0, 1));
  assert.equal(m.get(empty, 0, 0), 1);
  assert.equal(m.size, 3);
});

Deno.test("KeyOffsetMap with a colliding hash still tells keys apart", () => {
  const m = new KeyOffsetMap({ hash: () => 42 });
  const keys = Array.from({ length: 300 }, (_, i) => te.encode(`key-${i}`));
  keys.forEach((key, i) => assert.ok(m.put(key, 0, key.length, i)));
  keys.forEach((key, i) => assert.equal(m.get(key, 0, key.length), i));
});

Deno.test("KeyOffsetMap matches a Map on random keys and grows (seeded)", () => {
  const rng = new Prng(7);
  const m = new KeyOffsetMap();
  const ref = new Map<string, number>();
  for (let off = 0; off < 20000; off++) {
    const key = te.encode(`k${rng.nextInt(5000)}`);
    // embed the key in a larger buffer to exercise start/len
    const buf = new Uint8Array(key.length + 3);
    buf.set(key, 2);
    assert.ok(m.put(buf, 2, key.length, off));
    ref.set(new TextDecoder().decode(key), off);
  }
  assert.equal(m.size, ref.size);
  for (const [k, v] of ref) {
    const b = te.encode(k);
    assert.equal(m.get(b, 0, b.length), v);
  }
});

Deno.test("KeyOffsetMap reports full instead of exceeding its budget", () => {
  const m = new KeyOffsetMap({ maxBytes: 128 * 1024 });
  let n = 0;
  for (; n < 100000; n++) {
    const key = te.encode(`key-${n}`);
    if (!m.put(key, 0, key.length, n)) break;
  }
  assert.ok(n > 100 && n < 100000);
  assert.ok(m.memoryBytes <= 128 * 1024);
  const first = te.encode("key-0");
  assert.equal(m.get(first, 0, first.length), 0);
});
