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
import { chooseSha256, paddedLength, type Sha256, sha256 } from "./sha256.ts";
import { TokenFingerprint } from "./fingerprint.ts";

/** The hash functions of vLLM's `--prefix-caching-hash-algo` that are reproduced. */
export type HashAlgo = "sha256_cbor" | "sha256";
export const HASH_ALGOS: readonly HashAlgo[] = ["sha256_cbor", "sha256"];

const enc = new TextEncoder();

/** Blocks whose digest cache entries are touched together (see BlockHasher.next). */
const PREFETCH_BLOCKS = 8;

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
  /** The SHA-256 implementation (default: the native one when it loads, else ours in JS). */
  sha256?: Sha256;
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
  /** A view of {@link #buf} for four-byte writes. */
  #bufView = new DataView(this.#buf.buffer);
  #parentAt = 0;
  #tokens: ArrayLike<number> = [];
  #block = 0;
  #blocks = 0;
  #extraFirst: Uint8Array = new Uint8Array(0);
  #extraRest: Uint8Array = new Uint8Array(0);
  #noKeys: [Uint8Array, Uint8Array];
  #cache: DigestCache | null;
  #keysId = 0;
  /** Per block, the fingerprint of the prompt's tokens up to its end (the digest cache's key). */
  #fps = new Uint32Array(256);
  /** Blocks whose fingerprint is computed. */
  #fpUpTo = 0;
  /** Blocks before the first that cannot be cached (a token id of 2^32 or more). */
  #fpValid = 0;
  #fp = new TokenFingerprint();
  /** The cache slot holding the previous block's digest, when the buffer does not (-1). */
  #parentSlot = -1;
  #noneHi: number;
  #noneLo: number;
  #sha: Sha256;

  constructor(options: HasherOptions) {
    const bs = options.blockSize;
    if (!Number.isSafeInteger(bs) || bs <= 0 || bs > 65536) {
      throw new RangeError(`block size ${bs} is not an integer in [1, 65536]`);
    }
    if (!HASH_ALGOS.includes(options.algo)) throw new RangeError(`hash algo ${options.algo}`);
    this.algo = options.algo;
    this.blockSize = bs;
    this.#sha = options.sha256 ?? chooseSha256("auto");
    this.noneHash = noneHash(options.seed, options.algo);
    const none = encodeExtra(options.algo, []);
    this.#noKeys = [none, none];
    const nv = new DataView(this.noneHash.buffer, this.noneHash.byteOffset);
    this.#noneHi = nv.getUint32(24);
    this.#noneLo = nv.getUint32(28);
    const cache = options.cacheBlocks ?? 0;
    this.#cache = cache > 0 ? new DigestCache(cache, bs) : null;
  }

  /** The SHA-256 implementation in use: `native` (libcrypto) or `js`. */
  get sha256Impl(): "js" | "native" {
    return this.#sha.name;
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
    if (this.#buf.length < need) {
      this.#buf = new Uint8Array(need * 2);
      this.#bufView = new DataView(this.#buf.buffer);
    }
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
    this.#parentSlot = -1;
    this.hi = this.#noneHi;
    this.lo = this.#noneLo;
    this.#fp.hi = Math.imul(this.#keysId + 1, 0x9e3779b1) >>> 0;
    this.#fp.lo = this.#keysId;
    this.#fpUpTo = 0;
    this.#tokens = tokens;
    this.#block = 0;
    this.#blocks = Math.floor(tokens.length / this.blockSize);
    this.#fpValid = this.#blocks;
    if (this.#cache !== null && this.#fps.length < this.#blocks * 2) {
      this.#fps = new Uint32Array(this.#blocks * 4);
    }
    return this.#blocks;
  }

  /** Hashes the next block; sets {@link hi} and {@link lo}. */
  next(): void {
    const i = this.#block;
    if (i >= this.#blocks) throw new RangeError("no more full blocks");
    this.#block = i + 1;
    const b = this.#buf, dv = this.#bufView;
    const bs = this.blockSize;
    const t = this.#tokens;
    const from = i * bs;
    const at = this.#parentAt;
    const cache = this.#cache;
    let slot = -1;
    const parentHi = this.hi, parentLo = this.lo;
    if (cache !== null && i < this.#fpValid && i >= this.#fpUpTo) {
      // Fingerprints are computed a chunk of blocks at a time, and the chunk's entries touched
      // back to back: their memory misses overlap instead of coming one per block.
      const from = this.#fpUpTo;
      while (this.#fpUpTo < this.#blocks && this.#fpUpTo < from + PREFETCH_BLOCKS) {
        if (!this.#fingerprint(this.#fpUpTo)) break;
        this.#fpUpTo++;
      }
      for (let k = from; k < this.#fpUpTo; k++) cache.touch(this.#fps[k * 2 + 1]);
    }
    if (cache !== null && i < this.#fpValid && i < this.#fpUpTo) {
      const fpHi = this.#fps[i * 2], fpLo = this.#fps[i * 2 + 1];
      const found = cache.probe(fpHi, fpLo, this.#keysId, parentHi, parentLo, t, from);
      if (found >= 0) {
        // The digest stays in the cache until a miss needs it as a parent.
        this.#parentSlot = found;
        this.hi = cache.hi(found);
        this.lo = cache.lo(found);
        return;
      }
      slot = -found - 2;
    }
    if (this.#parentSlot >= 0) {
      cache!.copyDigest(this.#parentSlot, b, at);
      this.#parentSlot = -1;
    }
    const extra = i === 0 ? this.#extraFirst : this.#extraRest;
    let p = at + 32;
    if (this.algo === "sha256_cbor") {
      p = cborHead(b, p, 4, bs);
      for (let j = from; j < from + bs; j++) {
        const v = t[j];
        // Token ids are u32 in practice: written inline without branching on their size (random
        // sizes mispredict), anything else the long way. k payload bytes (0, 1, 2 or 4) follow
        // the head; four bytes are always written (the buffer has room), the next token or the
        // extra keys overwrite what lies past the payload.
        if ((v >>> 0) === v) {
          const ge24 = +(v >= 24), ge256 = +(v >= 0x100), ge64k = +(v >= 0x10000);
          const k = ge24 + ge256 + 2 * ge64k;
          b[p] = k === 0 ? v : 0x17 + ge24 + ge256 + ge64k;
          // The payload at the top of a big-endian word (k = 0 shifts by 0, mod 32: bytes to be
          // overwritten).
          dv.setUint32(p + 1, v << (32 - 8 * k));
          p += 1 + k;
          continue;
        }
        if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v)) badToken(v);
        p = cborHead(b, p, 0, v);
      }
      // Usually one byte (null): a loop, not a TypedArray set call.
      for (let k = 0; k < extra.length; k++) b[p++] = extra[k];
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
    this.#sha.digestInto(b, p, b, at);
    if (slot >= 0) {
      const fpHi = this.#fps[i * 2], fpLo = this.#fps[i * 2 + 1];
      cache!.store(slot, fpHi, fpLo, this.#keysId, parentHi, parentLo, t, from, b, at);
    }
    this.#readInt(b, at);
  }

  /** Computes block `k`'s fingerprint; false (and no caching from `k` on) for a bad token id. */
  #fingerprint(k: number): boolean {
    const fp = this.#fp;
    if (!fp.mix(this.#tokens, k * this.blockSize, this.blockSize)) {
      this.#fpValid = k;
      return false;
    }
    this.#fps[k * 2] = fp.hi;
    this.#fps[k * 2 + 1] = fp.lo;
    return true;
  }

  #readInt(b: Uint8Array, at: number): void {
    this.hi = ((b[at + 24] << 24) | (b[at + 25] << 16) | (b[at + 26] << 8) | b[at + 27]) >>> 0;
    this.lo = ((b[at + 28] << 24) | (b[at + 29] << 16) | (b[at + 30] << 8) | b[at + 31]) >>> 0;
  }

  /** The last block's 32-byte digest (a copy). */
  digest(): Uint8Array {
    if (this.#parentSlot >= 0) {
      this.#cache!.copyDigest(this.#parentSlot, this.#buf, this.#parentAt);
      this.#parentSlot = -1;
    }
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
 * Remembered block digests, keyed by a fingerprint of the prompt's tokens so far (and its extra
 * keys): where block `i` sits depends only on the tokens, not on block `i - 1`'s lookup, so the
 * CPU can fetch several blocks' entries at once. Every hit is checked exactly: the extra keys,
 * the block's tokens, and the parent's 64 bits (what the previous block resolved to) must all be
 * equal; a false hit would take a 64-bit collision of SHA-256 parents with equal tokens. Two ways
 * per set; a miss replaces the way used less recently.
 */
class DigestCache {
  readonly capacity: number;
  readonly bytes: number;
  hits = 0;
  misses = 0;
  #mask: number;
  #bs: number;
  #stride: number;
  /**
   * Per entry: fingerprint hi, lo, keys id + 1 (0 = empty), parent hi, lo, the block's tokens,
   * its digest (8 words, big-endian).
   */
  #rows: Uint32Array;
  #keyIds = new Map<string, number>();
  /** Per set of two slots, the way used last. */
  #lastUsed: Uint8Array;

  constructor(entries: number, blockSize: number) {
    let cap = 2;
    while (cap < entries) cap *= 2;
    this.capacity = cap;
    this.#mask = cap - 1;
    this.#bs = blockSize;
    this.#stride = 5 + blockSize + 8;
    this.#rows = new Uint32Array(cap * this.#stride);
    this.#lastUsed = new Uint8Array(cap >>> 1);
    this.bytes = this.#rows.byteLength + this.#lastUsed.byteLength;
  }

  /** A small id for a prompt's extra keys (the table is cleared past 65,536 distinct ones). */
  keysId(keys: string): number {
    let id = this.#keyIds.get(keys);
    if (id === undefined) {
      if (this.#keyIds.size >= 65536) {
        this.#keyIds.clear();
        this.#rows.fill(0);
      }
      id = this.#keyIds.size + 1;
      this.#keyIds.set(keys, id);
    }
    return id;
  }

  /**
   * The slot holding this block (>= 0), or `-(slot + 2)` for the slot a miss should take.
   */
  probe(
    fpHi: number,
    fpLo: number,
    keysId: number,
    parentHi: number,
    parentLo: number,
    t: ArrayLike<number>,
    from: number,
  ): number {
    const set = fpLo & this.#mask & ~1;
    const r = this.#rows, st = this.#stride;
    for (let way = 0; way < 2; way++) {
      const o = (set + way) * st;
      if (r[o + 1] !== fpLo || r[o] !== fpHi || r[o + 2] !== keysId + 1) continue;
      if (r[o + 3] !== parentHi || r[o + 4] !== parentLo) continue;
      let same = true;
      for (let j = 0; j < this.#bs; j++) {
        if (r[o + 5 + j] !== t[from + j]) {
          same = false;
          break;
        }
      }
      if (!same) continue;
      this.#lastUsed[set >>> 1] = way;
      this.hits++;
      return set + way;
    }
    this.misses++;
    const victim = set + (this.#lastUsed[set >>> 1] ^ 1);
    this.#lastUsed[set >>> 1] = victim - set;
    return -(victim + 2);
  }

  /** Reads both ends of both ways of the set of `fpLo` (a prefetch: the value is not needed). */
  touch(fpLo: number): void {
    const set = fpLo & this.#mask & ~1;
    const st = this.#stride;
    const r = this.#rows, o = set * st;
    this.#sink ^= r[o] ^ r[o + st - 1] ^ r[o + st] ^ r[o + 2 * st - 1];
  }

  /** What {@link touch} read, kept so that the reads are not optimised away. */
  #sink = 0;

  /** High and low 32 bits of the low 64 bits of a slot's digest (the block's int hash). */
  hi(slot: number): number {
    return this.#rows[slot * this.#stride + 5 + this.#bs + 6];
  }

  lo(slot: number): number {
    return this.#rows[slot * this.#stride + 5 + this.#bs + 7];
  }

  /** Writes a slot's 32-byte digest at `b[at]`. */
  copyDigest(slot: number, b: Uint8Array, at: number): void {
    const r = this.#rows;
    const o = slot * this.#stride + 5 + this.#bs;
    for (let i = 0; i < 8; i++) {
      const v = r[o + i];
      const p = at + i * 4;
      b[p] = v >>> 24;
      b[p + 1] = v >>> 16;
      b[p + 2] = v >>> 8;
      b[p + 3] = v;
    }
  }

  /** Fills a slot with a block and its digest (read from `b[at]`). */
  store(
    slot: number,
    fpHi: number,
    fpLo: number,
    keysId: number,
    parentHi: number,
    parentLo: number,
    t: ArrayLike<number>,
    from: number,
    b: Uint8Array,
    at: number,
  ): void {
    const r = this.#rows, o = slot * this.#stride;
    r[o] = fpHi;
    r[o + 1] = fpLo;
    r[o + 2] = keysId + 1;
    r[o + 3] = parentHi;
    r[o + 4] = parentLo;
    for (let j = 0; j < this.#bs; j++) r[o + 5 + j] = t[from + j];
    const d = o + 5 + this.#bs;
    for (let i = 0; i < 8; i++) {
      const p = at + i * 4;
      r[d + i] = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
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
