/**
 * Linearizability checker for key-value histories.
 *
 * Algorithm: Wing & Gong's search for a linearization, with Lowe's refinement as implemented
 * in Porcupine (Anish Athalye): the history is a doubly linked list of call and return events
 * sorted by time; the search repeatedly "lifts" an operation whose call comes before the first
 * pending return, backtracks on reaching a return, and memoizes every visited pair
 * (set of linearized operations, model state) so that no pair is explored twice. The set is a
 * bitset with an incrementally maintained Zobrist hash, so one search step costs O(1) apart
 * from cache inserts.
 *
 * The KV model is independent per key (P-compositionality), so the history is split by key
 * and each key is checked alone, smallest first; the first failing key is reported, after
 * shrinking it to a small sub-history that still fails (see {@link checkKvHistory}).
 *
 * Semantics:
 *
 * - Operation A precedes B in real time iff `A.return < B.call`; equal times count as
 *   concurrent (the permissive choice: it never reports a false violation).
 * - An operation with `return: Infinity` has an unknown outcome (the client gave up): it may
 *   take effect at any point after its call, or never. Its `result` is ignored. Unknown `get`s
 *   carry no information and are dropped before the search.
 * - Operations known to have failed without effect must be left out of the history.
 * - A key that was never written reads as `null`.
 *
 * @module
 */

import type { Clock } from "./clock.ts";

/** A value stored under a key. Values compare with `===`. */
export type KvValue = string | number;

/** The operations of the KV model. */
export type KvOpKind = "put" | "get" | "delete" | "cas";

/** One operation of a history. */
export interface KvOperation {
  kind: KvOpKind;
  key: string;
  /** `put`: the value written; `cas`: the new value. */
  value?: KvValue;
  /** `cas`: the value the key must hold (`null`: must be absent) for the swap to happen. */
  expected?: KvValue | null;
  /** `get`: the value read (`null`: absent); `cas`: whether it swapped. Ignored otherwise. */
  result?: KvValue | null | boolean;
  /** Invocation time. */
  call: number;
  /** Completion time; `Infinity` when the outcome is unknown. */
  return: number;
  /** Who issued it (only for messages). */
  client?: string | number;
}

/** Result of a check. */
export type CheckResult =
  | { ok: true }
  | {
    ok: false;
    /** The failing key (the one with the fewest operations, if several fail). */
    key: string;
    /** A readable explanation. */
    info: string;
    /** The shrunken failing sub-history of `key` (relaxed ops have `return: Infinity`). */
    ops: KvOperation[];
    /** True when the search budget ran out: not proven wrong, but not proven right. */
    inconclusive?: boolean;
  };

/** Options for {@link checkKvHistory}. */
export interface CheckOptions {
  /** Initial values (default: every key absent). */
  initial?: ReadonlyMap<string, KvValue> | Record<string, KvValue>;
  /** Search steps allowed per key before giving up as inconclusive. Default 10,000,000
   * (memory grows with the steps: roughly 30 bytes each in the worst case). */
  maxStepsPerKey?: number;
  /** Shrink the failing key's history before explaining it. Default true. */
  shrink?: boolean;
  /**
   * Run the O(n log n) stale-read pre-check before the search (default true). Turning it off
   * is only useful to test the search itself.
   */
  precheck?: boolean;
}

/**
 * A key's value; `ANY` is the symbolic "unknown initial value" used when shrinking cuts off the
 * start of a history (it becomes concrete at the first read or successful cas).
 */
type State = KvValue | null | typeof ANY;
const ANY = Symbol("any");
const FAIL = Symbol("fail");

/** An operation prepared for the search. */
interface Prepared {
  /** Index in the caller's history. */
  index: number;
  op: KvOperation;
  call: number;
  ret: number;
  known: boolean;
}

function applyOp(state: State, p: Prepared): State | typeof FAIL {
  const op = p.op;
  switch (op.kind) {
    case "put":
      return op.value!;
    case "delete":
      return null;
    case "get":
      if (!p.known) return state;
      if (state === ANY) return op.result as KvValue | null;
      return op.result !== state ? FAIL : state;
    case "cas": {
      if (state === ANY) {
        // A successful swap pins the old value; otherwise stay unconstrained (a relaxation:
        // it can only make a shrunken history pass, never fail wrongly).
        return p.known && op.result === true ? op.value! : ANY;
      }
      const match = state === op.expected;
      if (p.known && op.result !== match) return FAIL;
      return match ? op.value! : state;
    }
  }
}

