/**
 * The cache map: pods, the model each serves, and per model the {@link BlockIndex} of which pod
 * holds which block. Events from any source (ZMQ, HTTP) are applied here, in order per pod.
 *
 * Data-parallel ranks of one pod are merged (a block is the pod's while any rank reports it; a
 * rank's `BlockRemoved` or `AllBlocksCleared` takes it from the whole pod): a router places a
 * request on a pod, and under-claiming a cache only costs a little prefill.
 *
 * @module
 */
import { BlockIndex, type Tier } from "./index.ts";
import { CLEARED, eventsToBatch, ParsedBatch, STORED } from "./fast_events.ts";
import { type ChainTable, ROOT_HI, ROOT_LO } from "./chain.ts";
import type { KvEvent } from "./events.ts";
import type { BlockHasher } from "./block_hash.ts";

/** What the index knows of a pod. */
export interface PodState {
  readonly id: string;
  model: string;
  /**
   * Bit of the pod in the index masks (a reset may give it another while the old one drains: see
   * {@link CacheMapOptions.onDrain}).
   */
  slot: number;
  /** Blocks the pod holds (any tier). */
  blocks: number;
  /** Last event or heartbeat (ms since the epoch). */
  lastSeen: number;
  events: number;
  /** Times its cache was reset (AllBlocksCleared, restart, model change). */
  resets: number;
  /**
   * Chain roots (stored blocks after no parent) of its events whose hash the service's hasher
   * reproduced: above 0, its engine hashes with the configured algorithm and seed.
   */
  rootsReproduced: number;
  /** And those it did not reproduce. */
  rootsMismatched: number;
}

/** A pod's first chain roots, none reproduced, after which the operator is told. */
const ROOTS_BEFORE_WARNING = 16;

/** No room for another pod (MAX_PODS). */
export class PodLimitError extends Error {
  constructor(max: number) {
    super(`pod limit reached (${max}): raise MAX_PODS`);
    this.name = "PodLimitError";
  }
}

/** Options of a {@link CacheMap}. */
export interface CacheMapOptions {
  maxPods: number;
  /** Blocks indexed at most, all models together (default: no bound). */
  maxBlocks?: number;
  /**
   * Where stored events' chain links are learned (with the engines' block size). With `hasher`
   * (the service's, as routers hash), a chain's first block is checked, and `uncheckedAfter`
   * (default 0: never) lets a pod's roots in unchecked: see {@link CacheMap}.
   */
  chain?: { table: ChainTable; blockSize: number; hasher?: BlockHasher; uncheckedAfter?: number };
  /** Told once per engine start when none of a pod's first 16 chain roots was reproduced. */
  warn?: (message: string, fields: Record<string, unknown>) => void;
  now?: () => number;
  /** Slots of an index segment at most (tests: see BlockIndex). */
  maxSegmentSlots?: number;
  /**
   * Drop a removed or reset pod's blocks a step at a time ({@link CacheMap.drain}) rather than in
   * one sweep of the whole index; `onDrain` is told when there is draining to do (the service
   * schedules steps between its other work). Default: one sweep, at once.
   */
  onDrain?: () => void;
}

/** Counts of one applied batch. */
export interface ApplyResult {
  stored: number;
  removed: number;
  cleared: number;
  /** New blocks not indexed: the index holds maxBlocks, or their segment is at its largest. */
  refused: number;
}

/** Records a step of a pod's drain visits in the service (see {@link CacheMap.serviceStep}). */
export const DRAIN_STEP_RECORDS = 4096;
/** A drain step in the service stops at its first slice past this (ms). */
export const DRAIN_STEP_MS = 0.2;
/** Records between two looks at whether a drain step has run long enough. */
const DRAIN_SLICE = 1024;

/** New blocks one event may add at most (a small integer, whatever MAX_INDEX_BLOCKS is). */
const MAX_ROOM = 0x3fffffff;

/**
 * Pods and per-model block indexes.
 *
 * Chain links: an event's blocks are learned after their parent's (see chain.ts). A chain's first
 * block (no parent) is where a cache salt enters the hashes, and engines that do not send
 * `extra_keys` report a salted prompt's blocks as if unsalted: learned so, the unsalted prompt
 * would follow them to the salted blocks. So with a hasher, a first block is hashed here too: one
 * the hasher reproduces is learned; one it does not is not (`rootsRefused`). An engine that hashes
 * with a seed the service does not have then teaches no chain; with `uncheckedAfter` N > 0, a pod
 * none of whose first blocks was reproduced and more than N were not has its roots learned
 * unchecked (links are then the only way to follow its prompts), but the service cannot tell such
 * an engine from one whose traffic is all salted, whose hidden salts it then learns. A pod's counts
 * start again when its engine restarts or it changes model, not when it clears its cache.
 */
