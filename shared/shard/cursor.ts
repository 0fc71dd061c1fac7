/**
 * Opaque, checksummed page cursors and the page driver shared by
 * {@link ShardMap} and `SharedShardTable`.
 *
 * Both containers iterate in **hash order**: shard by shard, and inside a
 * shard by `(h, key)` where `h` is the key's 32-bit hash (ties, which need a
 * 32-bit collision inside one shard, are ordered by key). A key's place in
 * that order depends on nothing but the key, so a cursor `(shard, h[, key])`
 * resumes correctly whatever happened to the container in between: a key
 * present for the whole iteration is returned exactly once, and no key, not
 * even one deleted and re-added, is ever returned twice.
 *
 * A cursor encodes `(kind, shardCount, shard, h, tieKey?)` guarded by a
 * 24-bit checksum, base64url-encoded. `tieKey` is only present when a page
 * ends inside a group of equal hashes. Clients must treat cursors as opaque.
 *
 * @module
 */
import { hashString } from "./hash.ts";

/** Longest cursor string accepted (anything longer is rejected unread). */
export const CURSOR_MAX_LENGTH = 1 << 20;

const CHECK_SEED = 0x5eed_c0de;
/** `h` of a position past every entry of a shard. */
export const H_END = 2 ** 32;

/**
 * Thrown by `page()` for a cursor that is malformed, garbled, or was issued
 * by a different kind of container or shard layout. HTTP layers map it to
 * 400 Bad Request.
 */
export class InvalidCursorError extends Error {
  constructor(message = "invalid cursor") {
    super(message);
    this.name = "InvalidCursorError";
  }
}

/** What `page()` takes. */
export interface PageOptions<K, V> {
  /** The `cursor` of the previous page; absent, `undefined` or `null` starts from the beginning. */
  cursor?: string | null | undefined;
  /** Most items returned: an integer >= 1 (RangeError otherwise). */
  limit: number;
  /** Only entries it accepts are returned; skipped entries still count against `maxScan`. */
  filter?: ((key: K, value: V) => boolean) | undefined;
  /**
   * Most entries examined (passed to `filter`) by this call. When reached the
   * page ends early, possibly empty, with a non-null cursor. Default: no bound.
   */
  maxScan?: number | undefined;
}

/** One page of a listing: `cursor` is null once the listing is complete. */
export interface PageResult<T> {
  items: T[];
  cursor: string | null;
}

/**
 * A position in the iteration order: the first entry of `shard` ordered at
 * or after `h`, or, when `tie` is set, strictly after `(h, tie)`.
 */
