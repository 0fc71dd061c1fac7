/**
 * Compact binary codec for Raft messages, entries, snapshots, hard states and conf changes.
 *
 * Used by the (later) HTTP transport and WAL. Format: unsigned LEB128 varints for every
 * number (restricted to safe integers, canonical/minimal encoding), a one-byte type tag for
 * enums, length-prefixed byte strings.
 *
 * Decoding is hostile-input safe: every length and count is checked against the bytes that
 * remain before anything is allocated, varints are at most 8 bytes, all loops are bounded by
 * the input length, trailing bytes are rejected, and any problem throws a {@link CodecError}
 * naming the field and offset. Decoded byte fields are copies (they never alias the input).
 *
 * Layouts (v1):
 *   Entry       = type:u8 term:uv index:uv data:bytes
 *   HardState   = term:uv vote:uv commit:uv
 *   ConfState   = nVoters:uv id:uv* nLearners:uv id:uv*
 *   Snapshot    = index:uv term:uv ConfState data:bytes
 *   ConfChange  = type:u8 nodeId:uv context:bytes
 *   Message     = version:u8(=1) type:u8 flags:u8 to:uv from:uv term:uv logTerm:uv index:uv
 *                 commit:uv rejectHint:uv nEntries:uv Entry* [context:bytes] [Snapshot]
 *                 flags: bit0 reject, bit1 has context, bit2 has snapshot
 *   bytes       = len:uv raw[len]
 *
 * @module
 */

import {
  type ConfChange,
  ConfChangeType,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  MAX_MESSAGE_TYPE,
  type Message,
  type MessageType,
  type Snapshot,
} from "./types.ts";

/** Thrown on malformed input (decode) or unencodable values (encode). */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

export const MESSAGE_CODEC_VERSION = 1;

const FLAG_REJECT = 1;
const FLAG_CONTEXT = 2;
const FLAG_SNAPSHOT = 4;
const KNOWN_FLAGS = FLAG_REJECT | FLAG_CONTEXT | FLAG_SNAPSHOT;

/** Smallest possible encoded entry: type + term + index + data length. */
const MIN_ENTRY_SIZE = 4;

/** Number of bytes of the varint encoding of `v` (a safe non-negative integer). */
export function uvarintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  if (v < 0x800000000) return 5;
  if (v < 0x40000000000) return 6;
  if (v < 0x2000000000000) return 7;
  return 8;
}

/** Exact encoded size of an entry (also the size used for maxSizePerMsg accounting). */
export function entrySize(e: Entry): number {
  const n = e.data.length;
  return 1 + uvarintSize(e.term) + uvarintSize(e.index) + uvarintSize(n) + n;
}

