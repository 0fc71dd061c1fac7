/**
 * The storage behind the KV Connect endpoints: the {@link KvConnectStore} interface the routes
 * use, and {@link MemoryKvConnectStore}, an in-memory implementation with Deno KV's semantics.
 *
 * Keys are the opaque bytes the client encoded (Deno KV's tuple encoding), ordered bytewise.
 * Each entry holds its value bytes, the value's encoding (V8, LE64 or raw bytes), the
 * versionstamp of the commit that last wrote it, and an optional expiry time.
 *
 * Versionstamps: every committed atomic write takes the next commit version, a counter
 * starting at 1, written as 8 big-endian bytes followed by 2 zero bytes. They only ever grow,
 * so clients can order writes by them, as on Deno Deploy.
 *
 * Consistency: a snapshot read or an atomic write runs synchronously from start to end on the
 * single JS thread, so every read sees one commit's state and every write is serialized; no
 * locks or MVCC are needed. Expired entries are invisible at once and removed lazily (on the
 * next read or write that looks at the expiry heap), and watchers are told when they go.
 *
 * @module
 */
import {
  type AtomicWrite,
  type KvEntry,
  type Mutation,
  MutationType,
  type ReadRangeOutput,
  type SnapshotRead,
  ValueEncoding,
  type Watch,
} from "./messages.ts";
import {
  KvConnectError,
  validateAtomicWrite,
  validateSnapshotRead,
  validateWatch,
} from "./limits.ts";
import { compareBytes, OrderedBytesMap } from "./ordered_map.ts";
import { decodeV8Scalar, encodeV8Scalar, type V8Scalar } from "./v8_scalar.ts";

/** The outcome of an atomic write that was valid. */
export type AtomicWriteResult =
  | { ok: true; versionstamp: Uint8Array }
  | { ok: false; failedChecks: number[] };

/**
 * What the KV Connect routes need from a store. Methods may answer synchronously or with a
 * promise (a store backed by something durable would), and refuse bad requests by throwing a
 * {@link KvConnectError}.
 */
export interface KvConnectStore {
  /** Reads every range of `read` at one point in time; expired entries are left out. */
  snapshotRead(read: SnapshotRead, nowMs: number): ReadRangeOutput[] | Promise<ReadRangeOutput[]>;
  /** Applies all of `write` or none of it. */
  atomicWrite(write: AtomicWrite, nowMs: number): AtomicWriteResult | Promise<AtomicWriteResult>;
  /**
   * Calls `onChange` after every commit that touches one of `watch.keys` (and when one of
   * them expires, at the latest at the next read or write); returns the unsubscribe function.
   */
  watch(watch: Watch, onChange: () => void): () => void;
}

/** A stored value. Objects are never changed once stored, so reads can hand them out. */
interface Stored {
  value: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
  /** Milliseconds since the epoch; 0 = never. */
  expireAtMs: number;
}

const MAX_U64 = (1n << 64n) - 1n;

/** The 10-byte versionstamp of commit `version`. */
export function versionstampOf(version: number): Uint8Array {
  const out = new Uint8Array(10);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(version / 2 ** 32));
  view.setUint32(4, version >>> 0);
  return out;
}

/** The commit version in a versionstamp. */
function versionOf(vs: Uint8Array): number {
  const view = new DataView(vs.buffer, vs.byteOffset, vs.byteLength);
  return view.getUint32(0) * 2 ** 32 + view.getUint32(4);
}

/** A commit as bytes (persistence): version, puts, deletes, lengths in front (u32 LE). */
export function encodeCommit(c: KvCommit): Uint8Array {
  let n = 8 + 4 + 4;
  for (const p of c.puts) n += 4 + p.key.length + 1 + 8 + 4 + p.value.length;
  for (const k of c.deletes) n += 4 + k.length;
  const out = new Uint8Array(n);
  const v = new DataView(out.buffer);
  let at = 0;
  v.setFloat64(at, c.version, true);
  at += 8;
  v.setUint32(at, c.puts.length, true);
  at += 4;
  for (const p of c.puts) {
    v.setUint32(at, p.key.length, true);
    out.set(p.key, at + 4);
    at += 4 + p.key.length;
    out[at++] = p.encoding;
    v.setFloat64(at, p.expireAtMs, true);
    at += 8;
    v.setUint32(at, p.value.length, true);
    out.set(p.value, at + 4);
    at += 4 + p.value.length;
  }
  v.setUint32(at, c.deletes.length, true);
  at += 4;
  for (const k of c.deletes) {
    v.setUint32(at, k.length, true);
    out.set(k, at + 4);
    at += 4 + k.length;
  }
  return out;
}

