/**
 * The KV Connect data-path messages (package `com.deno.kv.datapath` of denokv's
 * `proto/schema/datapath.proto`) as plain TypeScript objects, with their encoders and
 * decoders over {@link Reader} and {@link Writer}.
 *
 * Field numbers are the schema's. Decoders fill proto3 defaults for absent fields, skip unknown
 * fields, and throw {@link ProtobufError} on malformed input. Byte fields of decoded messages
 * are views into the input buffer: copy them before keeping them past the request.
 *
 * @module
 */
import { Reader, WireType, Writer } from "./protobuf.ts";

const { VARINT, LEN } = WireType;

/** `SnapshotReadStatus`: the outcome of a read (protocol version 3) or a watch frame. */
export const SnapshotReadStatus = {
  UNSPECIFIED: 0,
  SUCCESS: 1,
  READ_DISABLED: 2,
} as const;

/** `MutationType`: what a mutation does. */
export const MutationType = {
  UNSPECIFIED: 0,
  SET: 1,
  DELETE: 2,
  SUM: 3,
  MAX: 4,
  MIN: 5,
  SET_SUFFIX_VERSIONSTAMPED_KEY: 9,
} as const;

/** `ValueEncoding`: how a value's bytes are to be read by the client. */
export const ValueEncoding = {
  UNSPECIFIED: 0,
  /** V8 ValueSerializer output (any structured-cloneable JS value). */
  V8: 1,
  /** An unsigned 64-bit integer, 8 bytes little-endian (`Deno.KvU64`). */
  LE64: 2,
  /** Raw bytes (a `Uint8Array` value). */
  BYTES: 3,
} as const;

/** `AtomicWriteStatus`: the outcome of an atomic write. */
export const AtomicWriteStatus = {
  UNSPECIFIED: 0,
  SUCCESS: 1,
  CHECK_FAILURE: 2,
  WRITE_DISABLED: 5,
} as const;

/** `ReadRange`: keys in [start, end), at most `limit` of them, optionally from the end. */
export interface ReadRange {
  start: Uint8Array;
  end: Uint8Array;
  limit: number;
  reverse: boolean;
}

/** `SnapshotRead`: several ranges read at one point in time. */
export interface SnapshotRead {
  ranges: ReadRange[];
}

/** `KvEntry`: a stored key with its value and the versionstamp of its last write. */
export interface KvEntry {
  key: Uint8Array;
  value: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
}

/** `ReadRangeOutput`: the entries of one range, in the order they were read. */
export interface ReadRangeOutput {
  values: KvEntry[];
}

/** `SnapshotReadOutput`. */
export interface SnapshotReadOutput {
  ranges: ReadRangeOutput[];
  readDisabled: boolean;
  readIsStronglyConsistent: boolean;
  status: number;
}

/** `Check`: the key's versionstamp must be this one (empty: the key must be absent). */
export interface Check {
  key: Uint8Array;
  versionstamp: Uint8Array;
}

/** `KvValue`: value bytes and their encoding. */
export interface KvValue {
  data: Uint8Array;
  encoding: number;
}

/** `Mutation`. `sumMin`, `sumMax` and `sumClamp` only apply to sums of V8 numbers/bigints. */
export interface Mutation {
  key: Uint8Array;
  value: KvValue | null;
  mutationType: number;
  /** Milliseconds since the epoch; 0 (or -1) = never expires. */
  expireAtMs: number;
  sumMin: Uint8Array;
  sumMax: Uint8Array;
  sumClamp: boolean;
}

/** `Enqueue`: a queue message (this server refuses them; see the README). */
export interface Enqueue {
  payload: Uint8Array;
  deadlineMs: number;
  keysIfUndelivered: Uint8Array[];
  backoffSchedule: number[];
}

/** `AtomicWrite`. */
export interface AtomicWrite {
  checks: Check[];
  mutations: Mutation[];
  enqueues: Enqueue[];
}

/** `AtomicWriteOutput`. */
export interface AtomicWriteOutput {
  status: number;
  versionstamp: Uint8Array;
  failedChecks: number[];
}

/** `Watch`: the keys to watch. */
export interface Watch {
  keys: Uint8Array[];
}

/** `WatchKeyOutput`: `changed` with the new entry (null: the key is now absent). */
export interface WatchKeyOutput {
  changed: boolean;
  entryIfChanged: KvEntry | null;
}

