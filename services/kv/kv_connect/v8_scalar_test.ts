/**
 * Tests of the V8 number/bigint codec used by sums, on bytes captured from Deno 2.9.6.
 *
 * @module
 */
import assert from "node:assert/strict";
import { decodeV8Scalar, encodeV8Scalar } from "./v8_scalar.ts";

const hex = (s: string) => new Uint8Array(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));

Deno.test("KV Connect V8 scalars decode what Deno 2.9.6 serializes", () => {
  assert.deepEqual(decodeV8Scalar(hex("ff 10 49 0a")), { value: 5, version: 16 });
  assert.deepEqual(decodeV8Scalar(hex("ff 10 49 09")), { value: -5, version: 16 });
  assert.deepEqual(decodeV8Scalar(hex("ff 10 4e 00 00 00 00 00 00 f8 3f")), {
    value: 1.5,
    version: 16,
  });
  assert.deepEqual(decodeV8Scalar(hex("ff 10 5a 10 2c 01 00 00 00 00 00 00")), {
    value: 300n,
    version: 16,
  });
  assert.deepEqual(
    decodeV8Scalar(hex("ff 10 5a 21 00 00 00 00 00 00 00 00 40 00 00 00 00 00 00 00")),
    { value: -(2n ** 70n), version: 16 },
  );
  assert.deepEqual(decodeV8Scalar(hex("ff 10 55 80 01")), { value: 128, version: 16 });
  // Padding bytes before the value are allowed.
  assert.deepEqual(decodeV8Scalar(hex("ff 0f 00 00 49 02")), { value: 1, version: 15 });
});

Deno.test("KV Connect V8 scalars round-trip and refuse other values", () => {
  for (const v of [0, -0.5, 1e300, 42, 0n, 1n, -1n, 2n ** 64n - 1n, -(2n ** 200n)]) {
    assert.deepEqual(decodeV8Scalar(encodeV8Scalar(v, 16)), { value: v, version: 16 });
  }
  assert.deepEqual(encodeV8Scalar(300n, 16), hex("ff 10 5a 10 2c 01 00 00 00 00 00 00"));
  for (
    const bad of [
      "",
      "ff",
      "ff 10",
      "ff 10 22 05 68 65 6c 6c 6f", // a string
      "ff 10 4e 00 00", // a truncated double
      "ff 10 5a 10 2c 01", // a truncated bigint
      "ff 10 49 0a 00", // trailing bytes
      "00 10 49 0a", // no version tag
      "ff 10 49 ff ff ff ff ff ff", // an over-long varint
    ]
  ) {
    assert.equal(decodeV8Scalar(bad === "" ? new Uint8Array(0) : hex(bad)), undefined, bad);
  }
});
