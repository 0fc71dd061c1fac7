/**
 * The keyspace: numbered databases of key → value, with expiry as Redis does it.
 *
 * - A string value is stored as the JS binary string itself (no wrapper: the cheapest form in
 *   memory); the other types are objects (values.ts, zset.ts).
 * - Expiry times (ms since the epoch) are in a second Map, as Redis keeps its `expires` dict, so
 *   keys without a TTL cost nothing for it. Expired keys are never visible: every read checks
 *   (lazy expiry), and {@link Keyspace.activeExpire} walks the keys with a TTL a slice at a time
 *   to reclaim the memory of keys nobody reads.
 * - WATCH: a connection watching a key is told when the key is written, deleted, expires, or its
 *   database is flushed (Redis's "touched" keys); EXEC then fails.
 * - SCAN works on a snapshot of the key names taken when a scan starts (cursor 0): every key
 *   present from the start to the end of a scan is returned, keys added meanwhile may be, a key is
 *   returned at most once per scan unless its snapshot was forgotten (open scans are bounded in
 *   number and in names held), in which case the scan restarts with a fresh snapshot at the same
 *   offset (duplicates allowed, as in Redis).
 *
 * The clock is injected (`now`): tests move time by hand.
 *
 * @module
 */
import { HashValue, ListValue, SetValue } from "./values.ts";
import { SortedSet } from "./zset.ts";

/** Any value: a binary string, or one of the collection types. */
export type Value = string | ListValue | HashValue | SetValue | SortedSet;

/** Redis's type names (TYPE command). */
export function typeName(v: Value): "string" | "list" | "hash" | "set" | "zset" {
  if (typeof v === "string") return "string";
  if (v instanceof SortedSet) return "zset";
  return v.kind;
}

/** Someone watching keys (a connection in WATCH). */
export interface Watcher {
  /** Called once a watched key changes. */
  dirty: boolean;
}

/** Open scans kept per database; the oldest is forgotten past this... */
export const OPEN_SCANS_MAX = 256;
/** ...or past this many key names held by a database's open scans (8 bytes each). */
export const SCAN_NAMES_MAX = 4_000_000;

/** One database. */
export class Db {
  readonly id: number;
  readonly data = new Map<string, Value>();
  readonly expires = new Map<string, number>();
  #now: () => number;
  #watchers = new Map<string, Set<Watcher>>();
  #scans = new Map<number, string[]>();
  #scanNames = 0;
  #nextScan = 1;
  #randomKeys: string[] = [];
  #expireCursor: IterableIterator<[string, number]> | null = null;
  /** Keys removed because their time came (stats: expired_keys). */
  expiredKeys = 0;

  constructor(id: number, now: () => number) {
    this.id = id;
    this.#now = now;
  }

  get size(): number {
    return this.data.size;
  }

  /** Removes `key` if its time has come; true if it did. */
  #expireIfDue(key: string): boolean {
    const at = this.expires.get(key);
    if (at === undefined || at > this.#now()) return false;
    this.data.delete(key);
    this.expires.delete(key);
    this.expiredKeys++;
    this.touch(key);
    return true;
  }

