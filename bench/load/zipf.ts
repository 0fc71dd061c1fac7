/**
 * Key choice over a dataset of `n` keys: uniform, Zipf(s) and an "80/20"
 * hot-spot. Index 0 is the hottest key; shuffle the dataset first if the hot
 * keys should not be the first ones created.
 *
 * @module
 */
import type { Prng } from "./prng.ts";

/** Largest dataset a picker accepts (the Zipf table costs 8 bytes per key). */
export const MAX_KEYS = 10_000_000;

/** Picks an index in [0, size). */
export interface KeyPicker {
  readonly size: number;
  /** Human-readable description, e.g. "zipf(s=1)". */
  readonly label: string;
  pick(rng: Prng): number;
}

function checkSize(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_KEYS) {
    throw new Error(
      `key count must be an integer in [1, ${MAX_KEYS}], got ${n}`,
    );
  }
}

/** Every key equally likely. */
export function uniformKeys(n: number): KeyPicker {
  checkSize(n);
  return { size: n, label: "uniform", pick: (rng) => rng.int(n) };
}

/**
 * Zipf's law: key of rank k (1-based) is picked with probability proportional
 * to 1/k^s. With n = 10,000 and s = 1 the hottest 20% of keys get about 84% of
 * the picks.
 *
 * @example
 * ```ts
 * import { Prng } from "./prng.ts";
 * import { zipfKeys } from "./zipf.ts";
 * const keys = zipfKeys(10_000, 1.0);
 * const index = keys.pick(new Prng(1)); // usually a small index
 * ```
 */
export function zipfKeys(n: number, s = 1.0): KeyPicker {
  checkSize(n);
  if (!(s >= 0) || !Number.isFinite(s)) {
    throw new Error(`zipf exponent must be >= 0, got ${s}`);
  }
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / Math.pow(k + 1, s);
    cdf[k] = sum;
  }
  for (let k = 0; k < n; k++) cdf[k] = cdf[k]! / sum;
  cdf[n - 1] = 1;
  return {
    size: n,
    label: `zipf(s=${s})`,
    pick(rng) {
      const u = rng.next();
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (cdf[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      return lo;
    },
  };
}

/**
 * A hot set of `hotFraction` of the keys receives `hotProbability` of the
 * picks, uniformly within the hot and the cold set ("80/20" is 0.2 / 0.8).
 */
export function hotSpotKeys(
  n: number,
  hotFraction = 0.2,
  hotProbability = 0.8,
): KeyPicker {
  checkSize(n);
  if (!(hotFraction > 0 && hotFraction <= 1)) {
    throw new Error(`bad hot fraction ${hotFraction}`);
  }
  if (!(hotProbability >= 0 && hotProbability <= 1)) {
    throw new Error(`bad hot probability ${hotProbability}`);
  }
  const hot = Math.max(1, Math.round(n * hotFraction));
  const cold = n - hot;
  return {
    size: n,
    label: `hotspot(${Math.round(hotProbability * 100)}/${Math.round(hotFraction * 100)})`,
    pick(rng) {
      if (cold === 0 || rng.next() < hotProbability) return rng.int(hot);
      return hot + rng.int(cold);
    },
  };
}

/**
 * Parses a distribution name: "uniform", "zipf" / "zipf:1.1", or "hot:80/20"
 * (percent of picks / percent of keys).
 */
export function parseKeyPicker(spec: string, n: number): KeyPicker {
  if (spec === "uniform") return uniformKeys(n);
  const zipf = /^zipf(?::(\d+(?:\.\d+)?))?$/.exec(spec);
  if (zipf !== null) {
    return zipfKeys(n, zipf[1] === undefined ? 1 : Number(zipf[1]));
  }
  const hot = /^hot(?::(\d+)\/(\d+))?$/.exec(spec);
  if (hot !== null) {
    const picks = hot[1] === undefined ? 80 : Number(hot[1]);
    const keys = hot[2] === undefined ? 20 : Number(hot[2]);
    return hotSpotKeys(n, keys / 100, picks / 100);
  }
  throw new Error(
    `unknown key distribution "${spec}" (uniform, zipf[:s], hot[:80/20])`,
  );
}
