/**
 * The on-disk (and on-wire) record batch format: our own, modelled on Kafka's v2 batches.
 *
 * All fixed-width integers are big-endian. A batch is:
 *
 * ```
 * offset size field
 *  0     8    baseOffset       u64   offset of the first record (<= 2^53 - 1)
 *  8     4    batchLength      u32   bytes after this field (batch size = 12 + batchLength)
 * 12     1    magic            u8    = 2
 * 13     4    crc              u32   CRC-32C of bytes [17, end): everything after this field
 * 17     2    attributes       u16   bit 3: timestamp type (0 create time, 1 log append time);
 *                                    every other bit must be 0 (no compression, no transactions)
 * 19     4    lastOffsetDelta  i32   last offset of the batch - baseOffset (>= 0)
 * 23     8    firstTimestamp   i64   ms; timestamp of the first record
 * 31     8    maxTimestamp     i64   ms; largest record timestamp
 * 39     4    recordCount      i32   number of records that follow
 * 43          records
 * ```
 *
 * A record (varints are zigzag-encoded, as Kafka's):
 *
 * ```
 * length          varint   bytes after this field
 * attributes      u8       0
 * timestampDelta  varlong  timestamp - firstTimestamp
 * offsetDelta     varint   offset - baseOffset; strictly increasing, <= lastOffsetDelta
 * keyLength       varint   -1 = null key
 * key             bytes
 * valueLength     varint   -1 = null value (a tombstone)
 * value           bytes
 * headerCount     varint
 * headers         headerKeyLength varint (>= 0), headerKey UTF-8,
 *                 headerValueLength varint (-1 = null), headerValue
 * ```
 *
 * The base offset is outside the CRC (as in Kafka) so a batch can be encoded before its offset
 * is known and stamped with {@link setBaseOffset} under the append lock. After compaction a
 * batch keeps its base offset and `lastOffsetDelta` but may hold fewer records: offset deltas
 * then have gaps, which readers must accept.
 *
 * Decoding treats its input as hostile: every length is checked against the bytes that are
 * really there before anything is allocated, varints are at most 8 bytes and must stay safe
 * integers, and every problem is a {@link CorruptBatchError}.
 *
 * @module
 */

import { crc32cUpdate } from "@deno-stores/shared/wal";
import {
  BatchTooLargeError,
  CorruptBatchError,
  InvalidRecordError,
  RecordTooLargeError,
} from "./errors.ts";

/** Size of the fixed batch header. */
export const BATCH_HEADER_BYTES = 43;
/** Bytes before `batchLength` ends: base offset and the length field itself. */
export const BATCH_LENGTH_PREFIX_BYTES = 12;
/** The only magic byte understood. */
export const BATCH_MAGIC = 2;
/** Attribute bit: timestamps are the broker's append time. */
export const ATTR_LOG_APPEND_TIME = 0x08;
/** Smallest possible encoded record: seven one-byte fields. */
export const MIN_RECORD_BYTES = 7;
/** Timestamps must lie in [0, 2^52) so that every delta fits a safe zigzag varint. */
export const MAX_TIMESTAMP = 2 ** 52 - 1;
/** Upper bound for any batch read back, whatever the configured append limit (64 MiB). */
export const HARD_MAX_BATCH_BYTES = 64 * 1024 * 1024;

const CRC_START = 17;
const TWO_32 = 4294967296;

/** A record header: a string key and an optional byte value. */
export interface RecordHeader {
  key: string;
  value: Uint8Array | null;
}

/** A record to append. */
export interface LogRecord {
  /** Null for no key (not allowed on compacted logs). */
  key: Uint8Array | null;
  /** Null marks a tombstone (deletes the key on compacted logs). */
  value: Uint8Array | null;
  /** Create time in ms; defaults to the append time. */
  timestamp?: number;
  headers?: readonly RecordHeader[];
}

/** A record read back. `key`, `value` and header values are views into the batch buffer. */
export interface DecodedRecord {
  offset: number;
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: RecordHeader[];
}

