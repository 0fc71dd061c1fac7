/**
 * vLLM's prefix-cache block hashes, reproduced so that a prompt's token ids give the hashes the
 * engines report in their events.
 *
 * The facts, as vLLM computes them:
 * - block `i` (full blocks only) hashes the triple `(parent_hash, tuple(token_ids_of_the_block),
 *   extra_keys_or_None)`, the parent being the previous block's 32-byte hash or `NONE_HASH`;
 * - `NONE_HASH = H(PYTHONHASHSEED)` (the seed as a string; an engine without PYTHONHASHSEED uses
 *   random bytes, and nothing outside it can match its hashes);
 * - extra keys: the LoRA name on every block, the cache salt on the first block only (in that
 *   order); no keys gives `None`;
 * - `H` is SHA-256 of the triple's canonical CBOR (`sha256_cbor`) or of its pickle, protocol 5
 *   (`sha256`);
 * - events carry the 32 bytes, or (with integer block hashes) their low 64 bits read big-endian.
 *
 * {@link BlockHasher} encodes each triple straight into a scratch buffer and hashes it in place
 * (see sha256.ts), one block at a time, so a router can stop at the first block no pod holds.
 * Multimodal and prompt-embedding extra keys are not reproduced (text prompts only).
 *
 * @module
 */
import { paddedLength, sha256, sha256InPlace } from "./sha256.ts";

/** The hash functions of vLLM's `--prefix-caching-hash-algo` that are reproduced. */
export type HashAlgo = "sha256_cbor" | "sha256";
export const HASH_ALGOS: readonly HashAlgo[] = ["sha256_cbor", "sha256"];

const enc = new TextEncoder();

/** Pickles larger than one frame would be split by Python; blocks never get there. */
const PICKLE_FRAME_MAX = 64 * 1024;

/** A CBOR head (major type + argument), minimal length as canonical CBOR requires. */
function cborHead(out: Uint8Array, p: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) out[p++] = m | n;
  else if (n < 0x100) {
    out[p++] = m | 24;
    out[p++] = n;
  } else if (n < 0x10000) {
    out[p++] = m | 25;
    out[p++] = n >>> 8;
    out[p++] = n;
  } else if (n < 0x100000000) {
    out[p++] = m | 26;
    out[p++] = n >>> 24;
    out[p++] = n >>> 16;
    out[p++] = n >>> 8;
    out[p++] = n;
  } else {
    const hi = Math.floor(n / 0x100000000);
    out[p++] = m | 27;
    out[p++] = hi >>> 24;
    out[p++] = hi >>> 16;
    out[p++] = hi >>> 8;
    out[p++] = hi;
    out[p++] = n >>> 24;
    out[p++] = n >>> 16;
    out[p++] = n >>> 8;
    out[p++] = n;
  }
  return p;
}

/** A non-negative int as pickle writes it (BININT1, BININT2, BININT or LONG1). */
function pickleInt(out: Uint8Array, p: number, n: number): number {
  if (n < 0x100) {
    out[p++] = 0x4b;
    out[p++] = n;
  } else if (n < 0x10000) {
    out[p++] = 0x4d;
    out[p++] = n;
    out[p++] = n >>> 8;
  } else if (n < 0x80000000) {
    out[p++] = 0x4a;
    out[p++] = n;
    out[p++] = n >>> 8;
    out[p++] = n >>> 16;
    out[p++] = n >>> 24;
  } else {
    // LONG1: little-endian two's complement, minimal, with a clear sign bit.
    out[p++] = 0x8a;
    const lenAt = p++;
    let len = 0;
    let v = n;
    let last = 0;
    while (v > 0) {
      last = v % 256;
      out[p++] = last;
      v = Math.floor(v / 256);
      len++;
    }
    if (last & 0x80) {
      out[p++] = 0;
      len++;
    }
    out[lenAt] = len;
  }
  return p;
}

