/**
 * The etcd v3 JSON gateway encoding (grpc-gateway with proto field names, as etcd 3.4 serves it):
 * bytes are base64, int64 are decimal strings, zero values are omitted, enums are names. Input is
 * lenient like the gateway's: snake_case or camelCase field names, numbers or strings for int64,
 * enum names or numbers. Everything invalid becomes an {@link EtcdError} with code 3
 * (InvalidArgument), which the app answers with HTTP 400.
 *
 * Keys and values are "binary strings" internally (see mvcc/types.ts): `atob` and `btoa`
 * convert them directly.
 *
 * @module
 */

import {
  type Compare,
  CompareResult,
  CompareTarget,
  type DeleteRangeRequest,
  EtcdError,
  type KeyValue,
  type PutRequest,
  type RangeRequest,
  type RangeResult,
  type RequestOp,
  type ResponseOp,
  SortOrder,
  SortTarget,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from "../mvcc/types.ts";

type Obj = Record<string, unknown>;

export function bad(message: string): EtcdError {
  return new EtcdError(3, message);
}

function camel(snake: string): string {
  return snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The value of a field given in snake_case or camelCase. */
function field(o: Obj, name: string): unknown {
  const v = o[name];
  if (v !== undefined) return v;
  return o[camel(name)];
}

export function asObject(v: unknown, what: string): Obj {
  if (v === null || v === undefined) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw bad(`${what}: expected a JSON object`);
  return v as Obj;
}

/** base64 → binary string ("" when absent). */
export function bytesField(o: Obj, name: string): string {
  const v = field(o, name);
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw bad(`${name}: expected a base64 string`);
  try {
    return atob(v);
  } catch {
    // etcd's gateway (Go's encoding/json) names the offset of the first bad character.
    const at = v.search(/[^A-Za-z0-9+/=\s]/);
    throw bad(`illegal base64 data at input byte ${at < 0 ? v.length : at}`);
  }
}

function optBytes(o: Obj, name: string): string | undefined {
  const v = field(o, name);
  return v === undefined || v === null ? undefined : bytesField(o, name);
}

/** int64 given as a number or a decimal string, within the safe range. */
export function intField(o: Obj, name: string): number {
  const v = field(o, name);
  if (v === undefined || v === null || v === "") return 0;
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "string" && /^-?\d+$/.test(v)) n = Number(v);
  else throw bad(`${name}: expected an integer`);
  if (!Number.isSafeInteger(n)) throw bad(`${name}: ${v} is out of range`);
  return n;
}

/** int64 id (lease) as a canonical decimal string, exact beyond 2^53. */
export function idField(o: Obj, name: string): string {
  const v = field(o, name);
  if (v === undefined || v === null || v === "") return "0";
  let b: bigint;
  try {
    if (typeof v === "number" && Number.isInteger(v)) b = BigInt(v);
    else if (typeof v === "string" && /^-?\d+$/.test(v)) b = BigInt(v);
    else throw 0;
  } catch {
    throw bad(`${name}: expected an integer`);
  }
  if (b < -(2n ** 63n) || b >= 2n ** 63n) throw bad(`${name}: out of int64 range`);
  return b.toString();
}

function boolField(o: Obj, name: string): boolean {
  const v = field(o, name);
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw bad(`${name}: expected a boolean`);
  return v;
}

function enumField(o: Obj, name: string, values: Record<string, number>): number {
  const v = field(o, name);
  if (v === undefined || v === null) return 0;
  if (typeof v === "number" && Object.values(values).includes(v)) return v;
  if (typeof v === "string" && v in values) return values[v];
  throw bad(`${name}: unknown value ${JSON.stringify(v)}`);
}

function arrayField(o: Obj, name: string): unknown[] {
  const v = field(o, name);
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`${name}: expected an array`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Requests

export function decodeRange(v: unknown): RangeRequest {
  const o = asObject(v, "range request");
  return {
    key: bytesField(o, "key"),
    rangeEnd: optBytes(o, "range_end"),
    limit: intField(o, "limit"),
    revision: intField(o, "revision"),
    sortOrder: enumField(o, "sort_order", SortOrder),
    sortTarget: enumField(o, "sort_target", SortTarget),
    serializable: boolField(o, "serializable"),
    keysOnly: boolField(o, "keys_only"),
    countOnly: boolField(o, "count_only"),
    minModRevision: intField(o, "min_mod_revision"),
    maxModRevision: intField(o, "max_mod_revision"),
    minCreateRevision: intField(o, "min_create_revision"),
    maxCreateRevision: intField(o, "max_create_revision"),
  };
}

export function decodePut(v: unknown): PutRequest {
  const o = asObject(v, "put request");
  return {
    key: bytesField(o, "key"),
    value: bytesField(o, "value"),
    lease: idField(o, "lease"),
    prevKv: boolField(o, "prev_kv"),
    ignoreValue: boolField(o, "ignore_value"),
    ignoreLease: boolField(o, "ignore_lease"),
  };
}

export function decodeDeleteRange(v: unknown): DeleteRangeRequest {
  const o = asObject(v, "delete range request");
  return {
    key: bytesField(o, "key"),
    rangeEnd: optBytes(o, "range_end"),
    prevKv: boolField(o, "prev_kv"),
  };
}

function decodeCompare(v: unknown): Compare {
  const o = asObject(v, "compare");
  const c: Compare = {
    result: enumField(o, "result", CompareResult),
    target: enumField(o, "target", CompareTarget),
    key: bytesField(o, "key"),
    rangeEnd: optBytes(o, "range_end"),
  };
  switch (c.target) {
    case CompareTarget.VERSION:
      c.version = intField(o, "version");
      break;
    case CompareTarget.CREATE:
      c.createRevision = intField(o, "create_revision");
      break;
    case CompareTarget.MOD:
      c.modRevision = intField(o, "mod_revision");
      break;
    case CompareTarget.VALUE:
      c.value = bytesField(o, "value");
      break;
    case CompareTarget.LEASE:
      c.lease = idField(o, "lease");
      break;
  }
  return c;
}

function decodeOp(v: unknown, depth: number): RequestOp {
  const o = asObject(v, "request op");
  const r = field(o, "request_range");
  if (r !== undefined) return { range: decodeRange(r) };
  const p = field(o, "request_put");
  if (p !== undefined) return { put: decodePut(p) };
  const d = field(o, "request_delete_range");
  if (d !== undefined) return { deleteRange: decodeDeleteRange(d) };
  const t = field(o, "request_txn");
  if (t !== undefined) return { txn: decodeTxn(t, depth + 1) };
  throw bad("request op: one of request_range, request_put, request_delete_range, request_txn");
}

const MAX_TXN_DEPTH = 16;

export function decodeTxn(v: unknown, depth = 0): TxnRequest {
  if (depth > MAX_TXN_DEPTH) throw bad("txn: nested too deeply");
  const o = asObject(v, "txn request");
  return {
    compare: arrayField(o, "compare").map(decodeCompare),
    success: arrayField(o, "success").map((x) => decodeOp(x, depth)),
    failure: arrayField(o, "failure").map((x) => decodeOp(x, depth)),
  };
}

// ---------------------------------------------------------------------------------------------
// Responses

/** The response header (cluster and member ids are uint64 decimal strings). */
export interface Header {
  clusterId: string;
  memberId: string;
  revision: number;
  raftTerm: number;
}

export function encodeHeader(h: Header): Obj {
  const o: Obj = { cluster_id: h.clusterId, member_id: h.memberId };
  if (h.revision) o.revision = String(h.revision);
  if (h.raftTerm) o.raft_term = String(h.raftTerm);
  return o;
}

export function encodeKv(kv: KeyValue): Obj {
  const o: Obj = { key: btoa(kv.key) };
  if (kv.createRevision) o.create_revision = String(kv.createRevision);
  if (kv.modRevision) o.mod_revision = String(kv.modRevision);
  if (kv.version) o.version = String(kv.version);
  if (kv.value !== "") o.value = btoa(kv.value);
  if (kv.lease !== "0") o.lease = kv.lease;
  return o;
}

export function encodeRangeBody(r: RangeResult, header: Obj): Obj {
  const o: Obj = { header };
  if (r.kvs.length > 0) o.kvs = r.kvs.map(encodeKv);
  if (r.more) o.more = true;
  if (r.count) o.count = String(r.count);
  return o;
}

function encodeOpResponse(r: ResponseOp): Obj {
  const h = (rev: number): Obj => (rev ? { revision: String(rev) } : {});
  if ("range" in r) return { response_range: encodeRangeBody(r.range, h(r.range.revision)) };
  if ("put" in r) {
    const o: Obj = { header: h(r.put.revision) };
    if (r.put.prevKv) o.prev_kv = encodeKv(r.put.prevKv);
    return { response_put: o };
  }
  if ("deleteRange" in r) {
    return { response_delete_range: encodeDeleteBody(r.deleteRange, h(r.deleteRange.revision)) };
  }
  // etcd leaves the header of a nested txn's response empty (its own ops carry the revision).
  return { response_txn: encodeTxnBody(r.txn, {}) };
}

export function encodeDeleteBody(
  r: { deleted: number; prevKvs: KeyValue[] },
  header: Obj,
): Obj {
  const o: Obj = { header };
  if (r.deleted) o.deleted = String(r.deleted);
  if (r.prevKvs.length > 0) o.prev_kvs = r.prevKvs.map(encodeKv);
  return o;
}

export function encodeTxnBody(r: TxnResult, header: Obj): Obj {
  const o: Obj = { header };
  if (r.succeeded) o.succeeded = true;
  if (r.responses.length > 0) o.responses = r.responses.map(encodeOpResponse);
  return o;
}

export function encodeEvent(e: WatchEvent, prevKv: boolean): Obj {
  const o: Obj = {};
  if (e.type === "DELETE") o.type = "DELETE";
  o.kv = encodeKv(e.kv);
  if (prevKv && e.prevKv) o.prev_kv = encodeKv(e.prevKv);
  return o;
}