/** The inverse of {@link encodeCommit}; RangeError on bytes that are not one. */
export function decodeCommit(b: Uint8Array): KvCommit {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let at = 0;
  const need = (n: number) => {
    if (at + n > b.length) throw new RangeError("a KV Connect commit record is cut short");
  };
  const bytes = () => {
    need(4);
    const len = v.getUint32(at, true);
    need(4 + len);
    const out = b.slice(at + 4, at + 4 + len);
    at += 4 + len;
    return out;
  };
  need(12);
  const version = v.getFloat64(0, true);
  if (!Number.isSafeInteger(version) || version < 0) throw new RangeError("bad commit version");
  const nPuts = v.getUint32(8, true);
  at = 12;
  const puts: KvCommit["puts"] = [];
  for (let i = 0; i < nPuts; i++) {
    const key = bytes();
    need(9);
    const encoding = b[at];
    const expireAtMs = v.getFloat64(at + 1, true);
    at += 9;
    puts.push({ key, value: bytes(), encoding, expireAtMs });
  }
  need(4);
  const nDel = v.getUint32(at, true);
  at += 4;
  const deletes: Uint8Array[] = [];
  for (let i = 0; i < nDel; i++) deletes.push(bytes());
  if (at !== b.length) throw new RangeError("trailing bytes after a KV Connect commit record");
  return { version, puts, deletes };
}

/** Binary string of a key, for Map lookups. */
function keyId(key: Uint8Array): string {
  let s = "";
  for (let i = 0; i < key.length; i++) s += String.fromCharCode(key[i]);
  return s;
}

function isExpired(s: Stored, nowMs: number): boolean {
  return s.expireAtMs !== 0 && s.expireAtMs <= nowMs;
}

function readU64(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

function u64Bytes(v: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v, true);
  return out;
}

function typeMismatch(message: string): never {
  throw new KvConnectError(400, message);
}

/** A sum operand or stored value, as the sum mutation sees it. */
type SumValue =
  | { kind: "KvU64"; value: bigint }
  | { kind: "BigInt"; value: bigint; version: number }
  | { kind: "Number"; value: number; version: number };

function v8SumValue(s: V8Scalar): SumValue {
  return typeof s.value === "bigint"
    ? { kind: "BigInt", value: s.value, version: s.version }
    : { kind: "Number", value: s.value, version: s.version };
}

/** A min-heap of expiry times, for finding what to purge without scanning. */
class ExpiryHeap {
  readonly #items: { at: number; key: Uint8Array; stored: Stored }[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(at: number, key: Uint8Array, stored: Stored): void {
    const a = this.#items;
    a.push({ at, key, stored });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p].at <= a[i].at) break;
      [a[p], a[i]] = [a[i], a[p]];
      i = p;
    }
  }

  /** Pops the earliest item if it is due at `nowMs`. */
  popDue(nowMs: number): { key: Uint8Array; stored: Stored } | undefined {
    const a = this.#items;
    if (a.length === 0 || a[0].at > nowMs) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l].at < a[m].at) m = l;
        if (r < a.length && a[r].at < a[m].at) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}

/** What one committed atomic write did: its version, the entries it wrote and deleted. */
export interface KvCommit {
  version: number;
  puts: { key: Uint8Array; value: Uint8Array; encoding: number; expireAtMs: number }[];
  deletes: Uint8Array[];
}

/** Options of {@link MemoryKvConnectStore}. */
export interface MemoryKvConnectStoreOptions {
  /** The last commit version already used (default 0: the first commit gets 1). */
  startVersion?: number;
  /** Told what every commit did, after it is applied (persistence). */
  onCommit?: (commit: KvCommit) => void;
  /** Picks skiplist levels (tests pass a seeded generator). */
  random?: () => number;
}

/**
 * An in-memory {@link KvConnectStore} (see the module documentation). Nothing survives a
 * restart.
 */
export class MemoryKvConnectStore implements KvConnectStore {
  readonly #map: OrderedBytesMap<Stored>;
  readonly #expiries = new ExpiryHeap();
  readonly #watchers = new Map<string, Set<() => void>>();
  #version: number;
  /** See {@link MemoryKvConnectStoreOptions.onCommit}; settable after a replay. */
  onCommit: ((commit: KvCommit) => void) | null;

  constructor(options: MemoryKvConnectStoreOptions = {}) {
    this.#map = new OrderedBytesMap(options.random);
    this.#version = options.startVersion ?? 0;
    this.onCommit = options.onCommit ?? null;
  }