/** `WatchOutput`: one frame of a watch stream. */
export interface WatchOutput {
  status: number;
  keys: WatchKeyOutput[];
}

const EMPTY: Uint8Array = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// Encoders. Each leaves out fields holding their proto3 default, as protobuf encoders do.

function writeReadRange(r: ReadRange): Writer {
  const w = new Writer();
  if (r.start.length > 0) w.bytes(1, r.start);
  if (r.end.length > 0) w.bytes(2, r.end);
  if (r.limit !== 0) w.int(3, r.limit);
  if (r.reverse) w.bool(4, true);
  return w;
}

/** Encodes a `SnapshotRead`. */
export function encodeSnapshotRead(m: SnapshotRead): Uint8Array {
  const w = new Writer();
  for (const r of m.ranges) w.message(1, writeReadRange(r));
  return w.finish();
}

function writeKvEntry(e: KvEntry): Writer {
  const w = new Writer(e.key.length + e.value.length + 24);
  if (e.key.length > 0) w.bytes(1, e.key);
  if (e.value.length > 0) w.bytes(2, e.value);
  if (e.encoding !== 0) w.uint(3, e.encoding);
  if (e.versionstamp.length > 0) w.bytes(4, e.versionstamp);
  return w;
}

/** Encodes a `SnapshotReadOutput`. */
export function encodeSnapshotReadOutput(m: SnapshotReadOutput): Uint8Array {
  const w = new Writer(256);
  for (const range of m.ranges) {
    const rw = new Writer(256);
    for (const e of range.values) rw.message(1, writeKvEntry(e));
    w.message(1, rw);
  }
  if (m.readDisabled) w.bool(2, true);
  if (m.readIsStronglyConsistent) w.bool(4, true);
  if (m.status !== 0) w.uint(8, m.status);
  return w.finish();
}

function writeMutation(m: Mutation): Writer {
  const w = new Writer();
  if (m.key.length > 0) w.bytes(1, m.key);
  if (m.value !== null) {
    const vw = new Writer(m.value.data.length + 8);
    if (m.value.data.length > 0) vw.bytes(1, m.value.data);
    if (m.value.encoding !== 0) vw.uint(2, m.value.encoding);
    w.message(2, vw);
  }
  if (m.mutationType !== 0) w.uint(3, m.mutationType);
  if (m.expireAtMs !== 0) w.int(4, m.expireAtMs);
  if (m.sumMin.length > 0) w.bytes(5, m.sumMin);
  if (m.sumMax.length > 0) w.bytes(6, m.sumMax);
  if (m.sumClamp) w.bool(7, true);
  return w;
}

/** Encodes an `AtomicWrite`. */
export function encodeAtomicWrite(m: AtomicWrite): Uint8Array {
  const w = new Writer(256);
  for (const c of m.checks) {
    const cw = new Writer();
    if (c.key.length > 0) cw.bytes(1, c.key);
    if (c.versionstamp.length > 0) cw.bytes(2, c.versionstamp);
    w.message(1, cw);
  }
  for (const mu of m.mutations) w.message(2, writeMutation(mu));
  for (const e of m.enqueues) {
    const ew = new Writer();
    if (e.payload.length > 0) ew.bytes(1, e.payload);
    if (e.deadlineMs !== 0) ew.int(2, e.deadlineMs);
    for (const k of e.keysIfUndelivered) ew.bytes(3, k);
    ew.packedUint32(4, e.backoffSchedule);
    w.message(3, ew);
  }
  return w.finish();
}

/** Encodes an `AtomicWriteOutput`. */
export function encodeAtomicWriteOutput(m: AtomicWriteOutput): Uint8Array {
  const w = new Writer(32);
  if (m.status !== 0) w.uint(1, m.status);
  if (m.versionstamp.length > 0) w.bytes(2, m.versionstamp);
  w.packedUint32(4, m.failedChecks);
  return w.finish();
}

/** Encodes a `Watch`. */
export function encodeWatch(m: Watch): Uint8Array {
  const w = new Writer();
  for (const key of m.keys) {
    const kw = new Writer(key.length + 4);
    if (key.length > 0) kw.bytes(1, key);
    w.message(1, kw);
  }
  return w.finish();
}

