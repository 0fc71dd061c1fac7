/**
 * A running 64-bit fingerprint of token ids, two u32 lanes mixed with multiplications: the key of
 * the digest cache (block_hash.ts) and of the learned chains (chain.ts). Fast, not cryptographic:
 * both tables check what a key must not get wrong, or seed it per process.
 *
 * @module
 */
export class TokenFingerprint {
  hi = 0;
  lo = 0;

  /**
   * Mixes `tokens[from, from + count)` in; false (the state unchanged) when one is not a u32
   * integer.
   */
  mix(tokens: ArrayLike<number>, from: number, count: number): boolean {
    let h1 = this.hi, h2 = this.lo;
    const end = from + count;
    for (let j = from; j < end; j++) {
      const v = tokens[j];
      if ((v >>> 0) !== v) return false; // not a u32 integer (NaN, fractions, out of range)
      h1 = Math.imul(h1 ^ v, 0x85ebca6b);
      h1 ^= h1 >>> 15;
      h2 = Math.imul(h2 + v, 0xc2b2ae35) ^ h1;
      h2 ^= h2 >>> 13;
    }
    this.hi = h1 >>> 0;
    this.lo = h2 >>> 0;
    return true;
  }
}
