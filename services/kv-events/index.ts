/**
 * The block index: for one model, which pods hold which prefix blocks, in which tier, and how the
 * blocks chain (which block follows which, by the tokens it holds).
 *
 * Three structures, all in typed arrays (nothing per block on the JS heap):
 *
 * - Records: one per block, in chunks of 65,536. A record is a 61-bit tag of the block's tokens
 *   (0: not known), two flags, the block's hash (the 64 bits the hash table keys it by), and two
 *   pod bitmasks of `words` u32 each: pods holding the block in GPU memory, and pods holding it
 *   offloaded (CPU, disk: any other medium). With up to 32 pods a record is 24 bytes. The blocks of a chain are kept one after another where they can be (a
 *   "run"): a block stored after its parent goes in the record after the parent's when that one is
 *   free, with the flag CONT ("my parent is the record before me"); a new run leaves a few free
 *   records after the one before it (fewer after a new chain of 1-7 blocks: none after one of 1),
 *   so that the next block of a conversation (decode) lands right after its parent. A router
 *   following a prompt reads records in memory order: by tag (token ids), or by hash (block hashes:
 *   {@link BlockIndex.findAfter}, no hash-table read while a prompt runs along a run).
 * - The hash table: block hash -> record. 512 segments (by the top bits of the mixed hash), each an
 *   open-addressing table (linear probing, backward-shift deletion, no tombstones) of 8-byte
 *   slots (mixed hash, record: the hash itself is the record's). A segment doubles past 3/4 full and halves under 1/8; segments grow one
 *   at a time, so a resize moves 1/512 of the blocks.
 * - Links: (parent record, tag) -> record, for blocks that do not sit right after their parent
 *   (where prompts part after a shared prefix, or a run's free records ran out) and for chains'
 *   first blocks (parent 0, the tag mixed with the chain's namespace). 16-byte entries.
 *
 * A block no pod holds any more leaves the hash table; its record stays, dead (the flag STOP), and
 * is never followed. Between events, {@link BlockIndex.maintain} zeroes a chunk whose records
 * all died for new runs (the links to and from it dropped first), and when dead and free records
 * still outnumber the live ones past 4 chunks' worth, compacts: live records are copied together in
 * order, in place (runs stay runs; where a chunk's start now cuts one, its next block is linked)
 * and the hash table and links are rewritten.
 *
 * Ambiguity (engines hashing with different seeds, or hostile input): two blocks with the same tag
 * after one parent, a block given two different tags, or a block that lies right after its parent
 * linked after another parent too: the record gets the flag STOP (or the link is marked
 * ambiguous), and routers never follow it (they hash the prompt from there). A block away from its
 * parent (reached by a link) linked after a second parent is not caught: its first parent is not
 * kept (and a parent that died and was stored again links it anew, rightly).
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
/** Slots a segment may have at most. */
const SLOT_BITS = 31 - SEGMENT_BITS;
/**
 * Words of a hash-table slot: the block's mixed hash, its record (0: empty). The hash itself is in
 * the record: a slot whose mixed hash matches is the block's when the record's hash does too.
 */
const SLOT = 2;

/** The bits of {@link BlockIndex}'s read sink (a V8 small integer holds 31 bits, signed). */
const SMI_BITS = 0x3fffffff;

const CHUNK_BITS = 16;
const CHUNK_RECS = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_RECS - 1;
/** Records of a model's first chunk (it grows to CHUNK_RECS before the next is made). */
const FIRST_CHUNK = 1024;
/** Free records left after a run, for the next blocks of its chain. */
export const SLACK = 7;
/** Record flags (word 0, above the tag's 29 high bits): parent is the record before; not followed. */
export const CONT = 1 << 30, STOP = 1 << 29;
export const TAG_HI_MASK = STOP - 1;
/** Words of a record holding its block's hash (hi, lo); its pod masks start at word MASKS. */
const HASH = 2;
export const MASKS = 4;
/** Words of a link: parent record, tag hi, tag lo, record (0: empty). */
const LINK = 4;
/** The record of an ambiguous link. */
const AMBIGUOUS = 0x7fffffff;

/**
 * What {@link BlockIndex.link} did: linked anew; found the link there; found it ambiguous just now;
 * found it ambiguous already.
 */
export const LINK_NEW = 0, LINK_KNOWN = 1, LINK_CONFLICT = 2, LINK_BLOCKED = 3;

/** A block that would take a segment past its largest size (the block is not added). */
export class SegmentFullError extends RangeError {
  constructor(slots: number) {
    super(`index segment full (${slots} slots)`);
    this.name = "SegmentFullError";
  }
}

/**
 * A secret of this process's: where a block lands in the hash table cannot be worked out from
 * outside. Hashes come from publishers and HTTP clients; without it, hashes made to mix alike
 * (the mix of (hi, lo) was a bijection of lo ^ imul(hi, c)) all went to one segment and one run
 * of slots, a probe as long as the pile (or the segment full: blocks refused).
 */
const SEED = crypto.getRandomValues(new Uint32Array(2));
const SEED_HI = SEED[0], SEED_LO = SEED[1];

/** Mixes a 64-bit hash under this process's seed (hashes from HTTP clients need not be random). */
function mix(hi: number, lo: number): number {
  // hi through a whole finalizer under the seed first, then lo, then a finalizer over segments
  // and slots. Over seeds, two his differing in one bit come out of the first step differing by
  // no value more often than 2 in 10^5 (measured for every bit): a pair of hashes chosen in
  // advance mixes alike under that few seeds (a single multiply there: 1 in 100).
  let h = hi ^ SEED_HI;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = h ^ (h >>> 16) ^ lo ^ SEED_LO;
  h = Math.imul(h ^ (h >>> 15), 0x9e3779b1);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 13)) >>> 0;
}

/** The mixed hash the hash table places block (hi, lo) by (this process's; for tests). */
export const mixedHash: (hi: number, lo: number) => number = mix;

function mixLink(parent: number, hi: number, lo: number): number {
  return mix(hi ^ Math.imul(parent, 0x27d4eb2f), lo);
}

class Segment {
  cap: number;
  mask: number;
  size = 0;
  /** Per slot: hash hi, hash lo, record. */
  t: Uint32Array;

