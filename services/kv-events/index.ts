/**
 * The block index: for one model, which pods hold which prefix blocks, and in which tier.
 *
 * Layout: an open-addressing table (linear probing, backward-shift deletion, no tombstones) in
 * typed arrays. A slot is the block's 64-bit hash (two u32) and two pod bitmasks of `words` u32
 * each: pods holding it in GPU memory, and pods holding it offloaded (CPU, disk: any other
 * medium). With up to 32 pods a slot is 16 bytes; the table doubles past 3/4 full (so it is 3/8
 * to 3/4 full while it grows: 21 to 43 bytes a block) and halves under 1/8; nothing per block
 * lives on the JS heap.
 *
 * Pods are small integers (slots in the masks) handed out by {@link PodTable}.
 *
 * @module
 */

/** The tier of a copy of a block: 0 = GPU (the engine's own cache), 1 = offloaded. */
export type Tier = 0 | 1;

/** The tier of an event's `medium` (absent, or "GPU" in any case, is the GPU). */
export function tierOf(medium: string | null): Tier {
  return medium === null || medium.toUpperCase() === "GPU" ? 0 : 1;
}

const MIN_CAPACITY = 1024;

/** Mixes a 64-bit hash into a slot number (hashes from HTTP clients need not be random). */
function mix(hi: number, lo: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 13)) >>> 0;
}

/** One model's block table. */
export class BlockIndex {
  /** u32 words per pod mask. */
  readonly words: number;
  #cap = 0;
  #mask = 0;
  #size = 0;
  #hi = new Uint32Array(0);
  #lo = new Uint32Array(0);
  #gpu = new Uint32Array(0);
  #off = new Uint32Array(0);

  constructor(maxPods: number, capacity = MIN_CAPACITY) {
    if (!Number.isSafeInteger(maxPods) || maxPods < 1) throw new RangeError(`max pods ${maxPods}`);
    this.words = Math.ceil(maxPods / 32);
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.#alloc(cap);
  }

  /** Blocks held by at least one pod. */
  get size(): number {
    return this.#size;
  }

  /** Bytes of the table's arrays. */
  get bytes(): number {
    return this.#hi.byteLength + this.#lo.byteLength + this.#gpu.byteLength +
      this.#off.byteLength;
  }

