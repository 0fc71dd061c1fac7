/**
 * The ingest fast path: reads a msgpack event batch into reusable typed arrays, without building
 * a JS value per field. It accepts and refuses exactly what {@link decodeEventBatch} followed by
 * the cache map would (a differential test holds it to that). A batch in the layout engines send
 * is read in one pass ({@link readCommon}); any other is checked whole first (the same msgpack
 * rules and limits), then interpreted. Token ids go to the chain tags; hashes straight to the
 * index's (hi, lo) keys.
 *
 * @module
 */
import { EventDecodeError, hashKey, type KvEvent, learnable } from "./events.ts";
import { tierOf } from "./index.ts";
import { MsgpackError } from "./msgpack.ts";
import { ROOT_HI, ROOT_LO } from "./chain.ts";

/** Event kinds in a {@link ParsedBatch}. */
export const STORED = 0, REMOVED = 1, CLEARED = 2;

/** A batch read by {@link readEventBatch}; reused from batch to batch. */
export class ParsedBatch {
  ts = 0;
  dataParallelRank: number | null = null;
  /** Events accepted. */
  events = 0;
  kinds = new Uint8Array(64);
  /** Tier per event: 0 GPU (or no medium), 1 offloaded. */
  tiers = new Uint8Array(64);
  starts = new Uint32Array(64);
  counts = new Uint32Array(64);
  /** Per event: its token ids (learnable events only) and parent, for the chain table. */
  tokenStarts = new Uint32Array(64);
  tokenCounts = new Uint32Array(64);
  blockSizes = new Uint32Array(64);
  parents = new Uint32Array(128);
  /** 1 when the event can teach chain links (see events.ts `learnable`), else 0. */
  learnable = new Uint8Array(64);
  /** Per learnable event: the LoRA its hashes were computed under (null: none). */
  loraNames: (string | null)[] = [];
  tokens = new Uint32Array(4096);
  tokenTotal = 0;
  /** Block hashes of every event, as (hi, lo) pairs. */
  hashes = new Uint32Array(1024);
  hashCount = 0;
  /** Why events were skipped. Kept for the next batch while empty: copy it to keep it. */
  rejected: string[] = [];

  reset(): void {
    this.events = 0;
    this.hashCount = 0;
    this.tokenTotal = 0;
    // A new list only after one with entries (a caller may keep that one).
    if (this.rejected.length > 0) this.rejected = [];
    this.dataParallelRank = null;
  }

  pushEvent(kind: number, tier: number, start: number, count: number): void {
    if (this.events === this.kinds.length) {
      const grow = <T extends Uint8Array | Uint32Array>(a: T, make: (n: number) => T) => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.kinds = grow(this.kinds, (n) => new Uint8Array(n));
      this.tiers = grow(this.tiers, (n) => new Uint8Array(n));
      this.starts = grow(this.starts, (n) => new Uint32Array(n));
      this.counts = grow(this.counts, (n) => new Uint32Array(n));
      this.tokenStarts = grow(this.tokenStarts, (n) => new Uint32Array(n));
      this.tokenCounts = grow(this.tokenCounts, (n) => new Uint32Array(n));
      this.blockSizes = grow(this.blockSizes, (n) => new Uint32Array(n));
      this.parents = grow(this.parents, (n) => new Uint32Array(n));
      this.learnable = grow(this.learnable, (n) => new Uint8Array(n));
    }
    const i = this.events++;
    this.learnable[i] = 0;
    this.loraNames[i] = null;
    this.kinds[i] = kind;
    this.tiers[i] = tier;
    this.starts[i] = start;
    this.counts[i] = count;
  }

  /**
   * Marks the last event learnable, with its parent, tokens `tokens[start, start + n)` and the
   * LoRA its hashes were computed under.
   */
  setLearnable(
    blockSize: number,
    parentHi: number,
    parentLo: number,
    start: number,
    n: number,
    loraName: string | null = null,
  ): void {
    const i = this.events - 1;
    this.learnable[i] = 1;
    this.loraNames[i] = loraName;
    this.blockSizes[i] = blockSize;
    this.parents[i * 2] = parentHi;
    this.parents[i * 2 + 1] = parentLo;
    this.tokenStarts[i] = start;
    this.tokenCounts[i] = n;
  }

  pushToken(v: number): void {
    if (this.tokenTotal === this.tokens.length) {
      const b = new Uint32Array(this.tokens.length * 2);
      b.set(this.tokens);
      this.tokens = b;
    }
    this.tokens[this.tokenTotal++] = v;
  }

  pushHash(hi: number, lo: number): void {
    if (this.hashCount * 2 + 2 > this.hashes.length) {
      const b = new Uint32Array(this.hashes.length * 2);
      b.set(this.hashes);
      this.hashes = b;
    }
    this.hashes[this.hashCount * 2] = hi;
    this.hashes[this.hashCount * 2 + 1] = lo;
    this.hashCount++;
  }
}

// As msgpack.ts decodes (a leading U+FEFF kept): both decoders must read the same strings.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const MAX_DEPTH = 16;

/** The host's byte order (floats are assembled in scratch arrays of it). */
const HOST_LE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
const f64 = new Float64Array(1), f64Bytes = new Uint8Array(f64.buffer);
const f32 = new Float32Array(1), f32Bytes = new Uint8Array(f32.buffer);

