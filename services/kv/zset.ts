/**
 * The sorted set value type (ZADD, ZRANGE, ZRANK, ZPOPMIN, ...): members ordered by
 * (score, member), as in Redis.
 *
 * Two structures hold the same entries:
 *
 * - a `Map` from member to its skiplist node, for O(1) ZSCORE and membership, and so that a
 *   score update that keeps the order is done in place;
 * - a skiplist ordered by (score, member). Each node has a random level (p = 1/4, at most 32),
 *   a forward pointer per level and, per level, the *span*: how many level-0 steps that pointer
 *   skips. Summing spans along a search path gives a node's rank, and following spans finds
 *   the node at a given rank, both in O(log n); level-0 forward and backward pointers then walk
 *   a range in O(m). Score ranges are turned into rank ranges the same way, so ZCOUNT is
 *   O(log n) and ZRANGEBYSCORE with LIMIT does not walk the skipped entries.
 *
 * Nodes are not JS objects: they are blocks in one `ArrayBuffer` (the arena), read through an
 * `Int32Array` and a `Float64Array` view, with the members in a string array. With an object,
 * two arrays and a boxed score per node, 200k adds ran about 3x slower, mostly in GC and cache
 * misses; a block keeps a node's score and pointers in one cache line and gives the GC nothing
 * to trace. A block is addressed by its base (a word index); base 0 is the header, so 0 also
 * means "no node". Freed blocks are reused by nodes of the same level, and the arena is
 * compacted when it is mostly free.
 *
 * Members are binary strings (one char per byte, 0-255), so JS `<` on them is Redis's memcmp
 * order (a proper prefix sorts first). Scores are doubles, ±Infinity allowed, never NaN.
 *
 * @module
 */

/** Highest skiplist level: 4^32 entries before levels stop helping, as Redis has it. */
const MAX_LEVEL = 32;
/** Chance that a node reaches the next level up. */
const P = 0.25;

// A block, in 32-bit words from its base. Words 0-1 are the score, a float64: bases are even,
// so it is 8-byte aligned and read through the Float64Array view at index base / 2.
/** Index of the member in the members array. */
const ID = 2;
/** The node's level, 1 to MAX_LEVEL. */
const LEVEL = 3;
/** Base of the previous node at level 0; 0 for the first node (never the header). */
const BACK = 4;
/** Word 5 is padding. Per level i: the next node's base (0 past the end) at LINKS + 2i, and
 * the span of that pointer at LINKS + 2i + 1. */
const LINKS = 6;
/** The header's base; its member and score are unused. */
const HEADER = 0;
const HEADER_WORDS = LINKS + 2 * MAX_LEVEL;
/** Arena size of a new set: the header and a few level-1 nodes. */
const INITIAL_WORDS = HEADER_WORDS + 8 * (LINKS + 2);

/** Rough cost of an entry outside the arena (Map entry, member slot, string header). */
const ENTRY_OVERHEAD_BYTES = 48;

/**
 * A sorted set of binary-string members with double scores, ordered by (score, member).
 *
 * Do not change the set while iterating {@link SortedSet.entries}.
 */
export class SortedSet {
  readonly #random: () => number;
  /** Member → base of its node. */
  readonly #nodes = new Map<string, number>();
  /** Members by node ID; "" in unused slots. */
  #members: string[] = [""];
  #freeIds: number[] = [];
  #words: Int32Array;
  #scores: Float64Array;
  /** End of the used part of the arena. */
  #top = HEADER_WORDS;
  /** Words in live blocks, header included: what a compacted arena would hold. */
  #liveWords = HEADER_WORDS;
  /** Per level, the first free block of that level, 0 if none; chained through LINKS. */
  readonly #freeBlocks = new Int32Array(MAX_LEVEL + 1);
  /** Base of the last node, 0 when empty. */
  #tail = 0;
  /** Levels in use (at least 1); the header's pointers above it are 0. */
  #level = 1;
  /** Linked nodes: the size, except while a node is relinked for a new score. */
  #length = 0;
  #memberBytes = 0;
  // Scratch for search paths, reused so that an update allocates nothing: per level, the base
  // of the last node before the target, and that node's rank (header = 0).
  readonly #update = new Int32Array(MAX_LEVEL);
  readonly #rank = new Int32Array(MAX_LEVEL);

