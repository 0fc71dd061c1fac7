/**
 * {@link SharedShardTable}: a hash table on `SharedArrayBuffer`s that a pool
 * of Worker isolates uses concurrently.
 *
 * ## Layout
 *
 * Three shared buffers, all passed by {@link SharedShardTable.handle}:
 *
 * - **header** (`Int32Array`): geometry, the arena allocator state (lock, bump
 *   pointer, one free-list head per size class), the global entry count, the
 *   64-bit sequence counter, and one 64-byte block per shard (lock word,
 *   entry count).
 * - **slots** (`Int32Array`): per shard, `slotsPerShard` home slots plus
 *   `slotsPerShard / 8 + 16` overflow slots (so clusters never wrap), each
 *   two words `[hash, ref]`; `ref` 0 is empty, otherwise
 *   `1 + (block offset / 8)`. Each shard is an open-addressing table with
 *   linear probing kept **sorted by `(hash, key)`** (ordered Robin Hood
 *   hashing): an entry sits at or after its home slot (the top bits of its
 *   hash), inserts shift the rest of the cluster right, deletes shift it back
 *   (no tombstones). Lookups stop at the first larger hash. Iteration walks
 *   the slots, so it is in hash order, and cursors resume by `(hash, key)`,
 *   never by slot index: moving entries cannot break the cursor contract.
 * - **arena** (bytes, growable when the runtime allows): blocks whose sizes
 *   are size classes from `minBlockBytes` to `maxBlockBytes` (powers of two
 *   with `sizeClassSteps` steps per doubling: 32, 40, 48, 56, 64, 80, ...),
 *   each holding an 8-byte header, the UTF-8 key and the value. Freed blocks
 *   go on a per-class free list and are reused first; new blocks are carved
 *   from a bump pointer; when the arena cannot grow any more a larger free
 *   block is split. Blocks are not coalesced.
 *
 * ## Locking
 *
 * Each shard has a futex-style mutex (0 free, 1 held, 2 held with waiters):
 * a compare-and-swap fast path, a short spin, then `Atomics.wait`. Every
 * operation holds exactly one shard lock; allocation additionally takes the
 * arena lock, always in the order shard → arena, so there is no deadlock.
 * `Atomics.wait` works in Deno workers and in Deno's main isolate (verified
 * on Deno 2.9). A worker terminated while it holds a lock leaves that shard
 * locked forever: terminate workers only when they are idle.
 *
 * @module
 */
import {
  type CursorPosition,
  H_END,
  InvalidCursorError,
  type PageOptions,
  type PageResult,
  runPage,
  type ScanEntry,
  type Scanner,
} from "./cursor.ts";
import { ArenaFullError, KeyTooLongError, TableFullError, ValueTooLargeError } from "./errors.ts";
import { hashByteRange } from "./hash.ts";
import { checkShardCount, overflowSlots } from "./shard_map.ts";

/** Capacity options of {@link SharedShardTable.create}. All are optional. */
export interface SharedShardTableOptions {
  /** Power of two in [1, 65536]. Default 64. */
  shardCount?: number;
  /**
   * Home slots of each shard's open-addressing table: a power of two in
   * [16, 2^24]. Default 16384. Each slot costs 8 bytes of shared memory
   * whether used or not (plus 1/8 more for the overflow area); a shard holds
   * at most `floor(slotsPerShard × maxLoad)` entries.
   */
  slotsPerShard?: number;
  /** Largest fraction of a shard's slots that may be live, in (0, 0.95]. Default 0.8. */
  maxLoad?: number;
  /** Arena size limit in bytes, at most 8 GiB. Default 256 MiB. */
  arenaBytes?: number;
  /**
   * Arena bytes allocated up front when the arena is growable (it doubles on
   * demand up to `arenaBytes`). Default 1 MiB.
   */
  arenaInitialBytes?: number;
  /**
   * Use a growable `SharedArrayBuffer` for the arena when the runtime
   * supports it (Deno does). Default true. When false or unsupported the
   * whole `arenaBytes` is allocated at once (the OS still commits pages lazily).
   */
  growable?: boolean;
  /** Longest key in UTF-8 bytes, in [1, 4096]. Default 256. */
  maxKeyBytes?: number;
  /** Smallest size class (power of two, >= 16). Default 32. */
  minBlockBytes?: number;
  /**
   * Largest size class (power of two, <= 16 MiB). Default 65536. A block holds
   * an 8-byte header, the key and the value, so values up to
   * `maxBlockBytes - 8 - keyBytes` fit; see {@link SharedShardTable.maxValueBytes}.
   */
  maxBlockBytes?: number;
  /**
   * Size classes per doubling: 1 (powers of two only), 2, 4 or 8, and at
   * most `minBlockBytes / 8`. Default 4 (32, 40, 48, 56, 64, 80, ... bytes),
   * which bounds the slack per block to 25% (power-of-two classes waste up to
   * 50%: a 270-byte entry would take a 512-byte block).
   */
  sizeClassSteps?: number;
  /** Initial value of the sequence counter; the first `nextSequence()` returns it + 1. Default 0. */
  sequenceStart?: number;
  /** Lock spins before `Atomics.wait`. Default 64. */
  spinCount?: number;
}

/**
 * A structured-cloneable reference to a table: send it to a worker with
 * `postMessage` and open it there with {@link SharedShardTable.attach}.
 */
export interface SharedShardTableHandle {
  readonly kind: "SharedShardTable";
  readonly version: number;
  readonly header: SharedArrayBuffer;
  readonly slots: SharedArrayBuffer;
  readonly arena: SharedArrayBuffer;
  readonly spinCount: number;
}