function validate(op: KvOperation, index: number): void {
  const where = `history[${index}] (${op.kind} ${JSON.stringify(op.key)})`;
  if (typeof op.key !== "string") throw new TypeError(`${where}: key must be a string`);
  if (!(op.call <= op.return) || Number.isNaN(op.call)) {
    throw new RangeError(`${where}: call ${op.call} must be <= return ${op.return}`);
  }
  const known = op.return !== Infinity;
  switch (op.kind) {
    case "put":
      if (op.value === undefined || op.value === null) {
        throw new TypeError(`${where}: put needs a value`);
      }
      break;
    case "delete":
      break;
    case "get":
      if (known && op.result === undefined) {
        throw new TypeError(`${where}: a completed get needs a result (null when absent)`);
      }
      break;
    case "cas":
      if (op.value === undefined || op.value === null || op.expected === undefined) {
        throw new TypeError(`${where}: cas needs expected (value or null) and value`);
      }
      if (known && typeof op.result !== "boolean") {
        throw new TypeError(`${where}: a completed cas needs a boolean result`);
      }
      break;
    default:
      throw new TypeError(`${where}: unknown kind ${(op as { kind: string }).kind}`);
  }
}

/** 32-bit finalizer (murmur3 fmix32) for Zobrist keys. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Memo of visited configurations: (set of linearized completed ops, state, set of linearized
 * unknown-outcome ops). Entries live in flat typed arrays (an arena of bitset words plus
 * per-entry offsets, chained per hash), about 24 bytes plus the bitset windows each.
 *
 * Unknown-outcome ops are optional and have no deadline, so a configuration that linearized
 * a superset of the unknown ops of a visited configuration (same completed set, same state)
 * can do nothing the visited one could not: `covers` treats it as visited. Without this, k
 * pending unknown writes multiply the search by up to 2^k.
 */
class VisitedSet {
  #heads = new Map<number, number>();
  #chain = new Int32Array(1024);
  #lo = new Int32Array(1024);
  #off = new Int32Array(1024);
  #len = new Int32Array(1024);
  #states: State[] = [];
  #arena = new Uint32Array(4096);
  #arenaUsed = 0;
  readonly #uWords: number;
  size = 0;

  constructor(unknownWords: number) {
    this.#uWords = unknownWords;
  }