function pickleStr(out: Uint8Array, p: number, s: Uint8Array): number {
  if (s.length < 0x100) {
    out[p++] = 0x8c;
    out[p++] = s.length;
  } else {
    out[p++] = 0x58;
    out[p++] = s.length;
    out[p++] = s.length >>> 8;
    out[p++] = s.length >>> 16;
    out[p++] = s.length >>> 24;
  }
  out.set(s, p);
  p += s.length;
  out[p++] = 0x94; // MEMOIZE
  return p;
}

/** Tuple end for `n` items already written (after a MARK when n > 3). */
function pickleTupleEnd(out: Uint8Array, p: number, n: number): number {
  if (n === 0) {
    out[p++] = 0x29; // EMPTY_TUPLE (not memoized)
    return p;
  }
  out[p++] = n === 1 ? 0x85 : n === 2 ? 0x86 : n === 3 ? 0x87 : 0x74;
  out[p++] = 0x94;
  return p;
}

/** The extra-keys item of a triple: None or a tuple of strings. */
function encodeExtra(algo: HashAlgo, keys: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(16 + keys.reduce((n, k) => n + k.length + 9, 0));
  let p = 0;
  if (keys.length === 0) out[p++] = algo === "sha256_cbor" ? 0xf6 : 0x4e;
  else if (algo === "sha256_cbor") {
    p = cborHead(out, p, 4, keys.length);
    for (const k of keys) {
      p = cborHead(out, p, 3, k.length);
      out.set(k, p);
      p += k.length;
    }
  } else {
    if (keys.length > 3) out[p++] = 0x28;
    for (const k of keys) p = pickleStr(out, p, k);
    p = pickleTupleEnd(out, p, keys.length);
  }
  return out.slice(0, p);
}

function pickleFramed(body: Uint8Array): Uint8Array {
  // PROTO 5, FRAME <u64 LE length>, body, STOP.
  const out = new Uint8Array(11 + body.length + 1);
  out[0] = 0x80;
  out[1] = 5;
  out[2] = 0x95;
  new DataView(out.buffer).setUint32(3, body.length + 1, true);
  out.set(body, 11);
  out[out.length - 1] = 0x2e;
  return out;
}

/** `NONE_HASH` for a PYTHONHASHSEED value. */
export function noneHash(seed: string, algo: HashAlgo = "sha256_cbor"): Uint8Array {
  const s = enc.encode(seed);
  if (algo === "sha256_cbor") {
    const out = new Uint8Array(s.length + 9);
    const p = cborHead(out, 0, 3, s.length);
    out.set(s, p);
    return sha256(out.subarray(0, p + s.length));
  }
  const body = new Uint8Array(s.length + 6);
  const n = pickleStr(body, 0, s);
  return sha256(pickleFramed(body.subarray(0, n)));
}

/** Options of a {@link BlockHasher}. */
export interface HasherOptions {
  algo: HashAlgo;
  /** The engines' PYTHONHASHSEED. */
  seed: string;
  blockSize: number;
  /**
   * Blocks whose digests are remembered (0 = none): a block seen before, with the same parent,
   * tokens and extra keys, costs a table probe instead of a SHA-256. Routers see the same prefixes
   * again and again; that is what prefix caching is for.
   */
  cacheBlocks?: number;
}

/** Per-prompt keys that enter the hashes. */
export interface PromptKeys {
  /** The LoRA adapter's name (every block). */
  loraName?: string | null;
  /** The request's cache salt (first block). */
  cacheSalt?: string | null;
}

/**
 * Computes a prompt's block hash chain one block at a time:
 * `const n = h.start(tokens, keys); for (let i = 0; i < n; i++) { h.next(); use(h.hi, h.lo) }`.
 * `hi`/`lo` are the low 64 bits of the block's digest (the int form events carry), as two u32.
 */
