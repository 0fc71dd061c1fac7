/**
 * vLLM's prefix-cache block hashes, reproduced so that a prompt's token ids give the hashes the
 * engines report in their events (`HASH_ALGO=sha256_cbor`).
 *
 * The facts, as vLLM computes them:
 * - `sha256_cbor(x)` is SHA-256 of the canonical CBOR encoding of `x`;
 * - the chain starts at `NONE_HASH = sha256_cbor(PYTHONHASHSEED)` (the seed as a string; an engine
 *   without PYTHONHASHSEED uses random bytes, and nothing outside it can match its hashes);
 * - block `i` (full blocks only) hashes the triple `(parent_hash_bytes, token_ids_of_the_block,
 *   extra_keys_or_None)`, the parent being the previous block's hash or NONE_HASH;
 * - events carry the 32 bytes, or (with integer block hashes) their low 64 bits read big-endian.
 *
 * @module
 */
import { createHash } from "node:crypto";

const enc = new TextEncoder();

/** A CBOR head (major type + argument), minimal length as canonical CBOR requires. */
function head(out: number[], major: number, n: number): void {
  const m = major << 5;
  if (n < 24) out.push(m | n);
  else if (n < 0x100) out.push(m | 24, n);
  else if (n < 0x10000) out.push(m | 25, n >>> 8, n & 0xff);
  else if (n < 0x100000000) {
    out.push(m | 26, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  } else {
    const hi = Math.floor(n / 0x100000000);
    const lo = n >>> 0;
    out.push(m | 27, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff);
    out.push(lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
  }
}

/** An extra key as vLLM may add one (a LoRA name or id, a cache salt). */
export type ExtraKey = string | number;

function item(out: number[], v: ExtraKey): void {
  if (typeof v === "string") {
    const b = enc.encode(v);
    head(out, 3, b.length);
    for (const x of b) out.push(x);
  } else if (Number.isSafeInteger(v) && v >= 0) head(out, 0, v);
  else if (Number.isSafeInteger(v)) head(out, 1, -1 - v);
  else throw new RangeError(`extra key ${v} is not an integer or a string`);
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** `NONE_HASH` for a PYTHONHASHSEED value. */
export function noneHash(seed: string): Uint8Array {
  const out: number[] = [];
  item(out, seed);
  return sha256(Uint8Array.from(out));
}

/** The CBOR encoding of one block's triple (exported for tests). */
export function encodeBlockTriple(
  parent: Uint8Array,
  tokens: ArrayLike<number>,
  from: number,
  to: number,
  extraKeys: readonly ExtraKey[] | null,
): Uint8Array {
  const out: number[] = [0x83];
  head(out, 2, parent.length);
  for (let i = 0; i < parent.length; i++) out.push(parent[i]);
  head(out, 4, to - from);
  for (let i = from; i < to; i++) {
    const t = tokens[i];
    if (!Number.isSafeInteger(t) || t < 0) throw new RangeError(`token id ${t} is not valid`);
    head(out, 0, t);
  }
  if (extraKeys === null) out.push(0xf6);
  else {
    head(out, 4, extraKeys.length);
    for (const k of extraKeys) item(out, k);
  }
  return Uint8Array.from(out);
}

/** Options of {@link blockHashes}. */
export interface BlockHashOptions {
  blockSize: number;
  /** NONE_HASH (see {@link noneHash}). */
  noneHash: Uint8Array;
  /** Extra keys of the first block (LoRA, cache salt), as the engine adds them. */
  firstBlockExtraKeys?: readonly ExtraKey[] | null;
}

/** The chained hashes of every full block of `tokens`. */
export function blockHashes(tokens: ArrayLike<number>, options: BlockHashOptions): Uint8Array[] {
  const bs = options.blockSize;
  if (!Number.isSafeInteger(bs) || bs <= 0) throw new RangeError(`block size ${bs}`);
  const out: Uint8Array[] = [];
  let parent = options.noneHash;
  for (let i = 0; (i + 1) * bs <= tokens.length; i++) {
    const extra = i === 0 ? options.firstBlockExtraKeys ?? null : null;
    parent = sha256(encodeBlockTriple(parent, tokens, i * bs, (i + 1) * bs, extra));
    out.push(parent);
  }
  return out;
}

/** A hash as engines publish it with integer block hashes: its low 64 bits, big-endian. */
export function intBlockHash(hash: Uint8Array): bigint {
  const v = new DataView(hash.buffer, hash.byteOffset, hash.byteLength);
  return v.getBigUint64(hash.byteLength - 8);
}
