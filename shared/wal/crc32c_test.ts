import assert from "node:assert/strict";
import { crc32c, crc32cUpdate } from "./crc32c.ts";

/** Bit-at-a-time reference implementation. */
function reference(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

Deno.test("crc32c: standard check value and RFC 3720 vectors", () => {
  assert.equal(crc32c("123456789"), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c("The quick brown fox jumps over the lazy dog"), 0x22620404);
});

Deno.test("crc32c: slicing-by-16 matches the bitwise reference at every length and alignment", () => {
  const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff);
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len < 80; len++) {
      const slice = data.subarray(start, start + len);
      assert.equal(crc32c(slice), reference(slice), `start ${start} len ${len}`);
      assert.equal(crc32cUpdate(0, data, start, start + len), reference(slice));
    }
  }
});

Deno.test("crc32c: incremental update equals one pass", () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
  const whole = crc32c(data);
  for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
    assert.equal(crc32cUpdate(crc32c(data.subarray(0, cut)), data.subarray(cut)), whole);
  }
});
