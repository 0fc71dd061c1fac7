/**
 * 32-bit hashes used to place keys on shards and slots.
 *
 * Algorithm: **FNV-1a (32-bit)** followed by the **murmur3 `fmix32` finalizer**.
 * FNV-1a alone is fast but mixes its high input bits poorly into the low output
 * bits (and shards are chosen from the low bits), so every hash goes through
 * `fmix32`, which gives full avalanche at the cost of five cheap operations.
 *
 * - {@link hashString} hashes the string's **UTF-16 code units**, one 16-bit
 *   unit per FNV step (no UTF-8 encoding, so no allocation). It is stable
 *   across isolates, processes and runs: there is no random seed.
 * - {@link hashBytes} hashes bytes, one byte per FNV step.
 *
 * For ASCII-only input the two agree (`hashString("abc")` equals
 * `hashBytes(new TextEncoder().encode("abc"))`); for other text they differ,
 * since UTF-16 code units are not UTF-8 bytes. `ShardMap` hashes keys with
 * `hashString`, `SharedShardTable` hashes the UTF-8 bytes it stores.
 * Neither is cryptographic: do not use them where an attacker choosing keys
 * could hurt (HashDoS); pass a `seed` to make collisions harder to predict.
 *
 * @module
 */

/** FNV-1a 32-bit offset basis. */
export const FNV_OFFSET_BASIS = 0x811c9dc5;
/** FNV-1a 32-bit prime. */
export const FNV_PRIME = 0x01000193;

/**
 * murmur3's 32-bit finalizer: a bijection on uint32 with full avalanche.
 *
 * @example
 * ```ts
 * import { fmix32 } from "@deno-stores/shared/shard";
 * fmix32(1) !== fmix32(2); // true
 * ```
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hash of a string's UTF-16 code units: FNV-1a then `fmix32`. Returns an
 * unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * import { hashString } from "@deno-stores/shared/shard";
 * const shard = hashString("task:42") & 31; // one of 32 shards
 * ```
 */
export function hashString(s: string, seed = 0): number {
  let h = (FNV_OFFSET_BASIS ^ seed) | 0;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  }
  return fmix32(h ^ s.length);
}

/**
 * Hash of bytes: FNV-1a then `fmix32`. Returns an unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * import { hashBytes } from "@deno-stores/shared/shard";
 * hashBytes(new Uint8Array([1, 2, 3]));
 * ```
 */
export function hashBytes(bytes: Uint8Array, seed = 0): number {
  return hashByteRange(bytes, 0, bytes.length, seed);
}

/**
 * {@link hashBytes} of `bytes.subarray(start, end)` without making the
 * subarray (works on `SharedArrayBuffer`-backed views too).
 */
export function hashByteRange(bytes: Uint8Array, start: number, end: number, seed = 0): number {
  let h = (FNV_OFFSET_BASIS ^ seed) | 0;
  for (let i = start; i < end; i++) {
    h = Math.imul(h ^ bytes[i]!, FNV_PRIME);
  }
  return fmix32(h ^ (end - start));
}

/**
 * Hash of a number key. Integers in the uint32/int32 range are mixed directly
 * (so `hashNumber(7)` is cheap); any other number hashes its `String()` form.
 */
export function hashNumber(n: number, seed = 0): number {
  if ((n | 0) === n || (n >>> 0) === n) {
    return fmix32((n ^ seed ^ FNV_OFFSET_BASIS) >>> 0);
  }
  return hashString(String(n), seed);
}