export class BlockHasher {
  readonly algo: HashAlgo;
  readonly blockSize: number;
  readonly noneHash: Uint8Array;
  /** High 32 bits of the last block's int hash. */
  hi = 0;
  /** Low 32 bits of the last block's int hash. */
  lo = 0;
  #buf: Uint8Array = new Uint8Array(0);
  #parentAt = 0;
  #tokens: ArrayLike<number> = [];
  #block = 0;
  #blocks = 0;
  #extraFirst: Uint8Array = new Uint8Array(0);
  #extraRest: Uint8Array = new Uint8Array(0);
  #noKeys: [Uint8Array, Uint8Array];
  #cache: DigestCache | null;
  #keysId = 0;

  constructor(options: HasherOptions) {
    const bs = options.blockSize;
    if (!Number.isSafeInteger(bs) || bs <= 0 || bs > 65536) {
      throw new RangeError(`block size ${bs} is not an integer in [1, 65536]`);
    }
    if (!HASH_ALGOS.includes(options.algo)) throw new RangeError(`hash algo ${options.algo}`);
    this.algo = options.algo;
    this.blockSize = bs;
    this.noneHash = noneHash(options.seed, options.algo);
    const none = encodeExtra(options.algo, []);
    this.#noKeys = [none, none];
    const cache = options.cacheBlocks ?? 0;
    this.#cache = cache > 0 ? new DigestCache(cache, bs) : null;
  }

  /** Digest cache counters (null without a cache). */
  cacheStats(): { entries: number; hits: number; misses: number; bytes: number } | null {
    const c = this.#cache;
    return c && { entries: c.capacity, hits: c.hits, misses: c.misses, bytes: c.bytes };
  }

