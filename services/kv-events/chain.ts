/**
 * Learned block chains: what the engines' `BlockStored` events teach about their hash chains. An
 * event carries the parent's hash, the blocks' token ids and the blocks' hashes, so for each block
 * it says "the prompt that reaches parent P, followed by these tokens, is block H". A router
 * follows a prompt through these links without computing a single SHA-256 (the table itself needs
 * no seed; the cache map checks chains' first blocks with the service's hasher, see store.ts).
 *
 * Links are keyed by the prompt's prefix, not by the parent's hash: the key of block `i` is a
 * fingerprint of the model and of every token up to the end of block `i`. A router computes all of
 * a prompt's keys from its tokens alone, with no SHA-256 (a key that named the parent's hash would
 * need the parent's hash first). Learning needs the reverse, the prefix state that leads to a
 * parent: a second table maps (model, block hash) to it. A stored event whose parent is in neither
 * (the engine stored it before this process started and its link was never learned or was lost) is
 * an orphan: its blocks are not learned, and routing hashes such prompts (the router teaches the
 * links of the blocks it hashes and finds in the index, so the chain heals).
 *
 * Chains are apart per model and per namespace: the LoRA name and the cache salt that enter a
 * prompt's block hashes seed its first prefix state. Events teach the base model's chains and
 * those of the LoRAs they name (`lora_name`); a cache salt is never in an event, nor a LoRA's name
 * in older engines' events, so those chains are taught by routers alone: a prompt's first route
 * hashes it, the next follow its links.
 *
 * Pod masks: an entry of a learned block can carry which pods hold the block (GPU and offloaded,
 * pods 0-31), kept in step with the index by the cache map ({@link ChainTable.syncMasks} after
 * every stored or removed block, {@link ChainTable.dropSlot} on a pod reset), so that a router
 * following learned links needs no index probe. The cache map finds a block's entry through the
 * second table; when that table forgets the block, the entry's masks are marked unknown (the
 * router then probes the index).
 *
 * Both tables are bounded caches: 4-way sets (96 bytes: a prefix state also carries the set of its
 * block's entry and its chain's LoRA; 128 for the learned blocks, which also carry the pods
 * holding each block and a use stamp), four candidate sets per key: one chosen by the owner, the
 * one after it, two from the key. A learned block's first set is the one after its parent's entry
 * (a prompt's first block: from its key), so a router following a prompt reads memory in order and
 * the processor fetches ahead; where prompts part after a shared prefix, the blocks that do not
 * fit after the parent go to their other sets and their own children follow them there. A link
 * goes where a way is free. When all four sets are full, a learned block replaces the least
 * recently reported or followed of the four sets' oldest links (so the children of a popular
 * prefix do not push one another out of the set after it); a prefix state first tries to move a
 * link to the set its key's high word chooses, else replaces its first set's oldest. A learned
 * block never moves, since its children were placed after it; when its parent is forgotten and
 * learned again in another set, the block is looked for after the new place, learned again there,
 * and its old entry ages out unused. At twice the indexed blocks, links are almost never lost. A
 * prefix whose blocks disagree (engines hashing with different seeds) is marked ambiguous and
 * never followed. (A cache salt an event hides is caught before, where the cache map checks
 * chains' first blocks.) Keys are 64-bit fingerprints under a per-process random seed: two
 * different prefixes share a key with probability ~2^-64 per lookup, and an outsider cannot aim
 * for a collision.
 *
 * @module
 */

import { TokenFingerprint } from "./fingerprint.ts";

/** The parent of a chain's first block (events say `null`, prompts start there). */
export const ROOT_HI = 0x9e3779b9, ROOT_LO = 0x7f4a7c15;

const WAYS = 4;
/** Words of an entry: key hi, key lo, value hi, value lo (then a table's extra words). */
const ROW = 4;
/**
 * Extra words of a learned block: GPU pod mask, offloaded pod mask, flags (bit 0: masks valid),
 * when it was last reported or followed (see LinkTable's `stampWord`).
 */
const MASK_GPU = 4, MASK_OFF = 5, MASK_FLAGS = 6, BLOCK_STAMP = 7;
const BLOCK_ROW = 8;
/**
 * A prefix state's entry: key, state, the set holding the block's learned entry, and its chain's
 * LoRA check word (0: no LoRA; see ChainTable.resume).
 */
