/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven with slicing-by-16 over
 * `Int32Array` tables: every table value is a small integer in V8 (no heap numbers), and 16 bytes
 * per step halve the loop overhead of slicing-by-8 (about twice as fast: ~1.3 GB/s here).
 *
 * `crc32c("123456789") === 0xE3069283`. Values are unsigned 32-bit numbers.
 *
 * @module
 */

const POLY = 0x82f63b78;

/** 16 tables of 256 entries: T[k][b] is the CRC of byte b followed by k zero bytes. */
const TABLES: Int32Array = (() => {
  const t = new Int32Array(16 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[b] = c;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b];
    for (let k = 1; k < 16; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + b] = c;
    }
  }
  return t;
})();

/**
 * Continues a CRC-32C over `data[start, end)`. `crc` is a finished CRC value (0 to start),
 * so `crc32cUpdate(crc32c(a), b) === crc32c(a ++ b)`.
 */
export function crc32cUpdate(
  crc: number,
  data: Uint8Array,
  start = 0,
  end: number = data.length,
): number {
  const t = TABLES;
  const d = data;
  let c = ~crc;
  let i = start;
  const end16 = end - ((end - i) & 15);
  while (i < end16) {
    const a = c ^ (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24));
    c = t[3840 + (a & 0xff)] ^ t[3584 + ((a >>> 8) & 0xff)] ^ t[3328 + ((a >>> 16) & 0xff)] ^
      t[3072 + (a >>> 24)] ^ t[2816 + d[i + 4]] ^ t[2560 + d[i + 5]] ^ t[2304 + d[i + 6]] ^
      t[2048 + d[i + 7]] ^ t[1792 + d[i + 8]] ^ t[1536 + d[i + 9]] ^ t[1280 + d[i + 10]] ^
      t[1024 + d[i + 11]] ^ t[768 + d[i + 12]] ^ t[512 + d[i + 13]] ^ t[256 + d[i + 14]] ^
      t[d[i + 15]];
    i += 16;
  }
  while (i < end) c = t[(c ^ d[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32C of `data` (or of the UTF-8 bytes of a string). */
export function crc32c(data: Uint8Array | string): number {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return crc32cUpdate(0, bytes);
}