/** The big-endian u32 at `p` (in bounds). */
function u32At(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

/** The big-endian float64 at `p` (in bounds). */
function f64At(b: Uint8Array, p: number): number {
  for (let i = 0; i < 8; i++) f64Bytes[HOST_LE ? 7 - i : i] = b[p + i];
  return f64[0];
}

/** Whether the 3 bytes at `s` are "gpu" in any case (the medium that is tier 0). */
function isGpu(b: Uint8Array, s: number): boolean {
  return (b[s] | 0x20) === 0x67 && (b[s + 1] | 0x20) === 0x70 && (b[s + 2] | 0x20) === 0x75;
}

/**
 * Big-endian reads from a byte array, as a DataView's, for positions a check has put in bounds:
 * one reused from payload to payload (a DataView per payload was garbage on every message).
 */
class BigEndian {
  buf: Uint8Array;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
  getUint16(p: number): number {
    const b = this.buf;
    return (b[p] << 8) | b[p + 1];
  }
  getUint32(p: number): number {
    return u32At(this.buf, p);
  }
  getInt8(p: number): number {
    return (this.buf[p] << 24) >> 24;
  }
  getInt16(p: number): number {
    return (this.getUint16(p) << 16) >> 16;
  }
  getInt32(p: number): number {
    return this.getUint32(p) | 0;
  }
  getFloat32(p: number): number {
    const b = this.buf;
    for (let i = 0; i < 4; i++) f32Bytes[HOST_LE ? 3 - i : i] = b[p + i];
    return f32[0];
  }
  getFloat64(p: number): number {
    return f64At(this.buf, p);
  }
}

/** Checks one msgpack value at `pos` as decodeMsgpack would; returns the position after it. */
/** Throws unless `n` bytes are left at `pos` (a function, not a closure: no garbage per value). */
function need(buf: Uint8Array, pos: number, n: number, what: string): void {
  if (pos + n > buf.length) throw new MsgpackError(`truncated ${what}`, pos);
}

function skip(buf: Uint8Array, view: BigEndian, pos: number, depth: number): number {
  if (depth > MAX_DEPTH) throw new MsgpackError(`nesting deeper than ${MAX_DEPTH}`, pos);
  need(buf, pos, 1, "value");
  const at = pos;
  const b = buf[pos++];
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return pos;
  let n: number;
  if (b >= 0xa0 && b <= 0xbf) return skipStr(buf, pos, b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return skipArray(buf, view, pos, b & 0x0f, depth);
  if (b >= 0x80 && b <= 0x8f) return skipMap(buf, view, pos, b & 0x0f, depth);
  switch (b) {
    case 0xc4:
      need(buf, pos, 1, "bin8 length");
      n = buf[pos++];
      need(buf, pos, n, "bin");
      return pos + n;
    case 0xc5:
      need(buf, pos, 2, "bin16 length");
      n = view.getUint16(pos);
      pos += 2;
      need(buf, pos, n, "bin");
      return pos + n;
    case 0xc6:
      need(buf, pos, 4, "bin32 length");
      n = view.getUint32(pos);
      pos += 4;
      need(buf, pos, n, "bin");
      return pos + n;
    case 0xca:
      need(buf, pos, 4, "float32");
      return pos + 4;
    case 0xcb:
      need(buf, pos, 8, "float64");
      return pos + 8;
    case 0xcc:
      need(buf, pos, 1, "uint8");
      return pos + 1;
    case 0xcd:
      need(buf, pos, 2, "uint16");
      return pos + 2;
    case 0xce:
      need(buf, pos, 4, "uint32");
      return pos + 4;
    case 0xcf:
      need(buf, pos, 8, "uint64");
      return pos + 8;
    case 0xd0:
      need(buf, pos, 1, "int8");
      return pos + 1;
    case 0xd1:
      need(buf, pos, 2, "int16");
      return pos + 2;
    case 0xd2:
      need(buf, pos, 4, "int32");
      return pos + 4;
    case 0xd3:
      need(buf, pos, 8, "int64");
      return pos + 8;
    case 0xd9:
      need(buf, pos, 1, "str8 length");
      return skipStr(buf, pos + 1, buf[pos]);
    case 0xda:
      need(buf, pos, 2, "str16 length");
      return skipStr(buf, pos + 2, view.getUint16(pos));
    case 0xdb:
      need(buf, pos, 4, "str32 length");
      return skipStr(buf, pos + 4, view.getUint32(pos));
    case 0xdc:
      need(buf, pos, 2, "array16 length");
      return skipArray(buf, view, pos + 2, view.getUint16(pos), depth);
    case 0xdd:
      need(buf, pos, 4, "array32 length");
      return skipArray(buf, view, pos + 4, view.getUint32(pos), depth);
    case 0xde:
      need(buf, pos, 2, "map16 length");
      return skipMap(buf, view, pos + 2, view.getUint16(pos), depth);
    case 0xdf:
      need(buf, pos, 4, "map32 length");
      return skipMap(buf, view, pos + 4, view.getUint32(pos), depth);
  }
  if (b === 0xc1) throw new MsgpackError("reserved byte 0xc1", at);
  throw new MsgpackError(`ext type 0x${b.toString(16)} is not supported`, at);
}

function skipStr(buf: Uint8Array, pos: number, n: number): number {
  if (pos + n > buf.length) throw new MsgpackError("truncated string", pos);
  for (let i = pos; i < pos + n; i++) {
    if (buf[i] >= 0x80) {
      try {
        utf8.decode(buf.subarray(pos, pos + n));
      } catch {
        throw new MsgpackError("invalid UTF-8 in a string", pos);
      }
      break;
    }
  }
  return pos + n;
}

function skipArray(
  buf: Uint8Array,
  view: BigEndian,
  pos: number,
  n: number,
  depth: number,
): number {
  if (n > buf.length - pos) throw new MsgpackError(`array of ${n} items exceeds the input`, pos);
  const len = buf.length;
  // Past the depth limit every item fails in skip, scalars included.
  if (depth + 1 > MAX_DEPTH) {
    for (let i = 0; i < n; i++) pos = skip(buf, view, pos, depth + 1);
    return pos;
  }
  for (let i = 0; i < n; i++) {
    // Unsigned integers inline (token ids: most of an event's bytes); the rest, and any value
    // cut short, through skip (which says what is wrong).
    const b = buf[pos];
    if (b <= 0x7f) pos++;
    else if (b === 0xcd && pos + 3 <= len) pos += 3;
    else if (b === 0xce && pos + 5 <= len) pos += 5;
    else if (b === 0xcc && pos + 2 <= len) pos += 2;
    else pos = skip(buf, view, pos, depth + 1);
  }
  return pos;
}

/**
 * The position after the value at `pos` of a payload {@link skip} has checked whole: nothing is
 * checked again (lengths are in bounds, strings are UTF-8, nesting is within the limit).
 */
function skipChecked(buf: Uint8Array, view: BigEndian, pos: number): number {
  const b = buf[pos];
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return pos + 1;
  if (b >= 0xa0 && b <= 0xbf) return pos + 1 + (b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return skipItems(buf, view, pos + 1, b & 0x0f);
  if (b >= 0x80 && b <= 0x8f) return skipItems(buf, view, pos + 1, (b & 0x0f) * 2);
  switch (b) {
    case 0xcc:
    case 0xd0:
      return pos + 2;
    case 0xcd:
    case 0xd1:
      return pos + 3;
    case 0xca:
    case 0xce:
    case 0xd2:
      return pos + 5;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return pos + 9;
    case 0xc4:
    case 0xd9:
      return pos + 2 + buf[pos + 1];
    case 0xc5:
    case 0xda:
      return pos + 3 + view.getUint16(pos + 1);
    case 0xc6:
    case 0xdb:
      return pos + 5 + view.getUint32(pos + 1);
    case 0xdc:
      return skipItems(buf, view, pos + 3, view.getUint16(pos + 1));
    case 0xdd:
      return skipItems(buf, view, pos + 5, view.getUint32(pos + 1));
    case 0xde:
      return skipItems(buf, view, pos + 3, view.getUint16(pos + 1) * 2);
    case 0xdf:
      return skipItems(buf, view, pos + 5, view.getUint32(pos + 1) * 2);
  }
  throw new MsgpackError("unchecked payload", pos);
}

/** {@link skipChecked} over `n` values (an array's items, or a map's keys and values). */
function skipItems(buf: Uint8Array, view: BigEndian, pos: number, n: number): number {
  for (let i = 0; i < n; i++) {
    // Unsigned integers inline (token ids, hashes).
    const b = buf[pos];
    if (b <= 0x7f) pos++;
    else if (b === 0xcd) pos += 3;
    else if (b === 0xce) pos += 5;
    else if (b === 0xcf) pos += 9;
    else if (b === 0xcc) pos += 2;
    else pos = skipChecked(buf, view, pos);
  }
  return pos;
}

function skipMap(buf: Uint8Array, view: BigEndian, pos: number, n: number, depth: number): number {
  if (n * 2 > buf.length - pos) throw new MsgpackError(`map of ${n} items exceeds the input`, pos);
  for (let i = 0; i < n * 2; i++) pos = skip(buf, view, pos, depth + 1);
  return pos;
}

// --- Interpretation of a checked payload -------------------------------------------------------

// Value families (typed as number so checks after a re-read of the head are not narrowed away).
const K_INT: number = 0;
const K_U64: number = 1;
const K_I64: number = 2;
const K_FLOAT: number = 3;
const K_STR: number = 4;
const K_BIN: number = 5;
const K_ARRAY: number = 6;
const K_MAP: number = 7;
const K_NIL: number = 8;
const K_BOOL: number = 9;

/** Header of the value at `pos`: its family, count/length, and where its body starts. */
interface Head {
  /** One of the K_ constants. */
  kind: number;
  /** Array/map count, str/bin length, or the int's value (safe range). */
  n: number;
  body: number;
}

function head(buf: Uint8Array, view: BigEndian, pos: number, h: Head): void {
  const b = buf[pos];
  h.body = pos + 1;
  if (b <= 0x7f) return set(h, K_INT, b);
  if (b >= 0xe0) return set(h, K_INT, b - 0x100);
  if (b >= 0xa0 && b <= 0xbf) return set(h, K_STR, b & 0x1f);
  if (b >= 0x90 && b <= 0x9f) return set(h, K_ARRAY, b & 0x0f);
  if (b >= 0x80 && b <= 0x8f) return set(h, K_MAP, b & 0x0f);
  const p = pos + 1;
  switch (b) {
    case 0xc0:
      return set(h, K_NIL, 0);
    case 0xc2:
    case 0xc3:
      return set(h, K_BOOL, 0);
    case 0xc4:
      h.body = p + 1;
      return set(h, K_BIN, buf[p]);
    case 0xc5:
      h.body = p + 2;
      return set(h, K_BIN, view.getUint16(p));
    case 0xc6:
      h.body = p + 4;
      return set(h, K_BIN, view.getUint32(p));
    case 0xca:
      return set(h, K_FLOAT, view.getFloat32(p));
    case 0xcb:
      return set(h, K_FLOAT, view.getFloat64(p));
    case 0xcc:
      return set(h, K_INT, buf[p]);
    case 0xcd:
      return set(h, K_INT, view.getUint16(p));
    case 0xce:
      return set(h, K_INT, view.getUint32(p));
    case 0xcf: {
      const hi = view.getUint32(p);
      // Safe integers decode as numbers, the rest as bigints (as decodeMsgpack does).
      return hi < 0x200000
        ? set(h, K_INT, hi * 0x100000000 + view.getUint32(p + 4))
        : set(h, K_U64, 0);
    }
    case 0xd0:
      return set(h, K_INT, view.getInt8(p));
    case 0xd1:
      return set(h, K_INT, view.getInt16(p));
    case 0xd2:
      return set(h, K_INT, view.getInt32(p));
    case 0xd3: {
      const hi = view.getInt32(p);
      const lo = view.getUint32(p + 4);
      const safe = (hi >= -0x200000 && hi < 0x200000) && !(hi === -0x200000 && lo === 0);
      return safe ? set(h, K_INT, hi * 0x100000000 + lo) : set(h, K_I64, 0);
    }
    case 0xd9:
      h.body = p + 1;
      return set(h, K_STR, buf[p]);
    case 0xda:
      h.body = p + 2;
      return set(h, K_STR, view.getUint16(p));
    case 0xdb:
      h.body = p + 4;
      return set(h, K_STR, view.getUint32(p));
    case 0xdc:
      h.body = p + 2;
      return set(h, K_ARRAY, view.getUint16(p));
    case 0xdd:
      h.body = p + 4;
      return set(h, K_ARRAY, view.getUint32(p));
    case 0xde:
      h.body = p + 2;
      return set(h, K_MAP, view.getUint16(p));
    case 0xdf:
      h.body = p + 4;
      return set(h, K_MAP, view.getUint32(p));
  }
  throw new MsgpackError("unchecked payload", pos);
}

function set(h: Head, kind: number, n: number): void {
  h.kind = kind;
  h.n = n;
}

const enc = new TextEncoder();
const KEY = {
  type: enc.encode("type"),
  ts: enc.encode("ts"),
  events: enc.encode("events"),
  data_parallel_rank: enc.encode("data_parallel_rank"),
  block_hashes: enc.encode("block_hashes"),
  parent_block_hash: enc.encode("parent_block_hash"),
  token_ids: enc.encode("token_ids"),
  block_size: enc.encode("block_size"),
  lora_id: enc.encode("lora_id"),
  medium: enc.encode("medium"),
  lora_name: enc.encode("lora_name"),
  extra_keys: enc.encode("extra_keys"),
  BlockStored: enc.encode("BlockStored"),
  BlockRemoved: enc.encode("BlockRemoved"),
  AllBlocksCleared: enc.encode("AllBlocksCleared"),
};

function strIs(buf: Uint8Array, h: Head, want: Uint8Array): boolean {
  if (h.kind !== K_STR || h.n !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (buf[h.body + i] !== want[i]) return false;
  return true;
}

class Bad extends Error {}

/** Reads a checked payload. */
class Reader {
  buf: Uint8Array;
  view: BigEndian;
  h: Head = { kind: K_NIL, n: 0, body: 0 };
  k: Head = { kind: K_NIL, n: 0, body: 0 };
  /** Where the array or map the last {@link items} or {@link fields} read ends (-1: not known). */
  end = -1;

  constructor(buf: Uint8Array) {
    this.buf = buf;
    this.view = new BigEndian(buf);
  }

  /** Points the reader at another buffer (readEventBatch reuses one reader). */
  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.view.buf = buf;
  }

  /** Lets go of the buffer. */
  release(): void {
    this.buf = NO_BYTES;
    this.view.buf = NO_BYTES;
  }

  /** The position after the value at `pos` (of a payload checked whole). */
  next(pos: number): number {
    return skipChecked(this.buf, this.view, pos);
  }

  /**
   * Where each wanted key's value is in the map at `pos` (last wins; -1 absent), or null when
   * the map has a key that is not a string (decodeMsgpack makes a Map of it: not an object).
   */
  fields(pos: number, keys: Uint8Array[], out: number[]): boolean {
    head(this.buf, this.view, pos, this.h);
    const n = this.h.n;
    let p = this.h.body;
    out.fill(-1);
    for (let i = 0; i < n; i++) {
      head(this.buf, this.view, p, this.k);
      if (this.k.kind !== K_STR) return false;
      const vAt = this.next(p);
      for (let j = 0; j < keys.length; j++) {
        if (strIs(this.buf, this.k, keys[j])) out[j] = vAt;
      }
      p = this.next(vAt);
    }
    this.end = p;
    return true;
  }

  /** Array items' positions, the first `max` (and its end when it has no more). */
  items(pos: number, max: number, out: number[]): number {
    head(this.buf, this.view, pos, this.h);
    const n = this.h.n;
    let p = this.h.body;
    out.fill(-1);
    for (let i = 0; i < n && i < max; i++) {
      out[i] = p;
      if (i + 1 < max || n <= max) p = this.next(p);
    }
    this.end = n <= max ? p : -1;
    return n;
  }
}

const BATCH_KEYS = [KEY.ts, KEY.events, KEY.data_parallel_rank];
const EVENT_KEYS = [
  KEY.type,
  KEY.block_hashes,
  KEY.parent_block_hash,
  KEY.token_ids,
  KEY.block_size,
  KEY.lora_id,
  KEY.medium,
  KEY.lora_name,
  KEY.extra_keys,
];

/**
 * Puts decoded events (HTTP JSON, tests) into `out`, as {@link readEventBatch} would have read
 * them, so that one path applies every batch.
 */
export function eventsToBatch(events: readonly KvEvent[], out: ParsedBatch): void {
  out.reset();
  const k: [number, number] = [0, 0];
  for (const e of events) {
    if (e.type === "AllBlocksCleared") {
      out.pushEvent(CLEARED, 0, 0, 0);
      continue;
    }
    const start = out.hashCount;
    for (const h of e.blockHashes) {
      hashKey(h, k);
      out.pushHash(k[0], k[1]);
    }
    const tier = tierOf(e.medium);
    if (e.type === "BlockRemoved") {
      out.pushEvent(REMOVED, tier, start, e.blockHashes.length);
      continue;
    }
    out.pushEvent(STORED, tier, start, e.blockHashes.length);
    if (!learnable(e)) continue;
    let parentHi = ROOT_HI, parentLo = ROOT_LO;
    if (e.parentBlockHash !== null) {
      hashKey(e.parentBlockHash, k);
      [parentHi, parentLo] = k;
    }
    const tokenStart = out.tokenTotal;
    for (const t of e.tokenIds) out.pushToken(t);
    out.setLearnable(
      e.blockSize,
      parentHi,
      parentLo,
      tokenStart,
      e.tokenIds.length,
      e.loraName ?? null,
    );
  }
}

/** What the reader points at between batches. */
const NO_BYTES = new Uint8Array(0);
/**
 * readEventBatch's reader and field positions, reused from one batch to the next (it runs to the
 * end before anything else can call it, and keeps nothing of a batch in them).
 */
const batchReader = new Reader(NO_BYTES);
const batchFields = [-1, -1, -1];
const eventFields = [-1, -1, -1, -1, -1, -1, -1, -1, -1];

/**
 * Reads `payload` into `out`. Throws {@link EventDecodeError} for what is not a batch; skips (and
 * records in `out.rejected`) malformed events, as decodeEventBatch does.
 */
export function readEventBatch(payload: Uint8Array, out: ParsedBatch): void {
  out.reset();
  if (readCommon(payload, out)) {
    fastReads++;
    return;
  }
  out.reset();
  batchReader.reset(payload);
  try {
    readBatch(batchReader, payload, out);
  } finally {
    batchReader.release(); // holds no payload between batches
  }
}

function readBatch(r: Reader, payload: Uint8Array, out: ParsedBatch): void {
  let end: number;
  try {
    end = skip(r.buf, r.view, 0, 0); // the whole payload checked: the rest reads it unchecked
  } catch (e) {
    if (e instanceof MsgpackError) throw new EventDecodeError(e.message);
    throw e;
  }
  if (end !== payload.length) {
    throw new EventDecodeError(
      new MsgpackError(`${payload.length - end} bytes after the value`, end).message,
    );
  }
  const h = r.h;
  const f = batchFields;
  head(r.buf, r.view, 0, h);
  if (h.kind === K_ARRAY) r.items(0, 3, f);
  else if (h.kind === K_MAP) {
    if (!r.fields(0, BATCH_KEYS, f)) throw new EventDecodeError("not a list or a map");
  } else throw new EventDecodeError("not a list or a map");
  const [tsAt, eventsAt, rankAt] = f;
  if (tsAt < 0) throw new EventDecodeError("ts is not a number");
  head(r.buf, r.view, tsAt, h);
  if (h.kind !== K_INT && h.kind !== K_FLOAT) throw new EventDecodeError("ts is not a number");
  out.ts = h.n;
  if (eventsAt < 0) throw new EventDecodeError("events is not a list");
  head(r.buf, r.view, eventsAt, h);
  if (h.kind !== K_ARRAY) throw new EventDecodeError("events is not a list");
  const count = h.n;
  let p = h.body;
  if (rankAt >= 0) {
    head(r.buf, r.view, rankAt, h);
    if (h.kind !== K_NIL) {
      if (!(h.kind === K_INT || (h.kind === K_FLOAT && Number.isInteger(h.n)))) {
        throw new EventDecodeError("data_parallel_rank is not an integer");
      }
      out.dataParallelRank = h.n;
    }
  }
  const fields = eventFields;
  for (let i = 0; i < count; i++) {
    const start = out.hashCount;
    r.end = -1;
    try {
      event(r, p, fields, out);
    } catch (e) {
      if (!(e instanceof Bad)) throw e;
      out.hashCount = start;
      out.rejected.push(`event ${i}: ${e.message}`);
    }
    p = r.end >= 0 ? r.end : r.next(p);
  }
}

function event(r: Reader, pos: number, f: number[], out: ParsedBatch): void {
  const h = r.h;
  head(r.buf, r.view, pos, h);
  let byIndex: boolean;
  if (h.kind === K_ARRAY) {
    r.items(pos, 9, f);
    byIndex = true;
  } else if (h.kind === K_MAP) {
    if (!r.fields(pos, EVENT_KEYS, f)) throw new Bad("an event is neither a list nor a map");
    byIndex = false;
  } else throw new Bad("an event is neither a list nor a map");
  const tag = f[0];
  if (tag >= 0) head(r.buf, r.view, tag, h);
  if (tag >= 0 && strIs(r.buf, h, KEY.BlockStored)) {
    // The order of the checks is decodeEventBatch's (block_size, block_hashes, parent, ...).
    const bs = f[4];
    const size = bs < 0 ? null : optInt(r, bs, "block_size");
    if (size === null || size <= 0) throw new Bad("block_size is missing or not positive");
    const start = out.hashCount;
    const n = hashes(r, f[1], "block_hashes", out);
    let parentHi = ROOT_HI, parentLo = ROOT_LO;
    if (f[2] >= 0) {
      head(r.buf, r.view, f[2], h);
      if (h.kind !== K_NIL) {
        hash(r, f[2], "parent_block_hash", -1, null);
        parentHi = lastHash[0];
        parentLo = lastHash[1];
      }
    }
    const tokenStart = out.tokenTotal;
    const u32 = tokens(r, f[3], out);
    const lora = f[5] >= 0 ? optInt(r, f[5], "lora_id") : null;
    const tier = f[6] < 0 ? 0 : medium(r, f[6]);
    out.pushEvent(STORED, tier, start, n);
    // Chain links: only from events whose hashes depend on nothing but parent, tokens and a LoRA
    // they name (as events.ts `learnable` decides).
    const loraName = optName(r, f[7]);
    if (
      u32 && size <= 0xffffffff && isNil(r, f[8]) && loraName !== undefined &&
      (lora === null || loraName !== null)
    ) {
      out.setLearnable(size, parentHi, parentLo, tokenStart, out.tokenTotal - tokenStart, loraName);
    } else out.tokenTotal = tokenStart;
  } else if (tag >= 0 && strIs(r.buf, h, KEY.BlockRemoved)) {
    // By position: [tag, block_hashes, medium]; by name, the map's medium.
    const hashesAt = f[1], mediumAt = byIndex ? f[2] : f[6];
    const start = out.hashCount;
    const n = hashes(r, hashesAt, "block_hashes", out);
    const tier = mediumAt < 0 ? 0 : medium(r, mediumAt);
    out.pushEvent(REMOVED, tier, start, n);
  } else if (tag >= 0 && strIs(r.buf, h, KEY.AllBlocksCleared)) {
    out.pushEvent(CLEARED, 0, 0, 0);
  } else {
    throw new Bad(`unknown event type ${tagText(r, tag)}`);
  }
}

/** An event's tag as the reference decoder names it in a message (events.ts `describe`). */
function tagText(r: Reader, at: number): string {
  if (at < 0) return '"undefined"';
  const h = r.h;
  head(r.buf, r.view, at, h);
  let s: string;
  switch (h.kind) {
    case K_STR:
      s = utf8.decode(r.buf.subarray(h.body, h.body + h.n));
      break;
    case K_NIL:
      s = "null";
      break;
    case K_BOOL:
      s = String(r.buf[at] === 0xc3);
      break;
    case K_INT:
    case K_FLOAT:
      s = String(h.n);
      break;
    case K_U64:
    case K_I64: {
      const v = (BigInt(r.view.getUint32(at + 1)) << 32n) | BigInt(r.view.getUint32(at + 5));
      s = String(h.kind === K_I64 ? BigInt.asIntN(64, v) : v);
      break;
    }
    case K_ARRAY:
      s = "an array";
      break;
    case K_BIN:
      s = "bytes";
      break;
    default:
      s = "a map";
  }
  return JSON.stringify(s).slice(0, 40);
}

/** An optional integer field: null when nil; Bad unless an integer number. */
function optInt(r: Reader, at: number, what: string): number | null {
  const h = r.h;
  head(r.buf, r.view, at, h);
  if (h.kind === K_NIL) return null;
  if (h.kind === K_INT || (h.kind === K_FLOAT && Number.isInteger(h.n))) return h.n;
  throw new Bad(`${what} is not an integer`);
}

/** The tier of a medium field (nil: the GPU); Bad unless a string. */
function medium(r: Reader, at: number): number {
  const h = r.h;
  head(r.buf, r.view, at, h);
  if (h.kind === K_NIL) return 0;
  if (h.kind !== K_STR) throw new Bad("medium is not a string");
  const b = r.buf, s = h.body;
  if (h.n === 3 && isGpu(b, s)) return 0;
  // Anything else: as tierOf decides (non-ASCII case folding included).
  return tierOf(utf8.decode(b.subarray(s, s + h.n)));
}

function hashes(r: Reader, at: number, what: string, out: ParsedBatch): number {
  if (at < 0) throw new Bad(`${what} is not a list`);
  const h = r.h;
  head(r.buf, r.view, at, h);
  if (h.kind !== K_ARRAY) throw new Bad(`${what} is not a list`);
  const n = h.n;
  let p = h.body;
  const b = r.buf;
  for (let i = 0; i < n; i++) {
    hash(r, p, what, i, out);
    const x = b[p];
    p = x === 0xcf ? p + 9 : x <= 0x7f ? p + 1 : r.next(p);
  }
  return n;
}

/** One hash (item `i` of `what`, -1: `what` itself): checked, and pushed to `out` unless null. */
function hash(r: Reader, at: number, what: string, i: number, out: ParsedBatch | null): void {
  const h = r.h;
  head(r.buf, r.view, at, h);
  const v = r.view;
  let hi: number, lo: number;
  switch (h.kind) {
    case K_INT:
      if (h.n >= 0) {
        hi = Math.floor(h.n / 0x100000000);
        lo = h.n >>> 0;
      } else {
        const big = BigInt.asUintN(64, BigInt(h.n));
        hi = Number(big >> 32n);
        lo = Number(big & 0xffffffffn);
      }
      break;
    case K_U64:
    case K_I64:
      hi = v.getUint32(at + 1);
      lo = v.getUint32(at + 5);
      break;
    case K_FLOAT: {
      if (!Number.isInteger(h.n)) throw notHash(what, i);
      const big = BigInt.asUintN(64, BigInt(h.n));
      hi = Number(big >> 32n);
      lo = Number(big & 0xffffffffn);
      break;
    }
    case K_BIN: {
      if (h.n === 0 || h.n > 64) throw notHash(what, i);
      hi = 0;
      lo = 0;
      for (let k = Math.max(0, h.n - 8); k < h.n; k++) {
        hi = ((hi << 8) | (lo >>> 24)) >>> 0;
        lo = ((lo << 8) | r.buf[h.body + k]) >>> 0;
      }
      break;
    }
    default:
      throw notHash(what, i);
  }
  if (out === null) {
    lastHash[0] = hi;
    lastHash[1] = lo;
  } else out.pushHash(hi, lo);
}

/**
 * The hash {@link hash} read when given no batch (a parent's). A typed array: a module variable
 * would box every u32 past 2^31 it is given in a new heap number.
 */
const lastHash = new Uint32Array(2);

/** A `lora_name` field: null when absent or nil, the string, or undefined for anything else. */
function optName(r: Reader, at: number): string | null | undefined {
  if (at < 0) return null;
  const h = r.h;
  head(r.buf, r.view, at, h);
  if (h.kind === K_NIL) return null;
  if (h.kind !== K_STR) return undefined;
  return utf8.decode(r.buf.subarray(h.body, h.body + h.n)); // checked as UTF-8 already
}

function isNil(r: Reader, at: number): boolean {
  if (at < 0) return true;
  head(r.buf, r.view, at, r.h);
  return r.h.kind === K_NIL;
}

function notHash(what: string, i: number): Bad {
  return new Bad(`${i < 0 ? what : `${what}[${i}]`} is not a block hash`);
}

/** Checks the token ids and copies them to `out`; false when one is not a u32 (kept none). */
function tokens(r: Reader, at: number, out: ParsedBatch): boolean {
  if (at < 0) throw new Bad("token_ids is not a list");
  const h = r.h;
  head(r.buf, r.view, at, h);
  if (h.kind !== K_ARRAY) throw new Bad("token_ids is not a list");
  const n = h.n;
  let p = h.body;
  const b = r.buf;
  let u32 = true;
  for (let i = 0; i < n; i++) {
    const x = b[p];
    if (x <= 0x7f) {
      out.pushToken(x);
      p++;
      continue;
    }
    if (x === 0xcd) {
      out.pushToken((b[p + 1] << 8) | b[p + 2]);
      p += 3;
      continue;
    }
    if (x === 0xce) {
      out.pushToken(r.view.getUint32(p + 1));
      p += 5;
      continue;
    }
    if (x === 0xcc) {
      out.pushToken(b[p + 1]);
      p += 2;
      continue;
    }
    head(b, r.view, p, h);
    if (!((h.kind === K_INT || (h.kind === K_FLOAT && Number.isInteger(h.n))) && h.n >= 0)) {
      throw new Bad("token_ids holds a non-token");
    }
    if (h.n < 0x100000000) out.pushToken(h.n);
    else u32 = false;
    p = r.next(p);
  }
  return u32;
}

// --- One pass for the layout engines send --------------------------------------------------------

/**
 * Batches read by {@link readCommon} (the rest went through the general reader): tests check that
 * engines' batches take it.
 */
export let fastReads = 0;

/** What the one-pass reader's helpers read: an unsigned integer (hi, lo) or a count. */
const U = new Uint32Array(2);
let count = 0;

/** An unsigned integer (fixint, uint8/16/32/64) at `p` into U; the position after it, or -1. */
function uintAt(b: Uint8Array, p: number): number {
  const x = b[p];
  if (x <= 0x7f) {
    U[0] = 0;
    U[1] = x;
    return p + 1;
  }
  const n = x === 0xcc ? 2 : x === 0xcd ? 3 : x === 0xce ? 5 : x === 0xcf ? 9 : 0;
  if (n === 0 || p + n > b.length) return -1;
  if (n === 9) {
    U[0] = u32At(b, p + 1);
    U[1] = u32At(b, p + 5);
    return p + 9;
  }
  U[0] = 0;
  U[1] = n === 2 ? b[p + 1] : n === 3 ? (b[p + 1] << 8) | b[p + 2] : u32At(b, p + 1);
  return p + n;
}

/** An array header (fixarray, array16, array32) at `p`: its count into `count`; the position after. */
function arrayAt(b: Uint8Array, p: number): number {
  const x = b[p];
  if (x >= 0x90 && x <= 0x9f) {
    count = x & 0x0f;
    return p + 1;
  }
  if (x === 0xdc && p + 3 <= b.length) {
    count = (b[p + 1] << 8) | b[p + 2];
    return p + 3;
  }
  if (x === 0xdd && p + 5 <= b.length) {
    count = u32At(b, p + 1);
    return p + 5;
  }
  return -1;
}

/**
 * A medium (nil, or a fixstr of ASCII) at `p`: its tier into `count` (as {@link tierOf} decides:
 * "GPU" in any case is 0); the position after it, or -1.
 */
function mediumAt(b: Uint8Array, p: number): number {
  const m = b[p];
  if (m === 0xc0) {
    count = 0;
    return p + 1;
  }
  if (!(m >= 0xa0 && m <= 0xbf)) return -1;
  const sl = m & 0x1f;
  if (p + 1 + sl > b.length) return -1;
  for (let i = 1; i <= sl; i++) if (b[p + i] >= 0x80) return -1;
  count = sl === 3 && isGpu(b, p + 1) ? 0 : 1;
  return p + 1 + sl;
}

/** Whether the fixstr at `p` is `want` (ASCII). */
function fixstrIs(b: Uint8Array, p: number, want: Uint8Array): boolean {
  if (b[p] !== (0xa0 | want.length) || p + 1 + want.length > b.length) return false;
  for (let i = 0; i < want.length; i++) if (b[p + 1 + i] !== want[i]) return false;
  return true;
}

/** Hashes (an array of unsigned integers) at `p` pushed to `out`; the position after, or -1. */
function hashesAt(b: Uint8Array, p: number, out: ParsedBatch): number {
  p = arrayAt(b, p);
  if (p < 0) return -1;
  const n = count;
  for (let i = 0; i < n && p >= 0; i++) {
    p = uintAt(b, p);
    if (p >= 0) out.pushHash(U[0], U[1]);
  }
  return p; // (count is still n)
}

/**
 * The batch in one pass when it has the layout engines send: `[ts, events(, rank)]` with `ts` a
 * float or an unsigned integer and `rank` nil or a fixint, events as arrays: `["BlockStored",
 * hashes, parent or nil, token ids, block size, nil, medium(, nil, nil)]`, `["BlockRemoved",
 * hashes(, medium)]`, `["AllBlocksCleared"]`; hashes and parents unsigned integers, token ids
 * below 2^32, a positive block size, a medium nil or a short ASCII string. Anything else
 * (another layout, another type, an event the general reader would skip, bytes left over): false,
 * with `out` to be reset; the general reader decides. What it accepts it reads as that reader
 * would (the differential tests hold both to the reference decoder).
 */
function readCommon(b: Uint8Array, out: ParsedBatch): boolean {
  const len = b.length;
  if (len < 3 || (b[0] !== 0x92 && b[0] !== 0x93)) return false;
  let p = 1;
  // ts
  const t = b[p];
  if (t === 0xcb) {
    if (p + 9 > len) return false;
    out.ts = f64At(b, p + 1);
    p += 9;
  } else {
    p = uintAt(b, p);
    if (p < 0 || U[0] !== 0) return false;
    out.ts = U[1];
  }
  if (p >= len) return false;
  p = arrayAt(b, p);
  if (p < 0) return false;
  const events = count;
  for (let e = 0; e < events; e++) {
    if (p >= len) return false;
    const x = b[p];
    if (x < 0x91 || x > 0x99) return false;
    const items = x & 0x0f;
    p++;
    if (fixstrIs(b, p, KEY.BlockStored)) {
      if (items !== 7 && items !== 9) return false;
      p += 1 + KEY.BlockStored.length;
      const start = out.hashCount;
      p = hashesAt(b, p, out);
      if (p < 0 || p >= len) return false;
      const n = count;
      let parentHi = ROOT_HI, parentLo = ROOT_LO;
      if (b[p] === 0xc0) p++;
      else {
        p = uintAt(b, p);
        if (p < 0) return false;
        parentHi = U[0];
        parentLo = U[1];
      }
      if (p >= len) return false;
      p = arrayAt(b, p);
      if (p < 0) return false;
      const tokens = count, tokenStart = out.tokenTotal;
      for (let i = 0; i < tokens; i++) {
        if (p >= len) return false;
        const v = b[p];
        if (v === 0xcf) return false; // maybe past 2^32: the general reader decides
        p = uintAt(b, p);
        if (p < 0) return false;
        out.pushToken(U[1]);
      }
      if (p >= len) return false;
      p = uintAt(b, p);
      if (p < 0 || U[0] !== 0 || U[1] === 0) return false;
      const size = U[1];
      if (p + 2 > len || b[p] !== 0xc0) return false; // lora_id nil
      p++;
      p = mediumAt(b, p);
      if (p < 0) return false;
      const tier = count;
      if (items === 9) {
        // lora_name and extra_keys, both nil
        if (p + 2 > len || b[p] !== 0xc0 || b[p + 1] !== 0xc0) return false;
        p += 2;
      }
      out.pushEvent(STORED, tier, start, n);
      out.setLearnable(size, parentHi, parentLo, tokenStart, tokens, null);
    } else if (fixstrIs(b, p, KEY.BlockRemoved)) {
      if (items !== 2 && items !== 3) return false;
      p += 1 + KEY.BlockRemoved.length;
      const start = out.hashCount;
      p = hashesAt(b, p, out);
      if (p < 0) return false;
      const n = count;
      let tier = 0;
      if (items === 3) {
        p = mediumAt(b, p);
        if (p < 0) return false;
        tier = count;
      }
      out.pushEvent(REMOVED, tier, start, n);
    } else if (fixstrIs(b, p, KEY.AllBlocksCleared)) {
      if (items !== 1) return false;
      p += 1 + KEY.AllBlocksCleared.length;
      out.pushEvent(CLEARED, 0, 0, 0);
    } else return false;
  }
  if (b[0] === 0x93) {
    if (p >= len) return false;
    const r = b[p];
    if (r === 0xc0) p++;
    else if (r <= 0x7f) {
      out.dataParallelRank = r;
      p++;
    } else return false;
  }
  return p === len;
}