const PREFIX_SET = 4, PREFIX_NS = 5, PREFIX_ROW = 6;
/** Longest LoRA name and salt (together) whose namespace is remembered between calls. */
const NS_REMEMBER = 1024;
/** The value of an ambiguous key. */
const AMBIGUOUS = 0xffffffff;

/**
 * A set's order of use (its ways from oldest to newest, 2 bits each) after one way is used:
 * `TOUCHED[order << 2 | way]` is `order` with `way` moved to the newest position.
 */
const TOUCHED = (() => {
  const t = new Uint8Array(256 * WAYS);
  for (let order = 0; order < 256; order++) {
    for (let way = 0; way < WAYS; way++) {
      let out = 0, k = 0;
      for (let i = 0; i < WAYS; i++) {
        const w = (order >>> (2 * i)) & 3;
        if (w !== way) out |= w << (2 * k++);
      }
      t[(order << 2) | way] = out | (way << 6);
    }
  }
  return t;
})();

/**
 * A bounded map of 64-bit keys to 64-bit values (never (0, 0)): 4-way sets, four choices per key
 * (the set its owner chooses, the one after it, two from the key), one cuckoo step unless
 * entries must stay where they were put, least recently used replacement; a key given two values
 * is ambiguous for good. With a use stamp per entry (`stampWord`), the entry replaced is the least
 * recently used of all four candidate sets' oldest; without, the first set's oldest.
 */
class LinkTable {
  readonly capacity: number;
  /** Words per entry (ROW, or more for extra words the owner keeps beside the value). */
  readonly row: number;
  /** Told about an entry about to be replaced by another key (where its words start in {@link rows}). */
  onEvict: ((offset: number) => void) | null = null;
  /** The value of the last successful {@link get}; where the entry of the last get or set starts. */
  hi = 0;
  lo = 0;
  offset = -1;
  /** And the set it is in. */
  at = -1;
  stored = 0;
  /** Entries stored in the set their owner chose. */
  placed = 0;
  replaced = 0;
  ambiguous = 0;
  #sets: number;
  #rows: Uint32Array;
  /** Per set, the order of use of its ways (2 bits each, most recent last). */
  #age: Uint8Array;
  /**
   * The word of an entry that holds its use stamp, and the stamp clock. A table with stamps keeps
   * entries where they are (a full set gives up its least recently used); one without (-1) may
   * move an entry of a full set to the set its key's high word chooses.
   */
  #stampWord: number;
  #clock = 0;

  constructor(entries: number, row = ROW, stampWord = -1) {
    this.#stampWord = stampWord;
    let sets = 1;
    while (sets * WAYS < entries) sets *= 2;
    this.#sets = sets;
    this.capacity = sets * WAYS;
    this.row = row;
    this.#rows = new Uint32Array(this.capacity * row);
    this.#age = new Uint8Array(sets).fill(0b11100100); // ways 0,1,2,3 from oldest to newest
  }

  get bytes(): number {
    return this.#rows.byteLength + this.#age.byteLength;
  }

  /** The entries' words (the owner reads and writes its extra words through it). */
  get rows(): Uint32Array {
    return this.#rows;
  }