  /**
   * True if some stored entry has the same completed set (`full` leading all-ones words, then
   * the window `bits[full, end)`), the same state, and a subset of `unknown`.
   */
  covers(
    hash: number,
    bits: Uint32Array,
    full: number,
    end: number,
    state: State,
    unknown: Uint32Array,
  ): boolean {
    const len = end - full;
    const uw = this.#uWords;
    const arena = this.#arena;
    for (let e = this.#heads.get(hash) ?? -1; e >= 0; e = this.#chain[e]) {
      if (this.#states[e] !== state || this.#lo[e] !== full || this.#len[e] !== len) continue;
      const off = this.#off[e];
      let k = 0;
      while (k < len && arena[off + k] === bits[full + k]) k++;
      if (k !== len) continue;
      let w = 0;
      while (w < uw && (arena[off + len + w] & ~unknown[w]) === 0) w++;
      if (w === uw) return true;
    }
    return false;
  }

  add(
    hash: number,
    bits: Uint32Array,
    full: number,
    end: number,
    state: State,
    unknown: Uint32Array,
  ): void {
    const e = this.size++;
    if (e === this.#chain.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#chain = grow(this.#chain);
      this.#lo = grow(this.#lo);
      this.#off = grow(this.#off);
      this.#len = grow(this.#len);
    }
    const len = end - full;
    const need = len + this.#uWords;
    if (this.#arenaUsed + need > this.#arena.length) {
      let cap = this.#arena.length * 2;
      while (cap < this.#arenaUsed + need) cap *= 2;
      const a = new Uint32Array(cap);
      a.set(this.#arena.subarray(0, this.#arenaUsed));
      this.#arena = a;
    }
    this.#arena.set(bits.subarray(full, end), this.#arenaUsed);
    if (this.#uWords > 0) this.#arena.set(unknown, this.#arenaUsed + len);
    this.#off[e] = this.#arenaUsed;
    this.#arenaUsed += need;
    this.#lo[e] = full;
    this.#len[e] = len;
    this.#states[e] = state;
    this.#chain[e] = this.#heads.get(hash) ?? -1;
    this.#heads.set(hash, e);
  }
}

interface SearchOutcome {
  result: "ok" | "fail" | "budget";
  steps: number;
  /** With tracking: the longest linearized prefix seen (op positions) and states after each. */
  bestOrder?: number[];
  bestStates?: State[];
}

/**
 * Wing-Gong-Lowe search over one key's operations (positions in `input`).
 *
 * Completed ops are numbered by call time, so that as the search moves through the history
 * their linearized set is "all ones up to a low word, then a short window": the memo stores
 * only the window and compares in O(concurrency) instead of O(n). Unknown-outcome ops have a
 * separate small bitset (see {@link VisitedSet} for the dominance rule).
 */
function search(
  input: readonly Prepared[],
  initial: State,
  maxSteps: number,
  track: boolean,
): SearchOutcome {
  const n = input.length;
  const perm = input.map((_, i) => i).sort((a, b) => input[a].call - input[b].call || a - b);
  const ops = perm.map((i) => input[i]);
  // Bit position of each op in the completed-set (known) or unknown-set bitset.
  const slot = new Int32Array(n);
  let nKnown = 0;
  let nUnknown = 0;
  for (let i = 0; i < n; i++) slot[i] = ops[i].known ? nKnown++ : nUnknown++;

  const HEAD = 2 * n;
  const NIL = -1;
  // Entry 2i is op i's call, 2i+1 its return.
  const order = new Array<number>(2 * n);
  for (let i = 0; i < 2 * n; i++) order[i] = i;
  const time = (e: number) => (e & 1 ? ops[e >> 1].ret : ops[e >> 1].call);
  order.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || (a >> 1) - (b >> 1));
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  let last = HEAD;
  for (const e of order) {
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  next[last] = NIL;

  const lift = (call: number) => {
    next[prev[call]] = next[call];
    prev[next[call]] = prev[call]; // a call is never last: its return follows
    const ret = call + 1;
    next[prev[ret]] = next[ret];
    if (next[ret] !== NIL) prev[next[ret]] = prev[ret];
  };
  const unlift = (call: number) => {
    const ret = call + 1;
    next[prev[ret]] = ret;
    if (next[ret] !== NIL) prev[next[ret]] = ret;
    next[prev[call]] = call;
    prev[next[call]] = call;
  };

  const words = (nKnown + 31) >>> 5;
  const bits = new Uint32Array(words);
  const ubits = new Uint32Array((nUnknown + 31) >>> 5);
  /** Count of leading all-ones words, and highest word with a bit set (-1: none). */
  let full = 0;
  let high = -1;
  const z = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    z[i] = ops[i].known ? mix(slot[i] * 0x9e3779b1 + 0x7f4a7c15) & 0x3fffffff : 0;
  }
  let h = 0;
  const visited = new VisitedSet(ubits.length);
  const toggle = (i: number, on: boolean) => {
    const b = slot[i];
    if (!ops[i].known) {
      if (on) ubits[b >>> 5] |= 1 << (b & 31);
      else ubits[b >>> 5] &= ~(1 << (b & 31));
      return;
    }
    const w = b >>> 5;
    if (on) {
      bits[w] |= 1 << (b & 31);
      if (w > high) high = w;
      while (full < words && bits[full] === 0xffffffff) full++;
    } else {
      bits[w] &= ~(1 << (b & 31));
      if (w < full) full = w;
      while (high >= 0 && bits[high] === 0) high--;
    }
  };

  // Symmetry among unknown-outcome ops: identical ones (same kind and arguments) are
  // interchangeable once called, so always use the earliest-called unused one of a group;
  // the used members of a group are then always a prefix of it.
  const group = new Int32Array(n).fill(-1);
  const rank = new Int32Array(n);
  const groupIds = new Map<string, number>();
  const groupSizes: number[] = [];
  for (let i = 0; i < n; i++) {
    if (ops[i].known) continue;
    const o = ops[i].op;
    const sig = `${o.kind}\u0000${typeof o.value}:${o.value}\u0000${
      o.expected === null ? "null" : `${typeof o.expected}:${o.expected}`
    }`;
    let g = groupIds.get(sig);
    if (g === undefined) {
      g = groupSizes.length;
      groupIds.set(sig, g);
      groupSizes.push(0);
    }
    group[i] = g;
    rank[i] = groupSizes[g]++;
  }
  const groupUsed = new Int32Array(groupSizes.length);
  const blind = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    blind[i] = ops[i].op.kind === "put" || ops[i].op.kind === "delete" ? 1 : 0;
  }

  let remaining = nKnown;
  const stackOp = new Int32Array(n);
  const stackState: State[] = new Array(n);
  let depth = 0;
  let state = initial;
  let entry = next[HEAD];
  /** 0: trying completed ops among the candidates; 1: trying unknown-outcome ops. */
  let phase = 0;
  let steps = 0;
  // Tracking the deepest stack: copy only the part changed since the last copy (amortized O(1)).
  let bestDepth = 0;
  let lowSinceBest = 0;
  const bestOp: number[] = [];
  const bestSt: State[] = [];
  const outcome = (result: SearchOutcome["result"]): SearchOutcome =>
    track
      ? {
        result,
        steps,
        bestOrder: bestOp.slice(0, bestDepth).map((i) => perm[i]),
        bestStates: bestSt.slice(0, bestDepth),
      }
      : { result, steps };

  while (remaining > 0) {
    if (++steps > maxSteps) return outcome("budget");
    if ((entry & 1) === 0) {
      const i = entry >> 1;
      if (ops[i].known === (phase === 1)) {
        entry = next[entry];
        continue;
      }
      if (
        (!ops[i].known && rank[i] !== groupUsed[group[i]]) ||
        // Canonical form: an unknown op is used only right before an op that reads the state.
        // If a blind write followed it, dropping it would give a linearization that uses
        // less; the sibling branch without it covers that.
        (blind[i] === 1 && depth > 0 && !ops[stackOp[depth - 1]].known)
      ) {
        entry = next[entry];
        continue;
      }
      const out = applyOp(state, ops[i]);
      if (out !== FAIL) {
        toggle(i, true);
        const nh = h ^ z[i];
        const end = Math.max(full, high + 1);
        if (!visited.covers(nh, bits, full, end, out, ubits)) {
          visited.add(nh, bits, full, end, out, ubits);
          stackOp[depth] = i;
          stackState[depth] = state;
          depth++;
          state = out;
          h = nh;
          lift(entry);
          if (ops[i].known) remaining--;
          else groupUsed[group[i]]++;
          if (track && depth > bestDepth) {
            for (let d = lowSinceBest; d < depth; d++) {
              bestOp[d] = stackOp[d];
              bestSt[d] = d + 1 < depth ? stackState[d + 1] : state;
            }
            bestDepth = depth;
            lowSinceBest = depth;
          }
          entry = next[HEAD];
          phase = 0;
          continue;
        }
        toggle(i, false);
      }
      entry = next[entry];
    } else {
      if (phase === 0 && nUnknown > 0) {
        // Completed ops tried; now the unknown-outcome ones (least use of them first, so the
        // dominance rule in the memo prunes most combinations).
        phase = 1;
        entry = next[HEAD];
        continue;
      }
      if (depth === 0) return outcome("fail");
      depth--;
      if (depth < lowSinceBest) lowSinceBest = depth;
      const i = stackOp[depth];
      state = stackState[depth];
      toggle(i, false);
      h ^= z[i];
      unlift(2 * i);
      if (ops[i].known) remaining++;
      else groupUsed[group[i]]--;
      entry = next[2 * i];
      phase = ops[i].known ? 0 : 1;
    }
  }
  return outcome("ok");
}

function valueKey(v: KvValue | null): string {
  return v === null ? "null" : `${typeof v}:${v}`;
}

/** A read that no linearization can explain, found without search. */
interface StaleRead {
  read: Prepared;
  /** A completed write of another value that ran after every possible source of the value. */
  cover?: Prepared;
}

/**
 * Fast sound pre-check, O(n log n): finds a completed read (a get, or a cas that swapped) of a
 * value v such that every op that could have produced v (a put/delete/cas to v called before
 * the read returned, known or unknown, or the initial value) is known and returned before some
 * completed write of another value that itself returned before the read was called. In every
 * linearization the last write before the read then sets another value, so the history fails.
 * Catches plain stale reads and lost writes in histories where the exhaustive search would
 * have to explore every alternative before the violation.
 */
function staleRead(ops: readonly Prepared[], initial: State): StaleRead | null {
  type Setter = { p: Prepared; vk: string };
  const setters: Setter[] = [];
  const sources = new Map<string, Prepared[]>();
  const reads: { p: Prepared; vk: string }[] = [];
  for (const p of ops) {
    const o = p.op;
    let produces: KvValue | null | undefined;
    if (o.kind === "put") produces = o.value!;
    else if (o.kind === "delete") produces = null;
    else if (o.kind === "cas" && (!p.known || o.result === true)) produces = o.value!;
    if (produces !== undefined) {
      const vk = valueKey(produces);
      let list = sources.get(vk);
      if (list === undefined) sources.set(vk, list = []);
      list.push(p);
      if (p.known) setters.push({ p, vk });
    }
    if (p.known && o.kind === "get") reads.push({ p, vk: valueKey(o.result as KvValue | null) });
    if (p.known && o.kind === "cas" && o.result === true) {
      reads.push({ p, vk: valueKey(o.expected!) });
    }
  }
  if (reads.length === 0) return null;
  // Per value: sources by call time with the running maximum of their return times.
  const srcCalls = new Map<string, { calls: number[]; maxRet: number[] }>();
  for (const [vk, list] of sources) {
    list.sort((a, b) => a.call - b.call);
    const calls: number[] = [];
    const maxRet: number[] = [];
    let m = -Infinity;
    for (const p of list) {
      m = Math.max(m, p.ret);
      calls.push(p.call);
      maxRet.push(m);
    }
    srcCalls.set(vk, { calls, maxRet });
  }
  setters.sort((a, b) => a.p.ret - b.p.ret);
  reads.sort((a, b) => a.p.call - b.p.call);
  // Latest-called completed setter, and latest-called one of a different value than it.
  let c1 = -Infinity, c2 = -Infinity;
  let v1 = "", v2 = "";
  let w1: Prepared | undefined, w2: Prepared | undefined;
  let si = 0;
  for (const { p: r, vk } of reads) {
    while (si < setters.length && setters[si].p.ret < r.call) {
      const { p: w, vk: wv } = setters[si++];
      const c = w.call;
      if (wv === v1) {
        if (c > c1) [c1, w1] = [c, w];
      } else if (wv === v2) {
        if (c > c2) [c2, w2] = [c, w];
        if (c2 > c1) [c1, v1, w1, c2, v2, w2] = [c2, v2, w2, c1, v1, w1];
      } else if (c > c1) {
        [c2, v2, w2] = [c1, v1, w1];
        [c1, v1, w1] = [c, wv, w];
      } else if (c > c2) {
        [c2, v2, w2] = [c, wv, w];
      }
    }
    const coverCall = v1 !== vk ? c1 : c2;
    const cover = v1 !== vk ? w1 : w2;
    const initialMayBe = initial === ANY || valueKey(initial as KvValue | null) === vk;
    if (initialMayBe && coverCall === -Infinity) continue;
    const src = srcCalls.get(vk);
    let lastRet = -Infinity;
    if (src !== undefined) {
      // sources called at or before the read returned (equal times are concurrent)
      let lo = 0, hi = src.calls.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (src.calls[mid] <= r.ret) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0) lastRet = src.maxRet[lo - 1];
    }
    if (lastRet === -Infinity || lastRet < coverCall) return { read: r, cover };
  }
  return null;
}

function prepare(history: readonly KvOperation[], indices: readonly number[]): Prepared[] {
  const out: Prepared[] = [];
  for (const index of indices) {
    const op = history[index];
    const known = op.return !== Infinity;
    // An unknown get has no effect and tells nothing.
    if (!known && op.kind === "get") continue;
    out.push({ index, op, call: op.call, ret: op.return, known });
  }
  return out;
}

function fmtValue(v: unknown): string {
  if (v === ANY) return "any value";
  return v === null ? "null" : JSON.stringify(v);
}

function fmtTime(t: number): string {
  if (t === Infinity) return "∞";
  return Number.isInteger(t) ? String(t) : t.toFixed(3);
}

/** One line describing an operation. */
export function describeOp(op: KvOperation, index?: number): string {
  const k = JSON.stringify(op.key);
  let body: string;
  switch (op.kind) {
    case "put":
      body = `put(${k}, ${fmtValue(op.value)})`;
      break;
    case "delete":
      body = `delete(${k})`;
      break;
    case "get":
      body = `get(${k})`;
      break;
    case "cas":
      body = `cas(${k}, ${fmtValue(op.expected)} -> ${fmtValue(op.value)})`;
      break;
  }
  const known = op.return !== Infinity;
  if (known && (op.kind === "get" || op.kind === "cas")) body += ` => ${fmtValue(op.result)}`;
  if (!known) body += "  (unknown outcome)";
  const who = op.client !== undefined ? `client ${op.client}  ` : "";
  const id = index !== undefined ? `#${index}  ` : "";
  return `${id}[${fmtTime(op.call)}, ${fmtTime(op.return)}]  ${who}${body}`;
}

function whyRejected(state: State, p: Prepared): string {
  const op = p.op;
  if (op.kind === "get") return `reads ${fmtValue(op.result)} but the value is ${fmtValue(state)}`;
  const match = state === op.expected;
  return `returned ${op.result} but the value is ${fmtValue(state)}, so it would ${
    match ? "swap" : "not swap"
  }`;
}

/** Builds the human explanation for a failing (already shrunken) key history. */
function explain(
  key: string,
  ops: Prepared[],
  initial: State,
  maxSteps: number,
  totalForKey: number,
  notes: string[],
): string {
  const lines: string[] = [];
  lines.push(
    `key ${JSON.stringify(key)}: not linearizable` +
      (ops.length < totalForKey
        ? ` (shrunk from ${totalForKey} to ${ops.length} operations that still fail)`
        : ` (${ops.length} operations)`),
  );
  for (const n of notes) lines.push(`  ${n}`);
  lines.push(`operations by call time (#n = index in the history you passed):`);
  const byCall = [...ops].sort((a, b) => a.call - b.call || a.index - b.index);
  for (const p of byCall) lines.push(`  ${describeOp(p.op, p.index)}`);
  const stale = staleRead(ops, initial);
  if (stale !== null) {
    const r = stale.read;
    const what = r.op.kind === "get" ? fmtValue(r.op.result) : fmtValue(r.op.expected);
    lines.push(
      stale.cover === undefined
        ? `#${r.index} sees ${what}, which nothing written before it returned could produce`
        : `#${r.index} sees ${what}, but every write that could produce it finished before ` +
          `#${stale.cover.index} (writing ${
            fmtValue(stale.cover.op.kind === "delete" ? null : stale.cover.op.value)
          }) started, and #${stale.cover.index} finished before #${r.index} started`,
    );
  }
  // Best effort: the explanation's search gets a bounded budget.
  const s = search(ops, initial, Math.min(maxSteps, 2_000_000), true);
  const order = s.bestOrder ?? [];
  const states = s.bestStates ?? [];
  lines.push(
    `longest linearizable prefix found (${order.length} of ${ops.length}), starting from ${
      fmtValue(initial)
    }${s.result === "budget" ? ", search stopped early" : ""}:`,
  );
  if (order.length === 0) lines.push(`  (none: no operation can go first)`);
  order.forEach((i, j) => {
    lines.push(
      `  ${j + 1}. #${ops[i].index} ${describeOp(ops[i].op).replace(/^\[[^\]]*\]\s+/, "")}` +
        `  -> ${fmtValue(states[j])}`,
    );
  });
  // What blocks extending it: the earliest pending return is a deadline; every op called before
  // it is a candidate for the next position.
  const done = new Set(order);
  const state = order.length > 0 ? states[order.length - 1] : initial;
  const pending = ops.map((_, i) => i).filter((i) => !done.has(i));
  const deadlineOp = pending.filter((i) => ops[i].known).sort((a, b) => ops[a].ret - ops[b].ret)[0];
  if (deadlineOp !== undefined) {
    const deadline = ops[deadlineOp].ret;
    lines.push(
      `then, with ${fmtValue(state)}, #${ops[deadlineOp].index} must take effect by its ` +
        `return at ${fmtTime(deadline)}, but no candidate works:`,
    );
    for (const i of pending) {
      if (ops[i].call > deadline) continue;
      const out = applyOp(state, ops[i]);
      const why = out === FAIL
        ? whyRejected(state, ops[i])
        : `would give ${fmtValue(out)}, from which no order of the rest works`;
      lines.push(`  #${ops[i].index} ${ops[i].op.kind}: ${why}`);
    }
  }
  return lines.join("\n");
}

function isReadOnlyKnown(p: Prepared): boolean {
  return p.known && (p.op.kind === "get" || (p.op.kind === "cas" && p.op.result === false));
}

/** Shrinks a failing key history; every step keeps a history that provably still fails. */
function shrinkKey(
  ops: Prepared[],
  initial: State,
  maxSteps: number,
): { ops: Prepared[]; initial: State; notes: string[] } {
  const notes: string[] = [];
  // One budget for the whole shrink; a probe that runs out counts as "does not fail", which
  // only makes the result less small, never wrong.
  let budget = maxSteps;
  const fails = (cand: Prepared[], init: State) => {
    if (staleRead(cand, init) !== null) return true;
    if (budget <= 0) return false;
    const r = search(cand, init, budget, false);
    budget -= r.steps;
    return r.result === "fail";
  };
  // 1. Shortest failing prefix by call time. prefix(T) keeps ops called at or before T and
  //    relaxes those returning after T to unknown outcome. If the full history had a
  //    linearization, its restriction would linearize prefix(T), so a failing prefix is a
  //    genuine witness, and failure is monotone in T (binary search).
  const prefix = (t: number): Prepared[] =>
    ops.filter((p) => p.call <= t).flatMap((p) => {
      if (p.ret <= t) return [p];
      if (p.op.kind === "get") return []; // unknown gets carry nothing
      return [{ ...p, op: { ...p.op, return: Infinity }, ret: Infinity, known: false }];
    });
  // Candidate cut points: every call time, then Infinity (the whole history, known to fail).
  const times = [...new Set(ops.map((p) => p.call)), Infinity].sort((a, b) => a - b);
  let lo = 0;
  let hi = times.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fails(prefix(times[mid]), initial)) hi = mid;
    else lo = mid + 1;
  }
  let cur = times[lo] === Infinity ? ops : prefix(times[lo]);
  const late = ops.length - ops.filter((p) => p.call <= times[lo]).length;
  if (late > 0) {
    notes.push(
      `${late} operations called after ${fmtTime(times[lo])} are not needed for the failure`,
    );
  }
  const wasKnown = new Set(ops.filter((p) => p.known).map((p) => p.index));
  const relaxed = cur.filter((p) => !p.known && wasKnown.has(p.index)).length;
  if (relaxed > 0) {
    notes.push(
      `${relaxed} operations still running at ${fmtTime(times[lo])} are shown with unknown outcome`,
    );
  }
  // 2. Cut the start at a quiescent point S (no completed op running across S): keep the ops
  //    called at or after S, plus unknown-outcome ops called before it, starting from ANY
  //    value. A linearization of the whole history restricts to one of that tail from the
  //    value at S, so a tail that fails from every value is a genuine witness; failure is
  //    monotone in S among quiescent points (binary search for the latest).
  const calls = [...new Set(cur.map((p) => p.call))].sort((a, b) => a - b);
  const knownByCall = cur.filter((p) => p.known).sort((a, b) => a.call - b.call);
  const quiescent: number[] = [];
  let maxRet = -Infinity;
  let k = 0;
  for (const t of calls) {
    while (k < knownByCall.length && knownByCall[k].call < t) {
      maxRet = Math.max(maxRet, knownByCall[k++].ret);
    }
    if (maxRet < t) quiescent.push(t);
  }
  const tail = (t: number) => cur.filter((p) => p.call >= t || !p.known);
  let qlo = 0;
  let qhi = quiescent.length - 1;
  let best = -1;
  while (qlo <= qhi) {
    const mid = (qlo + qhi) >> 1;
    if (fails(tail(quiescent[mid]), ANY)) {
      best = mid;
      qlo = mid + 1;
    } else {
      qhi = mid - 1;
    }
  }
  let init = initial;
  if (best >= 0) {
    const before = cur.length;
    cur = tail(quiescent[best]);
    init = ANY;
    notes.push(
      `${before - cur.length} operations before ${fmtTime(quiescent[best])} are not needed: ` +
        `the rest fails whatever the value was then`,
    );
  }
  // 3. Drop read-only operations (gets, failed cas) one at a time while it still fails:
  //    removing a read only removes a constraint, so the smaller history is still a witness.
  if (cur.length <= 400) {
    let removed = 0;
    for (let i = cur.length - 1; i >= 0; i--) {
      if (!isReadOnlyKnown(cur[i])) continue;
      const cand = cur.slice(0, i).concat(cur.slice(i + 1));
      if (fails(cand, init)) {
        cur = cand;
        removed++;
      }
    }
    if (removed > 0) notes.push(`${removed} read-only operations not needed for the failure`);
  }
  return { ops: cur, initial: init, notes };
}

