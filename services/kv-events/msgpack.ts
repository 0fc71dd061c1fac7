/**
 * MessagePack for the kv-events wire formats (vLLM publishes msgspec-encoded msgpack).
 *
 * Decoding is strict and bounded, for input from the network:
 * - integers in the safe range are numbers; larger ones (block hashes are often u64 >= 2^63) are
 *   bigints, exact, never rounded through a float;
 * - maps become objects without a prototype (string keys) or `Map`s (other keys);
 * - bin values are copies (they do not pin the frame they came in);
 * - a container cannot declare more items than bytes are left, nesting is limited, ext types are
 *   refused, and trailing bytes are an error. Every failure is a {@link MsgpackError} naming the
 *   offset; nothing else is thrown.
 *
 * Encoding covers the same values (for tests, fixtures and the HTTP msgpack API).
 *
 * @module
 */

/** A decoded value. */
export type MsgpackValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | MsgpackValue[]
  | { [key: string]: MsgpackValue }
  | Map<MsgpackValue, MsgpackValue>;

/** Malformed or refused input. */
export class MsgpackError extends Error {
  constructor(message: string, readonly offset: number) {
    super(`msgpack: ${message} at byte ${offset}`);
    this.name = "MsgpackError";
  }
}

/** Limits of {@link decodeMsgpack}. */
export interface DecodeLimits {
  /** Nesting depth (default 64). */
  maxDepth?: number;
}

// ignoreBOM: a leading U+FEFF is part of the string (the default drops it: "\uFEFFlora_name" would
// read as a key it is not).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes exactly one value filling `buf`. */
export function decodeMsgpack(buf: Uint8Array, limits: DecodeLimits = {}): MsgpackValue {
  const maxDepth = limits.maxDepth ?? 64;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;

  const need = (n: number, what: string) => {
    if (pos + n > buf.length) throw new MsgpackError(`truncated ${what}`, pos);
  };
  const count = (n: number, minBytesEach: number, what: string) => {
    // Every item takes at least one byte: a count beyond what is left is a lie.
    if (n * minBytesEach > buf.length - pos) {
      throw new MsgpackError(`${what} of ${n} items exceeds the input`, pos);
    }
    return n;
  };
  const str = (n: number): string => {
    need(n, "string");
    const start = pos;
    pos += n;
    try {
      return utf8.decode(buf.subarray(start, pos));
    } catch {
      throw new MsgpackError("invalid UTF-8 in a string", start);
    }
  };
  const bin = (n: number): Uint8Array => {
    need(n, "bin");
    const out = buf.slice(pos, pos + n);
    pos += n;
    return out;
  };
  const u64 = (): number | bigint => {
    need(8, "uint64");
    const v = view.getBigUint64(pos);
    pos += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const i64 = (): number | bigint => {
    need(8, "int64");
    const v = view.getBigInt64(pos);
    pos += 8;
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v;
  };

  const value = (depth: number): MsgpackValue => {
    if (depth > maxDepth) throw new MsgpackError(`nesting deeper than ${maxDepth}`, pos);
    need(1, "value");
    const at = pos;
    const b = buf[pos++];
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b <= 0xbf) return str(b & 0x1f);
    if (b >= 0x90 && b <= 0x9f) return array(b & 0x0f, depth);
    if (b >= 0x80 && b <= 0x8f) return map(b & 0x0f, depth);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        need(1, "bin8 length");
        return bin(buf[pos++]);
      case 0xc5:
        need(2, "bin16 length");
        pos += 2;
        return bin(view.getUint16(pos - 2));
      case 0xc6:
        need(4, "bin32 length");
        pos += 4;
        return bin(view.getUint32(pos - 4));
      case 0xca:
        need(4, "float32");
        pos += 4;
        return view.getFloat32(pos - 4);
      case 0xcb:
        need(8, "float64");
        pos += 8;
        return view.getFloat64(pos - 8);
      case 0xcc:
        need(1, "uint8");
        return buf[pos++];
      case 0xcd:
        need(2, "uint16");
        pos += 2;
        return view.getUint16(pos - 2);
      case 0xce:
        need(4, "uint32");
        pos += 4;
        return view.getUint32(pos - 4);
      case 0xcf:
        return u64();
      case 0xd0:
        need(1, "int8");
        pos += 1;
        return view.getInt8(pos - 1);
      case 0xd1:
        need(2, "int16");
        pos += 2;
        return view.getInt16(pos - 2);
      case 0xd2:
        need(4, "int32");
        pos += 4;
        return view.getInt32(pos - 4);
      case 0xd3:
        return i64();
      case 0xd9:
        need(1, "str8 length");
        return str(buf[pos++]);
      case 0xda:
        need(2, "str16 length");
        pos += 2;
        return str(view.getUint16(pos - 2));
      case 0xdb:
        need(4, "str32 length");
        pos += 4;
        return str(view.getUint32(pos - 4));
      case 0xdc:
        need(2, "array16 length");
        pos += 2;
        return array(view.getUint16(pos - 2), depth);
      case 0xdd:
        need(4, "array32 length");
        pos += 4;
        return array(view.getUint32(pos - 4), depth);
      case 0xde:
        need(2, "map16 length");
        pos += 2;
        return map(view.getUint16(pos - 2), depth);
      case 0xdf:
        need(4, "map32 length");
        pos += 4;
        return map(view.getUint32(pos - 4), depth);
    }
    if (b === 0xc1) throw new MsgpackError("reserved byte 0xc1", at);
    throw new MsgpackError(`ext type 0x${b.toString(16)} is not supported`, at);
  };

  const array = (n: number, depth: number): MsgpackValue[] => {
    count(n, 1, "array");
    const out = new Array<MsgpackValue>(n);
    for (let i = 0; i < n; i++) out[i] = value(depth + 1);
    return out;
  };

  const map = (n: number, depth: number): MsgpackValue => {
    count(n, 2, "map");
    const obj: { [key: string]: MsgpackValue } = Object.create(null);
    let other: Map<MsgpackValue, MsgpackValue> | null = null;
    for (let i = 0; i < n; i++) {
      const k = value(depth + 1);
      const v = value(depth + 1);
      if (other === null && typeof k === "string") obj[k] = v;
      else {
        if (other === null) other = new Map(Object.entries(obj));
        other.set(k, v);
      }
    }
    return other ?? obj;
  };

  const out = value(0);
  if (pos !== buf.length) throw new MsgpackError(`${buf.length - pos} bytes after the value`, pos);
  return out;
}

