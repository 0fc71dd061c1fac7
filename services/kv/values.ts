/**
 * The value types besides strings (strings are plain JS binary strings): lists, hashes, sets.
 * Sorted sets are in zset.ts.
 *
 * - {@link ListValue}: a ring-buffer deque, so that pushes and pops at both ends are O(1) and
 *   LINDEX / LRANGE reach any position directly.
 * - {@link HashValue}: a Map of field → value.
 * - {@link SetValue}: members in an array plus a Map of member → position (removal swaps the last
 *   member in), so that SPOP and SRANDMEMBER pick a random member in O(1), as Redis does.
 *
 * @module
 */

/** A list: a deque in a power-of-two ring. */
export class ListValue {
  readonly kind = "list";
  #items: (string | undefined)[];
  #head = 0;
  #length = 0;

  constructor() {
    this.#items = new Array(4);
  }

  get length(): number {
    return this.#length;
  }

  #grow(): void {
    const old = this.#items, cap = old.length, next = new Array<string | undefined>(cap * 2);
    for (let i = 0; i < this.#length; i++) next[i] = old[(this.#head + i) & (cap - 1)];
    this.#items = next;
    this.#head = 0;
  }

  #shrink(): void {
    const cap = this.#items.length;
    if (cap <= 16 || this.#length > cap / 4) return;
    const next = new Array<string | undefined>(cap / 2);
    for (let i = 0; i < this.#length; i++) next[i] = this.#items[(this.#head + i) & (cap - 1)];
    this.#items = next;
    this.#head = 0;
  }

  pushFront(v: string): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#head = (this.#head - 1) & (this.#items.length - 1);
    this.#items[this.#head] = v;
    this.#length++;
  }

  pushBack(v: string): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = v;
    this.#length++;
  }

  popFront(): string | undefined {
    if (this.#length === 0) return undefined;
    const v = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#length--;
    this.#shrink();
    return v;
  }

  popBack(): string | undefined {
    if (this.#length === 0) return undefined;
    const i = (this.#head + this.#length - 1) & (this.#items.length - 1);
    const v = this.#items[i];
    this.#items[i] = undefined;
    this.#length--;
    this.#shrink();
    return v;
  }

  /** The element at `index` (0 = head; negative from the tail), or undefined. */
  at(index: number): string | undefined {
    const i = index < 0 ? this.#length + index : index;
    if (i < 0 || i >= this.#length) return undefined;
    return this.#items[(this.#head + i) & (this.#items.length - 1)];
  }

  /** Replaces the element at `index`; false when out of range. */
  setAt(index: number, v: string): boolean {
    const i = index < 0 ? this.#length + index : index;
    if (i < 0 || i >= this.#length) return false;
    this.#items[(this.#head + i) & (this.#items.length - 1)] = v;
    return true;
  }

  /** Elements [from, to] (already clamped to the list by the caller). */
  *slice(from: number, to: number): IterableIterator<string> {
    const mask = this.#items.length - 1;
    for (let i = from; i <= to; i++) yield this.#items[(this.#head + i) & mask]!;
  }

  /** Rough bytes held (INFO memory, MEMORY USAGE). */
  get bytes(): number {
    let n = 16 + this.#items.length * 8;
    for (const v of this.slice(0, this.#length - 1)) n += 16 + v.length;
    return n;
  }
}

/** A hash: field → value. */
export class HashValue {
  readonly kind = "hash";
  readonly fields = new Map<string, string>();

  get bytes(): number {
    let n = 64;
    for (const [f, v] of this.fields) n += 48 + f.length + v.length;
    return n;
  }
}

/** A set with O(1) random members. */
export class SetValue {
  readonly kind = "set";
  #members: string[] = [];
  #index = new Map<string, number>();

  get size(): number {
    return this.#members.length;
  }

  has(m: string): boolean {
    return this.#index.has(m);
  }

  /** True if `m` was added. */
  add(m: string): boolean {
    if (this.#index.has(m)) return false;
    this.#index.set(m, this.#members.length);
    this.#members.push(m);
    return true;
  }

  /** True if `m` was there. */
  delete(m: string): boolean {
    const i = this.#index.get(m);
    if (i === undefined) return false;
    const last = this.#members.pop()!;
    if (last !== m) {
      this.#members[i] = last;
      this.#index.set(last, i);
    }
    this.#index.delete(m);
    return true;
  }

  /** A member chosen by `random()` in [0, 1), or undefined when empty. */
  random(random: () => number): string | undefined {
    const n = this.#members.length;
    return n === 0 ? undefined : this.#members[Math.floor(random() * n)];
  }

  values(): IterableIterator<string> {
    return this.#members.values();
  }

  get bytes(): number {
    let n = 64;
    for (const m of this.#members) n += 40 + m.length;
    return n;
  }
}
