/**
 * Tiny seeded PRNG for tests (mulberry32). Implements the raft `Rand` interface; the shared
 * simulation PRNG (shared/sim) can replace it.
 *
 * @module
 */

import type { Rand } from "../types.ts";

export class SeededRand implements Rand {
  private state: number;

  constructor(seed: number) {
    this.state = (seed >>> 0) ^ 0x9e3779b9;
  }

  /** Float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  nextInt(n: number): number {
    if (!(n > 0)) throw new RangeError(`nextInt(${n}): n must be positive`);
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.nextInt(items.length)];
  }

  /** A child generator with an independent stream (for deriving per-node randomness). */
  fork(): SeededRand {
    return new SeededRand(Math.floor(this.next() * 4294967296));
  }
}