  constructor(cap: number) {
    this.cap = cap;
    this.mask = cap - 1;
    this.t = new Uint32Array(cap * SLOT);
  }
}

/** One model's blocks. */
export class BlockIndex {
  /** u32 words per pod mask. */
  readonly words: number;
  /** Words of a record: tag and flags (2), hash (2), GPU mask, offloaded mask. */
  readonly stride: number;
  #segs: Segment[] = [];
  #size = 0;
  readonly #maxSlots: number;
  /** Record chunks; record r is in chunk r >>> CHUNK_BITS. Record 0 is no block. */
  #chunks: Uint32Array[];
  /** Per chunk: the offset after the last record handed out (0: a spare chunk), live records. */
  #chunkTop: number[] = [1];
  #chunkLive: number[] = [0];
  /** Chunks no record of which is in use, to hand out again (zeroed, or of length 0). */
  #spare: number[] = [];
  /** A chunk's live records went to 0 (maintain() looks for chunks to recycle). */
  #emptied = false;
  /** Where the next run goes (the chunk new runs fill). */
  #top = 1;
  /** Length of the last run started, and whether it started a chain (no parent given). */
  #runLen = 0;
  #runRooted = false;
  #links: Uint32Array;
  #linkCount = 0;
  /** The record of the block last {@link add}ed. */
  rec = -1;
  /** Times the records were compacted. */
  compactions = 0;

