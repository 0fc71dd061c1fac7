/**
 * The block index: for one model, which pods hold which prefix blocks, and in which tier.
 *
 * Layout: 512 segments (by the top bits of the mixed hash), each an open-addressing table (linear
 * probing, backward-shift deletion, no tombstones) in one Uint32Array. A slot is the block's
 * 64-bit hash (two u32) and two pod bitmasks of `words` u32 each: pods holding it in GPU memory,
 * and pods holding it offloaded (CPU, disk: any other medium), side by side so that a lookup
 * touches one cache line. With up to 32 pods a slot is 16 bytes; a segment doubles past 3/4 full
 * (so it is 3/8 to 3/4 full while it grows: 21 to 43 bytes a block) and halves under 1/8; nothing
 * per block lives on the JS heap. Segments grow one at a time, so a resize moves 1/512 of the
 * blocks (about 2,000 at 1,000,000 blocks): the pause it costs an event stays short as the index
 * grows. An empty model's tables take 64 KB with up to 32 pods (8 slots a segment).
 *
 * Pods are small integers (bits in the masks) handed out by the cache map.
 *
 * @module
 */

/** The tier of a copy of a block: 0 = GPU (the engine's own cache), 1 = offloaded. */
export type Tier = 0 | 1;

/** The tier of an event's `medium` (absent, or "GPU" in any case, is the GPU). */
export function tierOf(medium: string | null): Tier {
  return medium === null || medium.toUpperCase() === "GPU" ? 0 : 1;
}

const SEGMENT_BITS = 9;
const SEGMENTS = 1 << SEGMENT_BITS;
const MIN_CAPACITY = 8;
/** A handle is `segment << SLOT_BITS | slot` (non-negative: 31 bits in all). */
const SLOT_BITS = 31 - SEGMENT_BITS;
const SLOT_MASK = (1 << SLOT_BITS) - 1;

/** A block that would take a segment past its largest size (the block is not added). */
export class SegmentFullError extends RangeError {
  constructor(slots: number) {
    super(`index segment full (${slots} slots)`);
    this.name = "SegmentFullError";
  }
}

/** Mixes a 64-bit hash (hashes from HTTP clients need not be random). */
function mix(hi: number, lo: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 13)) >>> 0;
}

class Segment {
  cap: number;
  mask: number;
  size = 0;
  /** Per slot: hi, lo, gpu mask words, offloaded mask words. */
  t: Uint32Array;

  constructor(cap: number, readonly stride: number) {
    this.cap = cap;
    this.mask = cap - 1;
    this.t = new Uint32Array(cap * stride);
  }
}

/** One model's block table. */
export class BlockIndex {
  /** u32 words per pod mask. */
  readonly words: number;
  readonly #stride: number;
  #segs: Segment[] = [];
  #size = 0;

  /**
   * Slots a segment may have at most (a power of two): handles keep a slot in SLOT_BITS, ~3M blocks
   * a segment (MAX_INDEX_BLOCKS keeps evenly spread hashes far below it; hashes sent to crowd one
   * segment meet it, and add() refuses their new blocks).
   */
  readonly #maxSlots: number;

