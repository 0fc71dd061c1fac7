/**
 * Reads and writes the few V8 ValueSerializer values that `sum` mutations work on: numbers and
 * bigints. `Deno.AtomicOperation.mutate({ type: "sum", value: 5 })` sends its operand (and any
 * `sum_min`/`sum_max` bounds) V8-serialized; the server adds it to the stored value and
 * stores the result V8-serialized again, so it needs exactly this much of the format and no
 * more (everything else stays opaque bytes).
 *
 * The format, as V8 writes it: `0xFF`, the format version as a varint, optional padding bytes
 * (`0x00`), then one tagged value: `'I'` zigzag-varint int32, `'U'` varint uint32, `'N'` an
 * 8-byte little-endian double, `'Z'` a bigint (a varint bitfield: bit 0 the sign, the rest the
 * byte length; then the magnitude little-endian).
 *
 * @module
 */

const TAG_VERSION = 0xff;
const TAG_PADDING = 0x00;
const TAG_INT32 = 0x49; // 'I'
const TAG_UINT32 = 0x55; // 'U'
const TAG_DOUBLE = 0x4e; // 'N'
const TAG_BIGINT = 0x5a; // 'Z'

/** The format version written when the caller has none to echo (V8 in Deno 2.x writes 15+). */
export const DEFAULT_V8_VERSION = 15;

/** A V8-serialized number or bigint, with the format version it came in. */
export interface V8Scalar {
  value: number | bigint;
  version: number;
}

/** Bigints past this many bytes are refused (a u64 sum needs 8; 1 KiB is generous). */
const MAX_BIGINT_BYTES = 1024;

/**
 * Decodes a V8-serialized number or bigint. Returns `undefined` for anything else (another
 * type, or bytes that are not V8 serialization at all); never throws.
 */
export function decodeV8Scalar(bytes: Uint8Array): V8Scalar | undefined {
  let pos = 0;
  const varint = (): number | undefined => {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (pos >= bytes.length) return undefined;
      const b = bytes[pos++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
    }
    return undefined;
  };
  if (bytes[pos++] !== TAG_VERSION) return undefined;
  const version = varint();
  if (version === undefined) return undefined;
  while (bytes[pos] === TAG_PADDING) pos++;
  if (pos >= bytes.length) return undefined;
  const tag = bytes[pos++];
  let value: number | bigint;
  switch (tag) {
    case TAG_INT32: {
      const z = varint();
      if (z === undefined || z > 0xffffffff) return undefined;
      value = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      break;
    }
    case TAG_UINT32: {
      const u = varint();
      if (u === undefined || u > 0xffffffff) return undefined;
      value = u;
      break;
    }
    case TAG_DOUBLE: {
      if (bytes.length - pos < 8) return undefined;
      value = new DataView(bytes.buffer, bytes.byteOffset + pos, 8).getFloat64(0, true);
      pos += 8;
      break;
    }
    case TAG_BIGINT: {
      const bitfield = varint();
      if (bitfield === undefined) return undefined;
      const length = Math.floor(bitfield / 2);
      if (length > MAX_BIGINT_BYTES || bytes.length - pos < length) return undefined;
      let magnitude = 0n;
      for (let i = length - 1; i >= 0; i--) magnitude = (magnitude << 8n) | BigInt(bytes[pos + i]);
      pos += length;
      value = bitfield % 2 === 1 ? -magnitude : magnitude;
      break;
    }
    default:
      return undefined;
  }
  // One value and nothing after it, as V8 writes it.
  if (pos !== bytes.length) return undefined;
  return { value, version };
}

function versionBytes(version: number): number[] {
  const out: number[] = [];
  let v = version;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/**
 * Encodes a number (always as a double, as denokv does) or a bigint in V8's format, with the
 * given format version (echo the client's so it can surely read it back).
 */
export function encodeV8Scalar(value: number | bigint, version = DEFAULT_V8_VERSION): Uint8Array {
  const head = [TAG_VERSION, ...versionBytes(version)];
  if (typeof value === "number") {
    const out = new Uint8Array(head.length + 9);
    out.set(head);
    out[head.length] = TAG_DOUBLE;
    new DataView(out.buffer).setFloat64(head.length + 1, value, true);
    return out;
  }
  const negative = value < 0n;
  let magnitude = negative ? -value : value;
  const digits: number[] = [];
  while (magnitude > 0n) {
    digits.push(Number(magnitude & 0xffn));
    magnitude >>= 8n;
  }
  // V8 writes whole 64-bit digits.
  while (digits.length % 8 !== 0) digits.push(0);
  const bitfield = digits.length * 2 + (negative ? 1 : 0);
  return new Uint8Array([...head, TAG_BIGINT, ...versionBytes(bitfield), ...digits]);
}