  /** The live value of `key`. */
  get(key: string): Value | undefined {
    if (this.expires.size > 0 && this.#expireIfDue(key)) return undefined;
    return this.data.get(key);
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** Stores `value`; the key's TTL is dropped unless `keepTtl`. */
  set(key: string, value: Value, keepTtl = false): void {
    this.data.set(key, value);
    if (!keepTtl && this.expires.size > 0) this.expires.delete(key);
    if (this.#watchers.size > 0) this.touch(key);
  }

  /** Removes `key`; true if it was there (and live). */
  delete(key: string): boolean {
    if (this.get(key) === undefined) return false;
    this.data.delete(key);
    this.expires.delete(key);
    this.touch(key);
    return true;
  }

  /** Records an in-place change of `key`'s value (list push, hash set...). */
  touch(key: string): void {
    const ws = this.#watchers.get(key);
    if (ws === undefined) return;
    for (const w of ws) w.dirty = true;
  }

  watch(key: string, w: Watcher): void {
    let ws = this.#watchers.get(key);
    if (ws === undefined) this.#watchers.set(key, ws = new Set());
    ws.add(w);
  }

  unwatch(key: string, w: Watcher): void {
    const ws = this.#watchers.get(key);
    if (ws === undefined) return;
    ws.delete(w);
    if (ws.size === 0) this.#watchers.delete(key);
  }

  /** The expiry time of a live key (ms since the epoch), or undefined if it has none. */
  expireTime(key: string): number | undefined {
    return this.expires.get(key);
  }

  /** Sets the expiry of a live key; a time already past deletes it. True if the key exists. */
  expireAt(key: string, atMs: number): boolean {
    if (this.get(key) === undefined) return false;
    if (atMs <= this.#now()) {
      this.data.delete(key);
      this.expires.delete(key);
      this.touch(key);
      return true;
    }
    this.expires.set(key, atMs);
    this.touch(key);
    return true;
  }

  /** Drops a key's expiry; true if it had one. */
  persist(key: string): boolean {
    if (this.get(key) === undefined || !this.expires.has(key)) return false;
    this.expires.delete(key);
    this.touch(key);
    return true;
  }

  /** Removes every key; watchers of any key are told. */
  flush(): void {
    for (const ws of this.#watchers.values()) for (const w of ws) w.dirty = true;
    this.data.clear();
    this.expires.clear();
    this.#scans.clear();
    this.#scanNames = 0;
    this.#randomKeys = [];
    this.#expireCursor = null;
  }

  /** Live keys, in insertion order. */
  *keys(): IterableIterator<string> {
    const now = this.#now();
    for (const k of this.data.keys()) {
      const at = this.expires.size > 0 ? this.expires.get(k) : undefined;
      if (at === undefined || at > now) yield k;
    }
  }

  /** A random live key, or undefined when the database is empty. */
  randomKey(random: () => number): string | undefined {
    for (let attempt = 0; attempt < 2; attempt++) {
      const ks = this.#randomKeys;
      for (let i = 0; i < 16 && ks.length > 0; i++) {
        const k = ks[Math.floor(random() * ks.length)];
        if (this.get(k) !== undefined) return k;
      }
      // The sample of names is stale (or empty): take a new one.
      if (this.data.size === 0) return undefined;
      this.#randomKeys = [...this.data.keys()];
    }
    for (const k of this.keys()) return k;
    return undefined;
  }

  /**
   * One SCAN step from `cursor` (0 starts a scan): up to `count` names examined, those `accept`
   * takes returned, and the next cursor (0 when the scan is over).
   */
  scan(cursor: number, count: number, accept: (key: string) => boolean): [number, string[]] {
    let id = Math.floor(cursor / 2 ** 32);
    let offset = cursor % 2 ** 32;
    let names = cursor === 0 ? undefined : this.#scans.get(id);
    if (names === undefined) {
      names = [...this.data.keys()];
      id = this.#nextScan;
      this.#nextScan = this.#nextScan >= 2 ** 20 ? 1 : this.#nextScan + 1;
      this.#scans.set(id, names);
      this.#scanNames += names.length;
      // Forget the oldest scans past the bounds (their cursors then restart on a new snapshot).
      while (
        this.#scans.size > 1 &&
        (this.#scans.size > OPEN_SCANS_MAX || this.#scanNames > SCAN_NAMES_MAX)
      ) {
        const [oldest, oldNames] = this.#scans.entries().next().value!;
        this.#scans.delete(oldest);
        this.#scanNames -= oldNames.length;
      }
      if (cursor === 0) offset = 0;
    }
    const out: string[] = [];
    const end = Math.min(names.length, offset + count);
    for (let i = offset; i < end; i++) {
      const k = names[i];
      if (this.get(k) !== undefined && accept(k)) out.push(k);
    }
    if (end >= names.length) {
      if (this.#scans.delete(id)) this.#scanNames -= names.length;
      return [0, out];
    }
    return [id * 2 ** 32 + end, out];
  }

  /**
   * Active expiry: examines up to `maxKeys` keys with a TTL (continuing where the last call
   * stopped) and removes the expired ones; returns how many it removed.
   */
  activeExpire(maxKeys: number): number {
    if (this.expires.size === 0) return 0;
    const now = this.#now();
    let removed = 0;
    for (let i = 0; i < maxKeys; i++) {
      this.#expireCursor ??= this.expires.entries();
      const r = this.#expireCursor.next();
      if (r.done) {
        this.#expireCursor = null;
        break;
      }
      const [k, at] = r.value;
      if (at <= now) {
        this.data.delete(k);
        this.expires.delete(k);
        this.expiredKeys++;
        this.touch(k);
        removed++;
      }
    }
    return removed;
  }
}

/** Every database. */
export class Keyspace {
  readonly dbs: Db[];

  constructor(databases: number, now: () => number) {
    this.dbs = Array.from({ length: databases }, (_, i) => new Db(i, now));
  }

  /** Active expiry over every database; returns the keys removed. */
  activeExpire(maxKeysPerDb: number): number {
    let n = 0;
    for (const db of this.dbs) n += db.activeExpire(maxKeysPerDb);
    return n;
  }

  /**
   * One tick of active expiry, as Redis's cycle: per database, rounds of `keysPerRound` keys
   * with a TTL while a quarter or more of a round had expired, until `budgetMs` of `clock` is
   * spent; returns the keys removed.
   */
  activeExpireCycle(keysPerRound: number, budgetMs: number, clock: () => number): number {
    const deadline = clock() + budgetMs;
    let n = 0;
    for (const db of this.dbs) {
      for (;;) {
        const removed = db.activeExpire(keysPerRound);
        n += removed;
        if (removed < keysPerRound / 4 || clock() > deadline) break;
      }
      if (clock() > deadline) break;
    }
    return n;
  }

  /** Keys in every database. */
  get size(): number {
    let n = 0;
    for (const db of this.dbs) n += db.size;
    return n;
  }

  get expiredKeys(): number {
    return this.dbs.reduce((n, db) => n + db.expiredKeys, 0);
  }
}