/**
 * Checks a KV history for linearizability (per key). Returns `{ ok: true }`, or
 * `{ ok: false, key, info, ops }` for the failing key with the fewest operations, where `ops`
 * is a shrunken sub-history that still fails and `info` explains it.
 *
 * Throws on malformed operations (missing results, call after return, ...).
 */
export function checkKvHistory(
  history: readonly KvOperation[],
  options: CheckOptions = {},
): CheckResult {
  const maxSteps = options.maxStepsPerKey ?? 10_000_000;
  const initialOf = (key: string): State => {
    const init = options.initial;
    if (init === undefined) return null;
    if (init instanceof Map) return init.get(key) ?? null;
    const rec = init as Record<string, KvValue>;
    return Object.hasOwn(rec, key) ? rec[key] : null;
  };
  const byKey = new Map<string, number[]>();
  history.forEach((op, i) => {
    validate(op, i);
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, list = []);
    list.push(i);
  });
  const keys = [...byKey.keys()].sort((a, b) =>
    byKey.get(a)!.length - byKey.get(b)!.length || (a < b ? -1 : a > b ? 1 : 0)
  );
  for (const key of keys) {
    const ops = prepare(history, byKey.get(key)!);
    const initial = initialOf(key);
    const outcome = options.precheck !== false && staleRead(ops, initial) !== null
      ? { result: "fail" as const }
      : search(ops, initial, maxSteps, false);
    if (outcome.result === "ok") continue;
    if (outcome.result === "budget") {
      return {
        ok: false,
        key,
        inconclusive: true,
        ops: ops.map((p) => p.op),
        info: `key ${
          JSON.stringify(key)
        }: search budget of ${maxSteps} steps exhausted on ${ops.length} operations; linearizability not established (raise maxStepsPerKey or reduce concurrency)`,
      };
    }
    const shrunk = options.shrink === false
      ? { ops, initial: initial as State, notes: [] as string[] }
      : shrinkKey(ops, initial, maxSteps);
    const info = explain(
      key,
      shrunk.ops,
      shrunk.initial,
      maxSteps,
      byKey.get(key)!.length,
      shrunk.notes,
    );
    return { ok: false, key, info, ops: shrunk.ops.map((p) => p.op) };
  }
  return { ok: true };
}