  /** Prepares the chain of `tokens`; returns how many full blocks it has. */
  start(tokens: ArrayLike<number>, keys?: PromptKeys): number {
    const lora = keys?.loraName ? [enc.encode(keys.loraName)] : [];
    if (lora.length === 0 && !keys?.cacheSalt) {
      [this.#extraFirst, this.#extraRest] = this.#noKeys;
      this.#keysId = 0;
    } else {
      this.#keysId = this.#cache?.keysId(`${keys?.loraName ?? ""}\u0000${keys?.cacheSalt ?? ""}`) ??
        0;
      const salt = keys?.cacheSalt ? [enc.encode(keys.cacheSalt)] : [];
      this.#extraFirst = encodeExtra(this.algo, [...lora, ...salt]);
      this.#extraRest = encodeExtra(this.algo, lora);
    }
    const extra = Math.max(this.#extraFirst.length, this.#extraRest.length);
    const need = paddedLength(48 + this.blockSize * 10 + extra);
    if (this.#buf.length < need) this.#buf = new Uint8Array(need * 2);
    const b = this.#buf;
    // The fixed head, the parent slot filled with NONE_HASH.
    if (this.algo === "sha256_cbor") {
      b[0] = 0x83;
      b[1] = 0x58;
      b[2] = 32;
      this.#parentAt = 3;
    } else {
      b[0] = 0x80;
      b[1] = 5;
      b[2] = 0x95;
      b[11] = 0x43;
      b[12] = 32;
      this.#parentAt = 13;
    }
    b.set(this.noneHash, this.#parentAt);
    this.#tokens = tokens;
    this.#block = 0;
    this.#blocks = Math.floor(tokens.length / this.blockSize);
    return this.#blocks;
  }

  /** Hashes the next block; sets {@link hi} and {@link lo}. */
  next(): void {
    const i = this.#block;
    if (i >= this.#blocks) throw new RangeError("no more full blocks");
    this.#block = i + 1;
    const b = this.#buf;
    const bs = this.blockSize;
    const t = this.#tokens;
    const from = i * bs;
    const at = this.#parentAt;
    const cache = this.#cache;
    let slot = -1;
    if (cache !== null) {
      const found = cache.find(b, at, this.#keysId, t, from);
      if (found >= 0) {
        cache.hit(found, b, at);
        this.#readInt(b, at);
        return;
      }
      if (found < -1) slot = cache.miss(-found - 2, this.#keysId, t, from);
    }
    const extra = i === 0 ? this.#extraFirst : this.#extraRest;
    let p = at + 32;
    if (this.algo === "sha256_cbor") {
      p = cborHead(b, p, 4, bs);
      for (let j = from; j < from + bs; j++) {
        const v = t[j];
        if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v)) badToken(v);
        p = cborHead(b, p, 0, v);
      }
      b.set(extra, p);
      p += extra.length;
    } else {
      b[p++] = 0x94; // MEMOIZE the parent bytes
      if (bs > 3) b[p++] = 0x28;
      for (let j = from; j < from + bs; j++) {
        const v = t[j];
        if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v)) badToken(v);
        p = pickleInt(b, p, v);
      }
      p = pickleTupleEnd(b, p, bs);
      b.set(extra, p);
      p += extra.length;
      b[p++] = 0x87; // TUPLE3
      b[p++] = 0x94;
      b[p++] = 0x2e; // STOP
      const frame = p - 11;
      if (frame > PICKLE_FRAME_MAX) throw new RangeError("block too large for one pickle frame");
      b[3] = frame;
      b[4] = frame >>> 8;
      b[5] = frame >>> 16;
      b[6] =
        b[7] =
        b[8] =
        b[9] =
        b[10] =
          0;
    }
    // The digest lands in the parent slot: it is the next block's parent.
    sha256InPlace(b, p, b, at);
    if (slot >= 0) cache!.store(slot, b, at);
    this.#readInt(b, at);
  }

  #readInt(b: Uint8Array, at: number): void {
    this.hi = ((b[at + 24] << 24) | (b[at + 25] << 16) | (b[at + 26] << 8) | b[at + 27]) >>> 0;
    this.lo = ((b[at + 28] << 24) | (b[at + 29] << 16) | (b[at + 30] << 8) | b[at + 31]) >>> 0;
  }

  /** The last block's 32-byte digest (a copy). */
  digest(): Uint8Array {
    return this.#buf.slice(this.#parentAt, this.#parentAt + 32);
  }

  /** Every full block's digest (tests, tools). */
  all(tokens: ArrayLike<number>, keys?: PromptKeys): Uint8Array[] {
    const n = this.start(tokens, keys);
    const out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      this.next();
      out.push(this.digest());
    }
    return out;
  }
}

/**
 * Remembered block digests: a two-way set-associative table keyed by (parent's low 64 bits, extra keys,
 * token ids), the key checked exactly on every hit (a false hit would take a 64-bit collision of
 * SHA-256 parents with equal tokens).
 */
class DigestCache {
  readonly capacity: number;
  readonly bytes: number;
  hits = 0;
  misses = 0;
  #mask: number;
  #bs: number;
  #stride: number;
  /** Per entry: parent hi, parent lo, keys id + 1 (0 = empty), the block's tokens, its digest. */
  #keys: Uint32Array;
  #keyIds = new Map<string, number>();
  /** Per set of two slots, the way used last. */
  #lastUsed: Uint8Array;
  #pendingParentHi = 0;
  #pendingParentLo = 0;

  constructor(entries: number, blockSize: number) {
    let cap = 1;
    while (cap < entries) cap *= 2;
    this.capacity = cap;
    this.#mask = cap - 1;
    this.#bs = blockSize;
    // Key and digest in one row: a hit reads one place in memory.
    this.#stride = 3 + blockSize + 8;
    this.#keys = new Uint32Array(cap * this.#stride);
    this.#lastUsed = new Uint8Array(Math.max(1, cap >>> 1));
    this.bytes = this.#keys.byteLength + this.#lastUsed.byteLength;
  }

  /** A small id for a prompt's extra keys (the table is cleared past 65,536 distinct ones). */
  keysId(keys: string): number {
    let id = this.#keyIds.get(keys);
    if (id === undefined) {
      if (this.#keyIds.size >= 65536) {
        this.#keyIds.clear();
        this.#keys.fill(0);
      }
      id = this.#keyIds.size + 1;
      this.#keyIds.set(keys, id);
    }
    return id;
  }

