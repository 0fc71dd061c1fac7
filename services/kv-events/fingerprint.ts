/**
 * A running 64-bit fingerprint of token ids: the key of the learned chains (chain.ts), which seed
 * it per process. Fast, not cryptographic.
 *
 * Each call mixes its tokens into four independent 64-bit lanes (token `k` of the call into lane
 * `k % 4`, two u32 words each, a multiply-xorshift step per word), then folds the lanes back into
 * the 64-bit state. The lanes do not wait for one another, so the processor runs their
 * multiplications side by side (a single chain waits ~7 cycles per token). Every step is a
 * bijection of a lane for a given token, different tokens give different lane states, and the
 * fold is injective in each lane given the others: a prompt differing in one token always
 * differs in its fingerprint.
 *
 * @module
 */
export class TokenFingerprint {
  hi = 0;
  lo = 0;

  /**
   * Mixes `tokens[from, from + count)` in. Only typed u32 arrays: every element is a token id as
   * it is (no check per token), and the loads stay of one kind (callers copy a prompt's ids in
   * once, checking them; see {@link toU32}).
   */
  mix(tokens: Uint32Array, from: number, count: number): void {
    const hi = this.hi, lo = this.lo;
    let a0 = hi, b0 = lo;
    let a1 = hi ^ 0x243f6a88, b1 = (lo + 0x85a308d3) | 0;
    let a2 = hi ^ 0x13198a2e, b2 = (lo + 0x03707344) | 0;
    let a3 = hi ^ 0xa4093822, b3 = (lo + 0x299f31d0) | 0;
    const end = from + count;
    let j = from;
    for (; j + 4 <= end; j += 4) {
      const v0 = tokens[j], v1 = tokens[j + 1], v2 = tokens[j + 2], v3 = tokens[j + 3];
      a0 = Math.imul(a0 ^ v0, 0x85ebca6b);
      a1 = Math.imul(a1 ^ v1, 0x85ebca6b);
      a2 = Math.imul(a2 ^ v2, 0x85ebca6b);
      a3 = Math.imul(a3 ^ v3, 0x85ebca6b);
      a0 ^= a0 >>> 15;
      a1 ^= a1 >>> 15;
      a2 ^= a2 >>> 15;
      a3 ^= a3 >>> 15;
      b0 = Math.imul(b0 + v0, 0xc2b2ae35) ^ a0;
      b1 = Math.imul(b1 + v1, 0xc2b2ae35) ^ a1;
      b2 = Math.imul(b2 + v2, 0xc2b2ae35) ^ a2;
      b3 = Math.imul(b3 + v3, 0xc2b2ae35) ^ a3;
      b0 ^= b0 >>> 13;
      b1 ^= b1 >>> 13;
      b2 ^= b2 >>> 13;
      b3 ^= b3 >>> 13;
    }
    // The last 0-3 tokens, into lanes 0, 1, 2.
    for (let lane = 0; j < end; j++, lane++) {
      const v = tokens[j];
      if (lane === 0) {
        a0 = Math.imul(a0 ^ v, 0x85ebca6b);
        a0 ^= a0 >>> 15;
        b0 = Math.imul(b0 + v, 0xc2b2ae35) ^ a0;
        b0 ^= b0 >>> 13;
      } else if (lane === 1) {
        a1 = Math.imul(a1 ^ v, 0x85ebca6b);
        a1 ^= a1 >>> 15;
        b1 = Math.imul(b1 + v, 0xc2b2ae35) ^ a1;
        b1 ^= b1 >>> 13;
      } else {
        a2 = Math.imul(a2 ^ v, 0x85ebca6b);
        a2 ^= a2 >>> 15;
        b2 = Math.imul(b2 + v, 0xc2b2ae35) ^ a2;
        b2 ^= b2 >>> 13;
      }
    }
    // Fold: h = f(f(f(a0) ^ a1) ^ a2) ^ a3 with f a bijection (odd multiply, xorshift), so h is
    // injective in each lane; the same for l over the b lanes.
    let h = a0, l = b0;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ a1;
    l = Math.imul(l ^ (l >>> 15), 0x846ca68b) ^ b1;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ a2;
    l = Math.imul(l ^ (l >>> 15), 0x846ca68b) ^ b2;
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) ^ a3;
    l = Math.imul(l ^ (l >>> 15), 0x846ca68b) ^ b3;
    this.hi = h >>> 0;
    this.lo = (l ^ (h >>> 7)) >>> 0;
  }
}

/**
 * `tokens` as a u32 array (itself when it is one, else copied into `scratch`, grown as needed),
 * and how many of them lead before the first that is not a u32 integer (-1, 1.5, NaN, 2^32...).
 */
export function toU32(
  tokens: ArrayLike<number>,
  scratch: { buf: Uint32Array; valid: number },
): Uint32Array {
  if (tokens instanceof Uint32Array) {
    scratch.valid = tokens.length;
    return tokens;
  }
  const n = tokens.length;
  if (scratch.buf.length < n) scratch.buf = new Uint32Array(Math.max(n, scratch.buf.length * 2));
  const b = scratch.buf;
  let i = 0;
  for (; i < n; i++) {
    const v = tokens[i];
    if ((v >>> 0) !== v) break;
    b[i] = v;
  }
  scratch.valid = i;
  return b;
}
