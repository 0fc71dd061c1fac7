/**
 * An HDR-style latency histogram: log-linear buckets over integer
 * microseconds, exact below 2^subBucketBits µs and within
 * 1/2^(subBucketBits-1) relative width above, so percentiles are accurate
 * without keeping every sample. Memory is fixed (about 14 KB at 7 bits).
 *
 * @module
 */

/** Largest recordable value in microseconds (about 35 minutes); larger values are clamped. */
export const MAX_VALUE_US = 0x7fff_ffff;

/** One non-empty bucket of a histogram, in milliseconds. */
export interface HistogramBucket {
  lowerMs: number;
  upperMs: number;
  count: number;
}

/** A compact, JSON-friendly form: bucket index and count pairs. */
export interface HistogramJson {
  subBucketBits: number;
  count: number;
  minMs: number;
  maxMs: number;
  sumMs: number;
  /** Flattened `[index, count, index, count, ...]` of non-empty buckets. */
  buckets: number[];
}

/**
 * Latency recorder with percentile queries.
 *
 * @example
 * ```ts
 * import { LatencyHistogram } from "./histogram.ts";
 * const h = new LatencyHistogram();
 * for (const ms of [1.2, 3.4, 5.6]) h.record(ms);
 * h.percentile(50); // ≈ 3.4
 * ```
 */
export class LatencyHistogram {
  readonly subBucketBits: number;
  readonly #sub: number;
  readonly #half: number;
  readonly #counts: Float64Array;
  #count = 0;
  #sumUs = 0;
  #minUs = Infinity;
  #maxUs = 0;

  constructor(subBucketBits = 7) {
    if (
      !Number.isInteger(subBucketBits) || subBucketBits < 2 ||
      subBucketBits > 12
    ) {
      throw new Error(`subBucketBits must be in [2, 12], got ${subBucketBits}`);
    }
    this.subBucketBits = subBucketBits;
    this.#sub = 1 << subBucketBits;
    this.#half = this.#sub >> 1;
    const maxShift = 31 - subBucketBits;
    this.#counts = new Float64Array(this.#sub + maxShift * this.#half);
  }

  #index(us: number): number {
    if (us < this.#sub) return us;
    const msb = 31 - Math.clz32(us);
    const shift = msb - (this.subBucketBits - 1);
    return this.#sub + (shift - 1) * this.#half + ((us >>> shift) - this.#half);
  }

  #bounds(index: number): [number, number] {
    if (index < this.#sub) return [index, index + 1];
    const j = index - this.#sub;
    const shift = Math.floor(j / this.#half) + 1;
    const lower = (this.#half + (j % this.#half)) * 2 ** shift;
    return [lower, lower + 2 ** shift];
  }

  /** Records one latency in milliseconds (negative or NaN values count as 0). */
  record(ms: number): void {
    let us = Math.round(ms * 1000);
    if (!(us > 0)) us = 0;
    if (us > MAX_VALUE_US) us = MAX_VALUE_US;
    this.#counts[this.#index(us)]! += 1;
    this.#count++;
    this.#sumUs += us;
    if (us < this.#minUs) this.#minUs = us;
    if (us > this.#maxUs) this.#maxUs = us;
  }

  /** Number of recorded values. */
  get count(): number {
    return this.#count;
  }
  /** Smallest value in ms (0 when empty). */
  get min(): number {
    return this.#count === 0 ? 0 : this.#minUs / 1000;
  }
  /** Largest value in ms (0 when empty). */
  get max(): number {
    return this.#maxUs / 1000;
  }
  /** Mean in ms (0 when empty). */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sumUs / this.#count / 1000;
  }
  /** Sum of all values in ms. */
  get sum(): number {
    return this.#sumUs / 1000;
  }

  /**
   * The value at percentile `p` (0-100, nearest rank) in ms: the midpoint of
   * the bucket holding that rank, clamped to the recorded min and max.
   */
  percentile(p: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(
      1,
      Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.#count),
    );
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) {
        const [lower, upper] = this.#bounds(i);
        const mid = lower + (upper - 1 - lower) / 2;
        return Math.min(this.#maxUs, Math.max(this.#minUs, mid)) / 1000;
      }
    }
    return this.max;
  }

  /** Adds every value of `other` (same precision) to this histogram. */
  merge(other: LatencyHistogram): void {
    if (other.subBucketBits !== this.subBucketBits) {
      throw new Error("precision mismatch");
    }
    const counts = other.#counts;
    for (let i = 0; i < counts.length; i++) this.#counts[i]! += counts[i]!;
    this.#count += other.#count;
    this.#sumUs += other.#sumUs;
    if (other.#count > 0) {
      this.#minUs = Math.min(this.#minUs, other.#minUs);
      this.#maxUs = Math.max(this.#maxUs, other.#maxUs);
    }
  }

  /** Non-empty buckets in ascending order. */
  buckets(): HistogramBucket[] {
    const out: HistogramBucket[] = [];
    for (let i = 0; i < this.#counts.length; i++) {
      const count = this.#counts[i]!;
      if (count === 0) continue;
      const [lower, upper] = this.#bounds(i);
      out.push({ lowerMs: lower / 1000, upperMs: upper / 1000, count });
    }
    return out;
  }

  /** A compact snapshot for JSON output. */
  toJSON(): HistogramJson {
    const buckets: number[] = [];
    for (let i = 0; i < this.#counts.length; i++) {
      if (this.#counts[i]! > 0) buckets.push(i, this.#counts[i]!);
    }
    return {
      subBucketBits: this.subBucketBits,
      count: this.#count,
      minMs: this.min,
      maxMs: this.max,
      sumMs: this.sum,
      buckets,
    };
  }

  /** Rebuilds a histogram from {@linkcode LatencyHistogram.toJSON} output. */
  static fromJSON(json: HistogramJson): LatencyHistogram {
    const h = new LatencyHistogram(json.subBucketBits);
    for (let i = 0; i + 1 < json.buckets.length; i += 2) {
      const index = json.buckets[i]!;
      if (index < 0 || index >= h.#counts.length) {
        throw new Error(`bad bucket index ${index}`);
      }
      h.#counts[index] = json.buckets[i + 1]!;
    }
    h.#count = json.count;
    h.#sumUs = Math.round(json.sumMs * 1000);
    h.#minUs = json.count === 0 ? Infinity : Math.round(json.minMs * 1000);
    h.#maxUs = Math.round(json.maxMs * 1000);
    return h;
  }
}
