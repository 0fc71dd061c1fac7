/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven with slicing-by-8.
 *
 * `crc32c("123456789") === 0xE3069283`. Values are unsigned 32-bit numbers.
 *
 * @module
 */

const POLY = 0x82f63b78;

/** 8 tables of 256 entries: T[k][b] is the CRC of byte b followed by k zero bytes. */
const TABLES: Uint32Array = (() => {
  const t = new Uint32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let c = b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[b] = c >>> 0;
  }
  for (let b = 0; b < 256; b++) {
    let c = t[b];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + b] = c >>> 0;
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
  let c = ~crc >>> 0;
  let i = start;
  // Slicing-by-8: fold 8 bytes per iteration.
  const end8 = end - ((end - i) & 7);
  while (i < end8) {
    const lo = (c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24))) >>>
      0;
    c = t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + data[i + 4]] ^
      t[512 + data[i + 5]] ^
      t[256 + data[i + 6]] ^
      t[data[i + 7]];
    i += 8;
  }
  while (i < end) c = t[(c ^ data[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** CRC-32C of `data` (or of the UTF-8 bytes of a string). */
export function crc32c(data: Uint8Array | string): number {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return crc32cUpdate(0, bytes);
}