/** Sum of {@link entrySize} over entries. */
export function entriesSize(ents: readonly Entry[]): number {
  let s = 0;
  for (let i = 0; i < ents.length; i++) s += entrySize(ents[i]);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Writer

/** Growable byte buffer writer. */
export class Writer {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialSize = 64) {
    this.buf = new Uint8Array(Math.max(16, initialSize));
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  uvarint(v: number, field: string): void {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new CodecError(`cannot encode ${field}: ${v} is not a non-negative safe integer`);
    }
    this.ensure(8);
    const buf = this.buf;
    let p = this.pos;
    while (v >= 0x80) {
      buf[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[p++] = v;
    this.pos = p;
  }

  bytes(b: Uint8Array, field: string): void {
    this.uvarint(b.length, field);
    this.raw(b);
  }

  /** Bytes without a length. */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Returns a copy of the written bytes. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  get length(): number {
    return this.pos;
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

/** Bounds-checked reader over a byte array. */
export class Reader {
  private pos = 0;
  constructor(private readonly buf: Uint8Array, private readonly what: string) {}

  private fail(field: string, why: string): never {
    throw new CodecError(`invalid ${this.what}: ${field} at offset ${this.pos}: ${why}`);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(field: string): number {
    if (this.pos >= this.buf.length) this.fail(field, "unexpected end of input");
    return this.buf[this.pos++];
  }

  uvarint(field: string): number {
    const buf = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= buf.length) this.fail(field, "truncated varint");
      const b = buf[this.pos++];
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (b === 0 && i > 0) this.fail(field, "non-canonical varint");
        if (result > Number.MAX_SAFE_INTEGER) this.fail(field, "varint exceeds 2^53-1");
        return result;
      }
      mul *= 0x80;
    }
    return this.fail(field, "varint longer than 8 bytes");
  }

  /** A count of items each taking at least `minItemSize` bytes; checked against input left. */
  count(field: string, minItemSize: number): number {
    const n = this.uvarint(field);
    if (n * minItemSize > this.remaining) {
      this.fail(field, `count ${n} exceeds remaining ${this.remaining} bytes`);
    }
    return n;
  }

  bytes(field: string): Uint8Array {
    const n = this.uvarint(field);
    if (n > this.remaining) this.fail(field, `length ${n} exceeds remaining ${this.remaining}`);
    if (n === 0) return EMPTY_BYTES;
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  nodeId(field: string, allowZero: boolean): number {
    const id = this.uvarint(field);
    if (id === 0 && !allowZero) this.fail(field, "node id must be positive");
    return id;
  }

  end(): void {
    if (this.pos !== this.buf.length) {
      this.fail("end", `${this.buf.length - this.pos} trailing bytes`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Entry

export function writeEntry(w: Writer, e: Entry): void {
  w.u8(e.type);
  w.uvarint(e.term, "entry.term");
  w.uvarint(e.index, "entry.index");
  w.bytes(e.data, "entry.data");
}

export function readEntry(r: Reader): Entry {
  const type = r.u8("entry.type");
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) {
    throw new CodecError(`invalid entry: unknown entry type ${type}`);
  }
  const term = r.uvarint("entry.term");
  const index = r.uvarint("entry.index");
  const data = r.bytes("entry.data");
  return { term, index, type: type as EntryType, data };
}

export function encodeEntry(e: Entry): Uint8Array {
  const w = new Writer(entrySize(e));
  writeEntry(w, e);
  return w.finish();
}

export function decodeEntry(buf: Uint8Array): Entry {
  const r = new Reader(buf, "entry");
  const e = readEntry(r);
  r.end();
  return e;
}

// ---------------------------------------------------------------------------------------------
// HardState

export function encodeHardState(hs: HardState): Uint8Array {
  const w = new Writer(24);
  w.uvarint(hs.term, "hardState.term");
  w.uvarint(hs.vote, "hardState.vote");
  w.uvarint(hs.commit, "hardState.commit");
  return w.finish();
}

export function decodeHardState(buf: Uint8Array): HardState {
  const r = new Reader(buf, "hard state");
  const hs = {
    term: r.uvarint("hardState.term"),
    vote: r.nodeId("hardState.vote", true),
    commit: r.uvarint("hardState.commit"),
  };
  r.end();
  return hs;
}

// ---------------------------------------------------------------------------------------------
// ConfState / Snapshot

function writeIds(w: Writer, ids: readonly number[], field: string): void {
  w.uvarint(ids.length, field);
  for (const id of ids) {
    if (!Number.isSafeInteger(id) || id <= 0) {
      throw new CodecError(`cannot encode ${field}: invalid node id ${id}`);
    }
    w.uvarint(id, field);
  }
}

function readIds(r: Reader, field: string): number[] {
  const n = r.count(field, 1);
  const ids = new Array<number>(n);
  for (let i = 0; i < n; i++) ids[i] = r.nodeId(field, false);
  return ids;
}

export function writeConfState(w: Writer, cs: ConfState): void {
  writeIds(w, cs.voters, "confState.voters");
  writeIds(w, cs.learners, "confState.learners");
}

export function readConfState(r: Reader): ConfState {
  const voters = readIds(r, "confState.voters");
  const learners = readIds(r, "confState.learners");
  return { voters, learners };
}

export function encodeConfState(cs: ConfState): Uint8Array {
  const w = new Writer();
  writeConfState(w, cs);
  return w.finish();
}

export function decodeConfState(buf: Uint8Array): ConfState {
  const r = new Reader(buf, "conf state");
  const cs = readConfState(r);
  r.end();
  return cs;
}

export function writeSnapshot(w: Writer, s: Snapshot): void {
  writeSnapshotHead(w, s);
  w.raw(s.data);
}

/** Everything of an encoded snapshot before the bytes of its data (data length included). */
function writeSnapshotHead(w: Writer, s: Snapshot): void {
  w.uvarint(s.metadata.index, "snapshot.index");
  w.uvarint(s.metadata.term, "snapshot.term");
  writeConfState(w, s.metadata.confState);
  w.uvarint(s.data.length, "snapshot.data");
}

export function readSnapshot(r: Reader): Snapshot {
  const index = r.uvarint("snapshot.index");
  const term = r.uvarint("snapshot.term");
  const confState = readConfState(r);
  const data = r.bytes("snapshot.data");
  return { data, metadata: { index, term, confState } };
}

export function encodeSnapshot(s: Snapshot): Uint8Array {
  const w = new Writer(32 + s.data.length);
  writeSnapshot(w, s);
  return w.finish();
}

/**
 * `encodeSnapshot` as two parts, the head and `s.data` itself (not copied): for writing a large
 * snapshot without building one more copy of it.
 */
export function encodeSnapshotParts(s: Snapshot): [Uint8Array, Uint8Array] {
  const w = new Writer(32);
  writeSnapshotHead(w, s);
  return [w.finish(), s.data];
}

export function decodeSnapshot(buf: Uint8Array): Snapshot {
  const r = new Reader(buf, "snapshot");
  const s = readSnapshot(r);
  r.end();
  return s;
}

// ---------------------------------------------------------------------------------------------
// ConfChange

export function encodeConfChange(cc: ConfChange): Uint8Array {
  if (!Number.isSafeInteger(cc.nodeId) || cc.nodeId <= 0) {
    throw new CodecError(`cannot encode confChange.nodeId: invalid node id ${cc.nodeId}`);
  }
  const w = new Writer(16 + cc.context.length);
  w.u8(cc.type);
  w.uvarint(cc.nodeId, "confChange.nodeId");
  w.bytes(cc.context, "confChange.context");
  return w.finish();
}

export function decodeConfChange(buf: Uint8Array): ConfChange {
  const r = new Reader(buf, "conf change");
  const type = r.u8("confChange.type");
  if (type > ConfChangeType.AddLearnerNode) {
    throw new CodecError(`invalid conf change: unknown type ${type}`);
  }
  const nodeId = r.nodeId("confChange.nodeId", false);
  const context = r.bytes("confChange.context");
  r.end();
  return { type: type as ConfChangeType, nodeId, context };
}

// ---------------------------------------------------------------------------------------------
// Message

export function encodeMessage(m: Message): Uint8Array {
  let size = 32;
  for (let i = 0; i < m.entries.length; i++) size += entrySize(m.entries[i]);
  size += m.context.length;
  if (m.snapshot) size += 32 + m.snapshot.data.length;
  const w = new Writer(size);
  w.u8(MESSAGE_CODEC_VERSION);
  w.u8(m.type);
  let flags = 0;
  if (m.reject) flags |= FLAG_REJECT;
  if (m.context.length > 0) flags |= FLAG_CONTEXT;
  if (m.snapshot) flags |= FLAG_SNAPSHOT;
  w.u8(flags);
  w.uvarint(m.to, "message.to");
  w.uvarint(m.from, "message.from");
  w.uvarint(m.term, "message.term");
  w.uvarint(m.logTerm, "message.logTerm");
  w.uvarint(m.index, "message.index");
  w.uvarint(m.commit, "message.commit");
  w.uvarint(m.rejectHint, "message.rejectHint");
  w.uvarint(m.entries.length, "message.entries");
  for (let i = 0; i < m.entries.length; i++) writeEntry(w, m.entries[i]);
  if (flags & FLAG_CONTEXT) w.bytes(m.context, "message.context");
  if (m.snapshot) writeSnapshot(w, m.snapshot);
  return w.finish();
}

export function decodeMessage(buf: Uint8Array): Message {
  const r = new Reader(buf, "message");
  const version = r.u8("message.version");
  if (version !== MESSAGE_CODEC_VERSION) {
    throw new CodecError(`invalid message: unsupported codec version ${version}`);
  }
  const type = r.u8("message.type");
  if (type > MAX_MESSAGE_TYPE) throw new CodecError(`invalid message: unknown type ${type}`);
  const flags = r.u8("message.flags");
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new CodecError(`invalid message: unknown flags 0x${flags.toString(16)}`);
  }
  const to = r.uvarint("message.to");
  const from = r.uvarint("message.from");
  const term = r.uvarint("message.term");
  const logTerm = r.uvarint("message.logTerm");
  const index = r.uvarint("message.index");
  const commit = r.uvarint("message.commit");
  const rejectHint = r.uvarint("message.rejectHint");
  const n = r.count("message.entries", MIN_ENTRY_SIZE);
  const entries = new Array<Entry>(n);
  for (let i = 0; i < n; i++) entries[i] = readEntry(r);
  const context = flags & FLAG_CONTEXT ? r.bytes("message.context") : EMPTY_BYTES;
  const snapshot = flags & FLAG_SNAPSHOT ? readSnapshot(r) : null;
  r.end();
  return {
    type: type as MessageType,
    to,
    from,
    term,
    logTerm,
    index,
    entries,
    commit,
    snapshot,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
    context,
  };
}
