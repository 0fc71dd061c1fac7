/**
 * Seeded pseudo-random numbers for deterministic simulation: xoshiro128** (Blackman and
 * Vigna), seeded through splitmix32 so that any 32-bit seed (0 included) gives a good state.
 *
 * Everything random in a simulation comes from one {@link Prng} built from one seed, so a
 * failing seed replays the same run. Not for cryptography.
 *
 * @module
 */

/** The minimal randomness interface the simulation kit and the Raft module consume. */
export interface Rand {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n); `n` a positive integer. */
  nextInt(n: number): number;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A seed from a string (FNV-1a), for naming runs: `new Prng(seedFromString("vopr-7"))`. */
export function seedFromString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** xoshiro128** generator with helpers. Deterministic for a given seed. */
export class Prng implements Rand {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  /** The seed this generator was created from (for logging a failing run). */
  readonly seed: number;

  /**
   * @param seed any number; its low 32 bits (and, for large integers, the high bits) seed the
   *   state through splitmix32.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Prng seed must be finite, got ${seed}`);
    this.seed = seed;
    const st = { s: (seed >>> 0) ^ Math.floor(seed / 4294967296) };
    this.#a = splitmix32(st);
    this.#b = splitmix32(st);
    this.#c = splitmix32(st);
    this.#d = splitmix32(st);
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#d = 1;
  }

  /** A generator with the raw xoshiro128** state (for test vectors). Not all zero. */
  static fromState(a: number, b: number, c: number, d: number): Prng {
    const p = new Prng(0);
    p.#a = a >>> 0;
    p.#b = b >>> 0;
    p.#c = c >>> 0;
    p.#d = d >>> 0;
    if ((p.#a | p.#b | p.#c | p.#d) === 0) {
      throw new RangeError("xoshiro state may not be all zero");
    }
    return p;
  }

  /** The current state, to save and later restore with {@link Prng.fromState}. */
  state(): [number, number, number, number] {
    return [this.#a, this.#b, this.#c, this.#d];
  }

  /** The next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    const x = Math.imul(b, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = b << 9;
    let c2 = c ^ a;
    let d2 = d ^ b;
    const b2 = b ^ c2;
    const a2 = a ^ d2;
    c2 ^= t;
    d2 = (d2 << 11) | (d2 >>> 21);
    this.#a = a2 >>> 0;
    this.#b = b2 >>> 0;
    this.#c = c2 >>> 0;
    this.#d = d2 >>> 0;
    return result;
  }

  /** A float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** An unbiased integer in [0, n) for a positive integer n up to 2^53. */
  nextInt(n: number): number {
    if (!(n > 0) || !Number.isInteger(n) || n > Number.MAX_SAFE_INTEGER + 1) {
      throw new RangeError(`nextInt(${n}): n must be a positive integer`);
    }
    if (n <= 4294967296) {
      // Rejection sampling on 32 bits (Lemire's bound check without multiplication tricks).
      const limit = 4294967296 - (4294967296 % n);
      let r: number;
      do r = this.nextU32(); while (r >= limit);
      return r % n;
    }
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max] (inclusive). */
  intBetween(min: number, max: number): number {
    if (!(max >= min)) throw new RangeError(`intBetween(${min}, ${max}): max < min`);
    return min + this.nextInt(max - min + 1);
  }

  /** A float in [min, max). */
  floatBetween(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  /** True with probability `p` (0 never, 1 always). */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty array");
    return items[this.nextInt(items.length)];
  }

  /** An element chosen with probability proportional to its weight. */
  weighted<T>(items: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of items) total += Math.max(0, w);
    if (!(total > 0)) throw new RangeError("weighted: no positive weight");
    let r = this.next() * total;
    for (const [item, w] of items) {
      if (w <= 0) continue;
      if (r < w) return item;
      r -= w;
    }
    return items[items.length - 1][0];
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** `count` random bytes. */
  bytes(count: number): Uint8Array {
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i += 4) {
      const r = this.nextU32();
      out[i] = r;
      if (i + 1 < count) out[i + 1] = r >>> 8;
      if (i + 2 < count) out[i + 2] = r >>> 16;
      if (i + 3 < count) out[i + 3] = r >>> 24;
    }
    return out;
  }

  /**
   * An independent generator derived from this one (per node, per component), so that
   * adding draws in one component does not shift the stream of another.
   */
  fork(): Prng {
    return new Prng(this.nextU32() * 4294967296 + this.nextU32());
  }
}