export interface CursorPosition {
  shard: number;
  h: number;
  tie?: string | undefined;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function toBase64Url(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function fromBase64Url(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  try {
    const bin = atob(s.replaceAll("-", "+").replaceAll("_", "/"));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

function check(payload: string): string {
  return (hashString(payload, CHECK_SEED) & 0xffffff).toString(36);
}

/** Encodes a position. `kind` is a short tag naming the container type. */
export function encodeCursor(kind: string, shardCount: number, p: CursorPosition): string {
  const tie = p.tie === undefined ? "" : toBase64Url(utf8.encode(p.tie));
  const payload = `${kind}.${shardCount.toString(36)}.${p.shard.toString(36)}.${
    p.h.toString(36)
  }.${tie}`;
  return toBase64Url(utf8.encode(`${payload}.${check(payload)}`));
}

const NUM = /^[0-9a-z]{1,11}$/;

/**
 * Decodes a cursor made by {@link encodeCursor} with the same `kind` and
 * `shardCount`; throws {@link InvalidCursorError} otherwise.
 */
export function decodeCursor(kind: string, shardCount: number, cursor: unknown): CursorPosition {
  if (typeof cursor !== "string" || cursor.length === 0 || cursor.length > CURSOR_MAX_LENGTH) {
    throw new InvalidCursorError();
  }
  const rawBytes = fromBase64Url(cursor);
  if (rawBytes === undefined) throw new InvalidCursorError();
  let raw: string;
  try {
    raw = utf8Strict.decode(rawBytes);
  } catch {
    throw new InvalidCursorError();
  }
  const parts = raw.split(".");
  if (parts.length !== 6) throw new InvalidCursorError();
  const [k, sc, sh, h, tie, chk] = parts as [string, string, string, string, string, string];
  if (check(`${k}.${sc}.${sh}.${h}.${tie}`) !== chk) throw new InvalidCursorError();
  if (k !== kind) throw new InvalidCursorError("cursor is from another kind of listing");
  if (!NUM.test(sc) || !NUM.test(sh) || !NUM.test(h)) throw new InvalidCursorError();
  if (parseInt(sc, 36) !== shardCount) {
    throw new InvalidCursorError("cursor is from a listing with another shard layout");
  }
  const shard = parseInt(sh, 36);
  const hv = parseInt(h, 36);
  if (shard >= shardCount || hv > H_END) throw new InvalidCursorError();
  if (tie === "") return { shard, h: hv };
  const tieBytes = fromBase64Url(tie);
  if (tieBytes === undefined || hv === H_END) throw new InvalidCursorError();
  try {
    return { shard, h: hv, tie: utf8Strict.decode(tieBytes) };
  } catch {
    throw new InvalidCursorError();
  }
}

/** Validates `page()` options shared by both containers; throws RangeError. */
export function checkPageOptions(limit: unknown, maxScan: unknown): void {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`page limit must be an integer >= 1, got ${String(limit)}`);
  }
  if (
    maxScan !== undefined &&
    (typeof maxScan !== "number" || !(maxScan >= 1) ||
      (!Number.isInteger(maxScan) && maxScan !== Infinity))
  ) {
    throw new RangeError(`page maxScan must be an integer >= 1, got ${String(maxScan)}`);
  }
}

/** One entry handed to the page driver by a container's scanner. */
export interface ScanEntry<K, V> {
  /** The entry's 32-bit order hash. */
  h: number;
  key: K;
  value: V;
  /** The next entry of the shard has the same `h` (a tie). */
  nextTie: boolean;
  /** Some entry of the shard follows this one. */
  hasNext: boolean;
}

/** What a container gives the page driver. */
export interface Scanner<K, V> {
  readonly kind: string;
  readonly shardCount: number;
  /** Whether shard `s` may hold entries (a cheap check; false skips it). */
  shardNonEmpty(s: number): boolean;
  /**
   * Up to `max` entries of shard `s` in order, starting at `from` (see
   * {@link CursorPosition}). Fewer than `max` means the shard is exhausted.
   */
  collect(s: number, from: CursorPosition, max: number): ScanEntry<K, V>[];
  /** The key as a cursor tie-breaker string, and back (throws InvalidCursorError). */
  tieOf(key: K): string;
  /** Checks a decoded cursor position further (e.g. the tie key); throws InvalidCursorError. */
  checkPosition(p: CursorPosition): void;
}

/** Most entries one `collect` call is asked for. */
const COLLECT_MAX = 1024;

/** The page algorithm shared by both containers. */
export function runPage<K, V>(
  sc: Scanner<K, V>,
  options: PageOptions<K, V>,
): PageResult<[K, V]> {
  const { cursor, limit, filter } = options;
  const maxScan = options.maxScan ?? Infinity;
  checkPageOptions(limit, maxScan);
  let pos: CursorPosition = { shard: 0, h: 0 };
  if (cursor !== undefined && cursor !== null) {
    pos = decodeCursor(sc.kind, sc.shardCount, cursor);
    sc.checkPosition(pos);
  }
  const items: [K, V][] = [];
  let scanned = 0;
  const enc = (p: CursorPosition) => encodeCursor(sc.kind, sc.shardCount, p);
  /** Position right after `e` on shard `s`, or the start of the next non-empty shard. */
  const after = (s: number, e: ScanEntry<K, V>): CursorPosition | null => {
    if (e.nextTie) return { shard: s, h: e.h, tie: sc.tieOf(e.key) };
    if (e.hasNext) return { shard: s, h: e.h + 1 };
    for (let n = s + 1; n < sc.shardCount; n++) if (sc.shardNonEmpty(n)) return { shard: n, h: 0 };
    return null;
  };
  while (pos.shard < sc.shardCount) {
    const s = pos.shard;
    if (!sc.shardNonEmpty(s)) {
      pos = { shard: s + 1, h: 0 };
      continue;
    }
    const want = Math.min(
      filter === undefined ? limit - items.length : Math.max(limit - items.length, 64),
      maxScan - scanned,
      COLLECT_MAX,
    );
    const batch = sc.collect(s, pos, want);
    let last: ScanEntry<K, V> | undefined;
    for (const e of batch) {
      if (scanned >= maxScan) {
        // Stop before `e`: everything up to `last` is done.
        const p = last !== undefined && last.h === e.h
          ? { shard: s, h: e.h, tie: sc.tieOf(last.key) }
          : last !== undefined
          ? { shard: s, h: last.h + 1 }
          : pos;
        return { items, cursor: enc(p) };
      }
      scanned++;
      last = e;
      if (filter !== undefined && !filter(e.key, e.value)) continue;
      items.push([e.key, e.value]);
      if (items.length === limit) {
        const p = after(s, e);
        return { items, cursor: p === null ? null : enc(p) };
      }
    }
    if (last === undefined || batch.length < want) {
      pos = { shard: s + 1, h: 0 };
    } else {
      const p = after(s, last);
      if (p === null) return { items, cursor: null };
      pos = p;
    }
    if (scanned >= maxScan) {
      // Skip empty shards so that a finished listing says so.
      while (pos.shard < sc.shardCount && !sc.shardNonEmpty(pos.shard)) {
        pos = { shard: pos.shard + 1, h: 0 };
      }
      return { items, cursor: pos.shard < sc.shardCount ? enc(pos) : null };
    }
  }
  return { items, cursor: null };
}