  /**
   * Applies a commit recorded earlier (replay on start-up): its entries as they were written,
   * with their versionstamps; no checks, no arithmetic.
   */
  applyCommit(commit: KvCommit): void {
    const versionstamp = versionstampOf(commit.version);
    const changed: Uint8Array[] = [];
    for (const key of commit.deletes) if (this.#map.delete(key)) changed.push(key);
    for (const p of commit.puts) {
      const stored: Stored = {
        value: p.value,
        encoding: p.encoding,
        versionstamp,
        expireAtMs: p.expireAtMs,
      };
      this.#map.set(p.key, stored);
      if (stored.expireAtMs !== 0) this.#expiries.push(stored.expireAtMs, p.key, stored);
      changed.push(p.key);
    }
    this.#version = Math.max(this.#version, commit.version);
    this.#notify(changed);
  }

  /** Every entry as commits that rebuild the store (a snapshot), at most `batch` entries each. */
  *commits(nowMs: number, batch = 1000): IterableIterator<KvCommit> {
    // Entries keep their own versionstamps: one commit per distinct version.
    const byVersion = new Map<number, KvCommit["puts"]>();
    const all: [Uint8Array, Stored][] = [];
    // Keys are at most a few KiB: 4 KiB of 0xff sorts after every one of them.
    this.#map.scan(new Uint8Array(0), new Uint8Array(4096).fill(0xff), false, (key, s) => {
      if (!isExpired(s, nowMs)) all.push([key, s]);
      return true;
    });
    for (const [key, s] of all) {
      const v = versionOf(s.versionstamp);
      let list = byVersion.get(v);
      if (list === undefined) byVersion.set(v, list = []);
      list.push({ key, value: s.value, encoding: s.encoding, expireAtMs: s.expireAtMs });
    }
    for (const [version, entries] of [...byVersion].sort((a, b) => a[0] - b[0])) {
      for (let i = 0; i < entries.length; i += batch) {
        yield { version, puts: entries.slice(i, i + batch), deletes: [] };
      }
    }
    // The version counter itself, even when no entry carries the last version any more.
    yield { version: this.#version, puts: [], deletes: [] };
  }

  /** Entries held, counting expired ones not yet purged. */
  get size(): number {
    return this.#map.size;
  }

  /** The version of the last commit (0 before the first). */
  get version(): number {
    return this.#version;
  }

