/**
 * The MVCC key-value store with etcd v3 semantics, applied identically on every member.
 *
 * - Revisions: the empty store is at revision 1; each request that changes something (put,
 *   deleting at least one key, a txn with such ops, a lease revoke that deletes keys) makes one
 *   new revision; the ops of one txn share it (with sub-revisions). Reads never change it.
 * - History: per key, the records (puts and tombstones) in revision order; reads at an older
 *   revision see the last record at or before it. `compact(rev)` drops every record superseded
 *   at `rev` (and tombstones at or before it); reads below the compact revision fail.
 * - Keys: an ordered array of every key with history (binary search for ranges) + a Map.
 * - Leases: the replicated table (id, TTL, attached keys) lives here; expiry deadlines are local
 *   and volatile (see lessor.ts).
 * - Everything is deterministic: the same commands in the same order give the same state and the
 *   same results on every member. Errors are results too (`EtcdError`), raised before any change.
 *
 * @module
 */

import {
  type Compare,
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  type DeleteRangeResult,
  Errors,
  EtcdError,
  type KeyValue,
  type PutRequest,
  type PutResult,
  type RangeRequest,
  type RangeResult,
  type RequestOp,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from "./types.ts";
import {
  type DecodedSnapshot,
  decodeSnapshot,
  encodeSnapshot,
  isBinarySnapshot,
  type SnapshotRec,
} from "./snapshot_codec.ts";

/** One version of a key. A tombstone has `tomb` set and no value. */
type Rec = SnapshotRec;

/** A lease as replicated: TTL in seconds and the keys attached to it. */
export interface Lease {
  id: string;
  ttl: number;
  keys: Set<string>;
}

/** Options of {@link MvccStore}. */
export interface MvccStoreOptions {
  /** Approximate history bytes before puts are refused (etcd's backend quota). */
  quotaBytes?: number;
  /** Max ops in one txn (etcd default 128). */
  maxTxnOps?: number;
}

/** Bookkeeping bytes charged per record besides key and value. */
const REC_OVERHEAD_BYTES = 64;

/** Receives the events of each new revision (the watch hub). */
export type EventSink = (revision: number, events: WatchEvent[]) => void;

const EMPTY = "";
/** Bytes copied between two yields when an asynchronous snapshot's slices are joined. */
const SNAPSHOT_JOIN_BYTES = 4 << 20;
/** The range_end that means "every key >= key". */
const ALL_FROM = "\0";

interface WriteCtx {
  rev: number;
  sub: number;
  events: WatchEvent[];
}

/** The replicated MVCC store. */
export class MvccStore {
  revision = 1;
  compactRevision = 0;
  readonly quotaBytes: number;
  readonly maxTxnOps: number;
  /** Every key with history, sorted (byte order). */
  #keys: string[] = [];
  /** Keys (sorted) whose latest record is a tombstone: live keys in a range = keys - these. */
  #dead: string[] = [];
  readonly #hist = new Map<string, Rec[]>();
  readonly leases = new Map<string, Lease>();
  #bytes = 0;
  #liveKeys = 0;
  #sink: EventSink | null = null;

  constructor(options: MvccStoreOptions = {}) {
    this.quotaBytes = options.quotaBytes ?? 2 * 1024 ** 3;
    this.maxTxnOps = options.maxTxnOps ?? 128;
  }

  /** Registers the receiver of watch events (one per store). */
  onEvents(sink: EventSink | null): void {
    this.#sink = sink;
  }

  /** Approximate bytes of history held (keys, values, record overhead). */
  get sizeBytes(): number {
    return this.#bytes;
  }

  /** Keys that currently exist. */
  get keyCount(): number {
    return this.#liveKeys;
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  range(req: RangeRequest): RangeResult {
    if (req.key === EMPTY) throw Errors.emptyKey();
    const rev = this.#readRevision(req.revision ?? 0);
    return this.#range(req, rev);
  }

  #readRevision(r: number): number {
    if (r <= 0) return this.revision;
    if (r > this.revision) throw Errors.futureRev();
    if (r < this.compactRevision) throw Errors.compacted();
    return r;
  }

  #range(req: RangeRequest, rev: number): RangeResult {
    const fast = this.#rangeLatest(req, rev);
    if (fast !== null) return fast;
    const kvs: KeyValue[] = [];
    let count = 0;
    const filtered = hasRevisionFilters(req);
    const sortOrder = req.sortOrder ?? SortOrder.NONE;
    const sortTarget = req.sortTarget ?? SortTarget.KEY;
    const needSort = !(sortTarget === SortTarget.KEY && sortOrder !== SortOrder.DESCEND);
    const limit = req.limit ?? 0;
    // Without sorting or filters the scan may stop after `limit` matches (but still counts).
    const collectAll = filtered || needSort || limit <= 0;
    this.#scan(req.key, req.rangeEnd, (key, h) => {
      const r = visible(h, rev);
      if (r === null) return;
      count++;
      if (req.countOnly) return;
      if (!collectAll && kvs.length >= limit) return;
      if (filtered && !passes(req, r)) return;
      kvs.push(toKv(key, r, req.keysOnly === true));
    });
    if (req.countOnly) return { revision: this.revision, kvs: [], more: false, count };
    if (needSort) {
      sortKvs(kvs, sortTarget, sortOrder === SortOrder.NONE ? SortOrder.ASCEND : sortOrder);
    }
    let more = false;
    if (limit > 0 && kvs.length > limit) {
      kvs.length = limit;
      more = true;
    } else if (limit > 0 && !collectAll && count > kvs.length) {
      more = true;
    }
    return { revision: this.revision, kvs, more, count };
  }

  /**
   * A range over several keys at the current revision without filters or sorting (other than
   * by key, ascending): the count comes from two binary searches (keys with history minus keys
   * whose latest record is a tombstone), and only `limit` entries are visited. Null when the
   * request needs the general scan.
   */
  #rangeLatest(req: RangeRequest, rev: number): RangeResult | null {
    const end = req.rangeEnd;
    if (rev !== this.revision || end === undefined || end === EMPTY) return null;
    if (hasRevisionFilters(req)) return null;
    const order = req.sortOrder ?? SortOrder.NONE;
    if ((req.sortTarget ?? SortTarget.KEY) !== SortTarget.KEY || order === SortOrder.DESCEND) {
      return null;
    }
    const keys = this.#keys;
    const dead = this.#dead;
    const toEnd = end === ALL_FROM;
    const lo = lowerBound(keys, req.key);
    const hi = toEnd ? keys.length : Math.max(lo, lowerBound(keys, end));
    const deadLo = lowerBound(dead, req.key);
    const deadHi = toEnd ? dead.length : Math.max(deadLo, lowerBound(dead, end));
    const count = hi - lo - (deadHi - deadLo);
    if (req.countOnly) return { revision: this.revision, kvs: [], more: false, count };
    const limit = req.limit ?? 0;
    const kvs: KeyValue[] = [];
    for (let i = lo; i < hi && (limit <= 0 || kvs.length < limit); i++) {
      const h = this.#hist.get(keys[i])!;
      const r = h[h.length - 1];
      if (!r.tomb) kvs.push(toKv(keys[i], r, req.keysOnly === true));
    }
    return { revision: this.revision, kvs, more: count > kvs.length, count };
  }

  /** Calls `fn` for every key with history in [key, rangeEnd) (etcd conventions). */
  #scan(key: string, rangeEnd: string | undefined, fn: (key: string, h: Rec[]) => void): void {
    if (rangeEnd === undefined || rangeEnd === EMPTY) {
      const h = this.#hist.get(key);
      if (h) fn(key, h);
      return;
    }
    const keys = this.#keys;
    const toEnd = rangeEnd === ALL_FROM;
    for (let i = lowerBound(keys, key); i < keys.length; i++) {
      const k = keys[i];
      if (!toEnd && k >= rangeEnd) break;
      fn(k, this.#hist.get(k)!);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Writes (each is one request = at most one new revision)

  put(req: PutRequest): PutResult {
    this.#checkPut(req, this.revision);
    const ctx = this.#begin();
    const res = this.#put(ctx, req);
    this.#commit(ctx);
    res.revision = this.revision;
    return res;
  }

  deleteRange(req: DeleteRangeRequest): DeleteRangeResult {
    if (req.key === EMPTY) throw Errors.emptyKey();
    const ctx = this.#begin();
    const res = this.#deleteRange(ctx, req);
    this.#commit(ctx);
    res.revision = this.revision;
    return res;
  }

  txn(req: TxnRequest): TxnResult {
    this.#checkTxn(req);
    const ctx = this.#begin();
    const res = this.#txn(ctx, req);
    this.#commit(ctx);
    setRevision(res, this.revision);
    return res;
  }

  /** Removes history superseded at `rev`. Returns the store revision. */
  compact(rev: number): number {
    if (rev <= this.compactRevision) throw Errors.compacted();
    if (rev > this.revision) throw Errors.futureRev();
    this.compactRevision = rev;
    const emptied: string[] = [];
    for (const [key, h] of this.#hist) {
      // The record visible at rev stays (unless it is a tombstone); older ones go.
      let keep = -1;
      for (let i = h.length - 1; i >= 0; i--) {
        if (h[i].mod <= rev) {
          keep = i;
          break;
        }
      }
      if (keep < 0) continue;
      const drop = h[keep].tomb ? keep + 1 : keep;
      if (drop === 0) continue;
      for (let i = 0; i < drop; i++) this.#bytes -= recBytes(key, h[i]);
      // A new array, not a splice: snapshots being serialised hold the old one.
      if (drop === h.length) emptied.push(key);
      else this.#hist.set(key, h.slice(drop));
    }
    if (emptied.length > 0) {
      for (const k of emptied) this.#hist.delete(k);
      const gone = new Set(emptied);
      this.#keys = this.#keys.filter((k) => !gone.has(k));
      this.#dead = this.#dead.filter((k) => !gone.has(k));
    }
    return this.revision;
  }

  // -------------------------------------------------------------------------------------------
  // Leases (replicated part)

  /** Grants a lease (the caller picked `id`, non-zero). `ttl` is already normalised. */
  leaseGrant(id: string, ttl: number): Lease {
    if (this.leases.has(id)) throw Errors.leaseExists();
    const lease: Lease = { id, ttl, keys: new Set() };
    this.leases.set(id, lease);
    return lease;
  }

  /** Revokes a lease, deleting its keys in one revision. */
  leaseRevoke(id: string): number {
    const lease = this.leases.get(id);
    if (!lease) throw Errors.leaseNotFound();
    const ctx = this.#begin();
    for (const key of [...lease.keys].sort()) this.#deleteRange(ctx, { key });
    this.leases.delete(id);
    this.#commit(ctx);
    return this.revision;
  }

  // -------------------------------------------------------------------------------------------
  // Write internals

  #begin(): WriteCtx {
    return { rev: this.revision + 1, sub: 0, events: [] };
  }

  #commit(ctx: WriteCtx): void {
    if (ctx.sub === 0) return;
    this.revision = ctx.rev;
    this.#sink?.(ctx.rev, ctx.events);
  }

  #checkPut(req: PutRequest, rev: number): void {
    if (req.key === EMPTY) throw Errors.emptyKey();
    if (req.ignoreValue || req.ignoreLease) {
      const h = this.#hist.get(req.key);
      if (!h || visible(h, rev) === null) throw Errors.keyNotFound();
    }
    const lease = req.lease ?? "0";
    if (!req.ignoreLease && lease !== "0" && !this.leases.has(lease)) throw Errors.leaseNotFound();
    if (this.#bytes > this.quotaBytes) throw Errors.noSpace();
  }

  #put(ctx: WriteCtx, req: PutRequest): PutResult {
    const key = req.key;
    let h = this.#hist.get(key);
    const cur = h ? visible(h, ctx.rev) : null;
    const value = req.ignoreValue ? cur!.value : req.value;
    const lease = req.ignoreLease ? cur!.lease : (req.lease ?? "0");
    const rec: Rec = {
      mod: ctx.rev,
      sub: ctx.sub++,
      create: cur ? cur.create : ctx.rev,
      version: cur ? cur.version + 1 : 1,
      value,
      lease,
      tomb: false,
    };
    if (!h) {
      h = [];
      this.#hist.set(key, h);
      this.#keys.splice(lowerBound(this.#keys, key), 0, key);
    } else if (h[h.length - 1].tomb) {
      this.#dead.splice(lowerBound(this.#dead, key), 1);
    }
    h.push(rec);
    this.#bytes += recBytes(key, rec);
    if (!cur) this.#liveKeys++;
    if (cur && cur.lease !== lease && cur.lease !== "0") {
      this.leases.get(cur.lease)?.keys.delete(key);
    }
    if (lease !== "0") this.leases.get(lease)?.keys.add(key);
    const prevKv = cur ? toKv(key, cur, false) : undefined;
    ctx.events.push({ type: "PUT", kv: toKv(key, rec, false), prevKv });
    const res: PutResult = { revision: 0 };
    if (req.prevKv && prevKv) res.prevKv = prevKv;
    return res;
  }

  #deleteRange(ctx: WriteCtx, req: DeleteRangeRequest): DeleteRangeResult {
    const victims: [string, Rec[], Rec][] = [];
    this.#scan(req.key, req.rangeEnd, (key, h) => {
      const r = visible(h, ctx.rev);
      if (r !== null) victims.push([key, h, r]);
    });
    const prevKvs: KeyValue[] = [];
    for (const [key, h, cur] of victims) {
      const tomb: Rec = {
        mod: ctx.rev,
        sub: ctx.sub++,
        create: 0,
        version: 0,
        value: EMPTY,
        lease: "0",
        tomb: true,
      };
      h.push(tomb);
      this.#dead.splice(lowerBound(this.#dead, key), 0, key);
      this.#bytes += recBytes(key, tomb);
      this.#liveKeys--;
      if (cur.lease !== "0") this.leases.get(cur.lease)?.keys.delete(key);
      const prev = toKv(key, cur, false);
      if (req.prevKv) prevKvs.push(prev);
      ctx.events.push({ type: "DELETE", kv: deletedKv(key, ctx.rev), prevKv: prev });
    }
    return { revision: 0, deleted: victims.length, prevKvs };
  }

  #txn(ctx: WriteCtx, req: TxnRequest): TxnResult {
    const succeeded = this.#compares(req.compare, ctx.sub > 0 ? ctx.rev : this.revision);
    const ops = succeeded ? req.success : req.failure;
    const responses: ResponseOp[] = [];
    for (const op of ops) {
      if ("range" in op) {
        const rev = op.range.revision && op.range.revision > 0
          ? this.#readRevision(op.range.revision)
          : (ctx.sub > 0 ? ctx.rev : this.revision);
        responses.push({ range: this.#range(op.range, rev) });
      } else if ("put" in op) {
        responses.push({ put: this.#put(ctx, op.put) });
      } else if ("deleteRange" in op) {
        responses.push({ deleteRange: this.#deleteRange(ctx, op.deleteRange) });
      } else {
        responses.push({ txn: this.#txn(ctx, op.txn) });
      }
    }
    return { revision: 0, succeeded, responses };
  }

  #compares(cs: readonly Compare[], rev: number): boolean {
    for (const c of cs) if (!this.#compare(c, rev)) return false;
    return true;
  }

  #compare(c: Compare, rev: number): boolean {
    let any = false;
    let ok = true;
    this.#scan(c.key, c.rangeEnd, (key, h) => {
      const r = visible(h, rev);
      if (r === null || !ok) return;
      any = true;
      if (!compareOne(c, toKv(key, r, false))) ok = false;
    });
    if (!any) {
      // etcd: a missing key compares as zero, except on VALUE where the compare fails.
      if (c.target === CompareTarget.VALUE) return false;
      return compareOne(c, {
        key: c.key,
        createRevision: 0,
        modRevision: 0,
        version: 0,
        value: EMPTY,
        lease: "0",
      });
    }
    return ok;
  }

  /** Validation of a whole txn before anything changes (etcd checks the same). */
  #checkTxn(req: TxnRequest): void {
    let ops = 0;
    const count = (t: TxnRequest): void => {
      ops = Math.max(ops, t.success.length, t.failure.length, t.compare.length);
      for (const op of [...t.success, ...t.failure]) if ("txn" in op) count(op.txn);
    };
    count(req);
    if (ops > this.maxTxnOps) throw Errors.tooManyOps();
    checkIntervals(req.success);
    checkIntervals(req.failure);
    const branch = this.#compares(req.compare, this.revision) ? req.success : req.failure;
    this.#checkOps(branch);
  }

  #checkOps(ops: readonly RequestOp[]): void {
    for (const op of ops) {
      if ("put" in op) this.#checkPut(op.put, this.revision);
      else if ("deleteRange" in op) {
        if (op.deleteRange.key === EMPTY) throw Errors.emptyKey();
      } else if ("range" in op) {
        if (op.range.key === EMPTY) throw Errors.emptyKey();
        if ((op.range.revision ?? 0) > 0) this.#readRevision(op.range.revision!);
      } else {
        const t = op.txn;
        this.#checkOps(this.#compares(t.compare, this.revision) ? t.success : t.failure);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // History for watchers

  /**
   * Events of keys in [key, rangeEnd) from revision `from` to the current one, in revision order
   * (throws when `from` is compacted). Each carries the previous version when still in history.
   */
  eventsSince(key: string, rangeEnd: string | undefined, from: number): WatchEvent[] {
    if (from < this.compactRevision) throw Errors.compacted();
    const out: { e: WatchEvent; mod: number; sub: number }[] = [];
    this.#scan(key, rangeEnd, (k, h) => {
      for (let i = 0; i < h.length; i++) {
        const r = h[i];
        if (r.mod < from) continue;
        const prev = i > 0 && !h[i - 1].tomb ? toKv(k, h[i - 1], false) : undefined;
        const e: WatchEvent = r.tomb
          ? { type: "DELETE", kv: deletedKv(k, r.mod), prevKv: prev }
          : { type: "PUT", kv: toKv(k, r, false), prevKv: prev };
        out.push({ e, mod: r.mod, sub: r.sub });
      }
    });
    out.sort((a, b) => a.mod - b.mod || a.sub - b.sub);
    return out.map((x) => x.e);
  }

  // -------------------------------------------------------------------------------------------
  // Snapshot

  /** The whole replicated state as bytes. */
  snapshot(): Uint8Array {
    return concatBytes([...this.#capture()]);
  }

  /**
   * The state as of this call (after the bytes of `prefix`, a caller's own framing), serialised
   * in slices with the event loop free between them (a large history takes hundreds of
   * milliseconds to encode). Writes may go on meanwhile: the
   * capture holds the key list and each history's length, and histories only grow in place
   * (compaction replaces them).
   */
  async snapshotAsync(prefix: readonly Uint8Array[] = []): Promise<Uint8Array> {
    const parts = [...prefix];
    for (const part of this.#capture()) {
      parts.push(part);
      await yieldToEventLoop();
    }
    // Joined a few MiB at a time too: one copy of a large history is tens of milliseconds.
    let n = 0;
    for (const p of parts) n += p.length;
    const out = new Uint8Array(n);
    let at = 0;
    let since = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
      since += p.length;
      if (since >= SNAPSHOT_JOIN_BYTES) {
        since = 0;
        await yieldToEventLoop();
      }
    }
    return out;
  }

  /** Captures the state now (O(keys)); the iterator encodes it a chunk at a time. */
  #capture(): Iterable<Uint8Array> {
    const keys = this.#keys.slice();
    const hists = keys.map((k) => this.#hist.get(k)!);
    const lens = hists.map((h) => h.length);
    const leases = [...this.leases.values()].map((l): [string, number] => [l.id, l.ttl]);
    return encodeSnapshot(this.revision, this.compactRevision, leases, keys, hists, lens);
  }

  /**
   * Replaces the state with a snapshot: the binary format, or the JSON one of earlier versions
   * (throws on malformed input, leaving the store as is).
   */
  restore(data: Uint8Array): void {
    const o = isBinarySnapshot(data) ? decodeSnapshot(data) : decodeJsonSnapshot(data);
    const hist = new Map<string, Rec[]>();
    const keys: string[] = [];
    let bytes = 0;
    let live = 0;
    const leases = new Map<string, Lease>();
    for (const [id, ttl] of o.leases) leases.set(id, { id, ttl, keys: new Set() });
    let prev: string | null = null;
    for (const [k, h] of o.keys) {
      if (prev !== null && !(k > prev)) throw new Error("metastore snapshot: keys out of order");
      prev = k;
      for (const r of h) bytes += recBytes(k, r);
      const last = h[h.length - 1];
      if (!last.tomb) {
        live++;
        if (last.lease !== "0") leases.get(last.lease)?.keys.add(k);
      }
      hist.set(k, h);
      keys.push(k);
    }
    this.revision = o.rev;
    this.compactRevision = o.compact;
    this.#keys = keys;
    this.#dead = keys.filter((k) => hist.get(k)![hist.get(k)!.length - 1].tomb);
    this.#hist.clear();
    for (const [k, h] of hist) this.#hist.set(k, h);
    this.leases.clear();
    for (const [id, l] of leases) this.leases.set(id, l);
    this.#bytes = bytes;
    this.#liveKeys = live;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** The JSON snapshot format of earlier versions (v1), checked field by field. */
function decodeJsonSnapshot(data: Uint8Array): DecodedSnapshot {
  let o: {
    v: number;
    rev: number;
    compact: number;
    keys: [string, unknown[]][];
    leases: [string, number][];
  };
  try {
    o = JSON.parse(new TextDecoder().decode(data));
  } catch (e) {
    throw new Error(`metastore snapshot: not JSON: ${(e as Error).message}`);
  }
  if (
    !o || o.v !== 1 || !Number.isSafeInteger(o.rev) || !Number.isSafeInteger(o.compact) ||
    !Array.isArray(o.keys) || !Array.isArray(o.leases)
  ) {
    throw new Error("metastore snapshot: bad header");
  }
  for (const l of o.leases) {
    if (!Array.isArray(l) || typeof l[0] !== "string" || typeof l[1] !== "number") {
      throw new Error("metastore snapshot: bad lease");
    }
  }
  const keys: [string, SnapshotRec[]][] = o.keys.map((entry) => {
    const [k, recs] = Array.isArray(entry) ? entry : [];
    if (typeof k !== "string" || !Array.isArray(recs) || recs.length === 0) {
      throw new Error("metastore snapshot: bad key entry");
    }
    return [
      k,
      recs.map((a) => {
        if (
          !Array.isArray(a) || a.length !== 7 || typeof a[4] !== "string" ||
          typeof a[5] !== "string"
        ) {
          throw new Error("metastore snapshot: bad record");
        }
        return {
          mod: a[0],
          sub: a[1],
          create: a[2],
          version: a[3],
          value: a[4],
          lease: a[5],
          tomb: a[6] === 1,
        };
      }),
    ];
  });
  return { rev: o.rev, compact: o.compact, leases: o.leases, keys };
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** The parts one after another in one array. */
function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function hasRevisionFilters(req: RangeRequest): boolean {
  return (req.minModRevision ?? 0) > 0 || (req.maxModRevision ?? 0) > 0 ||
    (req.minCreateRevision ?? 0) > 0 || (req.maxCreateRevision ?? 0) > 0;
}

function visible(h: Rec[], rev: number): Rec | null {
  for (let i = h.length - 1; i >= 0; i--) {
    const r = h[i];
    if (r.mod <= rev) return r.tomb ? null : r;
  }
  return null;
}

function toKv(key: string, r: Rec, keysOnly: boolean): KeyValue {
  return {
    key,
    createRevision: r.create,
    modRevision: r.mod,
    version: r.version,
    value: keysOnly ? EMPTY : r.value,
    lease: r.lease,
  };
}

function deletedKv(key: string, rev: number): KeyValue {
  return { key, createRevision: 0, modRevision: rev, version: 0, value: EMPTY, lease: "0" };
}

function recBytes(key: string, r: Rec): number {
  return key.length + r.value.length + REC_OVERHEAD_BYTES;
}

function passes(req: RangeRequest, r: Rec): boolean {
  if (req.minModRevision && r.mod < req.minModRevision) return false;
  if (req.maxModRevision && r.mod > req.maxModRevision) return false;
  if (req.minCreateRevision && r.create < req.minCreateRevision) return false;
  if (req.maxCreateRevision && r.create > req.maxCreateRevision) return false;
  return true;
}

/** First index whose key is >= `key`. */
export function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sortKvs(kvs: KeyValue[], target: number, order: number): void {
  const sign = order === SortOrder.DESCEND ? -1 : 1;
  const cmp = (a: KeyValue, b: KeyValue): number => {
    switch (target) {
      case SortTarget.VERSION:
        return a.version - b.version;
      case SortTarget.CREATE:
        return a.createRevision - b.createRevision;
      case SortTarget.MOD:
        return a.modRevision - b.modRevision;
      case SortTarget.VALUE:
        return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
      default:
        return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    }
  };
  // Ties keep key order (the scan order), as etcd's stable sort does.
  kvs.sort((a, b) => sign * cmp(a, b));
}

function compareOne(c: Compare, kv: KeyValue): boolean {
  let d: number;
  switch (c.target) {
    case CompareTarget.VERSION:
      d = kv.version - (c.version ?? 0);
      break;
    case CompareTarget.CREATE:
      d = kv.createRevision - (c.createRevision ?? 0);
      break;
    case CompareTarget.MOD:
      d = kv.modRevision - (c.modRevision ?? 0);
      break;
    case CompareTarget.VALUE: {
      const v = c.value ?? EMPTY;
      d = kv.value < v ? -1 : kv.value > v ? 1 : 0;
      break;
    }
    case CompareTarget.LEASE: {
      const a = BigInt(kv.lease);
      const b = BigInt(c.lease ?? "0");
      d = a < b ? -1 : a > b ? 1 : 0;
      break;
    }
    default:
      throw new EtcdError(3, "etcdserver: unknown compare target");
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return d === 0;
    case CompareResult.GREATER:
      return d > 0;
    case CompareResult.LESS:
      return d < 0;
    case CompareResult.NOT_EQUAL:
      return d !== 0;
    default:
      throw new EtcdError(3, "etcdserver: unknown compare result");
  }
}

/** Rejects puts of the same key twice, or of a key a delete in the same branch covers. */
function checkIntervals(ops: readonly RequestOp[]): void {
  const puts = new Set<string>();
  const dels: [string, string | undefined][] = [];
  const collect = (list: readonly RequestOp[], top: boolean): void => {
    for (const op of list) {
      if ("put" in op) {
        if (top && puts.has(op.put.key)) throw Errors.duplicateKey();
        puts.add(op.put.key);
      } else if ("deleteRange" in op) {
        dels.push([op.deleteRange.key, op.deleteRange.rangeEnd]);
      } else if ("txn" in op) {
        checkIntervals(op.txn.success);
        checkIntervals(op.txn.failure);
        collect(op.txn.success, false);
        collect(op.txn.failure, false);
      }
    }
  };
  collect(ops, true);
  for (const [k, end] of dels) {
    for (const p of puts) {
      const inside = end === undefined || end === EMPTY
        ? p === k
        : end === ALL_FROM
        ? p >= k
        : p >= k && p < end;
      if (inside) throw Errors.duplicateKey();
    }
  }
}

function setRevision(res: TxnResult, rev: number): void {
  res.revision = rev;
  for (const r of res.responses) {
    if ("range" in r) r.range.revision = rev;
    else if ("put" in r) r.put.revision = rev;
    else if ("deleteRange" in r) r.deleteRange.revision = rev;
    else setRevision(r.txn, rev);
  }
}
