/**
 * Prefix-aware routing: which candidate pod should serve a prompt.
 *
 * For each candidate, `matched` is the number of leading blocks of the prompt the pod holds (in
 * any tier), `offloaded` how many of those it holds only outside GPU memory. The cost function:
 *
 *     cache(p) = (matched(p) - (1 - offloadWeight) * offloaded(p)) / totalBlocks   (0 if no block)
 *     load(p)  = load(p) / max(load over candidates)                                (0 if all 0)
 *     score(p) = cacheWeight * cache(p) - loadWeight * load(p)
 *
 * The highest score wins; ties go to the lower load, then round-robin. When the candidates' loads
 * are out of balance (max - min > imbalanceAbs and max > imbalanceRel * min), the cache is ignored
 * and the least loaded pod wins (ties: the better cache score): a hot prefix must not pile every
 * request onto one pod.
 *
 * Matching walks the prompt's blocks in order and stops at the first block no remaining
 * candidate holds, so a prompt is only hashed as far as some pod's cache reaches (plus a chunk).
 * A prompt's hashes come from the learned chains (chain.ts) while they know the next link, then
 * from the hasher.
 *
 * @module
 */
import type { BlockHasher, PromptKeys } from "./block_hash.ts";
import type { CacheMap } from "./store.ts";
import { toU32 } from "./fingerprint.ts";
import { MASKS } from "./index.ts";

/**
 * Blocks hashed and looked up together: their index lookups overlap in memory. Matching may so
 * hash up to this many blocks past the first one no candidate holds.
 */
const CHUNK_BLOCKS = 8;

/** Weights of the cost function. */
export interface RouteWeights {
  cacheWeight: number;
  loadWeight: number;
  /** Worth of an offloaded (CPU, disk) block relative to one in GPU memory, in [0, 1]. */
  offloadWeight: number;
  imbalanceAbs: number;
  imbalanceRel: number;
}

export const DEFAULT_WEIGHTS: RouteWeights = {
  cacheWeight: 1,
  loadWeight: 0.5,
  offloadWeight: 0.8,
  imbalanceAbs: 32,
  imbalanceRel: 1.5,
};

/** A candidate pod and its load (running + waiting requests). */
export interface Candidate {
  id: string;
  load: number;
}

/** The blocks of a prompt: token ids to hash, or the hashes themselves (as two u32 each). */
export type PromptBlocks =
  | { tokens: ArrayLike<number>; keys?: PromptKeys }
  | { hashes: Uint32Array };

export interface PodScore {
  id: string;
  matched_blocks: number;
  score: number;
}

export interface RouteResult {
  pod: string;
  /** "cache": by score; "load": out of balance, by load. */
  mode: "cache" | "load";
  total_blocks: number;
  /** Blocks hashed or looked up before matching stopped. */
  visited_blocks: number;
  scores: PodScore[];
}

/** Routes prompts against a {@link CacheMap}; one per process (it reuses its buffers). */
export class Router {
  #map: CacheMap;
  #hasher: BlockHasher;
  #weights: RouteWeights;
  #rr = 0;
  #matched: Int32Array;
  #offloaded: Int32Array;
  #active: Uint32Array;
  #candSlots: Int32Array;
  #chunk = new Uint32Array(CHUNK_BLOCKS * 2);
  /** And their records (-1: not indexed). */
  #chunkRecs = new Int32Array(CHUNK_BLOCKS);

  #useChain: boolean;
  /** The prompt's token ids as u32, for the tags (see toU32). */
  #u32 = { buf: new Uint32Array(4096), valid: 0 };

  constructor(
    map: CacheMap,
    hasher: BlockHasher,
    weights: RouteWeights = DEFAULT_WEIGHTS,
    options: { learnedChains?: boolean } = {},
  ) {
    this.#useChain = options.learnedChains ?? true;
    this.#map = map;
    this.#hasher = hasher;
    this.#weights = weights;
    this.#matched = new Int32Array(map.maxPods);
    this.#offloaded = new Int32Array(map.maxPods);
    this.#active = new Uint32Array(Math.ceil(map.maxPods / 32));
    this.#candSlots = new Int32Array(0);
  }

  get weights(): RouteWeights {
    return this.#weights;
  }

  get blockSize(): number {
    return this.#hasher.blockSize;
  }