/** Encodes a `WatchOutput`. */
export function encodeWatchOutput(m: WatchOutput): Uint8Array {
  const w = new Writer(128);
  if (m.status !== 0) w.uint(1, m.status);
  for (const k of m.keys) {
    const kw = new Writer();
    if (k.changed) kw.bool(1, true);
    if (k.entryIfChanged !== null) kw.message(2, writeKvEntry(k.entryIfChanged));
    w.message(2, kw);
  }
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Decoders.

function readReadRange(r: Reader): ReadRange {
  const out: ReadRange = { start: EMPTY, end: EMPTY, limit: 0, reverse: false };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, LEN);
        out.start = r.bytes();
        break;
      case 2:
        r.expect(wire, LEN);
        out.end = r.bytes();
        break;
      case 3:
        r.expect(wire, VARINT);
        out.limit = r.int32();
        break;
      case 4:
        r.expect(wire, VARINT);
        out.reverse = r.bool();
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

/** Decodes a `SnapshotRead`. */
export function decodeSnapshotRead(buf: Uint8Array): SnapshotRead {
  const r = new Reader(buf, "SnapshotRead");
  const out: SnapshotRead = { ranges: [] };
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field === 1) {
      r.expect(wire, LEN);
      r.add(out.ranges, readReadRange(r.nested("ReadRange")));
    } else {
      r.skip(wire);
    }
  }
  return out;
}

function readKvEntry(r: Reader): KvEntry {
  const out: KvEntry = { key: EMPTY, value: EMPTY, encoding: 0, versionstamp: EMPTY };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, LEN);
        out.key = r.bytes();
        break;
      case 2:
        r.expect(wire, LEN);
        out.value = r.bytes();
        break;
      case 3:
        r.expect(wire, VARINT);
        out.encoding = r.int32();
        break;
      case 4:
        r.expect(wire, LEN);
        out.versionstamp = r.bytes();
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

/** Decodes a `SnapshotReadOutput`. */
export function decodeSnapshotReadOutput(buf: Uint8Array): SnapshotReadOutput {
  const r = new Reader(buf, "SnapshotReadOutput");
  const out: SnapshotReadOutput = {
    ranges: [],
    readDisabled: false,
    readIsStronglyConsistent: false,
    status: 0,
  };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1: {
        r.expect(wire, LEN);
        const rr = r.nested("ReadRangeOutput");
        const values: KvEntry[] = [];
        while (rr.more()) {
          const t = rr.tag();
          if (t.field === 1) {
            rr.expect(t.wire, LEN);
            rr.add(values, readKvEntry(rr.nested("KvEntry")));
          } else {
            rr.skip(t.wire);
          }
        }
        r.add(out.ranges, { values });
        break;
      }
      case 2:
        r.expect(wire, VARINT);
        out.readDisabled = r.bool();
        break;
      case 4:
        r.expect(wire, VARINT);
        out.readIsStronglyConsistent = r.bool();
        break;
      case 8:
        r.expect(wire, VARINT);
        out.status = r.int32();
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

function readCheck(r: Reader): Check {
  const out: Check = { key: EMPTY, versionstamp: EMPTY };
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field === 1) {
      r.expect(wire, LEN);
      out.key = r.bytes();
    } else if (field === 2) {
      r.expect(wire, LEN);
      out.versionstamp = r.bytes();
    } else {
      r.skip(wire);
    }
  }
  return out;
}

function readKvValue(r: Reader): KvValue {
  const out: KvValue = { data: EMPTY, encoding: 0 };
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field === 1) {
      r.expect(wire, LEN);
      out.data = r.bytes();
    } else if (field === 2) {
      r.expect(wire, VARINT);
      out.encoding = r.int32();
    } else {
      r.skip(wire);
    }
  }
  return out;
}