/** The decoded fixed header of a batch. */
export interface BatchHeader {
  baseOffset: number;
  /** `baseOffset + lastOffsetDelta`. */
  lastOffset: number;
  /** Total size of the batch in bytes (header included). */
  sizeBytes: number;
  magic: number;
  crc: number;
  attributes: number;
  timestampType: TimestampType;
  firstTimestamp: number;
  maxTimestamp: number;
  recordCount: number;
}

/** Which timestamp the records carry. */
export type TimestampType = "create" | "logAppend";

/** Limits checked when a batch is encoded for append. */
export interface BatchLimits {
  /** Largest encoded batch. Default 1 MiB. */
  maxBatchBytes: number;
  /** Most records in one batch. Default 100,000. */
  maxRecordsPerBatch: number;
  /** Largest key. Default 64 KiB. */
  maxKeyBytes: number;
  /** Largest value. Default 1 MiB. */
  maxValueBytes: number;
  /** Most headers on one record. Default 64. */
  maxHeadersPerRecord: number;
  /** Largest header key (UTF-8 bytes). Default 1 KiB. */
  maxHeaderKeyBytes: number;
  /** Largest header value. Default 64 KiB. */
  maxHeaderValueBytes: number;
}

/** The default {@link BatchLimits}. */
export const DEFAULT_BATCH_LIMITS: Readonly<BatchLimits> = Object.freeze({
  maxBatchBytes: 1024 * 1024,
  maxRecordsPerBatch: 100_000,
  maxKeyBytes: 64 * 1024,
  maxValueBytes: 1024 * 1024,
  maxHeadersPerRecord: 64,
  maxHeaderKeyBytes: 1024,
  maxHeaderValueBytes: 64 * 1024,
});

/** Options for {@link encodeBatch}. */
export interface EncodeOptions {
  /** Timestamp for records without one, and the append time. Default `Date.now()`. */
  now?: number;
  /** `"logAppend"` stamps every record with `now` (Kafka's LogAppendTime). Default create. */
  timestampType?: TimestampType;
  /** Limits; missing fields take {@link DEFAULT_BATCH_LIMITS}. */
  limits?: Partial<BatchLimits>;
  /** Reject records with a null key (compacted logs). */
  requireKeys?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Varints

/** Zigzag varint size of a safe integer. */
function varintSize(v: number): number {
  let u = v >= 0 ? v * 2 : -v * 2 - 1;
  let n = 1;
  while (u >= 128) {
    u = Math.floor(u / 128);
    n++;
  }
  return n;
}

/** Writes a zigzag varint at `pos`; returns the position after it. */
function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  if (v >= -0x20000000 && v < 0x20000000) {
    let u = (v << 1) ^ (v >> 31);
    u >>>= 0;
    while (u >= 0x80) {
      buf[pos++] = (u & 0x7f) | 0x80;
      u >>>= 7;
    }
    buf[pos++] = u;
    return pos;
  }
  let u = v >= 0 ? v * 2 : -v * 2 - 1;
  while (u >= 128) {
    buf[pos++] = (u % 128) | 0x80;
    u = Math.floor(u / 128);
  }
  buf[pos++] = u;
  return pos;
}

/** Position after the last varint read by {@link readVarint}. */
let varintEnd = 0;

/**
 * Reads a zigzag varint at `pos` (not past `end`); the position after it goes to `varintEnd`.
 * Returns NaN when truncated, longer than 8 bytes or not a safe integer.
 */
function readVarint(buf: Uint8Array, pos: number, end: number): number {
  let u = 0;
  let mul = 1;
  for (let n = 0; n < 8; n++) {
    if (pos >= end) return NaN;
    const b = buf[pos++];
    u += (b & 0x7f) * mul;
    if (b < 0x80) {
      varintEnd = pos;
      if (u > Number.MAX_SAFE_INTEGER) return NaN;
      return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
    }
    mul *= 128;
  }
  return NaN;
}

// ---------------------------------------------------------------------------------------------
// Fixed-width helpers

/** Big-endian integer access (shared with segment.ts). */
export function readU32(buf: Uint8Array, pos: number): number {
  return ((buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]) >>> 0;
}