  /** Chooses a pod; `candidates` empty means every known pod of the model (load 0). */
  route(model: string, blocks: PromptBlocks, candidates: readonly Candidate[]): RouteResult | null {
    const map = this.#map;
    const cands = candidates.length > 0 ? candidates : map.pods()
      .filter((p) => p.model === model)
      .map((p) => ({ id: p.id, load: 0 }));
    const n = cands.length;
    if (n === 0) return null;
    if (this.#candSlots.length < n) this.#candSlots = new Int32Array(n * 2);
    const slots = this.#candSlots;
    const active = this.#active;
    active.fill(0);
    for (let c = 0; c < n; c++) {
      const p = map.pod(cands[c].id);
      const s = p !== undefined && p.model === model ? p.slot : -1;
      slots[c] = s;
      if (s >= 0) {
        active[s >>> 5] |= 1 << (s & 31);
        this.#matched[s] = 0;
        this.#offloaded[s] = 0;
      }
    }

    // Walk the prompt's blocks while some candidate still matches.
    const hasher = this.#hasher;
    const given = "hashes" in blocks ? blocks.hashes : null;
    const tokens = "tokens" in blocks ? blocks.tokens : null;
    const keys = "tokens" in blocks ? blocks.keys : undefined;
    const bs = hasher.blockSize;
    const total = tokens !== null ? Math.floor(tokens.length / bs) : given!.length >> 1;
    // Learned chains first (no hashing); the hasher from the first link they do not know. The
    // chain of a prompt with a cache salt, or under a LoRA no event named, is the one earlier
    // routes of it taught (events show no salt); a model with no blocks has nothing to follow.
    const ix = map.index(model);
    const chain = this.#useChain && tokens !== null && ix !== undefined ? map.chain : null;
    let u32: Uint32Array = this.#u32.buf, tagBlocks = 0; // blocks with tags: up to a bad token id
    if (chain !== null) {
      u32 = toU32(tokens!, this.#u32);
      tagBlocks = Math.floor(this.#u32.valid / bs);
    }
    let following = tagBlocks > 0; // every block so far was reached through a link
    let hashed = -1; // blocks the hasher has produced (-1: not started)
    let visited = 0;
    if (ix !== undefined) {
      const w = ix.words;
      const matched = this.#matched, offloaded = this.#offloaded;
      let live = anySet(active);
      const chunk = this.#chunk, chunkRecs = this.#chunkRecs;
      let ready = 0, chunkStart = 0;
      let prev = 0; // the record of the block before (0: the chain's start; -1: not indexed)
      for (let i = 0; i < total && live; i++) {
        let rec = -1;
        const tagged = i < tagBlocks;
        if (tagged) {
          chain!.tag(u32, i * bs, bs);
          if (i === 0) chain!.rootKey(keys?.loraName, keys?.cacheSalt);
        }
        if (following) {
          rec = tagged ? ix.follow(prev, chain!.tagHi, chain!.tagLo) : -1;
          if (rec > 0) chain!.hits++;
          else {
            following = false;
            if (tagged) chain!.misses++;
          }
        }
        if (rec < 0 && i >= ready && prev > 0) {
          // The record after the previous block's, by its hash: along a run of records no
          // hash-table slot is read.
          let hi: number, lo: number;
          if (given !== null) {
            hi = given[i * 2];
            lo = given[i * 2 + 1];
          } else {
            hashed = this.#hashTo(i, hashed, tokens!, keys);
            hi = hasher.hi;
            lo = hasher.lo;
          }
          rec = ix.findAfter(prev, hi, lo);
          if (rec > 0 && tagged) chain!.link(ix, prev, rec);
        }
        if (rec < 0) {
          if (i >= ready) {
            // The next few blocks' hashes, and their slots touched back to back, so that the
            // memory misses of a chunk overlap.
            const n = Math.min(CHUNK_BLOCKS, total - i);
            for (let k = 0; k < n; k++) {
              const b = i + k;
              if (given !== null) {
                chunk[k * 2] = given[b * 2];
                chunk[k * 2 + 1] = given[b * 2 + 1];
                continue;
              }
              hashed = this.#hashTo(b, hashed, tokens!, keys);
              chunk[k * 2] = hasher.hi;
              chunk[k * 2 + 1] = hasher.lo;
            }
            for (let k = 0; k < n; k++) ix.touch(chunk[k * 2], chunk[k * 2 + 1]);
            // Then their records (the pod masks), the same way.
            for (let k = 0; k < n; k++) {
              const r = ix.find(chunk[k * 2], chunk[k * 2 + 1]);
              chunkRecs[k] = r;
              if (r > 0) ix.touchRecord(r);
            }
            chunkStart = i;
            ready = i + n;
          }
          rec = chunkRecs[i - chunkStart];
          if (rec > 0 && tagged && prev >= 0) {
            // A block hashed here that a pod holds: link it, so that the next prompt through it
            // needs no hashing (its event came before this process, or from an orphan, or its
            // chain's first block is salted and no event can teach it).
            chain!.link(ix, prev, rec);
          }
        }
        visited++;
        prev = rec;
        const c = rec > 0 ? ix.chunk(rec) : null;
        const o = rec > 0 ? ix.at(rec) + MASKS : 0;
        live = false;
        for (let j = 0; j < w; j++) {
          const a = active[j];
          if (a === 0) continue;
          const g = c === null ? 0 : c[o + j] & a;
          const off = c === null ? 0 : c[o + w + j] & a & ~g;
          // Pods that stop matching here keep `matched` = i.
          let ended = a & ~(g | off);
          while (ended !== 0) {
            const b = 31 - Math.clz32(ended & -ended);
            matched[j * 32 + b] = i;
            ended &= ended - 1;
          }
          let offOnly = off;
          while (offOnly !== 0) {
            const b = 31 - Math.clz32(offOnly & -offOnly);
            offloaded[j * 32 + b]++;
            offOnly &= offOnly - 1;
          }
          active[j] = g | off;
          if ((g | off) !== 0) live = true;
        }
      }
      // Pods still matching hold every visited block.
      for (let j = 0; j < w; j++) {
        let a = active[j];
        while (a !== 0) {
          const b = 31 - Math.clz32(a & -a);
          matched[j * 32 + b] = visited;
          a &= a - 1;
        }
      }
    }

    return this.#score(cands, slots, total, visited);
  }

  /**
   * Runs the hasher on to block `b` of the prompt (its hash is then the hasher's hi/lo), `hashed`
   * blocks having been hashed (-1: not started); returns how many have been.
   */
  #hashTo(b: number, hashed: number, tokens: ArrayLike<number>, keys?: PromptKeys): number {
    const hasher = this.#hasher;
    if (hashed < 0) {
      hasher.start(tokens, keys);
      hashed = 0;
    }
    for (; hashed <= b; hashed++) hasher.next();
    return hashed;
  }

  /** Each candidate's cache score in the route being scored. */
  #cacheScores = new Float64Array(0);

  /**
   * Scores the candidates on what matching left in #matched and #offloaded, and picks one. (Apart
   * from the matching: V8 optimises a smaller function sooner, and the route is hot.)
   */
  #score(
    cands: readonly Candidate[],
    slots: Int32Array,
    total: number,
    visited: number,
  ): RouteResult {
    const n = cands.length;
    const wts = this.#weights;
    let maxLoad = 0, minLoad = Infinity;
    for (const c of cands) {
      maxLoad = Math.max(maxLoad, c.load);
      minLoad = Math.min(minLoad, c.load);
    }
    const imbalanced = maxLoad - minLoad > wts.imbalanceAbs && maxLoad > wts.imbalanceRel * minLoad;
    const scores: PodScore[] = new Array(n);
    // Kept from route to route (a typed array is a buffer allocated outside the heap).
    if (this.#cacheScores.length < n) this.#cacheScores = new Float64Array(n);
    const cacheScores = this.#cacheScores;
    for (let c = 0; c < n; c++) {
      const s = slots[c];
      const m = s >= 0 ? this.#matched[s] : 0;
      const o = s >= 0 ? this.#offloaded[s] : 0;
      const cache = total > 0 ? (m - (1 - wts.offloadWeight) * o) / total : 0;
      const load = maxLoad > 0 ? cands[c].load / maxLoad : 0;
      cacheScores[c] = cache;
      scores[c] = {
        id: cands[c].id,
        matched_blocks: m,
        score: wts.cacheWeight * cache - wts.loadWeight * load,
      };
    }
    const start = this.#rr++ % n;
    let best = -1;
    for (let k = 0; k < n; k++) {
      const c = (start + k) % n;
      if (best < 0) {
        best = c;
        continue;
      }
      const better = imbalanced
        ? cands[c].load < cands[best].load ||
          (cands[c].load === cands[best].load && cacheScores[c] > cacheScores[best])
        : scores[c].score > scores[best].score ||
          (scores[c].score === scores[best].score && cands[c].load < cands[best].load);
      if (better) best = c;
    }
    return {
      pod: cands[best].id,
      mode: imbalanced ? "load" : "cache",
      total_blocks: total,
      visited_blocks: visited,
      scores,
    };
  }
}

function anySet(a: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return true;
  return false;
}
