/**
 * Learned block chains: what the engines' `BlockStored` events teach about their hash chains.
 * An event carries the parent's hash, the blocks' token ids and the blocks' hashes, so for each
 * block it says "after parent P, these tokens are block H". Kept here as
 * `key(model, P, tokens) → H`, a router follows a prompt's chain block by block without
 * computing a single SHA-256, and without needing the engines' hash seed at all.
 *
 * The table is a bounded cache: 4-way sets of one 64-byte cache line, two candidate sets per key
 * (a link goes where a way is free; when both are full, the least recently reported or followed
 * link of the first is replaced), so a chain may be missing a link: the router then hashes the
 * prompt itself. At twice the indexed blocks, links are almost never lost. A key whose blocks disagree (engines hashing with different seeds, or a cache salt the
 * event did not show) is marked ambiguous and never followed. Keys are 64-bit fingerprints of
 * (model, parent, tokens) under a per-process random seed: two different contents share a key
 * with probability ~2^-64 per lookup, and an outsider cannot aim for a collision.
 *
 * @module
 */

import { TokenFingerprint } from "./fingerprint.ts";

/** The parent of a chain's first block (events say `null`, prompts start there). */
export const ROOT_HI = 0x9e3779b9, ROOT_LO = 0x7f4a7c15;

const WAYS = 4;
/** Words per entry: key hi, key lo, child hi, child lo. */
const ROW = 4;
/** The child of an ambiguous key. */
const AMBIGUOUS = 0xffffffff;

/** Counters of a {@link ChainTable}. */
export interface ChainStats {
  entries: number;
  bytes: number;
  learned: number;
  replaced: number;
  hits: number;
  misses: number;
  ambiguous: number;
}

/** See the module documentation. */
export class ChainTable {
  readonly capacity: number;
  /** Child of the last successful {@link lookup}. */
  hi = 0;
  lo = 0;
  learned = 0;
  /** Links pushed out by new ones (both of a key's sets full). */
  replaced = 0;
  hits = 0;
  misses = 0;
  ambiguous = 0;
  #sets: number;
  #rows: Uint32Array;
  /** Per set, the order of use of its ways (2 bits each, most recent last). */
  #age: Uint8Array;
  #seedHi: number;
  #seedLo: number;
  #models = new Map<string, number>();
  #fp = new TokenFingerprint();
  /** What the prefetching reads saw (kept so that they are not optimised away). */
  #sink = 0;

  constructor(entries: number, seed: Uint32Array = crypto.getRandomValues(new Uint32Array(2))) {
    let sets = 1;
    while (sets * WAYS < entries) sets *= 2;
    this.#sets = sets;
    this.capacity = sets * WAYS;
    this.#rows = new Uint32Array(this.capacity * ROW);
    this.#age = new Uint8Array(sets).fill(0b11100100); // ways 0,1,2,3 from oldest to newest
    this.#seedHi = seed[0];
    this.#seedLo = seed[1];
  }

  /** A small id per model (models share the table). */
  modelId(model: string): number {
    let id = this.#models.get(model);
    if (id === undefined) {
      id = this.#models.size + 1;
      this.#models.set(model, id);
    }
    return id;
  }

  stats(): ChainStats {
    return {
      entries: this.capacity,
      bytes: this.#rows.byteLength + this.#age.byteLength,
      learned: this.learned,
      replaced: this.replaced,
      hits: this.hits,
      misses: this.misses,
      ambiguous: this.ambiguous,
    };
  }

  /**
   * The key of block `tokens[from, from + count)` after parent (hi, lo) in model `modelId`, into
   * {@link keyHi}/{@link keyLo}; false when a token id is not a u32 (not learnable).
   */
  key(
    modelId: number,
    parentHi: number,
    parentLo: number,
    tokens: ArrayLike<number>,
    from: number,
    count: number,
  ): boolean {
    const fp = this.#fp;
    const h1 = Math.imul(this.#seedHi ^ modelId, 0x85ebca6b) ^ parentHi;
    const h2 = Math.imul(this.#seedLo + modelId, 0xc2b2ae35) ^ parentLo;
    fp.hi = Math.imul(h1 ^ (h1 >>> 16), 0x7feb352d);
    fp.lo = Math.imul(h2 ^ (h2 >>> 15), 0x846ca68b);
    if (!fp.mix(tokens, from, count)) return false;
    const f1 = Math.imul(fp.hi ^ (fp.hi >>> 16), 0x21f0aaad) ^ fp.lo;
    this.keyHi = (f1 ^ (f1 >>> 15)) >>> 0;
    this.keyLo = (fp.lo ^ (fp.lo >>> 16)) >>> 0;
    return true;
  }

  keyHi = 0;
  keyLo = 0;

  #touchWay(set: number, way: number): void {
    // Move `way` to the newest position of the set's order.
    const order = this.#age[set];
    let out = 0, k = 0;
    for (let i = 0; i < WAYS; i++) {
      const w = (order >>> (2 * i)) & 3;
      if (w !== way) out |= w << (2 * k++);
    }
    this.#age[set] = out | (way << 6);
  }

  /** The two sets a key may live in (two choices: a set that is full rarely loses a link). */
  #set1(keyLo: number): number {
    return keyLo & (this.#sets - 1);
  }

  #set2(keyHi: number): number {
    return (Math.imul(keyHi, 0x9e3779b1) >>> 7) & (this.#sets - 1);
  }

  /** The way of `set` holding the key, or -1. */
  #find(set: number, keyHi: number, keyLo: number): number {
    const r = this.#rows;
    const base = set * WAYS * ROW;
    for (let w = 0; w < WAYS; w++) {
      const o = base + w * ROW;
      if (r[o + 1] === keyLo && r[o] === keyHi && (r[o + 2] | r[o + 3]) !== 0) return w;
    }
    return -1;
  }