  /** `maxSegmentSlots` lowers the largest hash-table segment (tests). */
  constructor(maxPods: number, maxSegmentSlots = 1 << SLOT_BITS) {
    if (!Number.isSafeInteger(maxPods) || maxPods < 1) throw new RangeError(`max pods ${maxPods}`);
    this.#maxSlots = Math.min(
      1 << SLOT_BITS,
      2 ** Math.floor(Math.log2(Math.max(MIN_CAPACITY, maxSegmentSlots))),
    );
    this.words = Math.ceil(maxPods / 32);
    this.stride = MASKS + 2 * this.words;
    this.#drainMask = new Uint32Array(this.words);
    for (let i = 0; i < SEGMENTS; i++) this.#segs.push(new Segment(MIN_CAPACITY));
    this.#chunks = [new Uint32Array(FIRST_CHUNK * this.stride)];
    this.#links = new Uint32Array(16 * LINK);
  }

  /** Blocks held by at least one pod. */
  get size(): number {
    return this.#size;
  }

  /** Records handed out (live, dead, or left free after a run), in chunks in use. */
  get records(): number {
    let n = -1; // record 0
    for (const t of this.#chunkTop) n += t;
    return n + (this.#chunkTop[0] === 0 ? 1 : 0);
  }

  /** Links (chains' first blocks, and blocks not right after their parent). */
  get links(): number {
    return this.#linkCount;
  }

  /** Bytes of the tables. */
  get bytes(): number {
    let n = this.#links.byteLength + this.recordBytes;
    for (const s of this.#segs) n += s.t.byteLength;
    return n;
  }

  /** Bytes of the records' chunks alone. */
  get recordBytes(): number {
    let n = 0;
    for (const c of this.#chunks) n += c.byteLength;
    return n;
  }

  /** The chunk holding record `rec` (its words start at {@link at}). */
  chunk(rec: number): Uint32Array {
    return this.#chunks[rec >>> CHUNK_BITS];
  }

  /** Where record `rec`'s words start in its {@link chunk}. */
  at(rec: number): number {
    return (rec & CHUNK_MASK) * this.stride;
  }

  /** The record of block (hi, lo), or -1. */
  find(hi: number, lo: number): number {
    const m = mix(hi, lo);
    const sg = this.#segs[m >>> (32 - SEGMENT_BITS)];
    const r = sg.t[this.#probe(sg, m, hi, lo) + 1];
    return r === 0 || this.#drainedAway(this.#chunks[r >>> CHUNK_BITS], this.at(r)) ? -1 : r;
  }

  /**
   * Record `prev + 1` when it holds block (hi, lo) (its hash, all 64 bits, and a pod holds it: a
   * dead record keeps its hash), else -1: exactly what {@link find} gives when it is that record,
   * found without the hash table while a prompt whose blocks are hashed runs along a run of
   * records.
   */
  findAfter(prev: number, hi: number, lo: number): number {
    const n = prev + 1;
    if ((n & CHUNK_MASK) === 0) return -1;
    const c = this.#chunks[n >>> CHUNK_BITS];
    const o = (n & CHUNK_MASK) * this.stride;
    // (past a short chunk's end, c[o] is undefined: no match)
    if (c[o + HASH + 1] !== lo || c[o + HASH] !== hi || !this.#live(c, o)) return -1;
    return n;
  }

  /**
   * Where block (hi, lo), whose mixed hash is `m`, is in segment `sg`: its slot's first word, or
   * the empty slot's where it would go (its record word is 0). Only a slot with the same mixed
   * hash has its record read (the record the caller reads next when it is the block's).
   */
  #probe(sg: Segment, m: number, hi: number, lo: number): number {
    const t = sg.t, mask = sg.mask;
    for (let s = m & mask;; s = (s + 1) & mask) {
      const o = s * SLOT, r = t[o + 1];
      if (r === 0) return o;
      if (t[o] === m) {
        const c = this.#chunks[r >>> CHUNK_BITS], ro = (r & CHUNK_MASK) * this.stride;
        if (c[ro + HASH + 1] === lo && c[ro + HASH] === hi) return o;
      }
    }
  }

  /** Reads the home slot of (hi, lo) (a prefetch before {@link find}; the value is not needed). */
  touch(hi: number, lo: number): void {
    const m = mix(hi, lo);
    const sg = this.#segs[m >>> (32 - SEGMENT_BITS)];
    this.#sink = (this.#sink ^ sg.t[(m & sg.mask) * SLOT]) & SMI_BITS;
  }

  /** Reads record `rec` (a prefetch before its masks are read). */
  touchRecord(rec: number): void {
    this.#sink = (this.#sink ^ this.#chunks[rec >>> CHUNK_BITS][(rec & CHUNK_MASK) * this.stride]) &
      SMI_BITS;
  }

  /**
   * What {@link touch} and {@link touchRecord} read, kept so that the reads are not optimised away:
   * 30 bits, so that it stays a small integer (a wider one is a heap number made at each store).
   */
  #sink = 0;

  /** GPU mask word `j` of record `rec` (from {@link find}). */
  gpuWord(rec: number, j: number): number {
    return this.#chunks[rec >>> CHUNK_BITS][(rec & CHUNK_MASK) * this.stride + MASKS + j];
  }

  /** Offloaded mask word `j` of record `rec`. */
  offWord(rec: number, j: number): number {
    return this.#chunks[rec >>> CHUNK_BITS][
      (rec & CHUNK_MASK) * this.stride + MASKS + this.words + j
    ];
  }

  /** Pod masks of record `rec` into `gpu` and `off` (length `words`). */
  masks(rec: number, gpu: Uint32Array, off: Uint32Array): void {
    for (let j = 0; j < this.words; j++) {
      gpu[j] = this.gpuWord(rec, j);
      off[j] = this.offWord(rec, j);
    }
  }

  /** A pod not being dropped holds the record's block ({@link beginDrop}). */
  #live(c: Uint32Array, o: number): boolean {
    if (this.#drains.length === 0) return this.#held(c, o);
    const w = this.words, dm = this.#drainMask;
    for (let j = 0; j < w; j++) {
      if (((c[o + MASKS + j] | c[o + MASKS + w + j]) & ~dm[j]) !== 0) return true;
    }
    return false;
  }

  /**
   * Only draining pods hold the record's block: it is no block any more (found by no lookup,
   * followed by no route), though it keeps its hash and tag until the sweep reaches it.
   */
  #drainedAway(c: Uint32Array, o: number): boolean {
    return this.#drains.length > 0 && !this.#live(c, o);
  }

  /** Any pod's bit is in the record (draining ones too). */
  #held(c: Uint32Array, o: number): boolean {
    for (let i = o + MASKS; i < o + this.stride; i++) if (c[i] !== 0) return true;
    return false;
  }

  /** A record never used, or freed: no tag, no flag, no pod (false past its chunk's end). */
  #free(rec: number): boolean {
    const c = this.#chunks[rec >>> CHUNK_BITS];
    const o = (rec & CHUNK_MASK) * this.stride;
    return o + this.stride <= c.length && c[o] === 0 && c[o + 1] === 0 && !this.#held(c, o);
  }

  /** Grows `rec`'s chunk to hold it (only a model's first chunk is made short). */
  #room(rec: number): void {
    const ci = rec >>> CHUNK_BITS;
    const c = this.#chunks[ci];
    const need = ((rec & CHUNK_MASK) + 1) * this.stride;
    if (c.length < need) {
      // (a first chunk that gave its memory back as a spare has none: it starts again small)
      let n = Math.max(c.length * 2, FIRST_CHUNK * this.stride);
      while (n < need) n *= 2;
      const g = new Uint32Array(Math.min(n, CHUNK_RECS * this.stride));
      g.set(c);
      this.#chunks[ci] = g;
    }
  }

  /** A chunk for new runs: a spare one, or a new one. */
  #newChunk(): number {
    const ci = this.#spare.pop();
    if (ci !== undefined) {
      if (this.#chunks[ci].length === 0) {
        this.#chunks[ci] = new Uint32Array(CHUNK_RECS * this.stride);
      }
      return ci;
    }
    this.#chunks.push(new Uint32Array(CHUNK_RECS * this.stride));
    this.#chunkTop.push(0);
    this.#chunkLive.push(0);
    return this.#chunks.length - 1;
  }

  /**
   * A record for a new block: right after record `after` (its parent) when that one is free (the
   * flag CONT set), else the start of a new run.
   */
  #alloc(after: number): number {
    if (after > 0) {
      const n = after + 1, ci = n >>> CHUNK_BITS, off = n & CHUNK_MASK;
      if (off !== 0) {
        this.#room(n);
        if (this.#free(n)) {
          if (off >= this.#chunkTop[ci]) this.#chunkTop[ci] = off + 1;
          if (n === this.#top) {
            this.#top = n + 1;
            this.#runLen++;
          }
          this.#chunks[ci][off * this.stride] = CONT;
          return n;
        }
      }
    }
    // Free records after the last run; after a new chain, at most one fewer than its blocks (none
    // after a lone first block): short prompts that never continue would leave most records free.
    const gap = this.#top === 1 || (this.#top & CHUNK_MASK) === 0
      ? 0
      : this.#runRooted
      ? Math.min(SLACK, this.#runLen - 1)
      : SLACK;
    let r = this.#top + gap;
    if ((r >>> CHUNK_BITS) !== (this.#top >>> CHUNK_BITS) || (this.#top & CHUNK_MASK) === 0) {
      const ci = this.#newChunk();
      r = ci << CHUNK_BITS;
      if (ci === 0) r = 1;
    }
    const ci = r >>> CHUNK_BITS;
    this.#room(r);
    this.#chunkTop[ci] = Math.max(this.#chunkTop[ci], (r & CHUNK_MASK) + 1);
    this.#top = r + 1;
    this.#runLen = 1;
    this.#runRooted = after <= 0;
    return r;
  }

  /**
   * Marks `pod` as holding the block in `tier`; a new block's record goes after record `after`
   * where it can (its parent's: see {@link BlockIndex}). Returns true when the pod did not have
   * it; the block's record is in {@link rec}.
   */
  add(hi: number, lo: number, pod: number, tier: Tier, after = -1): boolean {
    const k = this.#key;
    k[0] = hi;
    k[1] = lo;
    return this.#addAt(k, 0, pod, tier, after);
  }

  /** A hash passed as one (see {@link addRun}). */
  #key = new Uint32Array(2);

  /** {@link add} of block `hs[2i, 2i + 2)`. */
  #addAt(hs: Uint32Array, i: number, pod: number, tier: Tier, after: number): boolean {
    const hi = hs[i * 2], lo = hs[i * 2 + 1];
    const m = mix(hi, lo);
    let sg = this.#segs[m >>> (32 - SEGMENT_BITS)];
    if ((sg.size + 1) * 4 > sg.cap * 3) {
      // At its largest size a segment still takes pods of blocks it holds (a slot is free below
      // 3/4 full), only new blocks are refused.
      if (sg.cap * 2 <= this.#maxSlots) sg = this.#resize(m >>> (32 - SEGMENT_BITS), sg.cap * 2);
      else if (this.find(hi, lo) < 0) throw new SegmentFullError(this.#maxSlots);
    }
    const t = sg.t;
    const o = this.#probe(sg, m, hi, lo);
    if (t[o + 1] === 0) {
      const r = this.#alloc(after);
      t[o] = m;
      t[o + 1] = r;
      const rc = this.#chunks[r >>> CHUNK_BITS], ro = (r & CHUNK_MASK) * this.stride;
      rc[ro + HASH] = hi;
      rc[ro + HASH + 1] = lo;
      this.#chunkLive[r >>> CHUNK_BITS]++;
      sg.size++;
      this.#size++;
    }
    const rec = t[o + 1];
    this.rec = rec;
    const c = this.#chunks[rec >>> CHUNK_BITS];
    const gi = (rec & CHUNK_MASK) * this.stride + MASKS + (pod >>> 5), oi = gi + this.words;
    const bit = 1 << (pod & 31);
    const had = ((c[gi] | c[oi]) & bit) !== 0;
    if (tier === 0) c[gi] |= bit;
    else c[oi] |= bit;
    return !had;
  }

  /**
   * {@link add} for each block of `hs[from, to)` (word pairs: hash hi, hash lo), in order: the first
   * new block's record after record `after`, each next one's after the block before it (an event's
   * blocks form a chain). A new block is refused while `room` new blocks have already been added
   * by this call, and when its segment is at its largest ({@link SegmentFullError}). Writes each
   * block's record to `recs[i - from]` (-1: refused), and {@link runStored}, {@link runRefused} and
   * {@link runNewlyHeld}. Hashes stay in their array, never passed one by one: a hash word of 2^30
   * or more passed to a call that is not inlined is a heap number made for it.
   */
  addRun(
    hs: Uint32Array,
    from: number,
    to: number,
    pod: number,
    tier: Tier,
    after: number,
    room: number,
    recs: Int32Array,
  ): void {
    const size0 = this.#size;
    let stored = 0, refused = 0, newly = 0;
    for (let i = from; i < to; i++) {
      const hi = hs[i * 2], lo = hs[i * 2 + 1];
      if (this.#size - size0 >= room && this.find(hi, lo) < 0) {
        refused++;
        recs[i - from] = after = -1;
        continue;
      }
      try {
        if (this.#addAt(hs, i, pod, tier, after)) newly++;
      } catch (e) {
        if (!(e instanceof SegmentFullError)) throw e;
        refused++;
        recs[i - from] = after = -1;
        continue;
      }
      stored++;
      recs[i - from] = after = this.rec;
    }
    this.runStored = stored;
    this.runRefused = refused;
    this.runNewlyHeld = newly;
  }

  /** Of the last {@link addRun}: blocks stored, refused, and newly held by the pod. */
  runStored = 0;
  runRefused = 0;
  runNewlyHeld = 0;

  /**
   * {@link remove} for each block of `hs[from, to)` (word pairs, as in {@link addRun}); returns how
   * many the pod held before and no longer holds.
   */
  removeRun(hs: Uint32Array, from: number, to: number, pod: number, tier: Tier | null): number {
    let gone = 0;
    for (let i = from; i < to; i++) if (this.#removeAt(hs, i, pod, tier)) gone++;
    return gone;
  }

  /**
   * Reads the home slots of blocks `hs[from, to)` back to back (before they are stored or removed
   * one by one): their memory misses overlap.
   */
  touchRun(hs: Uint32Array, from: number, to: number): void {
    if (to - from > 1) { for (let i = from; i < to; i++) this.touch(hs[i * 2], hs[i * 2 + 1]); }
  }

  /** Record `rec` is held by no pod: it is dead until compaction or its chunk is recycled. */
  #kill(rec: number): void {
    const ci = rec >>> CHUNK_BITS;
    const c = this.#chunks[ci];
    const o = (rec & CHUNK_MASK) * this.stride;
    c[o] = STOP;
    c[o + 1] = 0;
    // Draining pods' bits too: the sweep passes a dead record by.
    for (let i = o + MASKS; i < o + this.stride; i++) c[i] = 0;
    if (--this.#chunkLive[ci] === 0) this.#emptied = true;
  }

  /**
   * Unmarks `pod` for the block in `tier` (null: both). Returns true when the pod no longer holds
   * it in any tier but did before.
   */
  remove(hi: number, lo: number, pod: number, tier: Tier | null): boolean {
    const k = this.#key;
    k[0] = hi;
    k[1] = lo;
    return this.#removeAt(k, 0, pod, tier);
  }

  /** {@link remove} of block `hs[2i, 2i + 2)`. */
  #removeAt(hs: Uint32Array, i: number, pod: number, tier: Tier | null): boolean {
    const hi = hs[i * 2], lo = hs[i * 2 + 1];
    const m = mix(hi, lo);
    const seg = m >>> (32 - SEGMENT_BITS);
    const sg = this.#segs[seg];
    const so = this.#probe(sg, m, hi, lo);
    const rec = sg.t[so + 1];
    if (rec === 0) return false;
    const c = this.#chunks[rec >>> CHUNK_BITS];
    const ro = (rec & CHUNK_MASK) * this.stride;
    const gi = ro + MASKS + (pod >>> 5), oi = gi + this.words;
    const bit = 1 << (pod & 31);
    const had = ((c[gi] | c[oi]) & bit) !== 0;
    if (tier !== 1) c[gi] &= ~bit;
    if (tier !== 0) c[oi] &= ~bit;
    const gone = had && ((c[gi] | c[oi]) & bit) === 0;
    if (!this.#live(c, ro)) {
      this.#kill(rec);
      this.#deleteAt(sg, so / SLOT);
      if (sg.cap > MIN_CAPACITY && sg.size * 8 < sg.cap) this.#resize(seg, sg.cap / 2);
    }
    return gone;
  }

  /**
   * Drops `pod` from every block (a pod gone, restarted or cleared). Returns blocks it held. The
   * records are read in order; the hash table loses the blocks no pod holds any more.
   */
  dropPod(pod: number): number {
    const bit = 1 << (pod & 31), w = this.words, st = this.stride;
    let dropped = 0, dead = 0, died: Uint32Array | null = null;
    for (let ci = 0; ci < this.#chunks.length; ci++) {
      const c = this.#chunks[ci], end = this.#chunkTop[ci] * st;
      for (let o = ci === 0 ? st : 0; o < end; o += st) {
        const gi = o + MASKS + (pod >>> 5);
        if (((c[gi] | c[gi + w]) & bit) === 0) continue;
        c[gi] &= ~bit;
        c[gi + w] &= ~bit;
        dropped++;
        if (!this.#live(c, o)) {
          const rec = (ci << CHUNK_BITS) | (o / st);
          this.#kill(rec);
          died ??= new Uint32Array((this.#chunks.length << CHUNK_BITS) >>> 5);
          died[rec >>> 5] |= 1 << (rec & 31);
          dead++;
        }
      }
    }
    if (died === null) return dropped;
    if (dead * 8 <= this.#size) {
      // Few died: each leaves its segment as a removed block does (a sweep of every slot and a
      // rebuild of every segment cost more: 48-60 ms against 29-46 ms for the whole drop of
      // 44,000 of 1,400,000 blocks).
      for (let k = 0; k < died.length; k++) {
        for (let bits = died[k]; bits !== 0; bits &= bits - 1) {
          this.#unslot((k << 5) | (31 - Math.clz32(bits & -bits)));
        }
      }
      for (let seg = 0; seg < SEGMENTS; seg++) {
        const sg = this.#segs[seg];
        if (sg.cap > MIN_CAPACITY && sg.size * 8 < sg.cap) this.#resize(seg, 0);
      }
      return dropped;
    }
    for (let seg = 0; seg < SEGMENTS; seg++) {
      const t = this.#segs[seg].t;
      let gone = 0;
      for (let o = 1; o < t.length; o += SLOT) {
        const rec = t[o];
        if (rec !== 0 && (died[rec >>> 5] & (1 << (rec & 31))) !== 0) {
          t[o] = 0; // the segment is rebuilt below without it
          gone++;
        }
      }
      if (gone > 0) this.#resize(seg, 0, gone);
    }
    return dropped;
  }

  /**
   * Pods being dropped a step at a time ({@link beginDrop}): the record the sweep was at when each
   * began, and whether the sweep has since wrapped around (its drain ends once the sweep is back
   * there). One sweep serves them all: the bits of every draining pod, in {@link #drainMask}, are
   * cleared from each record it visits.
   */
  #drains: { pod: number; start: number; wrapped: boolean }[] = [];
  #drainMask: Uint32Array;
  /** The record the sweep visits next. */
  #cursor = 1;
  /** What {@link drainStep} returns (reused). */
  #ended: number[] = [];
  /** The sweep has come round since {@link maintain} last recycled chunks. */
  #passEnded = false;

  /**
   * Starts dropping `pod` from every block a step at a time ({@link drainStep}), so that a large
   * index does not stop everything else for a whole sweep (27-55 ms at 1.4 M blocks). Until its
   * drain ends, blocks only draining pods hold read as held by none (lookups, links), but the
   * pod's bit stays in the records not yet visited: its slot must not be handed to another pod
   * before then (no route asks for it: routes ask for the slots of pods known), and such blocks
   * still count in {@link size}.
   */
  beginDrop(pod: number): void {
    if (!Number.isInteger(pod) || pod < 0 || pod >= this.words * 32) {
      throw new RangeError(`pod slot ${pod}`);
    }
    if ((this.#drainMask[pod >>> 5] & (1 << (pod & 31))) !== 0) {
      throw new RangeError(`pod slot ${pod} is draining already`);
    }
    this.#drainMask[pod >>> 5] |= 1 << (pod & 31);
    this.#drains.push({ pod, start: this.#cursor, wrapped: false });
  }

  /** Drains begun and not ended. */
  get draining(): number {
    return this.#drains.length;
  }

  /**
   * Visits up to `budget` records for the drains under way (a record a draining pod holds costs
   * as much as a removal). Returns the pods whose drains ended in this step (an array reused by
   * the next call).
   */
  drainStep(budget: number): readonly number[] {
    const out = this.#ended;
    out.length = 0;
    const w = this.words, st = this.stride, dm = this.#drainMask;
    let rec = this.#cursor, left = budget;
    while (left > 0 && this.#drains.length > 0) {
      const ci = rec >>> CHUNK_BITS;
      if (ci >= this.#chunks.length) {
        // A pass ends: drains that wrapped before have seen every record; the others now have.
        for (const d of this.#drains) {
          if (d.wrapped) d.start = 0;
          else d.wrapped = true;
        }
        this.#passEnded = true;
        rec = 1;
        this.#endDrains(rec, out);
        continue;
      }
      if ((rec & CHUNK_MASK) >= this.#chunkTop[ci]) {
        rec = (ci + 1) << CHUNK_BITS;
        continue;
      }
      const c = this.#chunks[ci], end = Math.min(this.#chunkTop[ci], (rec & CHUNK_MASK) + left);
      left -= end - (rec & CHUNK_MASK);
      for (let o = (rec & CHUNK_MASK) * st; o < end * st; o += st) {
        let cleared = false;
        for (let j = 0; j < w; j++) {
          const gi = o + MASKS + j;
          const x = (c[gi] | c[gi + w]) & dm[j];
          if (x === 0) continue;
          c[gi] &= ~x;
          c[gi + w] &= ~x;
          cleared = true;
        }
        if (cleared && !this.#held(c, o)) {
          const r = (ci << CHUNK_BITS) | (o / st);
          this.#kill(r);
          this.#unslot(r, true);
        }
      }
      rec = (ci << CHUNK_BITS) + end; // (end may be CHUNK_RECS: the next chunk)
      this.#endDrains(rec, out);
    }
    this.#cursor = rec;
    return out;
  }

  /** Ends the drains whose records the sweep has all visited, now that it is at `rec`. */
  #endDrains(rec: number, out: number[]): void {
    for (let i = 0; i < this.#drains.length; i++) {
      const d = this.#drains[i];
      if (!d.wrapped || d.start > rec) continue;
      this.#drains.splice(i--, 1);
      this.#drainMask[d.pod >>> 5] &= ~(1 << (d.pod & 31));
      out.push(d.pod);
    }
  }

  /** Deletes the slot of record `rec` (dead: its hash is still in it); `shrink`: as a removal. */
  #unslot(rec: number, shrink = false): void {
    const c = this.#chunks[rec >>> CHUNK_BITS], o = (rec & CHUNK_MASK) * this.stride;
    const hi = c[o + HASH], lo = c[o + HASH + 1];
    const m = mix(hi, lo);
    const sg = this.#segs[m >>> (32 - SEGMENT_BITS)];
    const so = this.#probe(sg, m, hi, lo);
    if (sg.t[so + 1] !== rec) return;
    this.#deleteAt(sg, so / SLOT);
    if (shrink && sg.cap > MIN_CAPACITY && sg.size * 8 < sg.cap) {
      this.#resize(m >>> (32 - SEGMENT_BITS), sg.cap / 2);
    }
  }

  /** Backward-shift deletion of slot `s` (linear probing without tombstones). */
  #deleteAt(sg: Segment, s: number): void {
    const m = sg.mask, t = sg.t;
    let hole = s;
    let j = s;
    for (;;) {
      j = (j + 1) & m;
      if (t[j * SLOT + 1] === 0) break;
      const home = t[j * SLOT] & m;
      // Move j into the hole when its home is not cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (between) continue;
      // (two stores: a copyWithin call per moved slot cost more than the move)
      const d = hole * SLOT, o = j * SLOT;
      t[d] = t[o];
      t[d + 1] = t[o + 1];
      hole = j;
    }
    const d = hole * SLOT;
    t[d] = t[d + 1] = 0;
    sg.size--;
    this.#size--;
  }

  /**
   * Rebuilds segment `seg` at `cap` slots keeping occupied entries; `cap` 0 picks the smallest
   * size that keeps it under 3/4 full (after `emptied` of its slots were cleared at once).
   */
  #resize(seg: number, cap: number, emptied = 0): Segment {
    const old = this.#segs[seg];
    const ot = old.t;
    if (cap === 0) {
      const live = old.size - emptied;
      cap = MIN_CAPACITY;
      while ((live + 1) * 4 > cap * 3) cap *= 2;
      // Never larger than before (a segment at its largest size may be just 3/4 full).
      cap = Math.min(cap, old.cap);
    }
    const sg = new Segment(cap);
    const t = sg.t, m = sg.mask;
    this.#size -= old.size;
    for (let o = 0; o < ot.length; o += SLOT) {
      const rec = ot[o + 1];
      if (rec === 0) continue;
      const h = ot[o];
      let d = (h & m) * SLOT;
      while (t[d + 1] !== 0) d = (d + SLOT) % t.length;
      t[d] = h;
      t[d + 1] = rec;
      sg.size++;
    }
    this.#size += sg.size;
    this.#segs[seg] = sg;
    return sg;
  }

  // -------------------------------------------------------------------------------------------
  // Chains.

  /**
   * The record of the block after record `parent` (0: a chain's start, with the root key as the
   * tag) whose tokens have tag (hi, lo): the record after the parent's (CONT, same tag), else its
   * link; -1 if neither, or the record is dead or ambiguous (STOP).
   */
  follow(parent: number, hi: number, lo: number): number {
    if (parent > 0) {
      const n = parent + 1;
      if ((n & CHUNK_MASK) !== 0) {
        const c = this.#chunks[n >>> CHUNK_BITS];
        const o = (n & CHUNK_MASK) * this.stride;
        // (past a short chunk's end, c[o] is undefined: no match)
        if (c[o] === (CONT | hi) && c[o + 1] === lo && !this.#drainedAway(c, o)) return n;
      }
    }
    const r = this.#linkGet(parent, hi, lo);
    // Not an ambiguous link, nor a record no pod holds (its block may be stored again elsewhere:
    // the router hashes it, finds it and takes the link over) or ambiguous.
    if (r === 0 || r === AMBIGUOUS) return -1;
    return (this.#chunks[r >>> CHUNK_BITS][(r & CHUNK_MASK) * this.stride] & STOP) !== 0 ? -1 : r;
  }

  /** The record link (parent, hi, lo) leads to (AMBIGUOUS), or 0. */
  #linkGet(parent: number, hi: number, lo: number): number {
    const l = this.#links, mask = (l.length / LINK) - 1;
    let s = mixLink(parent, hi, lo) & mask;
    for (;;) {
      const o = s * LINK;
      const r = l[o + 3];
      if (r === 0 || (l[o] === parent && l[o + 1] === hi && l[o + 2] === lo)) return r;
      s = (s + 1) & mask;
    }
  }

  /**
   * Records that block record `rec` follows record `parent` (0: a chain's start) and holds tokens
   * of tag (hi, lo) (hi below 2^29, (hi, lo) not (0, 0)). Returns {@link LINK_NEW} (with
   * {@link inOrder} true when the record is right after its parent's), {@link LINK_KNOWN},
   * {@link LINK_CONFLICT} (found ambiguous now: see {@link BlockIndex}) or {@link LINK_BLOCKED}
   * (ambiguous before).
   */
  link(parent: number, hi: number, lo: number, rec: number): number {
    const c = this.#chunks[rec >>> CHUNK_BITS];
    const o = (rec & CHUNK_MASK) * this.stride;
    const w0 = c[o];
    this.inOrder = false;
    if ((w0 & STOP) !== 0) return LINK_BLOCKED;
    const tagged = ((w0 & TAG_HI_MASK) | c[o + 1]) !== 0;
    if (tagged && ((w0 & TAG_HI_MASK) !== hi || c[o + 1] !== lo)) {
      c[o] = w0 | STOP; // one block, two different token runs
      return LINK_CONFLICT;
    }
    let cont = (w0 & CONT) !== 0;
    if (cont && parent !== rec - 1 && !this.#live(this.chunk(rec - 1), this.at(rec - 1))) {
      // Its parent died and was stored again elsewhere: it is reached by a link now.
      c[o] = w0 & ~CONT;
      cont = false;
    }
    if (cont) {
      if (parent !== rec - 1) {
        c[o] = w0 | STOP; // one block, two parents
        return LINK_CONFLICT;
      }
      if (tagged) return LINK_KNOWN;
      // Another block linked after the parent with these tokens, still held (or the link
      // ambiguous): two blocks, one place. A link to a block no pod holds is taken over.
      const other = this.#linkGet(parent, hi, lo);
      if (
        other !== 0 && other !== rec &&
        (other === AMBIGUOUS || this.#live(this.chunk(other), this.at(other)))
      ) {
        c[o] = w0 | STOP;
        this.#linkSet(parent, hi, lo, AMBIGUOUS);
        return other === AMBIGUOUS ? LINK_BLOCKED : LINK_CONFLICT;
      }
      c[o] = CONT | hi;
      c[o + 1] = lo;
      this.inOrder = true;
      return LINK_NEW;
    }
    // Another block right after the parent with these tokens would be followed first.
    const n = parent + 1;
    if (parent > 0 && n !== rec && (n & CHUNK_MASK) !== 0) {
      const nc = this.#chunks[n >>> CHUNK_BITS];
      const no = (n & CHUNK_MASK) * this.stride;
      if (nc[no] === (CONT | hi) && nc[no + 1] === lo && !this.#drainedAway(nc, no)) {
        nc[no] |= STOP;
        this.#linkSet(parent, hi, lo, AMBIGUOUS);
        return LINK_CONFLICT;
      }
    }
    const r = this.#linkSet(parent, hi, lo, rec);
    if (r !== LINK_CONFLICT && !tagged) {
      c[o] = (c[o] & ~TAG_HI_MASK) | hi;
      c[o + 1] = lo;
    }
    return r;
  }

  /** Whether the last {@link link} that returned LINK_NEW found the record after its parent's. */
  inOrder = false;

  /** Sets link (parent, hi, lo) to `rec` (AMBIGUOUS: marks it so). */
  #linkSet(parent: number, hi: number, lo: number, rec: number): number {
    if ((this.#linkCount + 1) * 4 > (this.#links.length / LINK) * 3) {
      this.#rebuildLinks(this.#links.length / LINK * 2, null);
    }
    const l = this.#links, mask = (l.length / LINK) - 1;
    let s = mixLink(parent, hi, lo) & mask;
    for (;;) {
      const o = s * LINK;
      const r = l[o + 3];
      if (r === 0) {
        l[o] = parent;
        l[o + 1] = hi;
        l[o + 2] = lo;
        l[o + 3] = rec;
        this.#linkCount++;
        return rec === AMBIGUOUS ? LINK_CONFLICT : LINK_NEW;
      }
      if (l[o] === parent && l[o + 1] === hi && l[o + 2] === lo) {
        if (r === rec) return LINK_KNOWN;
        if (r === AMBIGUOUS) return LINK_BLOCKED;
        // A link to a block no pod holds any more is taken over.
        const rc = this.#chunks[r >>> CHUNK_BITS];
        if (rec !== AMBIGUOUS && !this.#live(rc, (r & CHUNK_MASK) * this.stride)) {
          l[o + 3] = rec;
          return LINK_NEW;
        }
        l[o + 3] = AMBIGUOUS;
        return LINK_CONFLICT;
      }
      s = (s + 1) & mask;
    }
  }

  /**
   * Rebuilds the links at `entries` slots (a power of two), records renumbered through `remap`
   * (0: gone) when given.
   */
  #rebuildLinks(entries: number, remap: Int32Array | null): void {
    const old = this.#links;
    // Entries hold every link kept: at most as many as before, under 3/4 full.
    const l = new Uint32Array(entries * LINK);
    const mask = entries - 1;
    let count = 0;
    for (let o = 0; o < old.length; o += LINK) {
      let r = old[o + 3];
      if (r === 0) continue;
      let p = old[o];
      const hi = old[o + 1], lo = old[o + 2];
      if (remap !== null) {
        if (p !== 0) p = remap[p];
        if (r !== AMBIGUOUS) r = remap[r];
        if (r === 0 || (old[o] !== 0 && p === 0)) continue;
      }
      let s = mixLink(p, hi, lo) & mask;
      while (l[s * LINK + 3] !== 0) s = (s + 1) & mask;
      const d = s * LINK;
      l[d] = p;
      l[d + 1] = hi;
      l[d + 2] = lo;
      l[d + 3] = r;
      count++;
    }
    this.#links = l;
    this.#linkCount = count;
  }

  /**
   * Deletes the links to or from records of the chunks `gone` marks, in place: one pass over the
   * table, each deletion closing its gap by moving later entries of its run back (linear probing
   * needs no tombstones). A rebuild would re-insert every link kept, in random order (about 30 ms
   * at 262,000 links here); this reads the table once and writes near the links it deletes.
   */
  #dropLinks(gone: Uint8Array): void {
    const l = this.#links, entries = l.length / LINK;
    // A deletion moves entries back from later in their run only: one the pass has not reached
    // lands on the slot just emptied (looked at again) or on one still ahead; entries of a run
    // that wrapped round to slot 0 were looked at first, and the dead among them deleted then.
    for (let s = 0; s < entries; s++) {
      for (;;) {
        const o = s * LINK, r = l[o + 3];
        if (r === 0) break;
        const p = l[o];
        const dead = (p !== 0 && gone[p >>> CHUNK_BITS] === 1) ||
          (r !== AMBIGUOUS && gone[r >>> CHUNK_BITS] === 1);
        if (!dead) break;
        this.#deleteLinkAt(s);
      }
    }
  }

  /** Empties link slot `s`, moving back the entries after it in its run that may go there. */
  #deleteLinkAt(s: number): void {
    const l = this.#links, mask = (l.length / LINK) - 1;
    let hole = s;
    for (let j = (s + 1) & mask;; j = (j + 1) & mask) {
      const o = j * LINK;
      if (l[o + 3] === 0) break;
      const home = mixLink(l[o], l[o + 1], l[o + 2]) & mask;
      // The entry may fill the hole when its home is not after the hole (within its probe run).
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        l.copyWithin(hole * LINK, o, o + LINK);
        hole = j;
      }
    }
    l.fill(0, hole * LINK, hole * LINK + LINK);
    this.#linkCount--;
  }

  /** Links slots for the links there are: a power of two, at most 3/4 full. */
  #linkEntries(): number {
    let entries = 16;
    while (this.#linkCount * 4 > entries * 3) entries *= 2;
    return entries;
  }

  /**
   * Between events (records handed out before may be renumbered): chunks whose records all died
   * are zeroed for new runs (and the links to or from them dropped), and when dead and free records
   * still outnumber the live, past 4 chunks' worth, the records are compacted. Returns whether
   * anything was freed.
   */
  maintain(): boolean {
    let freed = false;
    // While pods drain, the sweep empties chunk after chunk: they are recycled together (one
    // pass over the links) once it has come round, not one at a time.
    if (this.#emptied && (this.#drains.length === 0 || this.#passEnded)) {
      this.#emptied = false;
      this.#passEnded = false;
      const cur = this.#top >>> CHUNK_BITS;
      let gone: Uint8Array | null = null;
      for (let ci = 0; ci < this.#chunks.length; ci++) {
        if (this.#chunkLive[ci] !== 0 || this.#chunkTop[ci] === 0 || ci === cur) continue;
        gone ??= new Uint8Array(this.#chunks.length);
        gone[ci] = 1;
      }
      if (gone !== null) {
        if (this.#linkCount > 0) this.#dropLinks(gone);
        for (let ci = 0; ci < gone.length; ci++) {
          if (gone[ci] === 0) continue;
          // Spare chunks beyond one give their memory back.
          if (this.#spare.length >= 1) this.#chunks[ci] = new Uint32Array(0);
          else this.#chunks[ci].fill(0);
          this.#chunkTop[ci] = 0;
          this.#spare.push(ci);
          this.recycled++;
        }
        freed = true;
      }
    }
    const waste = this.records - this.#size;
    if (waste > this.#size && waste > 4 * CHUNK_RECS) {
      this.compact();
      freed = true;
    }
    return freed;
  }

  /** Chunks zeroed for reuse by {@link maintain}. */
  recycled = 0;

  /**
   * Copies the live records together, in order (see {@link maintain}), in place: a record only
   * moves to a lower number, a place the pass has read already, so no chunk is made but where a
   * released spare is reached again; the chunks past the last record's are let go.
   */
  compact(): void {
    const st = this.stride, chunks = this.#chunks, tops = this.#chunkTop, count = chunks.length;
    const remap = new Int32Array(count << CHUNK_BITS);
    const full = CHUNK_RECS * st;
    // Runs a chunk's start now cuts: the record there is reached by a link (parent, tag hi, tag
    // lo, record: new numbers), made once the links are renumbered.
    const cut: number[] = [];
    let n = 1;
    for (let ci = 0; ci < count; ci++) {
      const c = chunks[ci], end = tops[ci] * st;
      let prevCopied = false; // runs never cross chunks
      for (let o = ci === 0 ? st : 0; o < end; o += st) {
        if (!this.#held(c, o)) {
          prevCopied = false;
          continue;
        }
        const dci = n >>> CHUNK_BITS, d = (n & CHUNK_MASK) * st;
        if (d === 0) {
          const w0 = c[o];
          // Only a block a route could walk to: tagged, not ambiguous, held by a pod not leaving.
          if (
            prevCopied && (w0 & (CONT | STOP)) === CONT && ((w0 & TAG_HI_MASK) | c[o + 1]) !== 0 &&
            this.#live(c, o)
          ) cut.push(n - 1, w0 & TAG_HI_MASK, c[o + 1], n);
          prevCopied = false;
          // A spare chunk gave its memory back (see maintain): records reach it again.
          if (chunks[dci].length < full) chunks[dci] = new Uint32Array(full);
        } else if (dci === 0) this.#room(n); // only the first chunk is made short
        const cur = chunks[dci];
        for (let k = 0; k < st; k++) cur[d + k] = c[o + k];
        // Its parent was the record before it: still so only if that one came along.
        if (!prevCopied) cur[d] &= ~CONT;
        remap[(ci << CHUNK_BITS) | (o / st)] = n++;
        prevCopied = true;
      }
    }
    // The places past the last record copied are free again, and the chunks past its let go; a
    // first chunk left alone gives back what its records do not need.
    const last = (n - 1) >>> CHUNK_BITS;
    chunks[last].fill(0, (((n - 1) & CHUNK_MASK) + 1) * st);
    chunks.length = last + 1;
    const first = Math.min(CHUNK_RECS, Math.max(FIRST_CHUNK, n)) * st;
    if (last === 0 && chunks[0].length > first) chunks[0] = chunks[0].slice(0, first);
    // Every chunk full but the last, which holds records up to n - 1.
    this.#chunkTop = chunks.map((_, i) =>
      i < chunks.length - 1 ? CHUNK_RECS : ((n - 1) & CHUNK_MASK) + 1
    );
    this.#chunkLive = chunks.map((_, i) => this.#chunkTop[i] - (i === 0 ? 1 : 0));
    this.#spare = [];
    this.#emptied = false;
    this.#top = n;
    this.#runLen = 2; // what comes next leaves free records after the last run
    this.#runRooted = false;
    for (const sg of this.#segs) {
      const t = sg.t;
      for (let o = 1; o < t.length; o += SLOT) if (t[o] !== 0) t[o] = remap[t[o]];
    }
    this.#rebuildLinks(this.#linkEntries(), remap);
    for (let i = 0; i < cut.length; i += 4) {
      // A link there already (made while this record was drained away or ambiguous) stays.
      const p = cut[i], hi = cut[i + 1], lo = cut[i + 2];
      if (this.#linkGet(p, hi, lo) === 0) this.#linkSet(p, hi, lo, cut[i + 3]);
    }
    // Records were renumbered in order: the sweep and where each drain began move with them (to
    // the first record kept at or after them).
    const moved = (p: number) => {
      let q = p;
      while (q < remap.length && remap[q] === 0) q++;
      return q < remap.length ? remap[q] : n;
    };
    this.#cursor = moved(this.#cursor);
    for (const d of this.#drains) d.start = moved(d.start);
    this.compactions++;
  }
}
