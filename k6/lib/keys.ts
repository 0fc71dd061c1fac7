/**
 * Key choice over the seeded ids, as in the load runner: uniform, Zipf(s)
 * and an 80/20 hot spot. Index 0 is the hottest key.
 *
 * @module
 */

/** Picks an index in [0, n). */
export type KeyPicker = () => number;

/** Every key equally likely. */
export function uniformKeys(n: number): KeyPicker {
  return () => Math.floor(Math.random() * n);
}

/** `hotProbability` of the picks go to the first `hotFraction` of the keys. */
export function hotSpotKeys(
  n: number,
  hotFraction = 0.2,
  hotProbability = 0.8,
): KeyPicker {
  const hot = Math.max(1, Math.round(n * hotFraction));
  return () =>
    hot >= n || Math.random() < hotProbability
      ? Math.floor(Math.random() * hot)
      : hot + Math.floor(Math.random() * (n - hot));
}

/** Zipf's law over n keys: rank k is picked with probability ∝ 1/k^s. */
export function zipfKeys(n: number, s = 1.0): KeyPicker {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += 1 / Math.pow(k + 1, s);
    cdf[k] = sum;
  }
  return () => {
    const u = Math.random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

/** Parses "uniform", "zipf[:s]" or "hot[:80/20]" (the KEYS env of the scripts). */
export function keyPicker(spec: string, n: number): KeyPicker {
  if (spec === "uniform") return uniformKeys(n);
  const zipf = /^zipf(?::(\d+(?:\.\d+)?))?$/.exec(spec);
  if (zipf !== null) {
    return zipfKeys(n, zipf[1] === undefined ? 1 : Number(zipf[1]));
  }
  const hot = /^hot(?::(\d+)\/(\d+))?$/.exec(spec);
  if (hot !== null) {
    return hotSpotKeys(
      n,
      Number(hot[2] ?? "20") / 100,
      Number(hot[1] ?? "80") / 100,
    );
  }
  throw new Error(`unknown key distribution ${spec}`);
}

/** One weighted choice of a request mix. */
export interface Weighted<T> {
  weight: number;
  value: T;
}

/** Picks one entry by weight. */
export function pickWeighted<T>(entries: Weighted<T>[]): T {
  const total = entries.reduce((s, e) => s + e.weight, 0);
  let u = Math.random() * total;
  for (const e of entries) {
    u -= e.weight;
    if (u < 0) return e.value;
  }
  return entries[entries.length - 1]!.value;
}