function readI32(buf: Uint8Array, pos: number): number {
  return (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3];
}

/** Big-endian integer access (shared with segment.ts). */
export function writeU32(buf: Uint8Array, pos: number, v: number): void {
  buf[pos] = v >>> 24;
  buf[pos + 1] = v >>> 16;
  buf[pos + 2] = v >>> 8;
  buf[pos + 3] = v;
}

/** Reads an i64 as a number; NaN if it is not a safe integer. */
/** Big-endian integer access (shared with segment.ts). */
export function readI64(buf: Uint8Array, pos: number): number {
  const hi = readI32(buf, pos);
  const lo = readU32(buf, pos + 4);
  if (hi > 0x1fffff || hi < -0x200000) return NaN;
  const v = hi * TWO_32 + lo;
  return Number.isSafeInteger(v) ? v : NaN;
}

/** Writes a safe integer as an i64. */
/** Big-endian integer access (shared with segment.ts). */
export function writeI64(buf: Uint8Array, pos: number, v: number): void {
  const hi = Math.floor(v / TWO_32);
  writeU32(buf, pos, hi >>> 0);
  writeU32(buf, pos + 4, (v - hi * TWO_32) >>> 0);
}

// ---------------------------------------------------------------------------------------------
// Encoding

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/** Record body sizes of the batch being encoded (reused across calls). */
let scratchSizes = new Int32Array(1024);

/** UTF-8 length of a string without encoding it. */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function checkTimestamp(ts: number, what: string): void {
  if (!Number.isSafeInteger(ts) || ts < 0 || ts > MAX_TIMESTAMP) {
    throw new InvalidRecordError(`${what} ${ts} must be an integer in [0, 2^52)`);
  }
}

/**
 * The encoded size of record `r` without its length prefix, at the given timestamp and offset
 * deltas; checks it against `limits` (and that it has a key when `requireKeys`). Throws
 * {@link RecordTooLargeError} or {@link InvalidRecordError}.
 */
function recordBody(
  r: LogRecord,
  tsDelta: number,
  offsetDelta: number,
  limits: Readonly<BatchLimits>,
  requireKeys: boolean,
): number {
  const key = r.key;
  const value = r.value;
  let body = 1 + varintSize(tsDelta) + varintSize(offsetDelta);
  if (key === null) {
    if (requireKeys) {
      throw new InvalidRecordError("records on a compacted log need a key (null key)");
    }
    body += 1;
  } else {
    if (key.length > limits.maxKeyBytes) {
      throw new RecordTooLargeError(
        `key of ${key.length} bytes exceeds maxKeyBytes ${limits.maxKeyBytes}`,
      );
    }
    body += varintSize(key.length) + key.length;
  }
  if (value === null) body += 1;
  else {
    if (value.length > limits.maxValueBytes) {
      throw new RecordTooLargeError(
        `value of ${value.length} bytes exceeds maxValueBytes ${limits.maxValueBytes}`,
      );
    }
    body += varintSize(value.length) + value.length;
  }
  const headers = r.headers;
  const hc = headers === undefined ? 0 : headers.length;
  if (hc > limits.maxHeadersPerRecord) {
    throw new RecordTooLargeError(
      `${hc} headers exceed maxHeadersPerRecord ${limits.maxHeadersPerRecord}`,
    );
  }
  body += varintSize(hc);
  for (let h = 0; h < hc; h++) {
    const hdr = headers![h];
    const kl = utf8Length(hdr.key);
    if (kl > limits.maxHeaderKeyBytes) {
      throw new RecordTooLargeError(
        `header key of ${kl} bytes exceeds maxHeaderKeyBytes ${limits.maxHeaderKeyBytes}`,
      );
    }
    body += varintSize(kl) + kl;
    if (hdr.value === null) body += 1;
    else {
      if (hdr.value.length > limits.maxHeaderValueBytes) {
        throw new RecordTooLargeError(
          `header value of ${hdr.value.length} bytes exceeds maxHeaderValueBytes ${limits.maxHeaderValueBytes}`,
        );
      }
      body += varintSize(hdr.value.length) + hdr.value.length;
    }
  }
  return body;
}