/** A snapshot of a table's geometry and usage (racy: other workers keep going). */
export interface SharedShardTableStats {
  shardCount: number;
  slotsPerShard: number;
  /** Most entries the table can ever hold (per-shard limit × shards). */
  maxEntries: number;
  size: number;
  /** Bytes of the slots buffer. */
  slotBytes: number;
  /** Current arena buffer size. */
  arenaBytes: number;
  arenaMaxBytes: number;
  growable: boolean;
  /** Bytes handed out from the arena so far (bump pointer), live or on free lists. */
  arenaCarvedBytes: number;
  /** Bytes in live blocks (by size class, so including slack). */
  arenaLiveBytes: number;
  liveBlocks: number;
  /** Bytes lost to split remainders smaller than the smallest class. */
  arenaLostBytes: number;
  /** Block size of each size class, ascending. */
  sizeClasses: number[];
  /** Free blocks per size class (same order as `sizeClasses`). */
  freeBlocks: number[];
  minBlockBytes: number;
  maxBlockBytes: number;
  maxKeyBytes: number;
}

const MAGIC = 0x53_48_54_42; // "SHTB"
const VERSION = 2;
const KIND = "t2";

// Header word indexes.
const H_MAGIC = 0;
const H_VERSION = 1;
const H_SHARDS = 2;
const H_SLOTS = 3;
const H_MAX_KEY = 4;
const H_MIN_LOG2 = 5;
const H_MAX_LOG2 = 6;
const H_ARENA_MAX_UNITS = 7;
const H_ARENA_LOCK = 8;
const H_BUMP = 9; // units of 8 bytes
const H_LIVE_UNITS = 10;
const H_LIVE_BLOCKS = 11;
const H_SIZE = 12;
const H_MAX_PER_SHARD = 13;
const H_GROWABLE = 14;
const H_STEPS = 16; // size classes per doubling
const H_LOST_UNITS = 17; // split remainders too small for any class
const H_FREE = 64; // MAX_CLASSES words: free-list heads, one per class
const MAX_CLASSES = 128;
const H_SEQ64 = 24; // BigInt64Array index (byte 192, words 48-49)
const H_SHARD_BASE = H_FREE + MAX_CLASSES; // words; 16 words (64 bytes) per shard
const SHARD_WORDS = 16;
const S_LOCK = 0;
const S_COUNT = 1;
const H_CAP = 15; // physical slots per shard (home + overflow)

// Block header: word 0 = keyLen | class << 16 | tag << 24; word 1 = valueLen (or next free).
const BLOCK_HEADER = 8;
const TAG_LIVE = 0x5a;
const TAG_FREE = 0x0f;

const EMPTY = 0;

const ARENA_MAX_BYTES = 8 * 2 ** 30;
const SLOTS_MIN = 16;
const SLOTS_MAX = 2 ** 24;
const TOTAL_SLOTS_MAX = 2 ** 28;

function pow2Log(n: unknown, min: number, max: number, what: string): number {
  if (
    typeof n !== "number" || !Number.isInteger(n) || n < min || n > max || (n & (n - 1)) !== 0
  ) {
    throw new RangeError(`${what} must be a power of two in [${min}, ${max}], got ${String(n)}`);
  }
  return 31 - Math.clz32(n);
}

