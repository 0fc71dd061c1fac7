/**
 * An ordered map from byte-string keys to values, compared bytewise (memcmp order, a proper
 * prefix first): the order Deno KV's key encoding is designed for, so ranges over encoded keys
 * are ranges over `Deno.KvKey`s.
 *
 * It is a skiplist (p = 1/4, at most 32 levels): O(log n) expected get, set and delete, and a
 * range scan in O(log n + m) either way, because level 0 is doubly linked. A sorted array
 * would make every insert O(n); a B-tree would be faster still but is several times the code.
 *
 * @module
 */

/** Compares byte strings in memcmp order: negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

const MAX_LEVEL = 32;
const P = 0.25;

interface Node<V> {
  key: Uint8Array;
  value: V;
  /** Forward pointers, one per level of this node. */
  next: (Node<V> | null)[];
  /** The level-0 predecessor (the head sentinel for the first node). */
  prev: Node<V> | null;
}

/** An ordered map keyed by byte strings (see the module documentation). */
export class OrderedBytesMap<V> {
  readonly #head: Node<V>;
  #level = 1;
  #size = 0;
  readonly #random: () => number;

  /** `random` picks node levels; pass a seeded one to make a test's layout repeatable. */
  constructor(random: () => number = Math.random) {
    this.#random = random;
    this.#head = {
      key: new Uint8Array(0),
      value: undefined as V,
      next: new Array(MAX_LEVEL).fill(null),
      prev: null,
    };
  }

  /** Number of keys. */
  get size(): number {
    return this.#size;
  }

  #randomLevel(): number {
    let level = 1;
    while (level < MAX_LEVEL && this.#random() < P) level++;
    return level;
  }

  /**
   * Fills `update` (if given) with the last node before `key` at every level and returns the
   * first node whose key is >= `key` (null past the end).
   */
  #seek(key: Uint8Array, update?: Node<V>[]): Node<V> | null {
    let x = this.#head;
    for (let i = this.#level - 1; i >= 0; i--) {
      let n = x.next[i];
      while (n !== null && compareBytes(n.key, key) < 0) {
        x = n;
        n = x.next[i];
      }
      if (update !== undefined) update[i] = x;
    }
    return x.next[0];
  }

  /** The value under `key`, or undefined. */
  get(key: Uint8Array): V | undefined {
    const n = this.#seek(key);
    return n !== null && compareBytes(n.key, key) === 0 ? n.value : undefined;
  }

  /** Sets `key` to `value`. The map keeps `key` itself: do not change it afterwards. */
  set(key: Uint8Array, value: V): void {
    const update: Node<V>[] = new Array(MAX_LEVEL);
    const found = this.#seek(key, update);
    if (found !== null && compareBytes(found.key, key) === 0) {
      found.value = value;
      return;
    }
    const level = this.#randomLevel();
    if (level > this.#level) {
      for (let i = this.#level; i < level; i++) update[i] = this.#head;
      this.#level = level;
    }
    const node: Node<V> = { key, value, next: new Array(level), prev: update[0] };
    for (let i = 0; i < level; i++) {
      node.next[i] = update[i].next[i];
      update[i].next[i] = node;
    }
    if (node.next[0] !== null) node.next[0].prev = node;
    this.#size++;
  }

  /** Removes `key`; true if it was there. */
  delete(key: Uint8Array): boolean {
    const update: Node<V>[] = new Array(MAX_LEVEL);
    const found = this.#seek(key, update);
    if (found === null || compareBytes(found.key, key) !== 0) return false;
    for (let i = 0; i < found.next.length; i++) update[i].next[i] = found.next[i];
    if (found.next[0] !== null) found.next[0].prev = found.prev;
    while (this.#level > 1 && this.#head.next[this.#level - 1] === null) this.#level--;
    this.#size--;
    return true;
  }

  /**
   * Visits the entries with `start <= key < end` in key order (or in reverse), until `visit`
   * returns false. The map must not be changed during the scan.
   */
  scan(
    start: Uint8Array,
    end: Uint8Array,
    reverse: boolean,
    visit: (key: Uint8Array, value: V) => boolean,
  ): void {
    if (compareBytes(start, end) >= 0) return;
    if (!reverse) {
      for (let n = this.#seek(start); n !== null; n = n.next[0]) {
        if (compareBytes(n.key, end) >= 0) return;
        if (!visit(n.key, n.value)) return;
      }
      return;
    }
    // The node before the first one >= end is the last one < end.
    const update: Node<V>[] = new Array(MAX_LEVEL);
    this.#seek(end, update);
    for (let n: Node<V> | null = update[0]; n !== null && n !== this.#head; n = n.prev) {
      if (compareBytes(n.key, start) < 0) return;
      if (!visit(n.key, n.value)) return;
    }
  }
}