/**
 * Checks a record as {@link encodeBatch} will (its timestamp, key, value and header limits, a key
 * on a compacted log) before anything is written, and returns an upper bound of the bytes it
 * takes in a batch (whatever its place in the batch). Throws the same typed errors.
 */
export function checkRecord(
  r: LogRecord,
  limits: Readonly<BatchLimits>,
  requireKeys = false,
): number {
  if (r.timestamp !== undefined) checkTimestamp(r.timestamp, "record timestamp");
  // Zero deltas take a byte each; the largest take 10 (a 64-bit varint).
  const body = recordBody(r, 0, 0, limits, requireKeys) + 18;
  return varintSize(body) + body;
}

/**
 * Encodes `records` as one batch starting at `baseOffset` (use 0 and {@link setBaseOffset}
 * later if the offset is not known yet). One allocation: the returned buffer.
 *
 * Throws {@link BatchTooLargeError}, {@link RecordTooLargeError} or
 * {@link InvalidRecordError} when a limit or rule is broken; nothing is half-encoded.
 *
 * @example
 * ```ts
 * import { decodeRecords, encodeBatch, readBatchHeader } from "@deno-stores/log";
 * const value = new TextEncoder().encode("v");
 * const batch = encodeBatch(42, [{ key: null, value, timestamp: 1000 }]);
 * const header = readBatchHeader(batch, 0, batch.length, { verifyCrc: true });
 * const [rec] = decodeRecords(batch, 0, header);
 * console.assert(rec.offset === 42 && header.lastOffset === 42);
 * ```
 */
export function encodeBatch(
  baseOffset: number,
  records: readonly LogRecord[],
  options: EncodeOptions = {},
): Uint8Array {
  const limits = options.limits === undefined
    ? DEFAULT_BATCH_LIMITS
    : { ...DEFAULT_BATCH_LIMITS, ...options.limits };
  const count = records.length;
  if (count === 0) throw new InvalidRecordError("a batch needs at least one record");
  if (count > limits.maxRecordsPerBatch) {
    throw new BatchTooLargeError(
      `${count} records exceed maxRecordsPerBatch ${limits.maxRecordsPerBatch}`,
    );
  }
  if (!Number.isSafeInteger(baseOffset) || baseOffset < 0) {
    throw new InvalidRecordError(`base offset ${baseOffset} must be a non-negative safe integer`);
  }
  const now = options.now ?? Date.now();
  checkTimestamp(now, "append time");
  const logAppend = options.timestampType === "logAppend";
  const requireKeys = options.requireKeys === true;

  if (scratchSizes.length < count) {
    scratchSizes = new Int32Array(Math.max(count, scratchSizes.length * 2));
  }
  const sizes = scratchSizes;
  const first = records[0];
  const firstTs = logAppend ? now : first.timestamp ?? now;
  let maxTs = -1;
  let total = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    const ts = logAppend ? now : r.timestamp ?? now;
    if (r.timestamp !== undefined) checkTimestamp(r.timestamp, "record timestamp");
    if (ts > maxTs) maxTs = ts;
    const body = recordBody(r, ts - firstTs, i, limits, requireKeys);
    sizes[i] = body;
    total += varintSize(body) + body;
    if (total > limits.maxBatchBytes) {
      throw new BatchTooLargeError(
        `batch exceeds maxBatchBytes ${limits.maxBatchBytes} (at record ${i})`,
      );
    }
  }
  if (baseOffset + count - 1 > Number.MAX_SAFE_INTEGER) {
    throw new InvalidRecordError(`offsets past 2^53 - 1`);
  }

  const buf = new Uint8Array(total);
  let pos = BATCH_HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    const r = records[i];
    const ts = logAppend ? now : r.timestamp ?? now;
    pos = writeVarint(buf, pos, sizes[i]);
    buf[pos++] = 0;
    pos = writeVarint(buf, pos, ts - firstTs);
    pos = writeVarint(buf, pos, i);
    const key = r.key;
    if (key === null) buf[pos++] = 1; // zigzag(-1)
    else {
      pos = writeVarint(buf, pos, key.length);
      buf.set(key, pos);
      pos += key.length;
    }
    const value = r.value;
    if (value === null) buf[pos++] = 1;
    else {
      pos = writeVarint(buf, pos, value.length);
      buf.set(value, pos);
      pos += value.length;
    }
    const headers = r.headers;
    const hc = headers === undefined ? 0 : headers.length;
    pos = writeVarint(buf, pos, hc);
    for (let h = 0; h < hc; h++) {
      const hdr = headers![h];
      const kl = utf8Length(hdr.key);
      pos = writeVarint(buf, pos, kl);
      if (kl > 0) textEncoder.encodeInto(hdr.key, buf.subarray(pos, pos + kl));
      pos += kl;
      if (hdr.value === null) buf[pos++] = 1;
      else {
        pos = writeVarint(buf, pos, hdr.value.length);
        buf.set(hdr.value, pos);
        pos += hdr.value.length;
      }
    }
  }
  writeHeader(
    buf,
    baseOffset,
    logAppend ? ATTR_LOG_APPEND_TIME : 0,
    count - 1,
    firstTs,
    maxTs,
    count,
  );
  return buf;
}