  /** `maxSegmentSlots` lowers the largest segment (tests); it is at most 2^SLOT_BITS. */
  constructor(maxPods: number, maxSegmentSlots = 1 << SLOT_BITS) {
    if (!Number.isSafeInteger(maxPods) || maxPods < 1) throw new RangeError(`max pods ${maxPods}`);
    this.#maxSlots = Math.min(
      1 << SLOT_BITS,
      2 ** Math.floor(Math.log2(Math.max(MIN_CAPACITY, maxSegmentSlots))),
    );
    this.words = Math.ceil(maxPods / 32);
    this.#stride = 2 + 2 * this.words;
    for (let i = 0; i < SEGMENTS; i++) this.#segs.push(new Segment(MIN_CAPACITY, this.#stride));
  }

  /** Blocks held by at least one pod. */
  get size(): number {
    return this.#size;
  }

  /** Bytes of the tables. */
  get bytes(): number {
    let n = 0;
    for (const s of this.#segs) n += s.t.byteLength;
    return n;
  }

  #occupied(t: Uint32Array, o: number): boolean {
    const w = this.words;
    for (let i = o + 2; i < o + 2 + 2 * w; i++) if (t[i] !== 0) return true;
    return false;
  }

  /** The handle of (hi, lo), or -1. */
  find(hi: number, lo: number): number {
    const m = mix(hi, lo);
    const seg = m >>> (32 - SEGMENT_BITS);
    const sg = this.#segs[seg];
    const t = sg.t, st = this.#stride, mask = sg.mask;
    let s = m & mask;
    if (st === 4) {
      for (;;) {
        const o = s * 4;
        if ((t[o + 2] | t[o + 3]) === 0) return -1;
        if (t[o + 1] === lo && t[o] === hi) return (seg << SLOT_BITS) | s;
        s = (s + 1) & mask;
      }
    }
    for (;;) {
      const o = s * st;
      if (!this.#occupied(t, o)) return -1;
      if (t[o + 1] === lo && t[o] === hi) return (seg << SLOT_BITS) | s;
      s = (s + 1) & mask;
    }
  }

  /** Reads the home slot of (hi, lo) (a prefetch before {@link find}; the value is not needed). */
  touch(hi: number, lo: number): void {
    const m = mix(hi, lo);
    const sg = this.#segs[m >>> (32 - SEGMENT_BITS)];
    this.#sink ^= sg.t[(m & sg.mask) * this.#stride];
  }

  /** What {@link touch} read, kept so that the reads are not optimised away. */
  #sink = 0;

  /** GPU mask word `j` of the block at `handle` (from {@link find}). */
  gpuWord(handle: number, j: number): number {
    return this.#segs[handle >>> SLOT_BITS].t[(handle & SLOT_MASK) * this.#stride + 2 + j];
  }

  /** Offloaded mask word `j` of the block at `handle`. */
  offWord(handle: number, j: number): number {
    return this.#segs[handle >>> SLOT_BITS]
      .t[(handle & SLOT_MASK) * this.#stride + 2 + this.words + j];
  }

  /** Pod masks of the block at `handle` into `gpu` and `off` (length `words`). */
  masks(handle: number, gpu: Uint32Array, off: Uint32Array): void {
    for (let j = 0; j < this.words; j++) {
      gpu[j] = this.gpuWord(handle, j);
      off[j] = this.offWord(handle, j);
    }
  }

  /** Marks `pod` as holding the block in `tier`. Returns true when the pod did not have it. */
  add(hi: number, lo: number, pod: number, tier: Tier): boolean {
    const m = mix(hi, lo);
    let sg = this.#segs[m >>> (32 - SEGMENT_BITS)];
    if ((sg.size + 1) * 4 > sg.cap * 3) {
      // At its largest size a segment still takes pods of blocks it holds (a slot is free below
      // 3/4 full), only new blocks are refused.
      if (sg.cap * 2 <= this.#maxSlots) sg = this.#resize(m >>> (32 - SEGMENT_BITS), sg.cap * 2);
      else if (this.find(hi, lo) < 0) throw new SegmentFullError(this.#maxSlots);
    }
    const t = sg.t, st = this.#stride;
    let s = m & sg.mask;
    let o = s * st;
    while (this.#occupied(t, o)) {
      if (t[o + 1] === lo && t[o] === hi) break;
      s = (s + 1) & sg.mask;
      o = s * st;
    }
    if (!this.#occupied(t, o)) {
      t[o] = hi;
      t[o + 1] = lo;
      sg.size++;
      this.#size++;
    }
    const w = this.words;
    const gi = o + 2 + (pod >>> 5), oi = gi + w;
    const bit = 1 << (pod & 31);
    const had = ((t[gi] | t[oi]) & bit) !== 0;
    if (tier === 0) t[gi] |= bit;
    else t[oi] |= bit;
    return !had;
  }

  /**
   * Unmarks `pod` for the block in `tier` (null: both). Returns true when the pod no longer holds
   * it in any tier but did before.
   */
  remove(hi: number, lo: number, pod: number, tier: Tier | null): boolean {
    const h = this.find(hi, lo);
    if (h < 0) return false;
    const seg = h >>> SLOT_BITS;
    const sg = this.#segs[seg];
    const t = sg.t, w = this.words;
    const o = (h & SLOT_MASK) * this.#stride;
    const gi = o + 2 + (pod >>> 5), oi = gi + w;
    const bit = 1 << (pod & 31);
    const had = ((t[gi] | t[oi]) & bit) !== 0;
    if (tier !== 1) t[gi] &= ~bit;
    if (tier !== 0) t[oi] &= ~bit;
    const gone = had && ((t[gi] | t[oi]) & bit) === 0;
    if (!this.#occupied(t, o)) {
      this.#deleteAt(sg, h & SLOT_MASK);
      if (sg.cap > MIN_CAPACITY && sg.size * 8 < sg.cap) this.#resize(seg, sg.cap / 2);
    }
    return gone;
  }

  /** Drops `pod` from every block (a pod gone, restarted or cleared). Returns blocks it held. */
  dropPod(pod: number): number {
    const w = this.words, st = this.#stride;
    const bit = 1 << (pod & 31);
    let dropped = 0;
    for (let seg = 0; seg < SEGMENTS; seg++) {
      const sg = this.#segs[seg];
      const t = sg.t;
      let here = 0;
      // Clear the bit everywhere first, then compact: deleting while scanning would move
      // entries across the scan position.
      for (let o = 2 + (pod >>> 5); o < t.length; o += st) {
        if (((t[o] | t[o + w]) & bit) !== 0) {
          t[o] &= ~bit;
          t[o + w] &= ~bit;
          here++;
        }
      }
      if (here > 0) {
        dropped += here;
        this.#resize(seg, 0);
      }
    }
    return dropped;
  }

  /** Backward-shift deletion of slot `s` (linear probing without tombstones). */
  #deleteAt(sg: Segment, s: number): void {
    const st = this.#stride, m = sg.mask, t = sg.t;
    let hole = s;
    let j = s;
    for (;;) {
      j = (j + 1) & m;
      if (!this.#occupied(t, j * st)) break;
      const home = mix(t[j * st], t[j * st + 1]) & m;
      // Move j into the hole when its home is not cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (between) continue;
      t.copyWithin(hole * st, j * st, j * st + st);
      hole = j;
    }
    t.fill(0, hole * st, hole * st + st);
    sg.size--;
    this.#size--;
  }

  /**
   * Rebuilds segment `seg` at `cap` slots keeping occupied entries; `cap` 0 picks the smallest
   * size that keeps it under 3/4 full (after a pod's blocks went at once).
   */
  #resize(seg: number, cap: number): Segment {
    const old = this.#segs[seg];
    const st = this.#stride, ot = old.t;
    if (cap === 0) {
      let live = 0;
      for (let o = 0; o < ot.length; o += st) if (this.#occupied(ot, o)) live++;
      cap = MIN_CAPACITY;
      while ((live + 1) * 4 > cap * 3) cap *= 2;
      // Never larger than before (a segment at its largest size may be just 3/4 full).
      cap = Math.min(cap, old.cap);
    }
    const sg = new Segment(cap, st);
    const t = sg.t, m = sg.mask;
    this.#size -= old.size;
    if (st === 4) {
      // Up to 32 pods: an entry is occupied when a mask is non-zero (the common layout, inline).
      for (let o = 0; o < ot.length; o += 4) {
        const g = ot[o + 2], f = ot[o + 3];
        if ((g | f) === 0) continue;
        const hi = ot[o], lo = ot[o + 1];
        let d = (mix(hi, lo) & m) * 4;
        while ((t[d + 2] | t[d + 3]) !== 0) d = (d + 4) & (m * 4 + 3);
        t[d] = hi;
        t[d + 1] = lo;
        t[d + 2] = g;
        t[d + 3] = f;
        sg.size++;
      }
    } else {
      for (let o = 0; o < ot.length; o += st) {
        if (!this.#occupied(ot, o)) continue;
        let s = mix(ot[o], ot[o + 1]) & m;
        while (this.#occupied(t, s * st)) s = (s + 1) & m;
        for (let k = 0; k < st; k++) t[s * st + k] = ot[o + k];
        sg.size++;
      }
    }
    this.#size += sg.size;
    this.#segs[seg] = sg;
    return sg;
  }
}