export class CacheMap {
  readonly maxPods: number;
  readonly maxBlocks: number;
  readonly chain: ChainTable | null;
  #chainBlockSize: number;
  #rootHasher: BlockHasher | null;
  #uncheckedAfter: number;
  #warn: ((message: string, fields: Record<string, unknown>) => void) | null;
  /** Blocks in every model's index. */
  #total = 0;
  #now: () => number;
  #maxSegmentSlots: number | undefined;
  #pods = new Map<string, PodState>();
  #free: number[] = [];
  #models = new Map<string, BlockIndex>();
  /** See {@link CacheMapOptions.onDrain} (null: pods are dropped in one sweep). */
  #onDrain: (() => void) | null;
  /** Indexes with drains not ended (each drain frees its slot when it ends). */
  #drainIndexes = new Set<BlockIndex>();
  /** Where {@link apply} puts its events. */
  #scratch = new ParsedBatch();

  constructor(options: CacheMapOptions) {
    this.maxPods = options.maxPods;
    this.maxBlocks = options.maxBlocks ?? Infinity;
    this.chain = options.chain?.table ?? null;
    this.#chainBlockSize = options.chain?.blockSize ?? 0;
    this.#rootHasher = options.chain?.hasher ?? null;
    this.#uncheckedAfter = options.chain?.uncheckedAfter ?? 0;
    this.#warn = options.warn ?? null;
    if (this.#rootHasher !== null && this.#rootHasher.blockSize !== this.#chainBlockSize) {
      throw new RangeError("the chain's hasher hashes another block size");
    }
    this.#now = options.now ?? Date.now;
    this.#maxSegmentSlots = options.maxSegmentSlots;
    this.#onDrain = options.onDrain ?? null;
    for (let s = options.maxPods - 1; s >= 0; s--) this.#free.push(s);
  }

  /** The index of a model (undefined before its first block). */
  index(model: string): BlockIndex | undefined {
    return this.#models.get(model);
  }