  /**
   * @param random Source of uniform numbers in [0, 1) for node levels; inject a seeded one for
   *   reproducible structure in tests.
   */
  constructor(random: () => number = Math.random) {
    this.#random = random;
    const buffer = new ArrayBuffer(INITIAL_WORDS * 4);
    this.#words = new Int32Array(buffer);
    this.#scores = new Float64Array(buffer);
    this.#words[HEADER + LEVEL] = MAX_LEVEL;
  }

  /** Number of members (ZCARD). */
  get size(): number {
    return this.#nodes.size;
  }

  /** Rough memory use in bytes, for INFO memory: member bytes, the arena, a cost per entry. */
  get bytes(): number {
    return this.#memberBytes + this.#words.byteLength + ENTRY_OVERHEAD_BYTES * this.#nodes.size;
  }

  /** The member's score (ZSCORE), or undefined if it is not in the set. */
  score(member: string): number | undefined {
    const node = this.#nodes.get(member);
    return node === undefined ? undefined : this.#scores[node >> 1];
  }

  /**
   * Sets the member's score, inserting it if absent (ZADD). A score equal (`===`) to the current
   * one changes nothing, so 0 stays 0 when set to -0, as in Redis.
   *
   * @returns true if the member is new.
   * @throws RangeError if `score` is NaN.
   */
  add(member: string, score: number): boolean {
    if (Number.isNaN(score)) throw new RangeError("score is not a number (NaN)");
    const node = this.#nodes.get(member);
    if (node === undefined) {
      this.#nodes.set(member, this.#insert(member, score));
      this.#memberBytes += member.length;
      return true;
    }
    if (this.#scores[node >> 1] === score) return false;
    // Most score updates (counters, timestamps) move a node less than one neighbour: then the
    // order is unchanged and the score is rewritten in place, with no search.
    const prev = this.#words[node + BACK];
    const next = this.#words[node + LINKS];
    if (
      (prev === 0 || this.#before(prev, score, member)) &&
      (next === 0 || !this.#before(next, score, member))
    ) {
      this.#scores[node >> 1] = score;
      return false;
    }
    // Otherwise relink the same block (same level) at its new place.
    this.#findPath(node);
    this.#unlink(node);
    this.#scores[node >> 1] = score;
    this.#link(node);
    return false;
  }

  /**
   * Adds `increment` to the member's score, starting from 0 if absent (ZINCRBY).
   *
   * @returns the new score.
   * @throws RangeError if the result is NaN (Infinity plus -Infinity); the set is unchanged.
   */
  incrBy(member: string, increment: number): number {
    const score = (this.score(member) ?? 0) + increment;
    if (Number.isNaN(score)) throw new RangeError("resulting score is not a number (NaN)");
    this.add(member, score);
    return score;
  }

  /** Removes the member (ZREM); returns true if it was in the set. */
  remove(member: string): boolean {
    const node = this.#nodes.get(member);
    if (node === undefined) return false;
    this.#findPath(node);
    this.#unlink(node);
    this.#release(node);
    this.#compactIfSparse();
    return true;
  }

  /**
   * The member's 0-based rank (ZRANK), counted from the highest entry when `reverse` (ZREVRANK),
   * or -1 if it is not in the set.
   */
  rank(member: string, reverse = false): number {
    const node = this.#nodes.get(member);
    if (node === undefined) return -1;
    const below = this.#search(this.#scores[node >> 1], member);
    return reverse ? this.#nodes.size - 1 - below : below;
  }

  /**
   * Entries from index `start` to `stop` inclusive (ZRANGE), with Redis's index rules: negative
   * indexes count from the end (-1 is the last), out-of-range indexes are clamped, and the
   * result is empty if `start` is past the end or after `stop`. With `reverse` (ZREVRANGE),
   * index 0 is the highest entry and entries come highest first.
   */
  range(start: number, stop: number, reverse = false): [string, number][] {
    const size = this.#nodes.size;
    if (start < 0) start = Math.max(0, start + size);
    if (stop < 0) stop += size;
    if (stop >= size) stop = size - 1;
    if (start > stop || start >= size) return [];
    return reverse
      ? this.#walk(size - 1 - start, stop - start + 1, true)
      : this.#walk(start, stop - start + 1, false);
  }

  /**
   * Entries with a score between `min` and `max` (ZRANGEBYSCORE; ZREVRANGEBYSCORE with
   * `reverse`, which lists the highest first), each bound inclusive unless marked exclusive.
   * `offset` and `count` are LIMIT's: skip `offset` entries of the result, then return at most
   * `count` (all if negative). A negative offset gives an empty result, as in Redis.
   */
  rangeByScore(
    min: number,
    minExclusive: boolean,
    max: number,
    maxExclusive: boolean,
    reverse = false,
    offset = 0,
    count = -1,
  ): [string, number][] {
    if (offset < 0 || count === 0) return [];
    // The entries in range hold ranks [lo, hi).
    const lo = this.#countBelow(min, minExclusive);
    const hi = this.#countBelow(max, !maxExclusive);
    let n = hi - lo - offset;
    if (n <= 0) return [];
    if (count > 0 && count < n) n = count;
    return reverse ? this.#walk(hi - 1 - offset, n, true) : this.#walk(lo + offset, n, false);
  }

  /** The number of entries with a score between `min` and `max` (ZCOUNT), in O(log n). */
  countByScore(min: number, minExclusive: boolean, max: number, maxExclusive: boolean): number {
    const n = this.#countBelow(max, !maxExclusive) - this.#countBelow(min, minExclusive);
    return n > 0 ? n : 0;
  }

  /** Removes and returns up to `count` lowest entries, lowest first (ZPOPMIN). */
  popMin(count: number): [string, number][] {
    const out: [string, number][] = [];
    while (out.length < count) {
      const first = this.#words[HEADER + LINKS];
      if (first === 0) break;
      out.push(this.#entry(first));
      // The first node's predecessor at every level is the header: no search needed.
      this.#update.fill(HEADER);
      this.#unlink(first);
      this.#release(first);
    }
    this.#compactIfSparse();
    return out;
  }

  /** Removes and returns up to `count` highest entries, highest first (ZPOPMAX). */
  popMax(count: number): [string, number][] {
    const out: [string, number][] = [];
    while (out.length < count) {
      const last = this.#tail;
      if (last === 0) break;
      out.push(this.#entry(last));
      this.#findPath(last);
      this.#unlink(last);
      this.#release(last);
    }
    this.#compactIfSparse();
    return out;
  }

  /** All entries, lowest first. */
  *entries(): IterableIterator<[string, number]> {
    for (let x = this.#words[HEADER + LINKS]; x !== 0; x = this.#words[x + LINKS]) {
      yield this.#entry(x);
    }
  }

  /** The (member, score) pair of a node. */
  #entry(node: number): [string, number] {
    return [this.#members[this.#words[node + ID]], this.#scores[node >> 1]];
  }

  /** True when the node sorts strictly before the key (score, member). */
  #before(node: number, score: number, member: string): boolean {
    const s = this.#scores[node >> 1];
    return s < score || (s === score && this.#members[this.#words[node + ID]] < member);
  }

  /**
   * Walks down to the key (score, member), filling the update path: per level, the last node
   * before the key, and that node's rank (header = 0). Returns how many entries sort before the
   * key. The hot loop of every insert, delete and rank, hence the inlined comparison.
   */
  #search(score: number, member: string): number {
    const words = this.#words;
    const scores = this.#scores;
    const members = this.#members;
    const update = this.#update;
    const rank = this.#rank;
    let x = HEADER;
    let below = 0;
    for (let i = this.#level - 1; i >= 0; i--) {
      const link = LINKS + 2 * i;
      let next = words[x + link];
      while (next !== 0) {
        const s = scores[next >> 1];
        if (s > score || (s === score && members[words[next + ID]] >= member)) break;
        below += words[x + link + 1];
        x = next;
        next = words[x + link];
      }
      update[i] = x;
      rank[i] = below;
    }
    return below;
  }

  /** Allocates and links a node for a member not in the set; returns its base. */
  #insert(member: string, score: number): number {
    let level = 1;
    while (level < MAX_LEVEL && this.#random() < P) level++;
    const size = LINKS + 2 * level;
    let node = this.#freeBlocks[level];
    if (node !== 0) {
      this.#freeBlocks[level] = this.#words[node + LINKS];
    } else {
      if (this.#top + size > this.#words.length) this.#resize(this.#top + size);
      node = this.#top;
      this.#top += size;
    }
    this.#liveWords += size;
    const id = this.#freeIds.pop() ?? this.#members.length;
    this.#members[id] = member;
    const words = this.#words;
    words.fill(0, node, node + size); // a reused block holds stale links
    words[node + ID] = id;
    words[node + LEVEL] = level;
    this.#scores[node >> 1] = score;
    this.#link(node);
    return node;
  }

  /** Links an unlinked node at the place its score and member give it. */
  #link(node: number): void {
    const words = this.#words;
    const update = this.#update;
    const rank = this.#rank;
    const level = words[node + LEVEL];
    if (level > this.#level) {
      // New levels start at the header, whose empty pointer there spans the whole list.
      for (let i = this.#level; i < level; i++) words[HEADER + LINKS + 2 * i + 1] = this.#length;
      this.#level = level;
    }
    this.#search(this.#scores[node >> 1], this.#members[words[node + ID]]);
    for (let i = 0; i < level; i++) {
      const link = LINKS + 2 * i;
      const prev = update[i];
      // rank[0] - rank[i] nodes lie between prev and the new node at level 0.
      const between = rank[0] - rank[i];
      words[node + link] = words[prev + link];
      words[prev + link] = node;
      words[node + link + 1] = words[prev + link + 1] - between;
      words[prev + link + 1] = between + 1;
    }
    // Pointers above the node's level now skip one more node.
    for (let i = level; i < this.#level; i++) words[update[i] + LINKS + 2 * i + 1]++;
    words[node + BACK] = update[0];
    const next = words[node + LINKS];
    if (next !== 0) words[next + BACK] = node;
    else this.#tail = node;
    this.#length++;
  }

  /** Fills the update path for a linked node: its predecessor at each level. */
  #findPath(node: number): void {
    const words = this.#words;
    this.#search(this.#scores[node >> 1], this.#members[words[node + ID]]);
    if (words[this.#update[0] + LINKS] !== node) throw new Error("zset: skiplist out of sync");
  }

  /** Unlinks a node whose predecessors at each level are in the update path. */
  #unlink(node: number): void {
    const words = this.#words;
    const update = this.#update;
    for (let i = 0; i < this.#level; i++) {
      const link = LINKS + 2 * i;
      const prev = update[i];
      if (words[prev + link] === node) {
        words[prev + link + 1] += words[node + link + 1] - 1;
        words[prev + link] = words[node + link];
      } else {
        words[prev + link + 1]--;
      }
    }
    const next = words[node + LINKS];
    if (next !== 0) words[next + BACK] = words[node + BACK];
    else this.#tail = words[node + BACK];
    while (this.#level > 1 && words[HEADER + LINKS + 2 * (this.#level - 1)] === 0) {
      words[HEADER + LINKS + 2 * (this.#level - 1) + 1] = 0;
      this.#level--;
    }
    this.#length--;
  }

  /** Frees an unlinked node's block, ID and member. */
  #release(node: number): void {
    const words = this.#words;
    const level = words[node + LEVEL];
    const id = words[node + ID];
    const member = this.#members[id];
    this.#nodes.delete(member);
    this.#memberBytes -= member.length;
    this.#members[id] = "";
    this.#freeIds.push(id);
    words[node + LINKS] = this.#freeBlocks[level];
    this.#freeBlocks[level] = node;
    this.#liveWords -= LINKS + 2 * level;
  }

  /** Moves the arena into a new buffer of `words` words (at least the used part). */
  #resize(words: number): void {
    const old = this.#words;
    const buffer = new ArrayBuffer(Math.max(words, old.length * 2) * 4);
    this.#words = new Int32Array(buffer);
    this.#words.set(old.subarray(0, this.#top));
    this.#scores = new Float64Array(buffer);
  }

  /**
   * Rebuilds the arena, in order and without free blocks, once live blocks fill at most a
   * quarter of it: a set that shrank gives its memory back. The new arena is half full, so a
   * rebuild follows at least as many removals (or adds) as it costs steps.
   */
  #compactIfSparse(): void {
    if (this.#words.length <= INITIAL_WORDS || this.#liveWords * 4 > this.#words.length) return;
    const oldWords = this.#words;
    const oldScores = this.#scores;
    const oldMembers = this.#members;
    const buffer = new ArrayBuffer(Math.max(INITIAL_WORDS, this.#liveWords * 2) * 4);
    const words = new Int32Array(buffer);
    const scores = new Float64Array(buffer);
    const members = [""];
    words[HEADER + LEVEL] = MAX_LEVEL;
    // Append the nodes in order, keeping each level's last node and its rank to link from.
    const last = new Int32Array(MAX_LEVEL);
    const lastRank = new Int32Array(MAX_LEVEL);
    let top = HEADER_WORDS;
    let prev = HEADER;
    let rank = 0;
    for (let x = oldWords[HEADER + LINKS]; x !== 0; x = oldWords[x + LINKS]) {
      rank++;
      const level = oldWords[x + LEVEL];
      const node = top;
      top += LINKS + 2 * level;
      const member = oldMembers[oldWords[x + ID]];
      words[node + ID] = members.length;
      members.push(member);
      words[node + LEVEL] = level;
      words[node + BACK] = prev;
      scores[node >> 1] = oldScores[x >> 1];
      for (let i = 0; i < level; i++) {
        words[last[i] + LINKS + 2 * i] = node;
        words[last[i] + LINKS + 2 * i + 1] = rank - lastRank[i];
        last[i] = node;
        lastRank[i] = rank;
      }
      this.#nodes.set(member, node);
      prev = node;
    }
    // A pointer past the end spans to the end, as insertion keeps it.
    for (let i = 0; i < this.#level; i++) words[last[i] + LINKS + 2 * i + 1] = rank - lastRank[i];
    this.#words = words;
    this.#scores = scores;
    this.#members = members;
    this.#freeIds = [];
    this.#freeBlocks.fill(0);
    this.#top = top;
    this.#tail = prev;
  }

  /** The number of entries scoring below `score` (at or below it when `inclusive`). */
  #countBelow(score: number, inclusive: boolean): number {
    const words = this.#words;
    const scores = this.#scores;
    let x = HEADER;
    let n = 0;
    for (let i = this.#level - 1; i >= 0; i--) {
      const link = LINKS + 2 * i;
      let next = words[x + link];
      while (next !== 0) {
        const s = scores[next >> 1];
        if (!(s < score || (inclusive && s === score))) break;
        n += words[x + link + 1];
        x = next;
        next = words[x + link];
      }
    }
    return n;
  }

  /** `n` entries from 0-based `rank` on, going down when `backward`; all must exist. */
  #walk(rank: number, n: number, backward: boolean): [string, number][] {
    const words = this.#words;
    // Find the node at `rank` by spans; the header is rank 0 in span terms.
    const target = rank + 1;
    let x = HEADER;
    let traversed = 0;
    for (let i = this.#level - 1; i >= 0 && traversed !== target; i--) {
      const link = LINKS + 2 * i;
      let next = words[x + link];
      while (next !== 0 && traversed + words[x + link + 1] <= target) {
        traversed += words[x + link + 1];
        x = next;
        next = words[x + link];
      }
    }
    if (traversed !== target) throw new Error("zset: rank out of range");
    const out = new Array<[string, number]>(n);
    const step = backward ? BACK : LINKS;
    for (let i = 0; i < n; i++, x = words[x + step]) out[i] = this.#entry(x);
    return out;
  }
}
