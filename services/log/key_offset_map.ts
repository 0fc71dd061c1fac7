/**
 * The compactor's map from record key to the offset of its latest record, built memory-light:
 * open addressing over typed arrays (32-bit hash, key position and length in a byte arena, and
 * the offset), with the key bytes stored once in one growing arena. A lookup compares the key
 * bytes after the hash, so a hash collision never makes two keys share an entry: compaction can
 * never drop the latest record of a key because another key hashed the same.
 *
 * Memory: about 40 bytes per distinct key at the maximum load factor, plus the key bytes;
 * bounded by `maxBytes` (the map reports full rather than growing past it).
 *
 * @module
 */

/** A hash of `len` bytes of `buf` at `start` (32-bit). */
export type KeyHash = (buf: Uint8Array, start: number, len: number) => number;

/** A fast 32-bit hash of a byte range (4 bytes per step, murmur3-style finalizer). */
export function hashKeyBytes(buf: Uint8Array, start: number, len: number): number {
  let h = 0x9747b28c ^ len;
  let i = start;
  const end4 = start + (len & ~3);
  while (i < end4) {
    let k = buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    i += 4;
  }
  const end = start + len;
  let k = 0;
  let shift = 0;
  while (i < end) {
    k |= buf[i++] << shift;
    shift += 8;
  }
  if (shift > 0) {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}

/** Options for {@link KeyOffsetMap}. */
export interface KeyOffsetMapOptions {
  /** Memory budget (table plus key arena). Default 32 MiB. */
  maxBytes?: number;
  /** The hash (tests inject a colliding one). */
  hash?: KeyHash;
}

const SLOT_BYTES = 4 + 4 + 4 + 8;

/** Key bytes → latest offset. */
export class KeyOffsetMap {
  readonly #maxBytes: number;
  readonly #hash: KeyHash;
  #cap = 1024;
  #used = 0;
  #hashes = new Int32Array(this.#cap);
  #keyPos = new Uint32Array(this.#cap);
  /** Key length + 1; 0 marks an empty slot. */
  #keyLen = new Uint32Array(this.#cap);
  #offsets = new Float64Array(this.#cap);
  #arena = new Uint8Array(64 * 1024);
  #arenaUsed = 0;

  constructor(options: KeyOffsetMapOptions = {}) {
    this.#maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
    this.#hash = options.hash ?? hashKeyBytes;
  }

  /** Distinct keys held. */
  get size(): number {
    return this.#used;
  }

  /** Bytes of memory held. */
  get memoryBytes(): number {
    return this.#cap * SLOT_BYTES + this.#arena.length;
  }

  #find(buf: Uint8Array, start: number, len: number, h: number): number {
    const mask = this.#cap - 1;
    let i = h & mask;
    const arena = this.#arena;
    for (;;) {
      const kl = this.#keyLen[i];
      if (kl === 0) return -1 - i;
      if (this.#hashes[i] === h && kl === len + 1) {
        const p = this.#keyPos[i];
        let same = true;
        for (let j = 0; j < len; j++) {
          if (arena[p + j] !== buf[start + j]) {
            same = false;
            break;
          }
        }
        if (same) return i;
      }
      i = (i + 1) & mask;
    }
  }

  /**
   * Records `offset` as the latest for the key `buf[start, start + len)`. Returns false (and
   * changes nothing) when the memory budget would be exceeded.
   */
  put(buf: Uint8Array, start: number, len: number, offset: number): boolean {
    const h = this.#hash(buf, start, len);
    let i = this.#find(buf, start, len, h);
    if (i >= 0) {
      if (offset > this.#offsets[i]) this.#offsets[i] = offset;
      return true;
    }
    if ((this.#used + 1) * 2 > this.#cap) {
      if (!this.#grow()) return false;
      i = this.#find(buf, start, len, h);
    }
    if (this.#arenaUsed + len > this.#arena.length) {
      let n = this.#arena.length * 2;
      while (n < this.#arenaUsed + len) n *= 2;
      if (this.#cap * SLOT_BYTES + n > this.#maxBytes) return false;
      const a = new Uint8Array(n);
      a.set(this.#arena.subarray(0, this.#arenaUsed));
      this.#arena = a;
    }
    const slot = -1 - i;
    this.#arena.set(buf.subarray(start, start + len), this.#arenaUsed);
    this.#hashes[slot] = h;
    this.#keyPos[slot] = this.#arenaUsed;
    this.#keyLen[slot] = len + 1;
    this.#offsets[slot] = offset;
    this.#arenaUsed += len;
    this.#used++;
    return true;
  }

  /** The latest offset recorded for the key, or -1. */
  get(buf: Uint8Array, start: number, len: number): number {
    const i = this.#find(buf, start, len, this.#hash(buf, start, len));
    return i >= 0 ? this.#offsets[i] : -1;
  }

  #grow(): boolean {
    const cap = this.#cap * 2;
    if (cap * SLOT_BYTES + this.#arena.length > this.#maxBytes) return false;
    const oh = this.#hashes, op = this.#keyPos, ol = this.#keyLen, oo = this.#offsets;
    this.#cap = cap;
    this.#hashes = new Int32Array(cap);
    this.#keyPos = new Uint32Array(cap);
    this.#keyLen = new Uint32Array(cap);
    this.#offsets = new Float64Array(cap);
    const mask = cap - 1;
    for (let s = 0; s < oh.length; s++) {
      if (ol[s] === 0) continue;
      let i = oh[s] & mask;
      while (this.#keyLen[i] !== 0) i = (i + 1) & mask;
      this.#hashes[i] = oh[s];
      this.#keyPos[i] = op[s];
      this.#keyLen[i] = ol[s];
      this.#offsets[i] = oo[s];
    }
    return true;
  }
}