  /**
   * The slot holding this block (>= 0), `-(slot + 2)` for the slot it would take, or -1 when it
   * cannot be cached (token ids of 2^32 and above).
   */
  find(b: Uint8Array, at: number, keysId: number, t: ArrayLike<number>, from: number): number {
    const hi = (b[at + 24] << 24) | (b[at + 25] << 16) | (b[at + 26] << 8) | b[at + 27];
    const lo = (b[at + 28] << 24) | (b[at + 29] << 16) | (b[at + 30] << 8) | b[at + 31];
    let h = Math.imul(lo ^ keysId, 0x9e3779b1) ^ hi;
    for (let j = from; j < from + this.#bs; j++) {
      const v = t[j];
      if (!(v >= 0 && v < 0x100000000)) return -1;
      h = Math.imul(h ^ v, 0x85ebca6b);
      h ^= h >>> 13;
    }
    h = Math.imul(h ^ (h >>> 16), 0xc2b2ae35);
    h ^= h >>> 16;
    this.#pendingParentHi = hi >>> 0;
    this.#pendingParentLo = lo >>> 0;
    // Two ways per set: the block may sit in either; a miss takes the one not used last.
    const set = h & this.#mask & ~1;
    if (this.#matches(set, keysId, t, from)) {
      this.#lastUsed[set >>> 1] = 0;
      return set;
    }
    if (this.#matches(set + 1, keysId, t, from)) {
      this.#lastUsed[set >>> 1] = 1;
      return set + 1;
    }
    const victim = set + (this.#lastUsed[set >>> 1] ^ 1);
    this.#lastUsed[set >>> 1] = victim - set;
    return -(victim + 2);
  }

  #matches(slot: number, keysId: number, t: ArrayLike<number>, from: number): boolean {
    const k = this.#keys;
    const o = slot * this.#stride;
    if (
      k[o] !== this.#pendingParentHi || k[o + 1] !== this.#pendingParentLo ||
      k[o + 2] !== keysId + 1
    ) return false;
    for (let j = 0; j < this.#bs; j++) if (k[o + 3 + j] !== t[from + j]) return false;
    return true;
  }

  /** On a hit, copies the digest into the parent slot. */
  hit(slot: number, b: Uint8Array, at: number): void {
    this.hits++;
    const k = this.#keys;
    const o = slot * this.#stride + 3 + this.#bs;
    for (let i = 0; i < 8; i++) {
      const v = k[o + i];
      const p = at + i * 4;
      b[p] = v >>> 24;
      b[p + 1] = v >>> 16;
      b[p + 2] = v >>> 8;
      b[p + 3] = v;
    }
  }

  /** Takes the slot for a missed block (its key; the digest follows with {@link store}). */
  miss(slot: number, keysId: number, t: ArrayLike<number>, from: number): number {
    this.misses++;
    const k = this.#keys;
    const o = slot * this.#stride;
    k[o] = this.#pendingParentHi;
    k[o + 1] = this.#pendingParentLo;
    k[o + 2] = keysId + 1;
    for (let j = 0; j < this.#bs; j++) k[o + 3 + j] = t[from + j];
    return slot;
  }

  /** The digest of the block whose key {@link miss} recorded. */
  store(slot: number, b: Uint8Array, at: number): void {
    const k = this.#keys;
    const o = slot * this.#stride + 3 + this.#bs;
    for (let i = 0; i < 8; i++) {
      const p = at + i * 4;
      k[o + i] = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
    }
  }
}

function badToken(v: unknown): never {
  throw new RangeError(`token id ${v} is not a non-negative integer`);
}

/** A hash as engines publish it with integer block hashes: its low 64 bits, big-endian. */
export function intBlockHash(hash: Uint8Array): bigint {
  const v = new DataView(hash.buffer, hash.byteOffset, hash.byteLength);
  return v.getBigUint64(hash.byteLength - 8);
}
