/**
 * SHA-256 (FIPS 180-4) for short messages built in place, as block hashing needs: the caller
 * writes the message into a scratch buffer with room for the padding, and the digest is computed
 * without copying or allocating. `node:crypto` costs a native call per digest, which dominates
 * for ~100-byte block triples; this runs in the caller's loop.
 *
 * The compression function is generated with its rounds unrolled (gen_sha256.ts).
 *
 * @module
 */
import { compress } from "./sha256_compress.ts";

const H0 = new Int32Array([
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
]);

/** Bytes a message of `len` bytes takes once padded. */
export function paddedLength(len: number): number {
  return Math.ceil((len + 9) / 64) * 64;
}

const state = new Int32Array(8);

/**
 * The digest of `buf[0, len)`, written as 32 bytes at `out[outOff]`. `buf` must hold
 * {@link paddedLength}(len) bytes: the padding is written into it.
 */
export function sha256InPlace(buf: Uint8Array, len: number, out: Uint8Array, outOff = 0): void {
  const total = paddedLength(len);
  if (buf.length < total) throw new RangeError(`sha256: buffer of ${buf.length} < ${total} bytes`);
  buf[len] = 0x80;
  buf.fill(0, len + 1, total - 8);
  const bits = len * 8;
  const hi = Math.floor(bits / 0x100000000);
  buf[total - 8] = hi >>> 24;
  buf[total - 7] = hi >>> 16;
  buf[total - 6] = hi >>> 8;
  buf[total - 5] = hi;
  buf[total - 4] = bits >>> 24;
  buf[total - 3] = bits >>> 16;
  buf[total - 2] = bits >>> 8;
  buf[total - 1] = bits;
  const h = state;
  h.set(H0);
  for (let off = 0; off < total; off += 64) compress(h, buf, off);
  for (let i = 0; i < 8; i++) {
    const v = h[i];
    const o = outOff + i * 4;
    out[o] = v >>> 24;
    out[o + 1] = v >>> 16;
    out[o + 2] = v >>> 8;
    out[o + 3] = v;
  }
}

/** SHA-256 of any byte string (copies it into a padded buffer). */
export function sha256(bytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(paddedLength(bytes.length));
  buf.set(bytes);
  const out = new Uint8Array(32);
  sha256InPlace(buf, bytes.length, out);
  return out;
}
