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
  /**
   * High 32 bits of the last block's int hash (read from the digest: a field would take a heap
   * number at each block, for values of 2^30 and more).
   */
  get hi(): number {
    return this.#buf.length === 0 ? 0 : this.#bufView.getUint32(this.#parentAt + 24);
  }
  /** Low 32 bits of the last block's int hash. */
  get lo(): number {
    return this.#buf.length === 0 ? 0 : this.#bufView.getUint32(this.#parentAt + 28);
  }
  #buf: Uint8Array = new Uint8Array(0);
  /** A view of {@link #buf} for four-byte writes. */
  #bufView = new DataView(this.#buf.buffer);
  #parentAt = 0;
  #tokens: ArrayLike<number> = [];
  /** Where the prompt starts in {@link #tokens}. */
  #offset = 0;
  #block = 0;
  #blocks = 0;
  #extraFirst: Uint8Array = new Uint8Array(0);
  #extraRest: Uint8Array = new Uint8Array(0);
  /** The extra-keys item of a prompt with none (None). */
  #noKeys: Uint8Array;
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
    this.#noKeys = encodeExtra(options.algo, []);
  }

  /** The SHA-256 implementation in use: `native` (libcrypto) or `js`. */
  get sha256Impl(): "js" | "native" {
    return this.#sha.name;
  }

  /**
   * Prepares the chain of `tokens` (of `tokens[offset, end)` when given: no copy); returns how
   * many full blocks it has.
   */
  start(
    tokens: ArrayLike<number>,
    keys?: PromptKeys,
    offset = 0,
    end: number = tokens.length,
  ): number {
    if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(end) && 0 <= offset)) {
      throw new RangeError(`prompt range [${offset}, ${end}) is not integers from 0`);
    }
    if (end > tokens.length || end < offset) {
      throw new RangeError(`prompt range [${offset}, ${end}) outside ${tokens.length} tokens`);
    }
    if (!keys?.loraName && !keys?.cacheSalt) {
      this.#extraFirst = this.#extraRest = this.#noKeys;
    } else {
      const lora = keys.loraName ? [enc.encode(keys.loraName)] : [];
      const salt = keys.cacheSalt ? [enc.encode(keys.cacheSalt)] : [];
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
    this.#tokens = tokens;
    this.#offset = offset;
    this.#block = 0;
    this.#blocks = Math.floor((end - offset) / this.blockSize);
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
    const from = this.#offset + i * bs;
    const at = this.#parentAt;
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

function badToken(v: unknown): never {
  throw new RangeError(`token id ${v} is not a non-negative integer`);
}

/** A hash as engines publish it with integer block hashes: its low 64 bits, big-endian. */
export function intBlockHash(hash: Uint8Array): bigint {
  const v = new DataView(hash.buffer, hash.byteOffset, hash.byteLength);
  return v.getBigUint64(hash.byteLength - 8);
}