  #free(set: number): number {
    const r = this.#rows;
    const base = set * WAYS * ROW;
    for (let w = 0; w < WAYS; w++) {
      if ((r[base + w * ROW + 2] | r[base + w * ROW + 3]) === 0) return w;
    }
    return -1;
  }

  /** Moves one link of full `set` to its other set if that has a free way; the freed way or -1. */
  #relocate(set: number): number {
    const r = this.#rows;
    for (let w = 0; w < WAYS; w++) {
      const o = (set * WAYS + w) * ROW;
      const a = this.#set1(r[o + 1]);
      const alt = a === set ? this.#set2(r[o]) : a;
      if (alt === set) continue;
      const f = this.#free(alt);
      if (f < 0) continue;
      const to = (alt * WAYS + f) * ROW;
      r.copyWithin(to, o, o + ROW);
      r.fill(0, o, o + ROW);
      this.#touchWay(alt, f);
      return w;
    }
    return -1;
  }

  /** Records that after the keyed parent and tokens comes block (hi, lo). */
  learn(keyHi: number, keyLo: number, hi: number, lo: number): void {
    if ((hi | lo) === 0) return; // would read as an empty way
    const r = this.#rows;
    const s1 = this.#set1(keyLo), s2 = this.#set2(keyHi);
    let set = s1, w = this.#find(s1, keyHi, keyLo);
    if (w < 0 && s2 !== s1) {
      set = s2;
      w = this.#find(s2, keyHi, keyLo);
    }
    if (w >= 0) {
      const o = (set * WAYS + w) * ROW;
      if (r[o + 2] !== hi || r[o + 3] !== lo) {
        if (!(r[o + 2] === AMBIGUOUS && r[o + 3] === AMBIGUOUS)) this.ambiguous++;
        r[o + 2] = AMBIGUOUS;
        r[o + 3] = AMBIGUOUS;
      }
      this.#touchWay(set, w);
      return;
    }
    // A free way in either set, else the least recent way of the first.
    set = s1;
    w = this.#free(s1);
    if (w < 0) {
      const f2 = this.#free(s2);
      if (f2 >= 0) {
        set = s2;
        w = f2;
      } else {
        // Both full: move a link of either set to its other set if that has room (one cuckoo
        // step), else replace the least recent link of the first.
        w = this.#relocate(s1);
        if (w < 0 && s2 !== s1) {
          w = this.#relocate(s2);
          if (w >= 0) set = s2;
        }
        if (w < 0) {
          w = this.#age[s1] & 3;
          this.replaced++;
        }
      }
    }
    const o = (set * WAYS + w) * ROW;
    r[o] = keyHi;
    r[o + 1] = keyLo;
    r[o + 2] = hi;
    r[o + 3] = lo;
    this.learned++;
    this.#touchWay(set, w);
  }

  /** Follows a key: true with the child in {@link hi}/{@link lo}. */
  lookup(keyHi: number, keyLo: number): boolean {
    let set = this.#set1(keyLo);
    const s2 = this.#set2(keyHi);
    // Read the second set's line now: its miss overlaps with the first's.
    this.#sink ^= this.#rows[s2 * WAYS * ROW];
    let w = this.#find(set, keyHi, keyLo);
    if (w < 0) {
      set = s2;
      w = this.#find(set, keyHi, keyLo);
    }
    if (w >= 0) {
      const r = this.#rows;
      const o = (set * WAYS + w) * ROW;
      if (!(r[o + 2] === AMBIGUOUS && r[o + 3] === AMBIGUOUS)) {
        this.hi = r[o + 2];
        this.lo = r[o + 3];
        this.hits++;
        // Links that prompts follow stay longer.
        if ((this.#age[set] >>> 6) !== w) this.#touchWay(set, w);
        return true;
      }
    }
    this.misses++;
    return false;
  }
}