/** Fills the fixed header of a batch whose records are in place, and its CRC. */
function writeHeader(
  buf: Uint8Array,
  baseOffset: number,
  attributes: number,
  lastOffsetDelta: number,
  firstTs: number,
  maxTs: number,
  count: number,
): void {
  writeI64(buf, 0, baseOffset);
  writeU32(buf, 8, buf.length - BATCH_LENGTH_PREFIX_BYTES);
  buf[12] = BATCH_MAGIC;
  buf[17] = attributes >>> 8;
  buf[18] = attributes;
  writeU32(buf, 19, lastOffsetDelta);
  writeI64(buf, 23, firstTs);
  writeI64(buf, 31, maxTs);
  writeU32(buf, 39, count);
  writeU32(buf, 13, crc32cUpdate(0, buf, CRC_START, buf.length));
}

/**
 * A batch with no records covering offsets `[baseOffset, lastOffset]`: written after a crash to
 * mark offsets that were reserved but lost, so that a reader positioned inside the gap gets a
 * batch to step over (its next offset is `lastOffset + 1`). Timestamps are -1.
 */
export function encodeGapBatch(baseOffset: number, lastOffset: number): Uint8Array {
  if (
    !Number.isSafeInteger(baseOffset) || baseOffset < 0 || !Number.isSafeInteger(lastOffset) ||
    lastOffset < baseOffset || lastOffset - baseOffset > 0x7fffffff
  ) {
    throw new InvalidRecordError(`bad gap [${baseOffset}, ${lastOffset}]`);
  }
  const buf = new Uint8Array(BATCH_HEADER_BYTES);
  writeHeader(buf, baseOffset, 0, lastOffset - baseOffset, -1, -1, 0);
  return buf;
}