/** Encodes a value (numbers that are integers as ints, others as float64; bigints as 64-bit). */
export function encodeMsgpack(value: MsgpackValue): Uint8Array {
  let buf = new Uint8Array(256);
  let view = new DataView(buf.buffer);
  let pos = 0;
  const room = (n: number) => {
    if (pos + n <= buf.length) return;
    let cap = buf.length * 2;
    while (cap < pos + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(buf.subarray(0, pos));
    buf = next;
    view = new DataView(buf.buffer);
  };
  const byte = (b: number) => {
    room(1);
    buf[pos++] = b;
  };
  const head = (small: number, smallMax: number, c16: number, c32: number, n: number) => {
    if (n <= smallMax) byte(small | n);
    else if (n <= 0xffff) {
      room(3);
      buf[pos++] = c16;
      view.setUint16(pos, n);
      pos += 2;
    } else {
      room(5);
      buf[pos++] = c32;
      view.setUint32(pos, n);
      pos += 4;
    }
  };
  const enc = new TextEncoder();
  const write = (v: MsgpackValue): void => {
    if (v === null) return byte(0xc0);
    if (v === false) return byte(0xc2);
    if (v === true) return byte(0xc3);
    if (typeof v === "bigint") {
      room(9);
      if (v >= 0n) {
        buf[pos++] = 0xcf;
        view.setBigUint64(pos, BigInt.asUintN(64, v));
      } else {
        buf[pos++] = 0xd3;
        view.setBigInt64(pos, BigInt.asIntN(64, v));
      }
      pos += 8;
      return;
    }
    if (typeof v === "number") {
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
        if (v >= 0 && v <= 0x7f) return byte(v);
        if (v < 0 && v >= -32) return byte(v + 0x100);
        return write(BigInt(v));
      }
      room(9);
      buf[pos++] = 0xcb;
      view.setFloat64(pos, v);
      pos += 8;
      return;
    }
    if (typeof v === "string") {
      const b = enc.encode(v);
      if (b.length <= 31) byte(0xa0 | b.length);
      else if (b.length <= 0xff) {
        byte(0xd9);
        byte(b.length);
      } else head(0, -1, 0xda, 0xdb, b.length);
      room(b.length);
      buf.set(b, pos);
      pos += b.length;
      return;
    }
    if (v instanceof Uint8Array) {
      if (v.length <= 0xff) {
        byte(0xc4);
        byte(v.length);
      } else head(0, -1, 0xc5, 0xc6, v.length);
      room(v.length);
      buf.set(v, pos);
      pos += v.length;
      return;
    }
    if (Array.isArray(v)) {
      head(0x90, 15, 0xdc, 0xdd, v.length);
      for (const x of v) write(x);
      return;
    }
    const entries: [MsgpackValue, MsgpackValue][] = v instanceof Map
      ? [...v.entries()]
      : Object.entries(v);
    head(0x80, 15, 0xde, 0xdf, entries.length);
    for (const [k, x] of entries) {
      write(k);
      write(x);
    }
  };
  write(value);
  return buf.slice(0, pos);
}