function readMutation(r: Reader): Mutation {
  const out: Mutation = {
    key: EMPTY,
    value: null,
    mutationType: 0,
    expireAtMs: 0,
    sumMin: EMPTY,
    sumMax: EMPTY,
    sumClamp: false,
  };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, LEN);
        out.key = r.bytes();
        break;
      case 2:
        r.expect(wire, LEN);
        // A repeated embedded message merges in protobuf; last-wins per field is the same
        // for KvValue's two scalar fields, except that an absent field keeps the old value.
        {
          const v = readKvValue(r.nested("KvValue"));
          out.value = out.value === null ? v : {
            data: v.data.length > 0 ? v.data : out.value.data,
            encoding: v.encoding !== 0 ? v.encoding : out.value.encoding,
          };
        }
        break;
      case 3:
        r.expect(wire, VARINT);
        out.mutationType = r.int32();
        break;
      case 4:
        r.expect(wire, VARINT);
        out.expireAtMs = r.int64();
        break;
      case 5:
        r.expect(wire, LEN);
        out.sumMin = r.bytes();
        break;
      case 6:
        r.expect(wire, LEN);
        out.sumMax = r.bytes();
        break;
      case 7:
        r.expect(wire, VARINT);
        out.sumClamp = r.bool();
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

function readEnqueue(r: Reader): Enqueue {
  const out: Enqueue = {
    payload: EMPTY,
    deadlineMs: 0,
    keysIfUndelivered: [],
    backoffSchedule: [],
  };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, LEN);
        out.payload = r.bytes();
        break;
      case 2:
        r.expect(wire, VARINT);
        out.deadlineMs = r.int64();
        break;
      case 3:
        r.expect(wire, LEN);
        r.add(out.keysIfUndelivered, r.bytes());
        break;
      case 4:
        r.repeatedUint32(wire, out.backoffSchedule);
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

/** Decodes an `AtomicWrite`. */
export function decodeAtomicWrite(buf: Uint8Array): AtomicWrite {
  const r = new Reader(buf, "AtomicWrite");
  const out: AtomicWrite = { checks: [], mutations: [], enqueues: [] };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, LEN);
        r.add(out.checks, readCheck(r.nested("Check")));
        break;
      case 2:
        r.expect(wire, LEN);
        r.add(out.mutations, readMutation(r.nested("Mutation")));
        break;
      case 3:
        r.expect(wire, LEN);
        r.add(out.enqueues, readEnqueue(r.nested("Enqueue")));
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

/** Decodes an `AtomicWriteOutput`. */
export function decodeAtomicWriteOutput(buf: Uint8Array): AtomicWriteOutput {
  const r = new Reader(buf, "AtomicWriteOutput");
  const out: AtomicWriteOutput = { status: 0, versionstamp: EMPTY, failedChecks: [] };
  while (r.more()) {
    const { field, wire } = r.tag();
    switch (field) {
      case 1:
        r.expect(wire, VARINT);
        out.status = r.int32();
        break;
      case 2:
        r.expect(wire, LEN);
        out.versionstamp = r.bytes();
        break;
      case 4:
        r.repeatedUint32(wire, out.failedChecks);
        break;
      default:
        r.skip(wire);
    }
  }
  return out;
}

/** Decodes a `Watch`. */
export function decodeWatch(buf: Uint8Array): Watch {
  const r = new Reader(buf, "Watch");
  const out: Watch = { keys: [] };
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field !== 1) {
      r.skip(wire);
      continue;
    }
    r.expect(wire, LEN);
    const kr = r.nested("WatchKey");
    let key = EMPTY;
    while (kr.more()) {
      const t = kr.tag();
      if (t.field === 1) {
        kr.expect(t.wire, LEN);
        key = kr.bytes();
      } else {
        kr.skip(t.wire);
      }
    }
    r.add(out.keys, key);
  }
  return out;
}

/** Decodes a `WatchOutput`. */
export function decodeWatchOutput(buf: Uint8Array): WatchOutput {
  const r = new Reader(buf, "WatchOutput");
  const out: WatchOutput = { status: 0, keys: [] };
  while (r.more()) {
    const { field, wire } = r.tag();
    if (field === 1) {
      r.expect(wire, VARINT);
      out.status = r.int32();
    } else if (field === 2) {
      r.expect(wire, LEN);
      const kr = r.nested("WatchKeyOutput");
      const k: WatchKeyOutput = { changed: false, entryIfChanged: null };
      while (kr.more()) {
        const t = kr.tag();
        if (t.field === 1) {
          kr.expect(t.wire, VARINT);
          k.changed = kr.bool();
        } else if (t.field === 2) {
          kr.expect(t.wire, LEN);
          k.entryIfChanged = readKvEntry(kr.nested("KvEntry"));
        } else {
          kr.skip(t.wire);
        }
      }
      r.add(out.keys, k);
    } else {
      r.skip(wire);
    }
  }
  return out;
}