/** Stamps the base offset of an encoded batch (outside the CRC, so no re-hash). */
export function setBaseOffset(batch: Uint8Array, baseOffset: number, pos = 0): void {
  writeI64(batch, pos, baseOffset);
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Options for {@link readBatchHeader}. */
export interface ReadHeaderOptions {
  /** Check the CRC-32C (reads the whole batch). Default false. */
  verifyCrc?: boolean;
  /** Largest batch believed. Default {@link HARD_MAX_BATCH_BYTES}. */
  maxBatchBytes?: number;
}

/** Total size of the batch at `pos` from its length field (caller checked 12 bytes exist). */
export function batchSizeAt(buf: Uint8Array, pos: number): number {
  return BATCH_LENGTH_PREFIX_BYTES + readU32(buf, pos + 8);
}

/** Base offset of the batch at `pos` (NaN if not a safe integer). */
export function baseOffsetAt(buf: Uint8Array, pos: number): number {
  const v = readI64(buf, pos);
  return v >= 0 ? v : NaN;
}

/** Last offset of the batch at `pos` (caller checked the header bytes exist). */
export function lastOffsetAt(buf: Uint8Array, pos: number): number {
  return baseOffsetAt(buf, pos) + readI32(buf, pos + 19);
}

/** Max timestamp of the batch at `pos` (caller checked the header bytes exist). */
export function maxTimestampAt(buf: Uint8Array, pos: number): number {
  return readI64(buf, pos + 31);
}

/**
 * Reads and validates the fixed header of the batch at `buf[pos]` (the batch must end by
 * `end`). Checks the length against the bytes present and the limit, the magic, the
 * attributes, offset and timestamp ranges, that the record count is plausible, and with
 * `verifyCrc` the CRC. Does not decode records. Throws {@link CorruptBatchError}.
 */
export function readBatchHeader(
  buf: Uint8Array,
  pos = 0,
  end: number = buf.length,
  options: ReadHeaderOptions = {},
): BatchHeader {
  const avail = end - pos;
  if (avail < BATCH_HEADER_BYTES) {
    throw new CorruptBatchError(
      `truncated header (${Math.max(0, avail)} of ${BATCH_HEADER_BYTES} bytes)`,
      pos,
    );
  }
  const size = batchSizeAt(buf, pos);
  const limit = options.maxBatchBytes ?? HARD_MAX_BATCH_BYTES;
  if (size < BATCH_HEADER_BYTES) throw new CorruptBatchError(`batch length ${size} too small`, pos);
  if (size > limit) {
    throw new CorruptBatchError(`batch length ${size} exceeds the limit ${limit}`, pos);
  }
  if (size > avail) {
    throw new CorruptBatchError(`truncated batch (${avail} of ${size} bytes)`, pos);
  }
  const magic = buf[pos + 12];
  if (magic !== BATCH_MAGIC) throw new CorruptBatchError(`unknown magic ${magic}`, pos);
  const crc = readU32(buf, pos + 13);
  if (options.verifyCrc === true) {
    const actual = crc32cUpdate(0, buf, pos + CRC_START, pos + size);
    if (actual !== crc) {
      throw new CorruptBatchError(
        `crc mismatch (stored 0x${crc.toString(16)}, computed 0x${actual.toString(16)})`,
        pos,
      );
    }
  }
  const attributes = (buf[pos + 17] << 8) | buf[pos + 18];
  if ((attributes & ~ATTR_LOG_APPEND_TIME) !== 0) {
    throw new CorruptBatchError(`unsupported attributes 0x${attributes.toString(16)}`, pos);
  }
  const baseOffset = baseOffsetAt(buf, pos);
  if (Number.isNaN(baseOffset)) throw new CorruptBatchError("base offset out of range", pos);
  const lastOffsetDelta = readI32(buf, pos + 19);
  if (lastOffsetDelta < 0 || !Number.isSafeInteger(baseOffset + lastOffsetDelta)) {
    throw new CorruptBatchError(`last offset delta ${lastOffsetDelta} out of range`, pos);
  }
  const firstTimestamp = readI64(buf, pos + 23);
  const maxTimestamp = readI64(buf, pos + 31);
  if (Number.isNaN(firstTimestamp) || Number.isNaN(maxTimestamp)) {
    throw new CorruptBatchError("timestamp out of range", pos);
  }
  const recordCount = readI32(buf, pos + 39);
  if (
    recordCount < 0 || recordCount > (size - BATCH_HEADER_BYTES) / MIN_RECORD_BYTES ||
    recordCount > lastOffsetDelta + 1
  ) {
    throw new CorruptBatchError(`implausible record count ${recordCount}`, pos);
  }
  return {
    baseOffset,
    lastOffset: baseOffset + lastOffsetDelta,
    sizeBytes: size,
    magic,
    crc,
    attributes,
    timestampType: (attributes & ATTR_LOG_APPEND_TIME) !== 0 ? "logAppend" : "create",
    firstTimestamp,
    maxTimestamp,
    recordCount,
  };
}

/**
 * Where the current record of a {@link forEachRecord} walk lies. One instance is reused for
 * every record: copy what you keep.
 */
export class RecordCursor {
  /** Index of the record in its batch. */
  index = 0;
  offset = 0;
  timestamp = 0;
  /** Byte range of the whole record (length prefix included) in the buffer. */
  recordStart = 0;
  recordEnd = 0;
  /** Key position and length; length -1 for a null key. */
  keyStart = 0;
  keyLength = -1;
  /** Value position and length; length -1 for a null value (tombstone). */
  valueStart = 0;
  valueLength = -1;
  /** Position of the first header and the header count (headers already validated). */
  headersStart = 0;
  headerCount = 0;
}

const cursor = new RecordCursor();

/**
 * Walks the records of the batch at `buf[pos]` whose header was read by
 * {@link readBatchHeader}, validating every field, and calls `visit` with a reused cursor.
 * No allocation per record. Throws {@link CorruptBatchError} (possibly after visiting some
 * records: validate first with a no-op visitor if that matters).
 */
export function forEachRecord(
  buf: Uint8Array,
  pos: number,
  header: BatchHeader,
  visit: (c: RecordCursor) => void,
): void {
  const end = pos + header.sizeBytes;
  const lastDelta = header.lastOffset - header.baseOffset;
  let p = pos + BATCH_HEADER_BYTES;
  let prevDelta = -1;
  const c = cursor;
  for (let i = 0; i < header.recordCount; i++) {
    const start = p;
    const len = readVarint(buf, p, end);
    if (!(len >= MIN_RECORD_BYTES - 1) || len > end - varintEnd) {
      throw new CorruptBatchError(`record ${i}: bad length ${len}`, start);
    }
    p = varintEnd;
    const recEnd = p + len;
    if (buf[p++] !== 0) throw new CorruptBatchError(`record ${i}: bad attributes`, start);
    const tsDelta = readVarint(buf, p, recEnd);
    if (Number.isNaN(tsDelta)) throw new CorruptBatchError(`record ${i}: bad timestamp`, start);
    p = varintEnd;
    const ts = header.firstTimestamp + tsDelta;
    if (!Number.isSafeInteger(ts)) throw new CorruptBatchError(`record ${i}: bad timestamp`, start);
    const od = readVarint(buf, p, recEnd);
    if (!(od > prevDelta) || od > lastDelta) {
      throw new CorruptBatchError(`record ${i}: offset delta ${od} out of range`, start);
    }
    p = varintEnd;
    prevDelta = od;
    const kl = readVarint(buf, p, recEnd);
    if (!(kl >= -1) || kl > recEnd - varintEnd) {
      throw new CorruptBatchError(`record ${i}: bad key length ${kl}`, start);
    }
    p = varintEnd;
    const keyStart = p;
    if (kl > 0) p += kl;
    const vl = readVarint(buf, p, recEnd);
    if (!(vl >= -1) || vl > recEnd - varintEnd) {
      throw new CorruptBatchError(`record ${i}: bad value length ${vl}`, start);
    }
    p = varintEnd;
    const valueStart = p;
    if (vl > 0) p += vl;
    const hc = readVarint(buf, p, recEnd);
    if (!(hc >= 0) || hc > (recEnd - varintEnd) / 2) {
      throw new CorruptBatchError(`record ${i}: bad header count ${hc}`, start);
    }
    p = varintEnd;
    const headersStart = p;
    for (let h = 0; h < hc; h++) {
      const hkl = readVarint(buf, p, recEnd);
      if (!(hkl >= 0) || hkl > recEnd - varintEnd) {
        throw new CorruptBatchError(`record ${i}: bad header key length`, start);
      }
      p = varintEnd + hkl;
      const hvl = readVarint(buf, p, recEnd);
      if (!(hvl >= -1) || hvl > recEnd - varintEnd) {
        throw new CorruptBatchError(`record ${i}: bad header value length`, start);
      }
      p = varintEnd + (hvl > 0 ? hvl : 0);
    }
    if (p !== recEnd) {
      throw new CorruptBatchError(`record ${i}: ${recEnd - p} stray bytes`, start);
    }
    c.index = i;
    c.offset = header.baseOffset + od;
    c.timestamp = header.timestampType === "logAppend" ? header.maxTimestamp : ts;
    c.recordStart = start;
    c.recordEnd = recEnd;
    c.keyStart = keyStart;
    c.keyLength = kl;
    c.valueStart = valueStart;
    c.valueLength = vl;
    c.headersStart = headersStart;
    c.headerCount = hc;
    visit(c);
  }
  if (p !== end) {
    throw new CorruptBatchError(`${end - p} bytes after the last record (count lies)`, p);
  }
}

/** Decodes the headers of the record under `c` (validated by the walk). */
function decodeHeaders(buf: Uint8Array, c: RecordCursor): RecordHeader[] {
  const out: RecordHeader[] = [];
  let p = c.headersStart;
  for (let h = 0; h < c.headerCount; h++) {
    const kl = readVarint(buf, p, c.recordEnd);
    p = varintEnd;
    let key: string;
    try {
      key = textDecoder.decode(buf.subarray(p, p + kl));
    } catch {
      throw new CorruptBatchError("header key is not valid UTF-8", p);
    }
    p += kl;
    const vl = readVarint(buf, p, c.recordEnd);
    p = varintEnd;
    out.push({ key, value: vl < 0 ? null : buf.subarray(p, p + vl) });
    if (vl > 0) p += vl;
  }
  return out;
}

/**
 * Decodes the records of the batch at `buf[pos]` (header read and validated first unless
 * given). Records with an offset below `minOffset` are skipped. Keys, values and header values
 * are views into `buf`.
 */
export function decodeRecords(
  buf: Uint8Array,
  pos = 0,
  header?: BatchHeader,
  minOffset = 0,
): DecodedRecord[] {
  const h = header ?? readBatchHeader(buf, pos);
  const out: DecodedRecord[] = [];
  forEachRecord(buf, pos, h, (c) => {
    if (c.offset < minOffset) return;
    out.push({
      offset: c.offset,
      timestamp: c.timestamp,
      key: c.keyLength < 0 ? null : buf.subarray(c.keyStart, c.keyStart + c.keyLength),
      value: c.valueLength < 0 ? null : buf.subarray(c.valueStart, c.valueStart + c.valueLength),
      headers: c.headerCount === 0 ? [] : decodeHeaders(buf, c),
    });
  });
  return out;
}

/**
 * Decodes every record of a sequence of whole batches (what `Partition.read` returns),
 * skipping records below `fromOffset` (a read that starts inside a batch returns the whole
 * batch). With `verifyCrc` each batch's CRC is checked first.
 */
export function decodeBatches(
  bytes: Uint8Array,
  fromOffset = 0,
  options: { verifyCrc?: boolean } = {},
): DecodedRecord[] {
  const out: DecodedRecord[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const h = readBatchHeader(bytes, pos, bytes.length, options);
    if (h.lastOffset >= fromOffset) {
      for (const r of decodeRecords(bytes, pos, h, fromOffset)) out.push(r);
    }
    pos += h.sizeBytes;
  }
  return out;
}

/**
 * Builds a batch holding a subset of the records of an existing batch (compaction): the same
 * base offset, last offset delta, first timestamp and attributes, the kept records' bytes
 * copied unchanged (their deltas stay valid), a new count, max timestamp and CRC.
 *
 * `ranges` holds `[start, end)` byte ranges of whole records in `src`, in order.
 * Returns the bytes written into `out` at `outPos`.
 */
export function writeFilteredBatch(
  src: Uint8Array,
  header: BatchHeader,
  ranges: readonly number[],
  maxTimestamp: number,
  out: Uint8Array,
  outPos: number,
): number {
  let p = outPos + BATCH_HEADER_BYTES;
  for (let i = 0; i < ranges.length; i += 2) {
    out.set(src.subarray(ranges[i], ranges[i + 1]), p);
    p += ranges[i + 1] - ranges[i];
  }
  const view = out.subarray(outPos, p);
  writeHeader(
    view,
    header.baseOffset,
    header.attributes,
    header.lastOffset - header.baseOffset,
    header.firstTimestamp,
    maxTimestamp,
    ranges.length / 2,
  );
  return p - outPos;
}