  /** Removes the entries whose time has come and tells their watchers. */
  purgeExpired(nowMs: number): void {
    let changed: Uint8Array[] | undefined;
    for (let due = this.#expiries.popDue(nowMs); due; due = this.#expiries.popDue(nowMs)) {
      // Rewritten since it was scheduled: the heap item is stale.
      if (this.#map.get(due.key) !== due.stored) continue;
      this.#map.delete(due.key);
      (changed ??= []).push(due.key);
    }
    if (changed !== undefined) this.#notify(changed);
  }

  snapshotRead(read: SnapshotRead, nowMs: number): ReadRangeOutput[] {
    validateSnapshotRead(read);
    this.purgeExpired(nowMs);
    return read.ranges.map((range) => {
      const values: KvEntry[] = [];
      this.#map.scan(range.start, range.end, range.reverse, (key, s) => {
        if (isExpired(s, nowMs)) return true;
        values.push({
          key,
          value: s.value,
          encoding: s.encoding,
          versionstamp: s.versionstamp,
        });
        return values.length < range.limit;
      });
      return { values };
    });
  }

  atomicWrite(write: AtomicWrite, nowMs: number): AtomicWriteResult {
    validateAtomicWrite(write);
    if (write.enqueues.length > 0) {
      throw new KvConnectError(400, "queues are not supported by this server (enqueue refused)");
    }
    this.purgeExpired(nowMs);
    const live = (key: Uint8Array): Stored | undefined => {
      const s = this.#map.get(key);
      return s === undefined || isExpired(s, nowMs) ? undefined : s;
    };

    const failedChecks: number[] = [];
    write.checks.forEach((check, i) => {
      const current = live(check.key);
      const ok = check.versionstamp.length === 0
        ? current === undefined
        : current !== undefined && compareBytes(current.versionstamp, check.versionstamp) === 0;
      if (!ok) failedChecks.push(i);
    });
    if (failedChecks.length > 0) return { ok: false, failedChecks };

    const version = this.#version + 1;
    const versionstamp = versionstampOf(version);
    // Mutations are staged, so that one refused halfway leaves the store untouched.
    const staged = new Map<string, { key: Uint8Array; stored: Stored | undefined }>();
    const current = (key: Uint8Array): Stored | undefined => {
      const s = staged.get(keyId(key));
      return s !== undefined ? s.stored : live(key);
    };
    const put = (key: Uint8Array, stored: Stored | undefined) => {
      staged.set(keyId(key), { key, stored });
    };
    write.mutations.forEach((m, i) => {
      const expireAtMs = m.expireAtMs > 0 ? m.expireAtMs : 0;
      const make = (value: Uint8Array, encoding: number): Stored => ({
        // Copies: the request body these views point into is not ours to keep.
        value: value.slice(),
        encoding,
        versionstamp,
        expireAtMs,
      });
      switch (m.mutationType) {
        case MutationType.SET:
          put(m.key, make(m.value!.data, m.value!.encoding));
          break;
        case MutationType.DELETE:
          put(m.key, undefined);
          break;
        case MutationType.SET_SUFFIX_VERSIONSTAMPED_KEY: {
          // The versionstamp goes at the end of the key as one more string part (tag 0x02,
          // 20 hex digits, terminator 0x00), so such keys sort in commit order.
          const hex = Array.from(versionstamp, (b) => b.toString(16).padStart(2, "0")).join("");
          const key = new Uint8Array(m.key.length + 22);
          key.set(m.key);
          key[m.key.length] = 0x02;
          for (let j = 0; j < 20; j++) key[m.key.length + 1 + j] = hex.charCodeAt(j);
          put(key, make(m.value!.data, m.value!.encoding));
          break;
        }
        case MutationType.MIN:
        case MutationType.MAX: {
          const op = m.mutationType === MutationType.MIN ? "min" : "max";
          const result = this.#minMax(op, m, current(m.key), i);
          put(m.key, make(result, ValueEncoding.LE64));
          break;
        }
        case MutationType.SUM: {
          const { value, encoding } = this.#sum(m, current(m.key), i);
          put(m.key, make(value, encoding));
          break;
        }
      }
    });

    this.#version = version;
    const changed: Uint8Array[] = [];
    for (const { key, stored } of staged.values()) {
      if (stored === undefined) {
        if (this.#map.delete(key)) changed.push(key);
        continue;
      }
      const ownKey = key.slice();
      this.#map.set(ownKey, stored);
      if (stored.expireAtMs !== 0) this.#expiries.push(stored.expireAtMs, ownKey, stored);
      changed.push(ownKey);
    }
    this.#notify(changed);
    if (this.onCommit !== null) {
      const commit: KvCommit = { version, puts: [], deletes: [] };
      for (const { key, stored } of staged.values()) {
        if (stored === undefined) commit.deletes.push(key);
        else {
          commit.puts.push({
            key,
            value: stored.value,
            encoding: stored.encoding,
            expireAtMs: stored.expireAtMs,
          });
        }
      }
      this.onCommit(commit);
    }
    return { ok: true, versionstamp };
  }

  #minMax(op: "min" | "max", m: Mutation, cur: Stored | undefined, i: number): Uint8Array {
    if (m.value!.encoding !== ValueEncoding.LE64) {
      typeMismatch(`mutations[${i}]: '${op}' needs a Deno.KvU64 operand`);
    }
    if (cur === undefined) return m.value!.data;
    if (cur.encoding !== ValueEncoding.LE64) {
      typeMismatch(`mutations[${i}]: cannot '${op}' into a stored value that is not a Deno.KvU64`);
    }
    const a = readU64(cur.value);
    const b = readU64(m.value!.data);
    return u64Bytes(op === "min" ? (a < b ? a : b) : (a > b ? a : b));
  }

  /**
   * A sum: KvU64 + KvU64 wraps modulo 2^64 (sum_min/sum_max do not apply). A V8 number or
   * bigint operand adds to a stored value of the same type, within sum_min..sum_max if given
   * (clamped with sum_clamp, refused otherwise); a bigint operand that fits a u64 may also add
   * to a stored KvU64 when no bounds are given. An absent key takes the operand as is.
   */
  #sum(m: Mutation, cur: Stored | undefined, i: number): { value: Uint8Array; encoding: number } {
    const where = `mutations[${i}]`;
    const operandValue = m.value!;
    let operand: SumValue;
    if (operandValue.encoding === ValueEncoding.LE64) {
      if (m.sumMin.length > 0 || m.sumMax.length > 0 || m.sumClamp) {
        typeMismatch(`${where}: sum bounds cannot be used with Deno.KvU64 operands`);
      }
      operand = { kind: "KvU64", value: readU64(operandValue.data) };
    } else {
      const parsed = operandValue.encoding === ValueEncoding.V8
        ? decodeV8Scalar(operandValue.data)
        : undefined;
      if (parsed === undefined) {
        typeMismatch(`${where}: a sum operand must be a Deno.KvU64, a number or a bigint`);
      }
      operand = v8SumValue(parsed);
    }
    const bound = (bytes: Uint8Array, name: string): SumValue | undefined => {
      if (bytes.length === 0) return undefined;
      const parsed = decodeV8Scalar(bytes);
      if (parsed === undefined) typeMismatch(`${where}: ${name} is not a number or a bigint`);
      const b = v8SumValue(parsed);
      if (b.kind !== operand.kind) {
        typeMismatch(`${where}: ${name} is a ${b.kind}, the operand a ${operand.kind}`);
      }
      return b;
    };
    const min = bound(m.sumMin, "sum_min");
    const max = bound(m.sumMax, "sum_max");

    const encode = (v: SumValue): { value: Uint8Array; encoding: number } =>
      v.kind === "KvU64"
        ? { value: u64Bytes(v.value), encoding: ValueEncoding.LE64 }
        : { value: encodeV8Scalar(v.value, v.version), encoding: ValueEncoding.V8 };

    if (cur === undefined) return encode(operand);

    let stored: SumValue;
    if (cur.encoding === ValueEncoding.LE64) {
      stored = { kind: "KvU64", value: readU64(cur.value) };
    } else {
      const parsed = cur.encoding === ValueEncoding.V8 ? decodeV8Scalar(cur.value) : undefined;
      if (parsed === undefined) {
        typeMismatch(
          `${where}: cannot sum a ${operand.kind} into a stored value that is not a ` +
            "Deno.KvU64, a number or a bigint",
        );
      }
      stored = v8SumValue(parsed);
    }

    if (
      stored.kind === "KvU64" && operand.kind === "BigInt" && min === undefined &&
      max === undefined && !m.sumClamp && operand.value >= 0n && operand.value <= MAX_U64
    ) {
      operand = { kind: "KvU64", value: operand.value };
    }

    if (stored.kind === "KvU64" && operand.kind === "KvU64") {
      return encode({ kind: "KvU64", value: (stored.value + operand.value) & MAX_U64 });
    }
    if (stored.kind === "BigInt" && operand.kind === "BigInt") {
      let v = stored.value + operand.value;
      if (min !== undefined && v < (min.value as bigint)) {
        if (!m.sumClamp) typeMismatch(`${where}: the sum would go below sum_min`);
        v = min.value as bigint;
      }
      if (max !== undefined && v > (max.value as bigint)) {
        if (!m.sumClamp) typeMismatch(`${where}: the sum would go above sum_max`);
        v = max.value as bigint;
      }
      return encode({ kind: "BigInt", value: v, version: operand.version });
    }
    if (stored.kind === "Number" && operand.kind === "Number") {
      let v = stored.value + operand.value;
      if (min !== undefined && v < (min.value as number)) {
        if (!m.sumClamp) typeMismatch(`${where}: the sum would go below sum_min`);
        v = min.value as number;
      }
      if (max !== undefined && v > (max.value as number)) {
        if (!m.sumClamp) typeMismatch(`${where}: the sum would go above sum_max`);
        v = max.value as number;
      }
      return encode({ kind: "Number", value: v, version: operand.version });
    }
    return typeMismatch(`${where}: cannot sum a ${operand.kind} into a stored ${stored.kind}`);
  }

  watch(watch: Watch, onChange: () => void): () => void {
    validateWatch(watch);
    const ids = [...new Set(watch.keys.map(keyId))];
    for (const id of ids) {
      let set = this.#watchers.get(id);
      if (set === undefined) this.#watchers.set(id, set = new Set());
      set.add(onChange);
    }
    return () => {
      for (const id of ids) {
        const set = this.#watchers.get(id);
        if (set === undefined) continue;
        set.delete(onChange);
        if (set.size === 0) this.#watchers.delete(id);
      }
    };
  }

  #notify(keys: Uint8Array[]): void {
    if (this.#watchers.size === 0) return;
    const calls = new Set<() => void>();
    for (const key of keys) {
      const set = this.#watchers.get(keyId(key));
      if (set !== undefined) { for (const f of set) calls.add(f); }
    }
    for (const f of calls) {
      // A watcher's failure is its own; the commit has happened.
      try {
        f();
      } catch {
        // ignored on purpose
      }
    }
  }
}