  #touchWay(set: number, way: number): void {
    this.#age[set] = TOUCHED[(this.#age[set] << 2) | way];
  }

  /** Marks the entry at `o` as used now (tables with a use stamp). */
  #stamp(o: number): void {
    if (this.#stampWord >= 0) this.#rows[o + this.#stampWord] = ++this.#clock;
  }

  /**
   * The set of the entry to replace when every candidate set is full: with use stamps, the set
   * whose oldest way was used longest ago (ages are taken modulo 2^32 of the clock); without, `s1`.
   */
  #victimSet(s1: number, s2: number, s3: number): number {
    if (this.#stampWord < 0) return s1;
    const r = this.#rows;
    let best = s1, bestAge = -1;
    for (let c = 0; c < 4; c++) {
      const set = c === 0 ? s1 : c === 1 ? this.#next(s1) : c === 2 ? s2 : s3;
      const o = (set * WAYS + (this.#age[set] & 3)) * this.row;
      const age = (this.#clock - r[o + this.#stampWord]) >>> 0;
      if (age > bestAge) {
        best = set;
        bestAge = age;
      }
    }
    return best;
  }

  /** A key's first set: where its owner places it (`place`, any u32 or set number). */
  #set1(place: number): number {
    return place & (this.#sets - 1);
  }

  #set2(keyHi: number): number {
    return (Math.imul(keyHi, 0x9e3779b1) >>> 7) & (this.#sets - 1);
  }

  /** The way of `set` holding the key, or -1. */
  #find(set: number, keyHi: number, keyLo: number): number {
    const r = this.#rows;
    const base = set * WAYS * this.row;
    for (let w = 0; w < WAYS; w++) {
      const o = base + w * this.row;
      if (r[o + 1] === keyLo && r[o] === keyHi && (r[o + 2] | r[o + 3]) !== 0) return w;
    }
    return -1;
  }

  #free(set: number): number {
    const r = this.#rows;
    const base = set * WAYS * this.row;
    for (let w = 0; w < WAYS; w++) {
      if ((r[base + w * this.row + 2] | r[base + w * this.row + 3]) === 0) return w;
    }
    return -1;
  }

  /**
   * Moves one entry of full `set` to the first set its key chooses if that has a free way; the
   * freed way or -1. (An entry's first set comes from its owner's placement, not stored: entries
   * already in the set of their key stay.)
   */
  #relocate(set: number): number {
    const r = this.#rows;
    for (let w = 0; w < WAYS; w++) {
      const o = (set * WAYS + w) * this.row;
      const alt = this.#set2(r[o]);
      if (alt === set) continue;
      const f = this.#free(alt);
      if (f < 0) continue;
      const to = (alt * WAYS + f) * this.row;
      r.copyWithin(to, o, o + this.row);
      r.fill(0, o, o + this.row);
      this.#touchWay(alt, f);
      return w;
    }
    return -1;
  }

  /** The set after `set` (a key's second choice, next to its first in memory). */
  #next(set: number): number {
    return (set + 1) & (this.#sets - 1);
  }

  /** A key's last choice of set. */
  #set3(keyLo: number): number {
    return (Math.imul(keyLo, 0x85ebca6b) >>> 9) & (this.#sets - 1);
  }

  /**
   * The way holding the key in its first set `s1`, the one after it, or the sets of its key
   * ({@link #set2} then {@link #set3}, worked out only when the first two miss), with the set in
   * {@link at}; -1 if none.
   */
  #locate(keyHi: number, keyLo: number, s1: number): number {
    let w = this.#find(s1, keyHi, keyLo);
    if (w >= 0) {
      this.at = s1;
      return w;
    }
    const n = this.#next(s1);
    w = this.#find(n, keyHi, keyLo);
    if (w >= 0) {
      this.at = n;
      return w;
    }
    const s2 = this.#set2(keyHi);
    w = this.#find(s2, keyHi, keyLo);
    if (w >= 0) {
      this.at = s2;
      return w;
    }
    this.at = this.#set3(keyLo);
    return this.#find(this.at, keyHi, keyLo);
  }

  /** Maps the key, first placed at `place`, to (hi, lo); {@link offset} is where its words are. */
  set(keyHi: number, keyLo: number, place: number, hi: number, lo: number): void {
    this.offset = -1;
    if ((hi | lo) === 0) return; // would read as an empty way
    const r = this.#rows;
    const s1 = this.#set1(place);
    let w = this.#locate(keyHi, keyLo, s1);
    let set = this.at;
    if (w >= 0) {
      const o = (set * WAYS + w) * this.row;
      this.offset = o;
      if (r[o + 2] !== hi || r[o + 3] !== lo) {
        if (!(r[o + 2] === AMBIGUOUS && r[o + 3] === AMBIGUOUS)) this.ambiguous++;
        r[o + 2] = AMBIGUOUS;
        r[o + 3] = AMBIGUOUS;
      }
      this.#touchWay(set, w);
      this.#stamp(o);
      return;
    }
    // A free way in the first set, the one after it or the key's two, else one cuckoo step, else
    // the least recently used way (#victimSet).
    const s2 = this.#set2(keyHi);
    set = s1;
    w = this.#free(s1);
    if (w < 0) w = this.#free(set = this.#next(s1));
    if (w < 0) w = this.#free(set = s2);
    if (w < 0) w = this.#free(set = this.#set3(keyLo));
    if (w < 0) {
      set = s1;
      if (this.#stampWord < 0) {
        w = this.#relocate(s1);
        if (w < 0 && s2 !== s1) {
          w = this.#relocate(s2);
          if (w >= 0) set = s2;
        }
      }
      if (w < 0) {
        set = this.#victimSet(s1, s2, this.#set3(keyLo));
        w = this.#age[set] & 3;
        this.replaced++;
        this.onEvict?.((set * WAYS + w) * this.row);
      }
    }
    const o = (set * WAYS + w) * this.row;
    if (this.row > ROW) r.fill(0, o + ROW, o + this.row);
    r[o] = keyHi;
    r[o + 1] = keyLo;
    r[o + 2] = hi;
    r[o + 3] = lo;
    this.offset = o;
    this.at = set;
    this.stored++;
    if (set === s1) this.placed++;
    this.#touchWay(set, w);
    this.#stamp(o);
  }

  /** True with the value in {@link hi}/{@link lo}; false if absent or ambiguous. */
  get(keyHi: number, keyLo: number, place: number): boolean {
    const w = this.#locate(keyHi, keyLo, this.#set1(place));
    const set = this.at;
    if (w < 0) return false;
    const r = this.#rows;
    const o = (set * WAYS + w) * this.row;
    if (r[o + 2] === AMBIGUOUS && r[o + 3] === AMBIGUOUS) return false;
    this.hi = r[o + 2];
    this.lo = r[o + 3];
    this.offset = o;
    // Entries in use stay longer.
    if ((this.#age[set] >>> 6) !== w) this.#touchWay(set, w);
    this.#stamp(o);
    return true;
  }
}

/** Counters of a {@link ChainTable}. */
export interface ChainStats {
  /** Links it can hold. */
  entries: number;
  bytes: number;
  learned: number;
  /**
   * Learned blocks stored right after their parent's entry (or, for a prompt's first block, in
   * the set of its key): the rest cost a router one more memory miss each.
   */
  inOrder: number;
  /** Links pushed out by new ones. */
  replaced: number;
  hits: number;
  misses: number;
  ambiguous: number;
  /** Blocks not learned: their parent's prefix was unknown. */
  orphans: number;
  /**
   * Stored events not learned: their LoRA name was empty (the engine hashed an empty name, which
   * prompts cannot name).
   */
  loraRefused: number;
  /**
   * Chains whose first block was not learned: the service's hasher gave another hash for it (a
   * cache salt or extra keys the event hid, or an engine hashing with another seed; see CacheMap).
   */
  rootsRefused: number;
}

/**
 * See the module documentation. Use: {@link begin} (a prompt's start) or {@link resume} (after a
 * parent block), then per block {@link advance} (its key in {@link keyHi}/{@link keyLo}, the
 * prefix state in {@link stateHi}/{@link stateLo}), then {@link lookup} or {@link learn}.
 */
export class ChainTable {
  readonly capacity: number;
  /** Block of the last successful {@link lookup}. */
  hi = 0;
  lo = 0;
  /**
   * And the pods that hold it (GPU, offloaded; pods 0-31), when {@link masksValid}: kept in step
   * with the index by the cache map ({@link syncMasks}, {@link dropSlot}), so that a router
   * following learned links needs no index probe.
   */
  gpu = 0;
  off = 0;
  masksValid = false;
  /** Key of the block last {@link advance}d over. */
  keyHi = 0;
  keyLo = 0;
  /**
   * The set holding the entry of the block before the next one looked up or learned (that
   * block's entry goes in the set after it); -1 at a prompt's start.
   */
  #prev = -1;
  /** Prefix state after the block last advanced over (or begun / resumed at). */
  stateHi = 0;
  stateLo = 0;
  hits = 0;
  misses = 0;
  orphans = 0;
  /** See {@link ChainStats.loraRefused}. */
  loraRefused = 0;
  /** See {@link ChainStats.rootsRefused} (counted by the cache map, which checks roots). */
  rootsRefused = 0;
  /** Prefix key → block hash. */
  #blocks: LinkTable;
  /** (model, block hash) → prefix state through that block. */
  #prefixes: LinkTable;
  #seedHi: number;
  #seedLo: number;
  #models = new Map<string, number>();
  #fp = new TokenFingerprint();

  constructor(entries: number, seed: Uint32Array = crypto.getRandomValues(new Uint32Array(2))) {
    // Entries stay where they were put: their children were placed after them.
    this.#blocks = new LinkTable(entries, BLOCK_ROW, BLOCK_STAMP);
    this.#prefixes = new LinkTable(entries, PREFIX_ROW);
    // A block whose prefix is forgotten can no longer have its pod masks kept up to date.
    this.#prefixes.onEvict = (o) => {
      const r = this.#prefixes.rows;
      this.#finalize(r[o + 2], r[o + 3]);
      if (this.#blocks.get(this.#fkHi, this.#fkLo, r[o + PREFIX_SET])) {
        this.#blocks.rows[this.#blocks.offset + MASK_FLAGS] = 0;
      }
    };
    this.capacity = this.#blocks.capacity;
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
    const b = this.#blocks;
    return {
      entries: this.capacity,
      bytes: b.bytes + this.#prefixes.bytes,
      learned: b.stored,
      inOrder: b.placed,
      replaced: b.replaced,
      hits: this.hits,
      misses: this.misses,
      ambiguous: b.ambiguous,
      orphans: this.orphans,
      loraRefused: this.loraRefused,
      rootsRefused: this.rootsRefused,
    };
  }

  /**
   * Which chain a prompt's blocks belong to besides its model: none (0, 0) for the base model, else
   * a seeded fingerprint of its LoRA name and cache salt (what the engines put in the blocks'
   * extra keys), into #nsHi/#nsLo; and the chain's LoRA check word into #nsLora (0: no LoRA), which
   * a prefix entry keeps for {@link resume}. An empty string is no key, as to the hasher. The last
   * pair is remembered (events and prompts repeat their LoRA) when it is short.
   */
  #keysNamespace(lora: string | null | undefined, salt: string | null | undefined): void {
    const l = lora ?? "", s = salt ?? "";
    if (l === this.#lastLora && s === this.#lastSalt) return;
    const remember = l.length + s.length <= NS_REMEMBER;
    this.#lastLora = remember ? l : null;
    this.#lastSalt = remember ? s : null;
    if (l === "" && s === "") {
      this.#nsHi = this.#nsLo = this.#nsLora = 0;
      return;
    }
    if (l !== "") this.#fingerprintKeys(l, "");
    this.#nsLora = l === "" ? 0 : this.#fp.lo || 1;
    if (s !== "") this.#fingerprintKeys(l, s);
    this.#nsHi = this.#fp.hi;
    this.#nsLo = this.#fp.lo;
  }

  /** Seeded fingerprint of the pair: lengths, then both strings' UTF-16 code units (injective). */
  #fingerprintKeys(l: string, s: string): void {
    const fp = this.#fp, u = this.#units;
    fp.hi = this.#seedLo ^ 0x5851f42d;
    fp.lo = this.#seedHi ^ 0x4c957f2d;
    u[0] = l.length;
    u[1] = s.length;
    fp.mix(u, 0, 2);
    // Through a fixed scratch, a chunk at a time: a long name costs time, not memory.
    for (const str of [l, s]) {
      for (let at = 0; at < str.length; at += u.length) {
        const n = Math.min(u.length, str.length - at);
        for (let i = 0; i < n; i++) u[i] = str.charCodeAt(at + i);
        fp.mix(u, 0, n);
      }
    }
  }

  #lastLora: string | null = "";
  #lastSalt: string | null = "";
  #nsHi = 0;
  #nsLo = 0;
  #nsLora = 0;
  #units = new Uint32Array(256);

  /**
   * Starts at a prompt's beginning in model `modelId`, under LoRA `lora` and cache salt `salt`
   * (none: the base model's chain). Events teach the chains of the base model and of the LoRAs
   * they name; routers teach every chain the blocks they hash (a salt is never in an event).
   */
  begin(modelId: number, lora?: string | null, salt?: string | null): void {
    this.#keysNamespace(lora, salt);
    this.#beginAt(modelId);
  }

  /** {@link begin} in the namespace already in #nsHi/#nsLo. */
  #beginAt(modelId: number): void {
    const h1 = Math.imul(this.#seedHi ^ modelId ^ this.#nsHi, 0x85ebca6b) ^ ROOT_HI;
    const h2 = Math.imul(this.#seedLo + modelId + this.#nsLo, 0xc2b2ae35) ^ ROOT_LO;
    this.stateHi = Math.imul(h1 ^ (h1 >>> 16), 0x7feb352d) >>> 0;
    this.stateLo = Math.imul(h2 ^ (h2 >>> 15), 0x846ca68b) >>> 0;
    this.#prev = -1;
  }

  /** Where a block with prefix key lo `keyLo` goes first: after its parent, or by its key. */
  #place(keyLo: number): number {
    return this.#prev < 0 ? keyLo : this.#prev + 1;
  }

  /** The key of block (hi, lo) of the model in the prefix-state table. */
  #blockKey(modelId: number, hi: number, lo: number): void {
    const h1 = Math.imul(hi ^ this.#seedLo ^ modelId, 0x9e3779b1);
    const h2 = Math.imul(lo + this.#seedHi + Math.imul(modelId, 0x2545f491), 0x85ebca6b);
    this.#bkHi = (h1 ^ (h2 >>> 15)) >>> 0;
    this.#bkLo = (h2 ^ (h1 >>> 13)) >>> 0;
  }

  #bkHi = 0;
  #bkLo = 0;

  /**
   * Starts after block (hi, lo) of model `modelId`, whose chain began under LoRA `lora` (at the
   * root: begins under it). False when the block's prefix is unknown or its chain's LoRA is
   * another. The chain may have begun under a cache salt (a router taught its first blocks): past
   * the first block, engines' hashes carry the LoRA only, so its events are learned into it.
   */
  resume(modelId: number, hi: number, lo: number, lora?: string | null): boolean {
    this.#keysNamespace(lora, null);
    if (hi === ROOT_HI && lo === ROOT_LO) {
      this.#beginAt(modelId);
      return true;
    }
    this.#blockKey(modelId, hi, lo);
    const p = this.#prefixes;
    if (!p.get(this.#bkHi, this.#bkLo, this.#bkLo)) return false;
    // An event naming another LoRA than its parent's chain is not learned into that chain.
    if (p.rows[p.offset + PREFIX_NS] !== this.#nsLora) return false;
    this.stateHi = p.hi;
    this.stateLo = p.lo;
    this.#prev = p.rows[p.offset + PREFIX_SET];
    return true;
  }

  /** Moves past block `tokens[from, from + count)`: its key into {@link keyHi}/{@link keyLo}. */
  advance(tokens: Uint32Array, from: number, count: number): void {
    const fp = this.#fp;
    fp.hi = this.stateHi;
    fp.lo = this.stateLo;
    fp.mix(tokens, from, count);
    this.stateHi = fp.hi;
    this.stateLo = fp.lo;
    this.#finalize(fp.hi, fp.lo);
    this.keyHi = this.#fkHi;
    this.keyLo = this.#fkLo;
  }

  /** The prefix key of a prefix state, into #fkHi/#fkLo. */
  #finalize(hi: number, lo: number): void {
    const f1 = Math.imul(hi ^ (hi >>> 16), 0x21f0aaad) ^ lo;
    this.#fkHi = (f1 ^ (f1 >>> 15)) >>> 0;
    this.#fkLo = (lo ^ (lo >>> 16)) >>> 0;
  }

  #fkHi = 0;
  #fkLo = 0;

  /**
   * Records which pods hold block (hi, lo) of model `modelId` (as the index has it now), in the
   * entry learned for it, if there is one; false if there is none.
   */
  syncMasks(modelId: number, hi: number, lo: number, gpu: number, off: number): boolean {
    this.#blockKey(modelId, hi, lo);
    const p = this.#prefixes;
    if (!p.get(this.#bkHi, this.#bkLo, this.#bkLo)) return false;
    this.#finalize(p.hi, p.lo);
    const b = this.#blocks;
    if (!b.get(this.#fkHi, this.#fkLo, p.rows[p.offset + PREFIX_SET])) return false;
    if (b.hi !== hi || b.lo !== lo) return false;
    const r = b.rows, o = b.offset;
    r[o + MASK_GPU] = gpu;
    r[o + MASK_OFF] = off;
    r[o + MASK_FLAGS] = 1;
    return true;
  }

  /** Pod `slot` holds nothing any more (reset, removed): its bit goes from every entry. */
  dropSlot(slot: number): void {
    if (slot >= 32) return;
    const r = this.#blocks.rows, keep = ~(1 << slot);
    for (let o = 0; o < r.length; o += BLOCK_ROW) {
      if (r[o + MASK_FLAGS] === 0) continue;
      r[o + MASK_GPU] &= keep;
      r[o + MASK_OFF] &= keep;
    }
  }

  /**
   * Records block (hi, lo) of model `modelId` as the one at prefix key (keyHi, keyLo), reached
   * with prefix state (stateHi, stateLo) (what {@link advance} left), and, when `gpu` >= 0, the
   * pods that hold it (GPU and offloaded masks, see {@link syncMasks}). Blocks are learned in
   * prompt order: each goes after the one before it (looked up or learned).
   */
  learn(
    modelId: number,
    keyHi: number,
    keyLo: number,
    stateHi: number,
    stateLo: number,
    hi: number,
    lo: number,
    gpu = -1,
    off = 0,
  ): void {
    if ((hi | lo) === 0) return; // would read as an empty way
    const b = this.#blocks, p = this.#prefixes;
    this.#blockKey(modelId, hi, lo);
    // The block already reached through another prefix (engines that disagree, or hostile
    // input): its prefix entry turns ambiguous, so neither learned entry can be kept in step with
    // the index any more. Their masks are marked unknown (routers probe the index for them).
    let conflict = false;
    if (p.get(this.#bkHi, this.#bkLo, this.#bkLo) && (p.hi !== stateHi || p.lo !== stateLo)) {
      conflict = true;
      const oldSet = p.rows[p.offset + PREFIX_SET];
      this.#finalize(p.hi, p.lo);
      if (b.get(this.#fkHi, this.#fkLo, oldSet)) b.rows[b.offset + MASK_FLAGS] = 0;
    }
    b.set(keyHi, keyLo, this.#place(keyLo), hi, lo);
    this.#prev = b.at;
    const bo = b.offset;
    if (gpu >= 0 && bo >= 0 && b.rows[bo + 2] === hi && b.rows[bo + 3] === lo) {
      // The pods that hold it, straight into the entry just written (no second lookup).
      const r = b.rows;
      r[bo + MASK_GPU] = gpu;
      r[bo + MASK_OFF] = off;
      r[bo + MASK_FLAGS] = 1;
    }
    p.set(this.#bkHi, this.#bkLo, this.#bkLo, stateHi, stateLo);
    if (p.offset >= 0) {
      p.rows[p.offset + PREFIX_SET] = this.#prev;
      p.rows[p.offset + PREFIX_NS] = this.#nsLora;
      if (p.rows[p.offset + 2] === AMBIGUOUS && p.rows[p.offset + 3] === AMBIGUOUS) conflict = true;
    }
    if (conflict && bo >= 0) b.rows[bo + MASK_FLAGS] = 0;
  }

  /**
   * The block at a prefix key, the next of the prompt: true with it in {@link hi}/{@link lo}.
   * Not found, the next block learned takes its place.
   */
  lookup(keyHi: number, keyLo: number): boolean {
    const b = this.#blocks;
    if (b.get(keyHi, keyLo, this.#place(keyLo))) {
      this.#prev = b.at;
      this.hi = b.hi;
      this.lo = b.lo;
      const r = b.rows, o = b.offset;
      this.masksValid = r[o + MASK_FLAGS] === 1;
      this.gpu = r[o + MASK_GPU];
      this.off = r[o + MASK_OFF];
      this.hits++;
      return true;
    }
    this.misses++;
    return false;
  }
}