  models(): string[] {
    return [...this.#models.keys()];
  }

  pod(id: string): PodState | undefined {
    return this.#pods.get(id);
  }

  pods(): PodState[] {
    return [...this.#pods.values()];
  }

  /** Blocks indexed over all models, and the bytes of their tables. */
  totals(): { blocks: number; bytes: number } {
    let bytes = 0;
    for (const ix of this.#models.values()) bytes += ix.bytes;
    return { blocks: this.#total, bytes };
  }

  /** Registers (or refreshes) a pod serving `model`; a model change resets its blocks. */
  touch(id: string, model: string): PodState {
    let p = this.#pods.get(id);
    if (p === undefined) {
      // Slots of pods being dropped come back when their drains end: sweep on until one does.
      while (this.#free.length === 0 && this.#drainIndexes.size > 0) this.drain(1 << 16);
      const slot = this.#free.pop();
      if (slot === undefined) throw new PodLimitError(this.maxPods);
      p = {
        id,
        model,
        slot,
        blocks: 0,
        lastSeen: this.#now(),
        events: 0,
        resets: 0,
        rootsReproduced: 0,
        rootsMismatched: 0,
      };
      this.#pods.set(id, p);
    } else if (p.model !== model) {
      this.reset(id, true);
      p.model = model;
    }
    p.lastSeen = this.#now();
    return p;
  }

  /**
   * Drops every block of a pod (it stays known). `restarted`: its engine started again (it may hash
   * with another seed now: PYTHONHASHSEED unset gives a random one), not only cleared its cache.
   */
  reset(id: string, restarted = false): number {
    const p = this.#pods.get(id);
    if (p === undefined) return 0;
    const ix = this.#models.get(p.model);
    if (ix === undefined || p.blocks === 0) {
      this.#zero(p, restarted); // no block of its to drop
      return 0;
    }
    if (this.#onDrain !== null && this.#free.length > 0) {
      // The pod goes on under a new slot; its old one is drained, and freed after.
      const dropped = p.blocks;
      this.#beginDrop(ix, p.slot);
      p.slot = this.#free.pop()!;
      this.#zero(p, restarted);
      return dropped;
    }
    const dropped = this.#dropNow(ix, p.slot);
    this.#zero(p, restarted);
    return dropped;
  }

  /** Drops pod `slot` from `ix` in one sweep; returns the blocks it held. */
  #dropNow(ix: BlockIndex, slot: number): number {
    const before = ix.size;
    const dropped = ix.dropPod(slot);
    this.#total += ix.size - before;
    ix.maintain();
    return dropped;
  }

  #zero(p: PodState, restarted: boolean): void {
    p.blocks = 0;
    p.resets++;
    if (restarted) p.rootsReproduced = p.rootsMismatched = 0;
  }

  /** Forgets a pod (gone, or silent past the heartbeat timeout); its slot is reused. */
  remove(id: string): boolean {
    const p = this.#pods.get(id);
    if (p === undefined) return false;
    this.#pods.delete(id);
    const ix = this.#models.get(p.model);
    if (ix !== undefined && p.blocks > 0) {
      if (this.#onDrain !== null) {
        this.#beginDrop(ix, p.slot); // the slot is freed when the drain ends
        return true;
      }
      this.#dropNow(ix, p.slot);
    }
    this.#free.push(p.slot);
    return true;
  }

  #beginDrop(ix: BlockIndex, slot: number): void {
    ix.beginDrop(slot);
    this.#drainIndexes.add(ix);
    this.#onDrain!();
  }

  /** Pods being dropped (see {@link CacheMapOptions.onDrain}). */
  get draining(): number {
    let n = 0;
    for (const ix of this.#drainIndexes) n += ix.draining;
    return n;
  }

  /**
   * Visits up to `budget` records of pods being dropped, shared between the models that have
   * some, in slices of 1,024, stopping early once `enough()` says so (the service bounds a step by
   * time: the first steps of a process run before V8 has optimized them); a drain that ends frees
   * its slot. Returns whether drains are left.
   */
  drain(budget: number, enough: () => boolean = () => false): boolean {
    const share = Math.max(DRAIN_SLICE, Math.ceil(budget / Math.max(1, this.#drainIndexes.size)));
    let stop = false;
    // Models take turns to go first: one whose turn ended early goes to the back.
    for (const ix of [...this.#drainIndexes]) {
      const before = ix.size;
      for (let left = share; left > 0 && ix.draining > 0 && !stop; left -= DRAIN_SLICE) {
        for (const slot of ix.drainStep(Math.min(left, DRAIN_SLICE))) this.#free.push(slot);
        stop = enough();
      }
      this.#total += ix.size - before;
      ix.maintain();
      this.#drainIndexes.delete(ix);
      if (ix.draining > 0) this.#drainIndexes.add(ix);
      if (stop) break;
    }
    return this.#drainIndexes.size > 0;
  }

  /**
   * One drain step as the service runs it between its other work: up to
   * {@link DRAIN_STEP_RECORDS} records, stopping at the first slice past {@link DRAIN_STEP_MS}.
   * Returns whether drains are left.
   */
  serviceStep(): boolean {
    const until = performance.now() + DRAIN_STEP_MS;
    return this.drain(DRAIN_STEP_RECORDS, () => performance.now() > until);
  }

  /** Removes pods not seen for `timeoutMs`; returns their ids. */
  expire(timeoutMs: number, keep: (id: string) => boolean = () => false): string[] {
    const cutoff = this.#now() - timeoutMs;
    const gone: string[] = [];
    for (const p of this.#pods.values()) {
      if (p.lastSeen < cutoff && !keep(p.id)) gone.push(p.id);
    }
    for (const id of gone) this.remove(id);
    return gone;
  }

  /**
   * Links the `count` blocks whose records are in {@link #recs} (-1: refused), the first after
   * record `parent` (0: a chain's first block, under LoRA `lora`), their tokens from `tokenStart`.
   */
  #link(
    ix: BlockIndex,
    parent: number,
    tokens: Uint32Array,
    tokenStart: number,
    count: number,
    lora: string | null,
  ): void {
    const chain = this.chain!;
    const bs = this.#chainBlockSize, recs = this.#recs;
    for (let k = 0; k < count; k++) {
      const rec = recs[k];
      if (rec < 0) return; // refused (index full): the chain stops here
      chain.tag(tokens, tokenStart + k * bs, bs);
      if (parent === 0) chain.rootKey(lora, null);
      chain.link(ix, parent, rec);
      parent = rec;
    }
  }

  /** Records of the blocks of the stored event being applied (-1: refused). */
  #recs = new Int32Array(64);

  /** Whether a chain's first block (`hs` block `at`) may be learned: see {@link CacheMap}. */
  #rootLearnable(
    p: PodState,
    tokens: Uint32Array,
    tokenStart: number,
    hs: Uint32Array,
    at: number,
    lora: string | null,
  ): boolean {
    const h = this.#rootHasher;
    if (h === null) return true;
    let same = false;
    try {
      const end = tokenStart + h.blockSize;
      h.start(tokens, lora === null ? undefined : { loraName: lora }, tokenStart, end);
      h.next();
      same = h.hi === hs[at * 2] && h.lo === hs[at * 2 + 1];
    } catch (e) {
      // Not hashable here (a sha256 pickle past one frame): not reproduced.
      if (!(e instanceof RangeError)) throw e;
    }
    if (same) {
      p.rootsReproduced++;
      return true;
    }
    p.rootsMismatched++;
    const n = this.#uncheckedAfter;
    const unchecked = p.rootsReproduced === 0 && n > 0 && p.rootsMismatched > n;
    if (p.rootsReproduced === 0 && p.rootsMismatched === ROOTS_BEFORE_WARNING) {
      this.#warn?.("none of a pod's chain roots reproduced", {
        pod: p.id,
        roots: p.rootsMismatched,
        learned: unchecked ? "unchecked (CHAIN_UNCHECKED_AFTER)" : "no",
        check: "HASH_SEED (the engines' PYTHONHASHSEED), HASH_ALGO, BLOCK_SIZE, " +
          "CHAIN_UNCHECKED_AFTER; or all its prompts have a cache salt the events hide",
      });
    }
    return unchecked;
  }

  /** Applies a batch (read by readEventBatch, or built by eventsToBatch). */
  applyParsed(id: string, model: string, b: ParsedBatch): ApplyResult {
    const p = this.touch(id, model);
    const r: ApplyResult = { stored: 0, removed: 0, cleared: 0, refused: 0 };
    let ix = this.#models.get(model);
    const hs = b.hashes;
    for (let e = 0; e < b.events; e++) {
      p.events++;
      const kind = b.kinds[e];
      if (kind === CLEARED) {
        this.reset(id);
        r.cleared++;
        continue;
      }
      const tier = b.tiers[e] as Tier;
      const from = b.starts[e], to = from + b.counts[e];
      if (kind === STORED) {
        if (ix === undefined) {
          this.#models.set(model, ix = new BlockIndex(this.maxPods, this.#maxSegmentSlots));
        }
        const root = b.parents[e * 2] === ROOT_HI && b.parents[e * 2 + 1] === ROOT_LO;
        const parent = root ? 0 : ix.find(b.parents[e * 2], b.parents[e * 2 + 1]);
        ix.touchRun(hs, from, to);
        if (this.#recs.length < to - from) this.#recs = new Int32Array(to - from);
        // Each new block's record after its parent's (the event's blocks form a chain); new blocks
        // past MAX_INDEX_BLOCKS are refused.
        const before = ix.size;
        const room = Math.max(0, Math.min(this.maxBlocks - this.#total, MAX_ROOM));
        ix.addRun(hs, from, to, p.slot, tier, parent, room, this.#recs);
        p.blocks += ix.runNewlyHeld;
        this.#total += ix.size - before;
        r.stored += ix.runStored;
        r.refused += ix.runRefused; // a full segment counts as index full too
        const bs = this.#chainBlockSize;
        if (
          this.chain !== null && b.learnable[e] === 1 && b.blockSizes[e] === bs && to > from &&
          b.tokenCounts[e] === (to - from) * bs
        ) {
          // An empty LoRA name went into the engine's hashes, but no prompt can name it.
          const lora = b.loraNames[e];
          if (lora === "") this.chain.loraRefused++;
          else if (root && !this.#rootLearnable(p, b.tokens, b.tokenStarts[e], hs, from, lora)) {
            this.chain.rootsRefused++;
          } else if (parent < 0) this.chain.orphans += to - from;
          else this.#link(ix, parent, b.tokens, b.tokenStarts[e], to - from, lora);
        }
      } else {
        if (ix === undefined) continue;
        const before = ix.size;
        ix.touchRun(hs, from, to);
        p.blocks -= ix.removeRun(hs, from, to, p.slot, tier);
        this.#total += ix.size - before;
        r.removed += to - from;
      }
    }
    // Records are recycled or compacted between events only (#recs holds an event's).
    ix?.maintain();
    return r;
  }

  /** Applies a pod's events in order. */
  apply(id: string, model: string, events: readonly KvEvent[]): ApplyResult {
    eventsToBatch(events, this.#scratch);
    return this.applyParsed(id, model, this.#scratch);
  }
}