function intIn(n: unknown, min: number, max: number, what: string): number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${what} must be an integer in [${min}, ${max}], got ${String(n)}`);
  }
  return n;
}

type GrowableSab = SharedArrayBuffer & {
  readonly growable?: boolean;
  readonly maxByteLength?: number;
  grow?(n: number): void;
};

function newSab(bytes: number, maxBytes?: number): GrowableSab {
  if (maxBytes !== undefined && maxBytes > bytes) {
    const Ctor = SharedArrayBuffer as unknown as new (
      n: number,
      o: { maxByteLength: number },
    ) => GrowableSab;
    const sab = new Ctor(bytes, { maxByteLength: maxBytes });
    if (sab.growable === true && typeof sab.grow === "function") return sab;
    return new SharedArrayBuffer(maxBytes) as GrowableSab;
  }
  return new SharedArrayBuffer(bytes) as GrowableSab;
}

/** Block sizes of the size classes: `steps` per doubling from 2^minLog2 to 2^maxLog2. */
function classSizes(minLog2: number, maxLog2: number, steps: number): number[] {
  const sizes: number[] = [];
  for (let k = minLog2; k < maxLog2; k++) {
    for (let j = 0; j < steps; j++) sizes.push(2 ** k + j * 2 ** k / steps);
  }
  sizes.push(2 ** maxLog2);
  return sizes;
}

const pause: () => void = (() => {
  const p = (Atomics as unknown as { pause?: () => void }).pause;
  return typeof p === "function" ? () => p.call(Atomics) : () => {};
})();

const textDecoder = new TextDecoder();
const EMPTY_BYTES = new Uint8Array(0);
const textEncoder = new TextEncoder();

/**
 * A string → bytes hash table in shared memory, usable concurrently from many
 * Worker isolates. See the module doc for the layout and locking.
 *
 * Same cursor contract as {@link ShardMap.page}: across the pages of one
 * iteration a key present for the whole iteration is returned exactly once,
 * even while other workers write; keys added or removed during it may or may
 * not be returned; no key twice. The cursor is `(shard, slot)`.
 *
 * @example
 * ```ts
 * import { SharedShardTable } from "@deno-stores/shared/shard";
 * // parent
 * const table = SharedShardTable.create({ shardCount: 32, slotsPerShard: 8192 });
 * const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
 * worker.postMessage(table.handle());
 * // worker.ts: self.onmessage = (e) => { const t = SharedShardTable.attach(e.data); ... }
 * table.set("k", new TextEncoder().encode("v"));
 * table.update("n", (old) => Uint8Array.of((old?.[0] ?? 0) + 1));
 * const id = table.nextSequence();
 * ```
 */
export class SharedShardTable {
  readonly shardCount: number;
  readonly slotsPerShard: number;
  readonly maxKeyBytes: number;
  readonly minBlockBytes: number;
  readonly maxBlockBytes: number;
  /** Most entries one shard holds. */
  readonly maxEntriesPerShard: number;
  readonly #h: Int32Array;
  readonly #seq: BigInt64Array;
  readonly #slots: Int32Array;
  readonly #arena: GrowableSab;
  // Fixed-length views over the arena, re-made when it has grown: element
  // access through length-tracking views of a growable buffer is ~17x slower.
  #a8: Uint8Array;
  #a32: Int32Array;
  readonly #handle: SharedShardTableHandle;
  readonly #shardMask: number;
  /** Physical slots per shard: home slots + overflow. */
  readonly #cap: number;
  readonly #slotShift: number;
  readonly #minLog2: number;
  readonly #steps: number;
  readonly #stepsLog2: number;
  /** Block size of each class, ascending. */
  readonly #sizes: number[];
  readonly #arenaMaxUnits: number;
  readonly #spin: number;
  readonly #key: Uint8Array;
  /** Scratch for decoding ASCII keys. */
  readonly #codes: number[] = [];
  readonly #scanner: Scanner<string, Uint8Array>;
  /** Shard this instance holds the lock of, or -1 (re-entrancy guard). */
  #held = -1;

  private constructor(handle: SharedShardTableHandle) {
    const h = new Int32Array(handle.header);
    if (h[H_MAGIC] !== MAGIC || h[H_VERSION] !== VERSION) {
      throw new TypeError("not a SharedShardTable handle (bad magic or version)");
    }
    this.#handle = handle;
    this.#h = h;
    this.#seq = new BigInt64Array(handle.header);
    this.#slots = new Int32Array(handle.slots);
    this.#arena = handle.arena as GrowableSab;
    this.#a8 = new Uint8Array(handle.arena, 0, handle.arena.byteLength);
    this.#a32 = new Int32Array(handle.arena, 0, handle.arena.byteLength >> 2);
    this.shardCount = h[H_SHARDS]!;
    this.slotsPerShard = h[H_SLOTS]!;
    this.maxKeyBytes = h[H_MAX_KEY]!;
    this.#minLog2 = h[H_MIN_LOG2]!;
    this.#steps = h[H_STEPS]!;
    this.#stepsLog2 = 31 - Math.clz32(this.#steps);
    this.#sizes = classSizes(this.#minLog2, h[H_MAX_LOG2]!, this.#steps);
    this.minBlockBytes = 2 ** this.#minLog2;
    this.maxBlockBytes = 2 ** h[H_MAX_LOG2]!;
    this.#arenaMaxUnits = h[H_ARENA_MAX_UNITS]!;
    this.maxEntriesPerShard = h[H_MAX_PER_SHARD]!;
    this.#shardMask = this.shardCount - 1;
    this.#cap = h[H_CAP]!;
    this.#slotShift = 32 - (31 - Math.clz32(this.slotsPerShard));
    this.#spin = handle.spinCount;
    this.#key = new Uint8Array(this.maxKeyBytes * 3 + 4);
    this.#scanner = this.#makeScanner();
  }

  /** Allocates a new table. Throws RangeError on bad options. */
  static create(options: SharedShardTableOptions = {}): SharedShardTable {
    const shardCount = options.shardCount ?? 64;
    checkShardCount(shardCount);
    const slotsPerShard = options.slotsPerShard ?? 16384;
    pow2Log(slotsPerShard, SLOTS_MIN, SLOTS_MAX, "slotsPerShard");
    if (shardCount * slotsPerShard > TOTAL_SLOTS_MAX) {
      throw new RangeError(`shardCount × slotsPerShard must be at most ${TOTAL_SLOTS_MAX}`);
    }
    const maxLoad = options.maxLoad ?? 0.8;
    if (typeof maxLoad !== "number" || !(maxLoad > 0 && maxLoad <= 0.95)) {
      throw new RangeError(`maxLoad must be in (0, 0.95], got ${String(maxLoad)}`);
    }
    const maxKeyBytes = intIn(options.maxKeyBytes ?? 256, 1, 4096, "maxKeyBytes");
    const minLog2 = pow2Log(options.minBlockBytes ?? 32, 16, 2 ** 24, "minBlockBytes");
    const maxLog2 = pow2Log(options.maxBlockBytes ?? 65536, 16, 2 ** 24, "maxBlockBytes");
    if (maxLog2 < minLog2) throw new RangeError("maxBlockBytes must be >= minBlockBytes");
    const steps = options.sizeClassSteps ?? 4;
    if (![1, 2, 4, 8].includes(steps) || steps * 8 > 2 ** minLog2) {
      throw new RangeError(
        `sizeClassSteps must be 1, 2, 4 or 8 and at most minBlockBytes / 8, got ${String(steps)}`,
      );
    }
    if ((maxLog2 - minLog2) * steps + 1 > MAX_CLASSES) {
      throw new RangeError(`at most ${MAX_CLASSES} size classes`);
    }
    const maxBlock = 2 ** maxLog2;
    if (BLOCK_HEADER + maxKeyBytes > maxBlock) {
      throw new RangeError("maxBlockBytes must hold the block header and a maxKeyBytes key");
    }
    const arenaMax = Math.floor(
      intIn(options.arenaBytes ?? 256 * 2 ** 20, 8, ARENA_MAX_BYTES, "arenaBytes") / 8,
    ) * 8;
    const growable = options.growable ?? true;
    const initial = Math.min(
      arenaMax,
      Math.ceil(
        intIn(options.arenaInitialBytes ?? 2 ** 20, 8, ARENA_MAX_BYTES, "arenaInitialBytes") / 8,
      ) * 8,
    );
    const sequenceStart = intIn(
      options.sequenceStart ?? 0,
      0,
      Number.MAX_SAFE_INTEGER - 1,
      "sequenceStart",
    );
    const spinCount = intIn(options.spinCount ?? 64, 0, 1e6, "spinCount");

    const header = new SharedArrayBuffer((H_SHARD_BASE + shardCount * SHARD_WORDS) * 4);
    const cap = slotsPerShard + overflowSlots(slotsPerShard);
    const slots = new SharedArrayBuffer(shardCount * cap * 8);
    const arena = growable ? newSab(initial, arenaMax) : newSab(arenaMax);
    const h = new Int32Array(header);
    h[H_MAGIC] = MAGIC;
    h[H_VERSION] = VERSION;
    h[H_SHARDS] = shardCount;
    h[H_SLOTS] = slotsPerShard;
    h[H_MAX_KEY] = maxKeyBytes;
    h[H_MIN_LOG2] = minLog2;
    h[H_MAX_LOG2] = maxLog2;
    h[H_STEPS] = steps;
    h[H_ARENA_MAX_UNITS] = arenaMax / 8;
    h[H_MAX_PER_SHARD] = Math.max(1, Math.floor(slotsPerShard * maxLoad));
    h[H_CAP] = cap;
    h[H_GROWABLE] = arena.growable === true ? 1 : 0;
    new BigInt64Array(header)[H_SEQ64] = BigInt(sequenceStart);
    return new SharedShardTable({
      kind: "SharedShardTable",
      version: VERSION,
      header,
      slots,
      arena,
      spinCount,
    });
  }

  /** Opens a table from a {@link SharedShardTableHandle} (e.g. in a worker). */
  static attach(handle: SharedShardTableHandle): SharedShardTable {
    if (
      handle === null || typeof handle !== "object" || handle.kind !== "SharedShardTable" ||
      !(handle.header instanceof SharedArrayBuffer) ||
      !(handle.slots instanceof SharedArrayBuffer) ||
      !(handle.arena instanceof SharedArrayBuffer)
    ) {
      throw new TypeError("not a SharedShardTable handle");
    }
    return new SharedShardTable(handle);
  }

  /** The structured-cloneable handle to post to workers. */
  handle(): SharedShardTableHandle {
    return this.#handle;
  }

  /**
   * Largest value that fits with any key up to `maxKeyBytes`. Longer values
   * fit when the key is shorter: the limit is
   * `maxBlockBytes - 8 - keyBytes`.
   */
  get maxValueBytes(): number {
    return this.maxBlockBytes - BLOCK_HEADER - this.maxKeyBytes;
  }

  // ---------------------------------------------------------------- locks

  /**
   * Re-makes the arena views if the arena grew (here or in another worker).
   * Called with a lock held: whatever block offset we are about to read was
   * allocated before we acquired it, so `byteLength` already covers it.
   */
  #syncViews(): void {
    const len = this.#arena.byteLength;
    if (len !== this.#a8.length) {
      this.#a8 = new Uint8Array(this.#arena, 0, len);
      this.#a32 = new Int32Array(this.#arena, 0, len >> 2);
    }
  }

  #lock(shard: number): void {
    if (this.#held !== -1) {
      throw new Error(
        "SharedShardTable: re-entrant call (from inside an update() or read() callback) would deadlock",
      );
    }
    const h = this.#h;
    const i = H_SHARD_BASE + shard * SHARD_WORDS + S_LOCK;
    if (Atomics.compareExchange(h, i, 0, 1) !== 0) {
      let acquired = false;
      for (let n = 0; n < this.#spin; n++) {
        pause();
        if (Atomics.load(h, i) === 0 && Atomics.compareExchange(h, i, 0, 1) === 0) {
          acquired = true;
          break;
        }
      }
      if (!acquired) {
        let c = Atomics.exchange(h, i, 2);
        while (c !== 0) {
          Atomics.wait(h, i, 2);
          c = Atomics.exchange(h, i, 2);
        }
      }
    }
    this.#held = shard;
    this.#syncViews();
  }

  #unlock(shard: number): void {
    this.#held = -1;
    const h = this.#h;
    const i = H_SHARD_BASE + shard * SHARD_WORDS + S_LOCK;
    if (Atomics.sub(h, i, 1) !== 1) {
      Atomics.store(h, i, 0);
      Atomics.notify(h, i, 1);
    }
  }

  #arenaLock(): void {
    const h = this.#h;
    if (Atomics.compareExchange(h, H_ARENA_LOCK, 0, 1) !== 0) {
      let acquired = false;
      for (let n = 0; n < this.#spin; n++) {
        pause();
        if (
          Atomics.load(h, H_ARENA_LOCK) === 0 &&
          Atomics.compareExchange(h, H_ARENA_LOCK, 0, 1) === 0
        ) {
          acquired = true;
          break;
        }
      }
      if (!acquired) {
        let c = Atomics.exchange(h, H_ARENA_LOCK, 2);
        while (c !== 0) {
          Atomics.wait(h, H_ARENA_LOCK, 2);
          c = Atomics.exchange(h, H_ARENA_LOCK, 2);
        }
      }
    }
    this.#syncViews();
  }

  #arenaUnlock(): void {
    const h = this.#h;
    if (Atomics.sub(h, H_ARENA_LOCK, 1) !== 1) {
      Atomics.store(h, H_ARENA_LOCK, 0);
      Atomics.notify(h, H_ARENA_LOCK, 1);
    }
  }

  // ---------------------------------------------------------------- arena

  /** Size class index for a block of `total` bytes, or -1 if too large. */
  #classFor(total: number): number {
    const minLog2 = this.#minLog2;
    if (total <= 2 ** minLog2) return 0;
    const k = 31 - Math.clz32(total - 1); // 2^k < total <= 2^(k+1)
    const stepLog2 = k - this.#stepsLog2;
    const j = Math.ceil((total - 2 ** k) / 2 ** stepLog2); // 1..steps
    const c = ((k - minLog2) << this.#stepsLog2) + j;
    return c < this.#sizes.length ? c : -1;
  }

  /** Allocates a block of class `cls`; returns its byte offset. Throws ArenaFullError. */
  #alloc(cls: number): number {
    const h = this.#h;
    const units = this.#sizes[cls]! / 8;
    this.#arenaLock();
    try {
      let off = this.#popFree(cls);
      if (off < 0) {
        const bump = h[H_BUMP]!;
        if (bump + units <= this.#arena.byteLength / 8 || this.#grow(bump + units)) {
          h[H_BUMP] = bump + units;
          off = bump * 8;
        } else {
          off = this.#splitLarger(cls);
          if (off < 0) throw new ArenaFullError(units * 8, this.#arenaMaxUnits * 8);
        }
      }
      this.#a32[off >> 2] = cls << 16 | TAG_LIVE << 24;
      h[H_LIVE_UNITS] = h[H_LIVE_UNITS]! + units;
      h[H_LIVE_BLOCKS] = h[H_LIVE_BLOCKS]! + 1;
      return off;
    } finally {
      this.#arenaUnlock();
    }
  }

  /** Grows the arena to hold `needUnits`; false when it cannot. Arena lock held. */
  #grow(needUnits: number): boolean {
    const arena = this.#arena;
    if (needUnits > this.#arenaMaxUnits || this.#h[H_GROWABLE] !== 1) return false;
    const cur = arena.byteLength;
    const target = Math.min(this.#arenaMaxUnits * 8, Math.max(needUnits * 8, cur * 2));
    try {
      arena.grow!(target);
    } catch {
      try {
        arena.grow!(needUnits * 8);
      } catch {
        return false;
      }
    }
    this.#syncViews();
    return true;
  }

  /** Pops the free list of `cls`; -1 when empty. Arena lock held. */
  #popFree(cls: number): number {
    const h = this.#h;
    const head = h[H_FREE + cls]!;
    if (head === 0) return -1;
    const off = (head - 1) * 8;
    h[H_FREE + cls] = this.#a32[(off >> 2) + 1]!;
    return off;
  }

  #pushFree(cls: number, off: number): void {
    const h = this.#h;
    const a32 = this.#a32;
    a32[off >> 2] = cls << 16 | TAG_FREE << 24;
    a32[(off >> 2) + 1] = h[H_FREE + cls]!;
    h[H_FREE + cls] = off / 8 + 1;
  }

  /**
   * Takes the smallest larger free block, keeps its head as a `cls` block and
   * frees the rest as the largest classes that fit (a remainder under the
   * smallest class is lost). -1 if there is no larger free block. Arena lock held.
   */
  #splitLarger(cls: number): number {
    const sizes = this.#sizes;
    for (let c = cls + 1; c < sizes.length; c++) {
      const off = this.#popFree(c);
      if (off < 0) continue;
      let rest = sizes[c]! - sizes[cls]!;
      let at = off + sizes[cls]!;
      for (let k = c - 1; k >= 0 && rest >= sizes[0]!; k--) {
        while (rest >= sizes[k]!) {
          this.#pushFree(k, at);
          at += sizes[k]!;
          rest -= sizes[k]!;
        }
      }
      this.#h[H_LOST_UNITS] = this.#h[H_LOST_UNITS]! + rest / 8;
      return off;
    }
    return -1;
  }

  #free(off: number): void {
    const a32 = this.#a32;
    const h = this.#h;
    const cls = (a32[off >> 2]! >>> 16) & 0xff;
    this.#arenaLock();
    try {
      this.#pushFree(cls, off);
      h[H_LIVE_UNITS] = h[H_LIVE_UNITS]! - this.#sizes[cls]! / 8;
      h[H_LIVE_BLOCKS] = h[H_LIVE_BLOCKS]! - 1;
    } finally {
      this.#arenaUnlock();
    }
  }

  // ---------------------------------------------------------------- keys

  /** UTF-8-encodes `key` into the scratch buffer; returns its length. */
  #encodeKey(key: string): number {
    if (typeof key !== "string") throw new TypeError("SharedShardTable keys are strings");
    const n = key.length;
    if (n > this.maxKeyBytes) {
      throw new KeyTooLongError(textEncoder.encode(key).length, this.maxKeyBytes);
    }
    const buf = this.#key;
    let i = 0;
    for (; i < n; i++) {
      const c = key.charCodeAt(i);
      if (c >= 0x80) break;
      buf[i] = c;
    }
    let len = i;
    if (i < n) len = i + textEncoder.encodeInto(key.slice(i), buf.subarray(i)).written;
    if (len > this.maxKeyBytes) throw new KeyTooLongError(len, this.maxKeyBytes);
    return len;
  }

  /** Decodes a stored key: ASCII by hand (TextDecoder costs ~1 µs a call), else UTF-8. */
  #decodeKey(off: number, len: number): string {
    const a8 = this.#a8;
    const codes = this.#codes;
    codes.length = len;
    for (let i = 0; i < len; i++) {
      const c = a8[off + i]!;
      if (c >= 0x80) return textDecoder.decode(a8.subarray(off, off + len));
      codes[i] = c;
    }
    return String.fromCharCode.apply(null, codes);
  }

  /** The shard `key` lives on. */
  shardOf(key: string): number {
    const len = this.#encodeKey(key);
    return hashByteRange(this.#key, 0, len) & this.#shardMask;
  }

  /** Compares the key of the block at `off` with the scratch key (bytewise). */
  #cmpKeyAt(off: number, keyLen: number): number {
    const a8 = this.#a8;
    const key = this.#key;
    const len = this.#a32[off >> 2]! & 0xffff;
    const k0 = off + BLOCK_HEADER;
    const n = Math.min(len, keyLen);
    for (let j = 0; j < n; j++) {
      const d = a8[k0 + j]! - key[j]!;
      if (d !== 0) return d;
    }
    return len - keyLen;
  }

  /**
   * Probes `shard` for the scratch key with hash `h` (unsigned). Returns its
   * slot when found, else `-(insert position) - 1`. Shard lock held.
   */
  #find(shard: number, h: number, keyLen: number): number {
    const slots = this.#slots;
    const cap = this.#cap;
    const base = shard * cap;
    let i = h >>> this.#slotShift;
    for (; i < cap; i++) {
      const w = (base + i) * 2;
      const ref = slots[w + 1]!;
      if (ref === EMPTY) break;
      const hi = slots[w]! >>> 0;
      if (hi < h) continue;
      if (hi > h) break;
      const c = this.#cmpKeyAt((ref - 1) * 8, keyLen);
      if (c === 0) return i;
      if (c > 0) break;
    }
    return -i - 1;
  }

  /**
   * First slot ordered at or after `(h, tie)` (tie exclusive; the tie key,
   * if any, is in the scratch buffer with length `tieLen`). Shard lock held.
   */
  #seek(shard: number, h: number, tieLen: number): number {
    const cap = this.#cap;
    if (h >= H_END) return cap;
    const slots = this.#slots;
    const base = shard * cap;
    let i = h >>> this.#slotShift;
    for (; i < cap; i++) {
      const w = (base + i) * 2;
      const ref = slots[w + 1]!;
      if (ref === EMPTY) break;
      const hi = slots[w]! >>> 0;
      if (hi > h) break;
      if (hi === h && (tieLen < 0 || this.#cmpKeyAt((ref - 1) * 8, tieLen) > 0)) break;
    }
    return i;
  }

  #checkValue(value: unknown): asserts value is Uint8Array {
    if (!(value instanceof Uint8Array)) {
      throw new TypeError("SharedShardTable values are Uint8Array");
    }
  }

  /** Class for a key of `keyLen` bytes and `value`; throws ValueTooLargeError. */
  #classOf(keyLen: number, valueLen: number): number {
    const cls = this.#classFor(BLOCK_HEADER + keyLen + valueLen);
    if (cls < 0) throw new ValueTooLargeError(valueLen, keyLen, this.maxBlockBytes, BLOCK_HEADER);
    return cls;
  }

  /** Writes key (from scratch) and value into the block at `off`. */
  #fill(off: number, keyLen: number, value: Uint8Array): void {
    const a32 = this.#a32;
    const w = off >> 2;
    a32[w] = (a32[w]! & 0x00ff0000) | TAG_LIVE << 24 | keyLen;
    a32[w + 1] = value.length;
    const a8 = this.#a8;
    const key = this.#key;
    const k0 = off + BLOCK_HEADER;
    for (let j = 0; j < keyLen; j++) a8[k0 + j] = key[j]!;
    a8.set(value, k0 + keyLen);
  }

  #readValue(off: number): Uint8Array {
    const a32 = this.#a32;
    const keyLen = a32[off >> 2]! & 0xffff;
    const valueLen = a32[(off >> 2) + 1]!;
    const start = off + BLOCK_HEADER + keyLen;
    const out = new Uint8Array(valueLen);
    out.set(this.#a8.subarray(start, start + valueLen));
    return out;
  }

  // ---------------------------------------------------------------- writes (shard lock held)

  /**
   * Overwrites the entry at slot `r` (r >= 0) or inserts at position
   * `-r - 1`. Everything that can fail is checked before anything changes.
   * Shard lock held.
   */
  #store(shard: number, h: number, keyLen: number, r: number, value: Uint8Array): void {
    const slots = this.#slots;
    const cls = this.#classOf(keyLen, value.length);
    const cap = this.#cap;
    const base = shard * cap;
    if (r >= 0) {
      const w = (base + r) * 2;
      const oldOff = (slots[w + 1]! - 1) * 8;
      const oldCls = (this.#a32[oldOff >> 2]! >>> 16) & 0xff;
      if (oldCls === cls) {
        this.#fill(oldOff, keyLen, value);
        return;
      }
      const off = this.#alloc(cls);
      this.#fill(off, keyLen, value);
      slots[w + 1] = off / 8 + 1;
      this.#free(oldOff);
      return;
    }
    const hdr = this.#h;
    const sw = H_SHARD_BASE + shard * SHARD_WORDS;
    const p = -r - 1;
    let e = p;
    while (e < cap && slots[(base + e) * 2 + 1] !== EMPTY) e++;
    if (hdr[sw + S_COUNT]! >= this.maxEntriesPerShard || e >= cap) {
      throw new TableFullError(shard, this.maxEntriesPerShard);
    }
    const off = this.#alloc(cls);
    this.#fill(off, keyLen, value);
    if (e > p) slots.copyWithin((base + p + 1) * 2, (base + p) * 2, (base + e) * 2);
    slots[(base + p) * 2] = h | 0;
    slots[(base + p) * 2 + 1] = off / 8 + 1;
    Atomics.add(hdr, sw + S_COUNT, 1);
    Atomics.add(hdr, H_SIZE, 1);
  }

  /** Removes the entry at slot `i` (backward-shift deletion). Shard lock held. */
  #remove(shard: number, i: number): void {
    const slots = this.#slots;
    const hdr = this.#h;
    const cap = this.#cap;
    const base = shard * cap;
    const shift = this.#slotShift;
    const off = (slots[(base + i) * 2 + 1]! - 1) * 8;
    let j = i + 1;
    while (j < cap) {
      const w = (base + j) * 2;
      if (slots[w + 1] === EMPTY || (slots[w]! >>> shift) >= j) break;
      j++;
    }
    if (j > i + 1) slots.copyWithin((base + i) * 2, (base + i + 1) * 2, (base + j) * 2);
    slots[(base + j - 1) * 2] = 0;
    slots[(base + j - 1) * 2 + 1] = EMPTY;
    Atomics.sub(hdr, H_SHARD_BASE + shard * SHARD_WORDS + S_COUNT, 1);
    Atomics.sub(hdr, H_SIZE, 1);
    this.#free(off);
  }

  // ---------------------------------------------------------------- public API

  /** A copy of the value for `key`, or undefined. */
  get(key: string): Uint8Array | undefined {
    const keyLen = this.#encodeKey(key);
    const hash = hashByteRange(this.#key, 0, keyLen);
    const shard = hash & this.#shardMask;
    this.#lock(shard);
    try {
      const r = this.#find(shard, hash, keyLen);
      if (r < 0) return undefined;
      const ref = this.#slots[(shard * this.#cap + r) * 2 + 1]!;
      return this.#readValue((ref - 1) * 8);
    } finally {
      this.#unlock(shard);
    }
  }

  /**
   * Zero-copy read: calls `fn` with a view of the stored value **in shared
   * memory**, under the shard lock, and returns what `fn` returns (undefined
   * when the key is absent, without calling `fn`). The view is only valid
   * inside `fn`: copy what you keep. `fn` must be short and must not call the
   * table (that throws). Saves `get`'s allocation, e.g. for
   * `table.read(id, (b) => JSON.parse(decoder.decode(b)))`.
   */
  read<R>(key: string, fn: (bytes: Uint8Array) => R): R | undefined {
    const keyLen = this.#encodeKey(key);
    const hash = hashByteRange(this.#key, 0, keyLen);
    const shard = hash & this.#shardMask;
    this.#lock(shard);
    try {
      const r = this.#find(shard, hash, keyLen);
      if (r < 0) return undefined;
      const off = (this.#slots[(shard * this.#cap + r) * 2 + 1]! - 1) * 8;
      const a32 = this.#a32;
      const start = off + BLOCK_HEADER + (a32[off >> 2]! & 0xffff);
      return fn(this.#a8.subarray(start, start + a32[(off >> 2) + 1]!));
    } finally {
      this.#unlock(shard);
    }
  }

  /** Whether `key` is present. */
  has(key: string): boolean {
    const keyLen = this.#encodeKey(key);
    const hash = hashByteRange(this.#key, 0, keyLen);
    const shard = hash & this.#shardMask;
    this.#lock(shard);
    try {
      return this.#find(shard, hash, keyLen) >= 0;
    } finally {
      this.#unlock(shard);
    }
  }

  /**
   * Sets `key` to a copy of `value`. An existing key keeps its slot (and so
   * its iteration position). Throws {@link KeyTooLongError},
   * {@link ValueTooLargeError}, {@link ArenaFullError} or
   * {@link TableFullError}, leaving the table unchanged.
   */
  set(key: string, value: Uint8Array): this {
    this.#checkValue(value);
    const keyLen = this.#encodeKey(key);
    this.#classOf(keyLen, value.length);
    const hash = hashByteRange(this.#key, 0, keyLen);
    const shard = hash & this.#shardMask;
    this.#lock(shard);
    try {
      this.#store(shard, hash, keyLen, this.#find(shard, hash, keyLen), value);
    } finally {
      this.#unlock(shard);
    }
    return this;
  }

  /** Removes `key`; true when it was present. */
  delete(key: string): boolean {
    const keyLen = this.#encodeKey(key);
    const hash = hashByteRange(this.#key, 0, keyLen);
    const shard = hash & this.#shardMask;
    this.#lock(shard);
    try {
      const r = this.#find(shard, hash, keyLen);
      if (r < 0) return false;
      this.#remove(shard, r);
      return true;
    } finally {
      this.#unlock(shard);
    }
  }

  /**
   * Atomic read-modify-write under the shard lock: `fn` gets a copy of the
   * current value (or undefined) and returns the new value, or undefined to
   * delete the key. Returns what `fn` returned. No other worker touches the
   * key's shard while `fn` runs, so keep `fn` short and do not call this
   * table from inside it (that throws). If `fn` throws, or the new value does
   * not fit, the entry is left as it was and the error propagates.
   */
  update(
    key: string,
    fn: (old: Uint8Array | undefined) => Uint8Array | undefined,
  ): Uint8Array | undefined {
    const keyLen = this.#encodeKey(key);
    const hash = hashByteRange(this.#key, 0, keyLen);
    const shard = hash & this.#shardMask;
    this.#lock(shard);
    try {
      const r = this.#find(shard, hash, keyLen);
      const old = r < 0
        ? undefined
        : this.#readValue((this.#slots[(shard * this.#cap + r) * 2 + 1]! - 1) * 8);
      const next = fn(old);
      if (next === undefined) {
        if (r >= 0) this.#remove(shard, r);
        return undefined;
      }
      this.#checkValue(next);
      // `fn` may have used the scratch key buffer indirectly only by calling
      // us, which the re-entrancy guard forbids, so the scratch key is intact.
      this.#store(shard, hash, keyLen, r, next);
      return next;
    } finally {
      this.#unlock(shard);
    }
  }

  /** Number of entries (across all workers). */
  get size(): number {
    return Atomics.load(this.#h, H_SIZE);
  }

  /** Entries per shard; sums to `size` when no one is writing. */
  shardSizes(): number[] {
    const out = new Array<number>(this.shardCount);
    for (let s = 0; s < this.shardCount; s++) {
      out[s] = Atomics.load(this.#h, H_SHARD_BASE + s * SHARD_WORDS + S_COUNT);
    }
    return out;
  }

  /** Removes every entry, one shard at a time (not atomic as a whole). */
  clear(): void {
    const slots = this.#slots;
    const hdr = this.#h;
    const cap = this.#cap;
    for (let shard = 0; shard < this.shardCount; shard++) {
      const sw = H_SHARD_BASE + shard * SHARD_WORDS;
      if (Atomics.load(hdr, sw + S_COUNT) === 0) continue;
      this.#lock(shard);
      try {
        const base = shard * cap;
        let removed = 0;
        for (let i = 0; i < cap; i++) {
          const ref = slots[(base + i) * 2 + 1]!;
          if (ref !== EMPTY) {
            this.#free((ref - 1) * 8);
            removed++;
          }
        }
        slots.fill(0, base * 2, (base + cap) * 2);
        Atomics.store(hdr, sw + S_COUNT, 0);
        Atomics.sub(hdr, H_SIZE, removed);
      } finally {
        this.#unlock(shard);
      }
    }
  }

  /**
   * A unique, increasing number across every worker sharing the table
   * (`sequenceStart + 1`, `+ 2`, ...). Exact up to 2^53.
   */
  nextSequence(): number {
    return Number(Atomics.add(this.#seq, H_SEQ64, 1n) + 1n);
  }

  /**
   * One page of the iteration, like {@link ShardMap.page}: keys are strings,
   * values are copies. Entries are copied out under the shard lock in
   * batches; `filter` runs outside the lock.
   */
  page(options: PageOptions<string, Uint8Array>): PageResult<[string, Uint8Array]> {
    return runPage(this.#scanner, options);
  }

  #makeScanner(): Scanner<string, Uint8Array> {
    const hdr = this.#h;
    return {
      kind: KIND,
      shardCount: this.shardCount,
      shardNonEmpty: (s) => Atomics.load(hdr, H_SHARD_BASE + s * SHARD_WORDS + S_COUNT) > 0,
      collect: (s, from, max) => this.#collect(s, from, max),
      tieOf: (key) => key,
      checkPosition: (p: CursorPosition) => {
        if (p.tie === undefined) return;
        try {
          this.#encodeKey(p.tie);
        } catch {
          throw new InvalidCursorError();
        }
      },
    };
  }

  /**
   * Copies up to `max` entries of `shard` from `from` on, under the shard
   * lock. The values of one batch share one `ArrayBuffer` (one allocation).
   */
  #collect(shard: number, from: CursorPosition, max: number): ScanEntry<string, Uint8Array>[] {
    const tieLen = from.tie === undefined ? -1 : this.#encodeKey(from.tie);
    const slots = this.#slots;
    const cap = this.#cap;
    const base = shard * cap;
    const out: ScanEntry<string, Uint8Array>[] = [];
    const offs: number[] = [];
    this.#lock(shard);
    try {
      const a32 = this.#a32; // after #lock: views are in sync
      let i = this.#seek(shard, from.h, tieLen);
      let total = 0;
      for (; i < cap && out.length < max; i++) {
        const w = (base + i) * 2;
        const ref = slots[w + 1]!;
        if (ref === EMPTY) continue;
        const h = slots[w]! >>> 0;
        const off = (ref - 1) * 8;
        const prev = out.at(-1);
        if (prev !== undefined) prev.hasNext = true;
        out.push({
          h,
          key: this.#decodeKey(off + BLOCK_HEADER, a32[off >> 2]! & 0xffff),
          value: EMPTY_BYTES,
          nextTie: i + 1 < cap && slots[w + 3] !== EMPTY && (slots[w + 2]! >>> 0) === h,
          hasNext: false,
        });
        offs.push(off);
        total += a32[(off >> 2) + 1]!;
      }
      const tail = out.at(-1);
      if (tail !== undefined) {
        for (let j = i; j < cap; j++) {
          if (slots[(base + j) * 2 + 1] !== EMPTY) {
            tail.hasNext = true;
            break;
          }
        }
      }
      const buf = new ArrayBuffer(total);
      const a8 = this.#a8;
      let at = 0;
      for (let n = 0; n < offs.length; n++) {
        const off = offs[n]!;
        const start = off + BLOCK_HEADER + (a32[off >> 2]! & 0xffff);
        const len = a32[(off >> 2) + 1]!;
        const v = new Uint8Array(buf, at, len);
        v.set(a8.subarray(start, start + len));
        out[n]!.value = v;
        at += len;
      }
    } finally {
      this.#unlock(shard);
    }
    return out;
  }

  /** Geometry and usage figures (a racy snapshot). */
  stats(): SharedShardTableStats {
    const h = this.#h;
    const freeBlocks: number[] = [];
    this.#arenaLock();
    try {
      for (let c = 0; c < this.#sizes.length; c++) {
        let n = 0;
        for (let head = h[H_FREE + c]!; head !== 0; head = this.#a32[((head - 1) * 8 >> 2) + 1]!) {
          n++;
        }
        freeBlocks.push(n);
      }
    } finally {
      this.#arenaUnlock();
    }
    return {
      shardCount: this.shardCount,
      slotsPerShard: this.slotsPerShard,
      maxEntries: this.maxEntriesPerShard * this.shardCount,
      size: this.size,
      slotBytes: this.#slots.byteLength,
      arenaBytes: this.#arena.byteLength,
      arenaMaxBytes: this.#arenaMaxUnits * 8,
      growable: h[H_GROWABLE] === 1,
      arenaCarvedBytes: Atomics.load(h, H_BUMP) * 8,
      arenaLiveBytes: Atomics.load(h, H_LIVE_UNITS) * 8,
      liveBlocks: Atomics.load(h, H_LIVE_BLOCKS),
      arenaLostBytes: Atomics.load(h, H_LOST_UNITS) * 8,
      sizeClasses: [...this.#sizes],
      freeBlocks,
      minBlockBytes: this.minBlockBytes,
      maxBlockBytes: this.maxBlockBytes,
      maxKeyBytes: this.maxKeyBytes,
    };
  }
}