/** Handle of an operation recorded by {@link KvHistory}. */
export type OpHandle = number;

/**
 * Records a history as a test runs. Without a clock, call and return times come from an event
 * counter, which captures exactly the order in which the harness saw invocations and
 * completions (the Jepsen convention); with a clock, they are the clock's times (equal times
 * then count as concurrent).
 */
export class KvHistory {
  readonly #ops: KvOperation[] = [];
  readonly #failed = new Set<number>();
  readonly #clock: Clock | undefined;
  #tick = 0;

  constructor(clock?: Clock) {
    this.#clock = clock;
  }

  #now(): number {
    return this.#clock !== undefined ? this.#clock.now() : ++this.#tick;
  }

  /** Records an invocation; the op stays unknown-outcome until `ok` or `fail`. */
  invoke(
    client: string | number,
    op:
      | { kind: "put"; key: string; value: KvValue }
      | { kind: "get"; key: string }
      | { kind: "delete"; key: string }
      | { kind: "cas"; key: string; expected: KvValue | null; value: KvValue },
  ): OpHandle {
    this.#ops.push({ ...op, client, call: this.#now(), return: Infinity });
    return this.#ops.length - 1;
  }

  /** The operation completed; `result` for get (value or null) and cas (boolean). */
  ok(handle: OpHandle, result?: KvValue | null | boolean): void {
    const op = this.#ops[handle];
    if (op.return !== Infinity) throw new Error(`operation ${handle} already completed`);
    op.return = this.#now();
    if (result !== undefined) op.result = result;
  }

  /** The operation definitely did not take effect (it is left out of the history). */
  fail(handle: OpHandle): void {
    this.#failed.add(handle);
  }

  /** The outcome is unknown (a timeout); the op keeps `return: Infinity`. */
  unknown(_handle: OpHandle): void {}

  /** The recorded history (operations never completed have unknown outcome). */
  operations(): KvOperation[] {
    return this.#ops.filter((_, i) => !this.#failed.has(i)).map((op) => ({ ...op }));
  }
}