  #alloc(cap: number): void {
    this.#cap = cap;
    this.#mask = cap - 1;
    this.#hi = new Uint32Array(cap);
    this.#lo = new Uint32Array(cap);
    this.#gpu = new Uint32Array(cap * this.words);
    this.#off = new Uint32Array(cap * this.words);
  }

  #occupied(slot: number): boolean {
    const w = this.words;
    for (let i = slot * w; i < slot * w + w; i++) {
      if ((this.#gpu[i] | this.#off[i]) !== 0) return true;
    }
    return false;
  }

  /** The slot holding (hi, lo), or -1. */
  find(hi: number, lo: number): number {
    const hs = this.#hi, ls = this.#lo, m = this.#mask;
    let s = mix(hi, lo) & m;
    if (this.words === 1) {
      const g = this.#gpu, o = this.#off;
      while ((g[s] | o[s]) !== 0) {
        if (ls[s] === lo && hs[s] === hi) return s;
        s = (s + 1) & m;
      }
      return -1;
    }
    while (this.#occupied(s)) {
      if (ls[s] === lo && hs[s] === hi) return s;
      s = (s + 1) & m;
    }
    return -1;
  }

  /** Marks `pod` as holding the block in `tier`. Returns true when the pod did not have it. */
  add(hi: number, lo: number, pod: number, tier: Tier): boolean {
    if ((this.#size + 1) * 4 > this.#cap * 3) this.#grow();
    const hs = this.#hi, ls = this.#lo, m = this.#mask;
    let s = mix(hi, lo) & m;
    while (this.#occupied(s)) {
      if (ls[s] === lo && hs[s] === hi) break;
      s = (s + 1) & m;
    }
    if (!this.#occupied(s)) {
      hs[s] = hi;
      ls[s] = lo;
      this.#size++;
    }
    const i = s * this.words + (pod >>> 5);
    const bit = 1 << (pod & 31);
    const had = ((this.#gpu[i] | this.#off[i]) & bit) !== 0;
    if (tier === 0) this.#gpu[i] |= bit;
    else this.#off[i] |= bit;
    return !had;
  }

  /**
   * Unmarks `pod` for the block in `tier` (null: both). Returns true when the pod no longer holds
   * it in any tier but did before.
   */
  remove(hi: number, lo: number, pod: number, tier: Tier | null): boolean {
    const s = this.find(hi, lo);
    if (s < 0) return false;
    const i = s * this.words + (pod >>> 5);
    const bit = 1 << (pod & 31);
    const had = ((this.#gpu[i] | this.#off[i]) & bit) !== 0;
    if (tier !== 1) this.#gpu[i] &= ~bit;
    if (tier !== 0) this.#off[i] &= ~bit;
    const gone = had && ((this.#gpu[i] | this.#off[i]) & bit) === 0;
    if (!this.#occupied(s)) {
      this.#deleteAt(s);
      if (this.#cap > MIN_CAPACITY && this.#size * 8 < this.#cap) this.#rehash(this.#cap / 2);
    }
    return gone;
  }

  /** Pod masks of slot `s` into `gpu` and `off` (length `words`). */
  masks(s: number, gpu: Uint32Array, off: Uint32Array): void {
    const w = this.words;
    for (let j = 0; j < w; j++) {
      gpu[j] = this.#gpu[s * w + j];
      off[j] = this.#off[s * w + j];
    }
  }

  /**
   * The GPU masks, `words` per slot, for read-only scans (a router's inner loop). The array is
   * replaced when the table resizes: take it again after any change.
   */
  get gpuMasks(): Uint32Array {
    return this.#gpu;
  }

  /** The offloaded masks, as {@link gpuMasks}. */
  get offMasks(): Uint32Array {
    return this.#off;
  }

  /** Drops `pod` from every block (a pod gone, restarted or cleared). Returns blocks it held. */
  dropPod(pod: number): number {
    const w = this.words;
    const j = pod >>> 5;
    const bit = 1 << (pod & 31);
    let dropped = 0;
    // Clear the bit everywhere first, then compact: deleting while scanning would move entries
    // across the scan position.
    for (let s = 0; s < this.#cap; s++) {
      const i = s * w + j;
      if (((this.#gpu[i] | this.#off[i]) & bit) !== 0) {
        this.#gpu[i] &= ~bit;
        this.#off[i] &= ~bit;
        dropped++;
      }
    }
    if (dropped > 0) this.#rehash(this.#cap, true);
    return dropped;
  }

  /** Backward-shift deletion of slot `s` (linear probing without tombstones). */
  #deleteAt(s: number): void {
    const w = this.words, m = this.#mask;
    const hs = this.#hi, ls = this.#lo, g = this.#gpu, o = this.#off;
    let hole = s;
    let j = s;
    for (;;) {
      j = (j + 1) & m;
      if (!this.#occupied(j)) break;
      const home = mix(hs[j], ls[j]) & m;
      // Move j into the hole when its home is not cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (between) continue;
      hs[hole] = hs[j];
      ls[hole] = ls[j];
      for (let k = 0; k < w; k++) {
        g[hole * w + k] = g[j * w + k];
        o[hole * w + k] = o[j * w + k];
      }
      hole = j;
    }
    for (let k = 0; k < w; k++) {
      g[hole * w + k] = 0;
      o[hole * w + k] = 0;
    }
    this.#size--;
  }

  #grow(): void {
    this.#rehash(this.#cap * 2);
  }

  /**
   * Rebuilds the table at `cap` slots, keeping occupied entries only; with `fit`, at the smallest
   * size that keeps it under 3/4 full (after a pod's blocks went at once).
   */
  #rehash(cap: number, fit = false): void {
    const w = this.words;
    const hs = this.#hi, ls = this.#lo, g = this.#gpu, o = this.#off, old = this.#cap;
    if (fit) {
      let live = 0;
      for (let s = 0; s < old; s++) if (this.#occupiedIn(g, o, s)) live++;
      cap = MIN_CAPACITY;
      while ((live + 1) * 4 > cap * 3) cap *= 2;
    }
    this.#alloc(cap);
    this.#size = 0;
    const m = this.#mask;
    for (let s = 0; s < old; s++) {
      if (!this.#occupiedIn(g, o, s)) continue;
      let t = mix(hs[s], ls[s]) & m;
      while (this.#occupied(t)) t = (t + 1) & m;
      this.#hi[t] = hs[s];
      this.#lo[t] = ls[s];
      for (let k = 0; k < w; k++) {
        this.#gpu[t * w + k] = g[s * w + k];
        this.#off[t * w + k] = o[s * w + k];
      }
      this.#size++;
    }
  }

  #occupiedIn(g: Uint32Array, o: Uint32Array, s: number): boolean {
    const w = this.words;
    for (let i = s * w; i < s * w + w; i++) if ((g[i] | o[i]) !== 0) return true;
    return false;
  }
}
