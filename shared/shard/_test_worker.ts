/**
 * Worker for `shared_table_workers_test.ts`: attaches to a shared table and
 * hammers it with increments, self-checking writes, deletes, reads and pages.
 *
 * @module
 */
import { mulberry32 } from "./_contract_test_suite.ts";
import { SharedShardTable, type SharedShardTableHandle } from "./shared_table.ts";

/** What the parent sends. */
export interface WorkerTask {
  handle: SharedShardTableHandle;
  /** Int32Array(2) on a SharedArrayBuffer: [ready count, go flag]. */
  barrier: SharedArrayBuffer;
  workerId: number;
  seed: number;
  ops: number;
  counters: number;
  blobs: number;
}

/** What the worker answers. */
export interface WorkerResult {
  workerId: number;
  /** Increments this worker applied, per counter index. */
  increments: number[];
  sequences: number[];
  reads: number;
  pages: number;
  /** Descriptions of every inconsistency seen (empty when all is well). */
  problems: string[];
}

/** Builds a value whose length and content can be verified: [len][checksum][payload]. */
export function makeBlob(workerId: number, n: number, size: number): Uint8Array {
  const v = new Uint8Array(Math.max(12, size));
  const dv = new DataView(v.buffer);
  dv.setUint32(0, v.length, true);
  let x = (workerId * 0x9e3779b1 + n) >>> 0;
  for (let i = 8; i < v.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    v[i] = x >>> 24;
  }
  dv.setUint32(4, checksum(v), true);
  return v;
}

function checksum(v: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 8; i < v.length; i++) h = Math.imul(h ^ v[i]!, 0x01000193);
  return h >>> 0;
}

/** Null when `v` is intact, otherwise what is wrong with it. */
export function checkBlob(v: Uint8Array): string | null {
  if (v.length < 12) return `blob too short (${v.length})`;
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  if (dv.getUint32(0, true) !== v.length) {
    return `blob length field ${dv.getUint32(0, true)} != ${v.length}`;
  }
  if (dv.getUint32(4, true) !== checksum(v)) return "blob checksum mismatch";
  return null;
}

/** Encodes a counter as [n][~n] so a torn value is detectable. */
export function encodeCounter(n: number): Uint8Array {
  const v = new Uint8Array(8);
  const dv = new DataView(v.buffer);
  dv.setUint32(0, n, true);
  dv.setUint32(4, ~n >>> 0, true);
  return v;
}

/** Decodes a counter; throws on a torn value. */
export function decodeCounter(v: Uint8Array): number {
  if (v.length !== 8) throw new Error(`counter of ${v.length} bytes`);
  const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const n = dv.getUint32(0, true);
  if (dv.getUint32(4, true) !== (~n >>> 0)) throw new Error("torn counter");
  return n;
}

function run(task: WorkerTask): WorkerResult {
  const table = SharedShardTable.attach(task.handle);
  const rnd = mulberry32(task.seed);
  const result: WorkerResult = {
    workerId: task.workerId,
    increments: new Array(task.counters).fill(0),
    sequences: [],
    reads: 0,
    pages: 0,
    problems: [],
  };
  const problem = (p: string) => {
    if (result.problems.length < 20) result.problems.push(p);
  };
  for (let i = 0; i < task.ops; i++) {
    const r = rnd();
    if (r < 0.4) {
      const c = Math.floor(rnd() * task.counters);
      table.update(`ctr:${c}`, (old) => {
        if (old === undefined) {
          problem(`counter ${c} missing`);
          return encodeCounter(1);
        }
        return encodeCounter(decodeCounter(old) + 1);
      });
      result.increments[c]!++;
    } else if (r < 0.6) {
      const b = Math.floor(rnd() * task.blobs);
      // Sizes across several size classes, so overwrites move blocks.
      const size = 12 + Math.floor(rnd() * rnd() * 3000);
      table.set(`blob:${b}`, makeBlob(task.workerId, i, size));
    } else if (r < 0.7) {
      table.delete(`blob:${Math.floor(rnd() * task.blobs)}`);
    } else if (r < 0.95) {
      const v = table.get(`blob:${Math.floor(rnd() * task.blobs)}`);
      result.reads++;
      if (v !== undefined) {
        const bad = checkBlob(v);
        if (bad !== null) problem(bad);
      }
    } else if (r < 0.99) {
      result.sequences.push(table.nextSequence());
    } else {
      // A full paged iteration: counters (present throughout) exactly once.
      const seen = new Set<string>();
      let cursor: string | null = null;
      do {
        const page = table.page({ cursor, limit: 1 + Math.floor(rnd() * 16) });
        for (const [k, v] of page.items) {
          if (seen.has(k)) problem(`page returned ${k} twice`);
          seen.add(k);
          if (k.startsWith("blob:")) {
            const bad = checkBlob(v);
            if (bad !== null) problem(`page: ${bad}`);
          } else {
            try {
              decodeCounter(v);
            } catch (e) {
              problem(`page: ${(e as Error).message}`);
            }
          }
        }
        cursor = page.cursor;
      } while (cursor !== null);
      for (let c = 0; c < task.counters; c++) {
        if (!seen.has(`ctr:${c}`)) problem(`page missed ctr:${c}`);
      }
      result.pages++;
    }
  }
  return result;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<WorkerTask>) => void) | null;
  postMessage(message: unknown): void;
}

// Only inside a worker: the test also imports the helpers above.
if (typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined") {
  const scope = globalThis as unknown as WorkerScope;
  scope.onmessage = (e) => {
    const task = e.data;
    const barrier = new Int32Array(task.barrier);
    Atomics.add(barrier, 0, 1);
    Atomics.notify(barrier, 0);
    while (Atomics.load(barrier, 1) === 0) Atomics.wait(barrier, 1, 0, 1000);
    try {
      scope.postMessage({ ok: true, result: run(task) });
    } catch (err) {
      scope.postMessage({ ok: false, error: String((err as Error)?.stack ?? err) });
    }
  };
}
